# Thin wrappers over runtime/dev.py (the same commands on Windows: py -3 -m runtime.dev demo|test).
PY ?= python3

.PHONY: demo test lint bench
demo:
	$(PY) -m runtime.dev demo
test:
	$(PY) -m runtime.dev test
lint:
	$(PY) -m runtime.dev lint
bench:
	$(PY) -m runtime.dev bench

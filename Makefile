# Thin wrappers over runtime/dev.py (the same commands on Windows: py -3 -m runtime.dev demo|test|lab|...).
PY ?= python3

.PHONY: demo test lint bench bench-scale lab
demo:
	$(PY) -m runtime.dev demo
test:
	$(PY) -m runtime.dev test
lint:
	$(PY) -m runtime.dev lint
bench:
	$(PY) -m runtime.dev bench
bench-scale:
	$(PY) -m runtime.dev bench-scale
lab:
	$(PY) -m runtime.dev lab

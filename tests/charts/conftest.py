"""The chart tests reuse the derive fixtures (built once per test process, see tests/derive/conftest.py)."""

from tests.derive.conftest import hand, real, synth  # noqa: F401 - pytest fixtures

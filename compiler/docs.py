"""`python -m compiler.docs [DSL.md]`: regenerate design/DSL.md's generated sections.

Lives in the compiler because the operator table's backends column comes from the backend registries
(compiler/backends.py) and dsl may not import the compiler; everything else is dsl.docs.
"""

from __future__ import annotations

from compiler.backends import describe
from dsl import render_operator_table
from dsl.docs import main as _main


def operator_table() -> str:
    """The operator table exactly as design/DSL.md must contain it."""
    return render_operator_table(describe)


def main(argv: list[str] | None = None) -> int:
    return _main(argv, backends=describe)


if __name__ == "__main__":
    raise SystemExit(main())

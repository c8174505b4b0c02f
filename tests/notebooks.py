"""Execute a notebook of notebooks/ top to bottom in a real kernel (nbclient), as `make lab` would run it.

Why shared: every notebook test ran the same steps (read, execute with the notebook folder as cwd, collect
outputs, refuse error outputs, check the notebook stays a thin runner); five copies had drifted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PLOTLY = "application/vnd.plotly.v1+json"


@dataclass(frozen=True)
class Executed:
    """An executed notebook: its code cells' outputs, and the views of them tests read."""

    nb: Any
    outputs: list[Any]

    @property
    def text(self) -> str:
        """Everything printed (stream outputs)."""
        return "".join(o.get("text", "") for o in self.outputs if o.output_type == "stream")

    @property
    def html(self) -> str:
        """The HTML of displayed values (tables, stylers)."""
        return "".join(
            o["data"].get("text/html", "") for o in self.outputs if o.output_type == "execute_result"
        )

    @property
    def plots(self) -> list[Any]:
        """The plotly figures shown."""
        return [o for o in self.outputs if PLOTLY in o.get("data", {})]

    @property
    def code(self) -> str:
        return "\n".join(c.source for c in self.nb.cells if c.cell_type == "code")


def execute(name: str, timeout: int = 300, cwd: Path | None = None) -> Executed:
    """Run notebooks/<name> (in `cwd`, default notebooks/); no cell may raise; it must stay thin (no def/class)."""
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": str(cwd or NOTEBOOKS)}}
    ).execute()
    out = Executed(nb, [o for c in nb.cells if c.cell_type == "code" for o in c.outputs])
    errors = [o for o in out.outputs if o.output_type == "error"]
    assert not errors, [f"{e.get('ename')}: {e.get('evalue')}" for e in errors]
    assert "def " not in out.code and "class " not in out.code, f"{name} must stay a thin runner"
    return out

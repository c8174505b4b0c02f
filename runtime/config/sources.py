"""Where a daily dataset's source file is and how its headers become series names (shared with ingest).

Why here and not in runtime/ingest: export checks feature input columns against the source file, and
runtime.config must never import runtime.ingest (ingest reads the config; the reverse would be an import
cycle, see design/DECISIONS.md "Package layering"). Ingest imports these helpers from here.
"""

from __future__ import annotations

import re
from pathlib import Path

_SPACES = re.compile(r"[\s\u00a0]+")


def canonical_name(header: str) -> str:
    """'Adj Close ' -> adj_close; 'CTA Flow ($bn)' -> cta_flow_bn (DSL-friendly identifiers)."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", _SPACES.sub(" ", str(header)).strip()).strip("_").lower()
    if s and s[0].isdigit():
        s = "c_" + s
    return s


def split_source(spec: str) -> tuple[str, str | None]:
    """'incoming/daily/spx.xlsx#SPX' -> ('incoming/daily/spx.xlsx', 'SPX')."""
    path, _, sheet = spec.partition("#")
    return path.strip(), (sheet.strip() or None)


def resolve_source_path(spec: str, data_root: Path) -> Path:
    """A relative source path resolves against DATA_ROOT; an absolute one is used as is."""
    p = Path(spec.replace("\\", "/"))
    return p if p.is_absolute() else data_root / p

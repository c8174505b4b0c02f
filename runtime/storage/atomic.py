"""Atomic file writes: write to a temp file beside the target (or in staging), fsync, then os.replace.

Why: a killed process must leave either the old file or the new one, never half of either; os.replace is
atomic on POSIX and replaces in one step on Windows (MoveFileEx with REPLACE_EXISTING).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        fh.flush()
        os.fsync(fh.fileno())


def _tmp_beside(path: Path, tmp_dir: Path | None) -> Path:
    base = tmp_dir if tmp_dir is not None else path.parent
    base.mkdir(parents=True, exist_ok=True)
    return base / f".tmp-{uuid.uuid4().hex}-{path.name}"


@contextlib.contextmanager
def _replacing(path: Path, tmp_dir: Path | None) -> Iterator[Path]:
    """Yield a temp path to write; on success fsync it and rename it onto `path` (the one visible step)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path, tmp_dir)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes, tmp_dir: Path | None = None) -> Path:
    with _replacing(path, tmp_dir) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: Path, text: str, tmp_dir: Path | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), tmp_dir)


def atomic_write_parquet(
    table: pa.Table, path: Path, tmp_dir: Path | None = None, compression: str = "zstd"
) -> Path:
    """Write one parquet file and make it visible in a single rename."""
    with _replacing(path, tmp_dir) as tmp:
        pq.write_table(table, tmp, compression=compression, row_group_size=1_000_000)
    return path


def atomic_copy(src: Path, dst: Path, tmp_dir: Path | None = None) -> Path:
    with _replacing(dst, tmp_dir) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def clean_stale_temp(root: Path) -> int:
    """Remove leftovers of killed writers (.tmp-* files); they were never visible under a real name."""
    n = 0
    if not root.exists():
        return 0
    for p in root.rglob(".tmp-*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A run folder written whole or not at all: yields a temp folder beside `final`, renamed into place.

    Why: a run folder is read as a unit (metrics beside their tables); a killed or failing writer leaves no
    half folder, and a forced rerun moves the old folder aside only at the moment the new one is complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

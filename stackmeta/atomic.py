"""Atomic file writes: a reader sees the old file or the complete new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from stackmeta.errors import OutputError


def write_bytes(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file in the same folder and a rename.
    A file system that refuses is an :class:`OutputError` naming the path; the old file, if
    any, is left as it was."""
    blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder: give another folder "
                          "(--locks-dir, --out)")
    try:
        _write(path, data)
    except OSError as exc:
        where = exc.filename or path
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc} ({where}): check the folder given "
            "(--locks-dir, --out) and its permissions and free space"
        ) from None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))

"""Atomic file writes: a reader sees the old file or the complete new one, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from stackmeta.errors import OutputError


def write_bytes(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file in the same folder and a rename.
    A file system that refuses is an :class:`OutputError` naming the path; the old file, if
    any, is left as it was."""
    write_all([(path, data)])


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_all(files: Sequence[tuple[Path, bytes | str]]) -> None:
    """Write several files as one step: every one goes to a temporary file first, and only
    when all are written are they renamed into place (text as UTF-8). A refusal leaves every
    old file as it was, and is one :class:`OutputError` naming the path."""
    for path, _ in files:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder: give another folder "
                              "(--locks-dir, --out)")
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder: move it away, or give another folder "
                              "(--locks-dir, --out)")
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            temps.append((_temp(path, data.encode("utf-8") if isinstance(data, str) else data), path))
        while temps:
            tmp, path = temps[0]
            os.replace(tmp, path)
            temps.pop(0)
    except OSError as exc:
        where = exc.filename or path
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc} ({where}): check the folder given "
            "(--locks-dir, --out) and its permissions and free space"
        ) from None
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _temp(path: Path, data: bytes) -> str:
    """A complete temporary copy of *data* next to *path* (synced to disk), its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp

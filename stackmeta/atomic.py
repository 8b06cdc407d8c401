"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

Every temporary file and folder stackmeta makes carries its owner in its name (the pid and a
hash of the host name: ``.CMSSW_14_0_0.json.4242-1a2b3c4d.x7k2m9p1.tmp``,
``stackmeta-build-4242-1a2b3c4d.q8w7e6r5``). A process killed with ``kill -9`` cannot remove
what it was writing; the next stackmeta that writes into that folder removes the temporary
files and folders of owners on this host that are no longer alive and that are older than
itself (:func:`remove_stale`), so a killed run never leaves ``.*.tmp`` files in ``locks/``
(which a workflow commits) or build folders in the temporary folder for ever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from stackmeta.errors import OutputError

_STARTED = time.time()  # this process's start (as far as stackmeta knows): older leftovers may go
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
# <prefix>[<file name>.]<pid>-<host>.<random><suffix>: the random part is tempfile's
_OWNED = re.compile(r"(?:.*\.)?(\d+)-([0-9a-f]{8})\.[A-Za-z0-9_]+", re.S)
_CLEANED: set[tuple[str, str, str]] = set()


def owner() -> str:
    """The owner part of this process's temporary names: ``<pid>-<host hash>``."""
    return f"{os.getpid()}-{_HOST}"


def alive(pid: int) -> bool:
    """Whether the process *pid* exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OverflowError:
        return False
    return True


def is_stale(path: Path, prefix: str, suffix: str = "") -> bool:
    """Whether *path* is a temporary file or folder named ``<prefix><owner>.<random><suffix>``
    whose owner (on this host) is dead and which is older than this process."""
    name = path.name
    if not name.startswith(prefix) or not name.endswith(suffix):
        return False
    m = _OWNED.fullmatch(name[len(prefix):len(name) - len(suffix)])
    if m is None or m.group(2) != _HOST or int(m.group(1)) == os.getpid() or alive(int(m.group(1))):
        return False
    try:
        return path.lstat().st_mtime < _STARTED
    except OSError:
        return False


def remove_stale(folder: Path, prefix: str, suffix: str = "", *, once: bool = True) -> list[Path]:
    """Remove what dead owners left in *folder* (see :func:`is_stale`); the paths removed.
    With *once*, a folder is looked at once per process (a batch writes thousands of files)."""
    key = (str(folder), prefix, suffix)
    if once and key in _CLEANED:
        return []
    _CLEANED.add(key)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if not is_stale(path, prefix, suffix):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue  # someone else's, or gone already: not ours to insist on
        removed.append(path)
    return removed


def make_temp_dir(prefix: str, folder: Path | None = None, suffix: str = "") -> Path:
    """A new, unique temporary folder ``<prefix><owner>.<random><suffix>`` in *folder* (the
    system's temporary folder by default), after removing the ones dead owners left there."""
    where = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    remove_stale(where, prefix, suffix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{owner()}.", suffix=suffix, dir=where))


@contextlib.contextmanager
def temp_dir(prefix: str, folder: Path | None = None) -> Iterator[Path]:
    """:func:`make_temp_dir`, removed when the block ends."""
    path = make_temp_dir(prefix, folder)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
    check_paths(path for path, _ in files)
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


def check_paths(paths: Iterable[Path]) -> None:
    """Refuse (one OutputError) a path whose folder is a file, or that is a folder."""
    for path in paths:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder: give another folder "
                              "(--locks-dir, --out)")
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a folder: move it away, or give another folder "
                              "(--locks-dir, --out)")


def _temp(path: Path, data: bytes) -> str:
    """A complete temporary copy of *data* next to *path* (synced to disk), its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, ".", ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner()}.", suffix=".tmp", dir=path.parent)
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

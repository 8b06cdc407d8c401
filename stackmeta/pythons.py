"""The Python interpreters on this machine, by major.minor: ``pythonX.Y`` on PATH, then pyenv's
versions (newest micro first), then the interpreter running stackmeta. Used where a stage runs
something in a given Python (an environment in ``resolve``, a tool's smoke run in ``index``)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.version import InvalidVersion, Version

from stackmeta.once import Once


def candidates(minor: tuple[int, int], *, search_path: str | None = None,
               pyenv_root: Path | None = None) -> list[Path]:
    """Where a Python major.minor may be (not yet run: see :func:`find_minor`)."""
    major, mnr = minor
    out: list[Path] = []
    on_path = shutil.which(f"python{major}.{mnr}", path=search_path)
    if on_path:
        out.append(Path(on_path))
    root = pyenv_root if pyenv_root is not None else Path(
        os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = glob.glob(str(root / "versions" / f"{major}.{mnr}.*" / "bin" / "python"))

    def micro(p: str) -> tuple[int, ...]:
        try:
            return Version(Path(p).parent.parent.name).release
        except InvalidVersion:
            return ()

    out += [Path(p) for p in sorted(found, key=micro, reverse=True)]
    if sys.version_info[:2] == minor:
        out.append(Path(sys.executable))
    return out


_found: Once[str | None] = Once()  # find_minor's answers, by major.minor


def find_minor(minor: tuple[int, int]) -> str | None:
    """The first of :func:`candidates` that runs and is that major.minor; None when none is.
    Found once for the process, however many threads ask at once (the others wait: a
    resolve's 32 request threads had each run the probes, 19 s of CPU in a warm run of 25
    cells, a pyenv shim being a shell script)."""
    return _found.get(minor, lambda: _probe(minor))


def _probe(minor: tuple[int, int]) -> str | None:
    probe = f"import sys; assert sys.version_info[:2] == ({minor[0]}, {minor[1]})"
    for path in candidates(minor):
        try:
            proc = subprocess.run([str(path), "-c", probe], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return str(path)
    return None

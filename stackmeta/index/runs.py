"""Whether the environment's own tools *run* in a cell's Python: pip, setuptools and wheel.

Their metadata can say a version is installable where it breaks the environment it lands in:
pip 23.1.1 and setuptools 63.4.3 are ``py3-none-any`` with ``Requires-Python >=3.7``, yet on
Python 3.12 both fail at import (``pkgutil.ImpImporter`` is gone), and a venv whose pip cannot
start cannot even list what it has. So for these tools a version is installable in a cell only
when its wheel imports in that cell's Python: the wheel (hash-verified) is unpacked into a
temporary folder and the tool's entry modules are imported by a real interpreter of the cell's
major.minor (:mod:`stackmeta.pythons`), isolated (``-I``), with a time limit. The answer is kept
on disk per (wheel sha256, Python major.minor) under the cache's ``builds/runs/``. The platform
does not enter: the tools are pure-Python wheels, so the run on this machine stands for every
platform of that Python. Where this machine has no interpreter of that Python, the metadata's
word stands (and nothing is remembered).
"""

from __future__ import annotations

import io
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

from packaging.utils import NormalizedName

from stackmeta import atomic
from stackmeta.errors import StackmetaError
from stackmeta.index.client import IndexClient
from stackmeta.index.simple import ProjectFile
from stackmeta.once import Once
from stackmeta.pythons import find_minor

# what is imported to know that the tool starts (pip's own vendored pkg_resources is what
# `pip list` and `pip install` load)
TOOLS: dict[str, str] = {
    "pip": "import pip._internal.cli.main, pip._vendor.pkg_resources",
    "setuptools": "import setuptools, pkg_resources",
    "wheel": "import wheel",
}
RUN_TIMEOUT = 120.0
FORMAT = 1


def tool(project: str) -> bool:
    """Is *project* (canonical name) one of the tools judged by running them?"""
    return project in TOOLS


class ToolRuns:
    """Smoke runs of the tools' wheels, once per (wheel, Python) (see the module's docstring).

    *folder*: where answers are remembered (None: memory only)."""

    def __init__(self, client: IndexClient, folder: Path | None) -> None:
        self.client = client
        self.folder = folder
        self._done: Once[str | None] = Once(keep=lambda found: found is not None)  # None: not tried

    def failure(self, file: ProjectFile, project: NormalizedName, minor: tuple[int, int],
                wheel: Path | None = None) -> str:
        """Why the wheel *file* of the tool *project* does not start on Python *minor* (its last
        error line), or "" when it does or cannot be tried here. *wheel*: the wheel already on
        disk (a pure wheel built from an sdist) instead of downloading *file*."""
        if project not in TOOLS:
            return ""
        def compute() -> str | None:
            found = self._load(file.sha256, minor)
            return found if found is not None else self._run(file, project, minor, wheel)

        return self._done.get((file.sha256 or file.url, minor), compute) or ""

    def _run(self, file: ProjectFile, project: NormalizedName, minor: tuple[int, int],
             wheel: Path | None) -> str | None:
        """The failure line ("" when it starts); None when it could not be tried."""
        python = find_minor(minor)
        if python is None:
            return None
        try:
            body = wheel.read_bytes() if wheel is not None else self.client._download(file, project)
        except (OSError, StackmetaError):
            return None  # not downloaded: tried again when asked again
        with tempfile.TemporaryDirectory(prefix="stackmeta-run-") as tmp:
            try:
                with zipfile.ZipFile(io.BytesIO(body)) as zf:
                    zf.extractall(tmp)  # member names are sanitized by zipfile
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                return self._save(file.sha256, minor, f"its wheel does not unpack: {exc}")
            code = f"import sys; sys.path.insert(0, {tmp!r}); {TOOLS[project]}"
            try:
                proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                                      errors="replace", timeout=RUN_TIMEOUT, cwd=tmp, check=False)
            except subprocess.TimeoutExpired:
                return self._save(file.sha256, minor, f"importing it took over {RUN_TIMEOUT:.0f} s")
            except OSError:
                return None
        if proc.returncode == 0:
            return self._save(file.sha256, minor, "")
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        return self._save(file.sha256, minor, lines[-1][:300] if lines else f"exit status {proc.returncode}")

    def _path(self, sha256: str | None, minor: tuple[int, int]) -> Path | None:
        if self.folder is None or not sha256:
            return None
        return self.folder / "runs" / f"{sha256}-{minor[0]}.{minor[1]}.json"

    def _load(self, sha256: str | None, minor: tuple[int, int]) -> str | None:
        path = self._path(sha256, minor)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("format") != FORMAT or not isinstance(data.get("failure"), str):
                return None
            return str(data["failure"])
        except (OSError, ValueError):
            return None

    def _save(self, sha256: str | None, minor: tuple[int, int], failure: str) -> str:
        path = self._path(sha256, minor)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_text(path, json.dumps({"format": FORMAT, "failure": failure}) + "\n")
            except (OSError, StackmetaError):
                pass  # a cache that cannot be written keeps nothing
        return failure

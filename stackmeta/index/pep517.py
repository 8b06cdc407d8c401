"""An sdist's core metadata built through PEP 517, for ``stackmeta check --build-metadata``.

When an sdist's PKG-INFO cannot be trusted for its dependencies (Metadata-Version before 2.2, or
``Requires-Dist`` dynamic), the only way to know them is to ask its build backend, as pip does:
``prepare_metadata_for_build_wheel`` (or a wheel build) in an isolated environment whose build
requirements pip installs from the index being checked (only from it: pip's configuration
files and PIP_* sources are left out, as for ``stackmeta env``). That runs the project's build code,
so it is opt-in, and it runs in a child process (``python .../_pep517_child.py SRCDIR OUT``,
METADATA written to OUT) so that the index settings given to pip stay in that process.

The isolated environment, the hooks and the metadata path are ``build``'s
(``DefaultIsolatedEnv``, ``ProjectBuilder``).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from stackmeta import atomic
from stackmeta.childenv import pip_environment
from stackmeta.errors import IndexAccessError

_WRAPPERS = ("BuildBackendException", "BuildException", "CalledProcessError", "build.")
TIMEOUT = 900.0  # seconds for one build (creating the environment, installing its requirements)
_CHILD = Path(__file__).with_name("_pep517_child.py")  # run by path: needs only build, not stackmeta


class BuildError(IndexAccessError):
    """A metadata build that failed (the message says why, in one line)."""


def build_sdist_metadata(archive: bytes, filename: str, *, index_url: str | None,
                         python: str = sys.executable, timeout: float = TIMEOUT) -> bytes:
    """The METADATA that the sdist *archive* (named *filename*) builds; raises BuildError."""
    with atomic.temp_dir("stackmeta-pep517-") as tmp:
        root = _unpack(archive, filename, Path(tmp) / "src")
        # the build requirements come from the index being checked, and from nothing else (no
        # pip configuration file, no PIP_* source); certificates, proxies, timeouts are kept
        env = pip_environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        if index_url:
            env["PIP_INDEX_URL"] = index_url
        out = Path(tmp) / "METADATA"
        try:
            proc = subprocess.run([python, str(_CHILD), str(root), str(out)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=env, cwd=tmp, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{filename}: metadata build took more than {timeout:.0f} s") from None
        if proc.returncode != 0 or not out.is_file():
            raise BuildError(f"{filename}: metadata build failed ({_last_line(proc.stderr)})")
        return out.read_bytes()


# a line that says what went wrong: "ValueError: ...", "error: ...", "error in x setup command: ...",
# pip's "ERROR: ..."
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)\b|error\b|ERROR:)")


def _last_line(stderr: bytes) -> str:
    """The backend's own error (the last error line of its output, not build's wrapper around
    it), else the last line."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln) and not ln.startswith(_WRAPPERS)]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:300]


def _unpack(archive: bytes, filename: str, dest: Path) -> Path:
    """Unpack the sdist (tar.* or zip, members kept inside *dest*); its project folder."""
    dest.mkdir(parents=True)
    try:
        if filename.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                for name in zf.namelist():
                    parts = PurePosixPath(name).parts
                    if name.startswith("/") or ".." in parts:
                        raise BuildError(f"{filename}: member {name!r} points outside the archive")
                zf.extractall(dest)
        else:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, filter="data")  # no links out, no absolute paths, no devices
                else:  # Python 3.11.0 to 3.11.3: only regular files and folders, inside dest
                    members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]
                    for m in members:
                        if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
                            raise BuildError(f"{filename}: member {m.name!r} points outside the archive")
                    tf.extractall(dest, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BuildError(f"{filename}: not a readable sdist ({exc})") from None
    tops = [p for p in dest.iterdir() if p.is_dir()]
    root = tops[0] if len(tops) == 1 else dest
    if not ((root / "pyproject.toml").is_file() or (root / "setup.py").is_file()):
        raise BuildError(f"{filename}: no pyproject.toml or setup.py at the top of the sdist")
    return root

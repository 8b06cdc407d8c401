"""Building sdists through PEP 517: their core metadata (``stackmeta check --build-metadata``)
and their wheels (is a version laptop-installable? :mod:`stackmeta.index.installable`).

When an sdist's PKG-INFO cannot be trusted for its dependencies (Metadata-Version before 2.2, or
``Requires-Dist`` dynamic), the only way to know them is to ask its build backend, as pip does:
``prepare_metadata_for_build_wheel`` (or a wheel build) in an isolated environment whose build
requirements pip installs from the index being checked (only from it: pip's configuration
files and PIP_* sources are left out, as for ``stackmeta env``). That runs the project's build code,
so it is opt-in, and it runs in a child process (``python .../_pep517_child.py SRCDIR OUT``,
METADATA written to OUT) so that the index settings given to pip stay in that process.

The isolated environment, the hooks and the metadata path are ``build``'s
(``DefaultIsolatedEnv``, ``ProjectBuilder``). Where uv is installed, ``build`` makes the isolated
environment with it (its ``installer="uv"``): the same build requirements from the same index
only (no uv configuration file, no UV_* source), in half the time of a pip-made one; else pip.

:func:`build_sdist_wheel` runs ``build_wheel`` the same way, with limits: a time limit (the whole
process group is killed), no file larger than :data:`MAX_FILE` (``RLIMIT_FSIZE``), only the tail
of the backend's output kept, and no C, C++ or Fortran compiler (``CC``, ``CXX``, ``FC``... name
a command that does not exist): a laptop user without a compiler and system headers cannot build
an extension either, and a build that needs one fails at once, with the backend's own error
line, instead of compiling for minutes. The wheel it builds is judged by its tags: only a
pure-Python ``*-none-any`` wheel makes the version laptop-installable.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from packaging.utils import parse_wheel_filename

from stackmeta import atomic
from stackmeta.childenv import pip_environment, uv_environment
from stackmeta.errors import IndexAccessError

_WRAPPERS = ("BuildBackendException", "BuildException", "CalledProcessError", "build.")
# pip's own summary lines around a backend's failure (the backend's line is above them)
_PIP_WRAPPERS = ("ERROR: Failed building wheel", "ERROR: Command errored out", "error: subprocess-exited",
                 "error: metadata-generation-failed", "ERROR: Failed to build", "ERROR: Could not build",
                 "Failed to build", "error: legacy-install-failure")
# uv build's summary of a failed build ("error: Failed to build `DIR`", then "cause:" lines)
_UV_WRAPPERS = ("error: Failed to build",)
_UV_BACKEND = ("The build backend returned an error", "Call to `")
# pip's frame around a subprocess's output, and its notes: never the reason
_PIP_NOISE = ("note:", "hint:", "×", "╰─>", "│", "[end of output]", "[notice]", "DEPRECATION:", "WARNING:")
TIMEOUT = 900.0  # seconds for one build (creating the environment, installing its requirements)
WHEEL_TIMEOUT = 300.0  # seconds for one wheel build (a pure-Python project builds in seconds)
MAX_FILE = 1 << 30  # no file a build writes may be larger (RLIMIT_FSIZE)
MAX_OUTPUT = 1 << 18  # the tail of a build's output that is kept
NO_COMPILER = "stackmeta-no-compiler-on-a-laptop"  # CC, CXX, FC... while building a wheel
_COMPILER_VARS = ("CC", "CXX", "CPP", "FC", "F77", "F90", "LDSHARED", "LDCXXSHARED", "MPICC")
_CHILD = Path(__file__).with_name("_pep517_child.py")  # run by path: needs only build, not stackmeta


Frontend = Literal["build", "uv", "pip"]


class BuildError(IndexAccessError):
    """A metadata build that failed (the message says why, in one line)."""


def build_sdist_metadata(archive: bytes, filename: str, *, index_url: str | None,
                         python: str = sys.executable, timeout: float = TIMEOUT) -> bytes:
    """The METADATA that the sdist *archive* (named *filename*) builds; raises BuildError."""
    with atomic.temp_dir("stackmeta-pep517-") as tmp:
        root = _unpack(archive, filename, Path(tmp) / "src")
        out = Path(tmp) / "METADATA"
        code, stderr = _run_child([python, str(_CHILD), *_installer_args(), str(root), str(out)], tmp,
                                  _environment(index_url), timeout)
        if code is None:
            raise BuildError(f"{filename}: metadata build took more than {timeout:.0f} s")
        if code != 0 or not out.is_file():
            raise BuildError(f"{filename}: metadata build failed ({_last_line(stderr)})")
        return out.read_bytes()


@dataclass(frozen=True, kw_only=True, slots=True)
class WheelBuild:
    """What building an sdist's wheel gave: a pure-Python wheel, or why not (one line)."""

    sdist: str  # the sdist's file name
    sha256: str  # of the sdist
    wheel: str | None = None  # the built wheel's file name (pure or not)
    metadata: bytes | None = None  # its METADATA
    reason: str = ""  # why the version is not laptop-installable ("" when it is)

    @property
    def pure(self) -> bool:
        """A ``*-none-any`` wheel was built."""
        return self.wheel is not None and not self.reason


def pure_wheel(filename: str) -> bool:
    """Whether every tag of the wheel *filename* is ``none-any`` (installs on any platform)."""
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except ValueError:
        return False
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def build_sdist_wheel(archive: bytes, filename: str, *, index_url: str | None, out_dir: Path | None = None,
                      python: str = sys.executable, frontend: Frontend = "build",
                      timeout: float = WHEEL_TIMEOUT) -> WheelBuild:
    """Build the wheel of the sdist *archive* (named *filename*) through PEP 517, with the limits
    above, with the interpreter *python*, by the PEP 517 *frontend*:

    - ``"build"``: ``build`` (which must be importable there: stackmeta's own interpreter);
    - ``"uv"``: ``uv build --python PYTHON --wheel`` (another Python 3 of the machine, which has
      no ``build``): the same isolated environment from the same index, its build requirements'
      wheels cached by uv, several times faster than pip's;
    - ``"pip"``: that interpreter's own ``pip wheel --use-pep517``, as pip on a laptop builds (a
      Python 2 one, or another Python where uv is missing).

    The pure-Python wheel is copied into *out_dir* when given. A failed build is a result (its
    reason is the backend's own error line), never an exception."""
    sha = hashlib.sha256(archive).hexdigest()
    with tempfile.TemporaryDirectory(prefix="stackmeta-wheel-") as tmp:
        try:
            root = _unpack(archive, filename, Path(tmp) / "src")
        except BuildError as exc:
            return WheelBuild(sdist=filename, sha256=sha, reason=str(exc).split(": ", 1)[-1])
        outdir = Path(tmp) / "out"
        env = _environment(index_url)
        env.update(dict.fromkeys(_COMPILER_VARS, NO_COMPILER))
        uv = uv_binary() if frontend == "uv" else None
        if uv is not None:
            env["UV_PYTHON_DOWNLOADS"] = "never"  # that interpreter, never one uv would fetch
            cmd = [uv, "build", "--wheel", "--no-progress", "--python", python, "--out-dir", str(outdir),
                   str(root)]
        elif frontend != "build":  # build is not there (nor runs on Python 2): its pip builds through PEP 517
            cmd = [python, "-m", "pip", "wheel", "--no-deps", "--use-pep517", "--no-cache-dir",
                   "--disable-pip-version-check", "-w", str(outdir), str(root)]
        else:
            cmd = [python, str(_CHILD), *_installer_args(), "--wheel", str(root), str(outdir)]
        code, stderr = _run_child(cmd, tmp, env, timeout)
        if code is None:
            return WheelBuild(sdist=filename, sha256=sha,
                              reason=f"the build took more than {timeout:.0f} s (stopped)")
        wheels = sorted(outdir.glob("*.whl")) if outdir.is_dir() else []
        if code != 0 or not wheels:
            return WheelBuild(sdist=filename, sha256=sha, reason=plain_reason(_last_line(stderr)))
        wheel = wheels[0]
        metadata = _wheel_metadata(wheel)
        if not pure_wheel(wheel.name):
            return WheelBuild(sdist=filename, sha256=sha, wheel=wheel.name, metadata=metadata,
                              reason=f"builds a platform-specific wheel ({wheel.name}): it needs a compiler")
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / wheel.name).write_bytes(wheel.read_bytes())
        return WheelBuild(sdist=filename, sha256=sha, wheel=wheel.name, metadata=metadata)


def _wheel_metadata(wheel: Path) -> bytes | None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            return zf.read(names[0]) if names else None
    except (zipfile.BadZipFile, OSError):
        return None


def _environment(index_url: str | None) -> dict[str, str]:
    """The build's environment: the build requirements come from the index being checked, and
    from nothing else (no pip configuration file, no PIP_* source); certificates, proxies,
    timeouts are kept."""
    env = pip_environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if index_url:
        env["PIP_INDEX_URL"] = index_url
    uv = uv_binary()
    if uv is not None:
        env = uv_environment(env, index_url)
        env["UV"] = uv  # build's way to name the uv to use
    return env


@functools.cache
def uv_binary() -> str | None:
    """The uv that makes build environments: the ``uv`` package's, else ``uv`` on PATH; None
    without uv (pip makes them)."""
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]

        found: str = uv.find_uv_bin()
        return found
    except (ImportError, OSError, TypeError):  # not installed, or its finder fails (a broken sysconfig)
        return shutil.which("uv")


def _installer_args() -> list[str]:
    return ["--installer", "uv"] if uv_binary() is not None else []


def _limits() -> None:  # pragma: no cover - runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE, MAX_FILE))


_LIVE: set[subprocess.Popen[bytes]] = set()  # build processes running now
_LIVE_LOCK = threading.Lock()


@atexit.register
def stop_builds() -> None:
    """Stop the builds running now with their whole process group: when the program ends
    (builds ahead, waited for by daemon threads), and at once on Ctrl-C (each runs in its own
    session, which the terminal's Ctrl-C does not reach; see IndexClient.__exit__)."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    elif proc.poll() is None:
        proc.kill()


def _run_child(cmd: list[str], cwd: str | Path, env: dict[str, str], timeout: float
               ) -> tuple[int | None, bytes]:
    """Run *cmd* in its own process group with the limits; (exit code or None on time-out, the
    tail of its stderr). On time-out or Ctrl-C the whole group is killed."""
    posix = os.name == "posix"
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=env, cwd=cwd, start_new_session=posix,
                                preexec_fn=_limits if posix else None)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:  # what the build left running (or all of it, on time-out or Ctrl-C) is stopped
            _kill(proc)
            proc.wait()
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        size = err.seek(0, os.SEEK_END)
        err.seek(max(0, size - MAX_OUTPUT))
        return code, err.read()


# a line that says what went wrong: "ValueError: ...", "error: ...", "error in x setup command: ...",
# pip's "ERROR: ..."
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)\b|error\b|ERROR:)")


def plain_reason(line: str) -> str:
    """A build's reason as a user reads it: a line that shows the build ran the stand-in
    compiler (``error: command 'stackmeta-no-compiler-on-a-laptop' failed``) says it needs one."""
    if NO_COMPILER in line:
        return ("it needs a compiler (its build runs a C, C++ or Fortran compiler, which a laptop is not "
                "assumed to have)")
    return line


def _last_line(stderr: bytes) -> str:
    """The backend's own error (the last error line of its output, not build's wrapper around
    it), else the last line."""
    # a line with no letter (a banner of '*' or '=') says nothing
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines()
             if any(ch.isalpha() for ch in ln)]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln) and not ln.startswith(_WRAPPERS)
              and not ln.startswith(_PIP_WRAPPERS) and not ln.startswith(_UV_WRAPPERS)]
    for i, line in enumerate(lines):  # uv's: "error: No solution found ..." then "cause: Because ..."
        causes = [ln[len("cause:"):].strip() for ln in lines[i + 1:] if ln.startswith("cause:")]
        if line.startswith(_UV_WRAPPERS) and causes:
            # uv build's summary: the backend's own line above it, else what uv says went wrong
            # (its build requirements could not be installed: the last cause says why)
            if errors and lines.index(errors[-1]) < i:
                return errors[-1][:300]
            if any(c.startswith(_UV_BACKEND) for c in causes):
                break
        if line.startswith("error:") and causes:
            return f"{line.rstrip(':')}: {causes[-1]}"[:300]
    plain = [ln for ln in lines
             if not ln.startswith((*_WRAPPERS, *_PIP_WRAPPERS, *_UV_WRAPPERS, *_PIP_NOISE, "cause:",
                                   "Traceback", "File ", "^"))]
    return (errors[-1] if errors else plain[-1] if plain else lines[-1] if lines else "no output")[:300]


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

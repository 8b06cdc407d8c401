"""The edges of ``stackmeta env``: finding an interpreter, creating a virtualenv, running pip.

Python 3 environments are made by the interpreter's own ``venv`` module; Python 2.7 ones by
``virtualenv`` (before 20.22, the last line that creates 2.7 environments) run from
stackmeta's own interpreter. Packages are installed by the environment's own pip
(``--no-deps``, every pin exact), so any interpreter pip ever supported works.

A virtualenv cannot be moved (``bin/activate`` and the console scripts name its absolute
path), so it is made where it belongs, and removed again on any failure: a folder that
exists and holds no ``stackmeta-env.json`` was never finished.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta import atomic, credentials
from stackmeta.childenv import pip_environment
from stackmeta.errors import StackmetaError, UsageError
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.pythons import candidates
from stackmeta.resolve.overlay import ENV_RECORD


class VenvError(StackmetaError):
    """An environment could not be created or filled."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Interpreter:
    path: Path
    version: Version  # major.minor.micro

    @property
    def minor(self) -> tuple[int, int]:
        return (self.version.major, self.version.minor)


_VERSION_PROBE = "import sys; sys.stdout.write('%d.%d.%d' % sys.version_info[:3])"


def interpreter(path: str | Path) -> Interpreter:
    """The interpreter at *path* (or a command name on PATH), asked for its version."""
    found = shutil.which(str(path)) if os.sep not in str(path) else str(path)
    if found is None or not Path(found).exists():
        raise UsageError(f"no Python interpreter at {path}: pass --python PATH to an existing one")
    try:
        proc = subprocess.run([found, "-c", _VERSION_PROBE], capture_output=True, text=True, timeout=60)
        version = Version(proc.stdout.strip())
    except (OSError, subprocess.TimeoutExpired, InvalidVersion) as exc:
        raise UsageError(f"{found} does not run as a Python interpreter ({exc}): pass --python PATH "
                         "to a working one") from None
    if proc.returncode != 0:
        raise UsageError(f"{found} does not run as a Python interpreter: pass --python PATH to a working one")
    return Interpreter(path=Path(found).absolute(), version=version)


def find_python(release: str, wanted: Version, given: str | None, *, search_path: str | None = None,
                pyenv_root: Path | None = None) -> Interpreter:
    """The interpreter for an environment of *release*, whose Python is *wanted*: *given*
    (``--python``) when there is one, whatever its version; else the first of
    :func:`candidates` with the same major.minor; else UsageError pointing to ``--python``."""
    if given:
        return interpreter(given)
    minor = (wanted.major, wanted.minor)
    for path in candidates(minor, search_path=search_path, pyenv_root=pyenv_root):
        try:
            found = interpreter(path)
        except UsageError:
            continue
        if found.minor == minor:
            return found
    running = ".".join(str(p) for p in sys.version_info[:3])
    raise UsageError(
        f"{release} is a Python {wanted} stack and stackmeta runs on Python {running}; no Python "
        f"{minor[0]}.{minor[1]} found (python{minor[0]}.{minor[1]} on PATH, ~/.pyenv/versions/"
        f"{minor[0]}.{minor[1]}.*): install one and pass --python PATH"
    )


# -- creating and filling ---------------------------------------------------------------


def check_destination(dest: Path) -> None:
    """DIR must not exist, or be an empty folder; missing parent folders are made (as
    virtualenv does), but not through a file."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not an empty folder: give a new folder for the environment")
    parent = dest.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{parent} is not a folder: give another DIR")


def env_python(dest: Path) -> Path:
    return dest / "bin" / "python"


_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Exit)\b.*:\s*\S")


_BUILDING = re.compile(
    r"^(?:Building wheel for|Running setup\.py install for|Running setup\.py develop for|"
    r"Failed building wheel for|Failed to build|Building editable for|"
    r"Preparing metadata \(pyproject\.toml\) for)\s+([A-Za-z0-9][A-Za-z0-9._-]*)")


def pip_failure(output: str) -> str:
    """What went wrong in pip's *output*, in one line: the package pip was working on when
    the first error came (building a wheel or running a setup.py names it; else the one it
    was collecting), and the error (the last line a failed build printed, if any)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    collecting = None
    for i, line in enumerate(lines):
        building = _BUILDING.match(line)
        if line.startswith("Collecting "):
            collecting = line.removeprefix("Collecting ").split(" ")[0]
        elif building:
            collecting = _pinned(building.group(1), lines) or building.group(1)
            if " error" in line.lower():
                rest = lines[i + 1:]
                ends = [k for k, ln in enumerate(rest) if ln == "[end of output]"]
                last = rest[ends[0] - 1] if ends else ""
                quoted = last if last and not last.endswith("lines of output]") else None
                cause = quoted or next((ln for ln in rest if _EXCEPTION.match(ln)), "the build failed")
                return f"{collecting}: {cause}"
        elif line.lower().startswith("error"):
            rest = lines[i:]
            # pip >= 22 quotes a failed build between "╰─> [N lines of output]" and "[end of output]"
            ends = [k for k, ln in enumerate(rest) if ln == "[end of output]"]
            last = rest[ends[0] - 1] if ends else ""
            quoted = last if last and not last.endswith("lines of output]") else None
            cause = quoted or next((ln for ln in reversed(rest) if _EXCEPTION.match(ln)), line)
            where = f"{collecting}: " if collecting else ""
            return f"{where}{cause}"
    return lines[-1] if lines else "no output"


def _pinned(name: str, lines: list[str]) -> str | None:
    """'pycuda==2022.2.2' for a name pip printed, from its 'Collecting pycuda==...' line."""
    wanted = canonicalize_name(name)
    for line in lines:
        if line.startswith("Collecting "):
            req = line.removeprefix("Collecting ").split(" ")[0]
            if canonicalize_name(re.split(r"[=<>!~\[;]", req, maxsplit=1)[0]) == wanted:
                return req
    return None


def _run(cmd: list[str], what: str, env: Mapping[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise VenvError(f"{what}: cannot run {cmd[0]} ({exc})") from None
    if proc.returncode != 0:
        raise VenvError(f"{what} failed (exit {proc.returncode}): {pip_failure(proc.stdout + proc.stderr)}")


def create(dest: Path, python: Interpreter) -> None:
    """An empty virtualenv at *dest* for *python*, with its own pip."""
    if python.version.major >= 3:
        _run([str(python.path), "-m", "venv", str(dest)], f"{python.path} -m venv {dest}")
        return
    if importlib.util.find_spec("virtualenv") is None:
        raise VenvError(f"a Python {python.version} environment needs virtualenv<20.22 next to stackmeta: "
                        "pip install 'virtualenv<20.22'")
    _run([sys.executable, "-m", "virtualenv", "-q", "--no-periodic-update", "--no-wheel",
          "-p", str(python.path), str(dest)], f"virtualenv -p {python.path} {dest}")


def pip_install(dest: Path, requirements: Path, index_url: str, env: Mapping[str, str] | None = None) -> None:
    """The environment's own pip installs exactly the pins of *requirements* (``--no-deps``).
    The index goes in pip's environment, with the credentials kept for its host: a password
    is never on a command line (which other users of the machine can read)."""
    child_env = pip_environment(os.environ if env is None else env)
    child_env["PIP_INDEX_URL"] = credentials.with_auth(index_url)
    # one pip call: every pin at once, none installed before the rest is downloaded and
    # built; --use-pep517: every sdist builds in its own isolated environment with its
    # declared build requirements, never with what happens to be installed already
    _run([str(env_python(dest)), "-m", "pip", "install", "--no-deps", "--no-input", "--use-pep517",
          "-r", str(requirements)], f"pip install into {dest}", child_env)


def pip_check(dest: Path, env: Mapping[str, str] | None = None,
              planned: Collection[NormalizedName] | None = None) -> list[str]:
    """What ``pip check`` finds wrong in the environment (read from the installed metadata,
    which also knows the dependencies of packages built from sdists): one line each; with
    *planned*, only lines about a planned package (not the environment's own tools, nor
    anything installed into it since)."""
    proc = subprocess.run([str(env_python(dest)), "-m", "pip", "check"], capture_output=True, text=True,
                          env=pip_environment(os.environ if env is None else env), timeout=600)
    if proc.returncode == 0:
        return []
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    if planned is None:
        return lines
    return [ln for ln in lines if canonicalize_name(ln.split(" ")[0]) in planned]


_LIST_PROBE = (
    "import json, sys\n"
    "try:\n"
    "    from importlib.metadata import distributions\n"
    "    d = [(x.metadata['Name'], x.version) for x in distributions()]\n"
    "except ImportError:\n"
    "    import pkg_resources\n"
    "    d = [(x.project_name, x.version) for x in pkg_resources.working_set]\n"
    "sys.stdout.write(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3], 'dists': d,\n"
    "                             'prefix': sys.prefix}))\n"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Listing:
    """What an interpreter has installed, as it says itself (Python 2.7 included)."""

    python: str  # X.Y.Z
    prefix: Path
    dists: dict[NormalizedName, str]


def list_installed(python: str) -> Listing:
    """Run *python* (a path or a command name) to list its distributions; it runs outside the
    current folder, so a source tree's own metadata folders do not count as installed."""
    cwd = Path(python).parent if Path(python).is_absolute() else None
    try:
        proc = subprocess.run([python, "-c", _LIST_PROBE], capture_output=True, text=True, timeout=120,
                              cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VenvError(f"cannot run the interpreter {python!r} ({exc}): give another one") from None
    if proc.returncode != 0:
        raise VenvError(f"{python} could not list its packages: "
                        + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    data = json.loads(proc.stdout)
    return Listing(python=data["python"], prefix=Path(data["prefix"]),
                   dists={canonicalize_name(n): v for n, v in data["dists"] if n})


def installed(dest: Path) -> dict[NormalizedName, str]:
    """Every distribution the environment holds, its own pip and setuptools included."""
    return list_installed(str(env_python(dest))).dists


def make(dest: Path, python: Interpreter, *, pins: Mapping[NormalizedName, Version], pins_file_text: str,
         index_url: str, record: Mapping[str, Any], env: Mapping[str, str] | None = None,
         progress: Progress = NO_PROGRESS) -> dict[NormalizedName, str]:
    """Create the environment at *dest* holding exactly *pins*, write ``stackmeta-env.json``
    last; on any failure (or an interrupt) remove what was made. Returns what is installed."""
    check_destination(dest)
    existed = dest.exists()
    made = dest.parent
    while not made.parent.exists():
        made = made.parent
    created_parent = made if not made.exists() else None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        progress.start("creating the environment", 3)
        create(dest, python)
        seeded = installed(dest)  # pip, setuptools; Python 2.7 lists itself and wsgiref too
        progress.advance()
        requirements = dest / "stackmeta-pins.txt"
        atomic.write_text(requirements, pins_file_text)
        pip_install(dest, requirements, index_url, env)
        progress.advance()
        have = installed(dest)
        wanted = {n: str(v) for n, v in pins.items()}
        wrong = sorted(f"{n} {have.get(n, 'missing')} (planned {v})" for n, v in wanted.items()
                       if n not in have or Version(have[n]) != Version(v))
        extra = sorted(f"{n} {v}" for n, v in have.items() if n not in wanted and n not in seeded)
        if wrong or extra:
            raise VenvError(f"{dest}: pip installed other versions than planned: "
                            + "; ".join(wrong + [f"unplanned {e}" for e in extra]))
        atomic.write_text(dest / ENV_RECORD, _dumps(record))
        progress.advance()
        return have
    except BaseException:
        shutil.rmtree(created_parent or dest, ignore_errors=True)
        if existed:
            dest.mkdir(exist_ok=True)
        raise
    finally:
        progress.done()


def _dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"

"""What real tools make of a release's metapackage in one cell, against the real PyPI: pip
installs it into a fresh venv on this machine, ``uv pip compile`` resolves it for any platform,
and pip resolves it for any platform (``install --dry-run --report --only-binary=:all: --platform
... --python-version ...``, markers evaluated for the cell). Written once for
``scripts/cell_matrix.py`` (which prints the matrix) and ``tests/package/test_cells_network.py``
(which asserts it); the caller gives the environment the tools run in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.index.cache import default_cache_dir
from stackmeta.package import builder, metapackage
from stackmeta.resolve.matrix import CellMatrix
from stackmeta.resolve.nearest import load_nearest
from stackmeta.target import UV_PLATFORMS, platform_tags

PYPI = "https://pypi.org/simple"
BIN = Path(sys.executable).parent
PYENV = Path.home() / ".pyenv/versions"


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """The versions a tool installed or resolved (canonical name -> version), or its output
    when it failed."""

    pins: dict[str, str] = field(default_factory=dict)
    failure: str = ""  # the tail of the tool's output; empty when it succeeded

    @property
    def last_line(self) -> str:
        return (self.failure.strip().splitlines() or ["?"])[-1]

    def differences(self, want: Mapping[str, str], tool: str) -> list[str]:
        """'name: <tool> X / cell Y' for each package whose version differs from *want*."""
        def same(a: str | None, b: str | None) -> bool:  # as versions: 1.14.0 is 1.14
            return a == b or (a is not None and b is not None and Version(a) == Version(b))

        return sorted(f"{n}: {tool} {self.pins.get(n)} / cell {want.get(n)}"
                      for n in set(self.pins) | set(want) if not same(self.pins.get(n), want.get(n)))


def python_for(minor: str) -> Path | None:
    """The newest interpreter of Python *minor* ('3.12') installed by pyenv here."""
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"))
    return found[-1] if found else None


def find_uv() -> str | None:
    return shutil.which("uv", path=str(BIN)) or shutil.which("uv")


def metapackage_wheel(locks_dir: Path, name: str, matrix: CellMatrix, folder: Path) -> Path:
    """The metapackage wheel of the record *name*, built into *folder*."""
    rel = record.load_release(locks_dir, name)
    project = metapackage.project(rel, load_nearest(locks_dir, name), metapackage.Options(), matrix)
    built = builder.build(project, folder / "dist", work_dir=folder / "build", sdist=False)
    return next(p for p in built.files if p.name.endswith(".whl"))


def project_of(wheel: Path) -> str:
    return wheel.name.split("-")[0].replace("_", "-")


def requirement(wheel: Path) -> str:
    """The metapackage as the design card writes it: cms-analysis-stack==9.3 for 9.3.0."""
    return f"{project_of(wheel)}=={wheel.name.split('-')[1].removesuffix('.0')}"


def _links(wheel_dir: Path | None = None) -> list[str]:
    """--find-links for *wheel_dir* and the pure-Python wheels stackmeta built from sdists
    (the wheels pip would build itself)."""
    links = [] if wheel_dir is None else ["--find-links", str(wheel_dir)]
    wheels = default_cache_dir() / "builds" / "wheels"
    return links + (["--find-links", str(wheels)] if wheels.is_dir() else [])


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stdout[-3000:] + proc.stderr[-3000:]).strip() or f"exit status {proc.returncode}"


def new_venv(python: Path, venv: Path, env: Mapping[str, str]) -> Path:
    """A fresh venv of *python* at *venv* (virtualenv for Python 2, which has no venv module);
    its interpreter."""
    shutil.rmtree(venv, ignore_errors=True)
    major = subprocess.run([python, "-c", "import sys; print(sys.version_info[0])"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if major == "2":
        subprocess.run([sys.executable, "-m", "virtualenv", "-q", "-p", python, venv], check=True, env=env)
    else:
        subprocess.run([python, "-m", "venv", venv], check=True, env=env)
        inside = venv / "bin" / "python"
        pip = subprocess.run([inside, "-m", "pip", "--version"], env=env, capture_output=True,
                             text=True, check=True).stdout.split()[1]
        if Version(pip) < Version("19.3"):
            # Python 3.6's venv brings pip 18.1, which knows no manylinux2014 wheel (and so
            # would build numpy): pip is upgraded first there, by the README's command (it
            # gets 21.3.1, the last for 3.6)
            subprocess.run([inside, "-m", "pip", "install", "-q", "-U", "pip"],
                           check=True, env=env, capture_output=True, timeout=600)
    return venv / "bin" / "python"


_INSTALLED = """
import json, re
from importlib import metadata
found, where = {}, {}
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    name = re.sub(r"[-_.]+", "-", name).lower()
    place, recorded = str(dist.locate_file("")), dist.read_text("INSTALLER") is not None
    if name not in found or (where[name] == (place, False) and recorded):
        found[name], where[name] = dist.version, (place, recorded)
print(json.dumps(found))
"""


def pip_install(python: Path, wheel: Path, env: Mapping[str, str], cwd: Path) -> Outcome:
    """Real pip in the venv of *python* installs the metapackage (from --find-links, its
    requirements from PyPI); every distribution then installed, as ``pip list`` gives them (run
    in *cwd*, not the checkout: Python 2 puts the cwd on sys.path)."""
    proc = subprocess.run(
        [python, "-m", "pip", "install", "-q", requirement(wheel), "--find-links", wheel.parent,
         "--index-url", PYPI],
        env=env, capture_output=True, text=True, timeout=3600,
    )
    if proc.returncode != 0:
        return Outcome(failure=_failure(proc))
    return Outcome(pins=installed(python, env, cwd))


def installed(python: Path, env: Mapping[str, str], cwd: Path) -> dict[str, str]:
    """{name: version} of what is installed in the venv of *python*: the distributions its
    ``importlib.metadata`` finds, where of two of one name in one folder the one an installer
    recorded (an INSTALLER file) wins (uncertainties 3.1.5's wheel carries a stray
    uncertainties.egg-info saying 2.4.4, which ``pip list`` and ``pip inspect`` show);
    ``pip list`` where the Python has no ``importlib.metadata`` (2.7, 3.6, 3.7)."""
    read = subprocess.run([python, "-c", _INSTALLED], cwd=cwd, env=env, capture_output=True, text=True)
    if read.returncode == 0:
        return {canonicalize_name(n): v for n, v in json.loads(read.stdout).items()}
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], cwd=cwd, env=env,
                            capture_output=True, text=True, check=True)
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}


def module_check(python: Path, wheel: Path, env: Mapping[str, str],
                 cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m cms_analysis_stack check`` in the venv the metapackage was installed into."""
    return subprocess.run([python, "-m", project_of(wheel).replace("-", "_"), "check"], env=env,
                          capture_output=True, text=True, cwd=cwd)


def uv_compile(uv: str, cell: Cell, wheel: Path, tmp: Path, env: Mapping[str, str]) -> Outcome:
    """``uv pip compile --python-platform P --python-version X`` of the metapackage: the pins it
    resolves to (the metapackage itself left out)."""
    req = tmp / "in.txt"
    req.write_text(requirement(wheel) + "\n")
    proc = subprocess.run(
        [uv, "pip", "compile", str(req), "--python-platform", UV_PLATFORMS[cell.platform],
         "--python-version", cell.python_version, "--index-url", PYPI, *_links(wheel.parent),
         "--no-header", "--no-annotate", "--quiet", "--no-config"],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        return Outcome(failure=_failure(proc))
    got = {}
    for line in proc.stdout.splitlines():
        if "==" in line and not line.startswith("#"):
            n, v = line.strip().split("==", 1)
            got[canonicalize_name(n)] = v.split(";")[0].strip()
    got.pop(project_of(wheel), None)
    return Outcome(pins=got)


# pip takes the target's tags (--platform) and Python (--python-version), but evaluates markers
# for the machine it runs on; the cell's marker environment is given to the packaging it vendors
_PIP_IN_CELL = """
import json, sys
import pip._vendor.packaging.markers as markers
cell = json.loads(sys.argv[1])
markers.default_environment = lambda: dict(cell)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def pip_resolve(cell: Cell, wheel: Path, tmp: Path, env: Mapping[str, str]) -> Outcome:
    """``pip install --dry-run --report --only-binary=:all: --platform ... --python-version ...``
    of the metapackage, with markers evaluated for the cell (:data:`_PIP_IN_CELL`): what it
    would install (the metapackage itself left out)."""
    report = tmp / "report.json"
    plat = [a for t in platform_tags(cell.platform) for a in ("--platform", t)]
    proc = subprocess.run(
        [BIN / "python", "-c", _PIP_IN_CELL, json.dumps(cell.target.environment()),
         "install", "--dry-run", "--quiet", "--ignore-installed",
         "--report", str(report), "--only-binary=:all:", *plat, "--python-version", cell.python_version,
         "--implementation", "cp", requirement(wheel), "--index-url", PYPI, *_links(wheel.parent)],
        env=env, capture_output=True, text=True, timeout=1800, cwd=tmp,
    )
    if proc.returncode != 0:
        return Outcome(failure=_failure(proc))
    got = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
           for i in json.loads(report.read_text())["install"]}
    got.pop(project_of(wheel), None)
    return Outcome(pins=got)

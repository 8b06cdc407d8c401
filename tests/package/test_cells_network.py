"""Every committed release's metapackage, installed for real from the real PyPI (``-m network``).

For each release in locks/ with cells: the metapackage is built from its record; real pip
installs it into fresh venvs of the release's own Python and of the newest Python here (the
metapackage from --find-links, its requirements from pypi.org; the pure-Python wheels of sdists
are built by pip itself, as on a laptop); the installed versions are exactly the cell's pins and
``python -m cms_analysis_stack check`` exits 0. For the other platforms' cells of those two
Pythons: ``uv pip compile --python-platform P --python-version X`` resolves the metapackage to
exactly that cell's pins; and pip does too (``install --dry-run --report --only-binary=:all:
--platform ... --python-version ...`` of the cell's pins, with the pure wheels stackmeta built
offered by --find-links: they are the wheels pip would build itself; pip evaluates markers for
the machine it runs on, so it is given the cell's pins rather than the metapackage)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.index.cache import default_cache_dir
from stackmeta.package import builder, metapackage
from stackmeta.resolve.cells import CellMatrix, load_cells
from stackmeta.resolve.nearest import load_nearest
from stackmeta.target import UV_PLATFORMS, platform_tags
from tests.pypiserver_fixture import env_without_index

LOCKS = Path(os.environ.get("STACKMETA_TEST_LOCKS", Path(__file__).resolve().parents[2] / "locks"))
BIN = Path(sys.executable).parent
PYENV = Path.home() / ".pyenv/versions"
PYPI = "https://pypi.org/simple"
RELEASES = sorted(p.stem for p in LOCKS.glob("CMSSW_*.json"))


def _python(minor: str) -> Path | None:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"))
    return found[-1] if found else None


def _pins(matrix: CellMatrix, cell: Cell) -> dict[str, str]:
    nearest = matrix.result(cell).nearest
    assert nearest is not None, matrix.result(cell).failure
    return {str(n): str(v) for n, v in nearest.pins}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, CellMatrix]]:
    out: dict[str, tuple[Path, CellMatrix]] = {}
    for name in RELEASES:
        matrix = load_cells(LOCKS, name)
        if matrix is None:
            continue
        rel = record.load_release(LOCKS, name)
        project = metapackage.project(rel, load_nearest(LOCKS, name), metapackage.Options(), matrix)
        folder = tmp_path_factory.mktemp(name)
        b = builder.build(project, folder / "dist", work_dir=folder / "build", sdist=False)
        out[name] = (next(p for p in b.files if p.name.endswith(".whl")), matrix)
    return out


def _cells(name: str, built: dict[str, tuple[Path, CellMatrix]]) -> tuple[Path, CellMatrix, list[str]]:
    if name not in built:
        pytest.skip(f"{name} has no cells: run 'stackmeta resolve {name}'")
    wheel, matrix = built[name]
    minors = sorted({c.python_version for c in matrix.cells}, key=lambda v: tuple(map(int, v.split("."))))
    return wheel, matrix, sorted({minors[0], minors[-1]})


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("name", RELEASES)
def test_real_pip_installs_each_cells_pins_from_pypi(
    tmp_path: Path, name: str, built: dict[str, tuple[Path, CellMatrix]]
) -> None:
    wheel, matrix, minors = _cells(name, built)
    env = env_without_index()
    for minor in minors:
        python = _python(minor)
        if python is None:
            pytest.skip(f"no Python {minor} here")
        venv = tmp_path / f"venv{minor}"
        if minor == "2.7":  # no venv module in Python 2: virtualenv makes it
            subprocess.run(
                [sys.executable, "-m", "virtualenv", "-q", "-p", python, venv], check=True, env=env
            )
        else:
            subprocess.run([python, "-m", "venv", venv], check=True, env=env)
        project = wheel.name.split("-")[0].replace("_", "-")
        # as the design card writes it: cms-analysis-stack==9.3 for CMSSW_9_3_0 (9.3.0)
        version = wheel.name.split("-")[1].removesuffix(".0")
        pip = subprocess.run(
            [
                venv / "bin/python",
                "-m",
                "pip",
                "install",
                "-q",
                f"{project}=={version}",
                "--find-links",
                wheel.parent,
                "--index-url",
                PYPI,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert pip.returncode == 0, (minor, pip.stdout[-3000:] + pip.stderr[-3000:])
        listed = subprocess.run(  # cwd: not the checkout (Python 2 puts the cwd on sys.path)
            [venv / "bin/python", "-m", "pip", "list", "--format=json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        got = {canonicalize_name(p["name"]): Version(p["version"]) for p in json.loads(listed.stdout)}
        want = {
            canonicalize_name(n): Version(v)
            for n, v in _pins(matrix, Cell.parse(f"{minor}-linux-x86_64")).items()
        }
        # pip list never shows argparse and wsgiref (pip's stdlib_pkgs): check below sees them
        hidden = {"argparse", "wsgiref"}
        assert {n: got.get(n) for n in want if n not in hidden} == {
            n: v for n, v in want.items() if n not in hidden
        }
        extra = set(got) - set(want) - {"pip", "setuptools", "wheel", project}
        assert not extra, extra
        check = subprocess.run(
            [venv / "bin/python", "-m", project.replace("-", "_"), "check"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        shutil.rmtree(venv)


@pytest.mark.network
@pytest.mark.parametrize("name", RELEASES)
def test_uv_resolves_each_other_platforms_cell_to_its_pins(
    tmp_path: Path, name: str, built: dict[str, tuple[Path, CellMatrix]]
) -> None:
    wheel, matrix, minors = _cells(name, built)
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if uv is None:
        pytest.skip("no uv here")
    if minors == ["2.7"]:
        pytest.skip("uv does not resolve for Python 2")
    project = wheel.name.split("-")[0].replace("_", "-")
    version = wheel.name.split("-")[1]
    wheels = default_cache_dir() / "builds" / "wheels"
    failures = []
    for minor in minors:
        for platform, uv_platform in UV_PLATFORMS.items():
            cell = Cell.parse(f"{minor}-{platform}")
            if matrix.result(cell).nearest is None:
                continue
            req = tmp_path / "in.txt"
            req.write_text(f"{project}=={version}\n")
            links = ["--find-links", str(wheel.parent)]
            if wheels.is_dir():
                links += ["--find-links", str(wheels)]
            proc = subprocess.run(
                [
                    uv,
                    "pip",
                    "compile",
                    str(req),
                    "--python-platform",
                    uv_platform,
                    "--python-version",
                    minor,
                    "--index-url",
                    PYPI,
                    *links,
                    "--no-header",
                    "--no-annotate",
                    "--quiet",
                    "--no-config",
                ],
                env=env_without_index(),
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if proc.returncode != 0:
                failures.append(f"{cell.name}: {proc.stderr.strip()[-500:]}")
                continue
            got = {}
            for line in proc.stdout.splitlines():
                if "==" in line and not line.startswith("#"):
                    n, v = line.strip().split("==", 1)
                    got[n.lower().replace("_", "-")] = v.split(";")[0].strip()
            got.pop(project, None)
            want = _pins(matrix, cell)
            if got != want:
                diff = sorted(
                    f"{n}: uv {got.get(n)} / cell {want.get(n)}"
                    for n in set(got) | set(want)
                    if got.get(n) != want.get(n)
                )
                failures.append(f"{cell.name}: {'; '.join(diff)}")
    assert not failures, "\n".join(failures)


@pytest.mark.network
@pytest.mark.parametrize("name", RELEASES)
def test_pip_resolves_each_other_platforms_cell_to_its_pins(
    tmp_path: Path, name: str, built: dict[str, tuple[Path, CellMatrix]]
) -> None:
    _, matrix, minors = _cells(name, built)
    if minors == ["2.7"]:
        pytest.skip("this pip does not resolve for Python 2")
    wheels = default_cache_dir() / "builds" / "wheels"
    failures = []
    for minor in minors:
        for platform, tags in ((p, platform_tags(p)) for p in UV_PLATFORMS):
            cell = Cell.parse(f"{minor}-{platform}")
            if matrix.result(cell).nearest is None:
                continue
            want = _pins(matrix, cell)
            req = tmp_path / "req.txt"
            req.write_text("".join(f"{n}=={v}\n" for n, v in sorted(want.items())))
            report = tmp_path / "report.json"
            plat = [a for t in tags for a in ("--platform", t)]
            links = ["--find-links", str(wheels)] if wheels.is_dir() else []
            proc = subprocess.run(
                [
                    BIN / "python",
                    "-m",
                    "pip",
                    "install",
                    "--dry-run",
                    "--quiet",
                    "--ignore-installed",
                    "--report",
                    str(report),
                    "--only-binary=:all:",
                    *plat,
                    "--python-version",
                    minor,
                    "--implementation",
                    "cp",
                    "-r",
                    str(req),
                    "--index-url",
                    PYPI,
                    *links,
                ],
                env=env_without_index(),
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if proc.returncode != 0:
                failures.append(f"{cell.name}: {proc.stderr.strip()[-500:]}")
                continue
            items = json.loads(report.read_text())["install"]
            got = {
                i["metadata"]["name"].lower().replace("_", "-").replace(".", "-"): i["metadata"]["version"]
                for i in items
            }
            if got != want:
                diff = sorted(
                    f"{n}: pip {got.get(n)} / cell {want.get(n)}"
                    for n in set(got) | set(want)
                    if got.get(n) != want.get(n)
                )
                failures.append(f"{cell.name}: {'; '.join(diff)}")
    assert not failures, "\n".join(failures)

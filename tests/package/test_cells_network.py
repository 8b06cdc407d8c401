"""Every committed release's metapackage, installed for real from the real PyPI (``-m network``).

For each release in locks/ with cells: the metapackage is built from its record; real pip
installs it into fresh venvs of the release's own Python and of the newest Python here (the
metapackage from --find-links, its requirements from pypi.org; the pure-Python wheels of sdists
are built by pip itself, as on a laptop); the installed versions are exactly the cell's pins and
``python -m cms_analysis_stack check`` exits 0. For the other platforms' cells of those two
Pythons: ``uv pip compile --python-platform P --python-version X`` resolves the metapackage to
exactly that cell's pins; and pip does too (``install --dry-run --report --only-binary=:all:
--platform ... --python-version ...`` of the metapackage, with the pure wheels stackmeta built
offered by --find-links: they are the wheels pip would build itself; pip evaluates markers for
the machine it runs on, so its vendored packaging is given the cell's marker environment). Those
two check the cells of Pythons from 3.8 on (:func:`_strict`): a 3.6 cell is what pip 21.3.1
installs, which reads metadata they refuse."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts import celltools
from stackmeta.cells import Cell
from stackmeta.index.source import STRICT_METADATA_PYTHON
from stackmeta.resolve.matrix import CellMatrix, load_cells
from stackmeta.target import UV_PLATFORMS
from tests.pypiserver_fixture import env_without_index

LOCKS = Path(os.environ.get("STACKMETA_TEST_LOCKS", Path(__file__).resolve().parents[2] / "locks"))
RELEASES = sorted(p.stem for p in LOCKS.glob("CMSSW_*.json"))


def _pins(matrix: CellMatrix, cell: Cell) -> dict[str, str]:
    nearest = matrix.result(cell).nearest
    assert nearest is not None, matrix.result(cell).failure
    return {str(n): str(v) for n, v in nearest.pins}


def _other_platforms(matrix: CellMatrix, minors: list[str], tool: str,
                     resolve: Callable[[Cell, dict[str, str]], celltools.Outcome]) -> list[str]:
    """Each resolved cell of the *minors* on every laptop platform where *resolve* (the tool
    given the cell and its pins) fails or differs from the cell's pins, in one line."""
    failures = []
    for minor in minors:
        for platform in UV_PLATFORMS:
            cell = Cell.parse(f"{minor}-{platform}")
            if matrix.result(cell).nearest is None:
                continue
            want = _pins(matrix, cell)
            got = resolve(cell, want)
            if got.failure:
                failures.append(f"{cell.name}: {got.failure[-500:]}")
            elif diff := got.differences(want, tool):
                failures.append(f"{cell.name}: {'; '.join(diff)}")
    return failures


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, CellMatrix]]:
    out: dict[str, tuple[Path, CellMatrix]] = {}
    for name in RELEASES:
        matrix = load_cells(LOCKS, name)
        if matrix is not None:
            wheel = celltools.metapackage_wheel(LOCKS, name, matrix, tmp_path_factory.mktemp(name))
            out[name] = (wheel, matrix)
    return out


def _strict(minors: list[str]) -> list[str]:
    """Of *minors*, those whose laptops run a pip that reads metadata as uv and current pip do
    (3.8 and later: pip 24.1 and later refuse what current packaging cannot parse). A 3.6 cell
    is what pip 21.3.1, the newest a 3.6 laptop can run, installs: pandas 0.24.2 requires
    ``pytz (>=2011k)``, which it reads and uv and current pip refuse to (they know no version
    0.24.2 then); its own platform's cell is proven by the real install."""
    return [m for m in minors if tuple(map(int, m.split("."))) >= STRICT_METADATA_PYTHON]


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
        python = celltools.python_for(minor)
        if python is None:
            pytest.skip(f"no Python {minor} here")
        venv_python = celltools.new_venv(python, tmp_path / f"venv{minor}", env)
        installed = celltools.pip_install(venv_python, wheel, env, tmp_path)
        assert not installed.failure, (minor, installed.failure)
        got = {canonicalize_name(n): Version(v) for n, v in installed.pins.items()}
        want = {
            canonicalize_name(n): Version(v)
            for n, v in _pins(matrix, Cell.parse(f"{minor}-linux-x86_64")).items()
        }
        # pip list never shows argparse and wsgiref (pip's stdlib_pkgs): check below sees them
        hidden = {"argparse", "wsgiref"}
        assert {n: got.get(n) for n in want if n not in hidden} == {
            n: v for n, v in want.items() if n not in hidden
        }
        extra = set(got) - set(want) - {"pip", "setuptools", "wheel", celltools.project_of(wheel)}
        assert not extra, extra
        check = celltools.module_check(venv_python, wheel, env, tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        shutil.rmtree(tmp_path / f"venv{minor}")


@pytest.mark.network
@pytest.mark.parametrize("name", RELEASES)
def test_uv_resolves_each_other_platforms_cell_to_its_pins(
    tmp_path: Path, name: str, built: dict[str, tuple[Path, CellMatrix]]
) -> None:
    wheel, matrix, minors = _cells(name, built)
    uv = celltools.find_uv()
    if uv is None:
        pytest.skip("no uv here")
    if minors == ["2.7"]:
        pytest.skip("uv does not resolve for Python 2")
    failures = _other_platforms(matrix, _strict(minors), "uv", lambda cell, want: celltools.uv_compile(
        uv, cell, wheel, tmp_path, env_without_index()))
    assert not failures, "\n".join(failures)


@pytest.mark.network
@pytest.mark.parametrize("name", RELEASES)
def test_pip_resolves_each_other_platforms_cell_to_its_pins(
    tmp_path: Path, name: str, built: dict[str, tuple[Path, CellMatrix]]
) -> None:
    wheel, matrix, minors = _cells(name, built)
    if minors == ["2.7"]:
        pytest.skip("this pip does not resolve for Python 2")
    failures = _other_platforms(matrix, _strict(minors), "pip", lambda cell, want: celltools.pip_resolve(
        cell, wheel, tmp_path, env_without_index()))
    assert not failures, "\n".join(failures)

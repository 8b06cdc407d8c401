"""The lock forms of one record agree, and real installers install each of them: pip from the
hashed requirements and from pylock.toml, uv from pylock.toml, all from a real pypiserver."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.pylock import Pylock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts import celltools
from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.cli import main
from stackmeta.resolve.matrix import CELLS_SECTION, CellMatrix, CellResult
from stackmeta.resolve.nearest import NearestSet
from stackmeta.resolve.venv import list_installed
from tests.pypiserver_fixture import (
    Server,
    env_without_index,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

# pip reads pylock.toml from 26.1, which runs on Python 3.10 and later: the synthetic release's
# Python is the one running the tests, so pip, uv and the record agree on the target
PYTHON = platform.python_version()
MINOR = ".".join(PYTHON.split(".")[:2])
PINS = {"alpha-lib": "1.0", "beta-lib": "2.0", "gamma-lib": "0.5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("pypiserver")
    with pypiserver(root) as srv:
        make_wheel(srv.packages, "alpha-lib", "1.0", requires=["beta-lib>=2"])
        make_wheel(srv.packages, "alpha-lib", "1.1", requires=["beta-lib>=2"])
        make_wheel(srv.packages, "beta-lib", "2.0")
        make_wheel(srv.packages, "gamma-lib", "0.5", requires_python=">=3.8")
        yield srv


@pytest.fixture(scope="module")
def locks(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    locks = tmp_path_factory.mktemp("locks")
    rel = synthetic_release([package(n, v) for n, v in PINS.items()], python=PYTHON)
    write_record(locks, rel)
    cache = tmp_path_factory.mktemp("cache")
    assert main(["check", "CMSSW_14_0_0", "--locks-dir", str(locks), "--index-url", server.simple,
                 "--cache-dir", str(cache), "--quiet"]) == 0
    assert main(["lock", "CMSSW_14_0_0", "--locks-dir", str(locks), "--quiet"]) == 0
    return locks


def _pins_of_requirements(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            name, _, version = line.split(" ")[0].partition("==")
            out[name] = version
    return out


def test_the_three_forms_agree(locks: Path) -> None:
    constraints = _pins_of_requirements(locks / "CMSSW_14_0_0.txt")
    hashed = _pins_of_requirements(locks / "CMSSW_14_0_0.hashes.txt")
    lock = Pylock.from_dict(tomllib.loads((locks / "pylock.CMSSW_14_0_0.toml").read_text()))
    pylocked = {str(p.name): str(p.version) for p in lock.packages}
    assert constraints == hashed == pylocked == PINS
    assert str(lock.requires_python) == f"=={MINOR}.*"
    assert [str(m) for m in lock.environments or ()] == [
        f'python_version == "{MINOR}" and sys_platform == "linux" and platform_machine == "x86_64"'
    ]
    # every hash in the pylock is the sha256 the index serves, and is in the hashed form too
    text = (locks / "CMSSW_14_0_0.hashes.txt").read_text()
    for pkg in lock.packages:
        for wheel in pkg.wheels or ():
            assert f"--hash=sha256:{wheel.hashes['sha256']}" in text


def _venv(tmp_path: Path) -> Path:
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    return env / "bin" / "python"


def _pip_install_lock(python: Path, lock: Path) -> None:
    """Real pip (ours, targeting the venv's *python*) installs the PEP 751 *lock*, offline."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "-q",
                    "-r", str(lock)], check=True, env=env_without_index())


def _installed(python: Path) -> dict[str, str]:
    dists = list_installed(str(python)).dists
    return {name: version for name, version in dists.items() if name not in ("pip", "setuptools")}


@pytest.mark.slow
def test_pip_installs_the_hashed_form(locks: Path, server: Server, tmp_path: Path) -> None:
    python = _venv(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--require-hashes",
         "--index-url", server.simple, "-q", "-r", str(locks / "CMSSW_14_0_0.hashes.txt")],
        check=True, env=env_without_index(),
    )
    assert _installed(python) == PINS


@pytest.mark.slow
def test_pip_installs_the_pylock(locks: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path)
    _pip_install_lock(python, locks / "pylock.CMSSW_14_0_0.toml")
    assert _installed(python) == PINS


@pytest.mark.slow
def test_uv_installs_the_pylock(locks: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.skip("uv is not installed in the test environment (pip install uv)")
    python = _venv(tmp_path)
    proc = subprocess.run(
        [uv, "pip", "install", "--preview-features", "pylock", "--no-cache", "--python", str(python),
         "-r", str(locks / "pylock.CMSSW_14_0_0.toml")],
        capture_output=True, text=True, env=env_without_index(),
    )
    assert proc.returncode == 0, proc.stderr
    assert _installed(python) == PINS


def test_lock_without_check_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_record(tmp_path, synthetic_release([package("alpha-lib", "1.0")]))
    assert main(["lock", "CMSSW_14_0_0", "--locks-dir", str(tmp_path), "--format", "pylock"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tmp_path / 'CMSSW_14_0_0.json'} has no check results (files and hashes): "
                   "run 'stackmeta check' first")
    assert not list(tmp_path.glob("pylock.*"))


def test_a_nearest_pin_without_files_writes_no_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CMSSW_9_3_0's nearest set moves pins to versions its check did not read: offline, the
    nearest pylock cannot be made, and the forms made before it are not written either."""
    real = Path(__file__).parents[2] / "locks" / "CMSSW_9_3_0.json"
    shutil.copy(real, tmp_path / real.name)
    assert main(["lock", "CMSSW_9_3_0", "--locks-dir", str(tmp_path), "--offline"]) == 1
    err = capsys.readouterr().err.strip()
    # the pins its check did not read: moved ones (futures 3.1.1 -> 3.0.5, ...), named in one line
    assert err.startswith("error: CMSSW_9_3_0: no files known for ") and "futures==3.0.5, " in err
    assert err.endswith(" of the nearest set: nothing was written; run without --offline, or "
                        "'stackmeta check' again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CMSSW_9_3_0.json"]


# -- the nearest pylock of a record resolved in cells ------------------------------------------

NEXT = (sys.version_info[0], sys.version_info[1] + 1)  # the next Python's cell moves alpha-lib


@pytest.fixture(scope="module")
def cells_locks(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A record resolved in two cells, this Python's and the next one's on linux-x86_64: alpha-lib
    is 1.0 (the release's) in this one and 1.1 in the next."""
    locks = tmp_path_factory.mktemp("cells-locks")
    rel = synthetic_release([package(n, v) for n, v in PINS.items()], python=PYTHON)
    path = write_record(locks, rel)
    assert main(["check", "CMSSW_14_0_0", "--locks-dir", str(locks), "--index-url", server.simple,
                 "--cache-dir", str(tmp_path_factory.mktemp("cache")), "--quiet"]) == 0
    results = []
    for python, alpha in ((sys.version_info[:2], "1.0"), (NEXT, "1.1")):
        cell = Cell(python=python, platform="linux-x86_64")
        pins = {**PINS, "alpha-lib": alpha}
        nearest = NearestSet(release=rel.release, python=Version(cell.python_version), platform=cell.platform,
                             index_url=server.simple, rule="test",
                             pins=tuple((canonicalize_name(n), Version(v)) for n, v in sorted(pins.items())))
        results.append(CellResult(cell=cell, nearest=nearest))
    matrix = CellMatrix(release=rel.release, index_url=server.simple, results=tuple(results))
    record.update_section(path, CELLS_SECTION, matrix.to_json())
    assert main(["lock", "CMSSW_14_0_0", "--locks-dir", str(locks), "--format", "pylock",
                 "--cache-dir", str(tmp_path_factory.mktemp("cache")), "--quiet"]) == 0
    return locks


def test_the_nearest_pylock_has_one_entry_per_cell_version(cells_locks: Path) -> None:
    lock = Pylock.from_dict(tomllib.loads((cells_locks / "pylock.CMSSW_14_0_0-nearest.toml").read_text()))
    entries = [(str(p.name), str(p.version), None if p.marker is None else str(p.marker))
               for p in lock.packages]
    above = f"{NEXT[0]}.{NEXT[1] + 1}"
    assert entries == [("alpha-lib", "1.0", f'python_version < "{NEXT[0]}.{NEXT[1]}"'),
                       ("alpha-lib", "1.1", f'python_version >= "{NEXT[0]}.{NEXT[1]}"'),
                       ("beta-lib", "2.0", None), ("gamma-lib", "0.5", None)]
    assert lock.requires_python == SpecifierSet(f">={MINOR},<{above}")
    assert [str(m) for m in lock.environments or ()] == [
        f'python_version == "{py}" and sys_platform == "linux" and platform_machine == "x86_64"'
        for py in (MINOR, f"{NEXT[0]}.{NEXT[1]}")
    ]
    # the faithful lock stays the release's
    faithful = Pylock.from_dict(tomllib.loads((cells_locks / "pylock.CMSSW_14_0_0.toml").read_text()))
    assert {str(p.name): str(p.version) for p in faithful.packages} == PINS


@pytest.mark.slow
def test_pip_installs_this_cells_pins_from_the_nearest_pylock(cells_locks: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path)
    _pip_install_lock(python, cells_locks / "pylock.CMSSW_14_0_0-nearest.toml")
    assert _installed(python) == PINS


@pytest.mark.slow
def test_uv_installs_the_next_cells_pins_from_the_nearest_pylock(cells_locks: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.skip("uv is not installed in the test environment (pip install uv)")
    found = celltools.python_for(f"{NEXT[0]}.{NEXT[1]}")
    if found is None:
        pytest.skip(f"no Python {NEXT[0]}.{NEXT[1]} on this machine")
    env = tmp_path / "env"
    subprocess.run([uv, "venv", "--no-cache", "-q", "--python", str(found), str(env)], check=True,
                   env=env_without_index())
    python = env / "bin" / "python"
    proc = subprocess.run(
        [uv, "pip", "install", "--preview-features", "pylock", "--no-cache", "--python", str(python),
         "-r", str(cells_locks / "pylock.CMSSW_14_0_0-nearest.toml")],
        capture_output=True, text=True, env=env_without_index(),
    )
    assert proc.returncode == 0, proc.stderr
    assert _installed(python) == {**PINS, "alpha-lib": "1.1"}

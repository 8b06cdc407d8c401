"""PEP 751 locks written by stackmeta, installed by the real pip and the real uv from a real
HTTP server on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import cast

import pytest
from packaging import tags
from packaging.markers import Environment, Marker
from packaging.pylock import PackageWheel, Pylock, PylockSelectError
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.cells import Cell
from stackmeta.check.report import CheckReport, FileInfo
from stackmeta.locks import forms as lockforms
from stackmeta.locks import pylock
from stackmeta.resolve.matrix import load_cells
from stackmeta.resolve.venv import list_installed
from stackmeta.target import platform_tags
from tests.httpserver import StaticServer
from tests.wheelfactory import build_project


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dists")
    build_project(work, "alpha-stack-demo", "1.0", requires=("beta-stack-demo>=2",))
    build_project(work, "beta-stack-demo", "2.0", sdist=True)
    return work / "dist"


def _lock(folder: Path, base: str) -> str:
    packages = []
    for name, version in (("alpha-stack-demo", "1.0"), ("beta-stack-demo", "2.0")):
        files = sorted(p for p in folder.iterdir() if p.name.startswith(name.replace("-", "_")))
        wheels = tuple(
            pylock.LockedFile(filename=p.name, url=f"{base}/{p.name}", sha256=_sha(p), size=p.stat().st_size)
            for p in files if p.suffix == ".whl"
        )
        sdists = [p for p in files if p.name.endswith(".tar.gz")]
        sdist = None if not sdists else pylock.LockedFile(
            filename=sdists[0].name, url=f"{base}/{sdists[0].name}", sha256=_sha(sdists[0]),
            size=sdists[0].stat().st_size)
        packages.append(pylock.LockedPackage(name=canonicalize_name(name), version=Version(version),
                                             wheels=wheels, sdist=sdist))
    lock = pylock.build(
        packages, created_by="stackmeta", requires_python=SpecifierSet(">=3.9"),
        environments=[Marker('sys_platform == "linux"')],
    )
    return pylock.dumps(lock)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _installed(python: Path) -> dict[str, str]:
    dists = list_installed(str(python)).dists
    return {name: version for name, version in dists.items() if name not in ("pip", "setuptools")}


def test_written_lock_is_valid_pep_751(dists: Path) -> None:
    import tomllib

    text = _lock(dists, "http://127.0.0.1:1")
    data = tomllib.loads(text)
    parsed = Pylock.from_dict(data)
    assert [str(p.name) for p in parsed.packages] == ["alpha-stack-demo", "beta-stack-demo"]
    assert data["lock-version"] == "1.0"
    assert data["created-by"] == "stackmeta"
    assert pylock.file_name("CMSSW_14_0_0") == "pylock.CMSSW_14_0_0.toml"


@pytest.mark.slow
def test_real_pip_installs_the_lock(dists: Path, tmp_path: Path) -> None:
    with StaticServer(dists) as server:
        base = server.url
        lock = tmp_path / pylock.file_name("demo")
        lock.write_text(_lock(dists, base))
        env = tmp_path / "env"
        venv.EnvBuilder(with_pip=False).create(env)
        python = env / "bin" / "python"
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
             "--disable-pip-version-check", "-q", "-r", str(lock)],
            check=True, capture_output=True, text=True,
        )
    assert _installed(python) == {"alpha-stack-demo": "1.0", "beta-stack-demo": "2.0"}


@pytest.mark.slow
def test_real_uv_installs_the_lock(dists: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    if uv is None:
        pytest.skip("uv is not installed in the test environment (pip install uv)")
    with StaticServer(dists) as server:
        base = server.url
        lock = tmp_path / pylock.file_name("demo")
        lock.write_text(_lock(dists, base))
        env = tmp_path / "env"
        venv.EnvBuilder(with_pip=False).create(env)
        python = env / "bin" / "python"
        proc = subprocess.run(
            [uv, "pip", "install", "--preview-features", "pylock", "--no-cache",
             "--python", str(python), "-r", str(lock)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr
    assert _installed(python) == {"alpha-stack-demo": "1.0", "beta-stack-demo": "2.0"}


def test_legacy_source_names_become_archives() -> None:
    """Real old sdists (functools32 3.2.3-2 of CMSSW_9_3_0, prettytable's .tar.bz2) have names
    PEP 751 cannot list as an sdist: alone they are written as an archive; beside wheels,
    they are left out (PEP 751 allows an archive only alone)."""
    import tomllib

    legacy = pylock.LockedFile(filename="functools32-3.2.3-2.tar.gz", url="https://x/functools32-3.2.3-2.tar.gz",
                               sha256="0" * 64, size=31171)
    bz2 = pylock.LockedFile(filename="prettytable-0.7.2.tar.bz2", url="https://x/prettytable-0.7.2.tar.bz2",
                            sha256="1" * 64)
    wheel = pylock.LockedFile(filename="prettytable-0.7.2-py2-none-any.whl", url="https://x/p.whl",
                              sha256="2" * 64)
    lock = pylock.build(
        [pylock.LockedPackage(name=canonicalize_name("functools32"), version=Version("3.2.3.post2"),
                              sdist=legacy),
         pylock.LockedPackage(name=canonicalize_name("prettytable"), version=Version("0.7.2"), sdist=bz2,
                              wheels=(wheel,))],
        created_by="stackmeta", requires_python=None, environments=None,
    )
    data = tomllib.loads(pylock.dumps(lock))
    functools32, prettytable = data["packages"]
    assert functools32["archive"] == {"url": "https://x/functools32-3.2.3-2.tar.gz", "size": 31171,
                                      "hashes": {"sha256": "0" * 64}}
    assert "sdist" not in functools32
    assert "sdist" not in prettytable and "archive" not in prettytable
    assert [w["name"] for w in prettytable["wheels"]] == ["prettytable-0.7.2-py2-none-any.whl"]


# -- the nearest pylock of a record resolved in cells (issue 12) ------------------------------

LOCKS = Path(__file__).parents[2] / "locks"
# the records in cells whose lock forms are committed (the current releases': README, locks/)
IN_CELLS = sorted(p.stem for p in LOCKS.glob("*.json") if '"cells":' in p.read_text()
                  and (LOCKS / pylock.file_name(f"{p.stem}-nearest")).exists())


def _cell_tags(cell: Cell) -> list[Tag]:
    """The wheel tags an installer of *cell* accepts, best first, from ``packaging.tags`` (the
    platform tags stackmeta gives pip's --platform for it)."""
    major, minor = cell.python
    # CPython before 3.8 has the pymalloc ABI flag (cp36m), as pip's own tags say
    abis = (["cp27mu", "cp27m"] if major == 2 else [f"cp{major}{minor}m"] if (major, minor) < (3, 8)
            else [f"cp{major}{minor}"])
    plats = list(platform_tags(cell.platform))
    return [*tags.cpython_tags(cell.python, abis, plats),
            *tags.compatible_tags(cell.python, f"cp{major}{minor}", plats)]


def _environment(cell: Cell) -> Environment:
    return cast(Environment, cell.target.environment())


def _nearest_lines(path: Path) -> set[tuple[str, str, str | None]]:
    """(name, version, marker) of each requirement line of a .nearest.txt."""
    out = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            out.add((str(req.name), spec.version, None if req.marker is None else str(req.marker)))
    return out


@pytest.mark.parametrize("name", IN_CELLS)
def test_nearest_pylock_carries_the_cells(name: str) -> None:
    """The committed nearest pylock of a record resolved in cells (CMSSW_9_3_0, CMSSW_10_6_0-py2)
    has exactly the lines of its .nearest.txt, and the PEP 751 selection pip runs (packaging's
    ``Pylock.select``) gives each cell exactly its nearest set, each from a file that cell can
    install; outside every cell the lock is refused."""
    import tomllib

    matrix = load_cells(LOCKS, name)
    assert matrix is not None and matrix.resolved
    lock = Pylock.from_dict(tomllib.loads((LOCKS / pylock.file_name(f"{name}-nearest")).read_text()))
    entries = {(str(p.name), str(p.version), None if p.marker is None else str(p.marker))
               for p in lock.packages}
    assert len(entries) == len(lock.packages)
    assert entries == _nearest_lines(LOCKS / f"{name}.nearest.txt")
    assert lock.requires_python is not None
    for r in matrix.resolved:
        assert r.nearest is not None
        env = _environment(r.cell)
        # the markers of one name are disjoint: at most one entry of it holds in the cell
        held = [str(p.name) for p in lock.packages if p.marker is None or p.marker.evaluate(dict(env))]
        assert len(held) == len(set(held)), r.cell.name
        assert lock.requires_python.contains(r.cell.target.python_full)
        assert sum(m.evaluate(dict(env)) for m in lock.environments or ()) == 1, r.cell.name
        chosen = list(lock.select(environment=env, tags=_cell_tags(r.cell)))
        assert {str(p.name): str(p.version) for p, _ in chosen} == \
            {str(n): str(v) for n, v in r.nearest.pins}, r.cell.name
        for p, dist in chosen:  # a wheel this cell takes, else the package's only source
            if isinstance(dist, PackageWheel):
                assert r.cell.target.wheel_rank(dist.filename) is not None, (r.cell.name, dist.filename)
            else:
                assert not [w for w in p.wheels or () if r.cell.target.wheel_rank(w.filename) is not None]
    outside = Cell(python=matrix.cells[0].python, platform="linux-ppc64le")
    with pytest.raises(PylockSelectError, match="does not satisfy any of the environments"):
        list(lock.select(environment=_environment(outside), tags=_cell_tags(outside)))


def _files_of(lock: Pylock) -> lockforms.FileLookup:
    """The files a pylock lists, as an index lookup would give them (pure: no index is read)."""
    known: dict[tuple[str, str], list[FileInfo]] = {}
    for p in lock.packages:
        files = known.setdefault((str(p.name), str(p.version)), [])
        for w in p.wheels or ():
            assert w.name is not None and w.url is not None
            files.append(FileInfo(filename=w.name, url=w.url, sha256=w.hashes["sha256"], size=w.size,
                                  kind="wheel", usable=False))
        for s in (p.sdist, p.archive):
            if s is not None and s.url is not None:
                files.append(FileInfo(filename=s.url.rsplit("/", 1)[1], url=s.url, sha256=s.hashes["sha256"],
                                      size=s.size, kind="sdist", usable=False))

    def lookup(name: NormalizedName, version: Version) -> list[FileInfo] | None:
        return known.get((str(name), str(version)))

    return lookup


@pytest.mark.parametrize("name", IN_CELLS)
def test_lock_writes_the_nearest_pylock_of_the_cells(name: str, tmp_path: Path) -> None:
    """``stackmeta lock`` writes the committed nearest pylock again from the record, offline: the
    files of the versions the check did not read come from an index page, here the committed
    lock's own list of them."""
    import tomllib

    committed = (LOCKS / pylock.file_name(f"{name}-nearest")).read_text()
    doc, rel = record.load(LOCKS, name)
    matrix = load_cells(LOCKS, name)
    assert matrix is not None
    checked = lockforms.report_lookup(CheckReport.from_json(doc["check"]))
    lookup = lockforms.chain(checked, _files_of(Pylock.from_dict(tomllib.loads(committed))))
    created_by = tomllib.loads(committed)["created-by"]
    text, missing = lockforms.cells_pylock_text(rel, matrix, lookup, created_by=created_by)
    assert missing == []
    assert text == committed

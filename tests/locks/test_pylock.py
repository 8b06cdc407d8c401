"""PEP 751 locks written by stackmeta, installed by the real pip and the real uv from a real
HTTP server on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.pylock import Pylock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.locks import pylock
from stackmeta.resolve.venv import list_installed
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

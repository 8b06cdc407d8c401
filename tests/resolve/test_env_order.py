"""``stackmeta env`` installs the plan whatever the order: one ``pip install --no-deps`` of the
exact pins. On a real pypiserver, two packages whose own requirements pull two different
versions of a shared package: installed with their dependencies one after the other, the one
installed last decides the shared version; ``env`` ends with exactly the plan's versions, and
so does the same install with the requirement lines in another order."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import virtualenv
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.resolve import venv
from tests.clirunner import run_cli
from tests.pypiserver_fixture import (
    env_without_index,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

RELEASE = "CMSSW_9_3_0"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}.1"  # the running Python's minor: found
# the release ships sharedlib 1.5; leftlib's and rightlib's own requirements want 1.0 and 2.0,
# which their sdists (core metadata 2.1: Requires-Dist not authoritative) do not tell before a build
PINS = {"leftlib": "1.0", "rightlib": "1.0", "sharedlib": "1.5"}
WANTS = {"leftlib": "sharedlib==1.0", "rightlib": "sharedlib==2.0"}


def legacy_sdist(folder: Path, name: str, version: str, requires: str) -> None:
    """An sdist as setuptools wrote them before Metadata 2.2: its PKG-INFO lists no
    Requires-Dist, its setup.py requires *requires*."""
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        "setup.py": (f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                     f"packages=[{name!r}], install_requires=[{requires!r}])\n").encode(),
        f"{name}/__init__.py": f"__version__ = {version!r}\n".encode(),
    }
    with tarfile.open(folder / f"{name}-{version}.tar.gz", "w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pypiserver(tmp_path_factory.mktemp("server")) as server:
        for version in ("1.0", "1.5", "2.0"):
            make_wheel(server.packages, "sharedlib", version)
        for name, requires in WANTS.items():
            legacy_sdist(server.packages, name, "1.0", requires)
        # pip builds sdists in isolation, with setuptools and wheel from the index
        embed = Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed"
        for wheel in ("setuptools-67.6.1-py3-none-any.whl", "wheel-0.40.0-py3-none-any.whl"):
            shutil.copy(embed / wheel, server.packages)
        yield server.simple


def installed(dest: Path) -> dict[str, str]:
    listed = subprocess.run([dest / "bin/python", "-m", "pip", "list", "--format=json"],
                            env=env_without_index(), capture_output=True, text=True, check=True)
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)
            if p["name"] not in ("pip", "setuptools", "wheel")}


def one_after_the_other(dest: Path, index: str, order: list[str]) -> dict[str, str]:
    """Each package installed with its dependencies, one pip call each, in *order*."""
    venv.create(dest, venv.interpreter(sys.executable))
    env = {**env_without_index(), "PIP_INDEX_URL": index}
    for name in order:
        subprocess.run([dest / "bin/python", "-m", "pip", "install", "--no-input", f"{name}=={PINS[name]}"],
                       env=env, capture_output=True, text=True, check=True)
    return installed(dest)


@pytest.mark.slow
def test_env_installs_the_plan_whatever_the_order(index: str, tmp_path: Path) -> None:
    # what makes order matter: with their dependencies, the one installed last decides sharedlib
    assert one_after_the_other(tmp_path / "lr", index, ["leftlib", "rightlib"])["sharedlib"] == "2.0"
    assert one_after_the_other(tmp_path / "rl", index, ["rightlib", "leftlib"])["sharedlib"] == "1.0"

    locks = tmp_path / "locks"
    locks.mkdir()
    write_record(locks, synthetic_release([package(n, v) for n, v in PINS.items()], release=RELEASE,
                                          python=PYTHON))
    # --no-build: their dependencies are unknown before a build, taken as none (a build would
    # see the clash and move sharedlib)
    code, out, err = run_cli("resolve", RELEASE, "--platform", "linux-x86_64", "--index-url", index,
                             "--locks-dir", str(locks), "--cache-dir", str(locks / "cache"), "--json",
                             "--no-build")
    assert code == 0, err
    assert json.loads(out)["pins"] == PINS

    # --no-build: the sdists are not built to read their real requirements (else the plan would
    # see the clash and move sharedlib), so pip alone sees them
    dest = tmp_path / "env"
    code, out, err = run_cli("env", RELEASE, str(dest), "--no-build", "--locks-dir", str(locks),
                             "--cache-dir", str(locks / "cache"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["plan"]["pins"] == PINS
    assert installed(dest) == PINS
    # and pip check says what the sdists' real requirements think of it
    assert sorted(result["pip_check"]) == [
        "leftlib 1.0 has requirement sharedlib==1.0, but you have sharedlib 1.5.",
        "rightlib 1.0 has requirement sharedlib==2.0, but you have sharedlib 1.5.",
    ]
    written = (dest / "stackmeta-pins.txt").read_text().splitlines()
    assert written[1:] == [f"{n}=={v}" for n, v in PINS.items()]

    # the same pins with the requirement lines in another order: the same environment
    pins = {canonicalize_name(n): Version(v) for n, v in PINS.items()}
    permuted = tmp_path / "permuted"
    have = venv.make(permuted, venv.interpreter(sys.executable), pins=pins,
                     pins_file_text="\n".join([written[0], *reversed(written[1:])]) + "\n",
                     index_url=index, record={"made_by": "test"}, env=env_without_index())
    assert {n: v for n, v in have.items() if n in pins} == PINS
    assert installed(permuted) == PINS

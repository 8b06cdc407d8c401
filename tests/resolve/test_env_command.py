"""stackmeta env end to end: tiny real wheels on a real pypiserver, the release's nearest set
resolved by the real resolver, virtualenvs made and filled by the real pip, and
``stackmeta diff --env`` run against them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import virtualenv
from packaging.version import Version

from stackmeta.resolve.venv import find_python
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

# what the index has: name -> {version: Requires-Dist}
INDEX = {
    "numlib": {"1.11.0": [], "1.12.1": [], "1.13.3": [], "1.14.0": []},
    "scilib": {"0.19.0": ["numlib>=1.8.2"]},
    "sixlib": {"1.10.0": []},
    "theanolib": {
        "0.8.2": ["numlib>=1.7.1", "scilib>=0.11", "sixlib>=1.9.0"],
        "0.9.0": ["numlib>=1.9.1", "scilib>=0.14", "sixlib>=1.9.0"],
        "1.0.0": ["numlib>=1.13.3", "scilib>=0.14", "sixlib>=1.9.0"],
    },
}
PINS = {"numlib": "1.12.1", "scilib": "0.19.0", "sixlib": "1.10.0", "theanolib": "0.8.2"}


def failing_sdist(folder: Path) -> None:
    """oraclelib 1.0: an sdist whose build fails, as cx-Oracle's does without Oracle."""
    files = {
        "PKG-INFO": b"Metadata-Version: 2.1\nName: oraclelib\nVersion: 1.0\n",
        "setup.py": b"raise SystemExit('error: cannot locate an Oracle software installation')\n",
    }
    with tarfile.open(folder / "oraclelib-1.0.tar.gz", "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"oraclelib-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pypiserver(tmp_path_factory.mktemp("server")) as server:
        for name, versions in INDEX.items():
            for version, requires in versions.items():
                make_wheel(server.packages, name, version, requires)
        failing_sdist(server.packages)
        # pip builds sdists in isolation, with setuptools and wheel from the index: the ones
        # virtualenv carries (setuptools 67.6.1, wheel 0.40.0)
        embed = Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed"
        for wheel in ("setuptools-67.6.1-py3-none-any.whl", "wheel-0.40.0-py3-none-any.whl"):
            shutil.copy(embed / wheel, server.packages)
        yield server.simple


@pytest.fixture(scope="module")
def locks(index: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release record written through stackmeta.record, its nearest set by 'stackmeta resolve'."""
    folder = tmp_path_factory.mktemp("locks")
    write_record(folder, synthetic_release([package(n, v) for n, v in PINS.items()], release=RELEASE,
                                           python=PYTHON))
    code, out, err = run_cli("resolve", RELEASE, "--platform", "linux-x86_64", "--index-url", index,
                               "--locks-dir", str(folder),
                               "--cache-dir", str(folder / "cache"), "--json")
    assert code == 0, err
    assert json.loads(out)["pins"] == PINS  # the release is consistent: its nearest set is itself
    return folder


def installed(venv: Path) -> dict[str, str]:
    listed = subprocess.run([venv / "bin/python", "-m", "pip", "list", "--format=json"],
                            env=env_without_index(), capture_output=True, text=True, check=True)
    return {p["name"]: p["version"] for p in json.loads(listed.stdout)
            if p["name"] not in ("pip", "setuptools", "wheel")}


def env_cmd(locks: Path, *argv: str) -> tuple[int, str, str]:
    return run_cli("env", RELEASE, *argv, "--locks-dir", str(locks), "--cache-dir", str(locks / "cache"))


@pytest.mark.slow
def test_an_override_that_fits_then_one_that_does_not(locks: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    record_before = (locks / f"{RELEASE}.json").read_bytes()
    lock_before = (locks / f"{RELEASE}.nearest.txt").read_bytes()

    # 1. an override that fits: the environment holds the set with it, and says so
    fits = tmp_path / "fits"
    code, out, err = env_cmd(locks, str(fits), "--override", "theanolib==0.9.0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["created"] is True and result["pip_check"] == []
    assert result["plan"]["moves"] == []
    planned = {**PINS, "theanolib": "0.9.0"}
    assert result["plan"]["pins"] == planned
    assert installed(fits) == planned
    made = json.loads((fits / "stackmeta-env.json").read_text())
    assert (made["release"], made["overrides"], made["additions"], made["moves"]) == (
        RELEASE, {"theanolib": "0.9.0"}, [], [])
    assert made["pins"] == planned
    assert made["record"]["path"] == str((locks / f"{RELEASE}.json").absolute())

    # 'stackmeta diff RELEASE --env' inside it shows exactly the override
    monkeypatch.setenv("VIRTUAL_ENV", str(fits))
    code, out, err = run_cli("diff", RELEASE, "--env", "--locks-dir", str(locks), "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert diff["upgraded"] == [{"name": "theanolib", "old": "0.8.2", "new": "0.9.0"}]
    assert diff["added"] == diff["removed"] == diff["downgraded"] == []
    assert diff["deviations"] == {"added": ["theanolib 0.8.2 -> 0.9.0: theanolib==0.9.0"], "removed": []}
    assert diff["new"].endswith(f"(stackmeta env: {RELEASE} with theanolib==0.9.0)")
    assert diff["old"] == f"{RELEASE} (nearest consistent set)"
    monkeypatch.delenv("VIRTUAL_ENV")

    # 2. an override that does not fit: the pins that would move, and nothing created
    moved = tmp_path / "moved"
    code, out, err = env_cmd(locks, str(moved), "--override", "theanolib==1.0.0")
    assert code == 1
    assert err.splitlines()[-1] == (
        "error: theanolib==1.0.0 needs: numlib 1.12.1 -> 1.13.3 (theanolib 1.0.0 requires numlib>=1.13.3): "
        "nothing was created; pass --allow-moves to make the environment with these moves, or choose "
        "other versions")
    assert "  move      numlib 1.12.1 -> 1.13.3 (theanolib 1.0.0 requires numlib>=1.13.3)" in out
    assert not moved.exists()

    # 3. the same with --allow-moves: created, the moves recorded
    code, out, err = env_cmd(locks, str(moved), "--override", "theanolib==1.0.0", "--allow-moves")
    assert code == 0, err
    assert installed(moved) == {**PINS, "theanolib": "1.0.0", "numlib": "1.13.3"}
    made = json.loads((moved / "stackmeta-env.json").read_text())
    assert made["allow_moves"] is True
    assert made["moves"] == [{"name": "numlib", "from": "1.12.1", "to": "1.13.3",
                              "reason": "theanolib 1.0.0 requires numlib>=1.13.3"}]

    # the lock and the record are never changed
    assert (locks / f"{RELEASE}.json").read_bytes() == record_before
    assert (locks / f"{RELEASE}.nearest.txt").read_bytes() == lock_before


def test_dry_run_prints_the_plan_and_creates_nothing(locks: Path, tmp_path: Path) -> None:
    code, out, err = env_cmd(locks, str(tmp_path / "dry"), "--override", "theanolib==1.0.0",
                             "--allow-moves", "--dry-run")
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "  override  theanolib 0.8.2 -> 1.0.0",
        "  move      numlib 1.12.1 -> 1.13.3 (theanolib 1.0.0 requires numlib>=1.13.3)",
        f"dry run: would create {tmp_path / 'dry'} with 4 packages for {out.split(' for ')[-1].strip()}",
    ]
    assert not (tmp_path / "dry").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--override", "theanolib>=0.9"],
     "error: --override 'theanolib>=0.9': write NAME==VERSION, e.g. --override Theano==0.9.0"),
    (["--override", "nosuchlib==1.0"],
     "error: --override nosuchlib==1.0: no project nosuchlib on {index} that pip could install for "
     "Python {python} on linux-x86_64: check the name"),
    (["--override", "theanolib==0.9.5"],
     "error: --override theanolib==0.9.5: theanolib 0.9.5 is not on {index} in a form pip could install "
     "for Python {python} on linux-x86_64; nearest there: 0.9.0, 1.0.0, 0.8.2"),
    (["--add", "nosuchlib"],
     "error: --add nosuchlib: no project nosuchlib on {index} that pip could install for Python {python} "
     "on linux-x86_64: check the name"),
])
def test_bad_input_is_one_line_and_creates_nothing(locks: Path, index: str, tmp_path: Path,
                                                   argv: list[str], message: str) -> None:
    dest = tmp_path / "env"
    code, _, err = env_cmd(locks, str(dest), *argv)
    python = ".".join(str(p) for p in sys.version_info[:3])
    assert code != 0
    assert err.splitlines()[-1] == message.format(index=index.rstrip("/"), python=python)
    assert not dest.exists()


def test_a_folder_that_is_not_empty_is_refused(locks: Path, tmp_path: Path) -> None:
    dest = tmp_path / "full"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    code, _, err = env_cmd(locks, str(dest), "--override", "theanolib==0.9.0")
    assert code == 2
    assert err.strip() == (
        f"error: {dest} exists and is not an empty folder: give a new folder for the environment")
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]


def test_a_release_of_another_python_points_to_python(locks: Path, tmp_path: Path) -> None:
    other = tmp_path / "locks"
    other.mkdir()
    write_record(other, synthetic_release([package(n, v) for n, v in PINS.items()], release=RELEASE,
                                          python="2.5.6"))
    (other / f"{RELEASE}.json").write_text(
        json.dumps({**json.loads((other / f"{RELEASE}.json").read_text()),
                    "consistent": json.loads((locks / f"{RELEASE}.json").read_text())["consistent"]}))
    code, _, err = run_cli("env", RELEASE, str(tmp_path / "env"), "--locks-dir", str(other))
    running = ".".join(str(p) for p in sys.version_info[:3])
    assert code == 2
    assert err.strip() == (
        f"error: {RELEASE} is a Python 2.5.6 stack and stackmeta runs on Python {running}; no Python 2.5 "
        "found (python2.5 on PATH, ~/.pyenv/versions/2.5.*): install one and pass --python PATH")


def with_oraclelib(index: str, tmp_path: Path) -> Path:
    """A record whose set holds oraclelib 1.0 (its nearest set resolved with --no-build: the sdist
    counts as installable there)."""
    locks = tmp_path / "locks"
    locks.mkdir()
    write_record(locks, synthetic_release([package(n, v) for n, v in {**PINS, "oraclelib": "1.0"}.items()],
                                          release=RELEASE, python=PYTHON))
    code, _, err = run_cli("resolve", RELEASE, "--platform", "linux-x86_64", "--index-url", index,
                             "--locks-dir", str(locks), "-q", "--no-build",
                             "--cache-dir", str(locks / "cache"))
    assert code == 0, err
    return locks


@pytest.mark.slow
def test_a_pin_the_cell_cannot_install_is_left_out_up_front_with_its_reason(index: str,
                                                                           tmp_path: Path) -> None:
    locks = with_oraclelib(index, tmp_path)
    dest = tmp_path / "env"
    code, out, err = env_cmd(locks, str(dest), "--override", "theanolib==0.9.0", "--dry-run")
    assert code == 0, err
    cell = f"{sys.version_info.major}.{sys.version_info.minor}-linux-x86_64"
    reason = ("no wheel for this cell; its sdist does not build: error: cannot locate an Oracle software "
              "installation")
    assert out.splitlines()[1:3] == [
        f"  1 left out: this cell cannot install them (judged by sdist builds for {cell})",
        f"  left out  oraclelib 1.0: {reason}",
    ]
    code, out, err = env_cmd(locks, str(dest), "--override", "theanolib==0.9.0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["cell"], result["installable_by"]) == (cell, f"sdist builds for {cell}")
    assert result["plan"]["left_out"] == [
        {"name": "oraclelib", "version": "1.0", "reason": reason, "by": "env"}]
    assert installed(dest) == {**PINS, "theanolib": "0.9.0"}
    made = json.loads((dest / "stackmeta-env.json").read_text())
    python = ".".join(str(p) for p in sys.version_info[:3])
    assert made["deviations"] == ["theanolib 0.8.2 -> 0.9.0: theanolib==0.9.0",
                                  f"oraclelib left out: Python {python} on linux-x86_64 cannot install it"]


@pytest.mark.slow
def test_a_pin_pip_cannot_build_is_named_and_nothing_is_left(index: str, tmp_path: Path) -> None:
    locks = with_oraclelib(index, tmp_path)
    dest = tmp_path / "env"
    code, _, err = env_cmd(locks, str(dest), "--override", "theanolib==0.9.0", "--no-build")
    assert code == 1
    assert err.splitlines()[-1] == (
        f"error: pip install into {dest} failed (exit 1): oraclelib==1.0: error: cannot locate an Oracle "
        "software installation; install what oraclelib needs to build, or leave it out with --exclude "
        "oraclelib; nothing was created")
    assert not dest.exists()


PY27 = Path.home() / ".pyenv/versions/2.7.18/bin/python"
# pins of CMSSW_9_3_0 a plain machine cannot build (they need ROOT, curl-config, a compiler): the
# record's 2.7-linux-x86_64 cell leaves them out, so the environment does, without --exclude
NEEDS_SYSTEM_SOFTWARE = ("pycurl", "root-numpy", "rootpy")


@pytest.mark.network
def test_theano_0_9_0_on_cmssw_9_3_0_from_pypi(tmp_path: Path) -> None:
    """The real case: CMSSW_9_3_0 (Python 2.7) with Theano 0.9.0, from the real PyPI (~2 minutes)."""
    if not PY27.exists():
        pytest.skip(f"no Python 2.7 interpreter at {PY27}")
    repo_locks = Path(__file__).resolve().parents[2] / "locks"
    locks = tmp_path / "locks"
    locks.mkdir()
    for suffix in (".json", ".txt"):
        (locks / f"{RELEASE}{suffix}").write_bytes((repo_locks / f"{RELEASE}{suffix}").read_bytes())
    cache = str(tmp_path / "cache")
    if "consistent" not in json.loads((locks / f"{RELEASE}.json").read_text()):
        code, _, err = run_cli("resolve", RELEASE, "--platform", "linux-x86_64", "--locks-dir", str(locks),
                               "--cache-dir", cache, "-q")
        assert code == 0, err
    dest = tmp_path / "theano"
    options = ["--python", str(PY27), "--locks-dir", str(locks), "--cache-dir", cache, "--json"]
    code, out, err = run_cli("env", RELEASE, str(dest), "--override", "Theano==0.9.0", *options)
    assert code == 0, err
    result = json.loads(out)
    assert result["created"] is True
    assert set(NEEDS_SYSTEM_SOFTWARE) <= {lo["name"] for lo in result["plan"]["left_out"]}
    assert result["plan"]["moves"] == []  # Theano 0.9.0 fits the rest of CMSSW_9_3_0
    have = installed(dest)
    assert have["Theano"] == "0.9.0"
    theano = subprocess.run([dest / "bin/python", "-c", "import theano; print(theano.__version__)"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert theano.stdout.strip() == "0.9.0", theano.stderr
    env = {**os.environ, "VIRTUAL_ENV": str(dest)}
    diff = subprocess.run([sys.executable, "-m", "stackmeta", "diff", RELEASE, "--env",
                           "--locks-dir", str(locks), "--json"], capture_output=True, text=True, env=env)
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    assert {"name": "theano", "old": "0.8.2", "new": "0.9.0"} in changes["upgraded"]
    assert "theano 0.8.2 -> 0.9.0: Theano==0.9.0" in changes["deviations"]["added"]


def test_python_is_found_on_path_by_the_releases_minor(tmp_path: Path) -> None:
    running = sys.version_info
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{running.major}.{running.minor}").symlink_to(sys.executable)
    found = find_python(RELEASE, Version(f"{running.major}.{running.minor}.0"), None,
                        search_path=str(bin_dir), pyenv_root=tmp_path / "no-pyenv")
    assert found.path == bin_dir / f"python{running.major}.{running.minor}"
    assert found.version == Version(".".join(str(p) for p in running[:3]))


def test_python_of_another_minor_is_used_when_given_with_a_warning(locks: Path, tmp_path: Path) -> None:
    other = tmp_path / "locks"
    other.mkdir()
    write_record(other, synthetic_release([package(n, v) for n, v in PINS.items()], release=RELEASE,
                                          python="3.5.2"))
    (other / f"{RELEASE}.json").write_text(
        json.dumps({**json.loads((other / f"{RELEASE}.json").read_text()),
                    "consistent": json.loads((locks / f"{RELEASE}.json").read_text())["consistent"]}))
    code, out, err = run_cli("env", RELEASE, str(tmp_path / "env"), "--locks-dir", str(other),
                               "--python", sys.executable, "--dry-run")
    running = ".".join(str(p) for p in sys.version_info[:3])
    assert code == 0, err
    assert err.splitlines()[0] == (
        f"warning: {RELEASE} is a Python 3.5.2 stack; --python {Path(sys.executable).absolute()} is Python "
        f"{running}: the set is checked again for it, and may not fit")
    assert "  no overrides, additions or exclusions: the set as it is" in out
    assert not (tmp_path / "env").exists()


@pytest.mark.slow
def test_with_a_cells_section_the_cells_own_set_and_its_omissions_are_used(index: str,
                                                                          tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    write_record(locks, synthetic_release([package(n, v) for n, v in {**PINS, "oraclelib": "1.0"}.items()],
                                          release=RELEASE, python=PYTHON))
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    code, _, err = run_cli("resolve", RELEASE, "--newest-python", minor, "--index-url", index,
                           "--locks-dir", str(locks), "-q", "--cache-dir", str(locks / "cache"))
    assert code == 0, err
    cell = json.loads((locks / f"{RELEASE}.json").read_text())["cells"]["cells"][f"{minor}-linux-x86_64"]
    [omission] = cell["nearest"]["omissions"]
    assert omission["name"] == "oraclelib"
    # a cache without the builds: the cell's set is used as it is, nothing is built again
    code, out, err = run_cli("env", RELEASE, str(tmp_path / "env"), "--override", "theanolib==0.9.0",
                             "--dry-run", "--json", "--locks-dir", str(locks),
                             "--cache-dir", str(tmp_path / "fresh-cache"))
    assert code == 0, err
    result = json.loads(out)
    assert result["installable_by"] == f"the record's cells section ({minor}-linux-x86_64)"
    assert result["plan"]["left_out"] == [
        {"name": "oraclelib", "version": "1.0", "reason": omission["reason"], "by": "resolve"}]
    assert result["plan"]["pins"] == {**PINS, "theanolib": "0.9.0"}
    assert not (tmp_path / "fresh-cache" / "builds").exists()

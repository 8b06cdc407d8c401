"""Cells, installability by building, and the one wheel with markers, proven with real parts:
real sdists built through PEP 517 (in-tree backends: no build requirement, so no index is needed
for the builds), a real pypiserver on loopback, the real resolver, and real pip in fresh venvs
of two Python versions installing the built metapackage.

The synthetic release (Python 3.9; cells 3.9 and 3.10 x the five laptop platforms):
- puresdist 1.0: an sdist only, pure Python: built, installable, kept everywhere;
- curlish 7.45.2: an sdist only whose build fails ("Could not run curl-config"); 7.45.3 has a
  wheel: moved there, the backend's line as the reason;
- ccish 1.0: an sdist only that needs a C compiler (none while building): moved to 1.1 (wheel);
- numish 1.24.3: wheels for cp39 only: kept in the 3.9 cells, moved to 1.26.0 in the 3.10 ones;
- nomac 2.0: wheels for Linux and Windows only, at every version: left out on macOS;
- plain 1.0: a pure wheel: one plain line.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from stackmeta import cells as laptop_cells
from stackmeta import record
from stackmeta.cells import Cell, cells_for
from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.package import builder, metapackage
from stackmeta.resolve.cells import resolve_cells
from tests.clirunner import run_cli
from tests.pypiserver_fixture import (
    env_without_index,
    make_wheel,
    package,
    pypiserver,
    synthetic_release,
    write_record,
)

PYTHONS = {v: Path.home() / f".pyenv/versions/{full}/bin/python" for v, full in
           (("3.9", "3.9.18"), ("3.10", "3.10.13"))}
PLATFORM_TAGS = {"linux-x86_64": "manylinux2014_x86_64", "linux-aarch64": "manylinux2014_aarch64",
                 "macos-x86_64": "macosx_10_9_x86_64", "macos-arm64": "macosx_11_0_arm64",
                 "windows-amd64": "win_amd64"}

BACKEND = '''
import os, subprocess, time, zipfile, base64, hashlib

NAME, VERSION, MODE = {name!r}, {version!r}, {mode!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if os.environ.get("STACKMETA_TEST_BUILD_LOG"):  # tests that count builds, and make them slow
        with open(os.environ["STACKMETA_TEST_BUILD_LOG"], "a") as log:
            log.write("%s-%s %d\\n" % (NAME, VERSION, os.getpid()))
        time.sleep(float(os.environ.get("STACKMETA_TEST_BUILD_SLEEP", "0")))
    if MODE == "curl":
        raise RuntimeError("Could not run curl-config: [Errno 2] No such file or directory: 'curl-config'")
    if MODE == "cc":
        subprocess.check_call([os.environ.get("CC", "cc"), "-c", "ext.c"])
    if MODE == "versioneer":  # an old versioneer.py, as Theano 1.0.5's: gone from Python 3.12
        import configparser
        configparser.SafeConfigParser
    dist = NAME.replace("-", "_")
    info = dist + "-" + VERSION + ".dist-info"
    files = {{
        dist + "/__init__.py": "__version__ = %r\\n" % VERSION,
        info + "/METADATA": "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION),
        info + "/WHEEL": ("Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\n"
                          "Tag: py3-none-any\\n"),
    }}
    lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        lines.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
    files[info + "/RECORD"] = "\\n".join(lines + [info + "/RECORD,,"]) + "\\n"
    filename = dist + "-" + VERSION + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return filename
'''


def make_sdist(folder: Path, name: str, version: str, mode: str = "pure") -> Path:
    """A real sdist with an in-tree PEP 517 backend (build requirements: none)."""
    base = f"{name}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": textwrap.dedent('''
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
        '''),
        "backend.py": BACKEND.format(name=name, version=version, mode=mode),
        "ext.c": "int f(void) { return 0; }\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base}.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


def fill(packages: Path) -> None:
    make_sdist(packages, "puresdist", "1.0")
    make_sdist(packages, "curlish", "7.45.2", mode="curl")
    make_wheel(packages, "curlish", "7.45.3")
    make_sdist(packages, "ccish", "1.0", mode="cc")
    make_wheel(packages, "ccish", "1.1")
    for plat in PLATFORM_TAGS.values():
        make_wheel(packages, "numish", "1.24.3", tag=f"cp39-cp39-{plat}")
        for py in ("cp39", "cp310"):
            make_wheel(packages, "numish", "1.26.0", tag=f"{py}-{py}-{plat}")
    for version in ("1.0", "2.0"):
        for plat in ("manylinux2014_x86_64", "manylinux2014_aarch64", "win_amd64"):
            make_wheel(packages, "nomac", version, tag=f"py3-none-{plat}")
    make_wheel(packages, "plain", "1.0")


RELEASE = synthetic_release([
    package("puresdist", "1.0"), package("curlish", "7.45.2"), package("ccish", "1.0"),
    package("numish", "1.24.3"), package("nomac", "2.0"), package("plain", "1.0"),
])
CELLS = cells_for(Version("3.9.14"), newest=(3, 10))

EXPECTED = [
    "ccish==1.1",
    "curlish==7.45.3",
    'nomac==2.0; sys_platform == "linux" or sys_platform == "win32"',
    'numish==1.24.3; python_version < "3.10"',
    'numish==1.26.0; python_version >= "3.10"',
    "plain==1.0",
    "puresdist==1.0",
    'cms-analysis-stack-has-no-cell-for-this-platform<0; (sys_platform != "linux" and '
    'sys_platform != "darwin" and sys_platform != "win32") or (sys_platform == "linux" and '
    'platform_machine != "x86_64" and platform_machine != "aarch64") or (sys_platform == "darwin" and '
    'platform_machine != "x86_64" and platform_machine != "arm64") or (sys_platform == "win32" and '
    'platform_machine != "AMD64")',
]


def test_markers_are_exact_on_the_cells() -> None:
    cells = cells_for(Version("3.9"))
    assert len(cells) == 25 and laptop_cells.requires_python(cells).contains("3.13.1")
    assert not laptop_cells.requires_python(cells).contains("3.8.18")
    import itertools

    for size in (1, 2, 7):
        for chosen in itertools.islice(itertools.combinations(cells, size), 0, 400, 37):
            m = laptop_cells.marker(chosen, cells)
            assert m is not None
            for c in cells:
                assert m.evaluate(c.target.environment()) == (c in chosen), (m, c)
    outside = laptop_cells.outside_marker(cells)
    for c in cells:
        assert not outside.evaluate(c.target.environment())
    ppc = {**cells[0].target.environment(), "platform_machine": "ppc64le"}
    assert outside.evaluate(ppc)
    assert Marker('sys_platform == "linux"').evaluate(ppc)  # the pins' markers alone would not refuse


@pytest.mark.slow
def test_each_cell_installs_exactly_its_pins_with_real_pip(tmp_path: Path) -> None:
    missing = [str(p) for p in PYTHONS.values() if not p.exists()]
    if missing:
        pytest.skip(f"no {', '.join(missing)} here")
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            builds = Builds(client)
            matrix = resolve_cells(RELEASE, client, CELLS, builds=builds)
        assert matrix.failed == ()
        home = matrix.result(Cell(python=(3, 9), platform="linux-x86_64")).nearest
        assert home is not None
        reasons = {d.name: d.reason for d in home.deviations}
        assert reasons["curlish"].startswith(
            "curlish 7.45.2 cannot be installed in this cell: no wheel for this cell; its sdist does not "
            "build: RuntimeError: Could not run curl-config")
        assert ("its sdist does not build: it needs a compiler (its build runs a C, C++ or Fortran compiler, "
                "which a laptop is not assumed to have)") in reasons["ccish"]
        assert set(reasons) == {"curlish", "ccish"}
        newer = matrix.result(Cell(python=(3, 10), platform="windows-amd64")).nearest
        assert newer is not None and {d.name: str(d.version) for d in newer.deviations} == {
            "curlish": "7.45.3", "ccish": "1.1", "numish": "1.26.0"}
        mac = matrix.result(Cell(python=(3, 10), platform="macos-arm64")).nearest
        assert mac is not None and [o.name for o in mac.omissions] == ["nomac"]
        assert "nomac" not in dict(mac.pins)
        # the same answers: most cells reuse an earlier cell's search
        assert sum(r.same_as is not None for r in matrix.results) >= 6

        nearest = home
        project = metapackage.project(RELEASE, nearest, metapackage.Options(), matrix)
        assert [str(r) for r in project.dependencies] == EXPECTED
        assert str(project.requires_python) == "<3.11,>=3.9"
        assert "| 3.10 | macos-arm64 | 2 | 3 | 1 | 0 |" in dict(project.files)["README.md"]
        built = builder.build(project, tmp_path / "dist", work_dir=tmp_path / "build")
        wheel = next(p for p in built.files if p.name.endswith(".whl"))
        assert wheel.name == "cms_analysis_stack-14.0.0-py3-none-any.whl"

        env = env_without_index()
        for minor, python in PYTHONS.items():
            venv = tmp_path / f"venv{minor}"
            subprocess.run([python, "-m", "venv", venv], check=True)
            pip = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", str(wheel),
                                  "--index-url", server.simple], env=env, capture_output=True, text=True)
            assert pip.returncode == 0, pip.stdout + pip.stderr
            listed = subprocess.run([venv / "bin/python", "-m", "pip", "list", "--format=json"], env=env,
                                    capture_output=True, text=True, check=True)
            got = {p["name"]: p["version"] for p in json.loads(listed.stdout)
                   if p["name"] not in ("pip", "setuptools", "cms-analysis-stack")}
            cell = matrix.result(Cell(python=(3, int(minor.split(".")[1])), platform="linux-x86_64")).nearest
            assert cell is not None
            assert got == {n: str(v) for n, v in cell.pins}
            check = subprocess.run([venv / "bin/python", "-m", "cms_analysis_stack", "check"], env=env,
                                   capture_output=True, text=True, cwd=tmp_path)
            assert check.returncode == 0, check.stdout + check.stderr
            assert f"(the pins of cell {minor}-linux-x86_64)" in check.stdout
            about = subprocess.run([venv / "bin/python", "-m", "cms_analysis_stack"], env=env,
                                   capture_output=True, text=True, cwd=tmp_path, check=True)
            assert f"this environment: cell {minor}-linux-x86_64" in about.stdout

        # outside every cell: a machine no cell has (pip sees ppc64le), and Python 3.8
        venv = tmp_path / "venv3.9"
        fake = ("import platform, sys; platform.machine = lambda: 'ppc64le'; "
                "from pip._internal.cli.main import main; sys.exit(main())")
        pip = subprocess.run([venv / "bin/python", "-c", fake, "install", "--dry-run", str(wheel),
                              "--index-url", server.simple], env=env, capture_output=True, text=True)
        assert pip.returncode != 0
        assert ("No matching distribution found for "
                "cms-analysis-stack-has-no-cell-for-this-platform<0") in pip.stderr
        py38 = Path.home() / ".pyenv/versions/3.8.18/bin/python"
        if py38.exists():
            (server.packages / wheel.name).write_bytes(wheel.read_bytes())
            subprocess.run([py38, "-m", "venv", tmp_path / "venv38"], check=True)
            # --no-deps: the metapackage alone (pypiserver does not serve data-requires-python, so
            # pip reads Requires-Python from the wheel; PyPI's page says it before any download)
            pip = subprocess.run([tmp_path / "venv38/bin/python", "-m", "pip", "install", "--dry-run",
                                  "--no-deps", "cms-analysis-stack==14.0.0", "--index-url", server.simple],
                                 env=env, capture_output=True, text=True)
            assert pip.returncode != 0
            assert "requires a different Python: 3.8.18 not in '<3.11,>=3.9'" in pip.stderr


@pytest.mark.slow
def test_resolve_for_one_target_builds_as_the_cells_do(tmp_path: Path) -> None:
    """``stackmeta resolve RELEASE --python 3.9 --platform linux-x86_64`` judges an sdist-only
    version by building it, as the cells do: curlish and ccish move, puresdist (it builds) stays;
    with --no-build every sdist counts as installable and the release is kept whole."""
    locks = tmp_path / "locks"
    locks.mkdir()
    path = write_record(locks, RELEASE)
    # a malformed cells section (the sets before, tried last) is said, and does not stop the run
    record.update_section(path, "cells", {"cells": "damaged"})
    with pypiserver(tmp_path / "server") as server:
        fill(server.packages)
        runs: dict[tuple[str, ...], dict[str, Any]] = {}
        for flags in ((), ("--no-build",)):
            code, out, err = run_cli("resolve", "CMSSW_14_0_0", "--python", "3.9",
                                     "--platform", "linux-x86_64", "--index-url", server.simple,
                                     "--locks-dir", str(locks), "--cache-dir", str(tmp_path / "cache"),
                                     "--json", *flags)
            assert code == 0, err
            runs[flags] = json.loads(out)
        code, _, err = run_cli("resolve", "CMSSW_14_0_0", "--python", "3.9", "--platform", "linux-x86_64",
                               "--index-url", server.simple, "--locks-dir", str(locks), "--no-build", "-q",
                               "--cache-dir", str(tmp_path / "cache"))
        assert code == 0, err
        assert err.startswith(f"warning: {path}: malformed 'cells' section (AttributeError(")
        assert err.rstrip().endswith("): resolved without the sets it held") and len(err.splitlines()) == 1
    built = runs[()]
    assert {d["name"]: d["version"] for d in built["deviations"]} == {"curlish": "7.45.3", "ccish": "1.1"}
    assert "its sdist does not build: RuntimeError: Could not run curl-config" in next(
        d["reason"] for d in built["deviations"] if d["name"] == "curlish")
    assert built["pins"]["puresdist"] == "1.0" and built["omissions"] == []
    guessed = runs[("--no-build",)]
    assert guessed["deviations"] == [] and guessed["pins"]["curlish"] == "7.45.2"


def test_a_cell_of_no_platform_is_refused_by_name() -> None:
    with pytest.raises(Exception, match="is not a cell"):
        Cell.parse("3.9-solaris")
    assert Cell.parse("3.10-macos-arm64") == Cell(python=(3, 10), platform="macos-arm64")
    guard = Requirement(laptop_cells.unsupported_requirement("x", CELLS))
    assert guard.name == "x-has-no-cell-for-this-platform" and not guard.specifier.contains("0.0.dev0")

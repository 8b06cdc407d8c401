"""The real release's metapackage against the real PyPI, judged by resolvers no one here wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.index import PYPI, IndexClient, IndexSource
from stackmeta.package import builder, metapackage
from stackmeta.resolve.matrix import load_cells
from stackmeta.resolve.nearest import NearestSet, load_nearest
from stackmeta.target import Target

LOCKS = Path(os.environ.get("STACKMETA_TEST_LOCKS", Path(__file__).resolve().parents[2] / "locks"))
BIN = Path(sys.executable).parent


def _pip_for(python: Version, tmp_path: Path, env: dict[str, str]) -> list[str | Path]:
    """The interpreter whose pip judges: ours, or for a release before Python 3.7 one with
    pip 24.0 (pip 24.1 and later refuse the legacy metadata of that era's wheels, e.g.
    pandas 0.24.2's 'pytz (>=2011k)', which the pip of those releases accepts). pip 24.0
    checks Requires-Python against its own interpreter after a --target dry run, so that
    check is off there (every pin's Requires-Python was checked by the resolver)."""
    if python >= Version("3.7"):
        return [BIN / "python", "-m", "pip", "install"]
    venv = tmp_path / "pip24"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "pip==24.0",
                    "--index-url", "https://pypi.org/simple"], check=True, env=env)
    return [venv / "bin/python", "-m", "pip", "install", "--ignore-requires-python"]


def _sdist_only(nearest: NearestSet, target: Target) -> list[str]:
    """The pins PyPI has no wheel of for the target: pip would have to build them."""
    out = []
    with IndexClient(PYPI, cache_dir=False) as client:
        source = IndexSource(client, target)
        for name, version in nearest.pins:
            files = source.files(name, version)
            if not any(target.wheel_rank(f.filename) is not None for f in files):
                out.append(f"{name}=={version}")
    return out


@pytest.mark.network
@pytest.mark.parametrize("release", record.list_records(LOCKS))  # the main set: every record in locks/
def test_metapackage_resolves_on_pypi_to_exactly_its_pins(tmp_path: Path, release: str) -> None:
    if load_cells(LOCKS, release) is not None:
        pytest.skip(f"{release} is resolved in cells: tests/package/test_cells_network.py installs "
                    "and resolves each cell for real")
    rel = record.load_release(LOCKS, release)
    nearest = load_nearest(LOCKS, release)
    built = builder.build(metapackage.project(rel, nearest), tmp_path / "dist", work_dir=tmp_path / "w")
    expected = {str(n): v for n, v in nearest.pins}
    expected["cms-analysis-stack"] = rel.metapackage_version
    py = f"{rel.python.major}.{rel.python.minor}"
    wanted = f"cms-analysis-stack=={rel.metapackage_version}"

    # only PyPI: no pip or uv configuration of this machine (extra indexes, find-links)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL") and not k.startswith("UV_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    # A pin PyPI has as an sdist only must be built by the user's pip, and may not build on a
    # laptop (pycurl needs curl-config): no stand-in wheel hides it. Such a record is not proven
    # installable here until it is resolved in cells (installability by building, issue 12).
    sdist_only = _sdist_only(nearest, Target(python=rel.python))
    assert sdist_only == [], (f"{release}: {len(sdist_only)} pins have no wheel for Python {rel.python} on "
                              f"linux-x86_64 ({', '.join(sdist_only)}): resolve it in cells")
    links = built.wheel.parent
    major, minor = rel.python.major, rel.python.minor
    abi = (["cp27mu", "cp27m"] if major == 2 else
           [f"cp{major}{minor}m"] if minor < 8 else [f"cp{major}{minor}"])
    abis = [arg for a in [*abi, "abi3", "none"] for arg in ("--abi", a)]
    pip = subprocess.run(
        [*_pip_for(rel.python, tmp_path, env), "--dry-run", "--ignore-installed", "--quiet",
         "--report", "-", "--python-version", py, "--implementation", "cp", *abis,
         "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64",
         "--platform", "manylinux1_x86_64", "--only-binary=:all:", "--target", tmp_path / "target",
         "--find-links", links,
         "--index-url", "https://pypi.org/simple", "--disable-pip-version-check", wanted],
        capture_output=True, text=True, env=env,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    report = json.loads(pip.stdout)
    by_pip = {canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
              for item in report["install"]}
    assert by_pip == expected
    print(f"{release}: pip resolves to the {len(nearest.pins)} pins")

    if rel.python < Version("3.8"):
        return  # uv resolves for Python 3.8 and later only
    uv = subprocess.run(
        [BIN / "uv", "pip", "compile", "--python-version", py,
         "--python-platform", "x86_64-unknown-linux-gnu",
         "--find-links", str(links), "--index-url", "https://pypi.org/simple", "--no-build",
         "--no-header", "--no-annotate", "--no-config", "--native-tls", "--quiet", "-"],
        input=wanted + "\n", capture_output=True, text=True, env=env,
    )
    assert uv.returncode == 0, uv.stderr[-3000:]
    by_uv = {}
    for line in uv.stdout.splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.strip().split("==")
            by_uv[canonicalize_name(name)] = Version(version)
    assert by_uv == expected
    print(f"{release}: pip and uv resolve to the {len(nearest.pins)} pins")

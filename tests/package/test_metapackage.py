"""The generated metapackage project: metadata, README, and the module on real interpreters."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name as cn
from packaging.version import Version

from stackmeta.errors import UsageError
from stackmeta.package import metapackage
from stackmeta.record import BuildKind
from stackmeta.resolve.nearest import RULE, Addition, Deviation, NearestSet, Omission
from tests.pypiserver_fixture import package, synthetic_release

PYENV = Path.home() / ".pyenv" / "versions"


def sample(python: str = "3.9.14", release: str = "CMSSW_14_0_0") -> tuple:
    rel = synthetic_release(
        [
            package("numpy", "1.24.3", patches=("numpy-openblas.patch",)),
            package("tensorflow", "2.12.0", requires=["numpy"]),
            package("pybrain", "0.3.3", build=BuildKind.VCS),
        ],
        release=release, python=python,
    )
    nearest = NearestSet(
        release=rel.release, python=rel.python, platform="linux-x86_64",
        index_url="https://pypi.org/simple", rule=RULE,
        pins=((cn("libclang"), Version("18.1.1")), (cn("numpy"), Version("1.24.3")),
              (cn("tensorflow"), Version("2.13.0"))),
        deviations=(Deviation(name=cn("tensorflow"), release_version="2.12.0", version=Version("2.13.0"),
                              reason="tensorflow 2.12.0 requires numpy<1.24,>=1.22 | numpy 1.24.3 stays"),),
        additions=(Addition(name=cn("libclang"), version=Version("18.1.1"),
                            required_by=("tensorflow 2.13.0 (libclang>=13.0.0)",)),),
        omissions=(Omission(name=cn("pybrain"), release_version="0.3.3",
                            reason="pybrain 0.3.3 is not on the index (built by CMS from git)"),),
    )
    return rel, nearest


def files(project: metapackage.Project) -> dict[str, str]:
    return dict(project.files)


def test_pyproject_pins_exactly_the_nearest_set() -> None:
    rel, nearest = sample()
    proj = metapackage.project(rel, nearest)
    doc = tomllib.loads(files(proj)["pyproject.toml"])
    meta = doc["project"]
    assert meta["name"] == "cms-analysis-stack"
    assert meta["version"] == "14.0.0"
    assert meta["requires-python"] == "==3.9.*"
    assert meta["license"] == "Apache-2.0"
    assert meta["dependencies"] == ["libclang==18.1.1", "numpy==1.24.3", "tensorflow==2.13.0"]
    assert meta["readme"] == {"file": "README.md", "content-type": "text/markdown"}
    assert "Programming Language :: Python :: 3.9" in meta["classifiers"]
    assert meta["urls"]["Source"] == "https://github.com/cms-sw/cmsdist/tree/REL/CMSSW_14_0_0/el9_amd64_gcc12"
    assert doc["build-system"]["build-backend"] == "setuptools.build_meta"
    assert files(proj)["setup.cfg"] == "[bdist_wheel]\npython_tag = py3\n"
    assert proj.wheel_name == "cms_analysis_stack-14.0.0-py3-none-any.whl"
    assert proj.sdist_name == "cms_analysis_stack-14.0.0.tar.gz"


def test_readme_tells_every_difference_and_the_patches() -> None:
    rel, nearest = sample()
    readme = files(metapackage.project(rel, nearest))["README.md"]
    assert "**CMSSW_14_0_0**" in readme and "Python 3.9.14" in readme and "el9_amd64_gcc12" in readme
    assert (
        "| tensorflow | 2.12.0 | 2.13.0 | tensorflow 2.12.0 requires numpy<1.24,>=1.22 "
        "\\| numpy 1.24.3 stays |"
    ) in readme
    assert "| libclang | 18.1.1 | tensorflow 2.13.0 (libclang>=13.0.0) |" in readme
    assert "| pybrain | 0.3.3 | pybrain 0.3.3 is not on the index (built by CMS from git) |" in readme
    assert "| numpy | 1.24.3 | numpy-openblas.patch |" in readme
    assert "| libclang | 18.1.1 | not shipped |" in readme


def test_group_name_version_and_python_overrides() -> None:
    rel, nearest = sample()
    proj = metapackage.project(rel, nearest, metapackage.Options(
        name="hgg-analysis-stack", version="1.0", requires_python=">=3.9"))
    assert proj.module == "hgg_analysis_stack"
    assert "src/hgg_analysis_stack/__init__.py" in files(proj)
    meta = tomllib.loads(files(proj)["pyproject.toml"])["project"]
    assert (meta["name"], meta["version"], meta["requires-python"]) == ("hgg-analysis-stack", "1.0", ">=3.9")


def test_bad_overrides_are_refused() -> None:
    rel, nearest = sample()
    with pytest.raises(UsageError) as info:
        metapackage.project(rel, nearest, metapackage.Options(requires_python="3.9 please"))
    assert str(info.value) == (
        "--requires-python '3.9 please' is not a version specifier: use e.g. '==3.9.*' or '>=3.9'"
    )
    with pytest.raises(UsageError, match="is not a valid project name"):
        metapackage.project(rel, nearest, metapackage.Options(name="no spaces"))


def test_python2_release_gets_a_py2_wheel() -> None:
    rel, nearest = sample(python="2.7.11", release="CMSSW_9_3_0")
    proj = metapackage.project(rel, nearest)
    assert proj.wheel_name == "cms_analysis_stack-9.3.0-py2-none-any.whl"
    assert str(proj.requires_python) == "==2.7.*"


def test_integration_builds_take_their_date_as_timestamp() -> None:
    rel, _ = sample(release="CMSSW_14_0_X_2024-10-13-0000")
    assert metapackage.source_date_epoch(rel) == 1728777600
    assert metapackage.source_date_epoch(sample()[0]) == metapackage.DEFAULT_EPOCH


def _install_module(tmp_path: Path, python: str) -> tuple[Path, Path]:
    """The module of a sample project in one folder, fake installed dists in another."""
    rel, nearest = sample(python=python)
    proj = metapackage.project(rel, nearest)
    pkg_dir = tmp_path / "lib"
    for rel_path, text in proj.files:
        if rel_path.startswith("src/"):
            path = pkg_dir / rel_path[len("src/"):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    site = tmp_path / "site"
    for name, version in [("numpy", "1.24.3"), ("tensorflow", "2.13.0"), ("libclang", "18.1.0"),
                          ("coffea", "2024.4.0")]:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    return pkg_dir, site


@pytest.mark.parametrize("version", ["2.7.18", "3.6.15", "3.9.18", "3.13.0"])
def test_module_runs_on_the_release_python(tmp_path: Path, version: str) -> None:
    python = PYENV / version / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no Python {version} here")
    pkg_dir, site = _install_module(tmp_path, version)
    env = {"PYTHONPATH": f"{pkg_dir}:{site}", "PATH": "/usr/bin:/bin"}

    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-S", "-m", "cms_analysis_stack", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=check)

    show = run(check=True)
    assert show.stdout.splitlines()[0] == (
        f"cms-analysis-stack 14.0.0: CMSSW_14_0_0 (el9_amd64_gcc12), Python {version}"
    )
    assert "  tensorflow: release 2.12.0, pinned 2.13.0: tensorflow 2.12.0 requires numpy<1.24,>=1.22 " \
           "| numpy 1.24.3 stays" in show.stdout
    check = run("check", "--json")
    assert check.returncode == 1, check.stderr
    report = json.loads(check.stdout)
    assert report["drift"] is True
    assert report["ok"] == [{"name": "numpy", "installed": "1.24.3"}]
    assert [d["name"] for d in report["deviations"]] == ["tensorflow"]
    assert report["other_versions"] == [
        {"name": "libclang", "installed": "18.1.0", "expected": "18.1.1", "release_version": None}
    ]
    assert report["missing"] == []
    assert report["extra"] == [{"name": "coffea", "installed": "2024.4.0"}]
    (site / "libclang-18.1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: libclang\nVersion: 18.1.1\n\n")
    check = run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "deviation (on purpose): tensorflow 2.13.0, the release ships 2.12.0" in check.stdout
    assert check.stdout.splitlines()[-1] == (
        "2 as pinned, 1 deviations, 0 missing, 0 other versions, 1 extra: no drift"
    )
    strict = run("check", "--strict")
    assert strict.returncode == 1


def test_a_move_across_a_major_version_is_flagged_in_readme_record_and_nearest_txt() -> None:
    from dataclasses import replace

    from stackmeta.resolve.nearest import crosses_major, nearest_text

    rel, nearest = sample()
    keras = Deviation(name=cn("keras"), release_version="2.11.0", version=Version("3.2.0"),
                      reason="tensorflow 2.16.1 requires keras>=3.0.0")
    nearest = replace(nearest, deviations=(*nearest.deviations, keras),
                      pins=tuple(sorted((*nearest.pins, (cn("keras"), Version("3.2.0"))))))
    readme = files(metapackage.project(rel, nearest))["README.md"]
    assert ("| keras | 2.11.0 | 3.2.0 (new major version) | tensorflow 2.16.1 requires keras>=3.0.0 |"
            in readme)
    assert "| tensorflow | 2.12.0 | 2.13.0 | " in readme  # a minor move is not flagged
    recorded = {d["name"]: d for d in nearest.to_json()["deviations"]}
    assert recorded["keras"]["new_major"] is True and "new_major" not in recorded["tensorflow"]
    assert "# DEVIATION (NEW MAJOR VERSION): the release ships keras 2.11.0:" in nearest_text(rel, nearest)
    assert keras.shown == "keras 2.11.0 -> 3.2.0 (NEW MAJOR VERSION)"
    assert not crosses_major("2023.4.0", Version("2025.9.0"))  # calendar versions have no major
    assert not crosses_major("1.0.x", Version("2.0"))  # not PEP 440: not judged
    assert crosses_major("0.9.1", Version("1.0.0"))


def test_the_stack_module_takes_the_installed_distribution_over_a_stray_egg_info(tmp_path: Path) -> None:
    """uncertainties 3.1.5's wheel carries an uncertainties.egg-info saying 2.4.4: in one folder,
    the distribution an installer recorded (INSTALLER) is the one installed, whichever the
    folder lists first."""
    import sys
    from importlib import resources

    site = tmp_path / "site"
    dist_info = site / "uncertainties-3.1.5.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: uncertainties\nVersion: 3.1.5\n")
    (dist_info / "INSTALLER").write_text("pip\n")
    egg_info = site / "uncertainties.egg-info"
    egg_info.mkdir()
    (egg_info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: uncertainties\nVersion: 2.4.4\n")
    module = tmp_path / "mod" / "stackmod.py"
    module.parent.mkdir()
    module.write_text(resources.files("stackmeta.package").joinpath("templates", "stack_module.py.in")
                      .read_text("utf-8"))
    code = ("import sys, json; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import stackmod; "
            "print(json.dumps(stackmod.installed().get('uncertainties')))")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(site), str(module.parent)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(proc.stdout) == "3.1.5"
    # before 3.8 (no importlib.metadata) the module asks pkg_resources, whose working set keeps
    # the first of a folder (the egg-info: a real install on 3.6 showed 2.4.4): the same rule
    from stackmeta.pythons import find_minor

    older = {m: find_minor(m) for m in ((3, 6), (2, 7))}
    for minor, python in older.items():
        if python is None:
            continue
        proc = subprocess.run([python, "-E", "-s", "-c", code, str(site), str(module.parent)],
                              capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(proc.stdout) == "3.1.5", minor
    if None in older.values():
        missing = ", ".join(f"{m[0]}.{m[1]}" for m, p in older.items() if p is None)
        pytest.skip(f"no Python {missing} here: "
                    "the pkg_resources path is checked with the others")

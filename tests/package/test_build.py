"""Building the metapackage: offline, byte-reproducible, twine-clean, from the CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement

from stackmeta.cli import main
from stackmeta.errors import BuildError
from stackmeta.package import builder, metapackage
from stackmeta.resolve.nearest import save_nearest
from tests.package.test_metapackage import sample
from tests.pypiserver_fixture import write_record

TWINE = Path(sys.executable).parent / "twine"


def _build(tmp: Path, python: str = "3.9.14", release: str = "CMSSW_14_0_0") -> builder.Built:
    rel, nearest = sample(python=python, release=release)
    return builder.build(metapackage.project(rel, nearest), tmp / "dist", work_dir=tmp / "work")


def test_two_builds_in_other_folders_at_other_times_are_identical(tmp_path: Path) -> None:
    first = _build(tmp_path / "a")
    time.sleep(1.1)
    old = os.umask(0o077)
    try:
        second = _build(tmp_path / "elsewhere" / "b")
    finally:
        os.umask(old)
    assert first.sdist is not None and second.sdist is not None
    assert first.sdist.read_bytes() == second.sdist.read_bytes()
    assert first.wheel.read_bytes() == second.wheel.read_bytes()
    assert [p.name for p in first.files] == [
        "cms_analysis_stack-14.0.0.tar.gz", "cms_analysis_stack-14.0.0-py3-none-any.whl"
    ]


def test_archive_headers_carry_only_the_release_timestamp(tmp_path: Path) -> None:
    built = _build(tmp_path)
    assert built.sdist is not None
    data = built.sdist.read_bytes()
    # gzip header: magic, deflate, no FNAME flag, MTIME = the release's timestamp
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0
    assert int.from_bytes(data[4:8], "little") == metapackage.DEFAULT_EPOCH
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (metapackage.DEFAULT_EPOCH, 0, 0, "", "")
        }
        assert {m.mode for m in members if m.isfile()} == {0o644}
        assert "cms_analysis_stack-14.0.0/src/cms_analysis_stack/release.json" in names
    with zipfile.ZipFile(built.wheel) as whl:
        infos = whl.infolist()
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        assert infos[-1].filename == "cms_analysis_stack-14.0.0.dist-info/RECORD"


def test_wheel_metadata_is_the_nearest_set_and_twine_accepts_it(tmp_path: Path) -> None:
    built = _build(tmp_path)
    meta = builder.wheel_metadata(built.wheel.read_bytes(), built.wheel.name)
    assert isinstance(meta, Metadata)
    assert [str(r) for r in meta.requires_dist or []] == [
        "libclang==18.1.1", "numpy==1.24.3", "tensorflow==2.13.0"
    ]
    assert str(meta.requires_python) == "==3.9.*"
    assert meta.license_expression == "Apache-2.0"
    assert "| tensorflow | 2.12.0 | 2.13.0 |" in (meta.description or "")
    check = subprocess.run([TWINE, "check", "--strict", *map(str, built.files)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2


def test_python2_release_builds_a_py2_wheel_that_pip_on_2_7_installs(tmp_path: Path) -> None:
    built = _build(tmp_path, python="2.7.11", release="CMSSW_9_3_0")
    assert built.wheel.name == "cms_analysis_stack-9.3.0-py2-none-any.whl"
    py27 = Path.home() / ".pyenv/versions/2.7.18/bin/python"
    if not py27.exists():
        pytest.skip("no Python 2.7 here")
    target = tmp_path / "py27"
    subprocess.run([py27, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", "--target", target, built.wheel],
                   check=True, capture_output=True)
    show = subprocess.run([py27, "-m", "cms_analysis_stack"], env={"PYTHONPATH": str(target)},
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    assert show.stdout.startswith("cms-analysis-stack 9.3.0: CMSSW_9_3_0 (el9_amd64_gcc12), Python 2.7.11\n")


def test_requires_dist_must_equal_the_pins() -> None:
    with pytest.raises(BuildError) as info:
        builder.check_requires_dist([Requirement("numpy==1.24.3")], [Requirement("numpy==1.23.5")], "x.whl")
    assert str(info.value) == (
        "x.whl: Requires-Dist differs from the nearest set: unexpected [('numpy', '==1.24.3', '', '')], "
        "missing [('numpy', '==1.23.5', '', '')]: rebuild it with 'stackmeta build'"
    )
    with pytest.raises(BuildError, match="is a direct URL"):
        builder.check_requires_dist([Requirement("pybrain @ git+https://github.com/x/pybrain")], [], "x.whl")


def _locks(tmp_path: Path) -> Path:
    locks = tmp_path / "locks"
    rel, nearest = sample()
    write_record(locks, rel)
    save_nearest(locks, rel.release, rel, nearest)
    rel2, nearest2 = sample(python="2.7.14", release="CMSSW_10_6_0")
    write_record(locks, rel2, "CMSSW_10_6_0-py2")
    save_nearest(locks, "CMSSW_10_6_0-py2", rel2, nearest2)
    return locks


def test_build_command_builds_every_release_in_locks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = _locks(tmp_path)
    out = tmp_path / "dist"
    code = main(["build", "--locks-dir", str(locks), "--out", str(out), "--build-dir", str(tmp_path / "b"),
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["release"] for r in result["built"]] == ["CMSSW_10_6_0-py2", "CMSSW_14_0_0"]
    assert sorted(p.name for p in out.iterdir()) == [
        "cms_analysis_stack-10.6.0-py2-none-any.whl",  # the second stack: wheel only
        "cms_analysis_stack-14.0.0-py3-none-any.whl",
        "cms_analysis_stack-14.0.0.tar.gz",
    ]


def test_a_record_without_nearest_set_says_to_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = tmp_path / "locks"
    rel, _ = sample()
    write_record(locks, rel)
    code = main(["build", "CMSSW_14_0_0", "--locks-dir", str(locks), "--out", str(tmp_path / "dist")])
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {locks}/CMSSW_14_0_0.json has no nearest consistent set: "
        "run 'stackmeta resolve CMSSW_14_0_0' first"
    )
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("option", ["--out", "--build-dir"])
def test_an_output_folder_that_is_a_file_is_one_error_line_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    locks = _locks(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    folders = {"--out": str(tmp_path / "dist"), "--build-dir": str(tmp_path / "b"), option: str(a_file)}
    args = [x for kv in folders.items() for x in kv]
    code = main(["build", "CMSSW_14_0_0", "--locks-dir", str(locks), *args])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"error: cannot write into {a_file}")
    assert err[-1].endswith("give a folder that is not a file and can be written")
    assert a_file.read_text() == "not a folder"
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_build_all_decides_what_flavours_and_tool_conf_tags_publish_as(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CMSSW_14_0_0_HLT ships the release's stack: skipped; CMSSW_14_0_0_TOTEM ships another one:
    its own distribution; CMSSW_14_0_0-tool-conf: skipped, the release has its own record."""
    from dataclasses import replace

    from packaging.version import Version

    locks = tmp_path / "locks"
    rel, nearest = sample()
    for name in ("CMSSW_14_0_0", "CMSSW_14_0_0_HLT", "CMSSW_14_0_0-tool-conf", "CMSSW_14_0_0_TOTEM"):
        this = replace(rel, release=name)
        if name.endswith("TOTEM"):
            numpy = next(p for p in rel.packages if p.name == "numpy")
            other = replace(numpy, version_written="1.24.4", version=Version("1.24.4"))
            this = replace(this, packages=tuple(other if p is numpy else p for p in rel.packages))
        write_record(locks, this)
        save_nearest(locks, name, this, replace(nearest, release=name))
    out = tmp_path / "dist"
    code = main(["build", "--locks-dir", str(locks), "--out", str(out), "--build-dir", str(tmp_path / "b"),
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [(r["release"], r["project"], r["version"]) for r in result["built"]] == [
        ("CMSSW_14_0_0", "cms-analysis-stack", "14.0.0"),
        ("CMSSW_14_0_0_TOTEM", "cms-analysis-stack-totem", "14.0.0")]
    assert result["skipped"] == [
        {"release": "CMSSW_14_0_0-tool-conf",
         "reason": "a tag of CMSSW_14_0_0's tool-conf build: CMSSW_14_0_0 has its own record"},
        {"release": "CMSSW_14_0_0_HLT",
         "reason": "the same Python stack as CMSSW_14_0_0: published as that release"}]
    assert sorted(p.name for p in out.iterdir()) == [
        "cms_analysis_stack-14.0.0-py3-none-any.whl", "cms_analysis_stack-14.0.0.tar.gz",
        "cms_analysis_stack_totem-14.0.0-py3-none-any.whl", "cms_analysis_stack_totem-14.0.0.tar.gz"]

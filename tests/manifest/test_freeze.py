"""A release manifest from pip freeze / pip list --format=json output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta import record
from stackmeta.cli import main
from stackmeta.errors import ManifestError
from stackmeta.manifest.freeze import parse_freeze
from stackmeta.record import BuildKind

FREEZE = """\
# captured in CMSSW_14_0_0
numpy==1.24.3
Click==8.1.3
functools32==3.2.3-2
dxr==1.0.x
pybrain @ git+https://github.com/pybrain/pybrain@0.3.3
-e git+https://github.com/cms-sw/cmssw.git@abc#egg=cmssw
--index-url https://pypi.org/simple
"""


def test_freeze_lines() -> None:
    frozen = parse_freeze(FREEZE, "freeze.txt", arches=("el9_amd64_gcc12",))
    by_name = {p.name: p for p in frozen.packages}
    assert sorted(by_name) == ["click", "dxr", "functools32", "numpy", "pybrain"]
    assert by_name["functools32"].version == Version("3.2.3.post2")
    assert by_name["functools32"].version_written == "3.2.3-2"
    assert by_name["click"].display_name == "Click"
    assert by_name["dxr"].version is None
    pybrain = by_name["pybrain"]
    assert (pybrain.version, pybrain.build, pybrain.source_url) == (
        None,
        BuildKind.VCS,
        "git+https://github.com/pybrain/pybrain@0.3.3",
    )
    assert [(p.kind, p.where) for p in frozen.problems] == [
        ("not-pep440", "freeze.txt:5"),
        ("url-requirement", "freeze.txt:6"),
        ("editable", "freeze.txt:7"),
        ("option", "freeze.txt:8"),
    ]
    assert frozen.problems[2].message == (
        "editable install 'git+https://github.com/cms-sw/cmssw.git@abc#egg=cmssw' "
        "is not a release package: skipped"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "numpy==1.0\nnot a requirement !\n",
            "freeze.txt:2: cannot read 'not a requirement !': not 'name==version' nor 'name @ url': "
            "give the output of pip freeze",
        ),
        ("numpy>=1.0\n", "freeze.txt:1: 'numpy>=1.0' is not 'name==version': give the output of pip freeze"),
        (
            '[\n {"name": "a", "version": "1"},\n {"name": "b"}\n]\n',
            "freeze.txt:3: item 1 is not an object with a name and a version",
        ),
        (
            '[\n {"name": "a", "version": "1"},\n {"name": "b-", "version": "2"}\n]\n',
            "freeze.txt:3: 'b-' is not a package name",
        ),
        (
            '[\n {"name": "a", "version": "1"},\n',
            "freeze.txt:3: not valid JSON (Expecting value): give the output of pip list --format=json",
        ),
    ],
)
def test_freeze_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_freeze(text, "freeze.txt")
    assert str(err.value).startswith(message)


def test_pip_list_json_from_real_pip(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    frozen = parse_freeze(listed, "list.json")
    names = {p.name for p in frozen.packages}
    assert "packaging" in names
    real = {item["name"].lower().replace("_", "-") for item in json.loads(listed)}
    assert names <= real | {n.replace(".", "-") for n in real}


def test_export_from_freeze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(FREEZE)
    locks = tmp_path / "locks"
    code = main(
        [
            "export",
            "CMSSW_14_0_0",
            "--from-freeze",
            str(freeze),
            "--python",
            "3.9.14",
            "--arch",
            "el9_amd64_gcc12",
            "--locks-dir",
            str(locks),
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0
    assert (
        "warning: freeze.txt:6: pybrain is installed from git+https://github.com/pybrain/pybrain@0.3.3: "
        "no version to pin" in err
    )
    text = (locks / "CMSSW_14_0_0.txt").read_text()
    assert text.splitlines()[2:6] == [
        "# arch: el9_amd64_gcc12",
        "# Python: 3.9.14",
        "# source: freeze freeze.txt",
        "# written by stackmeta 0.1.0",
    ]
    assert text.endswith("click==8.1.3\nfunctools32==3.2.3.post2\nnumpy==1.24.3\n")
    assert (
        "# 3 pins (5 packages); not pinned: dxr '1.0.x', pybrain (git+https://github.com/pybrain/pybrain@0.3.3)\n"
    ) in text
    rel = record.load_release(locks, "CMSSW_14_0_0")
    assert rel.python == Version("3.9.14")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--python", "3"],
            "error: --python 3: give the full interpreter version with --from-freeze, e.g. 3.9.14\n",
        ),
        (
            ["--python", "three"],
            "error: --python 'three' is not a version: give the release's Python, e.g. 3.9.14\n",
        ),
        ([], "error: --from-freeze needs --python X.Y.Z (the release's interpreter)\n"),
        (
            ["--python", "3.9.14", "--arch", "bogus"],
            "error: arch 'bogus' is not <os>_<cpu>_<compiler> (e.g. el9_amd64_gcc12)\n",
        ),
    ],
)
def test_freeze_bad_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("a==1\n")
    code = main(
        ["export", "CMSSW_14_0_0", "--from-freeze", str(freeze), *args, "--locks-dir", str(tmp_path / "l")]
    )
    assert (code, capsys.readouterr().err) == (2, message)
    assert not (tmp_path / "l").exists()

"""The laptop report (``stackmeta check --platform all``) on recorded pypi.org data served on
loopback: the wheel matrix of CMSSW_14_0_0 for its Python 3.9 (tests/data/snapshots/CMSSW_14_0_0,
which keeps every file of the pinned versions), and "how close can I get on Python 3.12" on
tests/data/snapshots/CMSSW_14_0_0-laptop-py3.12.

That second snapshot holds a part of CMSSW_14_0_0 (the pins :data:`LAPTOP_PINS`, with their
closure), recorded with the laptop option, which keeps every version's pick for each laptop
platform at Python 3.12 (the whole release would be 17 MB)::

    python -c "from tests.check.test_platforms import write_laptop_locks as w; w('/tmp/laptop-locks')"
    stackmeta snapshot CMSSW_14_0_0 --locks-dir /tmp/laptop-locks --python 3.12 --laptop \\
        --out tests/data/snapshots/CMSSW_14_0_0-laptop-py3.12
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from stackmeta import record
from stackmeta.check import closure, platforms
from stackmeta.check.report import PinStatus
from stackmeta.cli import main
from stackmeta.index import IndexClient, parse_project_page
from stackmeta.target import Target
from tests.httpserver import StaticServer

ROOT = Path(__file__).parents[2]
LOCKS = ROOT / "locks"
SNAPSHOTS = Path(__file__).parents[1] / "data" / "snapshots"
LAPTOP_SNAPSHOT = SNAPSHOTS / "CMSSW_14_0_0-laptop-py3.12"
LAPTOP_PINS = frozenset((
    "absl-py", "astunparse", "docopt", "dxr", "flatbuffers", "gast", "google-pasta", "grpcio", "h5py",
    "keras", "ml-dtypes", "numpy", "opt-einsum", "packaging", "pandas", "protobuf", "python-dateutil",
    "pytz", "scipy", "six", "tensorboard", "tensorflow", "tensorflow-estimator",
    "tensorflow-io-gcs-filesystem", "termcolor", "typing-extensions", "tzdata", "wrapt"))
TF_PROBLEMS = [
    "tensorflow==2.16.1 requires flatbuffers>=23.5.26; the release pins flatbuffers==23.3.3",
    "tensorflow==2.16.1 requires ml-dtypes~=0.3.1; the release pins ml-dtypes==0.3.0",
    "tensorflow==2.16.1 requires tensorboard<2.17,>=2.16; the release pins tensorboard==2.12.1",
    "tensorflow==2.16.1 requires keras>=3.0.0; the release pins keras==2.11.0",
]


def write_laptop_locks(folder: str | Path) -> Path:
    """A locks folder whose CMSSW_14_0_0 record holds only :data:`LAPTOP_PINS`."""
    rel = record.load_release(LOCKS, "CMSSW_14_0_0")
    part = dataclasses.replace(rel, packages=tuple(p for p in rel.packages if p.name in LAPTOP_PINS))
    path = record.record_path(Path(folder), "CMSSW_14_0_0")
    record.write_document(path, record.new_document(part))
    return Path(folder)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "CMSSW_14_0_0", "--no-save", "--no-cache", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def matrix_39() -> platforms.PlatformMatrix:
    rel = record.load_release(LOCKS, "CMSSW_14_0_0")
    target = closure.default_target(rel)
    with StaticServer(SNAPSHOTS / "CMSSW_14_0_0") as server, \
            IndexClient(server.url + "/simple", False, retries=0) as client:
        pages, _ = closure.fetch(rel, target, client)
    return platforms.matrix(rel.lock_name, closure.shipped_pins(rel, target), target.python, pages)


def test_known_cells_for_python_3_9(matrix_39: platforms.PlatformMatrix) -> None:
    m = matrix_39
    assert m.python == "3.9.14" and len(m.rows) == 321
    assert m.platforms == ("linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64", "windows-amd64")

    def statuses(name: str) -> list[str]:
        return [m.row(name).cells[p].status.value for p in m.platforms]

    # tensorflow 2.12.0 has cp39 wheels for four platforms; Apple silicon got tensorflow-macos
    assert statuses("tensorflow") == ["wheel", "wheel", "wheel", "no-usable-file", "wheel"]
    assert m.row("tensorflow").cells["windows-amd64"].wheel == "tensorflow-2.12.0-cp39-cp39-win_amd64.whl"
    assert statuses("tensorflow-io-gcs-filesystem") == ["wheel", "wheel", "wheel", "no-usable-file",
                                                        "no-usable-file"]
    assert statuses("psutil") == ["wheel", "sdist-only", "wheel", "wheel", "wheel"]
    assert statuses("lxml") == ["wheel", "wheel", "wheel", "sdist-only", "wheel"]
    assert statuses("docopt") == ["sdist-only"] * 5
    assert statuses("dxr") == ["not-pep440"] * 5  # CMS builds 1.0.x from git
    assert m.row("numpy").cells["macos-arm64"].wheel == "numpy-1.24.3-cp39-cp39-macosx_11_0_arm64.whl"
    shares = {s.platform: (s.wheels, s.total, s.percent) for s in m.summaries}
    assert shares == {"linux-x86_64": (298, 321, "93%"), "linux-aarch64": (294, 321, "92%"),
                      "macos-x86_64": (297, 321, "93%"), "macos-arm64": (288, 321, "90%"),
                      "windows-amd64": (297, 321, "93%")}
    assert m.summary("macos-arm64").nothing == (
        "dxr==1.0.x", "tensorflow==2.12.0", "tensorflow-io-gcs-filesystem==0.32.0")
    assert m.summary("windows-amd64").nothing == ("dxr==1.0.x", "tensorflow-io-gcs-filesystem==0.32.0")
    assert "psutil==5.9.4" in m.summary("linux-aarch64").sdist_only
    assert "psutil==5.9.4" not in m.summary("linux-x86_64").blockers


def test_the_release_platform_column_agrees_with_the_check(matrix_39: platforms.PlatformMatrix) -> None:
    rel = record.load_release(LOCKS, "CMSSW_14_0_0")
    with IndexClient((SNAPSHOTS / "CMSSW_14_0_0").as_uri(), False) as client:
        report = closure.run_check(rel, closure.default_target(rel), client)
    assert {p.name: p.status for p in report.pins} == {
        r.name: r.cells["linux-x86_64"].status for r in matrix_39.rows}


def test_the_matrix_costs_no_request(capsys: pytest.CaptureFixture[str]) -> None:
    with StaticServer(SNAPSHOTS / "CMSSW_14_0_0") as server:
        code, plain = run_json(capsys, "--index-url", server.url + "/simple")
        n_plain = len(server.log)
        code_all, data = run_json(capsys, "--index-url", server.url + "/simple", "--platform", "all")
        n_all = len(server.log) - n_plain
    assert code == code_all == 1  # the check's own verdict: CMSSW_14_0_0 has conflicts
    assert n_all == n_plain
    assert "platforms" not in plain
    mac = data["platforms"]["summary"]["macos-arm64"]
    assert (mac["wheels"], mac["total"], mac["share"]) == (288, 321, 0.8972)
    tf = next(r for r in data["platforms"]["rows"] if r["name"] == "tensorflow")
    assert tf["version"] == "2.12.0"
    assert tf["cells"]["macos-arm64"] == {"status": "no-usable-file", "wheel": None}


def test_terminal_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "CMSSW_14_0_0", "--no-save", "--no-cache", "--platform", "all",
                 "--index-url", str(SNAPSHOTS / "CMSSW_14_0_0")])  # a folder: as file://
    out = capsys.readouterr().out
    assert code == 1
    assert "Wheels for Python 3.9.14 (321 pins)" in out
    assert ("macos-arm64: 288/321 (90%); sdist only, pip builds them (30): atomicwrites==1.4.1, "
            in out)
    assert ("; nothing installable (3): dxr==1.0.x, tensorflow==2.12.0, "
            "tensorflow-io-gcs-filesystem==0.32.0\n") in out
    assert "Nearest versions" not in out  # only with --python


# -- how close can I get on Python 3.12 --------------------------------------------------


@pytest.fixture(scope="module")
def laptop_locks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_laptop_locks(tmp_path_factory.mktemp("locks"))


def test_nearest_versions_with_a_wheel_for_python_3_12(laptop_locks: Path, capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    with StaticServer(LAPTOP_SNAPSHOT) as server:
        code, data = run_json(capsys, "--locks-dir", str(laptop_locks), "--platform", "all",
                              "--python", "3.12", "--index-url", server.url + "/simple")
    assert code == 1
    m = data["platforms"]
    assert m["python"] == "3.12.0" and len(m["rows"]) == 28
    rows = {r["name"]: r for r in m["rows"]}
    assert rows["numpy"]["cells"]["macos-arm64"] == {
        "status": "sdist-only", "wheel": None, "nearest": "1.26.0",
        "nearest_wheel": "numpy-1.26.0-cp312-cp312-macosx_11_0_arm64.whl"}
    assert rows["scipy"]["cells"]["linux-x86_64"]["status"] == "no-usable-file"  # Requires-Python <3.12
    assert rows["scipy"]["cells"]["linux-x86_64"]["nearest"] == "1.11.2"
    assert rows["six"]["cells"]["windows-amd64"] == {
        "status": "wheel", "nearest": None, "nearest_wheel": None, "wheel": "six-1.16.0-py2.py3-none-any.whl"}
    x86 = m["summary"]["linux-x86_64"]
    assert (x86["wheels"], x86["total"]) == (18, 28)
    assert x86["no_wheel_anywhere"] == ["docopt==0.6.2", "dxr==1.0.x"]
    moved = x86["moved"]
    assert [(mv["name"], mv["from"], mv["to"]) for mv in moved["moves"]] == [
        ("grpcio", "1.53.0", "1.59.0"), ("h5py", "3.8.0", "3.10.0"), ("ml-dtypes", "0.2.0", "0.3.0"),
        ("numpy", "1.24.3", "1.26.0"), ("pandas", "2.0.1", "2.1.1"), ("scipy", "1.10.1", "1.11.2"),
        ("tensorflow", "2.12.0", "2.16.1"), ("tensorflow-io-gcs-filesystem", "0.32.0", "0.37.1")]
    # numpy, scipy and pandas move together without a problem; tensorflow 2.16 wants newer pins
    assert (moved["consistent"], moved["stays"]) == (False, False)
    assert moved["problems"] == TF_PROBLEMS
    assert moved["release_problems"] == [
        "wheel==0.48.0 (unpinned, as pip would pick it) requires packaging>=24.0; "
        "the release pins packaging==23.0"]
    # tensorflow 2.16.1 on aarch64 Linux requires tensorflow-cpu-aws==2.16.1, which PyPI lacks
    aarch = m["summary"]["linux-aarch64"]["moved"]
    assert aarch["problems"][:4] == TF_PROBLEMS
    assert aarch["problems"][4].startswith(
        "tensorflow-cpu-aws==2.16.1 is not pinned (NO version on the index")
    # Windows: no tensorflow-io-gcs-filesystem wheel for 3.12 at all; tensorflow-intel brings the same
    win = m["summary"]["windows-amd64"]
    assert "tensorflow-io-gcs-filesystem==0.32.0" in win["no_wheel_anywhere"]
    assert len(win["moved"]["problems"]) == 8


def test_nearest_on_the_terminal(laptop_locks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "CMSSW_14_0_0", "--locks-dir", str(laptop_locks), "--no-save", "--no-cache",
                 "--platform", "all", "--python", "3.12", "--index-url", LAPTOP_SNAPSHOT.as_uri()])
    out = capsys.readouterr().out
    assert code == 1
    assert ("macos-arm64: 8 moves, NOT consistent, 4 new problems (and 1 the release has as pinned): "
            "grpcio 1.53.0 -> 1.59.0, h5py 3.8.0 -> 3.10.0, ml-dtypes 0.2.0 -> 0.3.0, "
            "numpy 1.24.3 -> 1.26.0, pandas 2.0.1 -> 2.1.1, scipy 1.10.1 -> 1.11.2, "
            "tensorflow 2.12.0 -> 2.16.1, tensorflow-io-gcs-filesystem 0.32.0 -> 0.37.1; "
            "no version with a wheel: docopt==0.6.2, dxr==1.0.x\n") in out
    assert f"    {TF_PROBLEMS[3]}\n" in out
    # an unpinned dependency of the part recorded: pip picks wheel 0.48.0, which wants packaging>=24
    assert "    wheel==0.48.0" not in out  # the release as pinned has it too: not a new problem


# -- the rule, on a small page -------------------------------------------------------------


def page(*filenames: str) -> Any:
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": [
        {"filename": f, "url": f"https://example.org/{f}", "hashes": {}} for f in filenames]}).encode()
    return parse_project_page(body, "application/vnd.pypi.simple.v1+json", "https://example.org/simple/demo/")


def test_nearest_is_the_resolvers_order() -> None:
    p = page("demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.1.tar.gz", "demo-1.2.tar.gz",
             "demo-1.3-cp312-cp312-win_amd64.whl", "demo-1.3.tar.gz", "demo-1.4-py3-none-any.whl")
    win = Target(python=Version("3.12"), platform="windows-amd64")
    mac = Target(python=Version("3.12"), platform="macos-arm64")
    # 1.2: itself, then 1.1 (1 below, sdist), 1.3 (1 above, a wheel on Windows only), 1.0 (2 below)
    assert platforms.cell(p, Version("1.2"), win, nearest=True).nearest == Version("1.3")
    assert platforms.cell(p, Version("1.2"), mac, nearest=True).nearest == Version("1.0")
    # on equal distance the lower version wins: 1.1 -> 1.0, not 1.3 nor 1.4
    assert platforms.cell(p, Version("1.1"), win, nearest=True).nearest == Version("1.0")
    assert platforms.cell(p, Version("1.4"), mac) == platforms.Cell(
        status=PinStatus.WHEEL, wheel="demo-1.4-py3-none-any.whl")
    assert platforms.cell(p, Version("1.1"), mac, nearest=True).label == "sdist"
    assert platforms.cell(p, Version("9.9"), mac).status is PinStatus.NO_VERSION
    assert platforms.cell(None, Version("1.0"), mac).label == "not on index"


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "CMSSW_14_0_0", "--format", "html"]) == 2
    assert "--format html writes the laptop report: add --platform all" in capsys.readouterr().err
    assert main(["check", "CMSSW_14_0_0", "--out", "x.html", "--platform", "all"]) == 2
    assert "--out is for --format html" in capsys.readouterr().err
    assert main(["check", "CMSSW_14_0_0", "--platform", "all", "--format", "html", "--json"]) == 2
    assert "give --out FILE for the page" in capsys.readouterr().err
    assert main(["check", "CMSSW_14_0_0", "--index-url", "ftp://example.org/simple"]) == 2
    assert capsys.readouterr().err == (
        "error: --index-url 'ftp://example.org/simple': ftp:// is not supported; "
        "give https://..., http://... or file://DIR\n")
    assert main(["check", "CMSSW_14_0_0", "--index-url", "no/such/folder"]) == 2
    assert "error: --index-url 'no/such/folder': no such folder;" in capsys.readouterr().err


def test_snapshot_laptop_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the small fixture index: the laptop report from a --laptop snapshot is the original's
    from tests.check.test_check import FIXTURE, release

    locks = tmp_path / "locks"
    record.write_document(record.record_path(locks, "CMSSW_99_0_0"), record.new_document(release()))
    args = ["--locks-dir", str(locks), "--python", "3.12"]
    with StaticServer(FIXTURE) as server:
        url = server.url + "/simple"
        assert main(["snapshot", "CMSSW_99_0_0", *args, "--laptop", "--out", str(tmp_path / "snap"),
                     "--index-url", url, "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
        capsys.readouterr()
        main(["check", "CMSSW_99_0_0", *args, "--platform", "all", "--no-save", "--no-cache", "--json",
              "--index-url", url])
        original = json.loads(capsys.readouterr().out)["platforms"]
    main(["check", "CMSSW_99_0_0", *args, "--platform", "all", "--no-save", "--no-cache", "--json",
          "--index-url", str(tmp_path / "snap")])
    again = json.loads(capsys.readouterr().out)["platforms"]
    assert again == original
    moved = original["summary"]["linux-x86_64"]["moved"]  # nothing moves: every pin is pure Python
    assert (moved["moves"], moved["consistent"], moved["stays"]) == ([], False, True)
    assert moved["release_problems"] == ["alpha==1.0 requires beta<2; the release pins beta==2.0"]
    assert json.loads((tmp_path / "snap" / "SNAPSHOT.json").read_text())["laptop"] == [
        "linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64", "windows-amd64"]

"""stackmeta check on a small release against the fixture index served on loopback: every
group of the report, the record's check section, exit codes, and index faults."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.check import closure
from stackmeta.check.report import CheckReport, PinStatus
from stackmeta.cli import main
from stackmeta.index import IndexClient
from stackmeta.index.cache import Cache
from stackmeta.record import BuildKind, Package, Release
from tests.httpserver import StaticServer, unreachable_url

FIXTURE = Path(__file__).parents[1] / "data" / "index" / "fixture"
ARCH = "el9_amd64_gcc12"

PINS = {
    "alpha": "1.0", "beta": "2.0", "gamma": "1.0", "six": "1.16.0", "urllib3": "2.0.0",
    "oldsdist": "0.1", "newsdist": "1.0", "py3only": "1.0", "yankedpkg": "1.0",
    "notthere": "1.0", "epsilon-from-git": "0.3", "oddversion": "1.0.x",
}


def release() -> Release:
    pkgs = []
    for name, version in PINS.items():
        try:
            v: Version | None = Version(version)
        except ValueError:
            v = None
        git = name == "epsilon-from-git"
        pkgs.append(Package(
            rpm=f"py3-{name}", name=canonicalize_name(name), display_name=name, version_written=version,
            version=v, build=BuildKind.VCS if git else BuildKind.PYPI,
            source_url="git+https://example.org/epsilon.git" if git else None, arches=(ARCH,)))
    # a package that ships only on aarch64 is not part of an x86_64 check
    pkgs.append(Package(rpm="py3-armonly", name=canonicalize_name("armonly"), display_name="armonly",
                        version_written="1.0", version=Version("1.0"), build=BuildKind.PYPI,
                        arches=("el9_aarch64_gcc12",)))
    return Release(release="CMSSW_99_0_0", metapackage_version=Version("99.0.0"), arches=(ARCH,),
                   python=Version("3.9.14"), source="test", stackmeta_version="0", packages=tuple(pkgs))


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer(FIXTURE) as s:
        yield s


@pytest.fixture
def locks(tmp_path: Path) -> Path:
    folder = tmp_path / "locks"
    record.write_document(record.record_path(folder, "CMSSW_99_0_0"), record.new_document(release()))
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_groups(server: StaticServer, tmp_path: Path) -> None:
    rel = release()
    target = closure.default_target(rel)
    with IndexClient(server.url + "/simple", tmp_path / "cache", retries=1, backoff=0.01) as c:
        r = closure.run_check(rel, target, c)
    assert r.python == "3.9.14" and r.platform == "linux-x86_64"
    assert [c.message for c in r.conflicts] == ["alpha==1.0 requires beta<2; the release pins beta==2.0"]
    # gamma[extra1] (asked by alpha) brings delta; pip would pick 3.0, not the 4.0rc1 pre-release
    assert [u.message for u in r.unpinned] == [
        "delta>=2 is not pinned (pip would pick 3.0); required by gamma==1.0: delta>=2; extra == \"extra1\""]
    assert [(p.spec, p.requires_dist) for p in r.picks] == [("delta==3.0", ())]
    assert r.pin("gamma").extras == ("extra1",)
    status = {p.name: p.status for p in r.pins}
    assert status == {
        "alpha": PinStatus.WHEEL, "beta": PinStatus.WHEEL, "gamma": PinStatus.WHEEL, "six": PinStatus.WHEEL,
        "urllib3": PinStatus.WHEEL, "oldsdist": PinStatus.SDIST_ONLY, "newsdist": PinStatus.SDIST_ONLY,
        "py3only": PinStatus.NO_FILE, "yankedpkg": PinStatus.WHEEL, "notthere": PinStatus.NO_PROJECT,
        "epsilon-from-git": PinStatus.NO_PROJECT, "oddversion": PinStatus.NOT_PEP440,
    }
    assert [p.message for p in r.python_problems] == [
        "py3only==1.0 requires Python >=3.12 (py3only-1.0-py3-none-any.whl); the release's Python is 3.9.14"]
    assert [p.spec for p in r.yanked] == ["yankedpkg==1.0"] and r.pin("yankedpkg").yanked_reason == "broken"
    assert [p.spec for p in r.unknown_dependencies] == ["oldsdist==0.1"]
    assert r.pin("newsdist").requires_dist == ("six",) and r.pin("newsdist").metadata_source == "pkg-info"
    assert r.pin("six").metadata_source == "range" and r.pin("urllib3").metadata_source == "pep658"
    assert "CMS builds it from vcs git+https://example.org/epsilon.git" in r.pin("epsilon-from-git").notes
    six = r.pin("six").files[0]
    assert (six.filename, six.sha256, six.size, six.kind, six.usable) == (
        "six-1.16.0-py2.py3-none-any.whl", "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
        11053, "wheel", True)
    assert r.blocking and not r.incomplete
    assert sorted(p.name for p in r.fine) == ["gamma", "six", "urllib3"]
    assert CheckReport.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_cli_json_and_record(server: StaticServer, locks: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--json",
                             "--index-url", server.url + "/simple", "--cache-dir", str(tmp_path / "c"))
    assert code == 1, err
    data = json.loads(out)
    assert data["blocking"] is True and data["exit_code"] == 1
    doc = json.loads(record.record_path(locks, "CMSSW_99_0_0").read_text())
    assert set(doc) == {"format", "release", "check"}
    assert CheckReport.from_json(doc["check"]).conflicts == CheckReport.from_json(data["report"]).conflicts


def test_cli_process_ends_with_everything_written(server: StaticServer, locks: Path, tmp_path: Path) -> None:
    # the command as installed (entrypoint: exit handlers run, then the process ends without
    # freeing its objects one by one): output complete, record saved, cache written
    cmd = [sys.executable, "-c", "from stackmeta.cli import entrypoint; entrypoint()",
           "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--json",
           "--index-url", server.url + "/simple", "--cache-dir", str(tmp_path / "c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["exit_code"] == 1
    assert "check" in json.loads(record.record_path(locks, "CMSSW_99_0_0").read_text())
    store = Cache(tmp_path / "c")
    try:
        assert len(store.metadata_keys()) >= 5
    finally:
        store.close()
    # a reader that goes away early (| head -c 10): no traceback
    shell = subprocess.run(" ".join(f"'{c}'" for c in cmd) + " | head -c 10", shell=True, capture_output=True,
                           text=True, check=False)
    assert len(shell.stdout) == 10 and "Traceback" not in shell.stderr


def test_cli_terminal_output(server: StaticServer, locks: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-save",
                             "--index-url", server.url + "/simple", "--cache-dir", str(tmp_path / "c"))
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(f"CMSSW_99_0_0 on Python 3.9.14 linux-x86_64, {server.url}/simple: "
                            "NOT installable")
    for title in ("Not installable (4)", "Conflicts (1)", "Unpinned dependencies (1)",
                  "Requires-Python excludes 3.9.14 (1)", "Sdist only, unknown dependencies, yanked",
                  "Fine: 3 of 12 pins"):
        assert title in out
    assert "Traceback" not in out + err
    assert "check" not in json.loads(record.record_path(locks, "CMSSW_99_0_0").read_text())


def test_consistent_release_exits_0(server: StaticServer, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rel = release()
    keep = {"alpha", "gamma", "six", "urllib3"}
    pkgs = [p for p in rel.packages if p.name in keep]
    pkgs.append(Package(rpm="py3-beta", name=canonicalize_name("beta"), display_name="beta",
                        version_written="1.5", version=Version("1.5"), build=BuildKind.PYPI, arches=(ARCH,)))
    ok = Release(**{**{f: getattr(rel, f) for f in rel.__dataclass_fields__}, "packages": tuple(pkgs)})
    locks = tmp_path / "locks"
    record.write_document(record.record_path(locks, "CMSSW_99_0_0"), record.new_document(ok))
    code, out, _ = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-cache",
                           "--index-url", server.url + "/simple")
    assert code == 0
    assert "pip can install every pin" in out.splitlines()[0]


def test_unreachable_index(locks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = unreachable_url() + "/simple"
    args = ["check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-cache", "--retries", "0",
            "--index-url", url]
    before = (locks / "CMSSW_99_0_0.json").read_bytes()
    for extra in ((), ("--json",)):
        code, out, err = run_cli(capsys, *args, *extra)
        assert code == 1
        # one line for the whole index (the not-PEP 440 pin is never asked), not a row per package
        [line] = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
        assert len(err.strip().splitlines()) <= 2  # the "checking ..." line, then the error
        assert line.startswith("error: the index answered none of the release's 11 project pages, the first: "
                               f"{url}/")
        assert ": cannot connect (" in line and "check that the index is reachable, or retry later" in line
        assert line.endswith(f"nothing was saved in {locks / 'CMSSW_99_0_0.json'}")
        assert "Traceback" not in out + err and "Results missing" not in out
    assert (locks / "CMSSW_99_0_0.json").read_bytes() == before


def test_faults_leave_the_other_pins_checked(server: StaticServer, tmp_path: Path) -> None:
    server.fail("/simple/beta/", "500")  # beta's page never comes
    server.fail("/files/gamma/*.metadata", "garbage")  # gamma's metadata is broken
    server.fail("/simple/six/", "redirect-loop")
    rel = release()
    with IndexClient(server.url + "/simple", tmp_path / "cache", retries=1, backoff=0.01) as c:
        r = closure.run_check(rel, closure.default_target(rel), c)
    missing = {p.name: p.error for p in r.missing}
    u = server.url
    assert missing == {
        "beta": f"{u}/simple/beta/: HTTP 500 (after 2 attempts): check that the index is reachable, "
                "or retry later",
        "gamma": f"{u}/files/gamma/gamma-1.0-py3-none-any.whl.metadata: metadata of gamma is binary, "
                 "not core metadata",
        "six": f"{u}/simple/six/: redirect loop (back to {u}/simple/six/): fix the index URL",
    }
    assert r.incomplete
    assert r.pin("beta").status is PinStatus.MISSING
    # the others were checked all the same
    assert r.pin("urllib3").status is PinStatus.WHEEL and r.pin("urllib3").requires_dist
    assert [p.message for p in r.python_problems] == [
        "py3only==1.0 requires Python >=3.12 (py3only-1.0-py3-none-any.whl); the release's Python is 3.9.14"]
    store = Cache(tmp_path / "cache")
    cached = [sha for sha, _ in store.metadata_keys()]
    store.close()

    def keys(name: str, version: str) -> set[str | None]:  # where the cache would keep its metadata
        page = c.project(name)  # (the page the check read: the client keeps it)
        assert page is not None
        f = next(f for f in page.files_of(Version(version)) if f.kind == "wheel")
        return {c._scoped_key("md", f.sha256), f.core_metadata_sha256}

    assert keys("gamma", "1.0").isdisjoint(cached) and keys("urllib3", "2.0.0") & set(cached)


def test_missing_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "CMSSW_1_0_0", "--locks-dir", str(tmp_path))
    assert code == 1
    assert err.startswith(f"error: no record {tmp_path}/CMSSW_1_0_0.json: run 'stackmeta export' first")


def test_default_target_follows_the_arch() -> None:
    rel = record.load_release(Path(__file__).parents[2] / "locks", "CMSSW_9_3_0")
    assert str(closure.default_target(rel)) == "Python 2.7.11 on linux-x86_64"  # slc6_amd64_gcc630
    assert str(closure.default_target(rel, platform="linux-aarch64")) == "Python 2.7.13 on linux-aarch64"
    assert str(closure.default_target(rel, "3.9")) == "Python 3.9 on linux-x86_64"


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "inf"])
def test_timeout_must_be_seconds(locks: Path, timeout: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-save",
                             "--no-cache", "--index-url", "http://127.0.0.1:9/simple", f"--timeout={timeout}")
    assert (code, out, err) == (2, "", f"error: --timeout {float(timeout)}: give a number of seconds above 0 "
                                       "(default: 30)\n")


def test_a_check_with_results_missing_keeps_the_saved_one(server: StaticServer, locks: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = record.record_path(locks, "CMSSW_99_0_0")
    code, _, _ = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--json",
                         "--index-url", server.url + "/simple", "--cache-dir", str(tmp_path / "c"))
    good = path.read_bytes()
    assert code == 1 and "check" in json.loads(good)
    server.fail("/simple/beta/", "500")  # one page never comes
    code, out, err = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-cache",
                             "--retries", "0", "--index-url", server.url + "/simple")
    assert path.read_bytes() == good  # a result is missing: the earlier check stays
    assert f"warning: not saved in {path}: 1 results missing (index errors); the record keeps its earlier " \
           "check section: run again" in " ".join(err.split())
    assert "saved in" not in out
    code, out, _ = run_cli(capsys, "check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--no-cache", "--json",
                           "--retries", "0", "--index-url", server.url + "/simple")
    assert json.loads(out)["saved"] is False and path.read_bytes() == good

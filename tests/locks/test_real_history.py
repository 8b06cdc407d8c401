"""export --all on a sample of the real cmsdist history (the shared bundle, cloned once a
session): odd names, two rpms of one project, arch conflicts, shell loops; and the committed
locks/all/ is what that batch writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.package.metapackage import distribution_name
from stackmeta.package.pipeline import skipped
from tests.clirunner import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ("CMSSW_13_1_0_SKYLAKEAVX512_pre3", "CMSSW_12_4_21_HLT_patch1", "CMSSW_11_1_0-tool-conf",
          "CMSSW_11_1_0", "CMSSW_8_4_0", "CMSSW_13_2_6_patch1", "CMSSW_14_0_0")
ARCHES = ("el8_amd64_*", "slc7_amd64_*", "slc6_amd64_*", "cc8_amd64_*")


@pytest.fixture(scope="module")
def sample(cmsdist_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    locks = tmp_path_factory.mktemp("locks")
    args = ["export", "--all", "--cmsdist", str(cmsdist_clone), "--locks-dir", str(locks), "--python", "both",
            "--json"]
    for name in SAMPLE:
        args += ["--match", name]
    for arch in ARCHES:
        args += ["--arch", arch]
    code, out, _ = run_cli(*args)
    assert code == 0, out
    done = json.loads(out)
    assert (sorted(done["exported"]), done["failed"]) == (sorted(SAMPLE), [])
    return locks


def test_every_name_is_exported_as_it_is(sample: Path) -> None:
    assert set(record.list_records(sample)) == {
        *SAMPLE, "CMSSW_11_1_0-py2", "CMSSW_11_1_0-tool-conf-py2", "CMSSW_8_4_0"}
    rel = record.load_release(sample, "CMSSW_13_1_0_SKYLAKEAVX512_pre3")
    assert (rel.release, str(rel.metapackage_version)) == ("CMSSW_13_1_0_SKYLAKEAVX512_pre3", "13.1.0rc3")
    assert distribution_name(rel.release) == "cms-analysis-stack-skylakeavx512"
    assert str(record.load_release(sample, "CMSSW_11_1_0-tool-conf").metapackage_version) == "11.1.0"
    assert skipped(sample, "CMSSW_11_1_0-tool-conf") == (
        "a tag of CMSSW_11_1_0's tool-conf build: CMSSW_11_1_0 has its own record")
    assert skipped(sample, "CMSSW_13_1_0_SKYLAKEAVX512_pre3") is None  # no CMSSW_13_1_0_pre3 record here


def test_two_rpms_of_pygments_say_which_supplies_which(sample: Path) -> None:
    rel = record.load_release(sample, "CMSSW_8_4_0")
    pygments = rel.package("pygments")
    assert (str(pygments.version), dict(pygments.rpm_versions)) == (
        "2.2.0", {"py2-Pygments": "2.2.0", "py2-pygments": "1.6"})
    [problem] = [p for p in rel.problems if p.kind == "version-mismatch"]
    assert problem.where == "py2-Pygments.spec:1"
    assert "py2-pygments 1.6 (" in problem.message and "copied into py2-pippkgs" in problem.message


def test_a_merged_release_pins_one_version_per_machine(sample: Path) -> None:
    rel = record.load_release(sample, "CMSSW_13_2_6_patch1")
    assert rel.arches == ("el8_amd64_gcc11", "slc7_amd64_gcc11")  # the production arch first
    lines = (sample / "CMSSW_13_2_6_patch1.txt").read_text().splitlines()
    assert [line for line in lines if line.startswith("cryptography")] == ["cryptography==40.0.2"]
    conflicts = [p for p in rel.problems if p.kind == "arch-conflict"]
    assert any(p.message.startswith("cryptography: 40.0.2 on el8_amd64_gcc11 and 3.2.1 on slc7_amd64_gcc11")
               for p in conflicts)
    assert all(p.where.split(":")[-1].isdigit() for p in conflicts)  # file:line


def test_shell_loops_are_evaluated_and_what_is_left_says_where(sample: Path) -> None:
    for name in record.list_records(sample):
        for problem in record.load_release(sample, name).problems:
            assert "for' is outside" not in problem.message
            assert ":" in problem.where, (name, problem)


def test_committed_history_is_what_the_batch_writes(
        sample: Path, cmsdist_clone: Path, tmp_path: Path) -> None:
    """locks/all/ was written by `export --all --python both --locks-only`: for releases whose
    every arch is in the sample, the batch's locks are byte for byte the committed ones."""
    args = ["export", "--all", "--cmsdist", str(cmsdist_clone), "--locks-dir", str(tmp_path),
            "--python", "both", "--locks-only"]
    for name in ("CMSSW_13_1_0_SKYLAKEAVX512_pre3", "CMSSW_12_4_21_HLT_patch1", "CMSSW_8_4_0"):
        args += ["--match", name]
    assert run_cli(*args)[0] == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["CMSSW_12_4_21_HLT_patch1.txt", "CMSSW_13_1_0_SKYLAKEAVX512_pre3.txt",
                       "CMSSW_8_4_0.txt"]
    for name in written:
        assert (tmp_path / name).read_bytes() == (ROOT / "locks" / "all" / name).read_bytes()
        assert (tmp_path / name).read_bytes() == (sample / name).read_bytes()  # records or not: one lock


def test_history_and_which_match_an_independent_reading_of_the_recipes(cmsdist_clone: Path) -> None:
    """`stackmeta history numpy` and `stackmeta which` read the committed locks/all/; for three
    releases the version is the one `git grep` finds in the release's pip/requirements.txt."""
    tags = subprocess.run(["git", "-C", str(cmsdist_clone), "tag", "-l", "REL/CMSSW_1[234]_0_0/*"],
                          capture_output=True, text=True, check=True).stdout.split()
    for release in ("CMSSW_12_0_0", "CMSSW_13_0_0", "CMSSW_14_0_0"):
        tag = sorted(t for t in tags if t.split("/")[1] == release)[0]
        found = subprocess.run(["git", "-C", str(cmsdist_clone), "grep", "-h", "^numpy==", tag, "--",
                                "pip/requirements.txt"], capture_output=True, text=True, check=True).stdout
        version = found.strip().split("==")[1]
        code, out, _ = run_cli("history", "numpy", "--json", "--locks-dir", str(ROOT / "locks"),
                           "--match", release)
        assert (code, json.loads(out)["spans"]) == (
            0, [{"version": version, "first": release, "last": release, "releases": 1}])
        code, out, _ = run_cli("which", f"numpy=={version}", "--json", "--locks-dir", str(ROOT / "locks"),
                           "--match", "CMSSW_1[234]_0_0")
        assert code == 0 and release in [m["release"] for m in json.loads(out)["matches"]]


def test_workers_write_what_one_process_writes(cmsdist_clone: Path, tmp_path: Path) -> None:
    """Two workers, each walking its own span of the history and then taking chunks from the
    far end of the other's, write byte for byte the records and locks one process writes
    (the caches a worker carries from release to release change nothing)."""
    written = {}
    for jobs in ("1", "2"):
        locks = tmp_path / jobs
        code, out, _ = run_cli("export", "--all", "--cmsdist", str(cmsdist_clone), "--locks-dir", str(locks),
                               "--match", "CMSSW_12_4_*", "--jobs", jobs, "--json")
        assert (code, json.loads(out)["failed"]) == (0, [])
        written[jobs] = {p.name: p.read_bytes() for p in sorted(locks.iterdir())}
    assert len(written["1"]) == 2 * 44  # 44 releases of CMSSW_12_4, a record and a lock each
    assert written["2"] == written["1"]

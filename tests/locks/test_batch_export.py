"""stackmeta export --all over a synthetic cmsdist history (benchmarks/make_history.py), real git."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.cli import main
from stackmeta.locks.batch import up_to_date
from stackmeta.locks.export import export
from tests.clirunner import interruptible

ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared" / "cmsdist-excerpts"
LOCKS = ROOT / "locks"
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_history import make_history  # noqa: E402

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the shared cmsdist excerpts are not at {SHARED}"
)

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], input=stdin, env=GIT_ENV, check=True,
                          capture_output=True).stdout.decode()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 tags: CMSSW_14_0_0 .. _1_patch0 (el9), CMSSW_10_6_* (slc7), CMSSW_9_3_* on two arches."""
    repo = tmp_path_factory.mktemp("history") / "cmsdist"
    make_history(repo, 20, SHARED)
    return repo


@pytest.fixture
def repo(history: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cmsdist"
    shutil.copytree(history, copy)
    return copy


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def state(repo: Path) -> tuple[str, dict[str, tuple[int, str]]]:
    """The refs and every file of the clone (content and mtime)."""
    snap = {str(p.relative_to(repo)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(repo.rglob("*")) if p.is_file()}
    return git(repo, "for-each-ref"), snap


def add_tag(repo: Path, tag: str, parent_tag: str, path: str, data: bytes) -> str:
    """A commit on top of *parent_tag* that changes one file, tagged *tag*; returns the commit."""
    parent = git(repo, "rev-parse", f"{parent_tag}^{{commit}}").strip()
    stream = (
        f"commit refs/heads/extra\ncommitter t <t@example.org> 1700000000 +0000\ndata 5\nextra\n"
        f"from {parent}\nM 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n\n"
        + f"reset refs/tags/{tag}\nfrom refs/heads/extra\n\n".encode()
    )
    git(repo, "fast-import", "--quiet", stdin=stream)
    return git(repo, "rev-parse", f"{tag}^{{commit}}").strip()


# -- the same bytes as one export per release -------------------------------------------


def test_batch_equals_single_exports_on_a_bare_clone(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "cmsdist.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(history), str(bare)], env=GIT_ENV, check=True)
    before = state(bare)
    code, out, err = run(capsys, "export", "--all", "--cmsdist", str(bare), "--locks-dir",
                         str(tmp_path / "batch"), "--jobs", "2")
    assert (code, out) == (0, "exported 15, skipped 0 (up to date), failed 0\n")
    assert err == ""
    assert state(bare) == before  # nothing in the clone changed, not even a ref
    for rel in ("CMSSW_14_0_0", "CMSSW_14_0_1", "CMSSW_10_6_0_patch3", "CMSSW_9_3_1"):
        arches = ["slc6_amd64_gcc630", "slc7_aarch64_gcc700"] if rel.startswith("CMSSW_9") else []
        export(rel, locks_dir=tmp_path / "single", cmsdist=bare, arches=arches)
    batch, single = files(tmp_path / "batch"), files(tmp_path / "single")
    assert len(batch) == 30
    assert {name: batch[name] for name in single} == single
    header = batch["CMSSW_9_3_1.txt"].decode().splitlines()[2:5]
    tags = git(bare, "for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/tags/REL/CMSSW_9_3_1")
    assert header == [
        "# arches: slc6_amd64_gcc630, slc7_aarch64_gcc700",
        "# Python: 2.7.11 (slc6_amd64_gcc630), 2.7.13 (slc7_aarch64_gcc700)",
        "# source: git " + ", ".join(tags.splitlines()),
    ]


def test_excerpt_folders_regenerate_the_committed_locks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(SHARED), "--locks-dir", str(tmp_path),
                       "--jobs", "1")
    assert (code, out) == (0, "exported 3, skipped 0 (up to date), failed 0\n")
    for name in ("CMSSW_9_3_0", "CMSSW_10_6_0", "CMSSW_14_0_0"):
        assert (tmp_path / f"{name}.txt").read_bytes() == (LOCKS / f"{name}.txt").read_bytes()
        new = json.loads((tmp_path / f"{name}.json").read_text())
        assert new["release"] == json.loads((LOCKS / f"{name}.json").read_text())["release"]


def test_a_folder_that_is_not_cmsdist_fails_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = tmp_path / "folders"
    folders.mkdir()
    (folders / "CMSSW_14_0_0__el9_amd64_gcc12").symlink_to(SHARED / "CMSSW_14_0_0__el9_amd64_gcc12")
    (folders / "CMSSW_13_0_0__el8_amd64_gcc11").mkdir()
    locks = tmp_path / "locks"
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(folders), "--locks-dir", str(locks),
                       "--jobs", "1", "--json")
    assert code == 1 and json.loads(out)["exported"] == ["CMSSW_14_0_0"]
    assert json.loads(out)["failed"] == [{
        "release": "CMSSW_13_0_0", "lock": "CMSSW_13_0_0", "arches": ["el8_amd64_gcc11"],
        "message": f"{folders}/CMSSW_13_0_0__el8_amd64_gcc11 is not a cmsdist tree "
                   "(no cmssw-tool-conf.spec, cmssw-tools.spec, rpm-preamble.file)",
    }]
    written = record.load_release(locks, "CMSSW_14_0_0")
    assert written.source == "folder folders: CMSSW_14_0_0__el9_amd64_gcc12"
    assert written.packages == record.load_release(LOCKS, "CMSSW_14_0_0").packages


# -- skipping, forcing, a moved tag -----------------------------------------------------


def test_up_to_date_records_are_skipped(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = tmp_path / "locks"
    args = ["export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks), "--match", "CMSSW_14_*"]
    assert run(capsys, *args)[:2] == (0, "exported 5, skipped 0 (up to date), failed 0\n")
    before = {p.name: p.stat().st_mtime_ns for p in locks.iterdir()}
    assert run(capsys, *args)[:2] == (0, "exported 0, skipped 5 (up to date), failed 0\n")
    assert {p.name: p.stat().st_mtime_ns for p in locks.iterdir()} == before
    # A tag moved to another commit: that release only is exported again.
    old = (locks / "CMSSW_14_0_1.txt").read_text()
    text = git(repo, "show", "REL/CMSSW_14_0_1/el9_amd64_gcc12:pip/requirements.txt")
    commit = add_tag(repo, "REL/CMSSW_14_0_1/el9_amd64_gcc12", "REL/CMSSW_14_0_1/el9_amd64_gcc12",
                     "pip/requirements.txt", text.replace("\nsix==1.16.0\n", "\nsix==1.16.1\n").encode())
    git(repo, "tag", "-f", "REL/CMSSW_14_0_1/el9_amd64_gcc12", commit)
    code, out, _ = run(capsys, *args, "--json")
    assert code == 0
    assert json.loads(out) == {"exported": ["CMSSW_14_0_1"], "skipped": [
        "CMSSW_14_0_0", "CMSSW_14_0_0_patch1", "CMSSW_14_0_0_patch2", "CMSSW_14_0_0_patch3"], "failed": []}
    new = (locks / "CMSSW_14_0_1.txt").read_text()
    assert "six==1.16.0\n" in old and "six==1.16.1\n" in new
    assert f"# source: git {commit} REL/CMSSW_14_0_1/el9_amd64_gcc12\n" in new
    # A lock that lost its pair is not up to date; --force exports everything again.
    (locks / "CMSSW_14_0_0.txt").unlink()
    assert run(capsys, *args)[:2] == (0, "exported 1, skipped 4 (up to date), failed 0\n")
    assert run(capsys, *args, "--force")[:2] == (0, "exported 5, skipped 0 (up to date), failed 0\n")


# -- a broken tag ------------------------------------------------------------------------


def test_a_broken_tag_is_reported_and_the_others_go_on(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_tag(repo, "REL/CMSSW_14_0_2/el9_amd64_gcc12", "REL/CMSSW_14_0_1/el9_amd64_gcc12", "py3-six.spec",
            b"no header here\n")
    locks = tmp_path / "locks"
    args = ["export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks), "--match", "CMSSW_14_*"]
    code, out, err = run(capsys, *args)
    assert code == 1
    assert out == "exported 5, skipped 0 (up to date), failed 1\n"
    message = "py3-six.spec:1: no '### RPM <group> <name> <version>' header: is this a cmsdist spec?"
    assert err == (
        f"warning: CMSSW_14_0_2 (el9_amd64_gcc12): {message}\n"
        f"error: 1 of 6 releases failed to export, first CMSSW_14_0_2: {message}\n"
    )
    assert not (locks / "CMSSW_14_0_2.json").exists() and not (locks / "CMSSW_14_0_2.txt").exists()
    code, out, _ = run(capsys, *args, "--json")
    assert code == 1
    assert json.loads(out)["failed"] == [
        {"release": "CMSSW_14_0_2", "lock": "CMSSW_14_0_2", "arches": ["el9_amd64_gcc12"], "message": message}
    ]
    assert len(json.loads(out)["skipped"]) == 5


# -- interrupted and resumed -------------------------------------------------------------


def test_ctrl_c_leaves_whole_records_and_the_next_run_resumes(tmp_path: Path) -> None:
    repo = tmp_path / "cmsdist"
    make_history(repo, 240, SHARED)  # 180 releases: long enough (seconds) that Ctrl-C lands mid-run
    locks = tmp_path / "locks"
    cmd = [sys.executable, "-m", "stackmeta", "export", "--all", "--cmsdist", str(repo), "--locks-dir",
           str(locks), "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while not list(locks.glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert err.endswith("interrupted: nothing half-written was left behind\n")
    names = sorted(p.name for p in locks.iterdir())
    assert not [n for n in names if n.startswith(".")]  # no temporary file left
    done = [n[:-5] for n in names if n.endswith(".json")]
    assert 0 < len(done) < 180
    for name in done:  # each record finished is whole, with its lock
        rel = record.load_release(locks, name)
        assert (locks / f"{name}.txt").read_text().splitlines()[4] == f"# source: {rel.source}"
    resumed = subprocess.run([*cmd, "--json"], capture_output=True, text=True, cwd=ROOT, check=True)
    summary = json.loads(resumed.stdout)
    assert sorted(summary["skipped"]) == done
    assert len(summary["exported"]) + len(done) == 180 and summary["failed"] == []


# -- choosing releases and arches -------------------------------------------------------


def test_match_arch_patterns_and_each_policy(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locks = tmp_path / "locks"
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks),
                       "--match", "CMSSW_9_3_0_patch[12]", "--match", "CMSSW_10_6_0", "--arch-policy", "each")
    assert (code, out) == (0, "exported 5, skipped 0 (up to date), failed 0\n")
    assert sorted(p.stem for p in locks.glob("*.json")) == [
        "CMSSW_10_6_0__slc7_amd64_gcc700",
        "CMSSW_9_3_0_patch1__slc6_amd64_gcc630", "CMSSW_9_3_0_patch1__slc7_aarch64_gcc700",
        "CMSSW_9_3_0_patch2__slc6_amd64_gcc630", "CMSSW_9_3_0_patch2__slc7_aarch64_gcc700"]
    name = "CMSSW_9_3_0_patch1__slc6_amd64_gcc630"
    text = (locks / f"{name}.txt").read_text()
    assert "# arch: slc6_amd64_gcc630\n" in text
    assert f"# usage: pip install -c {name}.txt <package>...\n" in text
    single = tmp_path / "single"
    export("CMSSW_9_3_0_patch1", locks_dir=single, cmsdist=repo, arches=["slc6_amd64_gcc630"])
    assert text == (single / "CMSSW_9_3_0_patch1.txt").read_text().replace(
        "-c CMSSW_9_3_0_patch1.txt", f"-c {name}.txt")
    assert record.load_release(locks, name).release == "CMSSW_9_3_0_patch1"
    # The other stack of a release: its own name, skipped when up to date like the default.
    args = ["export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks), "--match", "CMSSW_10_6_0",
            "--python", "2"]
    assert run(capsys, *args)[:2] == (0, "exported 1, skipped 0 (up to date), failed 0\n")
    assert (locks / "CMSSW_10_6_0-py2.txt").read_text().count("==") > 100
    assert run(capsys, *args)[:2] == (0, "exported 0, skipped 1 (up to date), failed 0\n")
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks),
                       "--arch", "slc7_*", "--match", "CMSSW_9_3_0_patch1", "--json")
    assert json.loads(out)["exported"] == ["CMSSW_9_3_0_patch1"]
    assert "# arch: slc7_aarch64_gcc700\n" in (locks / "CMSSW_9_3_0_patch1.txt").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["CMSSW_14_0_0", "--all"], "give a RELEASE (CMSSW_14_0_0) or --all, not both"),
        (["--match", "CMSSW_14_*"], "give a RELEASE, or --all for every release tag of the --cmsdist clone"),
        (["CMSSW_14_0_0", "--force"],
         "--match, --arch-policy, --force, --locks-only and --jobs go with --all"),
        (["--all", "--match", "CMSSW_15_*"],
         "no release tags matching CMSSW_15_* in {repo}: check --match/--arch "
         "(tags are REL/<release>/<arch>)"),
        (["--all", "--version", "1.0"], "--version needs a RELEASE: each release has its own version"),
        (["--all", "--jobs", "0"], "--jobs 0: give 1 or more worker processes"),
    ],
)
def test_usage_errors(history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                      message: str) -> None:
    code, out, err = run(capsys, "export", *args, "--cmsdist", str(history), "--locks-dir", str(tmp_path))
    assert (code, out, err) == (2, "", f"error: {message.format(repo=history)}\n")
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_locks_dir_that_is_a_file_stops_the_batch(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    locks = tmp_path / "locks"
    locks.write_text("not a folder")
    code, out, err = run(capsys, "export", "--all", "--cmsdist", str(history), "--locks-dir", str(locks),
                         "--jobs", jobs)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot write {locks}/CMSSW_") and err.count("\n") == 1
    assert err.endswith(f": {locks} is a file, not a folder: give another folder (--locks-dir, --out)\n")
    assert locks.read_text() == "not a folder" and os.listdir(tmp_path) == ["locks"]


def test_up_to_date_needs_both_files(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stackmeta.locks.batch import Job

    run(capsys, "export", "--all", "--cmsdist", str(repo), "--locks-dir", str(tmp_path),
        "--match", "CMSSW_10_6_0")
    source = record.load_release(tmp_path, "CMSSW_10_6_0").source
    job = Job(release="CMSSW_10_6_0", base="CMSSW_10_6_0", arches=("slc7_amd64_gcc700",), source=source,
              rank=("slc7_amd64_gcc700",))
    assert up_to_date(tmp_path, job) == "CMSSW_10_6_0"
    assert up_to_date(tmp_path, job, 2) is None  # the default stack is Python 3
    other = Job(release="CMSSW_10_6_0", base="CMSSW_10_6_0", arches=job.arches, source=source + "x",
                rank=job.rank)
    assert up_to_date(tmp_path, other) is None
    (tmp_path / "CMSSW_10_6_0.json").write_text("{")
    assert up_to_date(tmp_path, job) is None


# -- publish --new ------------------------------------------------------------------------


def test_publish_new_uploads_only_what_the_index_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stackmeta.resolve.nearest import save_nearest
    from tests.package.test_metapackage import sample
    from tests.pypiserver_fixture import PASSWORD, USER, pypiserver, write_record

    monkeypatch.setenv("TWINE_USERNAME", USER)
    monkeypatch.setenv("TWINE_PASSWORD", PASSWORD)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    locks = tmp_path / "locks"
    for release in ("CMSSW_14_0_1", "CMSSW_14_0_2"):
        rel, nearest = sample(release=release)
        write_record(locks, rel)
        save_nearest(locks, release, rel, nearest)
    with pypiserver(tmp_path / "server") as server:

        def publish(*args: str) -> tuple[int, str]:
            code, out, _ = run(capsys, "publish", *args, "--locks-dir", str(locks), "--repository-url",
                               server.url, "--out", str(tmp_path / "dist"),
                               "--build-dir", str(tmp_path / "b"),
                               "--json")
            return code, out

        assert publish("CMSSW_14_0_1")[0] == 0
        code, out = publish("--new")
        assert code == 0
        assert json.loads(out) == {
            "index_url": f"{server.url}/simple",
            "published": {"CMSSW_14_0_2": ["cms_analysis_stack-14.0.2.tar.gz",
                                           "cms_analysis_stack-14.0.2-py3-none-any.whl"]},
            "already": ["CMSSW_14_0_1"],
            "skipped": [],
            "failed": [],
        }
        code, out = publish("--new")
        assert (code, json.loads(out)["published"], json.loads(out)["already"]) == (
            0, {}, ["CMSSW_14_0_1", "CMSSW_14_0_2"])
        assert sorted(p.name for p in server.packages.iterdir()) == [
            "cms_analysis_stack-14.0.1-py3-none-any.whl", "cms_analysis_stack-14.0.1.tar.gz",
            "cms_analysis_stack-14.0.2-py3-none-any.whl", "cms_analysis_stack-14.0.2.tar.gz"]
        # A record that cannot be built is that release's failure only.
        rel, _ = sample(release="CMSSW_14_0_3")
        write_record(locks, rel)  # no nearest set: not resolved
        code, out = publish("--new")
        assert code == 1
        assert json.loads(out)["failed"] == [{
            "release": "CMSSW_14_0_3",
            "message": f"{locks}/CMSSW_14_0_3.json has no nearest consistent set: run 'stackmeta resolve "
                       "CMSSW_14_0_3' first"}]


def test_batch_follows_changed_includes_and_moved_pins(repo: Path, tmp_path: Path) -> None:
    """The walk reuses what the previous tag resolved only where nothing it read changed."""
    tag = "REL/CMSSW_14_0_{}/el9_amd64_gcc12"
    include = git(repo, "show", f"{tag.format(1)}:build-with-pip.file")
    add_tag(repo, tag.format(2), tag.format(1), "build-with-pip.file",
            ("Requires: cms-test-lib\n" + include).encode())
    pins = git(repo, "show", f"{tag.format(2)}:pip/requirements.txt")
    add_tag(repo, tag.format(3), tag.format(2), "pip/requirements.txt", ("aaa-new==1.0\n" + pins).encode())
    locks = tmp_path / "batch"
    cmd = [sys.executable, "-m", "stackmeta", "export", "--cmsdist", str(repo)]
    subprocess.run([*cmd, "--all", "--match", "CMSSW_14_*", "--jobs", "1", "--locks-dir", str(locks)],
                   cwd=ROOT, check=True, capture_output=True)
    for release in ("CMSSW_14_0_1", "CMSSW_14_0_2", "CMSSW_14_0_3"):
        subprocess.run([*cmd, release, "--locks-dir", str(tmp_path / release)], cwd=ROOT, check=True,
                       capture_output=True)
        for ext in (".txt", ".json"):
            single = tmp_path / release / f"{release}{ext}"
            assert (locks / f"{release}{ext}").read_bytes() == single.read_bytes()
    absl = {v: record.load_release(locks, f"CMSSW_14_0_{v}").package("absl-py") for v in (1, 2)}
    assert absl[1].system_libs == () and absl[2].system_libs == ("cms-test-lib",)
    assert [u.name for u in record.load_release(locks, "CMSSW_14_0_3").unshipped][:1] == ["aaa-new"]


def test_remembered_package_json_is_the_record_format() -> None:
    from stackmeta.locks import export as export_module

    for path in sorted(LOCKS.glob("*.json")):
        doc = record.read_document(path)
        rel = record.release_from_json(doc["release"])
        for _ in range(2):  # encoded, then remembered
            assert export_module.dump_document(doc, rel) == record.dump_document(doc) == path.read_text()


def test_a_working_clone_is_left_as_it_was(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "cmsdist"
    subprocess.run(["git", "clone", "-q", "--branch", "CMSSW_10_6_0__slc7_amd64_gcc700", str(history),
                    str(work)], env=GIT_ENV, check=True)
    (work / "local-edit.txt").write_text("not committed\n")
    status = git(work, "status", "--porcelain", "--untracked-files=all")
    before = state(work)
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(work), "--locks-dir",
                       str(tmp_path / "locks"), "--match", "CMSSW_10_6_*", "--match", "CMSSW_14_0_0")
    assert (code, out) == (0, "exported 6, skipped 0 (up to date), failed 0\n")
    assert state(work) == before  # (git status itself may refresh .git/index: looked at last)
    assert git(work, "status", "--porcelain", "--untracked-files=all") == status == "?? local-edit.txt\n"


def test_annotated_tags_count_and_tags_of_other_objects_do_not(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = git(repo, "rev-parse", "REL/CMSSW_14_0_1/el9_amd64_gcc12").strip()
    env = {**GIT_ENV, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", "-C", str(repo), "tag", "-a", "-m", "release", "REL/CMSSW_14_0_7/el9_amd64_gcc12",
                    commit], env=env, check=True)
    tree = git(repo, "rev-parse", f"{commit}^{{tree}}").strip()
    git(repo, "tag", "REL/CMSSW_14_0_8/el9_amd64_gcc12", tree)  # a tag of a tree: not a release
    code, out, _ = run(capsys, "export", "--all", "--cmsdist", str(repo), "--locks-dir", str(tmp_path),
                       "--match", "CMSSW_14_0_[178]", "--json")
    assert (code, json.loads(out)["exported"]) == (0, ["CMSSW_14_0_1", "CMSSW_14_0_7"])
    text = (tmp_path / "CMSSW_14_0_7.txt").read_text()
    assert f"# source: git {commit} REL/CMSSW_14_0_7/el9_amd64_gcc12\n" in text

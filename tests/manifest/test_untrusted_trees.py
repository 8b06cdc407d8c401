"""A cmsdist tree is untrusted input: INCLUDEs, links and names stay inside it, a spec linked
inside the tree is read as a checkout reads it, and a missing spec is reported where it is
required (real git repositories built here, real exports)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stackmeta.manifest.cmsdist import FolderTree, tree_path
from tests.clirunner import run_cli

ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared" / "cmsdist-excerpts"
EXCERPT = SHARED / "CMSSW_14_0_0__el9_amd64_gcc12"
TAG = "REL/CMSSW_14_0_0/el9_amd64_gcc12"
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}

pytestmark = pytest.mark.skipif(not EXCERPT.is_dir(),
                                reason=f"the shared cmsdist excerpts are not at {EXCERPT}")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout


def export_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code, out, err = run_cli("export", "CMSSW_14_0_0", "--arch", "el9_amd64_gcc12", "--json", *argv)
    return code, (json.loads(out) if out else {}), err


def test_tree_paths_stay_inside() -> None:
    assert tree_path("pip/../py3-six.spec") == "py3-six.spec"
    assert tree_path("a/./b//c") == "a/b/c"
    for outside in ("../x.file", "a/../../x", "/etc/passwd", "pip/../../../etc/passwd", "a\0b"):
        assert tree_path(outside) is None, outside


def test_include_outside_the_tree_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "work" / "cmsdist"
    shutil.copytree(EXCERPT, tree)
    # a file outside the tree that the INCLUDE names; read, it would rename the package
    (tmp_path / "secret.file").write_text("%define pip_name stolen-secret\n")
    spec = tree / "py3-dxr.spec"
    lines = spec.read_text().splitlines(keepends=True)
    lines.insert(1, "## INCLUDE ../../../secret\n")
    spec.write_text("".join(lines))
    code, _, err = run_cli("export", "CMSSW_14_0_0", "--cmsdist", str(tree), "--arch", "el9_amd64_gcc12",
                           "--locks-dir", str(tmp_path / "locks"))
    assert code == 0, err
    assert "warning: py3-dxr.spec:2: INCLUDE ../../../secret: names a file outside the cmsdist tree: not " \
           "read" in err
    doc = json.loads((tmp_path / "locks" / "CMSSW_14_0_0.json").read_text())
    names = {p["name"] for p in doc["release"]["packages"]}
    assert "dxr" in names and "stolen-secret" not in names


def test_folder_links_out_of_the_tree_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "outside.spec").write_text("### RPM external outside 1.0\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "inside.spec").write_text("### RPM external inside 1.0\n")
    (tree / "link.spec").symlink_to("inside.spec")
    (tree / "out.spec").symlink_to("../outside.spec")
    (tree / "abs.spec").symlink_to(tmp_path / "outside.spec")
    folder = FolderTree(tree)
    assert folder.read("link.spec") == b"### RPM external inside 1.0\n"
    assert folder.read("out.spec") is None and folder.read("abs.spec") is None
    assert folder.read("../outside.spec") is None and folder.list("..") == []


@pytest.fixture(scope="module")
def linked_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 14_0_0 excerpt as a git tag where py3-dxr.spec is a link to specs/py3-dxr.real (as
    a checkout would show it), gdb.spec a link out of the tree, AXOL1TL a submodule."""
    base = tmp_path_factory.mktemp("linked")
    (base / "outside.spec").write_text("### RPM external gdb 99.0\nRequires: py3-stolen\n")
    repo = base / "cmsdist"
    shutil.copytree(EXCERPT, repo)
    git(repo, "init", "-q", "-b", "main")
    (repo / "specs").mkdir()
    (repo / "py3-dxr.spec").rename(repo / "specs" / "py3-dxr.real")
    (repo / "py3-dxr.spec").symlink_to("specs/py3-dxr.real")
    (repo / "gdb.spec").unlink()
    (repo / "gdb.spec").symlink_to("../outside.spec")
    (repo / "AXOL1TL.spec").unlink()
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},AXOL1TL")
    git(repo, "commit", "-q", "-m", "links and a submodule")
    git(repo, "tag", TAG)
    assert git(repo, "ls-tree", "HEAD", "py3-dxr.spec", "gdb.spec", "AXOL1TL").split()[0::4] == [
        "160000", "120000", "120000"]
    return repo


def test_a_linked_spec_is_followed_and_missing_ones_are_reported(
    linked_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "cmsdist.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(linked_repo), str(bare)], env=GIT_ENV, check=True)
    checkout = tmp_path / "checkout" / "CMSSW_14_0_0__el9_amd64_gcc12"  # the files as a checkout has them
    shutil.copytree(linked_repo, checkout, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    for source in (bare, checkout):
        locks = tmp_path / f"locks-{source.name}"
        code, summary, err = export_json(capsys, "--cmsdist", str(source), "--locks-dir", str(locks))
        assert code == 0, err
        doc = json.loads((locks / "CMSSW_14_0_0.json").read_text())
        dxr = [p for p in doc["release"]["packages"] if p["name"] == "dxr"]
        assert [(p["rpm"], p["version_written"]) for p in dxr] == [("py3-dxr", "1.0.x")]
        assert "stolen" not in json.dumps(doc)
        problems = {(p["kind"], p["where"], p["message"]) for p in doc["release"]["problems"]}
        if source == bare:
            axol = "AXOL1TL is a submodule (a gitlink): its files are not in the tag"
        else:
            axol = "AXOL1TL has no spec in the tree (no AXOL1TL.spec, AXOL1TL/spec, pin or generated spec)"
        assert ("missing-spec", "cmssw-tool-conf.spec:4", f"{axol}: it and what it requires are not read") \
            in problems
        assert ("missing-spec", "cmssw-tool-conf.spec:126",
                "gdb has no spec in the tree (no gdb.spec, gdb/spec, pin or generated spec): it and what it "
                "requires are not read") in problems
        assert summary["problems"] == len(problems)


def test_a_link_loop_and_deep_links_end(tmp_path: Path) -> None:
    repo = tmp_path / "loop"
    shutil.copytree(EXCERPT, repo)
    git(repo, "init", "-q", "-b", "main")
    (repo / "gdb.spec").unlink()
    (repo / "gdb.spec").symlink_to("gdb2.spec")
    (repo / "gdb2.spec").symlink_to("gdb.spec")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a loop")
    git(repo, "tag", TAG)
    done = subprocess.run([sys.executable, "-m", "stackmeta", "export", "CMSSW_14_0_0", "--cmsdist",
                           str(repo / ".git"), "--locks-dir", str(tmp_path / "locks"), "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "gdb has no spec in the tree" in done.stderr


def test_a_batch_sees_a_change_behind_a_link(linked_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "cmsdist"
    shutil.copytree(linked_repo, repo, symlinks=True)
    real = repo / "specs" / "py3-dxr.real"
    real.write_text(real.read_text().replace("py3-dxr 1.0.x", "py3-dxr 1.0.1"))
    git(repo, "commit", "-q", "-am", "dxr 1.0.1, behind the unchanged link")
    git(repo, "tag", "REL/CMSSW_14_0_1/el9_amd64_gcc12")
    locks = tmp_path / "locks"
    code, _, err = run_cli("export", "--all", "--cmsdist", str(repo), "--locks-dir", str(locks),
                           "--jobs", "1", "--quiet")
    assert code == 0, err
    def dxr(name: str) -> str:
        doc = json.loads((locks / f"{name}.json").read_text())
        return next(p["version_written"] for p in doc["release"]["packages"] if p["name"] == "dxr")
    assert (dxr("CMSSW_14_0_0"), dxr("CMSSW_14_0_1")) == ("1.0.x", "1.0.1")

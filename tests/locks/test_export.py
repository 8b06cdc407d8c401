"""stackmeta export / show end to end: folders, a bare git clone, bad input, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.cli import main
from stackmeta.errors import ManifestError
from stackmeta.locks import constraints
from stackmeta.locks.export import export
from stackmeta.manifest import walk
from stackmeta.manifest.cmsdist import GitObjects, GitTree, Opened
from stackmeta.record import BuildKind, Package, Problem

SHARED = Path(__file__).parents[3] / "shared" / "cmsdist-excerpts"
EXPECTED = Path(__file__).parents[1] / "data" / "manifest" / "expected"
LOCKS = Path(__file__).parents[2] / "locks"
TAG = "REL/CMSSW_14_0_0/el9_amd64_gcc12"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared cmsdist excerpts are not at {SHARED} (../shared/cmsdist-excerpts)",
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- folders ------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("CMSSW_9_3_0", ["CMSSW_9_3_0", "--arch", "slc6_amd64_gcc630", "--arch", "slc7_aarch64_gcc700"]),
        ("CMSSW_10_6_0", ["CMSSW_10_6_0"]),
        ("CMSSW_10_6_0-py2", ["CMSSW_10_6_0", "--python", "2"]),
        ("CMSSW_14_0_0", ["CMSSW_14_0_0"]),
    ],
)
def test_export_regenerates_committed_locks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, args: list[str]
) -> None:
    code, out, _ = run(capsys, "export", *args, "--cmsdist", str(SHARED), "--locks-dir", str(tmp_path))
    assert code == 0
    assert out.startswith(f"{tmp_path / name}.txt: ")
    assert (tmp_path / f"{name}.txt").read_bytes() == (EXPECTED / f"{name}.txt").read_bytes()
    assert (tmp_path / f"{name}.txt").read_bytes() == (LOCKS / f"{name}.txt").read_bytes()
    new = json.loads((tmp_path / f"{name}.json").read_text())
    committed = json.loads((LOCKS / f"{name}.json").read_text())
    assert new["release"] == committed["release"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.txt"]


@needs_shared
def test_export_one_folder_and_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = SHARED / "CMSSW_14_0_0__el9_amd64_gcc12"
    code, out, err = run(
        capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(folder), "--locks-dir", str(tmp_path)
    )
    assert code == 0
    assert "warning: py3-dxr.spec:1: py3-dxr version '1.0.x' is not a PEP 440 version: not pinned" in err
    assert "# source: folder CMSSW_14_0_0__el9_amd64_gcc12\n" in (tmp_path / "CMSSW_14_0_0.txt").read_text()
    assert (
        out == f"{tmp_path}/CMSSW_14_0_0.txt: 320 pins of CMSSW_14_0_0 (el9_amd64_gcc12, Python 3.9.14); "
        f"record {tmp_path}/CMSSW_14_0_0.json\n"
    )


@needs_shared
def test_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(LOCKS / "CMSSW_9_3_0.json", tmp_path)
    code, out, _ = run(capsys, "show", "CMSSW_9_3_0", "--locks-dir", str(tmp_path))
    assert code == 0
    assert "  Python:        2.7.11 (slc6_amd64_gcc630), 2.7.13 (slc7_aarch64_gcc700)\n" in out
    assert "  packages:      130 (130 rpms), 130 pinned\n" in out
    assert "only on some arches: cx-oracle (slc6_amd64_gcc630), tensorflow (slc6_amd64_gcc630)" in out
    code, out, _ = run(capsys, "show", "CMSSW_9_3_0", "--json", "--locks-dir", str(tmp_path))
    data = json.loads(out)
    assert (data["packages"], data["from_pypi"] + data["from_git_or_url"] + data["other"]) == (130, 130)
    assert data["arch_only"] == {"cx-oracle": ["slc6_amd64_gcc630"], "tensorflow": ["slc6_amd64_gcc630"]}
    assert "OpenBLAS" in data["system_libs"]


def test_show_unknown_lists_nearest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(LOCKS / "CMSSW_10_6_0-py2.json", tmp_path)
    code, _, err = run(capsys, "show", "CMSSW_10_6_0", "--locks-dir", str(tmp_path))
    assert code == 1
    assert err == (
        f"error: no record {tmp_path}/CMSSW_10_6_0.json: run 'stackmeta export CMSSW_10_6_0 "
        "--cmsdist PATH' first; nearest: CMSSW_10_6_0-py2\n"
    )
    not_a_folder = tmp_path / "CMSSW_10_6_0-py2.json"
    code, _, err = run(capsys, "show", "CMSSW_10_6_0", "--locks-dir", str(not_a_folder))
    assert (code, err) == (
        2, f"error: --locks-dir {not_a_folder} is a file, not a folder: give the folder of the records\n")


# -- the git path -------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = (
                path.stat().st_mtime_ns,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return out


@pytest.fixture(scope="module")
def bare_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if not SHARED.is_dir():
        pytest.skip(f"the shared cmsdist excerpts are not at {SHARED}")
    base = tmp_path_factory.mktemp("git")
    work = base / "cmsdist"
    shutil.copytree(SHARED / "CMSSW_14_0_0__el9_amd64_gcc12", work)
    git(work, "init", "-q", "-b", "IB/CMSSW_14_0_X/master")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "CMSSW_14_0_0")
    git(work, "tag", TAG)
    commit = git(work, "rev-parse", "HEAD")
    git(base, "clone", "-q", "--bare", str(work), "cmsdist.git")
    return base / "cmsdist.git", commit


def test_export_from_bare_clone_leaves_it_unchanged(
    bare_clone: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clone, commit = bare_clone
    before = snapshot(clone)
    code, _, _ = run(capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(clone), "--locks-dir", str(tmp_path))
    assert code == 0
    assert snapshot(clone) == before
    text = (tmp_path / "CMSSW_14_0_0.txt").read_text()
    expected = (
        (EXPECTED / "CMSSW_14_0_0.txt")
        .read_text()
        .replace(
            "# source: folder cmsdist-excerpts: CMSSW_14_0_0__el9_amd64_gcc12",
            f"# source: git {commit} {TAG}",
        )
    )
    assert text == expected
    rel = record.load_release(tmp_path, "CMSSW_14_0_0")
    assert rel.source == f"git {commit} {TAG}"


def test_git_tree_reads_through_one_process(bare_clone: tuple[Path, str]) -> None:
    clone, commit = bare_clone
    with GitObjects(clone) as objects:
        tree = GitTree(objects, commit)
        assert tree.read(
            "python3.spec",
        ).startswith(b"### RPM external python3 3.9.14")  # type: ignore[union-attr]
        proc = objects._proc
        assert proc is not None
        assert tree.read("pip/requirements.txt") is not None
        assert tree.read("no/such/file") is None
        assert objects._proc is proc
        assert "el9_amd64_gcc12" not in tree.list("")
        assert "requirements.txt" in tree.list("pip")
        assert tree.list("scram-tools.file/tools")[:2] == ["AXOL1TL", "CICADA"]
    assert proc.poll() is not None  # closed


def test_git_several_arches_and_unknown_names(
    bare_clone: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clone, commit = bare_clone
    other = tmp_path / "two.git"
    shutil.copytree(clone, other)
    git(other, "tag", "REL/CMSSW_14_0_0/el8_aarch64_gcc12", commit)
    code, _, err = run(
        capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(other), "--locks-dir", str(tmp_path)
    )
    assert code == 2
    assert err == (
        "error: CMSSW_14_0_0 has 2 arches in the git clone two.git: el8_aarch64_gcc12, "
        "el9_amd64_gcc12; choose with --arch (several --arch give one lock with markers)\n"
    )
    code, _, err = run(
        capsys, "export", "CMSSW_14_0_1", "--cmsdist", str(other), "--locks-dir", str(tmp_path)
    )
    assert err == (
        "error: release CMSSW_14_0_1 not found in the git clone two.git (looked for tags "
        "REL/CMSSW_14_0_1/*); nearest: REL/CMSSW_14_0_0/el8_aarch64_gcc12, "
        "REL/CMSSW_14_0_0/el9_amd64_gcc12\n"
    )
    code, _, err = run(
        capsys,
        "export",
        "CMSSW_14_0_0",
        "--arch",
        "el9_amd64_gcc11",
        "--cmsdist",
        str(other),
        "--locks-dir",
        str(tmp_path),
    )
    assert code == 1
    assert err == (
        "error: REL/CMSSW_14_0_0/el9_amd64_gcc11 not found in the git clone two.git; nearest: "
        "REL/CMSSW_14_0_0/el9_amd64_gcc12, REL/CMSSW_14_0_0/el8_aarch64_gcc12\n"
    )
    assert not any(tmp_path.glob("*.txt"))
    code, _, _ = run(
        capsys,
        "export",
        "CMSSW_14_0_0",
        "--arch",
        "el9_amd64_gcc12",
        "--arch",
        "el8_aarch64_gcc12",
        "--cmsdist",
        str(other),
        "--locks-dir",
        str(tmp_path),
    )
    assert code == 0
    header = (tmp_path / "CMSSW_14_0_0.txt").read_text().splitlines()[2:5]
    assert header == [
        "# arches: el8_aarch64_gcc12, el9_amd64_gcc12",
        "# Python: 3.9.14",
        f"# source: git {commit} REL/CMSSW_14_0_0/el8_aarch64_gcc12, {commit} {TAG}",
    ]


# -- bad input ----------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["CMSSW_9_3_1"],
            1,
            "release CMSSW_9_3_1 not found in the folder cmsdist-excerpts "
            "(looked for folders CMSSW_9_3_1__*); "
            "nearest: CMSSW_9_3_0__slc6_amd64_gcc630, CMSSW_9_3_0__slc7_aarch64_gcc700, "
            "CMSSW_14_0_0__el9_amd64_gcc12, CMSSW_10_6_0__slc7_amd64_gcc700",
        ),
        (
            ["CMSSW_9_3_0"],
            2,
            "CMSSW_9_3_0 has 2 arches in the folder cmsdist-excerpts: "
            "slc6_amd64_gcc630, slc7_aarch64_gcc700; "
            "choose with --arch (several --arch give one lock with markers)",
        ),
        (
            ["CMSSW_9_3_0", "--arch", "slc7_amd64_gcc630"],
            1,
            "CMSSW_9_3_0__slc7_amd64_gcc630 not found in the folder cmsdist-excerpts; nearest: "
            "CMSSW_9_3_0__slc6_amd64_gcc630, CMSSW_9_3_0__slc7_aarch64_gcc700",
        ),
        (
            ["CMSSW_14_0_0", "--python", "4"],
            2,
            "--python 4: with --cmsdist give 2 or 3 (the stack to export)",
        ),
        (
            ["CMSSW_14_0_0_HLT", "--version", "nope"],
            2,
            "--version 'nope' is not a PEP 440 version: use e.g. 14.0.0.post1",
        ),
        (
            ["CMSSW_9_3_0", "--arch", "slc6_amd64_gcc630", "--python", "3"],
            1,
            "CMSSW_9_3_0 slc6_amd64_gcc630 does not ship python3: no Python 3 stack to export",
        ),
    ],
)
def test_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, out, err = run(capsys, "export", *args, "--cmsdist", str(SHARED), "--locks-dir", str(tmp_path))
    assert (got, out, err) == (code, "", f"error: {message}\n")
    assert list(tmp_path.iterdir()) == []


def test_not_a_cmsdist_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "README").write_text("hello\n")
    code, _, err = run(capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(tmp_path / "src"))
    assert code == 1
    assert err == (
        f"error: {tmp_path / 'src'} is not a cmsdist tree (no cmssw-tool-conf.spec, cmssw-tools.spec, "
        "rpm-preamble.file, no <RELEASE>__<ARCH> folders, not a git clone): give a cmsdist clone or "
        "a folder laid out like it\n"
    )
    code, _, err = run(capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(tmp_path / "nothing"))
    assert (code, err) == (
        2,
        f"error: --cmsdist {tmp_path / 'nothing'}: no such file or folder: give a cmsdist clone or folder\n",
    )
    (tmp_path / "broken" / ".git").mkdir(parents=True)  # looks like a clone, git says it is not one
    code, _, err = run(capsys, "export", "CMSSW_14_0_0", "--cmsdist", str(tmp_path / "broken"))
    assert (code, err) == (
        1,
        f"error: git for-each-ref failed in {tmp_path / 'broken'}: fatal: not a git repository (or any of "
        "the parent directories): .git: check that --cmsdist names a complete, readable git clone\n",
    )


def test_plain_folder_needs_one_arch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "cmsdist"
    tree.mkdir()
    (tree / "cmssw-tool-conf.spec").write_text("### RPM cms cmssw-tool-conf 1\nRequires: python3\n")
    (tree / "python3.spec").write_text("### RPM external python3 3.11.4\nRequires: py3-a\n")
    (tree / "py3-a.spec").write_text("### RPM external py3-a 1.0\nSource: pip://a/1.0\n")
    code, _, err = run(capsys, "export", "CMSSW_13_0_0", "--cmsdist", str(tree), "--locks-dir", str(tmp_path))
    assert (code, err) == (
        2,
        f"error: {tree} does not say its arch (its name is not <RELEASE>__<ARCH>): give exactly one --arch\n",
    )
    code, _, _ = run(
        capsys,
        "export",
        "CMSSW_13_0_0",
        "--arch",
        "el8_amd64_gcc11",
        "--cmsdist",
        str(tree),
        "--locks-dir",
        str(tmp_path),
    )
    assert code == 0
    assert (tmp_path / "CMSSW_13_0_0.txt").read_text().splitlines()[-1] == "a==1.0"


# -- the record: atomic, other sections kept only for the same pins -----------------------


def test_sections_kept_only_when_pins_unchanged(tmp_path: Path) -> None:
    tree = tmp_path / "CMSSW_13_0_0__el8_amd64_gcc11"
    tree.mkdir()
    (tree / "cmssw-tool-conf.spec").write_text("### RPM cms cmssw-tool-conf 1\nRequires: python3\n")
    (tree / "python3.spec").write_text("### RPM external python3 3.11.4\nRequires: py3-a\n")
    (tree / "py3-a.spec").write_text("### RPM external py3-a 1.0\nSource: pip://a/1.0\n")
    locks = tmp_path / "locks"
    done = export("CMSSW_13_0_0", locks_dir=locks, cmsdist=tree)
    record.update_section(done.record, "check", {"ok": True})
    again = export("CMSSW_13_0_0", locks_dir=locks, cmsdist=tree)
    assert again.kept_sections == ("check",)
    assert record.read_document(done.record)["check"] == {"ok": True}
    (tree / "py3-a.spec").write_text("### RPM external py3-a 1.1\nSource: pip://a/1.1\n")
    changed = export("CMSSW_13_0_0", locks_dir=locks, cmsdist=tree)
    assert changed.kept_sections == ()
    assert "check" not in record.read_document(done.record)


def test_failed_export_leaves_old_lock(tmp_path: Path) -> None:
    tree = tmp_path / "CMSSW_13_0_0__el8_amd64_gcc11"
    tree.mkdir()
    (tree / "cmssw-tool-conf.spec").write_text("### RPM cms cmssw-tool-conf 1\nRequires: python3\n")
    (tree / "python3.spec").write_text("### RPM external python3 3.11.4\nRequires: py3-a\n")
    (tree / "py3-a.spec").write_text("### RPM external py3-a 1.0\n")
    locks = tmp_path / "locks"
    export("CMSSW_13_0_0", locks_dir=locks, cmsdist=tree)
    before = {p.name: p.read_bytes() for p in locks.iterdir()}
    (tree / "py3-a.spec").write_text("no header\n")
    with pytest.raises(ManifestError, match=r"^py3-a.spec:1: no '### RPM"):
        export("CMSSW_13_0_0", locks_dir=locks, cmsdist=tree)
    assert {p.name: p.read_bytes() for p in locks.iterdir()} == before


def test_opened_lists_folders() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared cmsdist excerpts are not at {SHARED}")
    with Opened(SHARED) as opened:
        assert opened.kind == "folders"
        assert opened.arches("CMSSW_9_3_0") == ["slc6_amd64_gcc630", "slc7_aarch64_gcc700"]


# -- the lock's markers and merged projects -----------------------------------------------


def _pkg(name: str, version: str, arches: tuple[str, ...], rpm: str = "") -> Package:
    return Package(
        rpm=rpm or f"py3-{name}",
        name=canonicalize_name(name),
        display_name=name,
        version_written=version,
        version=Version(version),
        build=BuildKind.PYPI,
        arches=arches,
    )


def test_markers_by_machine() -> None:
    arches = ("el8_aarch64_gcc12", "el9_amd64_gcc12", "el9_ppc64le_gcc12")
    assert constraints.marker(_pkg("a", "1", arches), arches) is None
    assert constraints.marker(_pkg("a", "1", ("el9_amd64_gcc12",)), arches) == 'platform_machine == "x86_64"'
    assert constraints.marker(_pkg("a", "1", ("el8_aarch64_gcc12", "el9_ppc64le_gcc12")), arches) == (
        'platform_machine == "aarch64" or platform_machine == "ppc64le"'
    )
    # Two amd64 arches that differ by OS: no standard marker tells them apart.
    assert constraints.marker(_pkg("a", "1", ("el9_amd64_gcc12",)),
                              ("el8_amd64_gcc12", "el9_amd64_gcc12")) is None


def test_merged_project_with_different_versions_is_a_problem() -> None:
    problems: list[Problem] = []
    merged = walk._merge_projects(
        [_pkg("Click", "8.1.3", ("a",), "py3-Click"), _pkg("click", "8.0.0", ("a",), "py3-click")], problems,
        {"py3-Click": "py3-Click.spec:1, copied into py3-pippkgs", "py3-click": "pip/requirements.txt:12"},
    )
    assert [(p.rpm, p.version_written, p.rpm_versions) for p in merged] == [
        ("py3-Click+py3-click", "8.1.3", (("py3-Click", "8.1.3"), ("py3-click", "8.0.0")))]
    assert problems == [
        Problem(
            kind="version-mismatch",
            where="py3-Click.spec:1",
            message="py3-Click 8.1.3 (py3-Click.spec:1, copied into py3-pippkgs) and py3-click 8.0.0 "
                    "(pip/requirements.txt:12) name one project click: pinned 8.1.3 (from py3-Click)",
        )
    ]


def test_a_merged_lock_pins_one_version_per_machine_the_production_arch_s() -> None:
    """CMSSW_13_2_6_patch1: cryptography 40.0.2 on el8, 3.2.1 on slc7, both x86_64."""
    from stackmeta.manifest.pins import Arch

    def stack(arch: str, version: str) -> walk.ArchStack:
        return walk.ArchStack(arch=Arch.parse(arch), python="3.9.14", packages=(
            _pkg("cryptography", version, (arch,), "py3-cryptography"),
            _pkg("six", "1.16.0", (arch,), "py3-six")),
            unshipped=(), problems=(), origins={"py3-cryptography": f"pip/requirements.txt:{len(version)}"})

    per_arch = [stack("slc7_amd64_gcc11", "3.2.1"), stack("el8_amd64_gcc11", "40.0.2"),
                stack("el8_aarch64_gcc11", "40.0.2")]
    rel = walk.combine("CMSSW_13_2_6_patch1", None, per_arch, source="test",
                       rank=("el8_amd64_gcc11", "el8_aarch64_gcc11", "slc7_amd64_gcc11"))
    assert rel.arches == ("el8_amd64_gcc11", "el8_aarch64_gcc11", "slc7_amd64_gcc11")
    assert constraints.pin_lines(rel) == ["cryptography==40.0.2", "six==1.16.0"]
    assert [(p.kind, p.where) for p in rel.problems] == [("arch-conflict", "pip/requirements.txt:6")]
    assert rel.problems[0].message.startswith(
        'cryptography: 40.0.2 on el8_amd64_gcc11 and 3.2.1 on slc7_amd64_gcc11, which the marker '
        'platform_machine == "x86_64" cannot tell apart: pinned 40.0.2')
    # the other order of rank: slc7 is the production arch, its version wins for x86_64
    rel = walk.combine("CMSSW_13_2_6_patch1", None, per_arch, source="test",
                       rank=("slc7_amd64_gcc11", "el8_amd64_gcc11", "el8_aarch64_gcc11"))
    assert constraints.pin_lines(rel) == [
        'cryptography==40.0.2 ; platform_machine == "aarch64"',
        'cryptography==3.2.1 ; platform_machine == "x86_64"', "six==1.16.0"]


def test_spec_in_a_folder_of_its_name(tmp_path: Path) -> None:
    tree = tmp_path / "CMSSW_13_0_0__el8_amd64_gcc11"
    (tree / "py3-a").mkdir(parents=True)
    (tree / "cmssw-tool-conf.spec").write_text("### RPM cms cmssw-tool-conf 1\nRequires: python3 py3-a\n")
    (tree / "python3.spec").write_text("### RPM external python3 3.11.4\n")
    (tree / "py3-a" / "spec").write_text("### RPM external py3-a 2.0\n## INCLUDE extra\n")
    (tree / "py3-a" / "extra.file").write_text("%define pip_name A-Dist\nSource: pip://A-Dist/2.0\n")
    done = export("CMSSW_13_0_0", locks_dir=tmp_path / "locks", cmsdist=tree)
    assert [(p.rpm, p.name, p.display_name) for p in done.release.packages] == [("py3-a", "a-dist", "A-Dist")]


def test_freeze_file_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "export",
        "CMSSW_14_0_0",
        "--from-freeze",
        str(tmp_path / "nope.txt"),
        "--python",
        "3.9.14",
        "--locks-dir",
        str(tmp_path),
    )
    assert (code, err) == (2, f"error: --from-freeze {tmp_path / 'nope.txt'}: no such file\n")


def test_a_locks_dir_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    from tests.clirunner import run_cli

    shared = Path(__file__).resolve().parents[3] / "shared" / "cmsdist-excerpts"
    if not shared.is_dir():
        pytest.skip(f"the shared cmsdist excerpts are not at {shared}")
    blocker = tmp_path / "locks"
    blocker.write_text("mine\n")
    code, _, err = run_cli("export", "CMSSW_14_0_0", "--cmsdist", str(shared), "--locks-dir", str(blocker))
    assert (code, err) == (1, f"error: cannot write {blocker / 'CMSSW_14_0_0.txt'}: {blocker} is a file, "
                              "not a folder: give another folder (--locks-dir, --out)\n")
    assert blocker.read_text() == "mine\n"


def test_the_lock_and_the_record_are_written_both_or_neither(tmp_path: Path) -> None:
    # the record's path is taken by a folder: the constraints lock is not written either
    from stackmeta import atomic
    from stackmeta.errors import OutputError

    (tmp_path / "X.json").mkdir()
    with pytest.raises(OutputError) as err:
        atomic.write_all([(tmp_path / "X.txt", "pins\n"), (tmp_path / "X.json", "{}\n")])
    assert str(err.value) == (f"cannot write {tmp_path / 'X.json'}: it is a folder: move it away, or give "
                              "another folder (--locks-dir, --out)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.json"]

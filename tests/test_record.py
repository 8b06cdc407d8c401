"""The release record's files in --locks-dir: names that stay inside it, and updates that
hold a lock (real processes racing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clirunner import run_cli


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "a\\b", "x\x00y", "a\nb", "x" * 201])
def test_a_release_name_never_leaves_the_locks_folder(tmp_path: Path, name: str) -> None:
    work = tmp_path / "work"
    locks = work / "locks"
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("six==1.16.0\n")
    code, out, err = run_cli("export", name, "--from-freeze", str(freeze), "--python", "3.9.14",
                             "--version", "1.0", "--locks-dir", str(locks))
    assert (code, out) == (2, "")
    assert err == (f"error: release name {name!r} cannot name a file in the locks folder: a lock name is "
                   "one file name (no '/', '\\', '..', NUL or control characters, no leading '.', at most "
                   "200 bytes), e.g. CMSSW_14_0_0\n")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [Path("freeze.txt")]
    for command in (["show"], ["check", "--index-url", str(tmp_path)], ["lock"], ["resolve"],
                    ["snapshot", "--out", str(tmp_path / "snap")], ["build"]):
        code, out, err = run_cli(command[0], name, *command[1:], "--locks-dir", str(locks), "--quiet")
        assert code == 2 and err.startswith(f"error: release name {name!r} cannot name a file"), command
        assert "\n" not in err.rstrip("\n")

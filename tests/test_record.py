"""The release record's files in --locks-dir: names that stay inside it, and updates that
hold a lock (real processes racing)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackmeta import record
from stackmeta.errors import RecordError
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


# -- updates under the record's lock (real processes) -------------------------------------

ROOT = Path(__file__).parents[1]
RACER = """
import sys, time
from pathlib import Path
from stackmeta import record
path, key, n, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
for i in range(1, n + 1):
    if key == "export":  # a re-export: the release section rewritten, the other sections kept
        from stackmeta.locks import export
        rel = record.load_release(path.parent, path.stem)
        export.write(rel, path.parent, default_major=rel.python_major)
        record.update_section(path, "exports", i)
    else:  # a check saving its section
        record.update_section(path, key, {"run": i})
"""


def test_concurrent_updates_of_one_record_all_land(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    path = locks / "CMSSW_14_0_0.json"
    path.write_bytes((ROOT / "locks" / "CMSSW_14_0_0.json").read_bytes())  # a real record, 0.5 MB
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(path), key, str(n), str(go)], cwd=ROOT)
              for key, n in (("check", 60), ("export", 20), ("consistent", 60))]
    time.sleep(0.5)
    go.touch()
    assert [r.wait(timeout=120) for r in racers] == [0, 0, 0]
    doc = json.loads(path.read_text())
    assert (doc["check"], doc["consistent"], doc["exports"]) == ({"run": 60}, {"run": 60}, 20)
    assert sorted(p.name for p in locks.iterdir()) == ["CMSSW_14_0_0.json", "CMSSW_14_0_0.txt"]


def test_a_lock_held_too_long_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "CMSSW_14_0_0.json"
    path.write_bytes((ROOT / "locks" / "CMSSW_14_0_0.json").read_bytes())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom stackmeta import record\n"
         "with record.locked(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n",
         str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        with pytest.raises(RecordError) as info, record.locked(path, timeout=0.5):
            pass
        assert 0.5 <= time.monotonic() - started < 5
        assert str(info.value) == (
            f"{path} is being updated by another stackmeta (pid {holder.pid}) for too long: wait for it to "
            f"end and run again (if no stackmeta runs, remove {tmp_path / '.CMSSW_14_0_0.json.lock'})")
    finally:
        holder.kill()
        holder.communicate()
    # killed while holding it: the kernel freed the lock, the next update takes it and tidies up
    assert (tmp_path / ".CMSSW_14_0_0.json.lock").exists()
    record.update_section(path, "check", {"run": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CMSSW_14_0_0.json"]

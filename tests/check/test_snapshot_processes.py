"""Real ``stackmeta snapshot`` processes into one --out: run together, and killed mid-swap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "tests" / "data" / "snapshots" / "CMSSW_9_3_0"  # a snapshot is an index (file://)


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "stackmeta", "snapshot", "CMSSW_9_3_0", "--out", str(out), "--locks-dir",
            str(ROOT / "locks"), "--index-url", str(SOURCE), "--no-cache", "--quiet"]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def complete(out: Path) -> bool:
    """Whether *out* holds a whole snapshot of SOURCE: every file (a snapshot of a snapshot has
    the same files), every page readable, its SNAPSHOT.json counting them."""
    mine = files(out)
    pages = [json.loads(data) for name, data in mine.items() if name.endswith(".json")]
    about = json.loads(mine["SNAPSHOT.json"])
    return mine.keys() == files(SOURCE).keys() and all(pages) and about["projects"] == 130


def test_two_snapshots_into_one_folder_at_once(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    procs = [subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    assert [(code, err) for _, err, code in results] == [(0, ""), (0, "")]
    assert complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]  # nothing left beside it


def test_a_killed_snapshot_leaves_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    subprocess.run(command(out), cwd=ROOT, check=True, capture_output=True)
    assert complete(out)
    old = files(out)
    proc = subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    # the new snapshot is whole beside the old one: kill it as it starts to swap them
    while not list(tmp_path.glob(".snap.*tmp/SNAPSHOT.json")) and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.0005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert complete(out)
    new = files(out)  # the old snapshot, or the new one if the kill came after the swap: whole
    assert new == old or {k for k in new if new[k] != old[k]} == {"SNAPSHOT.json"}
    # the next run removes what the killed one left, and replaces the snapshot
    done = subprocess.run(command(out), cwd=ROOT, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]

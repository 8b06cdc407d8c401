"""Killing ``export --all`` for real (SIGTERM, SIGINT, kill -9 of the parent): its workers end
with it, and what a killed run could not remove, the next run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackmeta import atomic
from tests.clirunner import interruptible

ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared" / "cmsdist-excerpts"
sys.path.insert(0, str(ROOT / "benchmarks"))

from make_history import make_history  # noqa: E402

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"the shared cmsdist excerpts are not at {SHARED}"
)


def children(pid: int) -> set[int]:
    """Every live descendant of *pid* (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def living(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            out.add(pid)
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("history") / "cmsdist"
    make_history(repo, 60, SHARED)
    return repo


def start(repo: Path, locks: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "stackmeta", "export", "--all", "--cmsdist", str(repo), "--locks-dir",
           str(locks), "--jobs", "2", "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True, preexec_fn=interruptible)


def workers_started(proc: subprocess.Popen[bytes], locks: Path) -> set[int]:
    """The batch's processes once the workers write records (before the batch ends)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(locks.glob("*.json"))) >= 2:
            return children(proc.pid)
        time.sleep(0.005)
    raise AssertionError(f"the batch wrote no record, or ended too soon (exit {proc.poll()})")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_workers_end_with_their_parent(history: Path, tmp_path: Path, how: signal.Signals) -> None:
    locks = tmp_path / "locks"
    proc = start(history, locks)
    family = workers_started(proc, locks)
    assert len(family) >= 3  # the forkserver and two workers (with their git readers)
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 15
    while living(family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = living(family)
    for pid in left:  # do not leave them to the machine
        os.kill(pid, signal.SIGKILL)
    assert left == set()
    assert [p.name for p in locks.iterdir() if p.name.startswith(".")] == []
    for name in (p.stem for p in locks.glob("*.json")):  # what was written is whole
        assert json.loads((locks / f"{name}.json").read_text())["release"]["release"]


def leave_behind(code: str, env: dict[str, str] | None = None) -> None:
    """Run *code* in a real process that kills itself with SIGKILL (nothing can clean up)."""
    script = f"import os, signal\nfrom pathlib import Path\nfrom stackmeta import atomic\n{code}\n" \
             "os.kill(os.getpid(), signal.SIGKILL)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_the_next_run_removes_what_a_killed_run_left(history: Path, tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    leave_behind(f"atomic._temp(Path({str(locks / 'CMSSW_14_0_0.json')!r}), b'half')")
    mine = Path(atomic._temp(locks / "CMSSW_9_3_0.txt", b"a live process's"))  # this process is alive
    stale = [p.name for p in locks.iterdir() if p.name.startswith(".CMSSW_14_0_0.json.")]
    assert len(stale) == 1 and stale[0].endswith(".tmp")
    os.utime(mine, (time.time() - 3600, time.time() - 3600))
    subprocess.run([sys.executable, "-m", "stackmeta", "export", "--all", "--cmsdist", str(history),
                    "--locks-dir", str(locks), "--jobs", "2", "--match", "CMSSW_9_3_*", "--quiet"],
                   cwd=ROOT, check=True, capture_output=True)
    assert sorted(p.name for p in locks.iterdir() if p.name.startswith(".")) == [mine.name]
    mine.unlink()


def test_the_next_build_removes_a_killed_builds_folder(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    leave_behind("atomic.make_temp_dir('stackmeta-build-').joinpath('half.whl').write_bytes(b'x')", env)
    (temp / "stackmeta-build-unrelated").mkdir()  # not stackmeta's naming: left alone
    [left] = [p.name for p in temp.iterdir() if p.name != "stackmeta-build-unrelated"]
    assert left.startswith("stackmeta-build-")
    code = "with atomic.temp_dir('stackmeta-build-') as t: print(t.name)"
    out = subprocess.run([sys.executable, "-c", f"from stackmeta import atomic\n{code}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"stackmeta-build-{out.split('-')[2]}") and out.strip() != left
    assert sorted(p.name for p in temp.iterdir()) == ["stackmeta-build-unrelated"]

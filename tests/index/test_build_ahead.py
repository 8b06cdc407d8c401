"""Builds ahead (:meth:`stackmeta.index.installable.Builds.start`): real sdists with in-tree PEP 517
backends on a real pypiserver. A build started ahead runs in the background, is not built a
second time when the search asks for it, and is stopped when the program ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta.index import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.target import Target
from tests.pypiserver_fixture import pypiserver
from tests.resolve.test_cells import make_sdist

ROOT = Path(__file__).resolve().parents[2]


def _built(path: Path) -> list[tuple[str, int]]:
    """(sdist, pid of its backend) per build the backends logged."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(name, int(pid)) for name, pid in (ln.split() for ln in lines)]


def _sleeping_builds(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The log the test backends write a line to as each build starts, and the environment that
    makes them sleep 600 s then (for a program run in a child process)."""
    log = tmp_path / "builds.log"
    return log, {**os.environ, "STACKMETA_TEST_BUILD_LOG": str(log), "STACKMETA_TEST_BUILD_SLEEP": "600",
                 "PYTHONPATH": str(ROOT)}


def _wait_for(path: Path, builds: int, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(_built(path)) < builds:
        time.sleep(0.2)
    return [name for name, _ in _built(path)]


@pytest.mark.slow
def test_builds_ahead_run_in_the_background_and_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "builds.log"
    monkeypatch.setenv("STACKMETA_TEST_BUILD_LOG", str(log))
    with pypiserver(tmp_path / "server") as server:
        for version in ("1.0", "1.1", "1.2"):
            make_sdist(server.packages, "stepper", version)
        with IndexClient(server.simple, cache_dir=tmp_path / "cache") as client:
            target = Target(python=Version("3.9.14"), platform="linux-x86_64")
            source = IndexSource(client, target, builds=Builds(client))
            versions = sorted(source.versions("stepper"))  # type: ignore[arg-type]
            assert versions == [Version("1.0"), Version("1.1"), Version("1.2")]
            for v in versions[1:]:
                source.build_ahead("stepper", v)  # type: ignore[arg-type]
            # nobody asked yet: both are built in the background
            assert sorted(_wait_for(log, 2, 300)) == ["stepper-1.1", "stepper-1.2"]
            verdicts = [source.installable("stepper", v) for v in versions]  # type: ignore[arg-type]
            assert [(v.installable, v.how) for v in verdicts] == [(True, "built")] * 3
            source.build_ahead("stepper", versions[2])  # type: ignore[arg-type]  # known: not again
            time.sleep(1)
    assert sorted(name for name, _ in _built(log)) == ["stepper-1.0", "stepper-1.1", "stepper-1.2"]


SCRIPT = textwrap.dedent('''
    import sys
    from stackmeta.index import IndexClient
    from stackmeta.index.installable import Builds
    from stackmeta.index.source import IndexSource
    from stackmeta.target import Target
    from packaging.version import Version

    from pathlib import Path
    with IndexClient(sys.argv[1], cache_dir=Path(sys.argv[2])) as client:
        target = Target(python=Version("3.9.14"), platform="linux-x86_64")
        source = IndexSource(client, target, builds=Builds(client))
        source.build_ahead("sleeper", Version("1.0"))
        import time, os
        while not os.path.exists(sys.argv[3]):  # until the backend runs (and sleeps 600 s)
            time.sleep(0.1)
    print("leaving")
''')


@pytest.mark.slow
def test_a_build_ahead_is_stopped_when_the_program_ends(tmp_path: Path) -> None:
    log, env = _sleeping_builds(tmp_path)
    with pypiserver(tmp_path / "server") as server:
        make_sdist(server.packages, "sleeper", "1.0")
        start = time.monotonic()
        cmd = [sys.executable, "-c", SCRIPT, server.simple, str(tmp_path / "cache"), str(log)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "leaving"
    assert took < 240, took  # the 600 s build did not hold the program
    [(name, pid)] = _built(log)
    assert name == "sleeper-1.0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the backend of the build ahead still runs"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


CTRL_C = textwrap.dedent('''
    import sys
    from pathlib import Path
    from packaging.version import Version
    from stackmeta.index import IndexClient
    from stackmeta.index.installable import Builds
    from stackmeta.index.source import IndexSource
    from stackmeta.target import Target

    with IndexClient(sys.argv[1], cache_dir=Path(sys.argv[2])) as client:
        source = IndexSource(client, Target(python=Version("3.9.14"), platform="linux-x86_64"))
        todo = [("sleeper", f) for v in ("1.0", "1.1", "1.2", "1.3")
                for f in source.files("sleeper", Version(v)) if f.kind == "sdist"]
        Builds(client).build_many(todo)  # two at a time, the others waiting for their turn
''')


@pytest.mark.slow
def test_ctrl_c_stops_the_builds_at_once_and_leaves_no_verdict(tmp_path: Path) -> None:
    log, env = _sleeping_builds(tmp_path)
    with pypiserver(tmp_path / "server") as server:
        for version in ("1.0", "1.1", "1.2", "1.3"):
            make_sdist(server.packages, "sleeper", version)
        # a terminal's Ctrl-C: SIGINT to the program's process group (the builds run in their own)
        proc = subprocess.Popen([sys.executable, "-c", CTRL_C, server.simple, str(tmp_path / "cache")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert len(_wait_for(log, 2, 240)) == 2, proc.stderr  # two builds run (and sleep 600 s)
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - start
    assert "KeyboardInterrupt" in err
    assert took < 15, took  # the two waiting builds did not start, the running ones were stopped
    started = [name for name, _ in _built(log)]  # two of the four (whichever got their turn first)
    assert len(started) == len(set(started)) == 2
    assert set(started) <= {f"sleeper-1.{i}" for i in range(4)}
    for _, pid in _built(log):
        assert not _alive(pid), "a backend still runs"
    # a build stopped by Ctrl-C is no verdict: nothing is remembered for the next run
    assert list((tmp_path / "cache" / "builds").glob("*.json")) == []

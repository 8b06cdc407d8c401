"""``stackmeta check`` run for real (a subprocess) against faults: Ctrl-C while every request
hangs on a silent index, and a cache folder that cannot be written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stackmeta import record
from tests.check.test_check import FIXTURE, release
from tests.clirunner import interruptible
from tests.httpserver import SocketServer, StaticServer, read_request

ROOT = Path(__file__).resolve().parents[2]


def make_locks(tmp_path: Path) -> Path:
    folder = tmp_path / "locks"
    record.write_document(record.record_path(folder, "CMSSW_99_0_0"), record.new_document(release()))
    return folder


def stackmeta(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "stackmeta", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200"}, preexec_fn=interruptible)


def test_ctrl_c_ends_a_check_within_two_seconds(tmp_path: Path) -> None:
    """The index answers its first request (a 404: the host is known, the other pages go out
    at once), then never again: ~10 worker threads sit in libcurl with 30 s to wait."""
    locks = make_locks(tmp_path)
    path = record.record_path(locks, "CMSSW_99_0_0")
    before = path.read_bytes()
    requests: list[bytes] = []
    lock = threading.Lock()

    def first_then_silence(conn: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            head = read_request(conn)
            if not head:
                return
            with lock:
                requests.append(head)
                first = len(requests) == 1
            if not first:
                stop.wait(120)
                return
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    with SocketServer(first_then_silence) as server:
        proc = stackmeta("check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--index-url",
                         server.url + "/simple", "--timeout", "30", "--no-cache")
        deadline = time.monotonic() + 20
        while len(requests) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(requests) >= 6, "the check never got its requests out"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("still running 15 s after Ctrl-C")
        took = time.monotonic() - start
    assert proc.returncode == 130, err
    assert took < 2.0, f"exit took {took:.1f} s"
    assert err.strip().splitlines()[-1] == "interrupted: nothing half-written was left behind"
    assert "Traceback" not in err
    assert path.read_bytes() == before  # the record untouched
    assert sorted(p.name for p in locks.iterdir()) == [path.name]


def test_a_cache_folder_that_cannot_be_written_is_dropped_with_one_warning(tmp_path: Path) -> None:
    """/proc/self is a folder nobody (root included) can create a file in."""
    locks = make_locks(tmp_path)
    with StaticServer(FIXTURE) as server:
        base = ["check", "CMSSW_99_0_0", "--locks-dir", str(locks), "--index-url", server.url + "/simple",
                "--retries", "1", "--no-save"]
        proc = stackmeta(*base, "--cache-dir", "/proc/self")
        out, err = proc.communicate(timeout=60)
        proc_ok = stackmeta(*base, "--no-cache")
        out_ok, _ = proc_ok.communicate(timeout=60)
    warnings = [line for line in err.splitlines() if line.startswith("warning: cache")]
    assert warnings == ["warning: cache /proc/self cannot be written (unable to open database file): "
                        "going on without it; give --cache-dir a writable folder, or --no-cache"]
    assert "Traceback" not in err and "Exception in thread" not in err
    # the same check as without a cache (but for the timing in the last line)
    assert (proc.returncode, out.splitlines()[:-1]) == (proc_ok.returncode, out_ok.splitlines()[:-1])

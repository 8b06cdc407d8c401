"""A real devpi-server on loopback for the publish tests.

:func:`devpi` initialises a temporary server folder (``devpi-init``, no ``root/pypi`` mirror),
starts ``devpi-server --offline-mode`` on 127.0.0.1 on a free port (it reaches nothing
outside), waits until it answers, creates one user and one index with no bases through
devpi's JSON API (HTTP basic auth, as twine uses), and stops the server afterwards
(terminate, wait, kill).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.pypiserver_fixture import free_port

USER = "cms"
PASSWORD = "s3cret-for-devpi-tests"
INDEX = "stack"


@dataclass(frozen=True)
class Devpi:
    url: str  # http://127.0.0.1:PORT
    user: str
    index: str

    @property
    def upload(self) -> str:
        """The upload URL twine takes: ``<url>/<user>/<index>/``."""
        return f"{self.url}/{self.user}/{self.index}/"

    @property
    def simple(self) -> str:
        """The index's PEP 503/691 simple index: ``<url>/<user>/<index>/+simple/``."""
        return f"{self.url}/{self.user}/{self.index}/+simple/"


def installed() -> str | None:
    """Why devpi cannot run here (None: it can)."""
    missing = [tool for tool in ("devpi-init", "devpi-server") if _tool(tool) is None]
    return f"devpi-server is not installed ({', '.join(missing)} not found)" if missing else None


def _tool(name: str) -> str | None:
    import sys

    beside = Path(sys.executable).parent / name  # the venv's own, even when it is not on PATH
    return str(beside) if beside.exists() else shutil.which(name)


def _put(url: str, body: dict[str, object], auth: tuple[str, str] | None = None) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT", headers={
        "Content-Type": "application/json", "Accept": "application/json"})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status not in (200, 201):
            raise RuntimeError(f"devpi: PUT {url} answered HTTP {resp.status}")


@contextlib.contextmanager
def devpi(folder: Path, *, volatile: bool = False) -> Iterator[Devpi]:
    """A real devpi-server on loopback with the index USER/INDEX (no bases), uploads for
    USER/PASSWORD. *volatile* False: like a production index, a file once uploaded stays."""
    init, server = _tool("devpi-init"), _tool("devpi-server")
    if init is None or server is None:
        raise RuntimeError(installed() or "devpi-server is not installed")
    serverdir = folder / "server"
    log_path = folder / "devpi-server.log"
    with open(log_path, "wb") as log:
        subprocess.run([init, "--serverdir", str(serverdir), "--root-passwd", "root-" + PASSWORD,
                        "--no-root-pypi"], stdout=log, stderr=subprocess.STDOUT, check=True, timeout=60)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [server, "--serverdir", str(serverdir), "--host", "127.0.0.1", "--port", str(port),
         "--offline-mode", "--threads", "4"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/+api", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("devpi-server did not start: " + log_path.read_text()) from None
                time.sleep(0.1)
        _put(f"{url}/{USER}", {"password": PASSWORD})
        _put(f"{url}/{USER}/{INDEX}", {"type": "stage", "bases": [], "volatile": volatile},
             auth=(USER, PASSWORD))
        yield Devpi(url=url, user=USER, index=INDEX)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

"""Real components for the metapackage tests: a pypiserver on loopback, tiny real wheels, and
synthetic release records.

- :func:`pypiserver` starts the real ``pypi-server`` on 127.0.0.1 on a free port, serving a
  temporary package folder, with uploads allowed for one user (a passlib htpasswd file), and
  stops it afterwards (a context manager; the ``pypi_server`` fixture in the test modules
  wraps it).
- :func:`make_wheel` writes a small but real wheel (METADATA with Requires-Dist and
  Requires-Python, WHEEL, RECORD with hashes) that pip installs.
- :func:`synthetic_release` / :func:`write_record` make a release record as the exporter would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta import record
from stackmeta.record import BuildKind, Package, Release

USER = "maintainer"
PASSWORD = "s3cret-for-tests"


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT
    packages: Path

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pypiserver(folder: Path, *, authenticate: str = "update") -> Iterator[Server]:
    """A real pypiserver on loopback serving *folder*/packages, uploads for USER/PASSWORD.
    *authenticate*: what needs USER/PASSWORD (pypiserver's ``-a``), e.g. ``"download,list,update"``
    for an index that serves nothing without them (the URL is then ``Server.url``; the start-up
    probe sends them)."""
    with warnings.catch_warnings():  # passlib imports crypt, deprecated in Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.apache import HtpasswdFile

        packages = folder / "packages"
        packages.mkdir(parents=True, exist_ok=True)
        htpasswd = folder / "htpasswd"
        ht = HtpasswdFile(str(htpasswd), new=True)
        ht.set_password(USER, PASSWORD)
        ht.save()
    port = free_port()
    log = open(folder / "pypiserver.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1", "-p", str(port),
         "-P", str(htpasswd), "-a", authenticate, "--disable-fallback", "--hash-algo", "sha256",
         str(packages)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                probe = urllib.request.Request(f"{url}/simple/", headers={"Authorization": "Basic " + (
                    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())})
                with urllib.request.urlopen(probe, timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "pypiserver did not start: " + (folder / "pypiserver.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield Server(url=url, packages=packages)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    folder: Path, name: str, version: str, requires: Sequence[str] = (),
    requires_python: str | None = None, tag: str = "py3-none-any", modules: Mapping[str, str] | None = None,
) -> Path:
    """A tiny real wheel of *name* *version* with a module that knows its version (and the
    files *modules*, path to text, when given)."""
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: stackmeta-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
        **{path: text.encode() for path, text in (modules or {}).items()},
    }
    record_text = "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]) + "\n"
    files[f"{info}/RECORD"] = record_text.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0)), d)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-{tag}.whl"
    path.write_bytes(out.getvalue())
    return path


def package(name: str, version: str, *, build: BuildKind = BuildKind.PYPI,
            patches: Iterable[str] = (), requires: Iterable[str] = (), prefix: str = "py3-") -> Package:
    return Package(
        rpm=f"{prefix}{name}", name=canonicalize_name(name), display_name=name,
        version_written=version, version=Version(version), build=build,
        source_url="git+https://github.com/example/x" if build == BuildKind.VCS else None,
        patches=tuple(patches), requires=tuple(canonicalize_name(r) for r in requires),
        arches=("el9_amd64_gcc12",),
    )


def synthetic_release(packages: Sequence[Package], *, release: str = "CMSSW_14_0_0",
                      python: str = "3.9.14", arch: str = "el9_amd64_gcc12") -> Release:
    from stackmeta.release import release_version

    return Release(
        release=release, metapackage_version=release_version(release), arches=(arch,),
        python=Version(python), source="folder tests", stackmeta_version="test",
        packages=tuple(packages),
    )


def write_record(locks_dir: Path, rel: Release, name: str | None = None) -> Path:
    path = record.record_path(locks_dir, name or rel.release)
    record.write_document(path, record.new_document(rel))
    return path


def env_without_index() -> dict[str, str]:
    """The environment for child pips: no user config, no index from the outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_CONFIG_FILE"] = os.devnull
    return env

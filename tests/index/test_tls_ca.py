"""The certificates of the CAs a request trusts: where the system's CA bundle sits beside a folder
of hashed names, the transport gives libcurl the folder alone (OpenSSL reads from it just the
certificates a connection needs; the bundle was read whole into each of a resolve's 32 handles,
about 0.8 MB each), and a server the folder does not verify is tried again with the bundle.
A real TLS server on loopback, with a CA and a server certificate made here by openssl."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stackmeta.errors import IndexAccessError
from stackmeta.index import http


def _openssl(*args: str, cwd: Path) -> str:
    return subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _ca(folder: Path, name: str) -> Path:
    """A CA of its own (its key and certificate in *folder*): its certificate's path."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-subj", f"/CN={name}", "-days", "2", cwd=folder)
    return folder / f"{name}.pem"


def _hashed(folder: Path, *certs: Path) -> Path:
    """A CA folder holding *certs* under OpenSSL's hashed names."""
    folder.mkdir()
    for cert in certs:
        digest = _openssl("x509", "-hash", "-noout", "-in", str(cert), cwd=folder).strip()
        shutil.copy(cert, folder / f"{digest}.0")
    return folder


@pytest.fixture
def made(tmp_path: Path) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command here to make the test CA and certificate")
    ca = _ca(tmp_path, "stackmeta-test-ca")
    other = _ca(tmp_path, "another-ca")
    (tmp_path / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=tmp_path)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", "stackmeta-test-ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=tmp_path)
    return {"ca": ca, "other": other, "cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
            "with_ca": _hashed(tmp_path / "with-ca", ca),
            "without_ca": _hashed(tmp_path / "without-ca", other)}


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def _tls_server(cert: Path, key: Path) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_system_ca_folder_alone_verifies_a_server(made: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the system's own bundle
    monkeypatch.setenv("SSL_CERT_DIR", str(made["with_ca"]))
    transport = http.Transport(jobs=2, retries=0, timeout=10)
    if not transport._ca_folder_only:
        pytest.skip("this system has no CA bundle of its own beside the folder")
    with _tls_server(made["cert"], made["key"]) as url:
        assert transport.get(url).body == b"hello"
    assert transport._ca_folder_only  # the folder sufficed: the bundle was never read
    transport.close()


def test_a_server_the_folder_does_not_verify_is_tried_again_with_the_bundle(
        made: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(made["ca"]))  # the bundle has the CA, the folder not
    monkeypatch.setenv("SSL_CERT_DIR", str(made["without_ca"]))
    monkeypatch.setattr(http, "_folder_only", lambda *_: True)  # as for the system's own bundle
    transport = http.Transport(jobs=2, retries=0, timeout=10)
    with _tls_server(made["cert"], made["key"]) as url:
        assert transport.get(url).body == b"hello"
        assert not transport._ca_folder_only  # from now on every handle reads the bundle too
        assert transport.get(url).body == b"hello"
    transport.close()


def test_the_folder_alone_still_refuses_a_server_nobody_vouches_for(
        made: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(made["without_ca"]))
    transport = http.Transport(jobs=2, retries=0, timeout=10)
    with _tls_server(made["cert"], made["key"]) as url, pytest.raises(IndexAccessError) as err:
        transport.get(url)
    assert "127.0.0.1" in str(err.value)
    transport.close()


def test_a_bundle_the_user_names_is_read_as_given(made: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(made["ca"]))
    monkeypatch.setenv("SSL_CERT_DIR", str(made["without_ca"]))
    transport = http.Transport(jobs=2, retries=0, timeout=10)
    assert not transport._ca_folder_only
    with _tls_server(made["cert"], made["key"]) as url:
        assert transport.get(url).body == b"hello"
    transport.close()

"""The adapter around ``twine``: publish a metapackage's files to an index, and prove it.

Before any upload: the built files say exactly the nearest set (the wheel's Requires-Dist
and the sdist's PKG-INFO equal its pins, none is a direct URL); the release's check has no
blocking problem that the nearest set leaves unexplained (or ``--force``); the index's page
for the project is read (PEP 691 or PEP 503: pypiserver serves only HTML and answers 409 to a
duplicate, twine's ``--skip-existing`` only knows PyPI), files already there with the same
sha256 are skipped, a file there with another sha256 stops everything. Upload with
``python -m twine upload --non-interactive``: credentials come the way twine takes them
(``TWINE_USERNAME``/``TWINE_PASSWORD``, keyring, ``.pypirc``), never from our command line,
never printed. Afterwards the page is read again until it serves every file with the expected
sha256.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from stackmeta.errors import BuildError, PublishError, StackmetaError
from stackmeta.index import IndexClient, ProjectPage
from stackmeta.index.http import Transport
from stackmeta.package import builder
from stackmeta.package.metapackage import requirements
from stackmeta.resolve.nearest import NearestSet

_INSTALLABLE = ("wheel", "sdist-only")


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalFile:
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True, kw_only=True, slots=True)
class Published:
    """What :func:`publish` did."""

    index_url: str
    uploaded: tuple[LocalFile, ...]
    skipped: tuple[LocalFile, ...]  # already there with the same sha256
    verified: tuple[str, ...]  # filenames the index serves with the expected sha256


_KNOWN_UPLOADS = {
    "https://upload.pypi.org/legacy": "https://pypi.org/simple",
    "https://test.pypi.org/legacy": "https://test.pypi.org/simple",
}


def simple_index_for(repository_url: str) -> str:
    """The simple index that shows what *repository_url* (an upload URL) received, by its form
    alone: PyPI's and TestPyPI's legacy upload URLs map to their simple index, ``.../legacy`` to
    ``.../simple``, anything else (pypiserver) to ``<url>/simple``. devpi's ``<user>/<index>/``
    looks like anything else: :func:`index_for` asks the server."""
    url = repository_url.rstrip("/")
    if url in _KNOWN_UPLOADS:
        return _KNOWN_UPLOADS[url]
    if url.endswith("/legacy"):
        return url[: -len("/legacy")] + "/simple"
    return url + "/simple"


def index_for(repository_url: str, index_url: str | None = None) -> str:
    """The simple index to read before and after uploading to *repository_url*: *index_url* if
    given; else a devpi index's own (its ``+api`` page names it: ``<user>/<index>/+simple``);
    else :func:`simple_index_for`."""
    if index_url:
        return index_url.rstrip("/")
    url = repository_url.rstrip("/")
    if url in _KNOWN_UPLOADS or url.endswith("/legacy"):
        return simple_index_for(url)
    transport = Transport(timeout=10.0, retries=1)
    try:
        resp = transport.get(url + "/+api", headers={"Accept": "application/json"})
    except StackmetaError:
        resp = None  # the server is down: reading its page says so, with the URL
    finally:
        transport.close()
    devpi = _devpi_simple_index(resp.body) if resp is not None and resp.status == 200 else None
    return (devpi or simple_index_for(url)).rstrip("/")


def _devpi_simple_index(body: bytes) -> str | None:
    """``result.simpleindex`` of devpi's ``+api`` answer (``{"type": "apiconfig", ...}``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    result = doc.get("result") if isinstance(doc, dict) and doc.get("type") == "apiconfig" else None
    simple = result.get("simpleindex") if isinstance(result, dict) else None
    return simple if isinstance(simple, str) and simple.startswith(("http://", "https://")) else None


def local_files(paths: Sequence[Path]) -> tuple[LocalFile, ...]:
    return tuple(LocalFile(path=p, sha256=builder.sha256(p)) for p in paths)


# -- before upload ----------------------------------------------------------------------


def verify_dists(paths: Sequence[Path], nearest: NearestSet) -> None:
    """Every wheel's Requires-Dist and every sdist's PKG-INFO is exactly the nearest set."""
    expected = requirements(nearest)
    for path in paths:
        data = path.read_bytes()
        try:
            if path.name.endswith(".whl"):
                meta = builder.wheel_metadata(data, path.name)
            elif path.name.endswith(".tar.gz"):
                meta = builder.sdist_metadata(data, path.name)
            else:
                raise PublishError(
                    f"{path}: neither a wheel nor a .tar.gz sdist: build it with 'stackmeta build'"
                )
            builder.check_requires_dist(meta.requires_dist or [], expected, path.name)
        except BuildError as exc:
            raise PublishError(f"not published: {exc}") from None


def unresolved_problems(check: Mapping[str, Any] | None, nearest: NearestSet) -> list[str]:
    """The check's blocking problems that the nearest set does not answer (each deviation,
    addition and omission answers the problems of its package); incomplete results count."""
    if check is None:
        return []
    answered = ({d.name for d in nearest.deviations} | {o.name for o in nearest.omissions}
                | {a.name for a in nearest.additions})
    pins = nearest.pin_map
    out: list[str] = []
    for pin in check.get("pins", ()):
        if pin.get("error"):
            out.append(f"{pin['name']}: the check has no result ({pin['error']})")
        elif pin.get("status") not in _INSTALLABLE and pin["name"] not in answered:
            out.append(f"{pin['name']}=={pin.get('version')} is not installable ({pin.get('status')})")
    for conflict in check.get("conflicts", ()):
        if conflict["requirer"] not in answered and conflict["dependency"] not in answered:
            out.append(f"{conflict['requirer']}=={conflict['requirer_version']} requires "
                       f"{conflict['requirement']}; the release pins "
                       f"{conflict['dependency']}=={conflict['pinned']}")
    for problem in check.get("python_problems", ()):
        if problem["name"] not in answered:
            out.append(f"{problem['name']}=={problem['version']} requires Python "
                       f"{problem['requires_python']}")
    for unpinned in check.get("unpinned", ()):
        requirers = {canonicalize_name(str(r).split("==")[0].split(":")[0].strip())
                     for r in unpinned.get("required_by", ())}
        if requirers and requirers <= answered:
            continue  # every package that wanted it moved or was left out
        if unpinned.get("picked") is None and unpinned["name"] not in pins:
            out.append(f"{unpinned['name']}{unpinned.get('specifier') or ''}: no version on the index fits")
    return out


def plan(files: Sequence[LocalFile], page: ProjectPage | None, *,
         fetch_sha256: Callable[[str], str] | None = None) -> tuple[list[LocalFile], list[LocalFile]]:
    """(to upload, to skip): a file already on *page* with the same sha256 is skipped; with
    another sha256 it stops the publish. A page that gives no hash: *fetch_sha256(url)*."""
    on_index = {f.filename: f for f in page.files} if page is not None else {}
    upload: list[LocalFile] = []
    skip: list[LocalFile] = []
    for local in files:
        remote = on_index.get(local.filename)
        if remote is None:
            upload.append(local)
            continue
        digest = remote.sha256
        if digest is None and fetch_sha256 is not None:
            digest = fetch_sha256(remote.url)
        if digest == local.sha256:
            skip.append(local)
        else:
            raise PublishError(
                f"{local.filename} is already on the index ({remote.url}) with sha256 {digest}, "
                f"ours is {local.sha256}: nothing was uploaded; publish a new version "
                "(stackmeta build --version ...) or remove that file from the index"
            )
    return upload, skip


# -- upload and read back ---------------------------------------------------------------


def twine_upload(paths: Sequence[Path], repository_url: str) -> None:
    """``python -m twine upload --non-interactive``; credentials from twine's own sources."""
    if not paths:
        return
    cmd = [sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
           "--repository-url", repository_url, *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        detail = " / ".join(lines[-3:]) or f"exit code {proc.returncode}"
        raise PublishError(
            f"twine could not upload to {repository_url}: {detail}: check the URL and the credentials "
            "(TWINE_USERNAME/TWINE_PASSWORD, keyring or .pypirc)"
        )


def _page(index_url: str, name: str) -> tuple[ProjectPage | None, IndexClient]:
    client = IndexClient(index_url, cache_dir=False, page_max_age=0, retries=2)
    return client.project(name), client


def read_back(
    index_url: str, name: str, files: Sequence[LocalFile], *, wait: float = 10.0
) -> tuple[str, ...]:
    """Read the project's page until it serves every file with the expected sha256."""
    deadline = time.monotonic() + wait
    while True:
        page, client = _page(index_url, name)
        try:
            served = {f.filename: f for f in page.files} if page is not None else {}
            bad: list[str] = []
            for local in files:
                remote = served.get(local.filename)
                if remote is None:
                    bad.append(f"{local.filename} is not listed")
                    continue
                digest = remote.sha256 or download_sha256(client, remote.url, "an uploaded file back")
                if digest != local.sha256:
                    bad.append(f"{local.filename} is served with sha256 {digest}, expected {local.sha256}")
        finally:
            client.close()
        if not bad:
            return tuple(f.filename for f in files)
        if time.monotonic() > deadline:
            raise PublishError(f"{index_url}/{name}/: after the upload {bad[0]}: check the index")
        time.sleep(0.5)


def download_sha256(client: IndexClient, url: str, what: str = "a file of the index") -> str:
    """The sha256 of the file at *url* on the index, downloaded (for a page that gives no hash)."""
    resp = client.transport.get(url)
    if resp.status != 200:
        raise PublishError(f"{url}: HTTP {resp.status} reading {what}: check the index")
    return hashlib.sha256(resp.body).hexdigest()


def project_name(paths: Sequence[Path]) -> str:
    names = set()
    for path in paths:
        if path.name.endswith(".whl"):
            names.add(parse_wheel_filename(path.name)[0])
        else:
            names.add(parse_sdist_filename(path.name)[0])
    if len(names) != 1:
        raise PublishError(f"files of {len(names)} projects given ({', '.join(sorted(names))}): publish one")
    return names.pop()


def publish(
    paths: Sequence[Path], nearest: NearestSet, *, repository_url: str, index_url: str | None = None,
    check: Mapping[str, Any] | None = None, force: bool = False,
) -> Published:
    """Publish the built files of one metapackage (see the module's docstring)."""
    verify_dists(paths, nearest)
    problems = unresolved_problems(check, nearest)
    if problems and not force:
        raise PublishError(
            f"the release's check has {len(problems)} blocking problem(s) the nearest set does not "
            f"answer, first: {problems[0]}: fix them, or publish anyway with --force"
        )
    name = project_name(paths)
    index = index_for(repository_url, index_url)
    files = local_files(paths)
    try:
        page, client = _page(index, name)
        try:
            upload, skip = plan(files, page, fetch_sha256=lambda url: download_sha256(client, url))
        finally:
            client.close()
    except PublishError:
        raise
    except StackmetaError as exc:
        raise PublishError(f"cannot read {index}/{name}/ before uploading ({exc})") from None
    twine_upload([f.path for f in upload], repository_url)
    verified = read_back(index, name, files)
    return Published(index_url=index, uploaded=tuple(upload), skipped=tuple(skip), verified=verified)

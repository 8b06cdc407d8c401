"""The adapter around ``twine``: publish a metapackage's files to an index, and prove it.

The files are first copied to a private temporary folder and checked against the sha256 of
the bytes the build wrote: what is checked and uploaded is those bytes, whatever happens in
``--out`` meanwhile. Before any upload: the files say exactly the nearest set (the wheel's
Requires-Dist and the sdist's PKG-INFO equal its pins, none is a direct URL); the release's
check has no blocking problem that the nearest set leaves unexplained (or ``--force``); the
index's page for the project is read (PEP 691 or PEP 503: pypiserver serves only HTML and
answers 409 to a duplicate, twine's ``--skip-existing`` only knows PyPI), files already there
with the same sha256 are skipped, a file there with another sha256 stops everything. Upload
with ``python -m twine --no-color upload --non-interactive``, to ``--repository-url`` or to a
``.pypirc`` section by name (``--repository``, as twine takes it): credentials come the way
twine takes them (``TWINE_USERNAME``/``TWINE_PASSWORD``, keyring, the ``.pypirc`` section), or
from the upload URL itself (given to twine through its environment), never on a command line,
never printed. twine's failure becomes one line that says what the index's status means.
Afterwards the page is read again until it lists every file, and every file is downloaded back
and its bytes hashed: a page's hash proves nothing about the bytes an index serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from stackmeta import atomic, credentials
from stackmeta.errors import BuildError, PublishError, StackmetaError, quoted
from stackmeta.index import IndexClient, ProjectPage
from stackmeta.index.http import Transport
from stackmeta.package import builder
from stackmeta.package.metapackage import requirements
from stackmeta.resolve.nearest import NearestSet

_INSTALLABLE = ("wheel", "sdist-only")
TWINE_TIMEOUT = 900.0  # seconds for one twine upload


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


def verify_dists(paths: Sequence[Path], nearest: NearestSet,
                 expected: Sequence[Requirement] | None = None) -> None:
    """Every wheel's Requires-Dist and every sdist's PKG-INFO is exactly the nearest set (or
    *expected*: the project's requirements over cells, with markers)."""
    expected = requirements(nearest) if expected is None else expected
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


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HTTP_ERROR = re.compile(r"HTTPError: (?P<status>\d{3})\s*(?P<reason>[^\n]*?)\s+from\s")
_HINTS = ("Retry with the --verbose option", "Retry with --verbose")


def twine_upload(paths: Sequence[Path], repository_url: str, *, repository: str | None = None) -> None:
    """``python -m twine --no-color upload --non-interactive``: to the ``.pypirc`` section
    *repository* (twine reads its URL and credentials there), else to *repository_url* (a user
    name and password given in that URL go to twine through its environment); otherwise
    credentials come from twine's own sources. twine's error becomes one line, its status
    code said in words."""
    if not paths:
        return
    repository_url = credentials.without(repository_url)
    env = {k: v for k, v in os.environ.items() if k not in ("TWINE_REPOSITORY", "TWINE_REPOSITORY_URL")}
    where = ["--repository", repository] if repository else ["--repository-url", repository_url]
    auth = None if repository else credentials.auth_for(repository_url)
    if auth is not None:
        env["TWINE_USERNAME"], env["TWINE_PASSWORD"] = auth
    env["COLUMNS"] = "500"  # twine's messages unwrapped, for twine_failure to read
    cmd = [sys.executable, "-m", "twine", "--no-color", "upload", "--non-interactive",
           "--disable-progress-bar", *where, *map(str, paths)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env,
                              stdin=subprocess.DEVNULL, timeout=TWINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise PublishError(f"twine did not finish uploading to {repository_url} in {TWINE_TIMEOUT:.0f} s: "
                           "check the index, then publish again (files already there are skipped)") from None
    if proc.returncode:
        raise PublishError(twine_failure(proc.stdout + proc.stderr, proc.returncode, repository_url,
                                         repository=repository))


def twine_failure(output: str, code: int, repository_url: str, *, repository: str | None = None) -> str:
    """One line for a failed twine upload: the index's HTTP status said in words (only 401 and
    403 blame the credentials), else twine's own error, without its colours and hints."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not any(h in line for h in _HINTS)]
    target = f"{repository_url} (.pypirc section {repository!r})" if repository else repository_url
    found = _HTTP_ERROR.search(" ".join(lines))  # rich may have wrapped a long URL
    if found is not None:
        status, reason = int(found["status"]), found["reason"].strip()
        said = f"HTTP {status}{' ' + reason if reason else ''}"
        if status in (401, 403):
            return (f"{target} refused the credentials ({said}): check TWINE_USERNAME/TWINE_PASSWORD, "
                    "keyring, or the .pypirc section (--repository NAME)")
        if status in (400, 409):
            return (f"{target} refused the upload ({said}): a file of that name is there already "
                    "(an index never replaces one: publish a new version, stackmeta build --version ...), "
                    "or the index does not accept it; check --index-url, which publish reads to skip what "
                    "is there")
        if status >= 500:
            return f"{target} failed ({said}): the index is in trouble; publish again later"
        return f"{target} answered {said} to the upload: check the URL"
    errors = [line.removeprefix("ERROR").strip() for line in lines if line.startswith("ERROR")]
    detail = " / ".join(errors or lines[-2:]) or f"exit code {code}"
    return f"twine could not upload to {target}: {detail}"


def pypirc_url(repository: str, config_file: str = "~/.pypirc") -> str:
    """The upload URL of the ``.pypirc`` section *repository*, read as twine reads it (twine
    itself then reads the credentials there)."""
    from twine import exceptions
    from twine.utils import get_repository_from_config

    try:
        url = get_repository_from_config(config_file, repository)["repository"]
    except exceptions.TwineException as exc:
        raise PublishError(f"--repository {repository}: {quoted(exc).rstrip('.')}: add a [{repository}] "
                           f"section with repository = URL to {config_file}, or give --repository-url"
                           ) from None
    if not url:
        raise PublishError(f"--repository {repository}: {config_file} has no [{repository}] section with a "
                           "repository URL: add one, or give --repository-url")
    return credentials.without(url)


def _page(index_url: str, name: str) -> tuple[ProjectPage | None, IndexClient]:
    client = IndexClient(index_url, cache_dir=False, page_max_age=0, retries=2)
    return client.project(name), client


def read_back(
    index_url: str, name: str, files: Sequence[LocalFile], *, wait: float = 10.0
) -> tuple[str, ...]:
    """Read the project's page until it lists every file, then download each file back and
    hash its bytes: the page's hash alone proves nothing about what the index serves. A file
    not listed yet is waited for (up to *wait* seconds); one served with other bytes, or listed
    with another hash, fails at once."""
    deadline = time.monotonic() + wait
    while True:
        page, client = _page(index_url, name)
        try:
            served = {f.filename: f for f in page.files} if page is not None else {}
            missing = [local.filename for local in files if local.filename not in served]
            if not missing:
                for local in files:
                    remote = served[local.filename]
                    got = download_sha256(client, remote.url, "an uploaded file back")
                    if got != local.sha256 or remote.sha256 not in (None, local.sha256):
                        raise PublishError(
                            f"{remote.url}: the index serves bytes with sha256 {got} (its page says "
                            f"{remote.sha256 or 'nothing'}), we built {local.sha256}: check the index"
                        )
                return tuple(f.filename for f in files)
        finally:
            client.close()
        if time.monotonic() > deadline:
            raise PublishError(f"{index_url}/{name}/: after the upload {missing[0]} is not listed: "
                               "check the index")
        time.sleep(0.5)


def download_sha256(client: IndexClient, url: str, what: str = "a file of the index") -> str:
    """The sha256 of the bytes the index serves at *url*."""
    resp = client.transport.get(url)
    if resp.status != 200:
        raise PublishError(f"{url}: HTTP {resp.status} reading {what}: check the index")
    return hashlib.sha256(resp.body).hexdigest()


def stage(files: Sequence[LocalFile], folder: Path) -> tuple[LocalFile, ...]:
    """Copies of *files* in the private *folder*, each checked against the sha256 it had when it
    was built: what is then checked and uploaded is those bytes, whatever happens in --out."""
    staged: list[LocalFile] = []
    for f in files:
        copy = folder / f.filename
        try:
            shutil.copyfile(f.path, copy)
        except OSError as exc:
            raise PublishError(f"cannot read {f.path} ({exc.strerror}): build it again") from None
        got = builder.sha256(copy)
        if got != f.sha256:
            raise PublishError(f"{f.path} changed since it was built (sha256 {got}, built {f.sha256}): "
                               "nothing was uploaded; build it again (stackmeta build) and publish")
        staged.append(LocalFile(path=copy, sha256=got))
    return tuple(staged)


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
    built: Sequence[Path | LocalFile], nearest: NearestSet, *, repository_url: str,
    index_url: str | None = None, check: Mapping[str, Any] | None = None, force: bool = False,
    repository: str | None = None, expected: Sequence[Requirement] | None = None,
) -> Published:
    """Publish the built files of one metapackage (see the module's docstring). *built*: the
    files with the sha256 the build gave them (:func:`built_files`); a path alone is hashed now.
    *repository*: a ``.pypirc`` section for twine (*repository_url* is then its URL, for reading
    the index). *expected*: its requirements when they are not the nearest set's plain pins (a
    metapackage over cells)."""
    files = tuple(f if isinstance(f, LocalFile) else local_files([f])[0] for f in built)
    repository_url = credentials.without(repository_url)  # a password in it: for the requests only
    index_url = credentials.without(index_url) if index_url else None
    with atomic.temp_dir("stackmeta-publish-") as tmp:  # mode 0700; a killed run's goes with the next
        staged = stage(files, Path(tmp))
        verify_dists([f.path for f in staged], nearest, expected)
        problems = unresolved_problems(check, nearest)
        if problems and not force:
            raise PublishError(
                f"the release's check has {len(problems)} blocking problem(s) the nearest set does not "
                f"answer, first: {problems[0]}: fix them, or publish anyway with --force"
            )
        name = project_name([f.path for f in staged])
        index = index_for(repository_url, index_url)
        try:
            page, client = _page(index, name)
            try:
                upload, skip = plan(staged, page, fetch_sha256=lambda url: download_sha256(client, url))
            finally:
                client.close()
        except PublishError:
            raise
        except StackmetaError as exc:
            raise PublishError(f"cannot read {index}/{name}/ before uploading ({exc})") from None
        twine_upload([f.path for f in upload], repository_url, repository=repository)
        verified = read_back(index, name, staged)
    given = {f.filename: f for f in files}
    return Published(index_url=index, uploaded=tuple(given[f.filename] for f in upload),
                     skipped=tuple(given[f.filename] for f in skip), verified=verified)


def built_files(built: builder.Built) -> tuple[LocalFile, ...]:
    """The files of a build with the sha256 of the bytes the build wrote."""
    return tuple(LocalFile(path=path, sha256=built.digests[path.name]) for path in built.files)

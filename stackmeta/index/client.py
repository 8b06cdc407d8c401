"""The index client: project pages and core metadata from any standard index.

``IndexClient(index_url, cache_dir)`` reads PEP 691 JSON when the index offers it, PEP 503
HTML otherwise, from ``https://``, ``http://`` or ``file://`` (a static folder, e.g. one
written by ``stackmeta snapshot``). Metadata comes, in this order, from the cache, the PEP 658
``.metadata`` file (tried even when the page does not advertise it, unless it says there is
none), HTTP range requests into the wheel, and a whole download (hash-verified). For an sdist:
its PKG-INFO (download, hash-verified).

What an index serves is untrusted. A page read over http(s) may link only http(s) files; a
``file://`` index (a snapshot folder) may also link files inside its own folder (the folder
holding ``simple/``, symlinks and ``..`` resolved). A page of another project is refused, its
files naming another project are skipped (a note on the page). Every body is bounded
(:data:`~stackmeta.index.metadata.MAX_METADATA` for metadata, :data:`MAX_FILE` for a file).
The disk cache holds metadata by the sha256 the page gives for it (PEP 658/714
``core-metadata``: checked again on every read, shared by every index); metadata the page
gives no hash for (read by range requests, from a download or a build) is kept under the
file's sha256 and the index's URL (without credentials), so one index never answers for
another.

Single calls (:meth:`project`, :meth:`metadata`) raise :class:`IndexAccessError`; batch calls
(:meth:`projects`, :meth:`metadatas`) return the error as the item's result so one bad
package never stops the others. Results are kept in memory for the client's life.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import threading
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import unquote, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from stackmeta import credentials
from stackmeta.errors import IndexAccessError, StackmetaError
from stackmeta.index import lazywheel
from stackmeta.index.cache import Cache, default_cache_dir
from stackmeta.index.http import Transport
from stackmeta.index.metadata import (
    MAX_METADATA,
    CoreMetadata,
    MetadataSource,
    parse_metadata,
    strip_description,
)
from stackmeta.index.simple import ACCEPT, ProjectFile, ProjectPage, parse_project_page
from stackmeta.once import Once
from stackmeta.progress import NO_PROGRESS, Progress

T = TypeVar("T")
R = TypeVar("R")

PYPI = "https://pypi.org/simple"
DEFAULT_PAGE_MAX_AGE = 600.0
MAX_FILE = 1 << 30  # a whole wheel or sdist read for its metadata (when nothing smaller serves)
DOWNLOAD_DEADLINE = 10  # a whole download may take this many times --timeout
DOWNLOADS_AT_ONCE = 4  # whole files (sdists read for their PKG-INFO) held in memory at once
# pages fetched at once: their parsing takes turns (one core), so more in flight only hold more
# bodies (a release's 321 pages, 80 MB of JSON, again from pypi.org with 32 request threads:
# 2.0 s and a peak of 154 to 158 MB with 8 at once, 2.2 s and 190 MB with 32, most of it never
# given back)
PAGES_AT_ONCE = 8


@dataclass(frozen=True, kw_only=True, slots=True)
class FileMetadata:
    """The core metadata read for one file, and how it was read."""

    project: NormalizedName
    file: ProjectFile
    source: MetadataSource
    # the bytes read (METADATA / PKG-INFO) without the long description (a resolver never
    # reads it, and it is most of the bytes); None when nothing could be read
    raw: bytes | None
    metadata: CoreMetadata | None
    note: str | None = None  # e.g. why a metadata build (--build-metadata) failed

    @property
    def dependencies_known(self) -> bool:
        if self.metadata is None:
            return False
        if self.source == "pep517":  # what the backend itself says, as for a wheel
            return True
        if self.source == "pkg-info" or self.file.kind == "sdist":  # PEP 643 rules, however read
            return self.metadata.dependencies_known
        return True


def normalize_index_url(url: str) -> str:
    """Strip the trailing slash; a ``file://`` folder holding ``simple/`` means that folder."""
    url = url.rstrip("/")
    if url.startswith("file:"):
        from urllib.request import url2pathname

        path = Path(url2pathname(unquote(urlsplit(url).path)))
        if not (path / "index.html").exists() and (path / "simple" / "index.html").exists():
            return url + "/simple"
    return url


class IndexClient:
    """Pages and metadata from one index; thread-safe; ``jobs`` requests in flight at once.

    *cache_dir*: a folder, None for the default user cache, or False for no disk cache.
    *page_max_age*: seconds a cached page is trusted (0: always fetch pages).
    """

    def __init__(self, index_url: str = PYPI, cache_dir: Path | Literal[False] | None = None, *,
                 jobs: int = 16, timeout: float = 30.0, retries: int = 4, backoff: float = 0.25,
                 page_max_age: float = DEFAULT_PAGE_MAX_AGE, transport: Transport | None = None,
                 keep_raw: bool = False) -> None:
        # a user name and password in the URL are for requests only (see stackmeta.credentials)
        self.index_url = normalize_index_url(credentials.without(index_url))
        root = None if cache_dir is False else (cache_dir or default_cache_dir())
        self.cache = Cache(root)
        # a client nobody closed still writes its cache (at exit at the latest)
        self._finalizer = weakref.finalize(self, self.cache.close)
        self.transport = transport or Transport(jobs=jobs, timeout=timeout, retries=retries, backoff=backoff)
        self.page_max_age = page_max_age if not self.index_url.startswith("file:") else 0.0
        self._root = _file_root(self.index_url)  # a file:// index's folder: its links stay inside
        self._scope = self.index_url  # what unverifiable cache entries are kept under (no credentials)
        self._results: Once[object] = Once()  # pages and metadata read, by key (see _once)
        # the metadata's bytes kept with the parsed metadata (FileMetadata.raw): for a snapshot,
        # which writes them out; a resolve or a check needs only the parsed fields
        self.keep_raw = keep_raw
        # content-addressed core metadata read from the cache: (sha256, project) -> (raw, parsed, source)
        self._same_metadata: dict[tuple[str | None, NormalizedName],
                                  tuple[bytes | None, CoreMetadata, str]] = {}
        self._builds = threading.BoundedSemaphore(2)  # metadata builds at once (each a venv and pip)
        # whole files in memory at once, from the request to the metadata read out of them: a
        # cold resolve asks for the metadata of every version of a project at once, and 16 sdists
        # of tens of MB each (twice: the chunks and the body) took a one-cell resolve past 1 GB
        self._downloads = threading.BoundedSemaphore(DOWNLOADS_AT_ONCE)
        self._pages = threading.BoundedSemaphore(PAGES_AT_ONCE)

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
            self.transport.abort()  # Ctrl-C: what is in flight stops now, not after its timeout
            from stackmeta.index import pep517

            pep517.stop_builds()  # and the sdists' builds (a build stopped so is not a verdict)
        self.close()

    def close(self) -> None:
        self.transport.close()
        self.cache.close()

    @property
    def jobs(self) -> int:
        return self.transport.jobs

    def project_url(self, name: str) -> str:
        return f"{self.index_url}/{canonicalize_name(name)}/"

    # -- pages -------------------------------------------------------------------------

    def project(self, name: str) -> ProjectPage | None:
        """The project's page, or None when the index does not have the project (404)."""
        cname = canonicalize_name(name)
        return self._once(f"page:{cname}", lambda: self._fetch_page(cname))

    def read_before(self, name: str) -> tuple[bool, ProjectPage | None]:
        """Whether the project's page was read before by this client, and it (None: the index
        does not have the project); never reads."""
        key = f"page:{canonicalize_name(name)}"
        return self._results.has(key), cast("ProjectPage | None", self._results.peek(key))

    def projects_at_hand(self, names: Iterable[str]) -> list[NormalizedName]:
        """Read the pages of *names* that come without a request (fresh in the disk cache) and
        keep them, as :meth:`project` would; nothing is asked of the index, and a page that does
        not read is left for :meth:`project` to meet (and say). The names whose page was read."""
        read = []
        for name in names:
            cname = canonicalize_name(name)
            key = f"page:{cname}"
            if self._results.has(key):
                continue
            try:
                page = self._cached_page(cname)
            except StackmetaError:
                continue
            if page is not None:
                self._results.put(key, page)
                read.append(cname)
        return read

    def metadata_read_before(self, file: ProjectFile) -> bool:
        """Whether *file*'s metadata was read before by this client; never reads."""
        return self._results.has(f"md:{file.sha256 or file.url}")

    def metadata_at_hand(self, file: ProjectFile) -> bool:
        """Whether *file*'s metadata comes without a request: read before by this client, or
        in the disk cache (an entry that does not check out when read is fetched after all)."""
        return self.metadata_read_before(file) or any(
            self.cache.has_metadata(key) for key, _ in self._md_keys(file))

    def _once(self, key: str, compute: Callable[[], T]) -> T:
        """*compute*'s result for *key*, computed once for the client's life however many
        threads ask at once (the others wait for it); an exception is not remembered."""
        return cast(T, self._results.get(key, compute))

    def _fetch_page(self, cname: NormalizedName) -> ProjectPage | None:
        url = self.project_url(cname)
        cached = self._cached_page(cname)
        if cached is not None:
            return cached
        with self._pages:  # PAGES_AT_ONCE: from the request to the page parsed
            resp = self.transport.get(url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"})
            if resp.status in (404, 410):
                return None
            if resp.status != 200:
                raise IndexAccessError(f"{url}: HTTP {resp.status} for project {cname}: check the index URL")
            if resp.url != url and _other_page(url, resp.url, cname):
                raise IndexAccessError(f"{url}: redirected to {resp.url}, another project's page: "
                                       "the index serves another project's page; refused")
            page = _parse_page(resp.body, resp.content_type, resp.url, cname)
            self.cache.put_page(self.index_url, cname, resp.body, resp.content_type, resp.url)
            return page

    def _cached_page(self, cname: NormalizedName) -> ProjectPage | None:
        """The page from the disk cache, fetched less than ``page_max_age`` ago; None when it is
        not there (never a request)."""
        cached = self.cache.get_page(self.index_url, cname, self.page_max_age)
        return None if cached is None else _parse_page(*cached, cname)

    def projects(self, names: Iterable[str], progress: Progress = NO_PROGRESS
                 ) -> dict[NormalizedName, ProjectPage | StackmetaError | None]:
        """Many pages at once; an error is the item's result."""
        wanted = [canonicalize_name(n) for n in names]
        return self.map(self.project, wanted, progress, "pages")

    # -- metadata ----------------------------------------------------------------------

    def metadata(self, file: ProjectFile, project: str) -> FileMetadata:
        """The core metadata of *file* (a file of *project*'s page)."""
        return self._once(f"md:{file.sha256 or file.url}",
                          lambda: self._read_metadata(file, canonicalize_name(project)))

    def built_metadata(self, file: ProjectFile, project: str) -> FileMetadata:
        """The metadata the sdist *file* builds through PEP 517 in an isolated environment
        (its build requirements from this index). Opt-in: it runs the project's build code.
        Cached by the sdist's sha256 like any metadata, so a file is built once. Raises
        :class:`IndexAccessError` (a download or the build failed)."""
        return self._once(f"pep517:{file.sha256 or file.url}",
                          lambda: self._build_metadata(file, canonicalize_name(project)))

    def _build_metadata(self, file: ProjectFile, project: NormalizedName) -> FileMetadata:
        cache_key = self._scoped_key("pep517", file.sha256)
        cached = self._cached([(cache_key, False)], file, project)
        if cached is not None:
            return cached
        with self._downloads:
            body = self._download(file, project)
        from stackmeta.index import pep517

        with self._builds:
            data = pep517.build_sdist_metadata(body, file.filename,
                                               index_url=credentials.with_auth(self.index_url))
        md = parse_metadata(data, url=f"{file.url} (built)", project=project)
        self.cache.put_metadata(cache_key, data, "pep517")
        return FileMetadata(project=project, file=file, source="pep517", raw=self._raw(data),
                            metadata=md)

    def metadatas(self, files: Iterable[tuple[str, ProjectFile]], progress: Progress = NO_PROGRESS
                  ) -> dict[tuple[str, ProjectFile], FileMetadata | StackmetaError]:
        return self.map(lambda item: self.metadata(item[1], item[0]), files, progress, "metadata")

    def map(self, fn: Callable[[T], R], items: Iterable[T], progress: Progress = NO_PROGRESS,
            what: str = "requests") -> dict[T, R | StackmetaError]:
        """Run *fn* over *items* concurrently (``jobs`` at once); errors are results."""
        todo = list(items)
        progress.start(what, len(todo))
        try:
            return self.transport.map(fn, todo, lambda _i, _r: progress.advance())
        finally:
            progress.done()

    # -- the disk cache: what comes out is checked ---------------------------------------

    def _scoped_key(self, kind: str, sha256: str | None) -> str | None:
        """The cache key of what this index served for the file with this sha256 (*kind*:
        "md" for its metadata, "pep517" for what it builds): this index's alone."""
        if sha256 is None:
            return None
        return hashlib.sha256(f"{kind}\0{self._scope}\0{sha256}".encode()).hexdigest()

    def _md_keys(self, file: ProjectFile) -> list[tuple[str | None, bool]]:
        """Where the cache may hold *file*'s metadata, and whether the key is the data's own
        sha256 (to check): the page's core-metadata hash first, then this index's entry."""
        return [(file.core_metadata_sha256, True), (self._scoped_key("md", file.sha256), False)]

    def _cached(self, keys: list[tuple[str | None, bool]], file: ProjectFile,
                project: NormalizedName) -> FileMetadata | None:
        """The metadata the disk cache holds under the first of *keys* that checks out, or
        None. An entry whose bytes are not the sha256 it is kept under, that is not *project*'s
        core metadata or names another version than the file's is a miss (damaged or edited)."""
        for key, content_addressed in keys:
            # wheels of a version for other Pythons and platforms mostly carry the same core
            # metadata: read, checked and parsed once by its sha256, for the client's life
            known = self._same_metadata.get((key, project)) if content_addressed else None
            if known is None:
                hit = self.cache.get_metadata(key)
                if hit is None:
                    continue
                data, source = hit
                if content_addressed and hashlib.sha256(data).hexdigest() != key:
                    continue
                try:
                    md = parse_metadata(data, url=f"{file.url} (cached)", project=project)
                except IndexAccessError:
                    continue
                known = (self._raw(data), md, source)
                if content_addressed:
                    self._same_metadata[(key, project)] = known
            raw, md, source = known
            version = file.version(project)
            if md.version is not None and version is not None and md.version != version:
                continue
            return FileMetadata(project=project, file=file, source=source,  # type: ignore[arg-type]
                                raw=raw, metadata=md)
        return None

    def _raw(self, data: bytes) -> bytes | None:
        """What FileMetadata.raw keeps of metadata bytes: without the long description, and
        only when the client keeps them (:attr:`keep_raw`)."""
        return strip_description(data) if self.keep_raw else None

    def _link(self, url: str, project: str) -> str:
        """*url*, when this index may make stackmeta read it: an http(s) URL, or from a
        ``file://`` index a file inside its folder; else :class:`IndexAccessError`."""
        if url.startswith(("http://", "https://")):
            return url
        if url.startswith("file:") and self._root is not None:
            from urllib.request import url2pathname

            path = Path(url2pathname(unquote(urlsplit(url).path))).resolve()
            if self._root in path.parents:
                return url
            raise IndexAccessError(f"{url[:200]}: a file of {project} outside the index folder "
                                   f"{self._root}: refused")
        scheme, index_scheme = url.partition(":")[0][:20], urlsplit(self.index_url).scheme
        raise IndexAccessError(f"{url[:200]}: {project}'s page links a {scheme} URL, and an "
                               f"{index_scheme} index may link only http(s) files: refused")

    # -- reading metadata ----------------------------------------------------------------

    def _read_metadata(self, file: ProjectFile, project: NormalizedName) -> FileMetadata:
        cached = self._cached(self._md_keys(file), file, project)
        if cached is not None:
            return cached
        if file.kind == "wheel":
            return self._wheel_metadata(file, project)
        if file.kind == "sdist":
            return self._sdist_metadata(file, project)
        return FileMetadata(project=project, file=file, source="unknown", raw=None, metadata=None)

    def _keep(self, file: ProjectFile, project: NormalizedName, data: bytes, source: MetadataSource,
              url: str) -> FileMetadata:
        md = parse_metadata(data, url=url, project=project)  # raises before anything is cached
        core = file.core_metadata_sha256
        verified = core is not None and hashlib.sha256(data).hexdigest() == core
        self.cache.put_metadata(core if verified else self._scoped_key("md", file.sha256), data, source)
        return FileMetadata(project=project, file=file, source=source, raw=self._raw(data),
                            metadata=md)

    def _pep658(self, file: ProjectFile, project: NormalizedName) -> FileMetadata | None:
        """The PEP 658 file, or None when the index has none (404)."""
        resp = self.transport.get(self._link(file.metadata_url, project), limit=MAX_METADATA)
        if resp.status == 200:
            if file.core_metadata_sha256 is not None:
                got = hashlib.sha256(resp.body).hexdigest()
                if got != file.core_metadata_sha256:
                    raise IndexAccessError(
                        f"{file.metadata_url}: hash mismatch for {project} metadata (sha256 {got}, "
                        f"the page says {file.core_metadata_sha256}): nothing was cached; "
                        "the index or a proxy serves a wrong file"
                    )
            return self._keep(file, project, resp.body, "pep658", file.metadata_url)
        if resp.status not in (404, 403, 410):
            raise IndexAccessError(f"{file.metadata_url}: HTTP {resp.status} for {project} metadata")
        return None

    def _wheel_metadata(self, file: ProjectFile, project: NormalizedName) -> FileMetadata:
        if file.core_metadata is not False:
            found = self._pep658(file, project)
            if found is not None:
                return found
        try:
            data, _ = lazywheel.read_metadata(self._range_reader(self._link(file.url, project), project),
                                              project, file.size)
        except lazywheel.ZipReadError:
            return self._download_wheel(file, project)
        except lazywheel.TooLarge as exc:
            raise IndexAccessError(f"{file.url}: wheel of {project}: {exc}, more than any real wheel's: "
                                   "refused") from None
        except _RangeUnsupported as whole:
            return self._from_whole_wheel(file, project, whole.body)
        return self._keep(file, project, data, "range", file.url)

    def _range_reader(self, url: str, project: str) -> lazywheel.RangeReader:
        def read(start: int | None, end: int) -> lazywheel.Chunk:
            rng = f"bytes=-{end}" if start is None else f"bytes={start}-{end}"
            resp = self.transport.get(url, headers={"Range": rng}, limit=MAX_FILE)
            if resp.status == 206:
                cr = resp.headers.get("content-range", "")
                try:
                    span, _, total = cr.removeprefix("bytes ").partition("/")
                    first = int(span.split("-")[0])
                    return lazywheel.Chunk(data=resp.body, offset=first, total=int(total))
                except ValueError:
                    raise lazywheel.ZipReadError(f"bad Content-Range {cr!r}") from None
            if resp.status == 200:
                raise _RangeUnsupported(resp.body)
            raise IndexAccessError(f"{url}: HTTP {resp.status} reading {project}'s wheel")
        return read

    def _download(self, file: ProjectFile, project: str) -> bytes:
        """The whole file, hash-verified (the caller holds ``_downloads``)."""
        resp = self.transport.get(self._link(file.url, project), limit=MAX_FILE,
                                  deadline=self.transport.timeout * DOWNLOAD_DEADLINE)
        if resp.status != 200:
            raise IndexAccessError(f"{file.url}: HTTP {resp.status} downloading {project}")
        self._verify(file, project, resp.body)
        return resp.body

    def _verify(self, file: ProjectFile, project: str, body: bytes) -> None:
        for algo, digest in file.hashes:
            if algo in hashlib.algorithms_guaranteed:
                got = hashlib.new(algo, body).hexdigest()
                if got != digest:
                    raise IndexAccessError(
                        f"{file.url}: hash mismatch for {project} ({algo} {got}, the page says {digest}): "
                        "nothing was cached; the index or a proxy serves a wrong file"
                    )

    def _download_wheel(self, file: ProjectFile, project: NormalizedName) -> FileMetadata:
        with self._downloads:
            return self._from_whole_wheel(file, project, self._download(file, project), verified=True)

    def _from_whole_wheel(self, file: ProjectFile, project: NormalizedName, body: bytes,
                          verified: bool = False) -> FileMetadata:
        if not verified:
            self._verify(file, project, body)
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                names = [n for n in zf.namelist() if lazywheel._METADATA.match(n)]
                match = [n for n in names
                         if canonicalize_name(n.split(".dist-info")[0].rsplit("-", 1)[0]) == project]
                if not (match or names):
                    raise IndexAccessError(f"{file.url}: wheel of {project} has no .dist-info/METADATA")
                data = _read_member(zf, (match or names)[0], f"{file.url}: wheel of {project}")
        except (zipfile.BadZipFile, OSError, KeyError, EOFError, ValueError, NotImplementedError,
                RuntimeError, zlib.error, struct.error) as exc:
            raise IndexAccessError(f"{file.url}: wheel of {project} is not a readable zip ({exc})") from None
        return self._keep(file, project, data, "download", file.url)

    def _sdist_metadata(self, file: ProjectFile, project: NormalizedName) -> FileMetadata:
        if file.core_metadata:  # advertised only: indexes rarely serve it for sdists
            found = self._pep658(file, project)
            if found is not None:
                return found
        with self._downloads:
            body = self._download(file, project)
            data = _pkg_info(body, file.filename, f"{file.url}: sdist of {project}")
            del body
        if data is None:
            return FileMetadata(project=project, file=file, source="unknown", raw=None, metadata=None)
        return self._keep(file, project, data, "pkg-info", file.url)


_PARSING = threading.Lock()


def _parse_page(body: bytes, content_type: str, url: str, project: NormalizedName) -> ProjectPage:
    """:func:`parse_project_page`, one page at a time in the process: a page's parse holds the
    GIL anyway, and its transient objects (~2.5 times the body: the JSON of a big page is tens
    of MB) then exist for one page at once, not for every thread's."""
    with _PARSING:
        return parse_project_page(body, content_type, url, project)


def _other_page(url: str, final: str, project: NormalizedName) -> bool:
    """Whether a redirect from *url* (the page of *project*) went to another project's page
    of the same index (the same folder, another project's name)."""
    asked, got = urlsplit(url), urlsplit(final)
    a_dir, _, _ = asked.path.rstrip("/").rpartition("/")
    g_dir, _, g_name = got.path.rstrip("/").rpartition("/")
    return (asked.netloc, a_dir) == (got.netloc, g_dir) and canonicalize_name(unquote(g_name)) != project


def _file_root(index_url: str) -> Path | None:
    """The folder a ``file://`` index's links must stay inside: the folder holding ``simple/``
    (a snapshot), else the index folder itself; None for an http(s) index."""
    if not index_url.startswith("file:"):
        return None
    from urllib.request import url2pathname

    path = Path(url2pathname(unquote(urlsplit(index_url).path))).resolve()
    return path.parent if path.name == "simple" else path


def _read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    """A zip member of at most MAX_METADATA bytes, whatever its header says (a bomb stops there)."""
    if zf.getinfo(name).file_size > MAX_METADATA:
        raise IndexAccessError(f"{where}: {name} is larger than {MAX_METADATA >> 20} MB "
                               "(no real metadata file is): refused")
    with zf.open(name) as handle:
        data = handle.read(MAX_METADATA + 1)
    if len(data) > MAX_METADATA:
        raise IndexAccessError(f"{where}: {name} inflates past {MAX_METADATA >> 20} MB "
                               "(no real metadata file does): refused")
    return data


class _RangeUnsupported(Exception):
    def __init__(self, body: bytes) -> None:
        super().__init__("range not supported")
        self.body = body


def _pkg_info(body: bytes, filename: str, where: str) -> bytes | None:
    """The top-level PKG-INFO of an sdist archive (tar.* or zip), or None; one larger than
    MAX_METADATA raises :class:`IndexAccessError` (a bomb is not inflated)."""
    try:
        if filename.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                names = sorted((n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/PKG-INFO")),
                               key=len)
                return _read_member(zf, names[0], where) if names else None
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tf:
            for member in tf:
                if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                    if member.size > MAX_METADATA:
                        raise IndexAccessError(f"{where}: {member.name} is larger than "
                                               f"{MAX_METADATA >> 20} MB (no real metadata file is): refused")
                    handle = tf.extractfile(member)
                    return handle.read(MAX_METADATA + 1) if handle else None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, zlib.error, struct.error):
        return None
    return None

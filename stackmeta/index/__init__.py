"""Reading a package index: project pages, files, hashes and core metadata.

Stable API (other modules import from here):

``IndexClient(index_url=PYPI, cache_dir=None, *, jobs=16, timeout=30.0, retries=4,
backoff=0.25, page_max_age=600.0)``
    Any standard index (PEP 691 JSON or PEP 503 HTML; ``https://``, ``http://``, ``file://``
    folders such as a ``stackmeta snapshot``). ``cache_dir``: folder, None (user cache dir) or
    False (no disk cache). Thread-safe; results are memoised for the client's life. The disk
    cache (``<cache_dir>/cache.sqlite3``) keeps metadata by the file's sha256 for good and pages
    for ``page_max_age`` seconds; it is written when the client is closed (use ``with``).

    - ``project(name) -> ProjectPage | None`` (None: the index has no such project; raises
      ``IndexAccessError`` for any other failure);
    - ``metadata(file, project) -> FileMetadata`` (raises ``IndexAccessError``);
    - ``built_metadata(sdist_file, project) -> FileMetadata``: the sdist's metadata built
      through PEP 517 in an isolated environment (runs its build code; opt-in for callers);
    - ``projects(names, progress)`` / ``metadatas([(project, file)], progress)`` /
      ``map(fn, items, progress)``: concurrent; each item's result or its
      ``StackmetaError`` in a dict, in input order;
    - ``transport.log``: every request made (URL and headers).

``ProjectPage(name=, url=, files=)`` (read-only; a parsed page builds file objects on demand)
with ``files``, ``filenames``, ``versions()``, ``by_version()``, ``files_of(version)``;
``ProjectFile(filename, url, hashes, requires_python, yanked, yanked_reason, size,
core_metadata, core_metadata_sha256)`` with ``sha256``, ``kind`` ("wheel"/"sdist"/"other"),
``version(project)``, ``metadata_url``.

``FileMetadata(project, file, source, raw, metadata, note)``: ``source`` is "pep658", "range",
"download", "pkg-info", "pep517" or "unknown"; ``note`` says e.g. why a build failed;
``metadata`` a ``CoreMetadata(name, version, metadata_version, requires_dist:
tuple[Requirement], requires_python, dynamic, junk)``;
``dependencies_known`` says whether Requires-Dist can be trusted (an sdist's PKG-INFO only
from Metadata-Version 2.2 when not Dynamic).

``IndexSource(client, target)``: the :class:`stackmeta.resolve.candidates.CandidateSource` over an
index — ``versions(name)``, ``dependencies(name, version)`` (None = unknown),
``file_metadata(name, version)``, ``files(name, version)``, ``prefetch(names)``,
``prefetch_dependencies([(name, version)])``; failures are collected in ``errors``.

Pure helpers: ``file_usable(file, target)``, ``installable_versions(page, target)``,
``metadata_file(files, target)`` (the file whose metadata pip would read),
``parse_project_page(body, content_type, url)``, ``parse_metadata(data, url=, project=)``.
"""

from stackmeta.index.client import PYPI, FileMetadata, IndexClient
from stackmeta.index.metadata import CoreMetadata, MetadataSource, parse_metadata
from stackmeta.index.simple import ProjectFile, ProjectPage, parse_project_page
from stackmeta.index.source import IndexSource, file_usable, installable_versions, metadata_file

__all__ = [
    "PYPI",
    "CoreMetadata",
    "FileMetadata",
    "IndexClient",
    "IndexSource",
    "MetadataSource",
    "ProjectFile",
    "ProjectPage",
    "file_usable",
    "installable_versions",
    "metadata_file",
    "parse_metadata",
    "parse_project_page",
]

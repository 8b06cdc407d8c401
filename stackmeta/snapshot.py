"""A static PEP 691 + PEP 503 index holding what a check read: ``stackmeta snapshot``.

Layout of ``DIR`` (served as ``--index-url file://DIR/simple`` — or ``file://DIR`` — or over
HTTP by any static server, e.g. ``python -m http.server -d DIR``, as ``http://HOST/simple``)::

    DIR/simple/index.html                  PEP 503 root page (index.json: PEP 691)
    DIR/simple/<name>/index.html           PEP 503 project page, repository-version 1.1
    DIR/simple/<name>/index.json           the same page as PEP 691 JSON (with file sizes)
    DIR/files/<name>/<filename>.metadata   PEP 658 core metadata of the files the check read
    DIR/SNAPSHOT.json                      what was recorded: release, target, index, counts

A static server sends ``index.html`` for ``/simple/<name>/`` whatever the Accept header says,
which is PEP 503 HTML that pip, uv and stackmeta all read; ``file://`` URLs and servers that
negotiate (``tests/httpserver.py``) give stackmeta the JSON form. A file whose metadata was
read is listed with a relative URL ``../../files/<name>/<filename>`` and advertised with
``data-core-metadata``/``data-dist-info-metadata`` (``core-metadata`` in JSON) and the sha256
of its ``.metadata`` file: pip, uv and stackmeta resolve from these without the file itself.
Every other file keeps its absolute URL on the original index. Distribution files are never
copied: installing from a snapshot needs the original index (or ``--find-links``).

What a page keeps: every file of the versions the check looked at (the pins and the versions
it picked for unpinned dependencies), and of every other version the files usable for the
target (wheels whose tags and Requires-Python fit, sdists whose Requires-Python fits), yanked
or not. Dropped: wheels for other platforms or Pythons, eggs, installers, and files whose
Requires-Python excludes the target. A check of the same release for the same target against
the snapshot gives the same report (metadata then comes from the ``.metadata`` files).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import atomic
from stackmeta.errors import StackmetaError, UsageError
from stackmeta.index.client import FileMetadata
from stackmeta.index.simple import (
    ProjectFile,
    ProjectPage,
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from stackmeta.index.source import file_usable
from stackmeta.target import Target

MARKER = "SNAPSHOT.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class SnapshotSummary:
    out: Path
    projects: int
    files: int
    metadata_files: int
    dropped_files: int
    bytes: int


def keep_files(page: ProjectPage, target: Target, versions: set[Version],
               read: set[str]) -> list[ProjectFile]:
    """The files of *page* a snapshot keeps (see the module docstring)."""
    kept = []
    for f in page.files:
        v = f.version(page.name)
        if f.filename in read or (v is not None and (v in versions or file_usable(f, target))):
            kept.append(f)
    return kept


def write_snapshot(out: Path, *, pages: Mapping[NormalizedName, ProjectPage | StackmetaError | None],
                   metas: Mapping[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None],
                   target: Target, about: Mapping[str, object]) -> SnapshotSummary:
    """Write the snapshot into *out* (replacing a previous snapshot there, nothing else)."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"{out} exists and is not a snapshot: give an empty or new folder")
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    read: dict[NormalizedName, dict[str, FileMetadata]] = {}
    versions: dict[NormalizedName, set[Version]] = {}
    for (name, version), md in metas.items():
        versions.setdefault(name, set()).add(version)
        if isinstance(md, FileMetadata) and md.raw is not None:
            read.setdefault(name, {})[md.file.filename] = md
    names = sorted(n for n, p in pages.items() if isinstance(p, ProjectPage))
    total_files = dropped = n_md = 0
    for name in names:
        page = pages[name]
        assert isinstance(page, ProjectPage)
        mine = read.get(name, {})
        files = keep_files(page, target, versions.get(name, set()), set(mine))
        dropped += len(page.files) - len(files)
        total_files += len(files)
        urls: dict[str, str] = {}
        hashes: dict[str, str] = {}
        for filename, md in mine.items():
            assert md.raw is not None
            atomic.write_bytes(tmp / "files" / name / f"{filename}.metadata", md.raw)
            urls[filename] = f"../../files/{name}/{filename}"
            hashes[filename] = hashlib.sha256(md.raw).hexdigest()
            n_md += 1
        kept = replace(page, files=tuple(files))
        atomic.write_text(tmp / "simple" / name / "index.html", render_project_html(kept, urls, hashes))
        atomic.write_text(tmp / "simple" / name / "index.json", render_project_json(kept, urls, hashes))
    atomic.write_text(tmp / "simple" / "index.html", render_index_html(names))
    atomic.write_text(tmp / "simple" / "index.json", render_index_json(names))
    atomic.write_text(tmp / MARKER, json.dumps({**about, "projects": len(names), "files": total_files,
                                                "metadata_files": n_md}, indent=1, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return SnapshotSummary(out=out, projects=len(names), files=total_files, metadata_files=n_md,
                           dropped_files=dropped, bytes=size)

"""A static PEP 691 + PEP 503 index holding what a check read: ``stackmeta snapshot``.

Layout of ``DIR`` (served as ``--index-url file://DIR/simple`` — or ``file://DIR`` — or over
HTTP by any static server, e.g. ``python -m http.server -d DIR``, as ``http://HOST/simple``)::

    DIR/simple/index.html                  PEP 503 root page (index.json: PEP 691)
    DIR/simple/<name>/index.html           PEP 503 project page, repository-version 1.1
    DIR/simple/<name>/index.json           the same page as PEP 691 JSON (with file sizes)
    DIR/files/<name>/<filename>.metadata   PEP 658 core metadata of the files the check read,
                                           without the long description
    DIR/SNAPSHOT.json                      what was recorded: release, target, index, counts

A static server sends ``index.html`` for ``/simple/<name>/`` whatever the Accept header says,
which is PEP 503 HTML that pip, uv and stackmeta all read; ``file://`` URLs and servers that
negotiate (``tests/httpserver.py``) give stackmeta the JSON form. A file whose metadata was
read is listed with a relative URL ``../../files/<name>/<filename>`` and advertised with
``data-core-metadata``/``data-dist-info-metadata`` (``core-metadata`` in JSON) and the sha256
of its ``.metadata`` file: pip, uv and stackmeta resolve from these without the file itself.
The other files of the versions the check looked at keep their absolute URL on the original
index (so pip can install the pins through the snapshot when that index is reachable). The
files of the other versions are listed with a relative URL ``../../files/<name>/<filename>``
that the snapshot does not hold (a 404): they are there for the version lists a resolver
reads, and absolute URLs would double the size. Distribution files are never copied.

What a page keeps: every file of the versions the check looked at (the pins and the versions
it picked for unpinned dependencies); of every other version that has a file usable for the
target (a wheel whose tags and Requires-Python fit, an sdist whose Requires-Python fits), the
one file pip would pick for the target: the best-ranked usable wheel, else the sdist (a
yanked file only when every usable file of that version is yanked). So every version the
resolver could choose stays listed, with its Requires-Python and yanked state. Dropped:
other versions' other files (wheels for other platforms or Pythons, duplicates of the kept
one), eggs and installers, versions with nothing usable for the target. The JSON form leaves
out ``upload-time``. A check of the same release for the same target against
the snapshot gives the same report (metadata then comes from the ``.metadata`` files).

``stackmeta snapshot --laptop`` records what ``stackmeta check --platform all`` reads (with
``--python``: the metadata of the versions the laptop report moves to, for every platform) and
keeps, of every other version, the file pip would pick on each of the laptop platforms
(:data:`~stackmeta.target.LAPTOP_PLATFORMS`) for the target's Python, so the laptop report
against the snapshot is the same as against the original index.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import atomic
from stackmeta.errors import IndexAccessError, OutputError, StackmetaError, UsageError
from stackmeta.index.client import FileMetadata
from stackmeta.index.metadata import strip_description
from stackmeta.index.simple import (
    ProjectFile,
    ProjectPage,
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from stackmeta.index.source import file_usable, metadata_file
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
               read: set[str], also: Sequence[Target] = ()) -> list[ProjectFile]:
    """The files of *page* a snapshot keeps (see the module docstring): every file of the
    *versions* the check looked at and every file whose metadata was *read*; of any other
    version, the one file pip would pick for the target (the best usable wheel, else an
    sdist; a yanked one only when all are yanked), if it has a usable file at all — and the
    same for each of the targets *also* (``stackmeta snapshot --laptop``)."""
    keep: set[str] = set(read)
    for version, files in page.by_version().items():
        if version in versions:
            keep.update(f.filename for f in files)
            continue
        for t in (target, *also):
            usable = [f for f in files if file_usable(f, t)]
            if usable:
                live = [f for f in usable if not f.yanked] or usable
                best = metadata_file(live, t)
                keep.add((best or live[0]).filename)
    return [f for f in page.files if f.filename in keep]


def check_destination(out: Path) -> None:
    """Refuse an *out* that is not a folder stackmeta may (over)write: ask before any request."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder: give an empty or new folder for the snapshot")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"{out} exists and is not a snapshot: give an empty or new folder")


def write_snapshot(out: Path, *, pages: Mapping[NormalizedName, ProjectPage | StackmetaError | None],
                   metas: Mapping[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None],
                   target: Target, about: Mapping[str, object], also: Sequence[Target] = ()
                   ) -> SnapshotSummary:
    """Write the snapshot into *out* (replacing a previous snapshot there, nothing else);
    *also*: more targets whose pick of every version is kept (see :func:`keep_files`).
    Refused when the index answered none of the project pages (nothing is written: a
    snapshot already in *out* is not replaced by an empty one)."""
    check_destination(out)
    if pages and all(isinstance(p, StackmetaError) for p in pages.values()):
        raise IndexAccessError(f"{pages[min(pages)]}; the index answered none of the {len(pages)} project "
                               f"pages: nothing written into {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover(out)
    # a folder of this run's own beside *out* (two runs into one --out do not share one)
    tmp = atomic.make_temp_dir(f".{out.name}.", out.parent, ".tmp")
    try:
        summary = _write(tmp, pages=pages, metas=metas, target=target, about=about, also=also)
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return replace(summary, out=out, bytes=size)


def _put(path: Path, data: bytes | str) -> None:
    """Write a file of the snapshot being made: plainly, into this run's own folder, which is
    swapped in whole once complete (a file-by-file rename and fsync took 4 s for 391 files)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}: check the folder given (--out) and its "
                          "permissions and free space") from None


def _recover(out: Path) -> None:
    """A run killed between its two renames left the old snapshot aside and none at *out*:
    put it back (the other leftovers of dead runs are removed by :func:`atomic.make_temp_dir`)."""
    if out.exists() or not out.parent.is_dir():
        return
    for aside in sorted(out.parent.glob(f".{out.name}.*.old")):
        if atomic.is_stale(aside, f".{out.name}.", ".old") and (aside / MARKER).is_file():
            with contextlib.suppress(OSError):
                os.rename(aside, out)
                return


def _swap(new: Path, out: Path) -> None:
    """Put the complete snapshot *new* in place of *out*: the old one is renamed aside, the new
    one renamed in, then the old one removed. A run killed at any point leaves a complete
    snapshot at *out* or beside it, never a part, and the old one is removed only once the
    new one is in. Another run that swaps at the same time is waited for."""
    for _ in range(50):
        aside = atomic.make_temp_dir(f".{out.name}.", out.parent, ".old")
        try:
            with contextlib.suppress(FileNotFoundError):  # none: nothing to keep aside
                os.rename(out, aside)  # onto the empty folder just made
            try:
                os.rename(new, out)
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    if not out.exists() and any(aside.iterdir()):
                        os.rename(aside, out)  # put the old one back
                    raise OutputError(f"cannot write the snapshot {out}: {exc.strerror}: check the folder "
                                      "and its permissions") from None
                # another run put its snapshot in between: try again over it
        finally:
            shutil.rmtree(aside, ignore_errors=True)
        time.sleep(0.01)
    raise OutputError(f"cannot put the snapshot in place of {out}: other runs keep replacing it")


def _write(tmp: Path, *, pages: Mapping[NormalizedName, ProjectPage | StackmetaError | None],
           metas: Mapping[tuple[NormalizedName, Version], FileMetadata | StackmetaError | None],
           target: Target, about: Mapping[str, object], also: Sequence[Target]) -> SnapshotSummary:
    read: dict[NormalizedName, dict[str, FileMetadata]] = {}
    versions: dict[NormalizedName, set[Version]] = {}
    for (name, version), md in metas.items():
        versions.setdefault(name, set()).add(version)
        if isinstance(md, FileMetadata) and md.metadata is not None and md.raw is None:
            raise ValueError(f"{name} {version}: metadata without its bytes: read it with "
                             "IndexClient(keep_raw=True)")
        if isinstance(md, FileMetadata) and md.raw is not None:
            read.setdefault(name, {})[md.file.filename] = md
    names = sorted(n for n, p in pages.items() if isinstance(p, ProjectPage))
    total_files = dropped = n_md = 0
    for name in names:
        page = pages[name]
        assert isinstance(page, ProjectPage)
        mine = read.get(name, {})
        files = keep_files(page, target, versions.get(name, set()), set(mine), also)
        dropped += len(page.filenames) - len(files)
        total_files += len(files)
        urls: dict[str, str] = {}
        hashes: dict[str, str] = {}
        for filename, md in mine.items():
            assert md.raw is not None
            data = strip_description(md.raw)
            _put(tmp / "files" / name / f"{filename}.metadata", data)
            urls[filename] = f"../../files/{name}/{filename}"
            hashes[filename] = hashlib.sha256(data).hexdigest()
            n_md += 1
        looked_at = versions.get(name, set())
        for f in files:  # other versions' files: listed for the version lists only
            if f.filename not in urls and f.version(name) not in looked_at:
                urls[f.filename] = f"../../files/{name}/{f.filename}"
        kept = page.replace_files(files)
        _put(tmp / "simple" / name / "index.html", render_project_html(kept, urls, hashes))
        _put(tmp / "simple" / name / "index.json",
                          render_project_json(kept, urls, hashes, upload_time=False))
    _put(tmp / "simple" / "index.html", render_index_html(names))
    _put(tmp / "simple" / "index.json", render_index_json(names))
    _put(tmp / MARKER, json.dumps({**about, "projects": len(names), "files": total_files,
                                                "metadata_files": n_md}, indent=1, sort_keys=True) + "\n")
    return SnapshotSummary(out=tmp, projects=len(names), files=total_files, metadata_files=n_md,
                           dropped_files=dropped, bytes=0)

"""``export``: read a release, build its record, write ``locks/<name>.txt`` and ``.json``.

Both files are built in full before either is written, and each is written atomically.
An existing record keeps its other sections ("check", "consistent", ...) only when its
pins are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from stackmeta import __version__, atomic, record
from stackmeta.errors import ManifestError, RecordError, UsageError
from stackmeta.locks.constraints import constraints_text
from stackmeta.manifest import walk
from stackmeta.manifest.cmsdist import Opened
from stackmeta.manifest.freeze import parse_freeze
from stackmeta.manifest.pins import Arch, cycle_counts, rank_arches
from stackmeta.manifest.walk import read_release
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.record import Package, Release
from stackmeta.release import optional_version


@dataclass(frozen=True, kw_only=True, slots=True)
class Exported:
    release: Release
    lock_name: str
    constraints: Path
    record: Path
    kept_sections: tuple[str, ...]  # sections of the old record carried over


def read_cmsdist(
    cmsdist: Path,
    release: str,
    *,
    arches: Sequence[str] = (),
    python_major: int | None = None,
    version: str | None = None,
    progress: Progress = NO_PROGRESS,
) -> tuple[Release, int]:
    """The Release of *release* read from a cmsdist clone or folder, and its default major."""
    if python_major not in (None, 2, 3):
        raise UsageError(f"--python {python_major}: give 2 or 3 with --cmsdist")
    optional_version(release, version)  # refuse a bad --version before reading anything
    with Opened(cmsdist) as opened:
        chosen = opened.choose_arches(release, arches)
        source = opened.source(release, chosen)
        rank = rank_arches(chosen, release, cycle_counts(opened.available()))
        return read_release(source.trees, release, source=source.description, python_major=python_major,
                            version=version, progress=progress, rank=rank)


def read_freeze(
    path: Path, release: str, *, python: str, arches: Sequence[str] = (), version: str | None = None,
) -> Release:
    """A Release from the output of pip freeze / pip list --format=json."""
    try:
        interpreter = Version(python)
    except InvalidVersion:
        raise UsageError(
            f"--python {python!r} is not a version: give the release's Python, e.g. 3.9.14"
        ) from None
    if len(interpreter.release) < 2:
        raise UsageError(
            f"--python {python}: give the full interpreter version with --from-freeze, e.g. 3.9.14"
        )
    metapackage = optional_version(release, version)
    for arch in arches:
        Arch.parse(arch)  # refuse a name that is not an arch before it goes into the lock
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--from-freeze {path}: no such file") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from None
    text = data.decode("utf-8", "replace")
    frozen = parse_freeze(text, path.name, arches=tuple(arches))
    return Release(
        release=release, metapackage_version=metapackage, arches=tuple(arches), python=interpreter,
        source=f"freeze {path.name}", stackmeta_version=__version__, packages=frozen.packages,
        problems=frozen.problems,
    )


def write(
    release: Release, locks_dir: Path, *, default_major: int, base: str | None = None,
    with_record: bool = True,
) -> Exported:
    """Write the lock and the record of *release* into *locks_dir* (atomically, both complete).

    *base* names the files instead of the release (``<release>__<arch>`` in a batch that
    exports each arch apart). The lock is written first and the record last: a record whose
    source names the tag's commit means both files are complete.
    """
    name = record.lock_name(base or release.release, release.python_major, default_major=default_major)
    json_path = record.record_path(locks_dir, name)
    txt_path = record.constraints_path(locks_dir, name)
    if not with_record:  # the lock alone (a batch's locks/all/): the record can be exported again
        text = constraints_text(release, lock_name=name)
        atomic.write_all([(txt_path, text)])
        return Exported(release=replace(release, lock=name), lock_name=name, constraints=txt_path,
                        record=json_path, kept_sections=())
    text = constraints_text(release, lock_name=name)
    atomic.check_paths([txt_path, json_path])
    with record.locked(json_path):  # the sections kept are the ones there when it is written
        keep: dict[str, Any] | None = None
        if json_path.exists():
            try:
                old_doc = record.read_document(json_path)
                old = record.release_from_json(old_doc["release"])
            except (RecordError, KeyError, TypeError, ValueError, InvalidVersion):
                old_doc, old = None, None  # a broken record is replaced, nothing of it is kept
            if old is not None and old_doc is not None and \
                    list(record.pins(old)) == list(record.pins(release)):
                keep = old_doc
        doc = record.new_document(release, keep=keep)
        json_text = dump_document(doc, release)
        atomic.write_all([(txt_path, text), (json_path, json_text)])  # both or neither
    kept = tuple(k for k in doc if k not in ("format", "release"))
    return Exported(release=replace(release, lock=name), lock_name=name, constraints=txt_path,
                    record=json_path, kept_sections=kept)


# The JSON of a package, as record.dump_document writes it inside a record: most packages are
# the same from one release to the next, so a batch encodes each one once (json's indenting
# encoder is pure Python and was a third of a batch's time).
_PACKAGE_JSON: dict[Package, str] = {}
_PLACEHOLDER = "\0stackmeta-packages\0"
_PACKAGE_INDENT = "   "  # packages sit at depth 3: document, "release", "packages"


def dump_document(doc: dict[str, Any], release: Release) -> str:
    """``record.dump_document(doc)``, byte for byte, with each package's JSON remembered."""
    section = doc["release"]
    packages = sorted(release.packages, key=lambda p: p.name)
    if [p["name"] for p in section["packages"]] != [p.name for p in packages]:
        return record.dump_document(doc)
    parts = []
    for pkg, data in zip(packages, section["packages"], strict=True):
        text = _PACKAGE_JSON.get(pkg)
        if text is None:
            text = _PACKAGE_INDENT + json.dumps(data, indent=1, ensure_ascii=False).replace(
                "\n", "\n" + _PACKAGE_INDENT)
            walk.remember(_PACKAGE_JSON, pkg, text)
        parts.append(text)
    listing = "[\n" + ",\n".join(parts) + "\n  ]" if parts else "[]"
    shell = {**doc, "release": {**section, "packages": _PLACEHOLDER}}
    return record.dump_document(shell).replace(json.dumps(_PLACEHOLDER), listing, 1)


def export(
    release: str,
    *,
    locks_dir: Path,
    cmsdist: Path | None = None,
    from_freeze: Path | None = None,
    arches: Sequence[str] = (),
    python: str | None = None,
    version: str | None = None,
    progress: Progress = NO_PROGRESS,
) -> Exported:
    """Read *release* from a cmsdist tree (or a freeze file) and write its lock and record.

    With ``cmsdist``, ``python`` is ``"2"``, ``"3"`` or None (the default stack: Python 3
    when the release ships Python 3 packages, else Python 2); the lock of the other stack is
    named ``<release>-py2`` / ``-py3``. With ``from_freeze``, ``python`` is the interpreter
    version (3.9.14) and at most one arch is given.
    """
    if (cmsdist is None) == (from_freeze is None):
        raise UsageError("give either --cmsdist PATH or --from-freeze FILE")
    record.check_name(release)  # its files stay inside locks_dir: refused before anything is read
    if from_freeze is not None:
        if python is None:
            raise UsageError("--from-freeze needs --python X.Y.Z (the release's interpreter)")
        if len(arches) > 1:
            raise UsageError("--from-freeze takes at most one --arch (a freeze describes one machine)")
        rel = read_freeze(from_freeze, release, python=python, arches=arches, version=version)
        return write(rel, locks_dir, default_major=rel.python_major)
    assert cmsdist is not None
    major: int | None = None
    if python is not None:
        if python not in ("2", "3"):
            raise UsageError(f"--python {python}: with --cmsdist give 2 or 3 (the stack to export)")
        major = int(python)
    rel, default = read_cmsdist(cmsdist, release, arches=arches, python_major=major, version=version,
                                progress=progress)
    return write(rel, locks_dir, default_major=default)

"""PEP 751 lock files (``pylock.<name>.toml``), built and validated through
``packaging.pylock`` and written with a TOML writer. Pure: the caller supplies the files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import tomli_w
from packaging.markers import Marker
from packaging.pylock import (
    Package,
    PackageArchive,
    PackageSdist,
    PackageWheel,
    Pylock,
    PylockValidationError,
)
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidSdistFilename, NormalizedName, parse_sdist_filename
from packaging.version import Version

from stackmeta.errors import RecordError

LOCK_VERSION = Version("1.0")


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedFile:
    filename: str
    url: str
    sha256: str
    size: int | None = None
    upload_time: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedPackage:
    name: NormalizedName
    version: Version
    marker: Marker | None = None
    requires_python: SpecifierSet | None = None
    index: str | None = None  # the project's simple page on the index
    wheels: tuple[LockedFile, ...] = ()
    sdist: LockedFile | None = None  # also a legacy-named source archive (see ``build``)


def _wheel(f: LockedFile) -> PackageWheel:
    return PackageWheel(name=f.filename, url=f.url, size=f.size, upload_time=f.upload_time,
                        hashes={"sha256": f.sha256})


def _sdist(f: LockedFile) -> PackageSdist:
    return PackageSdist(name=f.filename, url=f.url, size=f.size, upload_time=f.upload_time,
                        hashes={"sha256": f.sha256})


def sdist_name_fits(filename: str, name: NormalizedName, version: Version) -> bool:
    """Whether PEP 751 can list *filename* as the sdist of *name* *version*: old sdists with
    other archive types (``.tar.bz2``) or unnormalised names (``functools32-3.2.3-2.tar.gz``)
    cannot be, and are written as a plain ``archive`` instead."""
    try:
        sdist_name, sdist_version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return sdist_name == name and sdist_version == version


def _source(p: LockedPackage) -> dict[str, object]:
    """The sdist, or the archive for a legacy-named source file (only when there is no wheel:
    PEP 751 allows an archive only alone)."""
    if p.sdist is None:
        return {}
    if sdist_name_fits(p.sdist.filename, p.name, p.version):
        return {"sdist": _sdist(p.sdist)}
    if p.wheels:
        return {}
    f = p.sdist
    return {"archive": PackageArchive(url=f.url, size=f.size, upload_time=f.upload_time,
                                      hashes={"sha256": f.sha256})}


def build(
    packages: Sequence[LockedPackage],
    *,
    created_by: str,
    requires_python: SpecifierSet | None,
    environments: Sequence[Marker] | None,
) -> Pylock:
    """A validated :class:`packaging.pylock.Pylock` for *packages* (sorted by name)."""
    missing = [str(p.name) for p in packages if not p.wheels and p.sdist is None]
    if missing:
        raise RecordError(
            f"no file with a sha256 is known for {', '.join(sorted(missing))}: run 'stackmeta check' "
            "so the record holds the index's files"
        )
    lock = Pylock(
        lock_version=LOCK_VERSION,
        created_by=created_by,
        requires_python=requires_python,
        environments=list(environments) if environments else None,
        packages=[
            Package(
                name=p.name,
                version=p.version,
                marker=p.marker,
                requires_python=p.requires_python,
                index=p.index,
                wheels=[_wheel(w) for w in p.wheels] or None,
                **_source(p),  # type: ignore[arg-type]
            )
            for p in sorted(packages, key=lambda p: (p.name, str(p.marker or "")))
        ],
    )
    try:
        lock.validate()
    except PylockValidationError as exc:  # a bug of ours, said plainly
        raise RecordError(f"the PEP 751 lock built from the record is invalid: {exc}") from None
    return lock


def dumps(lock: Pylock) -> str:
    """The TOML text of *lock*."""
    return tomli_w.dumps(dict(lock.to_dict()))


def file_name(lock_name: str) -> str:
    """``pylock.<name>.toml``: PEP 751 names must match ``pylock\\.[^.]+\\.toml``."""
    safe = lock_name.replace(".", "-")
    return f"pylock.{safe}.toml"

"""CMSSW release names: their PEP 440 versions and their order."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from stackmeta.errors import UsageError

_NAME = re.compile(
    r"^CMSSW_(?P<major>\d+)_(?P<minor>\d+)_"
    r"(?:(?P<patch>\d+)(?:_pre(?P<pre>\d+)|_patch(?P<post>\d+))?"
    r"|X_(?P<date>\d{4}-\d{2}-\d{2}-\d{4}))$"
)
_LOOSE = re.compile(r"^CMSSW_(\d+)_(\d+)_(\d+|X)(?:_(.*))?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReleaseName:
    """A parsed release name, e.g. CMSSW_14_0_0_pre3."""

    name: str
    major: int
    minor: int
    patch: int | None  # None for an integration build (CMSSW_14_0_X_...)
    pre: int | None = None
    post: int | None = None
    date: str | None = None  # YYYYMMDDhhmm of an integration build

    @property
    def version(self) -> Version:
        """The metapackage version: 14.0.0, 14.0.0.post2, 14.0.0rc3, 14.0.dev202410130000."""
        if self.patch is None:
            return Version(f"{self.major}.{self.minor}.dev{self.date}")
        base = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre is not None:
            return Version(f"{base}rc{self.pre}")
        if self.post is not None:
            return Version(f"{base}.post{self.post}")
        return Version(base)


def parse_release(name: str) -> ReleaseName:
    """Parse a standard release name, or raise UsageError naming what is accepted."""
    match = _NAME.match(name)
    if not match:
        raise UsageError(
            f"release name {name!r} is not one of CMSSW_X_Y_Z, CMSSW_X_Y_Z_preN, "
            "CMSSW_X_Y_Z_patchN or CMSSW_X_Y_X_YYYY-MM-DD-hhmm: "
            "give the metapackage version with --version"
        )
    date = match["date"]
    return ReleaseName(
        name=name,
        major=int(match["major"]),
        minor=int(match["minor"]),
        patch=None if match["patch"] is None else int(match["patch"]),
        pre=None if match["pre"] is None else int(match["pre"]),
        post=None if match["post"] is None else int(match["post"]),
        date=None if date is None else date.replace("-", ""),
    )


def release_version(name: str, override: str | None = None) -> Version:
    """The PEP 440 version of the metapackage for release *name* (or *override*)."""
    if override is not None:
        try:
            return Version(override)
        except InvalidVersion:
            raise UsageError(
                f"--version {override!r} is not a PEP 440 version: use e.g. 14.0.0.post1"
            ) from None
    return parse_release(name).version


def release_key(name: str) -> tuple[int, int, int, int, int]:
    """Sort key for release names (also non-standard ones such as CMSSW_14_0_0_HLT).

    Releases order by major, minor, patch, pre; a final release and its _patchN and
    special builds follow its pre-releases; an integration build CMSSW_X_Y_X_<date> sorts
    after every X_Y_Z of its cycle.
    """
    match = _LOOSE.match(name)
    if not match:
        raise UsageError(f"{name!r} is not a CMSSW release name (CMSSW_<major>_<minor>_<patch>...)")
    major, minor, patch_text, rest = match.groups()
    patch = 10**6 if patch_text == "X" else int(patch_text)
    pre = 10**6
    post = 0
    if rest:
        pre_match = re.match(r"pre(\d+)", rest)
        post_match = re.match(r"patch(\d+)", rest)
        if pre_match:
            pre = int(pre_match.group(1))
        elif post_match:
            post = int(post_match.group(1))
    return (int(major), int(minor), patch, pre, post)


def release_order(name: str) -> tuple[int, ...]:
    """:func:`release_key` for sorting any names: one that is not a release sorts after them all."""
    try:
        return release_key(name)
    except UsageError:
        return (1 << 30,)

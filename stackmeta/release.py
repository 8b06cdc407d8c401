"""CMSSW release names: their PEP 440 versions and their order."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from stackmeta.errors import UsageError

_NAME = re.compile(
    r"^CMSSW_(?P<major>\d+)_(?P<minor>\d+)_"
    r"(?:(?P<patch>\d+)(?:_pre(?P<pre>\d+)|_patch(?P<post>\d+))?"
    r"|X_(?P<date>\d{4}-\d{2}-\d{2}-\d{4}))$"
)
_LOOSE = re.compile(r"^CMSSW_(\d+)_(\d+)_(\d+|X)(?:_(.*))?$")
# A release tag's name as cmsdist has it: the release, then a flavour of the build (_HLT,
# _SKYLAKEAVX512, _SLHC25, ...) that may sit before the _preN/_patchN, then a tag kind
# (-tool-conf, -cmssw-tool-conf, -build: the tag of the release's tool-conf build).
_TAGGED = re.compile(
    r"^CMSSW_(?P<major>\d+)_(?P<minor>\d+)_(?P<patch>\d+)"
    r"(?:_pre(?P<pre1>\d+)|_patch(?P<post1>\d+))?"
    r"(?:_(?P<flavour>[A-Za-z0-9][A-Za-z0-9_]*?))?"
    r"(?:_pre(?P<pre2>\d+)|_patch(?P<post2>\d+))?"
    r"(?P<kind>-(?:cmssw-)?tool-conf|-build)?$"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReleaseName:
    """A parsed release name, e.g. CMSSW_14_0_0_pre3, CMSSW_13_1_0_SKYLAKEAVX512_pre3,
    CMSSW_11_1_0-tool-conf."""

    name: str
    major: int
    minor: int
    patch: int | None  # None for an integration build (CMSSW_14_0_X_...)
    pre: int | None = None
    post: int | None = None
    date: str | None = None  # YYYYMMDDhhmm of an integration build
    flavour: str | None = None  # HLT in CMSSW_12_4_21_HLT_patch1: a special build of the release
    kind: str | None = None  # "tool-conf" in CMSSW_11_1_0-tool-conf: a tag of the release's build

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

    @property
    def base(self) -> str:
        """The standard release this name is a flavour or a tag of: CMSSW_13_1_0_pre3 for
        CMSSW_13_1_0_SKYLAKEAVX512_pre3, CMSSW_11_1_0 for CMSSW_11_1_0-tool-conf."""
        if self.patch is None:
            return self.name
        tail = (f"_pre{self.pre}" if self.pre is not None
                else f"_patch{self.post}" if self.post is not None else "")
        return f"CMSSW_{self.major}_{self.minor}_{self.patch}{tail}"

    @property
    def plain(self) -> str:
        """The name without its tag kind: CMSSW_11_1_0_Patatrack for CMSSW_11_1_0_Patatrack-tool-conf."""
        return self.name[: len(self.name) - len(self.kind) - 1] if self.kind else self.name


def parse_release(name: str) -> ReleaseName:
    """Parse a release name, or raise UsageError naming what is accepted.

    Standard names (CMSSW_X_Y_Z, _preN, _patchN, integration builds CMSSW_X_Y_X_<date>) and
    the names of cmsdist's release tags: a flavour after the version (CMSSW_12_4_21_HLT_patch1,
    CMSSW_13_1_0_SKYLAKEAVX512_pre3) and a tag kind (CMSSW_11_1_0-tool-conf), which read like
    the release they name (its version, its era)."""
    match = _NAME.match(name)
    if match:
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
    tagged = _TAGGED.match(name)
    if tagged:
        pre = tagged["pre1"] or tagged["pre2"]
        post = tagged["post1"] or tagged["post2"]
        both = [x for x in (tagged["pre1"], tagged["post1"], tagged["pre2"], tagged["post2"]) if x]
        if len(both) <= 1:
            return ReleaseName(
                name=name, major=int(tagged["major"]), minor=int(tagged["minor"]), patch=int(tagged["patch"]),
                pre=None if pre is None else int(pre), post=None if post is None else int(post),
                flavour=tagged["flavour"], kind=None if tagged["kind"] is None else tagged["kind"][1:],
            )
    raise UsageError(
        f"release name {name!r} is not a CMSSW release name (CMSSW_X_Y_Z, CMSSW_X_Y_Z_preN, "
        "CMSSW_X_Y_Z_patchN, CMSSW_X_Y_X_YYYY-MM-DD-hhmm, with an optional _FLAVOUR or "
        "-tool-conf): give the metapackage version with --version"
    )


def release_version(name: str, override: str | None = None) -> Version:
    """The PEP 440 version of the metapackage for release *name* (or *override*): a flavour's
    or a tag's name gives the version of the release it names (CMSSW_12_4_21_HLT_patch1 ->
    12.4.21.post1; the flavour goes into the distribution's name, see
    :func:`stackmeta.package.metapackage.identity`)."""
    if override is not None:
        try:
            return Version(override)
        except InvalidVersion:
            raise UsageError(
                f"--version {override!r} is not a PEP 440 version: use e.g. 14.0.0.post1"
            ) from None
    return parse_release(name).version


def optional_version(name: str, override: str | None = None) -> Version | None:
    """:func:`release_version`, or None for a name that is no CMSSW release name at all (a
    batch exports it anyway; build asks for --version)."""
    if override is not None:
        return release_version(name, override)
    try:
        return parse_release(name).version
    except UsageError:
        return None


def release_key(name: str) -> tuple[int, int, int, int, int]:
    """Sort key for release names (also non-standard ones such as CMSSW_14_0_0_HLT).

    Releases order by major, minor, patch, pre; a final release and its _patchN and
    special builds follow its pre-releases; an integration build CMSSW_X_Y_X_<date> sorts
    after every X_Y_Z of its cycle.
    """
    try:
        parsed = parse_release(name)
    except UsageError:
        parsed = None
    if parsed is not None and parsed.patch is not None:  # a flavour's _preN may follow it
        return (parsed.major, parsed.minor, parsed.patch, 10**6 if parsed.pre is None else parsed.pre,
                parsed.post or 0)
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


def newest_full(names: Iterable[str], *, since: tuple[int, int] = (0, 0)) -> list[str]:
    """The newest full release (no _preN, no flavour, no tag of a build; a _patchN counts) of
    every cycle CMSSW_X_Y from *since* on, among *names*, in release order."""
    best: dict[tuple[int, int], str] = {}
    for name in names:
        try:
            parsed = parse_release(name)
        except UsageError:
            continue
        if parsed.flavour or parsed.kind or parsed.pre is not None or parsed.patch is None:
            continue
        cycle = (parsed.major, parsed.minor)
        if cycle >= since and (cycle not in best or release_key(name) > release_key(best[cycle])):
            best[cycle] = name
    return [best[c] for c in sorted(best)]

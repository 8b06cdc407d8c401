"""The environment a stack is checked and resolved for: a Python version and a platform.

A :class:`Target` gives the marker environment (to evaluate ``Requires-Dist`` markers)
and the ordered wheel tags it accepts (most specific first, as pip orders them), both
through ``packaging``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from packaging import tags
from packaging.markers import Marker
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from stackmeta.errors import UsageError

# platform name -> (sys_platform, platform_system, os_name, platform_machine)
PLATFORMS: dict[str, tuple[str, str, str, str]] = {
    "linux-x86_64": ("linux", "Linux", "posix", "x86_64"),
    "linux-aarch64": ("linux", "Linux", "posix", "aarch64"),
    "linux-ppc64le": ("linux", "Linux", "posix", "ppc64le"),
    "macos-x86_64": ("darwin", "Darwin", "posix", "x86_64"),
    "macos-arm64": ("darwin", "Darwin", "posix", "arm64"),
    "windows-amd64": ("win32", "Windows", "nt", "AMD64"),
}
LAPTOP_PLATFORMS = ("linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64", "windows-amd64")

# CMS arch field -> platform name
CMS_ARCH_MACHINES = {"amd64": "x86_64", "aarch64": "aarch64", "ppc64le": "ppc64le"}

# platform name -> the same platform as uv's --python-platform names it (for the peer checks)
UV_PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "macos-x86_64": "x86_64-apple-darwin",
    "macos-arm64": "aarch64-apple-darwin",
    "windows-amd64": "x86_64-pc-windows-msvc",
}

DEFAULT_GLIBC = (2, 28)  # manylinux_2_28: EL8 and later, the oldest CMS OS of current releases
DEFAULT_MACOS = (14, 0)


def platform_for_arch(arch: str) -> str:
    """'el9_amd64_gcc12' -> 'linux-x86_64'."""
    parts = arch.split("_")
    if len(parts) < 3 or parts[1] not in CMS_ARCH_MACHINES:
        raise UsageError(
            f"{arch!r} is not a CMS arch of the form <os>_<amd64|aarch64|ppc64le>_<compiler>"
        )
    return f"linux-{CMS_ARCH_MACHINES[parts[1]]}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A Python version (as precise as known) and a platform name from PLATFORMS."""

    python: Version
    platform: str = "linux-x86_64"
    glibc: tuple[int, int] = DEFAULT_GLIBC
    # the hash, made once: a target keys the caches of wheel tags and markers, asked millions
    # of times a search, and a Version's own hash is made anew on each asking
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise UsageError(
                f"unknown platform {self.platform!r}: use one of {', '.join(PLATFORMS)}"
            )
        object.__setattr__(self, "_hash", hash((self.python, self.platform, self.glibc)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def python_minor(self) -> tuple[int, int]:
        return (self.python.major, self.python.minor)

    @property
    def python_full(self) -> str:
        return str(_full_version(self.python))

    def environment(self) -> dict[str, str]:
        """The marker environment (a new dict: the caller may change it)."""
        return dict(_environment(self))

    def evaluate(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        """Whether *marker* holds for this target (with the given extras requested). Remembered
        per marker object and extras (the search evaluates the same requirements' markers in
        every cell and every resolution)."""
        if marker is None:
            return True
        return _remembered(_evaluated(self, extras), marker, self._evaluate, extras)

    def _evaluate(self, marker: Marker, extras: frozenset[str]) -> bool:
        env = _environment(self)

        def holds(m: Marker) -> bool:
            return any(m.evaluate({**env, "extra": extra}) for extra in extras or ("",))

        try:
            return holds(marker)
        except ValueError:
            # a marker current packaging cannot evaluate (pyzmq 20.0.0: implementation_name
            # === "pypy"): pips before 24.1 compared it as strings, as this does; later pips
            # stop on it, so there the version is not installable (see marker_error)
            try:
                return holds(Marker(str(marker).replace("===", "==")))
            except ValueError:
                return False

    def marker_error(self, marker: Marker | None) -> str | None:
        """Why current packaging (and so pip 24.1 and later) cannot evaluate *marker* for this
        target, or None when it can."""
        if marker is None:
            return None
        return _remembered(_marker_errors(self), marker, self._marker_error)

    def _marker_error(self, marker: Marker) -> str | None:
        try:
            marker.evaluate({**_environment(self), "extra": ""})
        except ValueError as exc:
            return f"{marker}: {exc}"
        return None

    def wheel_rank(self, filename: str) -> int | None:
        """The rank of the best tag of a wheel for this target (lower is better), or None
        when the wheel cannot be installed here. Remembered by the name's tag part (pages list
        the same few hundred tag sets under thousands of names, in every cell)."""
        if not filename.endswith(".whl"):
            return None
        parts = filename[:-4].split("-")
        if len(parts) not in (5, 6):
            return None
        rank = _tags_rank(self, "-".join(parts[-3:]))
        return rank if rank is None or _valid_wheel_name(filename) else None

    def tags_rank(self, tag_text: str) -> int | None:
        """:meth:`wheel_rank` of a wheel (a valid name) whose name ends in *tag_text*
        ("PY-ABI-PLATFORM")."""
        return _tags_rank(self, tag_text)

    def __str__(self) -> str:
        return f"Python {self.python} on {self.platform}"


@lru_cache(maxsize=64)
def _environment(target: Target) -> dict[str, str]:
    """The target's marker environment, made once (not to be changed: callers copy it)."""
    sys_platform, system, os_name, machine = PLATFORMS[target.platform]
    major, minor = target.python_minor
    return {
        "implementation_name": "cpython",
        "implementation_version": target.python_full,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": target.python_full,
        "python_version": f"{major}.{minor}",
        "sys_platform": sys_platform,
    }


@lru_cache(maxsize=64)
def _evaluated(target: Target, extras: frozenset[str]) -> dict[int, tuple[Marker, bool]]:
    """id of a marker -> (the marker, whether it holds for *target* with *extras*): the marker
    is kept, so its id stays its own (a hit is checked to be the same object). A search asks
    for a few extras per target (5 in a cell of CMSSW_14_0_0), a check for five or six targets
    at a time: the targets of cells resolved long before are let go (4,000 markers each)."""
    return {}


R = TypeVar("R")


def _remembered(known: dict[int, tuple[Marker, R]], marker: Marker, compute: Callable[..., R],
                *args: Any) -> R:
    """``compute(marker, *args)``, kept in *known* by the marker's id with the marker
    itself (so the id stays its own: a hit is checked to be the same object)."""
    hit = known.get(id(marker))
    if hit is not None and hit[0] is marker:
        return hit[1]
    found = compute(marker, *args)
    known[id(marker)] = (marker, found)
    return found


@lru_cache(maxsize=64)
def _marker_errors(target: Target) -> dict[int, tuple[Marker, str | None]]:
    """id of a marker -> (the marker, :meth:`Target.marker_error`'s answer), as :func:`_evaluated`."""
    return {}


@lru_cache(maxsize=1 << 14)
def _tags_rank(target: Target, tag_text: str) -> int | None:
    """The rank for *target* of a wheel whose name ends in *tag_text* ("PY-ABI-PLATFORM")."""
    platform_tags = _platform_tags(target.platform, target.glibc)
    order, interpreters, platforms = _tag_order(target.python_minor, platform_tags)
    # a wheel none of whose interpreter or none of whose platform tags fit is turned down from
    # its name's parts, without parsing them (most wheels of a version: other Pythons, platforms)
    py, _abi, plat = tag_text.split("-")
    if interpreters.isdisjoint(py.lower().split(".")) or platforms.isdisjoint(plat.lower().split(".")):
        return None
    try:
        ranks = [order[tag] for tag in tags.parse_tag(tag_text) if tag in order]
    except ValueError:
        return None
    return min(ranks) if ranks else None


def full_version(target: Target) -> Version:
    """``Version(target.python_full)``, made once per Python."""
    return _full_version(target.python)


@lru_cache(maxsize=64)
def _full_version(python: Version) -> Version:
    release = python.release + (0,) * (3 - len(python.release))
    return Version(".".join(str(p) for p in release[:3]))


def valid_wheel_name(filename: str) -> bool:
    """Whether *filename* is a wheel's name by the spec (not remembered: for names asked once)."""
    try:
        parse_wheel_filename(filename)
    except ValueError:
        return False
    return True


# remembered, for Target.wheel_rank (asked only of the wheels that fit, again and again)
_valid_wheel_name = lru_cache(maxsize=1 << 12)(valid_wheel_name)


def platform_tags(platform: str) -> tuple[str, ...]:
    """The wheel platform tags stackmeta takes *platform* to accept (manylinux up to
    DEFAULT_GLIBC, macOS up to DEFAULT_MACOS), most specific first: what to give pip's
    ``--platform`` so that it judges wheels as stackmeta did."""
    return _platform_tags(platform, DEFAULT_GLIBC)


@lru_cache(maxsize=64)
def _platform_tags(platform: str, glibc: tuple[int, int]) -> tuple[str, ...]:
    """The platform tags of *platform*, most specific first, as pip orders them."""
    machine = PLATFORMS[platform][3]
    if platform.startswith("linux-"):
        out = []
        for minor in range(glibc[1], 4, -1):
            out.append(f"manylinux_2_{minor}_{machine}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
            if legacy and (minor == 17 or machine in ("x86_64", "i686")):
                out.append(f"{legacy}_{machine}")
            if minor == 17 and machine not in ("x86_64", "i686"):
                break
        return tuple(out)
    if platform.startswith("macos-"):
        arch = "arm64" if machine == "arm64" else "x86_64"
        return tuple(tags.mac_platforms(DEFAULT_MACOS, arch))
    return ("win_amd64",)


@lru_cache(maxsize=16)  # a few targets at a time (a check's platforms; a search's cell)
def _tag_order(python: tuple[int, int], platforms: tuple[str, ...]
               ) -> tuple[dict[tags.Tag, int], frozenset[str], frozenset[str]]:
    """The tags pip accepts, best first (tag -> rank), and their interpreter and platform parts."""
    major, minor = python
    abis = [f"cp{major}{minor}"]
    if major == 2:
        abis = ["cp27mu", "cp27m"]
    elif (major, minor) < (3, 8):
        abis = [f"cp{major}{minor}m"]
    ordered = list(tags.cpython_tags((major, minor), abis, list(platforms)))
    ordered += list(tags.compatible_tags((major, minor), f"cp{major}{minor}", list(platforms)))
    return ({tag: i for i, tag in enumerate(ordered)}, frozenset(t.interpreter for t in ordered),
            frozenset(t.platform for t in ordered))

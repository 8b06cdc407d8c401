"""The laptop *cells* a metapackage installs on: each CPython minor from the release's own up to
:data:`NEWEST` (or a newer one asked for), times the five laptop platforms
(:data:`stackmeta.target.LAPTOP_PLATFORMS`); a Python 2 release has the 2.7 cells.

A :class:`Cell` names one (``3.9-linux-x86_64``) and gives its :class:`~stackmeta.target.Target`.
:func:`marker` writes the PEP 508 environment marker of a set of cells (``python_version``,
``sys_platform``, ``platform_machine``), exact on the cells: it holds in every cell of the set
and in no other cell. :func:`outside_marker` holds on every platform outside all cells (another
OS, another machine: linux-ppc64le, windows-arm64); :func:`requires_python` covers the cells'
Pythons. Pure functions over ``packaging`` types.
"""

from __future__ import annotations

import platform as _platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from stackmeta.errors import UsageError
from stackmeta.target import LAPTOP_PLATFORMS, PLATFORMS, Target

NEWEST = (3, 13)  # the newest Python every cell set reaches; 3.14 is asked for (--newest-python 3.14)


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class Cell:
    """One CPython minor on one laptop platform."""

    python: tuple[int, int]
    platform: str

    @property
    def name(self) -> str:
        return f"{self.python[0]}.{self.python[1]}-{self.platform}"

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def target(self) -> Target:
        return Target(python=Version(self.python_version), platform=self.platform)

    def __str__(self) -> str:
        return f"Python {self.python_version} on {self.platform}"

    @classmethod
    def parse(cls, name: str) -> Cell:
        """'3.9-linux-x86_64' -> Cell; UsageError when it is not a cell's name."""
        python, _, platform = name.partition("-")
        major, _, minor = python.partition(".")
        if not (major.isdigit() and minor.isdigit()) or platform not in PLATFORMS:
            raise UsageError(f"{name!r} is not a cell: use <major>.<minor>-<platform>, e.g. 3.9-linux-x86_64")
        return cls(python=(int(major), int(minor)), platform=platform)


def pythons(release_python: Version, newest: tuple[int, int] = NEWEST) -> tuple[tuple[int, int], ...]:
    """The CPython minors of a release's cells: its own up to *newest* (2.7 alone for Python 2)."""
    own = (release_python.major, release_python.minor)
    if own[0] == 2:
        return (own,)
    if newest < own:
        raise UsageError(f"the newest Python {newest[0]}.{newest[1]} is older than the release's "
                         f"{own[0]}.{own[1]}")
    return tuple((3, m) for m in range(own[1], newest[1] + 1))


def cells_for(release_python: Version, *, newest: tuple[int, int] = NEWEST,
              platforms: Sequence[str] = LAPTOP_PLATFORMS) -> tuple[Cell, ...]:
    """Every cell of a release whose Python is *release_python*, sorted."""
    return tuple(sorted(Cell(python=p, platform=plat) for p in pythons(release_python, newest)
                        for plat in platforms))


def home_cell(release_python: Version, platform: str = "linux-x86_64") -> Cell:
    """The release's own cell: its Python, on (by default) linux-x86_64."""
    return Cell(python=(release_python.major, release_python.minor), platform=platform)


def running_cell() -> Cell | None:
    """The cell of this interpreter, or None outside every laptop platform."""
    machine, system = _platform.machine(), _platform.system()
    for name, (_, plat_system, _, plat_machine) in PLATFORMS.items():
        if system == plat_system and machine == plat_machine:
            return Cell(python=sys.version_info[:2], platform=name)
    return None


def _python_clause(chosen: set[tuple[int, int]], universe: Sequence[tuple[int, int]]) -> str | None:
    if set(universe) <= chosen:
        return None
    runs: list[list[tuple[int, int]]] = []
    for py in universe:
        if py in chosen:
            if runs and runs[-1][-1] == universe[universe.index(py) - 1]:
                runs[-1].append(py)
            else:
                runs.append([py])
    parts = []
    for run in runs:
        lo, hi = run[0], run[-1]
        above = f'{hi[0]}.{hi[1] + 1}'
        if lo == hi and lo != universe[0] and hi != universe[-1]:
            parts.append(f'python_version == "{lo[0]}.{lo[1]}"')
        elif lo == universe[0]:
            parts.append(f'python_version < "{above}"')
        elif hi == universe[-1]:
            parts.append(f'python_version >= "{lo[0]}.{lo[1]}"')
        else:
            parts.append(f'python_version >= "{lo[0]}.{lo[1]}" and python_version < "{above}"')
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _os_key(python2: bool) -> tuple[str, int]:
    """The marker that names the OS: ``sys_platform``, but ``platform_system`` for Python 2 cells
    (Python 2's sys.platform is "linux2" on Linux)."""
    return ("platform_system", 1) if python2 else ("sys_platform", 0)


def _platform_clause(chosen: set[str], universe: Sequence[str], python2: bool = False) -> str | None:
    if set(universe) <= chosen:
        return None
    key, at = _os_key(python2)
    by_os: dict[str, list[str]] = {}
    for plat in universe:
        by_os.setdefault(PLATFORMS[plat][at], []).append(plat)
    parts = []
    for sys_platform, plats in by_os.items():
        mine = [p for p in plats if p in chosen]
        if not mine:
            continue
        if len(mine) == len(plats):
            parts.append(f'{key} == "{sys_platform}"')
            continue
        machines = [f'platform_machine == "{PLATFORMS[p][3]}"' for p in mine]
        machine = machines[0] if len(machines) == 1 else "(" + " or ".join(machines) + ")"
        parts.append(f'{key} == "{sys_platform}" and {machine}')
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def marker(chosen: Iterable[Cell], universe: Sequence[Cell]) -> Marker | None:
    """The marker that holds in the cells *chosen* and in no other cell of *universe*; None
    when *chosen* is all of them (a plain requirement)."""
    chosen = set(chosen)
    if not chosen - set(universe) and set(universe) <= chosen:
        return None
    all_pythons = sorted({c.python for c in universe})
    all_platforms = [p for p in LAPTOP_PLATFORMS if any(c.platform == p for c in universe)]
    all_platforms += sorted({c.platform for c in universe} - set(all_platforms))
    by_platform: dict[str, set[tuple[int, int]]] = {}
    for c in chosen:
        by_platform.setdefault(c.platform, set()).add(c.python)
    groups: dict[frozenset[tuple[int, int]], set[str]] = {}
    for plat, pys in by_platform.items():
        groups.setdefault(frozenset(pys), set()).add(plat)
    clauses = []
    for group, plats in sorted(groups.items(), key=lambda g: (sorted(g[0]), sorted(g[1]))):
        python2 = any(c.python[0] == 2 for c in universe)
        found = (_python_clause(set(group), all_pythons), _platform_clause(plats, all_platforms, python2))
        parts = [p for p in found if p]
        if len(parts) == 2 and " or " in parts[0]:
            parts[0] = f"({parts[0]})"
        if len(parts) == 2 and " or " in parts[1]:
            parts[1] = f"({parts[1]})"
        clauses.append(" and ".join(parts))
    text = clauses[0] if len(clauses) == 1 else " or ".join(f"({c})" for c in clauses)
    return Marker(text)


def outside_marker(universe: Sequence[Cell]) -> Marker:
    """The marker that holds on every platform outside all of *universe*'s platforms (another
    operating system, or another machine of a covered one)."""
    plats = [p for p in LAPTOP_PLATFORMS if any(c.platform == p for c in universe)]
    key, at = _os_key(any(c.python[0] == 2 for c in universe))
    by_os: dict[str, list[str]] = {}
    for plat in plats:
        by_os.setdefault(PLATFORMS[plat][at], []).append(PLATFORMS[plat][3])
    other_os = " and ".join(f'{key} != "{o}"' for o in by_os)
    parts = [other_os]
    for os_name, machines in by_os.items():
        parts.append(f'{key} == "{os_name}" and '
                     + " and ".join(f'platform_machine != "{m}"' for m in machines))
    return Marker(" or ".join(f"({p})" for p in parts))


def requires_python(universe: Sequence[Cell]) -> SpecifierSet:
    """Requires-Python covering exactly the cells' minors (>=3.9,<3.14; ==2.7.*)."""
    minors = sorted({c.python for c in universe})
    lo, hi = minors[0], minors[-1]
    if lo == hi:
        return SpecifierSet(f"=={lo[0]}.{lo[1]}.*")
    return SpecifierSet(f">={lo[0]}.{lo[1]},<{hi[0]}.{hi[1] + 1}")


def unsupported_requirement(project: str, universe: Sequence[Cell]) -> str:
    """The requirement that makes pip refuse, by name, on a platform outside every cell: a
    version below 0 of a project that says why, which no index can serve (no PEP 440 version is
    below 0: ``<0`` excludes 0's own pre-releases), whoever owns the name. (Not ``===``: the
    pkg_resources of older pips cannot parse it before a marker.)"""
    return f"{project}-has-no-cell-for-this-platform<0 ; {outside_marker(universe)}"

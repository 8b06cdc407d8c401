"""The nearest consistent set in every cell of a release (:mod:`stackmeta.cells`).

:func:`resolve_cells` runs the nearest-set search (:func:`stackmeta.resolve.search.resolve`)
once per cell, the release's own cell first, reusing work across cells: one index client (its
pages and metadata are read once), one set of sdist builds (:class:`~stackmeta.index.installable.Builds`,
each sdist built once for all cells), and whole searches: the search is a function of the
answers its source gave (versions, wheels, installability, requirements with markers
evaluated), so when a cell's source gives every answer an earlier cell's search asked for alike
(:meth:`~stackmeta.resolve.provider.Memo.same_answers`), that cell gets the same set without a
search. A cell with no consistent set at all is reported as such, and the others are kept.

:class:`CellMatrix` is the result: per cell a :class:`~stackmeta.resolve.nearest.NearestSet`
(or the one-line failure), saved as the record's ``"cells"`` section; :meth:`CellMatrix.pin_cells`
says which cells take which version of each package (the metapackage's markers), and
:func:`cells_text` is ``locks/<name>.nearest.txt`` with those markers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import atomic, record
from stackmeta.cells import Cell, home_cell, marker
from stackmeta.errors import RecordError, ResolutionError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.nearest import SECTION, NearestSet, comment_lines, nearest_path
from stackmeta.resolve.provider import Memo
from stackmeta.resolve.search import resolve

CELLS_SECTION = "cells"


@dataclass(frozen=True, kw_only=True, slots=True)
class CellResult:
    """One cell's nearest set, or why it has none (one line)."""

    cell: Cell
    nearest: NearestSet | None
    failure: str = ""
    same_as: str | None = None  # the cell whose search this one's answers matched (no search ran)


@dataclass(frozen=True, kw_only=True, slots=True)
class CellMatrix:
    """The nearest set of a release in each of its cells."""

    release: str
    index_url: str
    results: tuple[CellResult, ...]  # sorted by cell

    @property
    def cells(self) -> tuple[Cell, ...]:
        return tuple(r.cell for r in self.results)

    @property
    def resolved(self) -> tuple[CellResult, ...]:
        return tuple(r for r in self.results if r.nearest is not None)

    def result(self, cell: Cell) -> CellResult:
        for r in self.results:
            if r.cell == cell:
                return r
        raise KeyError(cell.name)

    def pin_cells(self) -> dict[NormalizedName, dict[Version, tuple[Cell, ...]]]:
        """For each package pinned in some cell: its versions and the cells that take each."""
        out: dict[NormalizedName, dict[Version, list[Cell]]] = {}
        for r in self.resolved:
            assert r.nearest is not None
            for name, version in r.nearest.pins:
                out.setdefault(name, {}).setdefault(version, []).append(r.cell)
        return {n: {v: tuple(sorted(cs)) for v, cs in sorted(vs.items())} for n, vs in sorted(out.items())}

    def requirement_lines(self) -> list[tuple[NormalizedName, Version, str | None]]:
        """(name, version, marker text or None) per pin line: a package at one version in every
        resolved cell is one plain line; otherwise one line per version, with the marker of the
        cells that take it (exact over all the cells: the markers are disjoint there, and a cell
        without a set takes no line)."""
        universe = self.cells
        out: list[tuple[NormalizedName, Version, str | None]] = []
        for name, versions in self.pin_cells().items():
            for version, cells in versions.items():
                m = marker(cells, universe)
                out.append((name, version, None if m is None else str(m)))
        return out

    @property
    def failed(self) -> tuple[Cell, ...]:
        return tuple(r.cell for r in self.results if r.nearest is None)

    def counts(self, cell: Cell) -> dict[str, int]:
        """exact / moved / left out / added in *cell* (all -1 when it has no set)."""
        r = self.result(cell)
        if r.nearest is None:
            return {"exact": -1, "moved": -1, "left_out": -1, "added": -1}
        n = r.nearest
        moved = len(n.deviations)
        added = len(n.additions)
        return {"exact": len(n.pins) - moved - added, "moved": moved, "left_out": len(n.omissions),
                "added": added}

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release, "index_url": self.index_url,
            "cells": {r.cell.name: ({"nearest": r.nearest.to_json(), "same_as": r.same_as}
                                    if r.nearest is not None else {"failure": r.failure})
                      for r in self.results},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CellMatrix:
        results = []
        for name, item in data["cells"].items():
            cell = Cell.parse(name)
            if "nearest" in item:
                results.append(CellResult(cell=cell, nearest=NearestSet.from_json(item["nearest"]),
                                          same_as=item.get("same_as")))
            else:
                results.append(CellResult(cell=cell, nearest=None, failure=item["failure"]))
        return cls(release=data["release"], index_url=data["index_url"],
                   results=tuple(sorted(results, key=lambda r: r.cell)))


def _relabel(nearest: NearestSet, old: Cell, new: Cell) -> NearestSet:
    """*nearest* found for *old*, as the set of *new* (reasons name the new cell's target)."""
    before, after = str(old.target), str(new.target)

    def fix(text: str) -> str:
        return text.replace(before, after)

    return dataclasses.replace(
        nearest, python=new.target.python, platform=new.platform,
        deviations=tuple(dataclasses.replace(d, reason=fix(d.reason)) for d in nearest.deviations),
        omissions=tuple(dataclasses.replace(o, reason=fix(o.reason)) for o in nearest.omissions))


def resolve_cells(rel: record.Release, client: IndexClient, cells: Sequence[Cell], *,
                  builds: Builds | None = None, progress: Progress = NO_PROGRESS) -> CellMatrix:
    """The nearest set of *rel* in each of *cells* (see the module's docstring)."""
    home = home_cell(rel.python)
    order = sorted(cells, key=lambda c: (c != home, c.python != home.python, c))
    names = sorted(p.name for p in rel.packages)
    done: list[tuple[Cell, Memo, NearestSet]] = []
    results: list[CellResult] = []
    for cell in order:
        target = cell.target
        source = IndexSource(client, target, builds=builds)
        source.prefetch(names, progress)
        source.prefetch_dependencies(record.pins(rel), progress)
        page_errors = {n: e for n, e in source.errors.items() if "==" not in n}
        if page_errors:
            name, error = min(page_errors.items())
            raise ResolutionError(f"{cell}: {len(page_errors)} project page(s) could not be read, first "
                                  f"{name}: {error}: nothing was written; run again")
        if builds is not None:  # the release's sdist-only versions of this cell, two at a time
            todo = []
            for pkg in rel.packages:
                if pkg.version is None:
                    continue
                files = source.files(pkg.name, pkg.version)
                if files and not any(f.kind == "wheel" and target.wheel_rank(f.filename) is not None
                                     for f in files):
                    todo += [(str(pkg.name), f) for f in files if f.kind == "sdist"][:1]
            builds.build_many(todo, progress)
        memo = Memo(source)
        same = next(((c, n) for c, m, n in sorted(done, key=lambda d: d[0].python != cell.python)
                     if m.same_answers(memo, target)), None)
        if same is not None:
            results.append(CellResult(cell=cell, nearest=_relabel(same[1], same[0], cell),
                                      same_as=same[0].name))
            continue
        try:
            nearest = resolve(rel, source, target, index_url=client.index_url, progress=progress, memo=memo)
        except ResolutionError as exc:
            results.append(CellResult(cell=cell, nearest=None, failure=str(exc)))
            continue
        done.append((cell, memo, nearest))
        results.append(CellResult(cell=cell, nearest=nearest))
    return CellMatrix(release=rel.release, index_url=client.index_url,
                      results=tuple(sorted(results, key=lambda r: r.cell)))


# -- the record's "cells" section and locks/<name>.nearest.txt ---------------------------------

def load_cells(locks_dir: Path, name: str) -> CellMatrix | None:
    """The cell matrix saved in the record *name* (None when it has none: resolved before cells)."""
    path = record.record_path(locks_dir, name)
    data = record.read_document(path).get(CELLS_SECTION)
    if data is None:
        return None
    try:
        return CellMatrix.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{path}: malformed {CELLS_SECTION!r} section ({exc!r}): run "
                          f"'stackmeta resolve {name}' again") from None


def save_cells(locks_dir: Path, name: str, rel: record.Release, matrix: CellMatrix) -> Path:
    """Save *matrix* as the record's "cells" section, its home cell's set as the "consistent"
    section, and locks/<name>.nearest.txt with markers."""
    path = record.record_path(locks_dir, name)
    record.update_section(path, CELLS_SECTION, matrix.to_json())
    home = home_cell(rel.python)
    main = next((r for r in matrix.results if r.cell == home and r.nearest is not None), None) \
        or next(iter(matrix.resolved), None)
    if main is not None and main.nearest is not None:
        record.update_section(path, SECTION, main.nearest.to_json())
    out = nearest_path(locks_dir, name)
    atomic.write_text(out, cells_text(rel, matrix))
    return out


def cells_text(rel: record.Release, matrix: CellMatrix) -> str:
    """The nearest sets of every cell as one requirements (or constraints) file with markers:
    exactly one line per package applies in each cell; every difference from the release is
    explained, per cell."""
    resolved = matrix.resolved
    lines = [
        f"# The nearest pip-consistent sets of {rel.release} ({', '.join(rel.arches)}, Python {rel.python})",
        f"# in {len(matrix.results)} cells (Python x platform) against {matrix.index_url}; "
        f"{len(resolved)} resolved",
        "# a line without a marker holds in every cell; a marker names the cells that take that version",
        "# generated by 'stackmeta resolve'; the release's own pins are in the .txt beside this file",
    ]
    for r in matrix.results:
        c = matrix.counts(r.cell)
        if r.nearest is None:
            lines.append(f"# CELL {r.cell.name}: NO CONSISTENT SET: {r.failure}")
        else:
            lines.append(f"# CELL {r.cell.name}: {c['exact']} exact, {c['moved']} moved, "
                         f"{c['left_out']} left out, {c['added']} added")
    devs: dict[NormalizedName, dict[str, list[str]]] = {}
    for r in resolved:
        assert r.nearest is not None
        for d in r.nearest.deviations:
            devs.setdefault(d.name, {}).setdefault(f"{d.release_version} -> {d.version}: {d.reason}",
                                                   []).append(r.cell.name)
    for name, version, mark in matrix.requirement_lines():
        for why, where in sorted(devs.pop(name, {}).items()):
            lines.append(f"# DEVIATION {name} {why.split(':', 1)[0]} in {_cells_label(where, resolved)}:")
            lines += comment_lines(why.split(": ", 1)[1])
        lines.append(f"{name}=={version}" + (f" ; {mark}" if mark else ""))
    omitted: dict[tuple[NormalizedName, str, str], list[str]] = {}
    for r in resolved:
        assert r.nearest is not None
        for o in r.nearest.omissions:
            omitted.setdefault((o.name, o.release_version, o.reason), []).append(r.cell.name)
    for (name, written, reason), where in sorted(omitted.items()):
        lines.append(f"# OMITTED {name} {written} in {_cells_label(where, resolved)}:")
        lines += comment_lines(reason)
    return "\n".join(lines) + "\n"


def _cells_label(names: Sequence[str], resolved: Sequence[CellResult]) -> str:
    return "every cell" if len(names) == len(resolved) else ", ".join(names)

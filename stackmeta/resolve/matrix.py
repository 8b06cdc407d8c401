"""The cells of a release as the record keeps them: per cell (:class:`~stackmeta.cells.Cell`) a
:class:`~stackmeta.resolve.nearest.NearestSet` or the one-line reason it has none
(:class:`CellMatrix`, the record's ``"cells"`` section), which cells take which version of each
package (the metapackage's markers), and ``locks/<name>.nearest.txt`` with those markers
(:func:`cells_text`). Reading them needs no resolver: the search that finds them is
:func:`stackmeta.resolve.cells.resolve_cells`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from stackmeta import atomic, record
from stackmeta.cells import Cell, home_cell, marker
from stackmeta.errors import RecordError
from stackmeta.resolve.nearest import SECTION, NearestSet, comment_lines, nearest_path

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

    def set_of(self, cell: Cell) -> NearestSet | None:
        """*cell*'s set; None when the matrix has no such cell, or no set for it."""
        return next((r.nearest for r in self.results if r.cell == cell), None)

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


# -- the record's "cells" section and locks/<name>.nearest.txt ---------------------------------

def load_cells(locks_dir: Path, name: str) -> CellMatrix | None:
    """The cell matrix saved in the record *name* (None when it has none: resolved before cells)."""
    path = record.record_path(locks_dir, name)
    return cells_of(record.read_document(path), path, name)


def cells_of(doc: Mapping[str, Any], where: Path | str, name: str) -> CellMatrix | None:
    """The cell matrix in the record document *doc* (read from *where*, the record *name*):
    None when it has none; RecordError, saying how to make it anew, when it is malformed."""
    data = doc.get(CELLS_SECTION)
    if data is None:
        return None
    try:
        return CellMatrix.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # what a damaged section gives
        raise RecordError(f"{where}: malformed {CELLS_SECTION!r} section ({exc!r}): run "
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

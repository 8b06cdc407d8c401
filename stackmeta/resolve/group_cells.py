"""A working group's baseline in every cell of its release (:mod:`stackmeta.cells`).

:func:`plan_cells` plans the group's overrides and additions (:func:`stackmeta.resolve.overlay.plan`)
in each cell of the release's record (its ``cells`` section, a
:class:`~stackmeta.resolve.matrix.CellMatrix`) against that cell's nearest set and for that
cell's :class:`~stackmeta.target.Target`, the release's own cell first, reusing work across
cells: one index client, one set of sdist builds, and whole plans. The cells' own sets were
already judged installable when the release was resolved; what the group brings (its additions,
their dependencies, the versions pins move to) is judged here, an sdist-only version by building
it (:class:`~stackmeta.index.installable.Builds`). A plan is a function of the nearest set and of
the answers its source gave (versions, files, installability, requirements with markers
evaluated), so a cell whose set is the same as an earlier cell's and whose source gives every
answer that cell's plan asked for alike gets the same plan without planning (``same_as``).

A cell where the group has no consistent set keeps the one-line reason (:class:`CellPlan`); the
others go on. :meth:`GroupCells.matrix` is the group's own :class:`CellMatrix` (each cell's set
from :func:`stackmeta.resolve.baseline.group_set`, a cell without one as failed), from which
:func:`stackmeta.package.metapackage.project` writes one wheel with markers, as for a release.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta.cells import Cell
from stackmeta.errors import IndexAccessError, ResolutionError, StackmetaError, UsageError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds, Verdict
from stackmeta.index.simple import ProjectFile
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve import baseline, overlay
from stackmeta.resolve.matrix import CellMatrix, CellResult
from stackmeta.resolve.nearest import NearestSet
from stackmeta.target import Target

_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]|['"]([^'"]+)['"]\s*==\s*extra""")


class CellSource:
    """A cell's :class:`IndexSource` that answers ``installable`` for the pins of the cell's own
    set without asking (they were judged when the release was resolved: what a plan brings
    besides them is judged by the source, by building with builds), and remembers every
    question a plan asked (:meth:`same_answers`). ``stackmeta env`` plans on it too."""

    def __init__(self, source: IndexSource, judged: Collection[tuple[NormalizedName, Version]]) -> None:
        self.source = source
        self.target = source.target
        self.judged = frozenset(judged)
        self.asked: set[tuple[str, NormalizedName, Version | None]] = set()

    @property
    def errors(self) -> dict[str, str]:
        return self.source.errors

    def versions(self, name: NormalizedName) -> Sequence[Version]:
        self.asked.add(("versions", canonicalize_name(name), None))
        return self.source.versions(name)

    def dependencies(self, name: NormalizedName, version: Version) -> Sequence[Requirement] | None:
        self.asked.add(("dependencies", canonicalize_name(name), version))
        return self.source.dependencies(name, version)

    def files(self, name: NormalizedName, version: Version) -> tuple[ProjectFile, ...]:
        self.asked.add(("files", canonicalize_name(name), version))
        return self.source.files(name, version)

    def has_wheel(self, name: NormalizedName, version: Version) -> bool:
        self.asked.add(("wheel", canonicalize_name(name), version))
        return self.source.has_wheel(name, version)

    def installable(self, name: NormalizedName, version: Version) -> Verdict:
        key = (canonicalize_name(name), version)
        if key in self.judged:
            return Verdict(installable=True, how="wheel")
        self.asked.add(("installable", *key))
        return self.source.installable(name, version)

    def at_hand(self, name: NormalizedName, version: Version) -> bool:
        return self.source.at_hand(name, version)

    def build_ahead(self, name: NormalizedName, version: Version) -> None:
        if (canonicalize_name(name), version) not in self.judged:
            self.source.build_ahead(name, version)

    def prefetch_dependencies(self, pins: Iterable[tuple[str, Version]],
                              progress: Progress = NO_PROGRESS) -> None:
        self.source.prefetch_dependencies(pins, progress)

    def answer(self, question: tuple[str, NormalizedName, Version | None]) -> Any:
        """The answer to *question* as the plan sees it for this cell's target: markers
        evaluated, wheels judged for the target (comparable across cells)."""
        kind, name, version = question
        target = self.target
        if kind == "versions":
            return frozenset(self.source.versions(name))
        assert version is not None
        if kind == "files":  # the plan asks whether there is a wheel for the target, and upload times
            files = self.source.files(name, version)
            return (tuple((f.filename, f.upload_time) for f in files),
                    any(target.wheel_rank(f.filename) is not None for f in files))
        if kind == "wheel":
            return self.source.has_wheel(name, version)
        if kind == "installable":
            found = self.installable(name, version)
            return found.installable, found.how
        deps = self.source.dependencies(name, version)
        if deps is None:
            return None
        extras = sorted({a or b for r in deps if r.marker is not None
                         for a, b in _EXTRA.findall(str(r.marker))})
        return tuple((_bare(r),
                      tuple(target.evaluate(r.marker, frozenset({e}) if e else frozenset())
                            for e in ("", *extras)))
                     for r in deps)

    def same_answers(self, other: CellSource) -> bool:
        """Whether *other* (another cell's source) answers every question this one was asked alike."""
        if other.judged != self.judged:
            return False
        return all(self.answer(q) == other.answer(q) for q in sorted(self.asked, key=str))


def _bare(req: Requirement) -> str:
    """*req* without its marker."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{canonicalize_name(req.name)}{extras}{req.specifier}" + (f" @ {req.url}" if req.url else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class CellPlan:
    """The group's plan in one cell, or why it has none (one line)."""

    cell: Cell
    plan: overlay.Plan | None
    failure: str = ""
    same_as: str | None = None  # the cell whose plan this one's answers matched (no plan ran)
    error: StackmetaError | None = dataclasses.field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        if self.plan is None:
            return {"cell": self.cell.name, "failure": self.failure}
        return {"cell": self.cell.name, "same_as": self.same_as, **self.plan.to_json()}


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupCells:
    """The group's plan in each cell of its release."""

    base: CellMatrix  # the release's cells
    home: Cell  # the release's own cell
    index_url: str
    results: tuple[CellPlan, ...]  # sorted by cell
    not_planned: tuple[Cell, ...] = ()  # cells after the first that moves pins, with stop_at_moves

    @property
    def planned(self) -> tuple[CellPlan, ...]:
        return tuple(r for r in self.results if r.plan is not None)

    @property
    def failed(self) -> tuple[CellPlan, ...]:
        return tuple(r for r in self.results if r.plan is None)

    @property
    def main(self) -> CellPlan:
        """The home cell's plan, or the first cell's that has one (ResolutionError: none has)."""
        planned = self.planned
        if not planned:
            first = next((r for r in self.results if r.cell == self.home), self.results[0])
            if first.error is not None:
                raise first.error
            raise ResolutionError(first.failure)
        return next((r for r in planned if r.cell == self.home), planned[0])

    def nearest(self, cell: Cell) -> NearestSet:
        found = self.base.result(cell).nearest
        assert found is not None
        return dataclasses.replace(found, index_url=self.index_url)

    def matrix(self) -> CellMatrix:
        """The group's sets as a cell matrix: per cell the release's set with the group's plan
        (:func:`~stackmeta.resolve.baseline.group_set`), or why the cell has none."""
        out = []
        for r in self.results:
            if r.plan is None:
                out.append(CellResult(cell=r.cell, nearest=None, failure=r.failure))
            else:
                out.append(CellResult(cell=r.cell, nearest=baseline.group_set(self.nearest(r.cell), r.plan),
                                      same_as=r.same_as))
        return CellMatrix(release=self.base.release, index_url=self.index_url, results=tuple(out))

    def moves_message(self) -> str:
        """The moves of every cell in one line: one cell's message when every cell that moves
        pins moves them alike, else each with the cells it holds in."""
        by_text: dict[str, list[str]] = {}
        for r in self.planned:
            assert r.plan is not None
            if r.plan.moves:
                by_text.setdefault(_generic(r.plan.moves_message(), r.plan.target), []).append(r.cell.name)
        if len(by_text) == 1:
            main = self.main.plan
            assert main is not None
            if main.moves:
                return main.moves_message()
        return "; ".join(f"in {label(cells, len(self.planned))}: {text}" for text, cells in by_text.items())


def label(cells: Sequence[str], planned: int) -> str:
    """'every cell' or the cells' names."""
    return "every cell" if len(cells) == planned else ", ".join(cells)


def _generic(text: str, target: Target) -> str:
    return text.replace(str(target), "this cell")


def _relabel(p: overlay.Plan, target: Target, nearest: NearestSet) -> overlay.Plan:
    """The plan *p* made for another cell, as the plan of *target*, whose set is *nearest*."""
    before, after = str(p.target), str(target)

    def fix(text: str) -> str:
        return text.replace(before, after)

    left_out = [overlay.LeftOut(name=o.name, version=o.release_version, reason=o.reason, by="resolve")
                for o in nearest.omissions]
    left_out += [dataclasses.replace(lo, reason=fix(lo.reason)) for lo in p.left_out if lo.by == "env"]
    return dataclasses.replace(
        p, target=target,
        moves=tuple(dataclasses.replace(m, reason=fix(m.reason)) for m in p.moves),
        left_out=tuple(left_out),
        far=tuple(dataclasses.replace(f, needs=fix(f.needs)) for f in p.far))


def plan_cells(base: CellMatrix, client: IndexClient, home: Cell, *,
               overrides: Sequence[overlay.Override] = (), additions: Sequence[Requirement] = (),
               builds: Builds | None = None, progress: Progress = NO_PROGRESS,
               stop_at_moves: bool = False) -> GroupCells:
    """The group's plan in each cell of *base* (see the module's docstring). With
    *stop_at_moves* (moves are not allowed), the cells after the first whose plan moves pins are
    not planned (:attr:`GroupCells.not_planned`): the build is refused anyway."""
    order = sorted(base.results, key=lambda r: (r.cell != home, r.cell.python != home.python, r.cell))
    asked_names = sorted({o.name for o in overrides} | {canonicalize_name(a.name) for a in additions})
    done: list[tuple[Cell, tuple[Any, ...], CellSource, overlay.Plan | ResolutionError | UsageError]] = []
    results: list[CellPlan] = []
    for number, r in enumerate(order, 1):
        if stop_at_moves and any(p.plan is not None and p.plan.moves for p in results):
            return GroupCells(base=base, home=home, index_url=client.index_url,
                              results=tuple(sorted(results, key=lambda p: p.cell)),
                              not_planned=tuple(sorted(x.cell for x in order[number - 1:])))
        cell = r.cell
        if r.nearest is None:
            results.append(CellPlan(cell=cell, plan=None,
                                    failure=f"the release has no set here: {r.failure}"))
            continue
        nearest = dataclasses.replace(r.nearest, index_url=client.index_url)
        source = IndexSource(client, cell.target, builds=builds)
        source.prefetch([*asked_names, *(n for n, _ in nearest.pins)], progress)
        source.prefetch_dependencies([*nearest.pins, *((o.name, o.version) for o in overrides)], progress)
        page_errors = {n: e for n, e in source.errors.items() if "==" not in n}
        if page_errors:
            name, error = min(page_errors.items())
            raise IndexAccessError(f"{cell}: {len(page_errors)} project page(s) could not be read, first "
                                   f"{name}: {error}: nothing was built; run again")
        asking = CellSource(source, nearest.pins)
        key = (nearest.pins, tuple(o.name for o in nearest.omissions),
               tuple(cell.target.evaluate(a.marker) for a in additions))
        nearby = sorted((d for d in done if d[1] == key), key=lambda d: d[0].python != cell.python)
        same = next((d for d in nearby if d[2].same_answers(asking)), None)
        if same is not None:
            earlier, outcome = same[0], same[3]
            if isinstance(outcome, overlay.Plan):
                results.append(CellPlan(cell=cell, plan=_relabel(outcome, cell.target, nearest),
                                        same_as=earlier.name))
            else:
                results.append(CellPlan(cell=cell, plan=None, same_as=earlier.name, error=outcome,
                                        failure=str(outcome).replace(str(earlier.target), str(cell.target))))
            continue
        progress.start(f"planning in {cell.name} ({number} of {len(order)} cells)", None)
        try:
            found: overlay.Plan | ResolutionError | UsageError = overlay.plan(
                nearest, asking, cell.target, overrides=overrides, additions=additions)
        except (ResolutionError, UsageError) as exc:
            found = exc
        finally:
            progress.done()
        done.append((cell, key, asking, found))
        if isinstance(found, overlay.Plan):
            results.append(CellPlan(cell=cell, plan=found))
        else:
            results.append(CellPlan(cell=cell, plan=None, failure=str(found), error=found))
    return GroupCells(base=base, home=home, index_url=client.index_url,
                      results=tuple(sorted(results, key=lambda p: p.cell)))

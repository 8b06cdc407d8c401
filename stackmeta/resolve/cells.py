"""The nearest consistent set in every cell of a release (:mod:`stackmeta.cells`).

:func:`resolve_cells` runs the nearest-set search (:func:`stackmeta.resolve.search.resolve`)
once per cell, the release's own cell first, reusing work across cells: one index client (its
pages and metadata are read once), one set of sdist builds (:class:`~stackmeta.index.installable.Builds`,
each sdist built once for all cells), and whole searches: the search is a function of the
answers its source gave (versions, wheels, installability, requirements with markers
evaluated), so when a cell's source gives every answer an earlier cell's search asked for alike
(:meth:`~stackmeta.resolve.provider.Answers.same`), that cell gets the same set without a
search. From a cold cache the cells are first searched a few at once, to fetch what they read
(:mod:`stackmeta.resolve.warmup`); the exact run, cell by cell, finds it at hand. From a warm
one, cells are searched by turns here and in a second process, whose sets the exact run takes
when it proves it would have found them. A cell with no
consistent set at all is reported as such, and the others are kept.

:class:`~stackmeta.resolve.matrix.CellMatrix` is the result (per cell a nearest set or the
one-line failure), kept in the record by :mod:`stackmeta.resolve.matrix`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

from stackmeta import record
from stackmeta.cells import Cell, home_cell
from stackmeta.errors import ResolutionError
from stackmeta.index.client import IndexClient
from stackmeta.index.installable import Builds
from stackmeta.index.source import IndexSource
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.resolve.gcpace import rare_full_collections
from stackmeta.resolve.matrix import CellMatrix, CellResult
from stackmeta.resolve.nearest import NearestSet
from stackmeta.resolve.provider import Answers, Memo
from stackmeta.resolve.search import resolve
from stackmeta.resolve.warmup import PROCESSES, THREADS, Guess, WarmUp, nearby


def _relabel(nearest: NearestSet, old: Cell, new: Cell) -> NearestSet:
    """*nearest* found for *old*, as the set of *new* (reasons name the new cell's target)."""
    before, after = str(old.target), str(new.target)

    def fix(text: str) -> str:
        return text.replace(before, after)

    return dataclasses.replace(
        nearest, python=new.target.python, platform=new.platform,
        deviations=tuple(dataclasses.replace(d, reason=fix(d.reason)) for d in nearest.deviations),
        omissions=tuple(dataclasses.replace(o, reason=fix(o.reason)) for o in nearest.omissions))


def _alike(one: NearestSet | None, other: NearestSet | None) -> bool:
    """Whether two sets had before are the same set (pins and packages left out, with reasons)."""
    if one is None or other is None:
        return one is other
    return one.pins == other.pins and one.omissions == other.omissions


def resolve_cells(rel: record.Release, client: IndexClient, cells: Sequence[Cell], *,
                  builds: Builds | None = None, progress: Progress = NO_PROGRESS,
                  before: CellMatrix | None = None, warm_up: int = THREADS,
                  processes: int = PROCESSES) -> CellMatrix:
    """The nearest set of *rel* in each of *cells* (see the module's docstring); the garbage
    collector's full passes rare meanwhile (:mod:`stackmeta.resolve.gcpace`). *before*: the
    cells resolved before (the record's): each cell's set there is tried last by its search
    (:func:`~stackmeta.resolve.search.resolve`), so no cell gets farther than a set that holds.
    *warm_up*: the cold cells are first searched that many at once, to fetch what they read;
    *processes*: from a warm cache, the cells are searched ahead in that many more processes
    (:mod:`stackmeta.resolve.warmup`; 0 and 0: one cell after another)."""
    with rare_full_collections():
        return _resolve_cells(rel, client, cells, builds=builds, progress=progress, before=before,
                              warm_up=warm_up, processes=processes)


def _resolve_cells(rel: record.Release, client: IndexClient, cells: Sequence[Cell], *,
                   builds: Builds | None, progress: Progress, before: CellMatrix | None,
                   warm_up: int, processes: int) -> CellMatrix:
    home = home_cell(rel.python)
    order = sorted(cells, key=lambda c: (c != home, c.python != home.python, c))
    done: dict[Cell, tuple[Answers, NearestSet]] = {}  # the cells searched, in order
    shared: dict[object, object] = {}  # the answers alike in several cells, kept once (Memo.answers)
    results: list[CellResult] = []
    set_before: Callable[[Cell], NearestSet | None] = (lambda _: None) if before is None else before.set_of
    with WarmUp(rel, client, order, builds=builds, before=set_before, threads=warm_up, processes=processes,
                progress=progress, shared=shared) as warming:
        for cell in order:
            result, guessed = _resolve_cell(rel, client, cell, builds=builds, progress=progress, done=done,
                                            shared=shared, set_before=set_before,
                                            guess=functools.partial(warming.guess, cell))
            warming.settled(cell, done[cell][1] if cell in done else None, guessed=guessed)
            results.append(result)
    return CellMatrix(release=rel.release, index_url=client.index_url,
                      results=tuple(sorted(results, key=lambda r: r.cell)))


def _resolve_cell(rel: record.Release, client: IndexClient, cell: Cell, *, builds: Builds | None,
                  progress: Progress, done: dict[Cell, tuple[Answers, NearestSet]],
                  shared: dict[object, object], set_before: Callable[[Cell], NearestSet | None],
                  guess: Callable[[], Guess | None]) -> tuple[CellResult, bool]:
    """*cell*'s result, the cells searched before it *done* (a searched cell is added); its
    search run ahead (*guess*, asked for only when the cell is to be searched) taken when it
    holds (:meth:`Guess.holds`), and whether it was."""
    target = cell.target
    source = IndexSource(client, target, builds=builds)
    source.prefetch(sorted(p.name for p in rel.packages), progress)
    source.prefetch_dependencies(record.pins(rel), progress)
    page_errors = {n: e for n, e in source.errors.items() if "==" not in n}
    if page_errors:
        name, error = min(page_errors.items())
        raise ResolutionError(f"{cell}: {len(page_errors)} project page(s) could not be read, first "
                              f"{name}: {error}: nothing was written; run again")
    source.build_sdists(record.pins(rel), progress)  # the release's sdist-only versions
    earlier = nearby(list(done), cell)
    # the same answers and the same set before: the search would go the same way (each
    # earlier search's questions asked on a fresh memo: what this cell's search asks is its own)
    had = set_before(cell)
    same = next((c for c in earlier if _alike(set_before(c), had) and done[c][0].same(Memo(source), target)),
                None)
    if same is not None:
        return CellResult(cell=cell, nearest=_relabel(done[same][1], same, cell), same_as=same.name), False
    hints = [done[c][1] for c in earlier[:2]]
    ahead = guess()
    if ahead is not None and ahead.holds(earlier[:2], hints, source):
        if ahead.nearest is not None:
            done[cell] = (ahead.answers, ahead.nearest)  # interned as it arrived (WarmUp)
            return CellResult(cell=cell, nearest=ahead.nearest), True
        if ahead.failure is not None:
            return CellResult(cell=cell, nearest=None, failure=ahead.failure), True
    memo = Memo(source)
    try:
        nearest = resolve(rel, source, target, index_url=client.index_url, progress=progress, memo=memo,
                          hints=hints, before=had)
    except ResolutionError as exc:
        return CellResult(cell=cell, nearest=None, failure=str(exc)), False
    done[cell] = (memo.answers(shared), nearest)
    return CellResult(cell=cell, nearest=nearest), False

"""``export --all``: every release tag of a cmsdist clone to ``locks/``, fast and resumable.

The tags are listed once (``git for-each-ref``); each worker process reads git objects
through its own long-lived ``git cat-file --batch`` and keeps the manifest reader's caches
(parsed blobs, assembled and evaluated specs, by content), so a file shared by many tags is
parsed once per worker. Releases are sorted so that neighbours in a chunk share their files.

Arch policies (a release often has several tags ``REL/<release>/<arch>``):

- ``merge`` (default): one record per release over all its (matching) arches, named after
  the release, as ``export <release> --arch A --arch B`` writes it: a package that is not on
  every arch carries a ``platform_machine`` marker.
- ``each``: one record per tag, named ``<release>__<arch>`` (the name of an excerpt folder),
  e.g. ``locks/CMSSW_14_0_0__el9_amd64_gcc12.txt``; the other Python stack adds ``-py2``
  (``CMSSW_10_6_0__slc7_amd64_gcc700-py2``).

A release is skipped when its record is up to date: the record and the lock both name the
same commits and tags as the clone does now, written by this stackmeta version. The lock is
written before the record, each atomically, so an interrupted run leaves finished releases
complete and the others as they were; the next run exports what is left. A release that
fails is reported (with file:line when the reader knows it) and the others go on; a file
that cannot be written (the locks folder is a file, a full disk) stops the batch.
"""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from types import FrameType
from typing import Any

from stackmeta import __version__, atomic, record
from stackmeta.errors import ManifestError, OutputError, StackmetaError, UsageError
from stackmeta.locks import export
from stackmeta.manifest.cmsdist import Opened
from stackmeta.manifest.pins import cycle_counts, rank_arches
from stackmeta.manifest.walk import read_stacks
from stackmeta.progress import NO_PROGRESS, Progress
from stackmeta.release import release_order

ARCH_POLICIES = ("merge", "each")


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """One record to write: a release over some of its arches."""

    release: str
    base: str  # the lock's base name: the release, or <release>__<arch> with the "each" policy
    arches: tuple[str, ...]  # sorted
    rank: tuple[str, ...]  # the arches, the release's production arch first (pins.rank_arches)
    source: str  # what the record's "source" says once written ("git <commit> <tag>, ...")


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    """A release that could not be exported, and why (one line)."""

    release: str
    base: str
    arches: tuple[str, ...]
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Summary:
    """What :func:`export_all` did."""

    exported: tuple[str, ...]  # lock names written
    skipped: tuple[str, ...]  # lock names already up to date
    failed: tuple[Failure, ...]


# -- planning (pure) -------------------------------------------------------------------


def plan(
    available: Iterable[tuple[str, str]],
    describe: Callable[[str, Sequence[str]], str],
    *,
    match: Sequence[str] = (),
    arches: Sequence[str] = (),
    policy: str = "merge",
) -> list[Job]:
    """The jobs for every (release, arch) of *available* that *match* and *arches* (fnmatch
    patterns; none = all) select, ordered so neighbours share files. *describe(release, arches)*
    gives the source the record will name."""
    if policy not in ARCH_POLICIES:
        raise UsageError(f"--arch-policy {policy!r}: give one of {', '.join(ARCH_POLICIES)}")
    available = list(available)
    by_release: dict[str, list[str]] = {}
    for release, arch in available:
        if match and not any(fnmatch.fnmatchcase(release, m) for m in match):
            continue
        if arches and not any(fnmatch.fnmatchcase(arch, a) for a in arches):
            continue
        by_release.setdefault(release, []).append(arch)
    jobs: list[Job] = []
    counts = cycle_counts(available)
    for release, found in by_release.items():
        found = sorted(set(found))
        groups = [tuple(found)] if policy == "merge" else [(a,) for a in found]
        for group in groups:
            base = release if policy == "merge" else f"{release}__{group[0]}"
            jobs.append(Job(release=release, base=base, arches=group, source=describe(release, group),
                            rank=tuple(rank_arches(group, release, counts))))
    jobs.sort(key=lambda j: (j.arches, release_order(j.release), j.release))
    return jobs


# -- up to date ------------------------------------------------------------------------

_HEAD = 8192  # the record's "source" and "stackmeta_version" come before its packages


def up_to_date(locks_dir: Path, job: Job, python_major: int | None = None, *,
               with_record: bool = True, both: bool = False) -> str | None:
    """The lock name of *job*'s record when it is complete and names the same source, else None.
    *both*: the default stack's lock, and the other stack's when the first names one."""
    names = [job.base] if python_major is None else [job.base, f"{job.base}-py{python_major}"]
    for name in names:
        if _fresh(locks_dir, name, job.source, python_major, with_record):
            if both:
                other = _other_lock(locks_dir, name)
                if other is not None and not _fresh(locks_dir, other, job.source, None, with_record):
                    return None
            return name
    return None


def _other_lock(locks_dir: Path, name: str) -> str | None:
    """The other stack's lock that the lock *name*'s header names (``# other stack: ... in X.txt``)."""
    with open(record.constraints_path(locks_dir, name), "rb") as handle:
        head = handle.read(_HEAD).decode("utf-8", "replace")
    m = re.search(r"^# other stack: Python \S+ in (\S+)\.txt$", head, re.M)
    return None if m is None else m.group(1)


def _fresh(locks_dir: Path, name: str, source: str, python_major: int | None,
           with_record: bool = True) -> bool:
    try:
        with open(record.constraints_path(locks_dir, name), "rb") as handle:
            lock_head = handle.read(_HEAD).decode("utf-8", "replace")
        if not with_record:
            return (f"\n# source: {source}\n" in lock_head
                    and f"\n# written by stackmeta {__version__}\n" in lock_head
                    and (python_major is None or f"\n# Python: {python_major}." in lock_head))
        with open(record.record_path(locks_dir, name), "rb") as handle:
            head = handle.read(_HEAD).decode("utf-8", "replace")
    except OSError:
        return False
    fields = {}
    for key in ("source", "stackmeta_version", "python"):
        m = re.search(rf'^  "{key}": ("(?:[^"\\]|\\.)*"),?$', head, re.M)
        if m is None:
            return False
        fields[key] = json.loads(m.group(1))
    if fields["source"] != source or fields["stackmeta_version"] != __version__:
        return False
    if python_major is not None and not fields["python"].startswith(f"{python_major}."):
        return False
    return f"\n# source: {source}\n" in lock_head and f"\n# written by stackmeta {__version__}\n" in lock_head


# -- running ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Output:
    """What a batch writes: records and locks (default), or the locks alone; one stack (the
    default or ``python_major``), or both stacks where a release ships both."""

    python_major: int | None = None
    both: bool = False
    with_record: bool = True


def run_job(opened: Opened, job: Job, locks_dir: Path, output: Output) -> str:
    """Read and write one job's record(s); returns the (first) lock name."""
    source = opened.source(job.release, list(job.arches))
    rels, default = read_stacks(source.trees, job.release, source=source.description,
                                majors=[output.python_major], rank=job.rank, with_other=output.both)
    names = [export.write(rel, locks_dir, default_major=default, base=job.base,
                          with_record=output.with_record).lock_name for rel in rels]
    return names[0]


_Result = tuple[Job, str | None, str | None]  # (job, lock name, failure message)


def _attempt(opened: Opened, job: Job, locks_dir: Path, output: Output) -> _Result:
    try:
        return job, run_job(opened, job, locks_dir, output), None
    except OutputError:
        raise  # the locks folder, not this release: every other release would fail the same way
    except StackmetaError as exc:
        return job, None, str(exc)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # a reader bug on one odd tag must not stop the batch
        return job, None, f"internal error {type(exc).__name__}: {exc} (please report it with the tag)"


_WORKER: Opened | None = None
_STOP: EventType | None = None
_DONE: Any = None  # the parent's queue: one message per record written (the progress bar's)


def _worker_init(cmsdist: Path, parent: int, stop: EventType, done: Any = None) -> None:
    # Ctrl-C is the parent's to handle: it sets *stop*, the jobs in flight finish (no write is
    # cut) and no new one starts. A SIGTERM sent to a worker ends it through SystemExit, so the
    # file it was writing is removed on the way out.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _die_with(parent)
    global _WORKER, _STOP, _DONE
    _WORKER = Opened(cmsdist)
    _STOP = stop
    _DONE = done


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


_BUSY = threading.Lock()  # held by a worker while it runs a job


def _die_with(parent: int, every: float = 0.5, grace: float = 60.0) -> None:
    """End this worker when the batch's process is gone, however it ended (kill -9 too): a
    worker whose parent died would otherwise wait for work for ever. The job in flight ends
    first (its files are written whole, none is cut), for at most *grace* seconds."""
    def watch() -> None:
        while atomic.alive(parent):
            time.sleep(every)
        _BUSY.acquire(timeout=grace)
        os._exit(1)

    threading.Thread(target=watch, name="stackmeta-parent-watch", daemon=True).start()


def _worker_chunk(jobs: Sequence[Job], locks_dir: Path, output: Output) -> list[_Result]:
    assert _WORKER is not None
    results = []
    for job in jobs:
        if _STOP is not None and _STOP.is_set():
            break  # interrupted: the jobs not started are not done (the next run does them)
        with _BUSY:
            results.append(_attempt(_WORKER, job, locks_dir, output))
        if _DONE is not None:
            _DONE.put(1)
    return results


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C until the block ends (one release's two files are written together)."""
    caught: list[bool] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(True)

    try:
        old = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught:
            raise KeyboardInterrupt


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def export_all(
    cmsdist: Path,
    *,
    locks_dir: Path,
    match: Sequence[str] = (),
    arches: Sequence[str] = (),
    policy: str = "merge",
    python_major: int | None = None,
    force: bool = False,
    workers: int | None = None,
    progress: Progress = NO_PROGRESS,
    both: bool = False,
    with_record: bool = True,
) -> Summary:
    """Export every release of *cmsdist* that *match*/*arches* select (see the module doc).

    A folder source (no commits) is always exported again; a git source skips up-to-date
    records unless *force*. Raises KeyboardInterrupt after the releases in flight are written.
    """
    if python_major not in (None, 2, 3):
        raise UsageError(f"--python {python_major}: with --all give 2 or 3 (the stack to export)")
    if workers is not None and workers < 1:
        raise UsageError(f"--jobs {workers}: give 1 or more worker processes")
    if both and python_major is not None:
        raise UsageError(f"--python {python_major} or --python both, not both")
    output = Output(python_major=python_major, both=both, with_record=with_record)
    with Opened(cmsdist) as opened:
        if opened.kind == "folder":
            raise UsageError(
                f"--all needs a git clone or a folder of <RELEASE>__<ARCH> folders, not {cmsdist}"
            )
        jobs = plan(opened.available(), opened.description, match=match, arches=arches, policy=policy)
        if not jobs:
            what = f"matching {' '.join(match)}" if match else "at all"
            raise UsageError(f"no release tags {what} in {cmsdist}" +
                             (f" for arches {' '.join(arches)}" if arches else "") +
                             ": check --match/--arch (tags are REL/<release>/<arch>)")
        atomic.remove_stale(locks_dir, ".", ".tmp")  # what a killed run left, even if all is up to date
        skipped: list[str] = []
        todo: list[Job] = []
        for job in jobs:
            name = None if force or opened.kind != "git" else up_to_date(
                locks_dir, job, python_major, with_record=with_record, both=both)
            if name is not None:
                skipped.append(name)
            else:
                todo.append(job)
        workers = default_workers() if workers is None else workers
        workers = min(workers, len(todo)) if todo else 1
        results: list[_Result] = []
        progress.start(f"exporting {len(todo)} of {len(jobs)} releases", len(todo))
        try:
            if workers == 1:
                for job in todo:
                    with _sigint_deferred():
                        results.append(_attempt(opened, job, locks_dir, output))
                    progress.advance()
            else:
                opened.close()  # the workers have their own readers
                results.extend(_in_pool(cmsdist, todo, locks_dir, output, workers, progress))
        finally:
            progress.done()
    order = {job: i for i, job in enumerate(todo)}
    results.sort(key=lambda r: order[r[0]])  # the plan's order, however the workers finished
    exported = tuple(name for _, name, _ in results if name is not None)
    failed = tuple(Failure(release=j.release, base=j.base, arches=j.arches, message=m)
                   for j, _, m in results if m is not None)
    return Summary(exported=exported, skipped=tuple(skipped), failed=failed)


CHUNKS_PER_WORKER = 16


def _chunks(jobs: Sequence[Job], workers: int) -> list[list[Job]]:
    """Runs of neighbouring jobs, about CHUNKS_PER_WORKER per worker."""
    size = max(1, len(jobs) // (workers * CHUNKS_PER_WORKER))
    return [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]


def _spans(jobs: Sequence[Job], workers: int) -> list[deque[list[Job]]]:
    """The chunks dealt out as *workers* contiguous spans, one per worker: a worker walks its
    own span in the plan's order, so its caches (parsed files, the last walk of each arch)
    serve the release that follows the one it just read, and no two workers parse the files
    of the same stretch of history (dealing chunks to whichever worker was free made both
    parse most files)."""
    chunks = _chunks(jobs, workers)
    per = -(-len(chunks) // workers)
    return [deque(chunks[i * per:(i + 1) * per]) for i in range(workers)]


def _next_chunk(spans: Sequence[deque[list[Job]]], worker: int) -> list[Job] | None:
    """The next chunk of *worker*'s span; once that is done, the far end of the span with the
    most chunks left (its owner keeps the chunks next to the ones it is reading)."""
    if spans[worker]:
        return spans[worker].popleft()
    longest = max(spans, key=len)
    return longest.pop() if longest else None


def _in_pool(
    cmsdist: Path, jobs: Sequence[Job], locks_dir: Path, output: Output, workers: int,
    progress: Progress,
) -> list[_Result]:
    """The jobs over *workers* processes, one executor each (so a chunk goes to the worker
    whose span it is in: see :func:`_spans`), two chunks in flight per worker."""
    results: list[_Result] = []
    spans = _spans(jobs, workers)
    # forkserver, not fork: the parent may run threads (a progress bar) that fork would copy mid-lock.
    context = multiprocessing.get_context("forkserver")
    stop = context.Event()
    written = context.SimpleQueue()  # each record written, as it is: the progress bar follows it
    pools = [ProcessPoolExecutor(max_workers=1, initializer=_worker_init,
                                 initargs=(cmsdist, os.getpid(), stop, written), mp_context=context)
             for _ in range(workers)]
    shown = 0

    def follow() -> None:
        nonlocal shown
        while not written.empty():
            written.get()
            shown += 1
            progress.advance()

    def shutdown() -> None:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)

    owner: dict[Future[list[_Result]], int] = {}

    def submit(worker: int) -> None:
        chunk = _next_chunk(spans, worker)
        if chunk is not None:
            owner[pools[worker].submit(_worker_chunk, chunk, locks_dir, output)] = worker

    try:
        for _ in range(2):
            for worker in range(workers):
                submit(worker)
        while owner:
            done, _pending = wait(owner, timeout=0.1, return_when=FIRST_COMPLETED)
            follow()
            for future in done:
                worker = owner.pop(future)
                try:
                    chunk_results = future.result()
                except BrokenProcessPool:
                    raise ManifestError(
                        "a worker process of the batch died (out of memory?): the records it finished are "
                        "kept; run the export again, or with --jobs 1"
                    ) from None
                results.extend(chunk_results)
                submit(worker)
    except KeyboardInterrupt:
        # The jobs in flight finish (their files are written whole); nothing new starts.
        stop.set()
        shutdown()
        raise
    finally:
        shutdown()
    follow()
    if shown < len(results):
        progress.advance(len(results) - shown)  # a message lost with a worker: the count stays true
    written.close()
    return results

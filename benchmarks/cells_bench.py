"""How fast are all the cells of a release resolved, and how much memory do check and resolve
take? Against the real PyPI:

- warm: every cell of the release (default CMSSW_14_0_0) resolved with the user cache already
  filled (pages, metadata, sdist builds), in a child process (its peak RSS reported, and that
  of the second processes that search cells, :mod:`stackmeta.resolve.remote`, read from
  ``/proc`` just before each is stopped: getrusage's largest child also counts a child forked
  at its parent's size), and how many pages it fetched again (a page is trusted 10 minutes:
  a warm run an hour after the last fetches the release's pages again, as a user's rerun
  does; its metadata and builds stay cached);
- cold: the same with an empty page and metadata cache, the sdist builds still cached (the
  target excludes builds); as ``stackmeta resolve`` does it (its requests in flight, and the
  cold cells searched ahead, several at once: :mod:`stackmeta.resolve.warmup`);
- check: ``stackmeta check RELEASE`` in a child process, cold (an empty cache) then warm, its
  peak RSS; and one cell resolved (``--python``, linux-x86_64, the warm runs' cache), its peak RSS;
  each against the target (peak RSS under 200 MB);
- peer: ``uv pip compile --universal`` of the release's package names with the release's
  versions as preferences (uv prefers the versions of an existing output file), without what
  the record's home cell leaves out and from wheels only where the release's version cannot be
  installed there (uv would stop at an sdist that needs a compiler), its time, and the ratio.

    .venv/bin/python benchmarks/cells_bench.py [--lock CMSSW_14_0_0] [--skip-cold] [--cells K] [--repeat N]
        [--cache-dir DIR]

``--repeat N`` runs the warm resolve N times, each reported; the slowest run and the largest
peaks are held against the targets (a target met in one run of several is not met).
``--cells K`` resolves only the first K cells (sorted, as ``cells_for`` gives them);
``--cache-dir`` is the warm cache (default: the user cache folder). The warm line gives the
wall time and the CPU time (every thread, and apart every child process's), which compares
better on a busy machine.

Nothing is written to locks/: the record is copied into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RSS_TARGET_MB = 200

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from stackmeta import record
from stackmeta.cells import cells_for
from stackmeta.index import IndexClient
from stackmeta.index.cache import default_cache_dir
from stackmeta.index.installable import Builds
from stackmeta.commands.resolve import CELLS_JOBS
from stackmeta.resolve.cells import resolve_cells
from stackmeta.resolve import remote
searchers = []  # each search process's own peak RSS (MB), read just before it is stopped (Linux)
_close = remote.Remote.close
def close(self):
    try:
        with open(f"/proc/{self._proc.pid}/status") as f:
            searchers.extend(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except OSError:
        pass
    _close(self)
remote.Remote.close = close
from stackmeta.index.cache import Cache
fetched = []  # pages this process fetched from the index (a warm cache's pages older than 10 minutes)
_put_page = Cache.put_page
def put_page(self, *args, **kwargs):
    fetched.append(args[1])
    _put_page(self, *args, **kwargs)
Cache.put_page = put_page
locks, name, cache, count, warm = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rel = record.load_release(locks, name)
cells = cells_for(rel.python)[:count] if count else cells_for(rel.python)
def children():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime
start, cpu, cpu_children = time.perf_counter(), time.process_time(), children()
with IndexClient(cache_dir=Path(cache) if cache else None, jobs=CELLS_JOBS) as client:
    builds = Builds(client, folder=(Path(warm) if warm else default_cache_dir()) / "builds")
    matrix = resolve_cells(rel, client, cells, builds=builds)
took, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "cpu_seconds": cpu, "rss_mb": rss, "cells": len(matrix.results),
                  "searched": sum(r.same_as is None for r in matrix.results),
                  "children_cpu_seconds": children() - cpu_children,
                  "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "search_processes_rss_mb": max(searchers, default=0), "pages_fetched": len(fetched)}))
"""


def _child(locks: Path, name: str, cache: str, cells: int, warm: str) -> dict[str, float]:
    """Resolve in a child process with *cache* (the sdist builds from the warm cache *warm*)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(locks), name, cache, str(cells), warm],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measured(cmd: list[str]) -> tuple[float, int, float]:
    """Run *cmd* (its output dropped): seconds, exit code, and its own peak RSS in MB (``wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


def _runs(text: str) -> int:
    """--repeat's value: a number of runs from 1 to 20 (argparse prints the one-line error)."""
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of warm runs from 1 to 20")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lock", default="CMSSW_14_0_0")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--cells", type=int, default=0, metavar="K", help="only the first K cells")
    parser.add_argument("--cache-dir", default="", help="the warm cache (default: the user cache)")
    parser.add_argument("--python", default="3.9", help="the Python of the one-cell resolve")
    parser.add_argument("--repeat", type=_runs, default=1, metavar="N",
                        help="warm runs (each reported; the slowest and largest count for the targets)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        locks = tmp / "locks"
        locks.mkdir()
        for path in (ROOT / "locks").glob(f"{args.lock}.*"):
            shutil.copy(path, locks / path.name)
        runs = []
        for _ in range(args.repeat):
            warm = _child(locks, args.lock, args.cache_dir, args.cells, args.cache_dir)
            print(
                f"warm: {warm['cells']} cells ({warm['searched']} searched) in {warm['seconds']:.1f} s "
                f"(CPU {warm['cpu_seconds']:.1f} s, "
                f"its child processes' {warm['children_cpu_seconds']:.1f} s), "
                f"peak RSS {warm['rss_mb']:.0f} MB "
                f"(the search processes' {warm['search_processes_rss_mb']:.0f} MB; "
                f"the largest child's by getrusage {warm['children_rss_mb']:.0f} MB, which counts a forked "
                "child at its parent's size); "
                + (f"{warm['pages_fetched']} pages fetched again (cached more than 10 minutes before)"
                   if warm["pages_fetched"] else "every page as cached")
            )
            runs.append(warm)
        # the targets hold in every run, or they are not met: the slowest run and the largest peaks
        warm = {**max(runs, key=lambda r: r["seconds"]), "rss_mb": max(r["rss_mb"] for r in runs),
                "search_processes_rss_mb": max(r["search_processes_rss_mb"] for r in runs)}
        if len(runs) > 1:
            print(f"warm, {len(runs)} runs: slowest {warm['seconds']:.1f} s, largest peak RSS "
                  f"{warm['rss_mb']:.0f} MB (search processes {warm['search_processes_rss_mb']:.0f} MB)")
        rss: dict[str, float] = {
            "resolve, all cells (warm)": warm["rss_mb"],
            "resolve, all cells (warm), a search process": warm["search_processes_rss_mb"]}
        if not args.skip_cold:
            cold = _child(locks, args.lock, str(tmp / "cold-cache"), args.cells, args.cache_dir)
            print(f"cold (builds cached): {cold['seconds']:.1f} s, peak RSS {cold['rss_mb']:.0f} MB")
            rss["resolve, all cells (cold)"] = cold["rss_mb"]  # a resolve too: held to the target
        for label, cache in (("cold", tmp / "check-cache"), ("warm", tmp / "check-cache")):
            took, rc, peak = _measured([str(BIN / "stackmeta"), "check", args.lock, "--locks-dir", str(locks),
                                        "--cache-dir", str(cache), "--no-save", "--quiet", "--json"])
            print(f"check {label}: {took:.1f} s, peak RSS {peak:.0f} MB (exit {rc})")
            rss[f"check {label}"] = peak
        warm_cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []  # the warm runs' cache
        took, rc, peak = _measured([str(BIN / "stackmeta"), "resolve", args.lock, "--locks-dir", str(locks),
                                    "--python", args.python, "--platform", "linux-x86_64", "--quiet",
                                    *warm_cache])
        print(f"resolve, one cell ({args.python}, linux-x86_64, warm): {took:.1f} s, peak RSS {peak:.0f} MB "
              f"(exit {rc})")
        rss["resolve, one cell (warm)"] = peak
        over = [f"{what} {mb:.0f} MB" for what, mb in rss.items() if mb >= RSS_TARGET_MB]
        verdict = "met" if not over else "MISSED by " + ", ".join(over)
        print(f"peak RSS target < {RSS_TARGET_MB} MB: {verdict}")
        uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
        if uv is None:
            print("peer: no uv here")
            return 0
        from stackmeta import record
        from stackmeta.cells import home_cell
        from stackmeta.resolve.matrix import load_cells

        rel = record.load_release(locks, args.lock)
        # the same problem as the home cell's search: without what it leaves out (pip cannot
        # install it here: an sdist that needs a compiler, which uv would try to build and stop at)
        matrix = load_cells(locks, args.lock)
        home = home_cell(rel.python)
        found = next((r.nearest for r in matrix.results if r.cell == home), None) if matrix else None
        out = {o.name for o in found.omissions} if found is not None else set()
        pins = [(p.name, p.version) for p in rel.packages if p.version is not None and p.name not in out]
        # and, like the search, from wheels only where the release's version cannot be installed
        moved = found.deviations if found is not None else ()
        wheels_only = sorted({d.name for d in moved if "cannot be installed in this cell" in d.reason})
        print(f"peer: without the {len(out)} packages the {home} set leaves out, wheels only for "
              f"{', '.join(wheels_only) or 'none'}")
        (tmp / "in.txt").write_text("".join(f"{n}\n" for n, _ in pins))
        (tmp / "out.txt").write_text("".join(f"{n}=={v}\n" for n, v in pins))
        start = time.perf_counter()
        proc = subprocess.run(
            [
                uv,
                "pip",
                "compile",
                str(tmp / "in.txt"),
                "--universal",
                "-o",
                str(tmp / "out.txt"),
                "--python-version",
                f"{rel.python.major}.{rel.python.minor}",
                "--quiet",
                "--no-config",
                "--index-url",
                "https://pypi.org/simple",
                *[arg for name in wheels_only for arg in ("--only-binary", name)],
            ],
            capture_output=True,
            text=True,
        )
        uv_s = time.perf_counter() - start
        state = "ok" if proc.returncode == 0 else "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"peer: uv pip compile --universal (release versions preferred): {uv_s:.1f} s ({state})")
        if proc.returncode == 0:
            print(f"ratio warm / uv: {warm['seconds'] / uv_s:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

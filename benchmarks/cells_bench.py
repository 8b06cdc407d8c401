"""How fast are all the cells of a release resolved, and how much memory do check and resolve
take? Against the real PyPI:

- warm: every cell of the release (default CMSSW_14_0_0) resolved with the user cache already
  filled (pages, metadata, sdist builds), in a child process (its peak RSS reported);
- cold: the same with an empty page and metadata cache, the sdist builds still cached (the
  target excludes builds);
- check: ``stackmeta check RELEASE`` in a child process, its peak RSS;
- peer: ``uv pip compile --universal`` of the release's package names with the release's
  versions as preferences (uv prefers the versions of an existing output file), its time,
  and the ratio.

    .venv/bin/python benchmarks/cells_bench.py [--lock CMSSW_14_0_0] [--skip-cold]

Nothing is written to locks/: the record is copied into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from stackmeta import record
from stackmeta.cells import cells_for
from stackmeta.index import IndexClient
from stackmeta.index.cache import default_cache_dir
from stackmeta.index.installable import Builds
from stackmeta.resolve.cells import resolve_cells
locks, name, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rel = record.load_release(locks, name)
start = time.perf_counter()
with IndexClient(cache_dir=Path(cache) if cache else None) as client:
    builds = Builds(client, folder=default_cache_dir() / "builds")
    matrix = resolve_cells(rel, client, cells_for(rel.python), builds=builds)
took = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "rss_mb": rss, "cells": len(matrix.results),
                  "searched": sum(r.same_as is None for r in matrix.results)}))
"""


def _child(locks: Path, name: str, cache: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(locks), name, cache],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lock", default="CMSSW_14_0_0")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        locks = tmp / "locks"
        locks.mkdir()
        for path in (ROOT / "locks").glob(f"{args.lock}.*"):
            shutil.copy(path, locks / path.name)
        warm = _child(locks, args.lock, "")
        print(
            f"warm: {warm['cells']} cells ({warm['searched']} searched) in {warm['seconds']:.1f} s, "
            f"peak RSS {warm['rss_mb']:.0f} MB"
        )
        if not args.skip_cold:
            cold = _child(locks, args.lock, str(tmp / "cold-cache"))
            print(f"cold (builds cached): {cold['seconds']:.1f} s, peak RSS {cold['rss_mb']:.0f} MB")
        start = time.perf_counter()
        proc = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                BIN / "stackmeta",
                "check",
                args.lock,
                "--locks-dir",
                str(locks),
                "--quiet",
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        check_s = time.perf_counter() - start
        rss = int(proc.stderr.strip().splitlines()[-1]) / 1024
        print(f"check: {check_s:.1f} s, peak RSS {rss:.0f} MB (exit {proc.returncode})")
        uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
        if uv is None:
            print("peer: no uv here")
            return 0
        from stackmeta import record

        rel = record.load_release(locks, args.lock)
        pins = [(p.name, p.version) for p in rel.packages if p.version is not None]
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

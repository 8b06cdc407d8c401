"""How fast is ``stackmeta check``? Serve the CMSSW_14_0_0 snapshot on loopback and time, in one run:

- cold: the check with an empty cache, in a new process (the time of the check, not of the
  imports);
- warm: the same check again in that process (pages and metadata from the on-disk cache), and,
  once, as a new ``stackmeta check`` process (imports and record loading included);
- floor: the very requests the cold check made, fired with the same concurrency through the
  check's own transport (libcurl handles, one per thread, connections reused), bodies read,
  nothing else done (no parsing, no analysis);
- cold CLI: the whole ``stackmeta check`` command in a new process with an empty cache
  (imports and record loading included), to set against uv's whole command; stackmeta's
  modules are compiled to bytecode once before (as an installed package's are);
- uv: ``uv pip compile`` of a consistent variant of the same pins against the same server,
  ``--no-cache --no-config``, as many times as the check (median);
- pip: ``pip install --dry-run --report`` of that variant against the same server, without
  the machine's ``PIP_*`` settings (here PIP_FIND_LINKS would add a folder of wheels).

Fair both ways: the floor fires all the requests at once (it does not wait, as the check must,
for a page before its metadata or for metadata before the pages of the dependencies it names),
so it is a lower bound; uv resolves fewer pins than the check checks (the variant drops those it
could not install) but its time includes its process start, which the in-process cold time does
not: hence the cold CLI line as well.

The consistent variant is the record's "consistent" section when the resolver has written
one; otherwise the pins minus those the check reports as conflicting, not installable, sdist
only (pip and uv would build them: a build is not a resolution) or yanked; the script says
which it used. The server runs in its own process (tests/httpserver.py, which answers PEP 691
JSON to whoever asks for it, as pypi.org does).

    .venv/bin/python benchmarks/check_bench.py [--jobs 16] [--repeat 3] [--lock CMSSW_14_0_0]

Targets: cold within 1.5x of the floor and faster than uv; warm under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stackmeta import record  # noqa: E402
from stackmeta.check import closure  # noqa: E402
from stackmeta.check.report import CheckReport  # noqa: E402
from stackmeta.index import IndexClient  # noqa: E402
from stackmeta.index.http import LoggedRequest, Transport  # noqa: E402

SERVER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from tests.httpserver import StaticServer
with StaticServer(Path(sys.argv[1])) as s:
    print(s.url, flush=True)
    sys.stdin.read()
"""


def start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(folder), str(ROOT)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def timed_check(rel: record.Release, url: str, cache: Path, jobs: int) -> tuple[float, CheckReport,
                                                                                   list[LoggedRequest]]:
    start = time.perf_counter()
    with IndexClient(url, cache, jobs=jobs) as client:
        report = closure.run_check(rel, closure.default_target(rel), client)
        log = list(client.transport.log)
    return time.perf_counter() - start, report, log


def floor(log: list[LoggedRequest], jobs: int) -> float:
    """The logged requests through the check's own transport (the same HTTP stack, connection
    reuse and thread pool, ``jobs`` at once), bodies read, nothing else done."""
    transport = Transport(jobs=jobs)
    try:
        start = time.perf_counter()
        results = transport.map(lambda req: len(transport.get(req.url, headers=dict(req.headers)).body), log)
        elapsed = time.perf_counter() - start
    finally:
        transport.close()
    failed = [r for r in results.values() if not isinstance(r, int)]
    assert not failed, failed[:3]
    return elapsed


def variant(rel: record.Release, report: CheckReport, locks: Path) -> tuple[list[str], str]:
    doc = json.loads(record.record_path(locks, rel.lock_name).read_text())
    note = "no consistent section in the record yet"
    if "consistent" in doc and isinstance(doc["consistent"], dict) and doc["consistent"].get("pins"):
        pins = doc["consistent"]["pins"]
        items = sorted(pins.items() if isinstance(pins, dict) else [(p["name"], p["version"]) for p in pins])
        # the snapshot holds metadata for the versions the check read: the pins and its picks
        known = {(p.name, p.version) for p in (*report.pins, *report.picks)}
        moved = [f"{n}=={v}" for n, v in items if (canonicalize_name(n), str(v)) not in known]
        if not moved:
            return [f"{n}=={v}" for n, v in items], "the record's consistent section"
        note = (f"the record's consistent section moves {len(moved)} pins to versions whose metadata the "
                f"snapshot does not hold ({', '.join(moved[:5])}{', ...' if len(moved) > 5 else ''})")
    drop = {c.requirer for c in report.conflicts} | {p.name for p in report.not_installable}
    drop |= {p.name for p in report.sdist_only} | {p.name for p in report.yanked}
    drop |= {p.name for p in report.python_problems} | {u.name for u in report.unsatisfiable}
    drop |= {p.name for p in report.pins if p.requires_dist is None}
    target = closure.default_target(rel)
    deps: dict[str, set[str]] = {}
    for p in (*report.pins, *report.picks):
        active = set()
        for text in p.requires_dist or ():
            req = Requirement(text)
            if target.evaluate(req.marker, frozenset(p.extras)):
                active.add(canonicalize_name(req.name))
        deps[p.name] = active
    while True:  # drop, too, whatever needs (directly or through an unpinned pick) what was dropped
        more = {n for n, d in deps.items() if n not in drop and d & drop}
        if not more:
            break
        drop |= more
    kept = [f"{p.name}=={p.version}" for p in report.pins if p.name not in drop]
    return kept, (f"a consistent variant: the pins minus {len(report.pins) - len(kept)} that conflict, "
                  "cannot be installed, are sdist-only or yanked, or need one of those "
                  f"({note}): {len(kept)} pins")


def run_tool(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Time one command, whole process."""
    took, rc, out, _ = run_measured(cmd, env)
    return took, rc, out


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, float]:
    """Time one command, whole process, and its peak RSS in MB (its own, from ``wait4``)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return took, proc.returncode, text[-600:], usage.ru_maxrss / 1024


def worker(url: str, cache: Path, lock: str, jobs: int, locks_dir: Path) -> None:
    """In a new process: a cold check, then the same check warm; times as JSON on stdout."""
    rel = record.load_release(locks_dir, lock)
    cold, report, log = timed_check(rel, url, cache, jobs)
    warm, warm_report, warm_log = timed_check(rel, url, cache, jobs)
    assert warm_report.conflicts == report.conflicts
    print(json.dumps({"cold": cold, "warm": warm, "warm_requests": len(warm_log),
                      "log": [(r.url, r.headers) for r in log]}))


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--worker":
        wp = argparse.ArgumentParser()
        wp.add_argument("--worker", nargs=2)
        wp.add_argument("--lock")
        wp.add_argument("--jobs", type=int)
        wp.add_argument("--locks-dir", type=Path)
        w = wp.parse_args()
        worker(w.worker[0], Path(w.worker[1]), w.lock, w.jobs, w.locks_dir)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock", default="CMSSW_14_0_0")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--locks-dir", type=Path, default=ROOT / "locks")
    args = ap.parse_args()
    rel = record.load_release(args.locks_dir, args.lock)
    snap = ROOT / "tests" / "data" / "snapshots" / args.lock
    proc, base = start_server(snap)
    url = base + "/simple"
    work = Path(tempfile.mkdtemp(prefix="check-bench-"))

    # stackmeta's CLI runs as an installed package would: from bytecode (this machine sets
    # PYTHONDONTWRITEBYTECODE, which would compile every module again in each process, ~0.1 s),
    # compiled once, before any timing, into a folder of the run
    cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cli_env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "stackmeta")], env=cli_env,
                   check=True)

    def cli(cache: Path) -> list[str]:
        return [sys.executable, "-m", "stackmeta", "check", args.lock, "--locks-dir", str(args.locks_dir),
                "--index-url", url, "--cache-dir", str(cache), "--no-save", "--quiet", "--json"]

    try:
        colds, warms, floors, cold_clis, cold_rss = [], [], [], [], []
        for i in range(args.repeat):
            # each repeat in a new process: nothing remembered in memory from an earlier run
            cache = work / f"cache{i}"
            out = subprocess.run([sys.executable, __file__, "--worker", url, str(cache), "--lock", args.lock,
                                  "--jobs", str(args.jobs), "--locks-dir", str(args.locks_dir)],
                                 capture_output=True, text=True, check=True).stdout
            result = json.loads(out)
            colds.append(result["cold"])
            warms.append(result["warm"])
            log = [LoggedRequest(url=u, headers=tuple(tuple(h) for h in hs)) for u, hs in result["log"]]
            warm_log = result["warm_requests"]
            floors.append(floor(log, args.jobs))
            # the whole command as a user runs it (imports, record loading, empty cache), to set
            # against uv's whole command
            took, _, _, rss = run_measured(cli(work / f"clicold{i}"), env=cli_env)
            cold_clis.append(took)
            cold_rss.append(rss)
        _, report, _ = timed_check(rel, url, work / "cache0", args.jobs)
        pins, how = variant(rel, report, args.locks_dir)
        reqs = work / "requirements.in"
        reqs.write_text("\n".join(pins) + "\n")
        uv = [str(ROOT / ".venv" / "bin" / "uv"), "pip", "compile", str(reqs), "--index-url", url,
              "--python", sys.executable, "--python-version", "3.9", "--python-platform",
              "x86_64-manylinux_2_28", "--no-cache", "--no-config", "--quiet", "-o", str(work / "uv.txt")]
        pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(work / "pip.json"), "--index-url", url, "--no-cache-dir",
               "--python-version", "3.9", "--platform", "manylinux_2_28_x86_64", "--platform",
               "manylinux2014_x86_64", "--only-binary", ":all:", "--disable-pip-version-check",
               "-r", str(reqs)]
        # a new process, warm cache: imports included
        cli_t, cli_rc, _, warm_rss = run_measured(cli(work / "cache0"), env=cli_env)
        # uv as often as the check, each cold (--no-cache); the median against the check's median
        uv_runs = [run_tool(uv) for _ in range(args.repeat)]
        uv_t = statistics.median(t for t, _, _ in uv_runs)
        uv_rc, uv_err = max(rc for _, rc, _ in uv_runs), uv_runs[-1][2]
        # pip without the machine's PIP_* settings (PIP_FIND_LINKS would add a folder of wheels)
        pip_t, pip_rc, pip_err = run_tool(pip, env={k: v for k, v in os.environ.items()
                                                    if not k.startswith("PIP_")})
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    cold, warm, fl = statistics.median(colds), statistics.median(warms), statistics.median(floors)
    cold_cli = statistics.median(cold_clis)
    print(f"{args.lock}: {len(rel.packages)} packages, {len(log)} requests by a cold check, "
          f"{warm_log} by a warm one; jobs={args.jobs}; median of {args.repeat}, each in a new process")
    print(f"  cold check   {cold:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in colds)})")
    print(f"  warm check   {warm:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in warms)})  target < 0.5 s")
    print(f"  cold CLI     {cold_cli:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in cold_clis)}; "
          "a new stackmeta check process, empty cache, imports included)")
    print(f"  warm CLI     {cli_t:7.3f} s   (a new stackmeta check process, imports included; exit {cli_rc})")
    print(f"  peak RSS     cold CLI {statistics.median(cold_rss):.0f} MB (runs: "
          f"{', '.join(f'{r:.0f}' for r in cold_rss)}), warm CLI {warm_rss:.0f} MB (the snapshot's "
          "pages are small: benchmarks/cells_bench.py measures against the real PyPI)")
    print(f"  floor        {fl:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in floors)})")
    uv_list = ", ".join(f"{t:.3f}" for t, _, _ in uv_runs)
    print(f"  uv compile   {uv_t:7.3f} s   (runs: {uv_list}; whole process, --no-cache) exit {uv_rc}"
          + (f": {uv_err.strip()}" if uv_rc else ""))
    print(f"  pip dry-run  {pip_t:7.3f} s   exit {pip_rc}" + (f": {pip_err.strip()}" if pip_rc else ""))
    print(f"  uv and pip resolved {how}")
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"  cold / floor = {cold / fl:.2f} (target <= 1.5: {verdict(cold / fl <= 1.5)})   "
          f"cold / uv = {cold / uv_t:.2f} (target < 1: {verdict(cold < uv_t)})   "
          f"cold / pip = {cold / pip_t:.2f}   warm = {warm:.3f} s (target < 0.5 s: {verdict(warm < 0.5)})")
    print(f"  whole commands: cold CLI / uv = {cold_cli / uv_t:.2f}   "
          f"(uv resolved {len(pins)} pins, the check {len(rel.packages)})")


if __name__ == "__main__":
    main()

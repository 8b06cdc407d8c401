"""stackmeta check: can pip install a release's pins from an index, for its Python and platform?

With ``--platform all``, the laptop report (:mod:`stackmeta.check.platforms`): for each pin, whether
each of linux-x86_64, linux-aarch64, macos-x86_64, macos-arm64 and windows-amd64 has a wheel for
the Python (the release's, or ``--python``), only an sdist, or nothing, computed from the pages
the check fetched; per platform the share installable from wheels and the pins that block it.
With ``--python`` too, per pin the nearest version with a wheel, and whether the moved set stays
consistent. ``--format html --out FILE`` writes it as a self-contained page. The exit code is
still the check's, for the release's own platform.

Exit codes: 0 nothing blocks installing; 1 something blocks (a pin the index cannot serve, a
conflict between pins, a Requires-Python excluding the release's Python, an unpinned
dependency no version satisfies) — also any other error; 2 bad usage; 3 nothing found that
blocks, but some results are missing because the index failed (the report lists them).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from stackmeta import atomic, record
from stackmeta.check import closure
from stackmeta.check.report import CheckReport, PinStatus, require_known, require_reachable
from stackmeta.commands import common
from stackmeta.console import Output
from stackmeta.errors import UsageError
from stackmeta.index.client import PYPI, IndexClient
from stackmeta.target import LAPTOP_PLATFORMS, PLATFORMS

if TYPE_CHECKING:  # rich, the laptop report and the HTML page are imported when used
    from rich.table import Table

    from stackmeta.check import platforms

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_INCOMPLETE = 3
MAX_MISSING_ROWS = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "check", parents=[common], help="check a release's pins against a package index",
        description="Look every pin of a release up on a package index (project, version, yanked, files "
                    "usable for the target, sha256), follow every pin's Requires-Dist for the target, and "
                    "report what blocks 'pip install': conflicts, unpinned dependencies, Requires-Python. "
                    "The result is saved in the record's \"check\" section (not when results are missing; "
                    "not rewritten when only its timings changed). "
                    "Exit codes: 0 installable, 1 something blocks, 2 bad usage, 3 results missing (index "
                    "failures).",
    )
    p.add_argument("release", help="a lock name: CMSSW_14_0_0, CMSSW_10_6_0-py2")
    p.add_argument("--index-url", default=PYPI,
                   help="a PEP 503/691 index: https://..., or file://DIR or DIR of a snapshot "
                        f"(default: {PYPI})")
    p.add_argument("--python", help="the target Python (default: the release's, e.g. 3.9.14)")
    p.add_argument("--platform", choices=[*sorted(PLATFORMS), "all"],
                   help="the target platform (default: the platform of the release's first arch); "
                        f"'all': the laptop report over {', '.join(LAPTOP_PLATFORMS)}")
    p.add_argument("--format", choices=("text", "html"), default="text",
                   help="text on the terminal, or (with --platform all) a self-contained HTML page")
    p.add_argument("--out", type=Path, help="write the report (--format html) into this file, not stdout")
    p.add_argument("--cache-dir", type=Path, help="the on-disk cache (default: the user cache dir)")
    p.add_argument("--no-cache", action="store_true", help="use no on-disk cache")
    p.add_argument("--refresh", action="store_true", help="fetch project pages again even if cached")
    p.add_argument("--jobs", type=int, default=16, help="requests in flight at once (default: 16)")
    p.add_argument("--retries", type=int, default=4,
                   help="retries of a request on 429, 5xx, timeouts, connection errors (default: 4)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to connect, and seconds a transfer may go without a byte (whole seconds; "
                        "default: 30)")
    p.add_argument("--no-save", action="store_true", help="do not write the check section into the record")
    p.add_argument("--build-metadata", action="store_true",
                   help="for sdists whose PKG-INFO leaves the dependencies unknown, build the metadata "
                        "through PEP 517 in isolated environments (runs their build code; build "
                        "requirements from --index-url)")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> tuple[record.Release, Path]:
    return record.load_release(args.locks_dir, args.release), record.record_path(args.locks_dir, args.release)


def run(args: argparse.Namespace, output: Output) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if not 0 < args.timeout < math.inf:  # nan too
        raise UsageError(f"--timeout {args.timeout}: give a number of seconds above 0 (default: 30)")
    args.index_url = common.index_url(args.index_url)
    laptop = args.platform == "all"
    if args.format == "html" and not laptop:
        raise UsageError("--format html writes the laptop report: add --platform all")
    if args.out is not None and args.format != "html":
        raise UsageError("--out is for --format html")
    if args.format == "html" and args.out is None and output.json_mode:
        raise UsageError("--format html with --json: give --out FILE for the page (stdout carries the JSON)")
    if args.out is not None and args.out.is_dir():  # refused before any request, not after the check
        raise UsageError(f"--out {args.out} is a folder: give the page's file name, e.g. "
                         f"{args.out / (args.release + '.html')}")
    rel, path = _load(args)
    target = closure.default_target(rel, args.python, None if laptop else args.platform)
    cache_dir: Path | Literal[False] | None = False if args.no_cache else args.cache_dir
    matrix: platforms.PlatformMatrix | None = None
    with IndexClient(args.index_url, cache_dir, jobs=args.jobs, retries=max(0, args.retries),
                     timeout=args.timeout, page_max_age=0 if args.refresh else 600.0) as client:
        output.info(f"checking {rel.lock_name} ({len(rel.packages)} packages) for {target} "
                    f"against {client.index_url}")
        report, pages, metas = closure.fetch_and_check(rel, target, client, output.progress(),
                                                     build_metadata=args.build_metadata)
        require_reachable([p.error for p in report.pins if p.status is not PinStatus.NOT_PEP440],
                          f"nothing was saved in {path}")
        require_known(report.unknown_projects, len(report.from_pypi), client.index_url,
                      f"nothing was saved in {path}")
        if laptop:
            from stackmeta.check import platforms

            pins = closure.shipped_pins(rel, target)
            matrix = platforms.matrix(rel.lock_name, pins, target.python, pages,
                                      nearest=args.python is not None)
            if args.python is not None:
                matrix = platforms.check_moves(rel, pins, matrix, client, pages, metas, output.progress())
    # a check the index failed to answer in part does not replace the record's earlier one:
    # later steps (lock, resolve) read the files and dependencies from it
    saved = not args.no_save and not report.missing
    changed = saved and closure.save(report, path)
    if not saved and not args.no_save:
        output.warn(f"not saved in {path}: {len(report.missing)} results missing (index errors); "
                    "the record keeps its earlier check section: run again")
    code = EXIT_BLOCKED if report.blocking else EXIT_INCOMPLETE if report.incomplete else EXIT_OK
    if args.format == "html":
        assert matrix is not None
        from stackmeta.check import report_html

        page = report_html.render(report, matrix, verdict(report))
        if args.out is None:
            output.result(page)
        else:
            atomic.write_text(args.out, page)
            output.info(f"wrote {args.out}")
    if output.json_mode:
        data = {"exit_code": code, "blocking": report.blocking, "incomplete": report.incomplete,
                "saved": saved, "unchanged": saved and not changed, "report": report.to_json()}
        if matrix is not None:
            data["platforms"] = matrix.to_json()
        output.json(data)
        return code
    if args.format == "text":
        show(report, output)
        if matrix is not None:
            show_matrix(matrix, output)
    if changed:
        output.info(f"saved in {path} (section \"check\")")
    elif saved:
        output.info(f"unchanged: {path} (section \"check\") already says the same; not rewritten")
    return code


def verdict(report: CheckReport) -> str:
    n = len(report.pins)
    head = f"{report.lock_name} on Python {report.python} {report.platform}, {report.index_url}: "
    if report.blocking:
        parts = []
        if report.not_installable:
            parts.append(f"{len(report.not_installable)} not installable")
        if report.conflicts:
            parts.append(f"{len(report.conflicts)} conflicts")
        if report.python_problems:
            parts.append(f"{len(report.python_problems)} Requires-Python problems")
        if report.unsatisfiable:
            parts.append(f"{len(report.unsatisfiable)} unpinned dependencies nothing satisfies")
        text = f"NOT installable by pip as pinned ({', '.join(parts)})"
    elif report.incomplete:
        text = "nothing found that blocks, but results are missing"
    else:
        text = "pip can install every pin"
    extra = ""
    if report.incomplete and report.blocking:
        extra = f"; {len(report.missing)} results missing (index errors)"
    return (f"{head}{text}{extra}. {len(report.fine)}/{n} pins fine, "
            f"{len(report.unpinned)} unpinned dependencies.")


def _table(title: str, *columns: str) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", show_lines=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def show(report: CheckReport, output: Output) -> None:
    out = output.out
    style = "bold red" if report.blocking else "bold yellow" if report.incomplete else "bold green"
    out.print(verdict(report), style=style, markup=False)
    if report.missing:
        t = _table(f"Results missing: the index failed ({len(report.missing)})", "package", "error")
        for p in report.missing[:MAX_MISSING_ROWS]:
            t.add_row(p.spec, p.error or "")
        if len(report.missing) > MAX_MISSING_ROWS:
            t.add_row("...", f"and {len(report.missing) - MAX_MISSING_ROWS} more (all of them: --json)")
        out.print(t)
    if report.not_installable:
        t = _table(f"Not installable ({len(report.not_installable)})", "package", "status", "why")
        for p in report.not_installable:
            t.add_row(p.spec, p.status.value, "; ".join(p.notes))
        out.print(t)
    if report.conflicts:
        t = _table(f"Conflicts ({len(report.conflicts)})", "package", "requires", "release pins")
        for c in report.conflicts:
            who = f"{c.requirer}=={c.requirer_version}" + ("" if c.requirer_pinned else " (unpinned)")
            t.add_row(who, c.requirement, f"{c.dependency}=={c.pinned}")
        out.print(t)
    if report.unpinned:
        t = _table(f"Unpinned dependencies ({len(report.unpinned)}): pip picks them freely",
                   "dependency", "pip would pick", "required by")
        for u in report.unpinned:
            t.add_row(f"{u.name}{u.specifier}", u.picked or "NOTHING fits", "; ".join(u.required_by))
        out.print(t)
    if report.python_problems:
        t = _table(f"Requires-Python excludes {report.python} ({len(report.python_problems)})",
                   "package", "requires", "from")
        for pp in report.python_problems:
            t.add_row(f"{pp.name}=={pp.version}", pp.requires_python, pp.where)
        out.print(t)
    if report.sdist_only or report.unknown_dependencies or report.yanked:
        t = _table("Sdist only, unknown dependencies, yanked", "package", "what")
        for p in report.sdist_only:
            t.add_row(p.spec, "sdist only: pip builds it" + ("" if p.requires_dist is not None
                                                             else "; dependencies unknown"))
        for p in report.unknown_dependencies:
            if p.status is not PinStatus.SDIST_ONLY:
                t.add_row(p.spec, "; ".join(n for n in p.notes if n.startswith("dependencies")) or "unknown")
        for p in report.yanked:
            t.add_row(p.spec, f"yanked: {p.yanked_reason or 'no reason given'}")
        out.print(t)
    out.print(f"Fine: {len(report.fine)} of {len(report.pins)} pins (a usable wheel, dependencies known "
              f"and satisfied). {report.requests} requests in {report.seconds:.1f} s.", markup=False)


CELL_STYLE = {"wheel": "green", "sdist": "yellow"}


def cell_text(c: platforms.Cell) -> str:
    if c.nearest is not None:
        return f"{c.label} -> {c.nearest}"
    return c.label


def show_matrix(m: platforms.PlatformMatrix, output: Output) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    out = output.out
    t = Table(title=f"Wheels for Python {m.python} ({len(m.rows)} pins)", title_justify="left",
              title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    names = max((len(r.name) for r in m.rows), default=1)
    versions = max((len(r.version) for r in m.rows), default=1)
    t.add_column("package", overflow="fold", min_width=min(24, names))
    t.add_column("version", overflow="fold", min_width=min(8, versions))
    for p in m.platforms:  # "wheel", "sdist", "none" never folded
        t.add_column(p.replace("-", "\n", 1), overflow="fold", min_width=5)
    for r in m.rows:
        t.add_row(r.name, Text(r.version), *(Text(cell_text(c), style=CELL_STYLE.get(c.label, "red"))
                                             for c in (r.cells[p] for p in m.platforms)))
    out.print(t)
    out.print(f"Per platform, pins installable from wheels (Python {m.python}):", style="bold")
    for s in m.summaries:
        line = f"{s.platform}: {s.wheels}/{s.total} ({s.percent})"
        if s.sdist_only:
            line += f"; sdist only, pip builds them ({len(s.sdist_only)}): {', '.join(s.sdist_only)}"
        if s.nothing:
            line += f"; nothing installable ({len(s.nothing)}): {', '.join(s.nothing)}"
        out.print(line, markup=False)
    if not m.nearest:
        return
    out.print(f"Nearest versions with a wheel for Python {m.python}: does the moved set hold?", style="bold")
    for s in m.summaries:
        mv = s.moved
        if mv is None or mv.stays is None:
            ok = "results missing"
        elif mv.stays:
            ok = "consistent" if mv.consistent else "no new problem"
        else:
            ok = f"NOT consistent, {len(mv.problems)} new problem{'s' * (len(mv.problems) != 1)}"
        if mv is not None and mv.release_problems:
            ok += f" (and {len(mv.release_problems)} the release has as pinned)"
        line = f"{s.platform}: {len(mv.moves) if mv else 0} moves, {ok}"
        if mv and mv.moves:
            line += ": " + ", ".join(f"{n} {a} -> {b}" for n, a, b in mv.moves)
        if s.no_wheel_anywhere:
            line += f"; no version with a wheel: {', '.join(s.no_wheel_anywhere)}"
        out.print(line, markup=False)
        for problem in mv.problems if mv else ():
            out.print(f"    {problem}", markup=False)

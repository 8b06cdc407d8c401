"""Print the cell matrix of a release: each cell (Python x platform) x exact / moved / left out
(from the record's "cells" section), and, when asked, what real tools make of the metapackage:

    .venv/bin/python scripts/cell_matrix.py CMSSW_14_0_0 [--install] [--uv] [--pip] [--json]

--install  real pip installs the metapackage (built from the record; its requirements from
           pypi.org) into fresh venvs on this machine, for the cells this machine runs
           (linux-x86_64, the release's own Python and the newest here): "ok" when the installed
           versions are exactly the cell's pins, else how many differ
--uv       ``uv pip compile --python-platform P --python-version X`` of the metapackage, every
           cell: "ok" when it resolves to exactly the cell's pins, else the number of differences
--pip      ``pip install --dry-run --report --only-binary=:all: --platform ... --python-version ...``
           of the metapackage, every cell, the pure wheels stackmeta built offered by --find-links
           (pip evaluates markers for the machine it runs on, so its vendored packaging is given
           the cell's marker environment)

Each check talks to the real PyPI and can take minutes per cell (the install: tens of minutes for
a big release).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import celltools  # noqa: E402
from stackmeta.cells import Cell  # noqa: E402
from stackmeta.childenv import pip_environment  # noqa: E402
from stackmeta.resolve.matrix import CellMatrix, load_cells  # noqa: E402


def _env() -> dict[str, str]:
    env = pip_environment({k: v for k, v in os.environ.items() if not k.startswith("UV_")})
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _diff(outcome: celltools.Outcome, want: dict[str, str], tool: str) -> str:
    if outcome.failure:
        return "FAILED: " + outcome.last_line[:120]
    n = len(outcome.differences(want, tool))
    return "ok" if n == 0 else f"{n} differ"


def _install(python: Path, wheel: Path, want: dict[str, str], tmp: Path) -> str:
    venv_python = celltools.new_venv(python, tmp / "venv", _env())
    got = celltools.pip_install(venv_python, wheel, _env(), tmp)
    if got.failure:
        return _diff(got, want, "pip")
    tools = {"pip", "setuptools", "wheel", celltools.project_of(wheel)} - set(want)
    got = celltools.Outcome(pins={n: v for n, v in got.pins.items() if n not in tools})
    check = celltools.module_check(venv_python, wheel, _env(), tmp)
    return _diff(got, want, "pip") + ("" if check.returncode == 0 else ", check: drift")


def _uv(cell: Cell, wheel: Path, want: dict[str, str], tmp: Path) -> str:
    uv = celltools.find_uv()
    if uv is None:
        return "no uv"
    return _diff(celltools.uv_compile(uv, cell, wheel, tmp, _env()), want, "uv")


def _pip(cell: Cell, wheel: Path, want: dict[str, str], tmp: Path) -> str:
    return _diff(celltools.pip_resolve(cell, wheel, tmp, _env()), want, "pip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release")
    parser.add_argument("--locks-dir", type=Path, default=ROOT / "locks")
    parser.add_argument("--install", action="store_true")
    parser.add_argument("--uv", action="store_true")
    parser.add_argument("--pip", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    matrix: CellMatrix | None = load_cells(args.locks_dir, args.release)
    if matrix is None:
        print(f"{args.release} has no cells: run 'stackmeta resolve {args.release}'", file=sys.stderr)
        return 1
    minors = sorted({c.python for c in matrix.cells})
    here = {minors[0], minors[-1]}
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        wheel = None
        if args.install or args.uv:
            wheel = celltools.metapackage_wheel(args.locks_dir, args.release, matrix, tmp)
        for r in matrix.results:
            c = matrix.counts(r.cell)
            row = {"cell": r.cell.name, **c, "failure": r.failure or None}
            want = {} if r.nearest is None else {str(n): str(v) for n, v in r.nearest.pins}
            if r.nearest is not None:
                python = celltools.python_for(r.cell.python_version)
                if (
                    args.install
                    and wheel is not None
                    and r.cell.platform == "linux-x86_64"
                    and r.cell.python in here
                    and python is not None
                ):
                    row["installed"] = _install(python, wheel, want, tmp)
                if args.uv and wheel is not None and r.cell.python[0] == 3:
                    row["uv"] = _uv(r.cell, wheel, want, tmp)
                if args.pip and wheel is not None and r.cell.python[0] == 3:
                    row["pip"] = _pip(r.cell, wheel, want, tmp)
            rows.append(row)
            if not args.json:
                print(_line(row), flush=True)
    if args.json:
        print(json.dumps({"release": args.release, "cells": rows}, indent=1))
    return 0


def _line(row: dict[str, object]) -> str:
    if row["failure"]:
        return f"{row['cell']:<22} no consistent set: {row['failure']}"
    text = (
        f"{row['cell']:<22} exact {row['exact']:>3}  moved {row['moved']:>2}  left out {row['left_out']:>2}"
        f"  added {row['added']:>2}"
    )
    for key in ("installed", "uv", "pip"):
        if key in row:
            text += f"  {key}: {row[key]}"
    return text


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # a reader that went away (| head): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(141)

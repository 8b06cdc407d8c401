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
           of the cell's pins, every cell, the pure wheels stackmeta built offered by --find-links
           (pip evaluates markers for the machine it runs on, so it is given the cell's pins)

Each check talks to the real PyPI and can take minutes per cell (the install: tens of minutes for
a big release).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stackmeta import record  # noqa: E402
from stackmeta.cells import Cell  # noqa: E402
from stackmeta.childenv import pip_environment  # noqa: E402
from stackmeta.index.cache import default_cache_dir  # noqa: E402
from stackmeta.package import builder, metapackage  # noqa: E402
from stackmeta.resolve.cells import CellMatrix, load_cells  # noqa: E402
from stackmeta.resolve.nearest import load_nearest  # noqa: E402
from stackmeta.target import UV_PLATFORMS, platform_tags  # noqa: E402

PYPI = "https://pypi.org/simple"
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    import os

    env = pip_environment({k: v for k, v in os.environ.items() if not k.startswith("UV_")})
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _diff(got: dict[str, str], want: dict[str, str]) -> str:
    n = sum(got.get(k) != want.get(k) for k in set(got) | set(want))
    return "ok" if n == 0 else f"{n} differ"


def _install(python: Path, wheel: Path, want: dict[str, str], tmp: Path) -> str:
    venv = tmp / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", venv], check=True, env=_env())
    project = wheel.name.split("-")[0].replace("_", "-")
    proc = subprocess.run(
        [
            venv / "bin/python",
            "-m",
            "pip",
            "install",
            "-q",
            f"{project}=={wheel.name.split('-')[1]}",
            "--find-links",
            wheel.parent,
            "--index-url",
            PYPI,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        return "FAILED: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    listed = subprocess.run(
        [venv / "bin/python", "-m", "pip", "list", "--format=json"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    got = {_norm(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    for tool in ("pip", "setuptools", "wheel", project):
        if tool not in want:
            got.pop(tool, None)
    check = subprocess.run(
        [venv / "bin/python", "-m", project.replace("-", "_"), "check"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    return _diff(got, want) + ("" if check.returncode == 0 else ", check: drift")


def _uv(cell: Cell, wheel: Path, want: dict[str, str], tmp: Path) -> str:
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if uv is None:
        return "no uv"
    req = tmp / "in.txt"
    project = wheel.name.split("-")[0].replace("_", "-")
    req.write_text(f"{project}=={wheel.name.split('-')[1]}\n")
    links = ["--find-links", str(wheel.parent)]
    wheels = default_cache_dir() / "builds" / "wheels"
    if wheels.is_dir():
        links += ["--find-links", str(wheels)]
    proc = subprocess.run(
        [
            uv,
            "pip",
            "compile",
            str(req),
            "--python-platform",
            UV_PLATFORMS[cell.platform],
            "--python-version",
            cell.python_version,
            "--index-url",
            PYPI,
            *links,
            "--no-header",
            "--no-annotate",
            "--quiet",
            "--no-config",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return "FAILED: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    got = {}
    for line in proc.stdout.splitlines():
        if "==" in line and not line.startswith("#"):
            n, v = line.strip().split("==", 1)
            got[_norm(n)] = v.split(";")[0].strip()
    got.pop(project, None)
    return _diff(got, want)


def _pip(cell: Cell, want: dict[str, str], tmp: Path) -> str:
    req = tmp / "req.txt"
    req.write_text("".join(f"{n}=={v}\n" for n, v in sorted(want.items())))
    report = tmp / "report.json"
    plat = [a for t in platform_tags(cell.platform) for a in ("--platform", t)]
    wheels = default_cache_dir() / "builds" / "wheels"
    links = ["--find-links", str(wheels)] if wheels.is_dir() else []
    proc = subprocess.run(
        [
            BIN / "python",
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--report",
            str(report),
            "--only-binary=:all:",
            *plat,
            "--python-version",
            cell.python_version,
            "--implementation",
            "cp",
            "-r",
            str(req),
            "--index-url",
            PYPI,
            *links,
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return "FAILED: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
    got = {
        _norm(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    return _diff(got, want)


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
    rel = record.load_release(args.locks_dir, args.release)
    minors = sorted({c.python for c in matrix.cells})
    here = {minors[0], minors[-1]}
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        wheel = None
        if args.install or args.uv:
            project = metapackage.project(
                rel, load_nearest(args.locks_dir, args.release), metapackage.Options(), matrix
            )
            built = builder.build(project, tmp / "dist", work_dir=tmp / "build", sdist=False)
            wheel = next(p for p in built.files if p.name.endswith(".whl"))
        for r in matrix.results:
            c = matrix.counts(r.cell)
            row = {"cell": r.cell.name, **c, "failure": r.failure or None}
            want = {} if r.nearest is None else {str(n): str(v) for n, v in r.nearest.pins}
            if r.nearest is not None:
                python = sorted(
                    (Path.home() / ".pyenv/versions").glob(f"{r.cell.python_version}.*/bin/python")
                )
                if (
                    args.install
                    and wheel is not None
                    and r.cell.platform == "linux-x86_64"
                    and r.cell.python in here
                    and python
                ):
                    row["installed"] = _install(python[-1], wheel, want, tmp)
                if args.uv and wheel is not None and r.cell.python[0] == 3:
                    row["uv"] = _uv(r.cell, wheel, want, tmp)
                if args.pip and r.cell.python[0] == 3:
                    row["pip"] = _pip(r.cell, want, tmp)
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
    sys.exit(main())

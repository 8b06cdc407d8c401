"""Tiny real distributions for tests, built with setuptools through ``build`` (offline: no
isolation, the test environment's setuptools), cached per test session."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dist:
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def build_project(
    workdir: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (),
    requires_python: str | None = None,
    sdist: bool = False,
) -> list[Dist]:
    """Build *name* *version* (a one-module project) into ``workdir/dist``: the wheel, and
    the sdist too when asked. Returns the built files."""
    module = name.replace("-", "_").lower()
    src = workdir / "src" / f"{module}-{version}"
    (src / module).mkdir(parents=True, exist_ok=True)
    (src / module / "__init__.py").write_text(f'__version__ = "{version}"\n')
    deps = ", ".join(f'"{r}"' for r in requires)
    rp = f'requires-python = "{requires_python}"\n' if requires_python else ""
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{version}"
        dependencies = [{deps}]
        """) + rp + textwrap.dedent(f"""\

        [tool.setuptools]
        packages = ["{module}"]
        """))
    out = workdir / "dist"
    kinds = ["--wheel"] + (["--sdist"] if sdist else [])
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", *kinds, "--outdir", str(out), str(src)],
        check=True, capture_output=True,
    )
    stem = f"{module}-{version}"
    return sorted(
        (Dist(p) for p in out.iterdir() if p.name.lower().startswith(stem.lower())),
        key=lambda d: d.filename,
    )

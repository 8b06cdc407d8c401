"""The metapackage of a release: a standard project generated from the record, no I/O here.

:func:`project` turns a release (the record's export section) and its nearest consistent
set into the files of a setuptools project: ``pyproject.toml`` (PEP 621 metadata, the nearest
set's exact pins as dependencies), ``setup.cfg`` (only the wheel's Python tag), a
``README.md`` that becomes the long description (every deviation, addition and omission with
its reason, and which packages CMS patches), and a small module (``cms_analysis_stack`` for
the project ``cms-analysis-stack``) whose package data holds the release data, so that
``python -m cms_analysis_stack [check]`` works on the release's own Python (2.7 included).
:mod:`stackmeta.package.builder` writes the files and builds them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import tomli_w
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta import cells as laptop_cells
from stackmeta.errors import BuildError, UsageError
from stackmeta.record import BuildKind, Release
from stackmeta.release import parse_release, release_version
from stackmeta.resolve.matrix import CellMatrix
from stackmeta.resolve.nearest import NearestSet

DEFAULT_NAME = "cms-analysis-stack"
LICENSE = "Apache-2.0"
# The timestamp of every file in the sdist and wheel when the release name carries no date:
# 1980-01-01T00:00:00Z, the earliest time a ZIP file can hold. Same record, same bytes.
DEFAULT_EPOCH = 315532800
# A metapackage may leave out at most this share of the release's packages (the ones pip cannot
# install): more means the wrong index (a typo: every project a 404) or a broken resolve, and
# a version published on PyPI can never be published again. `--force` builds it anyway.
MAX_LEFT_OUT = 0.20
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """What the maintainer may override on the command line."""

    name: str = DEFAULT_NAME
    version: str | None = None  # default: from the release name
    requires_python: str | None = None  # default: ==<major>.<minor>.* of the release's Python


@dataclass(frozen=True, kw_only=True, slots=True)
class Project:
    """A generated metapackage project: its identity and its files (path -> text)."""

    name: NormalizedName
    version: Version
    module: str  # the import name: cms_analysis_stack
    requires_python: SpecifierSet
    python_tag: str  # py2 / py3: the wheel's tag
    source_date_epoch: int
    dependencies: tuple[Requirement, ...]
    files: tuple[tuple[str, str], ...]  # sorted (relative posix path, text)

    @property
    def sdist_name(self) -> str:
        return f"{self.module}-{self.version}.tar.gz"

    @property
    def wheel_name(self) -> str:
        return f"{self.module}-{self.version}-{self.python_tag}-none-any.whl"


def module_name(project_name: str) -> str:
    """'cms-analysis-stack' -> 'cms_analysis_stack' (the import name)."""
    return canonicalize_name(project_name).replace("-", "_")


def source_date_epoch(rel: Release) -> int:
    """The timestamp of every archived file: the build date of an integration release
    (CMSSW_14_0_X_2024-10-13-0000), else :data:`DEFAULT_EPOCH`."""
    try:
        parsed = parse_release(rel.release)
    except UsageError:
        return DEFAULT_EPOCH
    if parsed.date is None:
        return DEFAULT_EPOCH
    when = datetime.strptime(parsed.date, "%Y%m%d%H%M").replace(tzinfo=UTC)
    return int(when.timestamp())


def distribution_name(release: str, name: str = DEFAULT_NAME) -> str:
    """The distribution a release's metapackage is published as: *name* for a release
    (``cms-analysis-stack==13.0.7`` is CMSSW_13_0_7 and nothing else), ``<name>-<flavour>``
    for a flavour of it (CMSSW_12_4_21_HLT_patch1: ``cms-analysis-stack-hlt==12.4.21.post1``).
    A tag of a release's build (CMSSW_11_1_0-tool-conf) reads like the release it names. A
    name given with --name other than the default is taken as it is (a group's baseline)."""
    if name != DEFAULT_NAME:
        return name
    try:
        flavour = parse_release(release).flavour
    except UsageError:
        return name
    return name if flavour is None else f"{name}-{canonicalize_name(flavour)}"


def requirements(nearest: NearestSet) -> tuple[Requirement, ...]:
    """The metapackage's Requires-Dist: one ``name==version`` per pin, nothing else."""
    return tuple(Requirement(f"{name}=={version}") for name, version in nearest.pins)


def refuse_thin(rel: Release, nearest: NearestSet, name: str | None = None) -> None:
    """BuildError when the nearest set pins nothing, or leaves out more than
    :data:`MAX_LEFT_OUT` of the release's packages that CMS builds from PyPI sources (those
    CMS builds from git or elsewhere may well not be on the index)."""
    shipped = {p.name for p in rel.packages if p.build is BuildKind.PYPI}
    left_out = sorted(shipped - set(nearest.pin_map))
    what = name or rel.release
    if not nearest.pins:
        raise BuildError(f"{what}: resolved against {nearest.index_url}, the nearest set pins nothing: a "
                         "metapackage without requirements is not built; resolve against the right "
                         "--index-url, or build anyway with --force")
    if shipped and len(left_out) > MAX_LEFT_OUT * len(shipped):
        some = ", ".join(left_out[:3]) + (", ..." if len(left_out) > 3 else "")
        raise BuildError(
            f"{what}: resolved against {nearest.index_url}, the nearest set leaves out {len(left_out)} of "
            f"the release's {len(shipped)} packages from PyPI ({some}), more than {MAX_LEFT_OUT:.0%}: not "
            "built; resolve against the right --index-url, or build anyway with --force"
        )


def cell_requirements(matrix: CellMatrix, project_name: str) -> tuple[Requirement, ...]:
    """The Requires-Dist of a metapackage over cells: per package one plain line when it has one
    version in every cell, else one line per version with the marker of its cells; then the
    refusal outside every cell (:func:`stackmeta.cells.unsupported_requirement`, also for a
    cell with no consistent set)."""
    out = [Requirement(f"{n}=={v}" + (f" ; {m}" if m else "")) for n, v, m in matrix.requirement_lines()]
    guard = Requirement(laptop_cells.unsupported_requirement(project_name, matrix.cells))
    failed = laptop_cells.marker(matrix.failed, matrix.cells) if matrix.failed else None
    if failed is not None:
        guard = Requirement(f"{guard.name}{guard.specifier} ; ({guard.marker}) or ({failed})")
    out.append(guard)
    return tuple(out)


def identity(rel: Release, options: Options = Options()) -> tuple[NormalizedName, Version, SpecifierSet]:
    """The metapackage's name, version and Requires-Python from *options*, or UsageError (cheap:
    a command calls it to refuse bad options before any slow work)."""
    if not _PROJECT_NAME.match(options.name):
        raise UsageError(f"--name {options.name!r} is not a valid project name: use letters, digits, '-'")
    name = canonicalize_name(distribution_name(rel.release, options.name))
    version = release_version(rel.release, options.version) if options.version else rel.metapackage_version
    if version is None:
        raise UsageError(
            f"{rel.release} is not a CMSSW release name: give the metapackage version with --version")
    py = rel.python
    if options.requires_python is not None:
        try:
            requires_python = SpecifierSet(options.requires_python)
        except InvalidSpecifier:
            raise UsageError(
                f"--requires-python {options.requires_python!r} is not a version specifier: "
                "use e.g. '==3.9.*' or '>=3.9'"
            ) from None
    else:
        requires_python = SpecifierSet(f"=={py.major}.{py.minor}.*")
    return name, version, requires_python


def project(rel: Release, nearest: NearestSet, options: Options = Options(),
            matrix: CellMatrix | None = None) -> Project:
    """The metapackage project of *rel* pinning *nearest*, or with *matrix* every cell's set
    (markers; Requires-Python covers the cells unless *options* says otherwise)."""
    name, version, requires_python = identity(rel, options)
    py = rel.python
    deps = requirements(nearest) if matrix is None else cell_requirements(matrix, name)
    if matrix is not None and options.requires_python is None:
        requires_python = laptop_cells.requires_python(matrix.cells)
    module = module_name(name)
    data = release_data(rel, nearest, name=name, version=version)
    text = readme(rel, nearest, name=name, version=version)
    if matrix is not None:
        data["cells"] = cells_data(matrix)
        data["requires_python"] = str(requires_python)
        text = text.replace("\n## Deviations from the release\n", "\n" + matrix_readme(matrix)
                            + "\n## Deviations from the release\n", 1)
    files = {
        "pyproject.toml": _pyproject(rel, name, version, requires_python, deps, module, matrix),
        "setup.cfg": f"[bdist_wheel]\npython_tag = py{py.major}\n",
        "README.md": text,
        f"src/{module}/__init__.py": _template("stack_module.py.in"),
        f"src/{module}/__main__.py": _MAIN,
        f"src/{module}/release.json": json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True) + "\n",
    }
    return Project(
        name=name,
        version=version,
        module=module,
        requires_python=requires_python,
        python_tag=f"py{py.major}",
        source_date_epoch=source_date_epoch(rel),
        dependencies=deps,
        files=tuple(sorted(files.items())),
    )


_MAIN = '''\
"""python -m <this package> [check [--json] [--strict]]: see the package's __init__."""
from __future__ import absolute_import

import sys

from . import main

sys.exit(main(sys.argv[1:]))
'''


def _template(name: str) -> str:
    return resources.files("stackmeta.package").joinpath("templates", name).read_text("utf-8")


def _pyproject(
    rel: Release, name: str, version: Version, requires_python: SpecifierSet,
    deps: tuple[Requirement, ...], module: str, matrix: CellMatrix | None = None,
) -> str:
    py = rel.python
    minors = sorted({c.python_version for c in matrix.cells}, key=Version) if matrix else [
        f"{py.major}.{py.minor}"]
    classifiers = [
        "Development Status :: 5 - Production/Stable",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent" if matrix else "Operating System :: POSIX :: Linux",
        "Programming Language :: Python",
        f"Programming Language :: Python :: {py.major}",
        *(f"Programming Language :: Python :: {m}" for m in minors),
        "Topic :: Scientific/Engineering :: Physics",
    ]
    if py.major == 3:
        classifiers.append("Programming Language :: Python :: 3 :: Only")
    arch = rel.arches[0] if rel.arches else ""
    urls = {
        "Homepage": "https://cms-sw.github.io/",
        "Release": f"https://github.com/cms-sw/cmssw/releases/tag/{rel.release}",
    }
    if arch:
        urls["Source"] = f"https://github.com/cms-sw/cmsdist/tree/REL/{rel.release}/{arch}"
    doc: dict[str, Any] = {
        "build-system": {"requires": ["setuptools>=77"], "build-backend": "setuptools.build_meta"},
        "project": {
            "name": name,
            "version": str(version),
            "description": _description(rel),
            "readme": {"file": "README.md", "content-type": "text/markdown"},
            "requires-python": str(requires_python),
            "license": LICENSE,
            "keywords": ["CMS", "CMSSW", "HEP", "lock", "metapackage"],
            "classifiers": classifiers,
            "dependencies": [str(r) for r in deps],
            "urls": urls,
        },
        "tool": {
            "setuptools": {
                "packages": [module],
                "package-dir": {"": "src"},
                "include-package-data": False,
                "package-data": {module: ["release.json"]},
                "zip-safe": False,
            },
        },
    }
    return tomli_w.dumps(doc)


def _description(rel: Release) -> str:
    arches = ", ".join(rel.arches) or "no arch"
    return f"The Python stack of {rel.release} ({arches}, Python {rel.python}) as pins pip accepts"


def release_data(rel: Release, nearest: NearestSet, *, name: str, version: Version) -> dict[str, Any]:
    """What the module's ``release.json`` holds (read by ``python -m <module>``)."""
    differences = nearest.to_json()  # deviations, additions, omissions as the record keeps them
    return {
        "project": name,
        "version": str(version),
        "release": rel.release,
        "arches": list(rel.arches),
        "python": str(rel.python),
        "target": {"python": str(nearest.python), "platform": nearest.platform},
        "index_url": nearest.index_url,
        "rule": nearest.rule,
        "pins": {n: str(v) for n, v in nearest.pins},
        "release_versions": {p.name: p.version_written for p in rel.packages},
        **{key: differences[key] for key in ("deviations", "additions", "omissions")},
        "patched": {p.name: list(p.patches) for p in rel.packages if p.patched},
    }


def cells_data(matrix: CellMatrix) -> dict[str, Any]:
    """Per cell what the module's ``release.json`` says of it: its pins and differences from the
    release, or why it has no set."""
    out: dict[str, Any] = {}
    for r in matrix.results:
        if r.nearest is None:
            out[r.cell.name] = {"failure": r.failure}
            continue
        n = r.nearest.to_json()
        out[r.cell.name] = {"pins": n["pins"], "deviations": n["deviations"], "additions": n["additions"],
                            "omissions": n["omissions"],
                            "target": {"python": n["python"], "platform": n["platform"]}}
    return out


def matrix_readme(matrix: CellMatrix) -> str:
    """The README's matrix: cells x exact / moved / left out (and added)."""
    rows = []
    for r in matrix.results:
        c = matrix.counts(r.cell)
        if r.nearest is None:
            rows.append((r.cell.python_version, r.cell.platform, "-", "-", "-", "-",
                         f"no consistent set: {r.failure}"))
            continue
        moved = ", ".join(f"{d.name} {d.release_version}->{d.version}" for d in r.nearest.deviations)
        left = ", ".join(o.name for o in r.nearest.omissions)
        notes = "; ".join(x for x in (f"moved: {moved}" if moved else "", f"left out: {left}" if left else "")
                          if x)
        rows.append((r.cell.python_version, r.cell.platform, str(c["exact"]), str(c["moved"]),
                     str(c["left_out"]), str(c["added"]), notes or "exactly the release"))
    lines = ["## The cells: where it installs, and how far from the release", "",
             "One wheel for every cell below (CPython minor x laptop platform): its requirements carry "
             "environment markers, so pip picks exactly one pin per package in each cell. Outside "
             "every cell (another OS or machine, e.g. linux-ppc64le; a Python outside Requires-Python) "
             "pip refuses: the requirement `...-has-no-cell-for-this-platform<0` cannot "
             "be met. `python -m ... ` on an installed stack says which cell it is in.", ""]
    lines += _table(("Python", "platform", "exact", "moved", "left out", "added", "notes"), rows)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, empty: str = "None.") -> list[str]:
    """A markdown table of *rows* (every cell escaped), or the line *empty* when there are none."""
    if not rows:
        return [empty]
    return [f"| {' | '.join(columns)} |", f"|{' --- |' * len(columns)}",
            *(f"| {' | '.join(_cell(cell) for cell in row)} |" for row in rows)]


def readme(rel: Release, nearest: NearestSet, *, name: str, version: Version) -> str:
    """The long description: what the metapackage pins and everything that differs."""
    py = rel.python
    arches = ", ".join(f"`{a}`" for a in rel.arches) or "none recorded"
    shipped = {p.name: p for p in rel.packages}
    lines = [
        f"# {name} {version}",
        "",
        f"The Python stack of the CMS software release **{rel.release}** "
        f"(arch {arches}, Python {py}), as exact pins that pip's resolver accepts.",
        "",
        "```",
        f"pip install {name}=={version}",
        f"python -m {module_name(name)}          # release, arch, Python, pins, deviations",
        f"python -m {module_name(name)} check    # compare this environment with the release",
        "```",
        "",
        f"- Release: {rel.release}; arch(es): {arches}; Python: {py}",
        f"- Resolved for Python {nearest.python} on {nearest.platform} against {nearest.index_url}",
        f"- {len(nearest.pins)} pins: {len(rel.packages)} packages ship in the release; "
        f"{len(nearest.deviations)} pinned at another version, {len(nearest.additions)} added, "
        f"{len(nearest.omissions)} left out",
        "",
        "The release itself is not consistent by pip's rules (CMS installs each package with "
        "`--no-deps`). This metapackage pins the nearest consistent set: the release's exact "
        "version wherever pip allows it. Which pin moves when two conflict: "
        f"{nearest.rule}.",
        "",
        "## Deviations from the release",
        "",
    ]
    lines += _table(("package", "release", "pinned here", "why"),
                    [(d.name, d.release_version,
                      f"{d.version} (new major version)" if d.new_major else str(d.version), d.reason)
                     for d in nearest.deviations],
                    empty="None: every pin is the release's version.")
    lines += ["", "## Added: dependencies the release does not ship", ""]
    lines += _table(("package", "pinned here", "required by"),
                    [(a.name, str(a.version), "; ".join(a.required_by)) for a in nearest.additions])
    lines += ["", "## Left out: shipped packages pip cannot install from the index", ""]
    lines += _table(("package", "release", "why"),
                    [(o.name, o.release_version, o.reason) for o in nearest.omissions])
    patched = [p for p in sorted(rel.packages, key=lambda p: p.name) if p.patched]
    lines += ["", "## Patched by CMS", ""]
    if patched:
        lines += ["CMS builds these packages with its own patches: the index's file of the same "
                  "version is not the same bits.", ""]
    lines += _table(("package", "release", "patches"),
                    [(p.name, p.version_written, ", ".join(p.patches)) for p in patched])
    lines += ["", "## Pins", ""]
    lines += _table(("package", "pinned here", "release"),
                    [(pin_name, str(pin_version),
                      shipped[pin_name].version_written if pin_name in shipped else "not shipped")
                     for pin_name, pin_version in nearest.pins])
    lines.append("")
    return "\n".join(lines)


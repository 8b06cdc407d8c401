"""A release manifest from ``pip freeze`` or ``pip list --format=json`` output (pure parsing).

``name==version`` lines become pins. ``name @ url`` lines become packages without a pinned
version (built from that URL) and a problem; ``-e`` lines and other options are reported
as problems and skipped. A line that cannot be read stops with its file:line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from stackmeta.errors import ManifestError
from stackmeta.manifest.walk import build_kind
from stackmeta.record import BuildKind, Package, Problem

_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*===?\s*([^\s;]+)$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Frozen:
    packages: tuple[Package, ...]
    problems: tuple[Problem, ...]


def parse_freeze(text: str, path: str, *, arches: tuple[str, ...] = ()) -> Frozen:
    """Read *text* (the output of pip freeze or pip list --format=json) named *path*."""
    if text.lstrip().startswith("["):
        return _parse_json(text, path, arches)
    packages: dict[str, Package] = {}
    problems: list[Problem] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        where = f"{path}:{lineno}"
        if not line:
            continue
        if line.startswith(("-e ", "--editable")):
            problems.append(
                Problem(
                    kind="editable",
                    message=f"editable install {line[2:].strip()!r} is not a release package: skipped",
                    where=where,
                )
            )
            continue
        if line.startswith("-"):
            problems.append(Problem(kind="option", message=f"pip option {line!r} skipped", where=where))
            continue
        pin = _PIN.match(line)
        if pin:
            pkg = _package(pin.group(1), pin.group(2), where, problems, arches)
        else:
            pkg = _requirement(line, where, problems, arches)
        if pkg.name in packages:
            problems.append(
                Problem(
                    kind="duplicate-pin",
                    message=f"{pkg.display_name} listed twice: the last wins",
                    where=where,
                )
            )
        packages[pkg.name] = pkg
    return Frozen(packages=tuple(sorted(packages.values(), key=lambda p: p.name)), problems=tuple(problems))


def _requirement(line: str, where: str, problems: list[Problem], arches: tuple[str, ...]) -> Package:
    """A line that is not plain 'name==version': 'name @ url', or a pin with markers or spaces."""
    try:
        req = Requirement(line)
    except InvalidRequirement:
        raise ManifestError(
            f"{where}: cannot read {line!r}: not 'name==version' nor 'name @ url': "
            "give the output of pip freeze"
        ) from None
    if not req.url:
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "==="):
            raise ManifestError(
                f"{where}: {line!r} is not 'name==version': give the output of pip freeze"
            )
        return _package(req.name, specs[0].version, where, problems, arches)
    problems.append(
        Problem(
            kind="url-requirement",
            message=f"{req.name} is installed from {req.url}: no version to pin",
            where=where,
        )
    )
    kind = build_kind(req.url)
    return Package(
        rpm="",
        name=canonicalize_name(req.name),
        display_name=req.name,
        version_written="",
        version=None,
        build=kind if kind is not BuildKind.PYPI else BuildKind.URL,
        source_url=req.url,
        arches=arches,
    )


def _package(
    name: str, written: str, where: str, problems: list[Problem], arches: tuple[str, ...]
) -> Package:
    try:
        version: Version | None = Version(written)
    except InvalidVersion:
        version = None
        problems.append(
            Problem(
                kind="not-pep440",
                message=f"{name} version {written!r} is not a PEP 440 version: not pinned",
                where=where,
            )
        )
    return Package(
        rpm="",
        name=canonicalize_name(name),
        display_name=name,
        version_written=written,
        version=version,
        build=BuildKind.PYPI,
        arches=arches,
    )


def _parse_json(text: str, path: str, arches: tuple[str, ...]) -> Frozen:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}): give the output of pip list --format=json"
        ) from None
    if not isinstance(data, list):
        raise ManifestError(f"{path}:1: expected a JSON list of {{name, version}} objects")
    packages: dict[str, Package] = {}
    problems: list[Problem] = []
    starts = _item_lines(text)
    last = text.count("\n") + 1
    for index, item in enumerate(data):
        where = f"{path}:{starts[index] if index < len(starts) else last}"
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("version"), str)
        ):
            raise ManifestError(f"{where}: item {index} is not an object with a name and a version")
        if item.get("editable_project_location"):
            problems.append(
                Problem(
                    kind="editable",
                    message=f"editable install {item['name']} is not a release package: skipped",
                    where=where,
                )
            )
            continue
        try:
            canonicalize_name(item["name"], validate=True)
        except InvalidName:
            raise ManifestError(f"{where}: {item['name']!r} is not a package name") from None
        pkg = _package(item["name"], item["version"], where, problems, arches)
        packages[pkg.name] = pkg
    return Frozen(packages=tuple(sorted(packages.values(), key=lambda p: p.name)), problems=tuple(problems))


def _item_lines(text: str) -> list[int]:
    """The line where each object of a JSON list starts (best effort), in one pass."""
    starts: list[int] = []
    depth = 0
    line = 1
    in_string = False
    escape = False
    for c in text:
        if c == "\n":
            line += 1
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c == "{":
            depth += 1
            if depth == 1:
                starts.append(line)
        elif c == "}":
            depth -= 1
    return starts

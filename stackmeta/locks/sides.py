"""The sides a diff compares, read from where they live: a release record, an installed
environment, a requirements or constraints file, a PEP 751 pylock file."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.pylock import Pylock, PylockValidationError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from stackmeta import record
from stackmeta.errors import ManifestError, RecordError, UsageError, quoted
from stackmeta.locks.diff import Side


def _read_record(locks_dir: Path, name: str) -> tuple[record.Release, Any, frozenset[str]]:
    """The record *name*'s release, its "consistent" section and that section's deviation
    lines, read once (a malformed section is a RecordError, as in
    :func:`stackmeta.resolve.nearest.load_nearest`)."""
    path = record.record_path(locks_dir, name)
    doc, rel = record.load(locks_dir, name)
    consistent = doc.get("consistent")
    try:
        return rel, consistent, frozenset(deviation_lines(consistent))
    except (AttributeError, TypeError) as exc:
        raise RecordError(f"{path}: malformed 'consistent' section ({exc!r}): run 'stackmeta resolve {name}' "
                          "again") from None


def from_record(locks_dir: Path, name: str) -> Side:
    rel, _, deviations = _read_record(locks_dir, name)
    versions = {
        pkg.name: str(pkg.version) if pkg.version is not None else pkg.version_written
        for pkg in rel.packages
    }
    return Side(
        label=name,
        versions=versions,
        system_libs=frozenset(rel.system_libs),
        deviations=deviations,
        python=str(rel.python),
    )


def from_nearest(locks_dir: Path, name: str) -> Side | None:
    """The nearest consistent set of a record (its "consistent" section), or None."""
    rel, consistent, deviations = _read_record(locks_dir, name)
    if not isinstance(consistent, dict) or not isinstance(consistent.get("pins"), dict):
        return None
    return Side(
        label=f"{name} (nearest consistent set)",
        versions={canonicalize_name(n): str(v) for n, v in consistent["pins"].items()},
        system_libs=frozenset(rel.system_libs),
        deviations=deviations,
        python=str(rel.python),
    )


def deviation_lines(consistent: Any) -> list[str]:
    """One line per deviation of a record's nearest set (its "consistent" section)."""
    if not isinstance(consistent, dict):
        return []
    lines = []
    for item in consistent.get("deviations", ()):
        lines.append(f"{item.get('name')} {item.get('release_version')} -> {item.get('version')}")
    for item in consistent.get("omissions", ()):
        lines.append(f"{item.get('name')} left out")
    return lines


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start}): give {what}") from None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """The lines with their ``\\`` continuations joined, each with the number of its first line."""
    pending: list[str] = []
    first = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            first = number
        if raw.endswith("\\"):
            pending.append(raw[:-1] + " ")
        else:
            yield first, "".join(pending) + raw
            pending = []
    if pending:
        yield first, "".join(pending)


def from_requirements(path: Path) -> Side:
    """A requirements or constraints file of ``name==version`` lines (hashes, options and
    comments are skipped; anything else that is not an exact pin is an error)."""
    text = _read_text(path, "a requirements file")
    versions: dict[NormalizedName, str] = {}
    for number, raw in _logical_lines(text):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = line.split(" --hash", 1)[0].strip()
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ManifestError(
                f"{path}:{number}: not a requirement ({quoted(exc)}): fix or remove the line"
            ) from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "==="):
            raise ManifestError(
                f"{path}:{number}: {line!r} is not an exact pin (name==version): a diff compares "
                "exact versions"
            )
        versions[canonicalize_name(req.name)] = specs[0].version
    return Side(label=path.name, versions=versions)


def from_pylock(path: Path) -> Side:
    text = _read_text(path, "a PEP 751 lock file")
    try:
        lock = Pylock.from_dict(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, PylockValidationError) as exc:
        raise ManifestError(f"{path}: not a valid PEP 751 lock file ({exc})") from None
    versions = {
        canonicalize_name(pkg.name): str(pkg.version) for pkg in lock.packages if pkg.version is not None
    }
    python = str(lock.requires_python) if lock.requires_python else None
    return Side(label=path.name, versions=versions, python=python)


def from_environment(python: str) -> Side:
    """What is installed for the interpreter *python* (a path or a command name)."""
    from stackmeta.resolve.venv import list_installed  # the edge that runs interpreters

    listing = list_installed(python)
    versions = dict(listing.dists)
    made = _env_record(listing.prefix)
    # the environment's own tools (pip, setuptools, wheel) stay listed: whether they count is
    # decided against the other side (see :func:`like_with_like`)
    if listing.python.startswith("2."):  # Python 2.7's own egg-info files: the interpreter, wsgiref
        for stdlib in ("python", "wsgiref"):
            versions.pop(canonicalize_name(stdlib), None)
    label, deviations = f"environment of {python}", frozenset[str]()
    if made is not None:  # made by 'stackmeta env': say from what, carry its deviation lines
        label += f" (stackmeta env: {made.get('release')} with {made.get('requested')})"
        deviations = frozenset(str(line) for line in made.get("deviations", ()))
    return Side(label=label, versions=versions, python=listing.python, deviations=deviations,
                made_from=None if made is None else str(made.get("release")))


def _env_record(prefix: Path) -> dict[str, Any] | None:
    """The stackmeta-env.json of an environment made by 'stackmeta env' (see stackmeta.resolve.overlay)."""
    try:
        data = json.loads((prefix / "stackmeta-env.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def resolve_side(spec: str, locks_dir: Path) -> Side:
    """A release name (a record in *locks_dir*) or a path to a requirements or pylock file."""
    path = Path(spec)
    if path.suffix == ".toml" and path.exists():
        return from_pylock(path)
    if path.suffix in (".txt", ".in") and path.exists():
        return from_requirements(path)
    if record.is_safe_name(spec) and record.record_path(locks_dir, spec).exists():
        return from_record(locks_dir, spec)
    known = record.list_records(locks_dir)
    raise RecordError(
        f"{spec!r} is neither a record in {locks_dir} nor a requirements (.txt) or pylock (.toml) "
        f"file; records there: {', '.join(known) or 'none'}"
    )


TOOLS = tuple(canonicalize_name(t) for t in ("pip", "setuptools", "wheel", "distribute"))


def like_with_like(stack: Side, env: Side) -> tuple[Side, Side]:
    """A stack and an installed environment, made comparable: an environment has no system
    libraries (the stack's are not a loss), and its own tools (pip, setuptools, wheel) count
    only where the stack pins them (then by version, like any pin)."""
    versions = {n: v for n, v in env.versions.items() if n not in TOOLS or n in stack.versions}
    return replace(stack, system_libs=frozenset()), replace(env, versions=versions)

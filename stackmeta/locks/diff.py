"""Differences between two stacks: two releases, a release and an environment, a release and a
requirements or pylock file. Pure: the sides are built by :mod:`stackmeta.locks.sides`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version
from rich.markup import escape


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    UPGRADED = "upgraded"
    DOWNGRADED = "downgraded"
    CHANGED = "changed"  # versions that cannot be ordered (not PEP 440)


@dataclass(frozen=True, kw_only=True, slots=True)
class Side:
    """One stack to compare: versions by canonical name, plus what else a release carries."""

    label: str
    versions: Mapping[NormalizedName, str]
    system_libs: frozenset[str] = frozenset()
    deviations: frozenset[str] = frozenset()  # "tensorflow 2.12.0 -> 2.11.1: ..." lines
    python: str | None = None
    made_from: str | None = None  # an environment made by 'stackmeta env' from this release


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    name: NormalizedName
    kind: ChangeKind
    old: str | None
    new: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class StackDiff:
    old: str
    new: str
    changes: tuple[Change, ...]
    python: tuple[str | None, str | None]
    libs_added: tuple[str, ...]
    libs_removed: tuple[str, ...]
    deviations_added: tuple[str, ...]
    deviations_removed: tuple[str, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.changes or self.libs_added or self.libs_removed
                    or self.deviations_added or self.deviations_removed)

    def of(self, kind: ChangeKind) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind is kind)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"old": self.old, "new": self.new, "unchanged": self.unchanged}
        for kind in ChangeKind:
            out[kind.value] = [{"name": c.name, "old": c.old, "new": c.new} for c in self.of(kind)]
        out["python"] = {"old": self.python[0], "new": self.python[1]}
        out["system_libs"] = {"added": list(self.libs_added), "removed": list(self.libs_removed)}
        out["deviations"] = {"added": list(self.deviations_added),
                             "removed": list(self.deviations_removed)}
        return out


def _kind(old: str, new: str) -> ChangeKind | None:
    if old == new:
        return None
    try:
        old_v, new_v = Version(old), Version(new)
    except InvalidVersion:
        return ChangeKind.CHANGED
    if old_v == new_v:
        return None
    return ChangeKind.UPGRADED if new_v > old_v else ChangeKind.DOWNGRADED


def diff(old: Side, new: Side) -> StackDiff:
    changes: list[Change] = []
    unchanged = 0
    for name in sorted(set(old.versions) | set(new.versions)):
        before, after = old.versions.get(name), new.versions.get(name)
        if before is None:
            changes.append(Change(name=name, kind=ChangeKind.ADDED, old=None, new=after))
        elif after is None:
            changes.append(Change(name=name, kind=ChangeKind.REMOVED, old=before, new=None))
        else:
            kind = _kind(before, after)
            if kind is None:
                unchanged += 1
            else:
                changes.append(Change(name=name, kind=kind, old=before, new=after))
    return StackDiff(
        old=old.label,
        new=new.label,
        changes=tuple(changes),
        python=(old.python, new.python),
        libs_added=tuple(sorted(new.system_libs - old.system_libs)),
        libs_removed=tuple(sorted(old.system_libs - new.system_libs)),
        deviations_added=tuple(sorted(new.deviations - old.deviations)),
        deviations_removed=tuple(sorted(old.deviations - new.deviations)),
        unchanged=unchanged,
    )


_TITLES = {
    ChangeKind.ADDED: "Added",
    ChangeKind.REMOVED: "Removed",
    ChangeKind.UPGRADED: "Upgraded",
    ChangeKind.DOWNGRADED: "Downgraded",
    ChangeKind.CHANGED: "Changed",
}


def _version_text(change: Change) -> str:
    if change.kind is ChangeKind.ADDED:
        return f"{change.new}"
    if change.kind is ChangeKind.REMOVED:
        return f"{change.old}"
    return f"{change.old} -> {change.new}"


def render_markdown(result: StackDiff) -> str:
    """The diff as Markdown, for release notes."""
    lines = [f"## {result.new} compared with {result.old}", ""]
    counts = ", ".join(
        f"{len(result.of(k))} {k.value}" for k in ChangeKind if result.of(k)
    ) or "no package changes"
    lines += [f"{counts}; {result.unchanged} unchanged.", ""]
    if result.python[0] != result.python[1] and None not in result.python:
        lines += [f"Python: {result.python[0]} -> {result.python[1]}", ""]
    for kind in ChangeKind:
        changes = result.of(kind)
        if not changes:
            continue
        lines += [f"### {_TITLES[kind]} ({len(changes)})", "", "| package | version |", "| --- | --- |"]
        lines += [f"| {c.name} | {_version_text(c)} |" for c in changes]
        lines.append("")
    for title, items in (
        ("System libraries added", result.libs_added),
        ("System libraries removed", result.libs_removed),
        ("New deviations from the release in the metapackage", result.deviations_added),
        ("Deviations no longer needed", result.deviations_removed),
    ):
        if items:
            lines += [f"### {title}", ""] + [f"- {item}" for item in items] + [""]
    return "\n".join(lines).rstrip() + "\n"


_STYLES = {
    ChangeKind.ADDED: "green",
    ChangeKind.REMOVED: "red",
    ChangeKind.UPGRADED: "cyan",
    ChangeKind.DOWNGRADED: "magenta",
    ChangeKind.CHANGED: "yellow",
}


def render_text(result: StackDiff) -> str:
    """The diff for a terminal, with rich markup for colour (stripped in a pipe)."""
    width = max((len(c.name) for c in result.changes), default=0)
    lines = [f"[bold]{escape(result.old)} -> {escape(result.new)}[/bold]"]
    counts = ", ".join(
        f"[{_STYLES[k]}]{len(result.of(k))} {k.value}[/]" for k in ChangeKind if result.of(k)
    ) or "no package changes"
    lines.append(f"{counts}; {result.unchanged} unchanged")
    if result.python[0] != result.python[1] and None not in result.python:
        lines.append(f"Python {result.python[0]} -> {result.python[1]}")
    sign = {ChangeKind.ADDED: "+", ChangeKind.REMOVED: "-", ChangeKind.UPGRADED: "↑",
            ChangeKind.DOWNGRADED: "↓", ChangeKind.CHANGED: "~"}
    for kind in ChangeKind:
        changes = result.of(kind)
        if not changes:
            continue
        lines.append("")
        lines.append(f"[bold]{_TITLES[kind]}[/bold] ({len(changes)})")
        for c in changes:
            lines.append(f"  [{_STYLES[kind]}]{sign[kind]} {c.name:<{width}}[/]  {escape(_version_text(c))}")
    for title, items in (
        ("System libraries added", result.libs_added),
        ("System libraries removed", result.libs_removed),
        ("New deviations", result.deviations_added),
        ("Deviations gone", result.deviations_removed),
    ):
        if items:
            lines.append("")
            lines.append(f"[bold]{title}[/bold]")
            lines += [f"  {escape(item)}" for item in items]
    return "\n".join(lines)

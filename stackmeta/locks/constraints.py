"""The constraints lock: a release record rendered as a pip constraints file (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from stackmeta.record import Package, Release
from stackmeta.target import CMS_ARCH_MACHINES


def machine(arch: str) -> str:
    """The ``platform_machine`` of a CMS arch (el9_amd64_gcc12 -> x86_64)."""
    parts = arch.split("_")
    cpu = parts[1] if len(parts) > 1 else arch
    return CMS_ARCH_MACHINES.get(cpu, cpu)


def marker(pkg: Package, arches: Sequence[str]) -> str | None:
    """The environment marker of *pkg* when it is not on every exported arch, else None."""
    if not pkg.arches or set(pkg.arches) >= set(arches):
        return None
    mine = sorted({machine(a) for a in pkg.arches})
    if set(mine) >= {machine(a) for a in arches}:
        return None  # the arches differ only by OS or compiler: no standard marker tells them apart
    return " or ".join(f'platform_machine == "{m}"' for m in mine)


def pin_lines(release: Release) -> list[str]:
    """One line per pin; one package built two ways on two arches (the same version from pip
    on one, from its sources on another) is one line over both."""
    lines = []
    seen: dict[tuple[str, str], Package] = {}
    for pkg in sorted(release.packages, key=lambda p: (p.name, p.arches)):
        if pkg.version is None:
            continue
        key = (pkg.name, str(pkg.version))
        old = seen.get(key)
        seen[key] = pkg if old is None else replace(old, arches=(*old.arches, *pkg.arches))
    for (name, version), pkg in seen.items():
        line = f"{name}=={version}"
        mark = marker(pkg, release.arches)
        if mark:
            line += f" ; {mark}"
        lines.append(line)
    return lines


def python_text(release: Release) -> str:
    if release.pythons:
        return ", ".join(f"{v} ({arch})" for arch, v in sorted(release.pythons.items()))
    return str(release.python)


def _unpinned(pkg: Package) -> str:
    if pkg.version_written:
        return f"{pkg.rpm or pkg.name} {pkg.version_written!r}"
    return f"{pkg.rpm or pkg.name} ({pkg.source_url or 'no version'})"


def constraints_text(release: Release, notes: Iterable[str] = (), *, lock_name: str | None = None) -> str:
    """The lock file's text: a comment header, then ``name==version`` lines by canonical name.

    *lock_name* is the file's base name for the usage line (default: the release's name).
    """
    pins = pin_lines(release)
    rpms = sum(len(p.rpm.split("+")) for p in release.packages)
    unpinned = [p for p in release.packages if p.version is None]
    header = [
        f"# {release.release}: the Python packages the release ships, as pip constraints",
        f"# metapackage version: {release.metapackage_version or 'none (not a CMSSW release name)'}",
        f"# arch{'es' if len(release.arches) > 1 else ''}: {', '.join(release.arches) or 'not given'}",
        f"# Python: {python_text(release)}",
        f"# source: {release.source}",
        f"# written by stackmeta {release.stackmeta_version}",
        (f"# {len(pins)} pins ({rpms} rpms shipped)" if all(p.rpm for p in release.packages)
         else f"# {len(pins)} pins ({len(release.packages)} packages)")
        + (f"; not pinned: {', '.join(_unpinned(p) for p in unpinned)}" if unpinned else ""),
        f"# usage: pip install -c {lock_name or release.lock_name}.txt <package>...",
    ]
    if release.other_python is not None:
        name = lock_name or release.lock_name
        mine = f"-py{release.python.major}"
        other = name[: -len(mine)] if name.endswith(mine) else f"{name}-py{release.other_python.major}"
        header.insert(4, f"# other stack: Python {release.other_python} in {other}.txt")
    header.extend(f"# {note}" if not note.startswith("#") else note for note in notes)
    return "\n".join([*header, *pins]) + "\n"

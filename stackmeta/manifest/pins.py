"""What a release's name and arch decide before any spec is read (RULES.md §2): the era of
cmsdist's layout (:func:`era`), the SCRAM_ARCH (:class:`Arch`), and the pip pins of cmsdist's
requirements files (:func:`read_pins`), by era."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from stackmeta.errors import UsageError
from stackmeta.release import release_key

# -- eras (RULES §2) ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Era:
    """The rules that depend on the release."""

    pins: str | None  # None, "py2", "middle", "py3", "cmsos"
    first_pin_wins: bool
    include_pip_name_file: bool
    generated_toolfiles: bool
    generated_tool_conf: bool


def era(release: str) -> Era:
    k = release_key(release)
    if k < release_key("CMSSW_10_4_0_pre3"):
        pins = None
    elif k < release_key("CMSSW_11_0_0_pre10"):
        pins = "py2"
    elif k < release_key("CMSSW_12_0_0_pre5"):
        pins = "middle"
    elif k < release_key("CMSSW_12_5_0_pre2"):
        pins = "py3"
    else:
        pins = "cmsos"
    return Era(
        pins=pins,
        first_pin_wins=k >= release_key("CMSSW_13_3_0_pre2"),
        include_pip_name_file=k >= release_key("CMSSW_11_0_0_pre10"),
        generated_toolfiles=k >= release_key("CMSSW_12_1_0_pre2"),
        generated_tool_conf=k >= release_key("CMSSW_14_1_0_pre5"),
    )


# -- arches -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Arch:
    """A SCRAM_ARCH such as el9_amd64_gcc12."""

    name: str
    os: str  # el9
    cmsos: str  # el9_amd64
    machine: str  # x86_64
    compiler: str  # gcc
    compiler_version: str  # 12

    @classmethod
    def parse(cls, name: str) -> Arch:
        parts = name.split("_")
        m = re.match(r"^([a-z]+)(\d+)", parts[2]) if len(parts) >= 3 else None
        if not m:
            raise UsageError(f"arch {name!r} is not <os>_<cpu>_<compiler> (e.g. el9_amd64_gcc12)")
        machine = {"amd64": "x86_64", "aarch64": "aarch64", "ppc64le": "ppc64le"}.get(parts[1], parts[1])
        return cls(name=name, os=parts[0], cmsos=f"{parts[0]}_{parts[1]}", machine=machine,
                   compiler=m.group(1), compiler_version=m.group(2))

    @property
    def marker(self) -> str:
        return f'platform_machine == "{self.machine}"'


def cycle_counts(available: Iterable[tuple[str, str]]) -> dict[tuple[int, int] | None, dict[str, int]]:
    """For each release cycle (major, minor), how many of its releases each arch is tagged for."""
    counts: dict[tuple[int, int] | None, dict[str, int]] = {}
    for rel, arch in available:
        per = counts.setdefault(_cycle(rel), {})
        per[arch] = per.get(arch, 0) + 1
    return counts


def rank_arches(arches: Iterable[str], release: str,
                counts: dict[tuple[int, int] | None, dict[str, int]]) -> list[str]:
    """*arches* of *release*, its production arch first.

    The production arch of a release is the arch tagged for the most releases of its cycle
    (:func:`cycle_counts`; CMSSW_13_2_*: el8_amd64_gcc11, 25 of 26 releases, the others come
    and go); ties go to the arch whose name sorts first.
    """
    per = counts.get(_cycle(release), {})
    return sorted(set(arches), key=lambda a: (-per.get(a, 0), a))


def _cycle(release: str) -> tuple[int, int] | None:
    try:
        key = release_key(release)
    except UsageError:
        return None
    return key[0], key[1]


# -- pins (RULES §2) --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    rpm: str
    name: str
    version: str
    lineno: int
    reasons: tuple[str, ...] = ()
    switch_off: str | None = None  # "doPython2" or "doPython3" (middle era)


_MARKER = re.compile(r"^([A-Za-z_]+)(==|!=|<=|>=|<|>|~=)['\"]?([^'\"]*)['\"]?$")
_COMMENTED_PIN = re.compile(r"^#+\s*[A-Za-z0-9_.\-]+\s*==")


def read_pins(text: str, release: str, arch: Arch) -> list[Pin]:
    """The pins of ``pip/requirements.txt`` that pass for *arch* (duplicates settled)."""
    rules = era(release)
    if rules.pins is None:
        return []
    values = {"platform_machine": arch.machine, "sys_platform": "linux", "os_name": "posix",
              "cmsos_name": arch.os}
    chosen: dict[str, Pin] = {}
    comments: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s", "", raw)
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            stripped = raw.strip().lstrip("#").strip()
            if stripped and not _COMMENTED_PIN.match(raw.strip()):
                comments.append(stripped)
            elif not stripped:
                comments = []
            continue
        if "==" not in line:
            comments = []
            continue
        name, _, rest = line.partition("==")
        version, *markers = rest.split(";")
        reasons = tuple(comments)
        comments = []
        keep, prefix, switch = True, "py3" if rules.pins in ("py3", "cmsos") else "py2", None
        for piece in markers:
            m = _MARKER.match(piece)
            if not m:
                continue
            var, op, value = m.groups()
            if rules.pins == "py2":
                continue
            if var == "python_version" and rules.pins == "middle":
                try:
                    three = Version(value) >= Version("3")
                except InvalidVersion:
                    keep = False
                    continue
                if op in (">", ">=", "==") and three:
                    prefix, switch = "py3", "doPython2"
                elif op == "<" and three:
                    prefix, switch = "py2", "doPython3"
                else:
                    keep = False
                continue
            if var not in values or (var == "cmsos_name" and rules.pins != "cmsos"):
                continue
            if op not in ("==", "!="):
                continue
            if rules.pins == "cmsos":
                try:
                    hit = re.match(value, values[var]) is not None
                except re.error:
                    hit = value == values[var]
            else:
                hit = value == values[var]
            if hit != (op == "=="):
                keep = False
        if not keep:
            continue
        rpm = f"{prefix}-{name}"
        pin = Pin(rpm=rpm, name=name, version=version, lineno=lineno, reasons=reasons, switch_off=switch)
        if rpm in chosen and rules.first_pin_wins:
            continue
        chosen.pop(rpm, None)
        chosen[rpm] = pin
    return list(chosen.values())

"""What the environment's cell cannot install, settled before planning: left out up front with
the judgement's reason (and what requires it), or moved when another version is installable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta.errors import UsageError
from stackmeta.index.installable import Verdict
from stackmeta.resolve.nearest import RULE, NearestSet, Omission
from stackmeta.resolve.overlay import LeftOut, cell_left_out, deviation_lines, parse_override, plan
from stackmeta.target import Target

TARGET = Target(python=Version("3.9.18"))
BUILD = "no wheel for this cell; its sdist does not build: "
CUDA = BUILD + "src/cpp/cuda.hpp:14:10: fatal error: cuda.h: No such file or directory"
NO_CC = BUILD + "error: command 'gcc' failed: No such file or directory"


class JudgedIndex:
    """A CandidateSource over written-down metadata that also judges installability, as an
    IndexSource with sdist builds does: {name: {version: ([Requires-Dist], reason or "")}}."""

    def __init__(self, projects: Mapping[str, Mapping[str, tuple[Sequence[str], str]]]) -> None:
        self.projects = {canonicalize_name(n): {Version(v): ([Requirement(r) for r in reqs], why)
                                                for v, (reqs, why) in vs.items()}
                         for n, vs in projects.items()}
        self.judged: list[tuple[str, str]] = []

    def versions(self, name: NormalizedName) -> list[Version]:
        return sorted(self.projects.get(name, {}))

    def dependencies(self, name: NormalizedName, version: Version) -> list[Requirement] | None:
        return self.projects[name][version][0]

    def installable(self, name: NormalizedName, version: Version) -> Verdict:
        self.judged.append((name, str(version)))
        why = self.projects[name][version][1]
        return Verdict(installable=not why, how="none" if why else "wheel", reason=why)


INDEX = JudgedIndex({
    "numpy": {"1.24.3": ([], "")},
    "pycuda": {"2022.1": (["numpy"], CUDA), "2022.2.2": (["numpy"], CUDA)},
    "cudatools": {"1.0": (["pycuda>=2022"], "")},  # pure Python, but needs pycuda
    "scinum": {"1.4.6": ([], NO_CC), "2.0.0": ([], "")},  # the set's version does not build, a newer one does
    "uproot": {"4.3.7": (["numpy"], "")},
})


def nearest(**pins: str) -> NearestSet:
    return NearestSet(
        release="CMSSW_14_0_0", python=Version("3.9.14"), platform="linux-x86_64",
        index_url="http://index/simple", rule=RULE,
        pins=tuple(sorted((canonicalize_name(n), Version(v)) for n, v in pins.items())),
        omissions=(Omission(name=canonicalize_name("dxr"), release_version="1.0.x",
                            reason="'1.0.x' is not a PEP 440 version: pip cannot install it"),),
    )


SET = nearest(numpy="1.24.3", pycuda="2022.2.2", cudatools="1.0", scinum="1.4.6", uproot="4.3.7")


def test_what_no_version_of_installs_is_left_out_with_its_reason_and_what_requires_it() -> None:
    assert cell_left_out(SET, INDEX, TARGET) == (
        LeftOut(name=canonicalize_name("cudatools"), version="1.0", by="env", reason=(
            "it requires pycuda>=2022, and pycuda is left out (Python 3.9.18 on linux-x86_64 cannot "
            "install it)")),
        LeftOut(name=canonicalize_name("pycuda"), version="2022.2.2", by="env", reason=CUDA),
    )
    p = plan(SET, INDEX, TARGET)
    assert p.pin_map == {"numpy": Version("1.24.3"), "scinum": Version("2.0.0"), "uproot": Version("4.3.7")}
    assert [(lo.name, lo.by) for lo in p.left_out] == [("dxr", "resolve"), ("cudatools", "env"),
                                                      ("pycuda", "env")]
    assert p.to_json()["left_out"][2] == {"name": "pycuda", "version": "2022.2.2", "reason": CUDA,
                                          "by": "env"}
    # scinum 1.4.6 does not build, 2.0.0 installs: moved there, with the judgement as its reason
    assert [str(m) for m in p.moves] == [
        f"scinum 1.4.6 -> 2.0.0 (NEW MAJOR VERSION) (Python 3.9.18 on linux-x86_64 cannot install scinum "
        f"1.4.6: {NO_CC})"]
    assert deviation_lines(p, SET)[-3:] == [
        "cudatools left out: Python 3.9.18 on linux-x86_64 cannot install it",
        "pycuda left out: Python 3.9.18 on linux-x86_64 cannot install it",
        "scinum 1.4.6 -> 2.0.0 (NEW MAJOR VERSION): moved (Python 3.9.18 on linux-x86_64 cannot install "
        f"scinum 1.4.6: {NO_CC})",
    ]
    assert p.moves_message() == f"Python 3.9.18 on linux-x86_64 needs: {p.moves[0]}"


def test_an_override_or_exclude_is_not_judged_and_an_override_the_cell_cannot_install_is_refused() -> None:
    INDEX.judged.clear()
    p = plan(SET, INDEX, TARGET, exclude=["cudatools", "pycuda"])
    assert p.excluded == ("cudatools", "pycuda")
    assert sorted({name for name, _ in INDEX.judged}) == ["numpy", "scinum", "uproot"]
    assert [lo.name for lo in p.left_out] == ["dxr"]
    with pytest.raises(UsageError) as err:
        plan(SET, INDEX, TARGET, overrides=[parse_override("pycuda==2022.1")])
    assert str(err.value) == ("--override pycuda==2022.1: Python 3.9.18 on linux-x86_64 cannot install "
                              f"pycuda 2022.1: {CUDA}: choose another version")

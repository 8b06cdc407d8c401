"""Planning an overlay: the nearest set with overrides and additions, checked by metadata with
resolvelib before anything is installed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from stackmeta.errors import ResolutionError, UsageError
from stackmeta.resolve.nearest import RULE, Deviation, NearestSet
from stackmeta.resolve.overlay import (
    Override,
    deviation_lines,
    parse_addition,
    parse_override,
    pins_text,
    plan,
)
from stackmeta.resolve.venv import pip_failure
from stackmeta.target import Target

TARGET = Target(python=Version("2.7.18"))


class IndexData:
    """A CandidateSource over metadata written down: {name: {version: [Requires-Dist]}}."""

    def __init__(self, projects: Mapping[str, Mapping[str, Sequence[str] | None]]) -> None:
        self.projects = {
            canonicalize_name(n): {Version(v): None if reqs is None else [Requirement(r) for r in reqs]
                                   for v, reqs in vs.items()}
            for n, vs in projects.items()
        }

    def versions(self, name: NormalizedName) -> list[Version]:
        return sorted(self.projects.get(name, {}))

    def dependencies(self, name: NormalizedName, version: Version) -> list[Requirement] | None:
        return self.projects.get(name, {}).get(version)


# Theano 0.9.0 is what the user wants on top of CMSSW_9_3_0 (metadata as on PyPI, abridged)
INDEX = IndexData({
    "numpy": {"1.11.0": [], "1.12.1": [], "1.13.3": [], "1.14.0": []},
    "scipy": {"0.19.0": ["numpy>=1.8.2"], "1.0.0": ["numpy>=1.8.2"]},
    "six": {"1.10.0": [], "1.16.0": []},
    "theano": {
        "0.8.2": ["numpy>=1.7.1", "scipy>=0.11", "six>=1.9.0"],
        "0.9.0": ["numpy>=1.9.1", "scipy>=0.14", "six>=1.9.0"],
        "1.0.0": ["numpy>=1.13.3", "scipy>=0.14", "six>=1.9.0"],
    },
    "rootpy": {"0.9.1": ["numpy<1.13", "six"]},
    "coffea": {
        "0.6.0": ["numpy>=1.11", "awkward<0.9"],
        "0.7.0": ["numpy>=1.16", "awkward>=0.9"],  # the newest: excluded by the set's numpy
    },
    "awkward": {"0.8.0": ["numpy>=1.11"], "0.9.0": ["numpy>=1.13"]},
    "mystery": {"1.0": None},  # an sdist whose metadata says nothing
})


def nearest(**pins: str) -> NearestSet:
    return NearestSet(
        release="CMSSW_9_3_0", python=Version("2.7.11"), platform="linux-x86_64",
        index_url="http://index/simple", rule=RULE,
        pins=tuple(sorted((canonicalize_name(n), Version(v)) for n, v in pins.items())),
    )


SET = nearest(numpy="1.12.1", scipy="0.19.0", six="1.10.0", theano="0.8.2")


def test_an_override_that_fits_moves_nothing() -> None:
    p = plan(SET, INDEX, TARGET, overrides=[parse_override("Theano==0.9.0")])
    assert p.fits and p.moves == () and p.new == ()
    assert dict(p.pins) == {"numpy": Version("1.12.1"), "scipy": Version("0.19.0"),
                            "six": Version("1.10.0"), "theano": Version("0.9.0")}
    assert pins_text(p).splitlines()[1:] == ["numpy==1.12.1", "scipy==0.19.0", "six==1.10.0",
                                             "theano==0.9.0"]


def test_an_override_that_does_not_fit_names_the_pins_that_move_and_to_what() -> None:
    p = plan(SET, INDEX, TARGET, overrides=[parse_override("Theano==1.0.0")])
    assert not p.fits
    # numpy goes to the nearest version that fits, not the newest
    assert p.moves_message() == (
        "Theano==1.0.0 needs: numpy 1.12.1 -> 1.13.3 (theano 1.0.0 requires numpy>=1.13.3)")
    assert dict(p.pins)["numpy"] == Version("1.13.3")


def test_no_set_holds_the_override_the_message_names_the_conflict() -> None:
    with_rootpy = nearest(numpy="1.12.1", scipy="0.19.0", six="1.10.0", theano="0.8.2", rootpy="0.9.1")
    with pytest.raises(ResolutionError) as err:
        plan(with_rootpy, INDEX, TARGET, overrides=[parse_override("theano==1.0.0")])
    # rootpy 0.9.1 (its only version) requires numpy<1.13: no set holds theano 1.0.0 with it
    assert str(err.value) == (
        "CMSSW_9_3_0: no set holds theano==1.0.0 for Python 2.7.18 on linux-x86_64: "
        "numpy: rootpy 0.9.1 requires <1.13, theano 1.0.0 requires >=1.13.3: "
        "change the overrides or additions")


def test_an_override_that_moves_a_dependent() -> None:
    # numpy 1.14.0 is newer than rootpy 0.9.1 accepts: rootpy moves to the version that fits
    index = IndexData({"numpy": {"1.12.1": [], "1.14.0": []},
                       "rootpy": {"0.9.1": ["numpy<1.13"], "1.0.0": ["numpy>=1.13"]}})
    p = plan(nearest(numpy="1.12.1", rootpy="0.9.1"), index, TARGET,
             overrides=[parse_override("numpy==1.14.0")])
    assert [str(m) for m in p.moves] == [
        "rootpy 0.9.1 -> 1.0.0 (NEW MAJOR VERSION) (rootpy 0.9.1 requires numpy<1.13, but numpy is 1.14.0 "
        "here)"]


def test_an_addition_gets_the_newest_version_that_fits_and_its_new_dependencies() -> None:
    p = plan(SET, INDEX, TARGET, additions=[parse_addition("coffea")])
    assert p.fits
    assert [(n.name, str(n.version), n.required_by) for n in p.new] == [
        ("awkward", "0.8.0", ("coffea 0.6.0 (awkward<0.9)",)),
        ("coffea", "0.6.0", ("--add coffea",)),
    ]


def test_deviation_lines_carry_the_sets_own_then_the_overlays() -> None:
    base = NearestSet(
        release="CMSSW_9_3_0", python=Version("2.7.11"), platform="linux-x86_64",
        index_url="http://index/simple", rule=RULE, pins=SET.pins,
        deviations=(Deviation(name=canonicalize_name("scipy"), release_version="0.18.1",
                              version=Version("0.19.0"), reason="r"),),
    )
    p = plan(base, INDEX, TARGET, overrides=[parse_override("Theano==1.0.0")])
    assert deviation_lines(p, base) == [
        "scipy 0.18.1 -> 0.19.0",
        "theano 0.8.2 -> 1.0.0: Theano==1.0.0",
        "numpy 1.12.1 -> 1.13.3: moved for Theano==1.0.0 (theano 1.0.0 requires numpy>=1.13.3)",
    ]


def test_unknown_dependencies_are_reported_not_hidden() -> None:
    p = plan(nearest(numpy="1.12.1"), INDEX, TARGET, additions=[parse_addition("mystery")])
    assert p.unknown == ("mystery 1.0",)


@pytest.mark.parametrize(("text", "message"), [
    ("Theano", "--override 'Theano': write NAME==VERSION, e.g. --override Theano==0.9.0"),
    ("Theano>=0.9", "--override 'Theano>=0.9': write NAME==VERSION, e.g. --override Theano==0.9.0"),
    ("Theano==0.9.*", "--override 'Theano==0.9.*': '0.9.*' is not a version (no wildcards): "
                      "write NAME==VERSION"),
    ("==0.9", "--override '==0.9': write NAME==VERSION, e.g. --override Theano==0.9.0"),
])
def test_malformed_overrides(text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_override(text)
    assert str(err.value) == message


@pytest.mark.parametrize(("overrides", "additions", "message"), [
    (["nosuch==1.0"], [], "--override nosuch==1.0: no project nosuch on http://index/simple that pip could "
                          "install for Python 2.7.18 on linux-x86_64: check the name"),
    (["theano==0.9.5"], [], "--override theano==0.9.5: theano 0.9.5 is not on http://index/simple in a form "
                            "pip could install for Python 2.7.18 on linux-x86_64; nearest there: 0.9.0, "
                            "1.0.0, 0.8.2"),
    (["coffea==0.6.0"], [], "--override coffea==0.6.0: CMSSW_9_3_0's set has no coffea: add it with "
                            "--add coffea==0.6.0"),
    ([], ["numpy"], "--add numpy: CMSSW_9_3_0's set already pins numpy==1.12.1: use --override "
                    "numpy==VERSION to change it"),
    ([], ["coffea>=2"], "--add coffea>=2: no version of coffea on http://index/simple matches >=2 for "
                        "Python 2.7.18 on linux-x86_64; there: 0.6.0, 0.7.0"),
    ([], ["nosuch"], "--add nosuch: no project nosuch on http://index/simple that pip could install for "
                     "Python 2.7.18 on linux-x86_64: check the name"),
])
def test_bad_requests_are_one_clear_line(overrides: list[str], additions: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        plan(SET, INDEX, TARGET, overrides=[parse_override(o) for o in overrides],
             additions=[parse_addition(a) for a in additions])
    assert str(err.value) == message


def test_override_keeps_what_the_user_wrote() -> None:
    assert parse_override("Theano==0.9.0") == Override(name=canonicalize_name("theano"),
                                                      version=Version("0.9.0"), text="Theano==0.9.0")


def test_exclude_leaves_a_pin_out_unless_the_rest_requires_it() -> None:
    p = plan(SET, INDEX, TARGET, additions=[parse_addition("coffea")], exclude=["Theano"])
    assert p.excluded == ("theano",)
    assert "theano" not in dict(p.pins)
    assert p.requested == "--add coffea, --exclude theano"
    assert deviation_lines(p, SET)[-1] == "theano left out: --exclude theano"
    with_rootpy = nearest(numpy="1.12.1", six="1.10.0", rootpy="0.9.1")
    with pytest.raises(UsageError) as err:
        plan(with_rootpy, INDEX, TARGET, exclude=["numpy"])
    assert str(err.value) == ("--exclude numpy: rootpy 0.9.1 (numpy<1.13) requires it: it cannot be left "
                              "out without those")
    with pytest.raises(UsageError) as err:
        plan(SET, INDEX, TARGET, exclude=["coffea"])
    assert str(err.value) == "--exclude coffea: CMSSW_9_3_0's set has no coffea: nothing to leave out"


# pip 20.3.4 (the last for Python 2.7) failing on a CMSSW_9_3_0 pin, as it printed it on a machine
# without Oracle (abridged: the command line of the failing call left out)
PIP20_FAILURE = """\
Collecting configparser==3.5.0
  Downloading configparser-3.5.0.tar.gz (39 kB)
Collecting cx-oracle==5.2.1
  Downloading cx_Oracle-5.2.1.tar.gz (113 kB)
    ERROR: Command errored out with exit status 1:
         cwd: /tmp/pip-install-oheZDA/cx-oracle/
    Complete output (5 lines):
    Traceback (most recent call last):
      File "<string>", line 1, in <module>
      File "/tmp/pip-install-oheZDA/cx-oracle/setup.py", line 170, in <module>
        raise DistutilsSetupError("cannot locate an Oracle software " \\
    distutils.errors.DistutilsSetupError: cannot locate an Oracle software installation
    ----------------------------------------
ERROR: Command errored out with exit status 1: python setup.py egg_info \
Check the logs for full command output.
"""


def test_a_pip_failure_is_one_line_naming_the_package() -> None:
    assert pip_failure(PIP20_FAILURE) == (
        "cx-oracle==5.2.1: distutils.errors.DistutilsSetupError: cannot locate an Oracle software "
        "installation")
    output = "Looking in indexes: http://x\nERROR: No matching distribution found for a==1\n"
    assert pip_failure(output) == "ERROR: No matching distribution found for a==1"


# -- a set is found whenever one exists; when none, the clash; majors; far from newest -----

# coffea 2024.4.0 on CMSSW_14_0_0, abridged: awkward must move, and every awkward that coffea
# accepts needs another awkward-cpp (a new major version); dask-awkward must move too, and its
# versions that coffea accepts need a typing-extensions that the set's tensorflow excludes;
# tensorflow's version below the set's accepts it.
HEP = IndexData({
    "awkward-cpp": {"13": [], "32": []},
    "awkward": {"2.1.2": ["awkward-cpp==13"], "2.6.3": ["awkward-cpp==32"]},
    "typing-extensions": {"4.5.0": [], "4.8.0": []},
    "tensorflow": {"2.12.0": ["typing-extensions>=3.6.6"], "2.12.1": ["typing-extensions<4.6,>=3.6.6"]},
    "dask-awkward": {"2023.4.0": ["awkward>=2.1"], "2024.3.0": ["awkward>=2.5", "typing-extensions>=4.8"]},
    "coffea": {"0.7.22": ["awkward<2"], "2024.4.0": ["awkward>=2.6.3", "dask-awkward>=2024.3.0"]},
})
HEP_SET = nearest(**{"awkward-cpp": "13", "awkward": "2.1.2", "typing-extensions": "4.5.0",
                     "tensorflow": "2.12.1", "dask-awkward": "2023.4.0"})


def test_moves_are_found_through_pins_that_shut_out_every_version_that_fits() -> None:
    p = plan(HEP_SET, HEP, TARGET, additions=[parse_addition("coffea==2024.4.0")])
    moves = {m.name: (str(m.old), str(m.new)) for m in p.moves}
    assert moves == {"awkward": ("2.1.2", "2.6.3"), "awkward-cpp": ("13", "32"),
                     "dask-awkward": ("2023.4.0", "2024.3.0"), "typing-extensions": ("4.5.0", "4.8.0"),
                     "tensorflow": ("2.12.1", "2.12.0")}
    major = [m for m in p.moves if m.new_major]
    assert [m.name for m in major] == ["awkward-cpp"]
    assert str(major[0]) == ("awkward-cpp 13 -> 32 (NEW MAJOR VERSION) (awkward 2.6.3 requires "
                             "awkward-cpp==32)")
    assert p.to_json()["moves"][1] == {"name": "awkward-cpp", "from": "13", "to": "32",
                                       "reason": "awkward 2.6.3 requires awkward-cpp==32", "new_major": True}


def test_no_set_at_all_names_the_two_requirements_that_clash_and_who_requires_them() -> None:
    with pytest.raises(ResolutionError) as err:
        plan(HEP_SET, HEP, TARGET, overrides=[parse_override("tensorflow==2.12.1")],
             additions=[parse_addition("coffea==2024.4.0")])
    assert str(err.value) == (
        "CMSSW_9_3_0: no set holds tensorflow==2.12.1, --add coffea==2024.4.0 for Python 2.7.18 on "
        "linux-x86_64: typing-extensions: dask-awkward 2024.3.0 requires >=4.8, tensorflow 2.12.1 requires "
        "<4.6,>=3.6.6: change the overrides or additions")


def test_an_addition_far_from_its_newest_version_says_what_the_newest_needs() -> None:
    p = plan(HEP_SET, IndexData({**{n: {str(v): [str(r) for r in d or ()] for v, d in vs.items()}
                                    for n, vs in HEP.projects.items()},
                                 "awkward": {"1.10.3": [], "2.1.2": ["awkward-cpp==13"],
                                             "2.6.3": ["awkward-cpp==32"]}}),
             TARGET, additions=[parse_addition("coffea")], exclude=())
    # the newest coffea that fits the set without moving anything is none; coffea 0.7.22
    # would need awkward 1: the newest, 2024.4.0, is taken with its moves
    assert dict(p.pins)["coffea"] == Version("2024.4.0")
    assert p.far == ()
    held = plan(nearest(awkward="1.10.3"), IndexData({"awkward": {"1.10.3": [], "2.6.3": []},
                                                       "coffea": {"0.7.22": ["awkward<2"],
                                                                  "2024.4.0": ["awkward>=2.6.3"]}}),
                TARGET, additions=[parse_addition("coffea")])
    assert dict(held.pins)["coffea"] == Version("0.7.22")
    assert [str(f) for f in held.far] == [
        "--add coffea got coffea 0.7.22, far from its newest 2024.4.0 (another major version); "
        "coffea==2024.4.0 needs: awkward 1.10.3 -> 2.6.3 (NEW MAJOR VERSION) (coffea 2024.4.0 requires "
        "awkward>=2.6.3)"]


def test_a_failed_build_names_the_package_being_built_not_the_last_collected() -> None:
    output = """Collecting pycuda==2022.2.2
  Downloading pycuda-2022.2.2.tar.gz (1.7 MB)
Collecting zipp==3.15.0
  Using cached zipp-3.15.0-py3-none-any.whl (6.8 kB)
Building wheels for collected packages: pycuda
  Building wheel for pycuda (pyproject.toml): started
  Building wheel for pycuda (pyproject.toml): finished with status 'error'
  error: subprocess-exited-with-error
  × Building wheel for pycuda (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [3 lines of output]
      src/cpp/cuda.hpp:14:10: fatal error: cuda.h: No such file or directory
      error: command '/usr/bin/gcc' failed with exit code 1
      [end of output]
ERROR: Could not build wheels for pycuda, which is required to install pyproject.toml-based projects
"""
    assert pip_failure(output) == (
        "pycuda==2022.2.2: error: command '/usr/bin/gcc' failed with exit code 1")

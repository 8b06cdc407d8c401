"""The walk of RULES.md on the four shared release folders and on hand-written full specs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from packaging.version import Version

from stackmeta.errors import ManifestError
from stackmeta.locks import constraints
from stackmeta.manifest import pins as release_pins
from stackmeta.manifest import walk
from stackmeta.manifest.cmsdist import FolderTree
from stackmeta.manifest.pins import Arch, read_pins
from stackmeta.record import BuildKind, Release

SHARED = Path(__file__).parents[3] / "shared" / "cmsdist-excerpts"
DATA = Path(__file__).parents[1] / "data" / "manifest"
EXPECTED = DATA / "expected"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared cmsdist excerpts are not at {SHARED} (../shared/cmsdist-excerpts)",
)


def shared(release: str, *arches: str, python_major: int | None = None) -> tuple[Release, int]:
    trees = {arch: FolderTree(SHARED / f"{release}__{arch}") for arch in arches}
    source = f"folder {SHARED.name}: " + ", ".join(f"{release}__{arch}" for arch in sorted(arches))
    return walk.read_release(trees, release, source=source, python_major=python_major)


def rpms(rel: Release) -> int:
    return sum(len(p.rpm.split("+")) for p in rel.packages)


# -- the counts RULES.md was checked against ----------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("release", "arch", "major", "count", "python", "default"),
    [
        ("CMSSW_9_3_0", "slc6_amd64_gcc630", None, 130, "2.7.11", 2),
        ("CMSSW_9_3_0", "slc7_aarch64_gcc700", None, 128, "2.7.13", 2),
        ("CMSSW_10_6_0", "slc7_amd64_gcc700", 2, 202, "2.7.14", 3),
        ("CMSSW_10_6_0", "slc7_amd64_gcc700", None, 184, "3.6.4", 3),
        ("CMSSW_14_0_0", "el9_amd64_gcc12", None, 322, "3.9.14", 3),
    ],
)
def test_counts(release: str, arch: str, major: int | None, count: int, python: str, default: int) -> None:
    rel, found_default = shared(release, arch, python_major=major)
    assert rpms(rel) == count
    assert rel.python == Version(python)
    assert found_default == default


@needs_shared
def test_known_facts_9_3_0() -> None:
    rel, _ = shared("CMSSW_9_3_0", "slc6_amd64_gcc630", "slc7_aarch64_gcc700")
    assert rel.package("numba").version == Version("0.33.0")
    assert rel.package("theano").version_written == "0.8.2"
    tf = rel.package("tensorflow")
    assert tf.arches == ("slc6_amd64_gcc630",)
    assert constraints.marker(tf, rel.arches) == 'platform_machine == "x86_64"'
    f32 = rel.package("functools32")
    assert (f32.version_written, f32.version) == ("3.2.3-2", Version("3.2.3.post2"))
    # Reached only through a non-Python package (dbs-client): they ship.
    assert rel.package("pyxml").rpm == "py2-pyxml"
    assert rel.package("zsi").rpm == "py2-zsi"
    assert rel.package("repoze.lru").display_name == "repoze.lru"
    assert rel.package("python-cjson").rpm == "py2-cjson"
    assert rel.package("pylint").source_url == "http://download.logilab.org/pub/pylint/pylint-0.25.1.tar.gz"
    assert rel.pythons == {"slc6_amd64_gcc630": Version("2.7.11"), "slc7_aarch64_gcc700": Version("2.7.13")}
    assert rel.problems == ()


@needs_shared
def test_known_facts_10_6_0() -> None:
    py3, _ = shared("CMSSW_10_6_0", "slc7_amd64_gcc700")
    py2, _ = shared("CMSSW_10_6_0", "slc7_amd64_gcc700", python_major=2)
    pybrain = py2.package("pybrain")
    assert pybrain.build is BuildKind.VCS
    assert pybrain.source_url == (
        "git+https://github.com/pybrain/pybrain?obj=master/0.3.3&export=pybrain-0.3.3&output=/source.tar.gz"
    )
    assert "functools32" in {p.name for p in py2.packages}
    assert "functools32" not in {p.name for p in py3.packages}  # doPython3 no
    assert py2.package("numpy").source_url == (
        "https://github.com/numpy/numpy/releases/download/v1.16.2/numpy-1.16.2.tar.gz"
    )
    assert [u.rpm for u in py3.unshipped] == ["py2-cmstest", "py2-Mako", "py2-pycuda", "py2-pytools"]


@needs_shared
def test_known_facts_14_0_0() -> None:
    rel, _ = shared("CMSSW_14_0_0", "el9_amd64_gcc12")
    unshipped = {u.name: u for u in rel.unshipped}
    assert {"pybrain", "test-download", "aiohttp", "bokeh", "rootpy"} <= set(unshipped)
    assert len(unshipped) == 38
    assert "pybrain" not in {p.name for p in rel.packages}
    click = rel.package("click")
    assert click.rpm == "py3-Click+py3-click"
    assert click.version == Version("8.1.3")
    assert rel.package("wheel").rpm == "py3-wheel"  # reached only through onnxruntime
    dxr = rel.package("dxr")
    assert (dxr.version_written, dxr.version, dxr.build) == ("1.0.x", None, BuildKind.VCS)
    assert dxr.patches == ("py3-dxr-Markup",)
    assert rel.package("sqlalchemy").patches == (
        "py3-sqlalchemy-1.3.24-add-frontier-dialect",
        "py3-sqlalchemy-1.3.24-fix-sqlite-dialect-timestamp",
        "py3-sqlalchemy-1.3.24-server_version_info",
    )
    numpy = rel.package("numpy")
    assert numpy.patches == ("%patchsrc (pip/numpy.file:3)",)
    assert numpy.reasons == (
        "setuptools version <64 is needed by numpy: https://github.com/pypa/setuptools/issues/3549",
        "NO_AUTO_UPDATE: update together with tensorflow",
    )
    assert set(numpy.system_libs) == {"OpenBLAS", "zlib"}
    assert "cython" in numpy.requires
    assert rel.package("tensorflow").version == Version("2.12.0")
    assert rel.package("cryptography").version_written == "41.0.7"  # el9 skips the slc7 line
    assert {"root", "hdf5", "OpenBLAS", "llvm", "protobuf"} <= set(rel.system_libs)
    assert [(p.kind, p.where) for p in rel.problems] == [  # the %(for ...) loops are evaluated
        ("not-pep440", "py3-dxr.spec:1"),
    ]


@needs_shared
@pytest.mark.parametrize(
    ("name", "release", "arches", "major"),
    [
        ("CMSSW_9_3_0", "CMSSW_9_3_0", ("slc6_amd64_gcc630", "slc7_aarch64_gcc700"), None),
        ("CMSSW_10_6_0", "CMSSW_10_6_0", ("slc7_amd64_gcc700",), None),
        ("CMSSW_10_6_0-py2", "CMSSW_10_6_0", ("slc7_amd64_gcc700",), 2),
        ("CMSSW_14_0_0", "CMSSW_14_0_0", ("el9_amd64_gcc12",), None),
    ],
)
def test_full_lock_matches_reviewed_file(
    name: str, release: str, arches: tuple[str, ...], major: int | None
) -> None:
    rel, _ = shared(release, *arches, python_major=major)
    expected = (EXPECTED / f"{name}.txt").read_text("utf-8")
    assert constraints.constraints_text(rel, lock_name=name) == expected


# -- full, unreduced specs give what their reduced forms give --------------------------------


@pytest.mark.parametrize(
    ("suffix", "release", "arches"),
    [
        ("9", "CMSSW_9_3_0", ("slc7_amd64_gcc700", "slc7_aarch64_gcc700")),
        ("14", "CMSSW_14_0_0", ("el9_amd64_gcc12", "el8_aarch64_gcc12")),
    ],
)
def test_full_specs_equal_reduced(suffix: str, release: str, arches: tuple[str, ...]) -> None:
    results = {}
    for kind in ("full", "reduced"):
        folder = DATA / f"{kind}{suffix}"
        results[kind] = walk.read_release(
            {a: FolderTree(folder) for a in arches}, release, source=f"folder fixture{suffix}"
        )
    full, reduced = results["full"][0], results["reduced"][0]
    # the fixture trees hold a part of cmsdist: specs they lack are reported at the line that
    # requires them, which differs between a full file and its reduced form
    def missing(rel: Release) -> set[tuple[str, str]]:
        return {(p.kind, p.message) for p in rel.problems if p.kind == "missing-spec"}
    assert missing(full) == missing(reduced)
    def others(rel: Release) -> Release:
        return dataclasses.replace(rel, problems=tuple(p for p in rel.problems if p.kind != "missing-spec"))
    assert others(full) == others(reduced)
    assert "evil" not in {p.name for p in full.packages}  # Requires: text in heredocs and defines
    assert constraints.constraints_text(full) == (EXPECTED / f"fixture{suffix}.txt").read_text("utf-8")


def test_fixture14_details() -> None:
    arches = {a: FolderTree(DATA / "full14") for a in ("el9_amd64_gcc12", "el8_aarch64_gcc12")}
    rel, default = walk.read_release(arches, "CMSSW_14_0_0", source="folder full14")
    assert default == 3
    assert {u.name for u in rel.unshipped} == {"evil", "pybrain", "test-download"}
    assert rel.package("click").rpm == "py3-Click+py3-click"
    assert rel.package("numpy").patches == ("%patchsrc (pip/numpy.file:2)",)
    assert rel.package("numpy").reasons == ("NO_AUTO_UPDATE: update together with tensorflow",)
    assert rel.package("cryptography").reasons == ()
    assert rel.package("dxr").arches == ("el9_amd64_gcc12",)
    assert [p.message for p in rel.problems if p.kind == "not-pep440"] == [
        "py3-dxr version '1.0.x' is not a PEP 440 version: not pinned (on el9_amd64_gcc12)"
    ]


# -- pins and eras ------------------------------------------------------------------------


REQUIREMENTS = """\
# a comment
#NO_AUTO_UPDATE: keep
numpy == 1.2 ; platform_machine=='x86_64'
cryptography==37.0.4
cryptography==3.2.1 ; cmsos_name=='slc7'
six==1.0;python_version>'3.0'
futures==3.2;python_version<'3'
enum34==1.1;python_version>='2.7'
plain==2.0
odd==1.0 ; some_unknown_marker
"""


def names(release: str, arch: str) -> list[tuple[str, str]]:
    return [(p.rpm, p.version) for p in read_pins(REQUIREMENTS, release, Arch.parse(arch))]


def test_pins_by_era() -> None:
    assert names("CMSSW_10_3_0", "slc7_amd64_gcc700") == []
    # 10_4_0_pre3 - 11_0_0_pre9: py2-NAME, markers not read; the last duplicate wins.
    assert names("CMSSW_10_6_0", "slc7_aarch64_gcc700") == [
        ("py2-numpy", "1.2"),
        ("py2-cryptography", "3.2.1"),
        ("py2-six", "1.0"),
        ("py2-futures", "3.2"),
        ("py2-enum34", "1.1"),
        ("py2-plain", "2.0"),
        ("py2-odd", "1.0"),
    ]
    # 11_0_0_pre10 - 12_0_0_pre4: python_version decides the name; cmsos_name not read.
    middle = read_pins(REQUIREMENTS, "CMSSW_11_2_0", Arch.parse("slc7_aarch64_gcc900"))
    assert [(p.rpm, p.switch_off) for p in middle] == [
        ("py2-cryptography", None),
        ("py3-six", "doPython2"),
        ("py2-futures", "doPython3"),
        ("py2-plain", None),
        ("py2-odd", None),
    ]
    # 12_0_0_pre5 - 12_5_0_pre1: py3-NAME, platform markers.
    assert ("py3-numpy", "1.2") in names("CMSSW_12_0_0", "slc7_amd64_gcc900")
    assert ("py3-cryptography", "3.2.1") in names("CMSSW_12_0_0", "el8_amd64_gcc10")
    # 12_5_0_pre2 on: cmsos_name read; before 13_3_0_pre2 the last line wins, then the first.
    assert ("py3-cryptography", "3.2.1") in names("CMSSW_13_0_0", "slc7_amd64_gcc11")
    assert ("py3-cryptography", "37.0.4") in names("CMSSW_13_0_0", "el8_amd64_gcc11")
    assert ("py3-cryptography", "37.0.4") in names("CMSSW_14_0_0", "slc7_amd64_gcc12")
    assert ("py3-numpy", "1.2") not in names("CMSSW_14_0_0", "el9_aarch64_gcc12")


def test_pin_reasons() -> None:
    pins = read_pins(REQUIREMENTS, "CMSSW_14_0_0", Arch.parse("el9_amd64_gcc12"))
    assert pins[0].rpm == "py3-numpy"
    assert pins[0].reasons == ("a comment", "NO_AUTO_UPDATE: keep")
    assert pins[1].reasons == ()


@pytest.mark.parametrize(
    ("release", "pins", "toolfiles", "tool_conf", "first"),
    [
        ("CMSSW_9_3_0", None, False, False, False),
        ("CMSSW_10_4_0_pre2", None, False, False, False),
        ("CMSSW_10_4_0_pre3", "py2", False, False, False),
        ("CMSSW_11_0_0_pre9", "py2", False, False, False),
        ("CMSSW_11_0_0_pre10", "middle", False, False, False),
        ("CMSSW_12_0_0_pre4", "middle", False, False, False),
        ("CMSSW_12_0_0_pre5", "py3", False, False, False),
        ("CMSSW_12_1_0_pre2", "py3", True, False, False),
        ("CMSSW_12_5_0_pre2", "cmsos", True, False, False),
        ("CMSSW_13_3_0_pre2", "cmsos", True, False, True),
        ("CMSSW_14_1_0_pre4", "cmsos", True, False, True),
        ("CMSSW_14_1_0_pre5", "cmsos", True, True, True),
        ("CMSSW_14_0_X_2024-10-13-0000", "cmsos", True, False, True),
    ],
)
def test_era_boundaries(
    release: str, pins: str | None, toolfiles: bool, tool_conf: bool, first: bool
) -> None:
    era = release_pins.era(release)
    assert (era.pins, era.generated_toolfiles, era.generated_tool_conf, era.first_pin_wins) == (
        pins,
        toolfiles,
        tool_conf,
        first,
    )


def test_generated_toolfiles_and_tool_conf(tmp_path: Path) -> None:
    (tmp_path / "scram-tools.file" / "tools" / "py3-x").mkdir(parents=True)
    (tmp_path / "scram-tools.file" / "tools" / "py3-x" / "x").write_text("")
    (tmp_path / "scram-tools.file" / "toolfile.file").write_text("Source: scram-tools\n%prep\n")
    (tmp_path / "cmssw-tools.spec").write_text("### RPM cms cmssw-tools 1.0\nRequires: py3-x-toolfile\n")
    (tmp_path / "scram").mkdir()
    (tmp_path / "scram" / "tool-conf.file").write_text("Requires: python3\n")
    (tmp_path / "python3.spec").write_text("### RPM external python3 3.12.4\n%prep\n")
    (tmp_path / "py3-x.spec").write_text(
        "### RPM external py3-x 1.0\n## INITENV +PATH PYTHON3PATH x\n%prep\n"
    )
    rel, _ = walk.read_release(
        {"el9_amd64_gcc13": FolderTree(tmp_path)}, "CMSSW_14_1_0", source="folder t"
    )
    assert [(p.rpm, p.build) for p in rel.packages] == [("py3-x", BuildKind.OTHER)]
    assert rel.python == Version("3.12.4")


def test_spec_without_header_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "cmssw-tool-conf.spec").write_text("Requires: x\n")
    with pytest.raises(ManifestError) as err:
        walk.read_release({"el9_amd64_gcc12": FolderTree(tmp_path)}, "CMSSW_14_0_0", source="folder t")
    assert str(err.value) == (
        "cmssw-tool-conf.spec:1: no '### RPM <group> <name> <version>' header: is this a cmsdist spec?"
    )


def test_missing_root(tmp_path: Path) -> None:
    (tmp_path / "rpm-preamble.file").write_text("%define x 1\n")
    with pytest.raises(ManifestError) as err:
        walk.read_release({"el9_amd64_gcc12": FolderTree(tmp_path)}, "CMSSW_14_0_0", source="folder t")
    assert str(err.value) == (
        "no cmssw-tool-conf.spec for CMSSW_14_0_0 el9_amd64_gcc12: not a cmsdist tree of a CMSSW release"
    )


def test_no_python3_stack_asked(tmp_path: Path) -> None:
    (tmp_path / "cmssw-tool-conf.spec").write_text("### RPM cms cmssw-tool-conf 1\nRequires: python\n")
    (tmp_path / "python.spec").write_text("### RPM external python 2.7.11\n")
    with pytest.raises(ManifestError) as err:
        walk.read_release(
            {"slc7_amd64_gcc700": FolderTree(tmp_path)}, "CMSSW_9_3_0", source="folder t", python_major=3
        )
    assert (
        str(err.value) == "CMSSW_9_3_0 slc7_amd64_gcc700 does not ship python3: no Python 3 stack to export"
    )


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("pip://numpy/1.0?pip_options=x", BuildKind.PYPI),
        ("git+https://github.com/a/b?obj=x", BuildKind.VCS),
        ("https://github.com/a/b.git", BuildKind.VCS),
        ("svn://svn.example.org/x", BuildKind.VCS),
        ("usercommand://x?command=pip3%20download%20--no-deps", BuildKind.PYPI),
        ("usercommand://x?command=curl%20-O", BuildKind.URL),
        ("https://files.pythonhosted.org/packages/x/y-1.0.tar.gz", BuildKind.PYPI),
        ("https://pypi.io/packages/source/x/x-1.0.tar.gz", BuildKind.PYPI),
        ("https://github.com/numpy/numpy/releases/download/v1/numpy-1.tar.gz", BuildKind.URL),
        ("none", BuildKind.OTHER),
        ("local-patch.tar.gz", BuildKind.OTHER),
        (None, BuildKind.OTHER),
    ],
)
def test_build_kind(source: str | None, kind: BuildKind) -> None:
    assert walk.build_kind(source) is kind


@pytest.mark.parametrize(
    ("source", "version", "name"),
    [
        ("pip://repoze.lru/0.6?x=1", "0.6", "repoze.lru"),
        ("http://pyyaml.org/download/pyyaml/PyYAML-3.11.tar.gz", "3.11", "PyYAML"),
        ("https://example.org/opt_einsum_v3.3.0.zip", "3.3.0", "opt_einsum"),
        ("https://github.com/pypa/pip/archive/23.1.1.tar.gz", "23.1.1", "pip"),
        ("git+https://github.com/cms-externals/dxr.git?obj=x", "1.0.x", "dxr"),
        ("https://example.org/archive.tar.gz", "1.0", None),
    ],
)
def test_name_from_source(source: str, version: str, name: str | None) -> None:
    assert walk.name_from_source(source, version) == name


def test_middle_era_two_stacks(tmp_path: Path) -> None:
    """11_0_0_pre10 - 12_0_0_pre4: python_version markers name the rpm; §6 decides each stack."""
    files = {
        "cmssw-tool-conf.spec": "### RPM cms cmssw-tool-conf 1\nRequires: python python3 python_tools\n",
        "python.spec": "### RPM external python 2.7.15\n%prep\n",
        "python3.spec": "### RPM external python3 3.8.2\n%prep\n",
        "python_tools.spec": (
            "### RPM external python_tools 2.0\n"
            "Requires: py2-numpy py2-sqlalchemy py2-PyYAML py3-ipython py2-six py2-futures py2-lzma\n"
        ),
        "build-with-pip.file": (
            '%if "%{?pip_name:set}" != "set"\n%define pip_name %(echo %n | cut -f2-10 -d-)\n%endif\n'
            '%if "%{?doPython2:set}" != "set"\nRequires: python\n%define doPython2 yes\n%endif\n'
            '%if "%{?doPython3:set}" != "set"\nRequires: python3\n%define doPython3 yes\n%endif\n'
            "Source: pip://%{pip_name}/%{realversion}\n%prep\n"
        ),
        "pip/requirements.txt": (
            "six==1.15.0\nipython==7.18.1;python_version>'3.0'\nfutures==3.3.0;python_version<'3'\n"
            "lzma==0.1;python_version=='2.7'\n"
        ),
        "pip/ipython.file": "%define pip_name ipython-generic\nRequires: py2-six\n",
        "pip/py3-ipython.file": "%define pip_name IPython\n",
    }
    bodies = {
        "py2-numpy": ("PYTHON27PATH PYTHON3PATH", "2,3"),
        "py2-sqlalchemy": ("PYTHON27PATH PYTHON3PATH", "2"),
        "py2-PyYAML": ("PYTHON3PATH", "2,3"),
    }
    for name, (paths, uses) in bodies.items():
        initenv = "".join(f"## INITENV +PATH {p} %{{i}}/lib\n" for p in paths.split())
        files[f"{name}.spec"] = (
            f"### RPM external {name} 1.0\n{initenv}Source: https://example.org/{name[4:]}-1.0.tar.gz\n%prep\n"
            f"## BODY-FACTS copies=no site-packages=- uses={uses}\n"
        )
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    trees = {"slc7_amd64_gcc900": FolderTree(tmp_path)}
    py3, default = walk.read_release(trees, "CMSSW_11_2_0", source="folder t")
    py2, _ = walk.read_release(trees, "CMSSW_11_2_0", source="folder t", python_major=2)
    assert default == 3
    assert (py3.python, py2.python) == (Version("3.8.2"), Version("2.7.15"))
    assert sorted(p.rpm for p in py3.packages) == ["py2-PyYAML", "py2-numpy", "py2-six", "py3-ipython"]
    # py2-PyYAML puts itself on PYTHON3PATH only: Python 3 stack only, whatever its rpm prefix.
    assert sorted(p.rpm for p in py2.packages) == ["py2-futures", "py2-numpy", "py2-six", "py2-sqlalchemy"]
    ipython = py3.package("ipython")
    assert ipython.display_name == "IPython"  # pip/ipython.file, then pip/py3-ipython.file
    assert ipython.requires == ("six",)
    assert [u.rpm for u in py3.unshipped] == []  # lzma: python_version=='2.7' drops the line


def test_spec_facts_shared_across_arches_only_where_they_agree(tmp_path: Path) -> None:
    # One tree read for two arches in one process: a spec whose preamble looks up neither the
    # arch's macros nor the machine is evaluated once; the others are evaluated for each arch.
    (tmp_path / "rpm-preamble.file").write_text("%define cmsplatf %{cmsos}_gcc%{cmscompilerv}\n")
    (tmp_path / "cmssw-tool-conf.spec").write_text(
        "### RPM cms cmssw-tool-conf 1\nRequires: py3-plain py3-os py3-arch\n")
    (tmp_path / "py3-plain.spec").write_text("### RPM external py3-plain 1.0\nSource: https://h/plain-1.0.tgz\n")
    (tmp_path / "py3-os.spec").write_text(
        "### RPM external py3-os 1.0\nSource: https://h/%{cmsplatf}/os-1.0.tgz\n")
    (tmp_path / "py3-arch.spec").write_text(
        "### RPM external py3-arch 1.0\n%ifarch aarch64\nRequires: py3-plain\n%endif\n")
    amd, arm = (walk.Walker(FolderTree(tmp_path), "CMSSW_14_0_0", Arch.parse(a))
                for a in ("el9_amd64_gcc12", "el8_aarch64_gcc12"))
    plain = [w.facts("py3-plain") for w in (amd, arm)]
    assert plain[0] is plain[1]
    assert [w.facts("py3-os").sources for w in (amd, arm)] == [  # type: ignore[union-attr]
        (("Source", "https://h/el9_amd64_gcc12/os-1.0.tgz"),),
        (("Source", "https://h/el8_aarch64_gcc12/os-1.0.tgz"),),
    ]
    assert [w.facts("py3-arch").requires for w in (amd, arm)] == [  # type: ignore[union-attr]
        (), (("py3-plain", "py3-arch.spec:3"),)]

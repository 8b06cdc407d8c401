"""Parsing of real saved index pages (pypi.org, recorded for these tests) and of core metadata."""

from __future__ import annotations

import email.parser
import json
import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from stackmeta.errors import IndexAccessError
from stackmeta.index.metadata import parse_metadata, strip_description
from stackmeta.index.simple import (
    JSON_TYPE,
    ProjectPage,
    parse_project_page,
    render_project_html,
    render_project_json,
)

DATA = Path(__file__).parents[1] / "data" / "index"
SIX_URL = "https://pypi.org/simple/six/"
SIX_WHEEL_SHA = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


def page(name: str, kind: str) -> ProjectPage:
    body = (DATA / f"{name}.{kind}").read_bytes()
    ctype = JSON_TYPE if kind == "json" else "text/html"
    return parse_project_page(body, ctype, f"https://pypi.org/simple/{name}/", name)


# recorded pages with wheels for many platforms, and without
MANY_PLATFORMS = ["numpy", "scipy", "tensorflow", "grpcio", "pyzmq", "psutil", "lxml", "six", "awkward-cpp"]


def _recorded_pages(names: list[str]) -> tuple[list[ProjectPage | None], list[str]]:
    """The pages of *names* recorded from pypi.org (the CMSSW_14_0_0 snapshot), and the laptop
    platforms."""
    from stackmeta.index import IndexClient
    from stackmeta.target import PLATFORMS

    snapshot = Path(__file__).parents[1] / "data" / "snapshots" / "CMSSW_14_0_0"
    with IndexClient(snapshot.as_uri(), False, retries=0) as client:
        pages = [client.project(n) for n in names]
    return pages, [p for p in PLATFORMS if p != "linux-ppc64le"]


def test_json_page_of_six() -> None:
    p = page("six", "json")
    f = next(f for f in p.files if f.filename == "six-1.16.0-py2.py3-none-any.whl")
    assert f.sha256 == SIX_WHEEL_SHA
    assert f.url.startswith("https://files.pythonhosted.org/packages/")
    assert f.size == 11053
    assert f.requires_python == SpecifierSet(">=2.7, !=3.0.*, !=3.1.*, !=3.2.*")
    assert f.kind == "wheel" and f.version("six") == Version("1.16.0")
    assert f.core_metadata is None  # pypi.org's JSON omits the key (the file is served anyway)
    assert Version("1.16.0") in p.by_version()


def test_html_and_json_pages_list_the_same_files_and_hashes() -> None:
    for name in ("six", "shellingham"):
        j, h = page(name, "json"), page(name, "html")
        assert {f.filename: f.sha256 for f in j.files} == {f.filename: f.sha256 for f in h.files}
        assert {f.filename: f.url for f in j.files} == {f.filename: f.url for f in h.files}
        assert {f.filename: (f.yanked, f.yanked_reason) for f in j.files} == {
            f.filename: (f.yanked, f.yanked_reason) for f in h.files}


def test_yanked_files_and_reasons() -> None:
    p = page("shellingham", "html")
    yanked = {f.filename: f.yanked_reason for f in p.files if f.yanked}
    assert yanked["shellingham-1.5.0-py2.py3-none-any.whl"] == "Incorrect package metadata"
    assert len(yanked) == 4


def test_unparsable_requires_python_is_ignored_as_pip_does() -> None:
    # shellingham's oldest files say ">= '2.7'" (quotes): not a specifier; pip ignores it
    p = page("shellingham", "html")
    odd = [f for f in p.files if f.requires_python is None and f.filename.startswith("shellingham-1.0")]
    assert odd


@pytest.mark.parametrize(("body", "ctype", "what"), [
    (b"{not json", JSON_TYPE, "not JSON"),
    (b'{"meta": {"api-version": "1.0"}}', JSON_TYPE, "no 'files' list"),
    (b'{"meta": {"api-version": "2.0"}, "files": []}', JSON_TYPE, "unsupported api-version 2.0"),
    (b"\x00\x01\x02", "application/octet-stream", "unexpected content type"),
    (b"just some text", "text/html", "not an HTML page"),
])
def test_malformed_pages_name_the_url(body: bytes, ctype: str, what: str) -> None:
    with pytest.raises(IndexAccessError) as err:
        parse_project_page(body, ctype, SIX_URL, "six")
    assert str(err.value).startswith(f"{SIX_URL}: malformed project page ({what}")


def test_rendered_pages_read_back_the_same() -> None:
    p = page("shellingham", "json")
    for render, ctype in ((render_project_html, "text/html"), (render_project_json, JSON_TYPE)):
        back = parse_project_page(render(p).encode(), ctype, p.url, "shellingham")
        def key(pg: ProjectPage) -> list[tuple[object, ...]]:
            return [(f.filename, f.url, f.hashes, f.requires_python, f.yanked, f.yanked_reason)
                    for f in pg.files]
        assert key(back) == key(p)


def test_metadata_of_a_real_wheel() -> None:
    with zipfile.ZipFile(DATA / "urllib3-2.0.0-py3-none-any.whl") as zf:
        data = zf.read("urllib3-2.0.0.dist-info/METADATA")
    md = parse_metadata(data, url="u", project="urllib3")
    assert md.version == Version("2.0.0")
    assert md.requires_python == SpecifierSet(">=3.7")
    assert 'brotli>=1.0.9; platform_python_implementation == "CPython" and extra == "brotli"' in [
        str(r) for r in md.requires_dist]
    assert md.junk == ()


def test_metadata_junk_is_skipped_and_reported() -> None:
    data = (b"Metadata-Version: 2.1\nName: old\nVersion: 1.0\nRequires-Dist: six\n"
            b"Requires-Dist: this is not a requirement ((\nRequires-Python: >=banana\n")
    md = parse_metadata(data, url="u", project="old")
    assert [str(r) for r in md.requires_dist] == ["six"]
    assert "Requires-Dist: 'this is not a requirement (('" in md.junk
    assert "Requires-Python: '>=banana'" in md.junk


@pytest.mark.parametrize(("data", "what"), [
    (b"", "empty metadata file for pkg"),
    (b"\x00PK\x03\x04binary", "metadata of pkg is binary"),
    (b"Name: pkg\nVersion: 1\n", "metadata of pkg lacks Metadata-Version"),
    (b"Metadata-Version: 2.1\nName: other\nVersion: 1\n", "metadata names project 'other', expected pkg"),
])
def test_malformed_metadata(data: bytes, what: str) -> None:
    with pytest.raises(IndexAccessError) as err:
        parse_metadata(data, url="http://x/pkg.metadata", project="pkg")
    assert str(err.value).startswith(f"http://x/pkg.metadata: {what}")


def test_a_parsed_json_page_keeps_every_field_of_every_file() -> None:
    # the page keeps its files packed, not the JSON: each file read back is what the entry says
    from stackmeta.index.simple import _joiner, _json_file

    for name in ("six", "shellingham"):
        entries = json.loads((DATA / f"{name}.json").read_bytes())["files"]
        p = page(name, "json")
        join = _joiner(p.url)
        assert p.files == tuple(_json_file(e, join) for e in entries)
        assert [f.upload_time for f in p.files] == [e["upload-time"] for e in entries]


def test_unusual_json_file_entries_are_read_exactly() -> None:
    sha = "ab" * 32
    entries = [
        {"filename": "pkg-1.0.tar.gz", "url": "../../files/pkg-1.0.tar.gz#frag",
         "hashes": {"SHA256": sha.upper(), "md5": "00"}, "size": True, "upload-time": "",
         "yanked": "broken", "core-metadata": {"sha256": "CD" * 32}},
        {"filename": "pkg-1.1.tar.gz", "url": "https://h/x/\nodd/pkg-1.1.tar.gz", "hashes": [],
         "size": "12", "requires-python": ">=3.8", "yanked": True, "dist-info-metadata": False},
        {"filename": "pkg-1.2-py3-none-any.whl", "url": "https://h/other-name.whl",
         "hashes": {"sha256": sha}, "size": 7, "upload-time": "2024-01-01T00:00:00Z", "core-metadata": True},
        {"filename": "pkg-1.3-py3-none-any.whl", "url": "https://h/dir/", "hashes": {"sha256": sha}},
    ]
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "pkg", "files": entries}).encode()
    files = {f.filename: f for f in parse_project_page(body, JSON_TYPE, "https://h/simple/pkg/", "pkg").files}
    first = files["pkg-1.0.tar.gz"]
    assert (first.url, first.hashes, first.size, first.upload_time) == (
        "https://h/files/pkg-1.0.tar.gz", (("md5", "00"), ("sha256", sha)), True, "")
    assert (first.yanked, first.yanked_reason, first.core_metadata, first.core_metadata_sha256) == (
        True, "broken", True, "cd" * 32)
    second = files["pkg-1.1.tar.gz"]
    assert (second.url, second.hashes, second.size, second.requires_python) == (
        "https://h/x/\nodd/pkg-1.1.tar.gz", (), None, SpecifierSet(">=3.8"))
    assert (second.yanked, second.yanked_reason, second.core_metadata, second.upload_time) == (
        True, None, False, None)
    third = files["pkg-1.2-py3-none-any.whl"]
    assert (third.url, third.sha256, third.size, third.upload_time, third.core_metadata) == (
        "https://h/other-name.whl", sha, 7, "2024-01-01T00:00:00Z", True)
    assert third.core_metadata_sha256 is None and not third.yanked
    assert files["pkg-1.3-py3-none-any.whl"].url == "https://h/dir/"


@pytest.mark.parametrize("python", ["2.7.18", "3.6.15", "3.9.14", "3.13.0"])
def test_installable_list_is_the_installable_versions_without_building_files(python: str) -> None:
    from stackmeta.index.source import installable_list, installable_versions
    from stackmeta.target import Target

    for name, kind in (("six", "json"), ("shellingham", "json"), ("shellingham", "html")):
        target = Target(python=Version(python), platform="linux-x86_64")
        for yanked in (False, True):
            p = page(name, kind)
            assert installable_list(p, target, yanked=yanked) == sorted(
                installable_versions(page(name, kind), target, yanked=yanked))
            assert len(p._built) == (0 if kind == "json" else len(p.filenames))  # none built from JSON


def test_joined_strings_read_back_and_find_what_each_holds() -> None:
    from stackmeta.index.simple import Joined

    items = ["six-1.16.0.tar.gz", "", "six-1.1", "6.0-py3-none-any.whl", "a-1.16.0.zip"]
    joined = Joined(items)
    assert list(joined) == items and len(joined) == 5
    assert [joined[i] for i in range(-5, 5)] == items + items
    assert joined[1:4] == items[1:4]
    with pytest.raises(IndexError):
        joined[5]
    # "1.16" spans the end of one string and the start of the next: neither holds it
    assert joined.holding("1.16") == [0, 4]
    assert joined.holding("6") == [0, 3, 4]
    assert joined.holding("1.1") == [0, 2, 4]
    assert joined.holding("zzz") == []


def test_installable_list_on_recorded_pages_for_every_laptop_platform() -> None:
    """The grouped reading (each group of alike files judged once) against the file-by-file
    one, on real pypi.org pages with wheels for many platforms (the CMSSW_14_0_0 snapshot)."""
    from stackmeta.index.source import installable_list, installable_versions
    from stackmeta.target import Target

    pages, laptops = _recorded_pages(MANY_PLATFORMS)
    judged = 0
    for p in pages:
        assert p is not None
        for python in ("2.7.18", "3.6.15", "3.9.14", "3.12.0", "3.13.1"):
            for platform in laptops:
                target = Target(python=Version(python), platform=platform)
                expected = sorted(installable_versions(p, target))
                assert installable_list(p, target) == expected, (p.name, python, platform)
                judged += len(expected)
    assert judged > 500  # most of these pages have wheels for most of these cells


def test_wheel_versions_are_those_with_a_wheel_for_the_target_on_recorded_pages() -> None:
    """The grouped reading of which versions have a wheel for a cell (the search's wheels-first
    order asks it of every version) against the file-by-file one, on real pypi.org pages: any
    wheel whose tags fit, yanked or not, whatever its Requires-Python."""
    from stackmeta.index.source import wheel_versions
    from stackmeta.target import Target

    pages, laptops = _recorded_pages(MANY_PLATFORMS)
    found = missing = 0
    for p in pages:
        assert p is not None
        for python in ("2.7.18", "3.6.15", "3.9.14", "3.12.0", "3.13.1"):
            for platform in laptops:
                target = Target(python=Version(python), platform=platform)
                expected = {v for v, files in p.by_version().items()
                            if any(target.wheel_rank(f.filename) is not None for f in files)}
                assert wheel_versions(p, target) == expected, (p.name, python, platform)
                found += len(expected)
                missing += len(p.by_version()) - len(expected)
    assert found > 500 and missing > 500  # many versions with a wheel for a cell, many without


def test_a_wheel_whose_name_breaks_the_spec_makes_no_version_installable() -> None:
    from packaging.utils import canonicalize_name

    from stackmeta.index.simple import ProjectFile, ProjectPage
    from stackmeta.index.source import installable_list, installable_versions, wheel_versions
    from stackmeta.target import Target

    names = ["pkg-1.0-x-py3-none-any.whl",  # a build tag must start with a digit
             "pkg-1.1-py3-none-any.whl",
             "pkg-1.2-x-py3-none-any.whl", "pkg-1.2-1-py3-none-any.whl"]
    p = ProjectPage(name=canonicalize_name("pkg"), url="https://h/simple/pkg/",
                    files=[ProjectFile(filename=n, url=f"https://h/{n}") for n in names])
    target = Target(python=Version("3.12.0"))
    assert [str(v) for v in installable_list(p, target)] == ["1.1", "1.2"]
    assert installable_list(p, target) == sorted(installable_versions(p, target))
    assert sorted(str(v) for v in wheel_versions(p, target)) == ["1.1", "1.2"]


def test_requires_dist_past_headers_broken_by_an_unindented_author_is_read() -> None:
    # the METADATA setuptools wrote building rep 0.6.6's sdist (its multi-line Author is not
    # indented): the email parser, and so pip building by PEP 517, stops at its second line and
    # sees no Requires-Dist; pip running setup.py egg_info sees all 16. Both must accept a set.
    data = (DATA / "rep-0.6.6.METADATA").read_bytes()
    assert email.parser.BytesParser().parsebytes(data).get_all("Requires-Dist") is None
    md = parse_metadata(data, url="u", project="rep")
    assert len(md.requires_dist) == 16 and "matplotlib==1.5.1" in [str(r) for r in md.requires_dist]
    assert md.version == Version("0.6.6") and md.requires_python is None
    assert md.broken_headers and md.junk == ()  # pip reads it: not invalid metadata
    stripped = strip_description(data)
    assert b"Reproducible Experiment Platform is a collaborative" not in stripped
    assert parse_metadata(stripped, url="u", project="rep") == md
    assert strip_description(stripped) == stripped


def test_a_body_that_looks_like_headers_is_not_read() -> None:
    data = (b"Metadata-Version: 2.1\nName: ok\nVersion: 1.0\nRequires-Python: >=3.8\n"
            b"Requires-Dist: six\n\nUsage:\nRequires-Dist: not-a-dependency\nRequires-Python: <3\n")
    md = parse_metadata(data, url="u", project="ok")
    assert [str(r) for r in md.requires_dist] == ["six"]
    assert md.requires_python == SpecifierSet(">=3.8") and md.junk == () and not md.broken_headers
    assert strip_description(data) == data.partition(b"\n\n")[0] + b"\n"


def test_rows_of_a_version_choose_as_its_files_do_on_recorded_pages() -> None:
    """A version's rows (the page's columns, no file objects) against its files, on real
    pypi.org pages: the same files in the same order, and the same choices made of them (the
    metadata file, and the installability verdict without builds), every cell."""
    from stackmeta.index.installable import verdict
    from stackmeta.index.source import metadata_file
    from stackmeta.target import Target

    pages, laptops = _recorded_pages(["numpy", "tensorflow", "grpcio", "pyzmq", "six", "awkward-cpp", "pip"])
    chosen = yanked = 0
    for p in pages:
        assert p is not None
        for version in p.versions():
            files, rows = p.files_of(version), p.rows_of(version)
            assert [(f.filename, f.requires_python, f.yanked) for f in files] \
                == [(r.filename, r.requires_python, r.yanked) for r in rows]
            assert all(p.file_at(r.position) is f for r, f in zip(rows, files, strict=True))
            yanked += sum(r.yanked for r in rows)
            for python in ("2.7.18", "3.9.14", "3.13.1"):
                for platform in laptops:
                    target = Target(python=Version(python), platform=platform)
                    row, file = metadata_file(rows, target), metadata_file(files, target)
                    assert (row is None and file is None) \
                        or (row is not None and p.file_at(row.position) is file)
                    chosen += file is not None
                    assert verdict(rows, target, p.name, None, full=lambda r, p=p: p.file_at(r.position)) \
                        == verdict(files, target, p.name, None), (p.name, version, target)
    assert chosen > 1000 and yanked > 0


def test_packed_fields_read_back_exactly_in_half_the_room() -> None:
    """A file's packed fields come back exactly, compacted or not: pypi.org's URLs and lowercase
    hex digests as bytes (whatever bytes: a newline, a "0"), anything else as it is."""
    from stackmeta.index.simple import _compact, _unpack

    blake = "0a30" + "0a" * 30  # bytes a separator or the flag could be mistaken for
    sha, md = "ff" * 32, "1" + "0a" * 32
    cases = [
        (f"https://files.pythonhosted.org/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/", sha, "123",
         "2024-01-01T00:00:00.000Z", md),
        (f"https://files.pythonhosted.org/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}", sha, "", "", "1"),
        ("https://files.pythonhosted.org/packages/xy/zz/" + "0" * 60 + "/", "AB" * 32, "7", "", "0"),
        ("https://h/files/", "ab" * 31, "", "", "1" + "CD" * 32),
        ("../../pkg-1.0.tar.gz", "", "", "", ""),
        ("https://files.pythonhosted.org/packages/", " " + "ab" * 31 + "a", "1", "u", "1" + "ab" * 32),
    ]
    for fields in cases:
        packed = _compact(*fields)
        assert _unpack(packed) == fields, fields
        assert max(map(ord, packed)) < 256  # a byte a character
    assert len(_compact(*cases[0])) < 130 < len("\n".join(cases[0]))
    assert _compact(*cases[4])[0] == "0"  # nothing compacted


def test_requirements_with_the_same_marker_share_one_marker_object() -> None:
    """A target remembers what each marker object evaluates to: requirements of different
    projects with the same marker text share one object (evaluated once per target)."""
    from stackmeta.index.metadata import parse_metadata

    def md(name: str, extra: str) -> bytes:
        return (f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                f"Requires-Dist: typing-extensions; python_version < \"3.10\"\n"
                f"Requires-Dist: {extra}; python_version<'3.10'\n"
                f"Requires-Dist: colorama; sys_platform == \"win32\"\n").encode()

    one = parse_metadata(md("alpha", "six"), url="u", project="alpha").requires_dist
    two = parse_metadata(md("beta", "attrs"), url="u", project="beta").requires_dist
    assert one[0].marker is one[1].marker is two[0].marker is two[1].marker  # spelled two ways
    assert one[2].marker is two[2].marker and one[2].marker is not one[0].marker
    assert str(one[0].marker) == 'python_version < "3.10"'


def _whole(body: bytes, url: str, name: str, monkeypatch: pytest.MonkeyPatch) -> ProjectPage | str:
    """The page (or the error) as json.loads reads it all at once (not entry by entry)."""
    from stackmeta.index import simple

    with monkeypatch.context() as m:
        m.setattr(simple, "_streamed", lambda body, name: None)
        try:
            return parse_project_page(body, JSON_TYPE, url, name)
        except IndexAccessError as exc:
            return str(exc)


def _streamed_page(body: bytes, url: str, name: str) -> ProjectPage | str:
    try:
        return parse_project_page(body, JSON_TYPE, url, name)
    except IndexAccessError as exc:
        return str(exc)


def test_a_json_page_read_entry_by_entry_is_the_page_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every recorded JSON page of the CMSSW_14_0_0 snapshot (numpy's thousands of files
    included) gives the same page, file for file, read entry by entry as read whole."""
    from stackmeta.index.simple import _streamed

    simple = Path(__file__).parents[1] / "data" / "snapshots" / "CMSSW_14_0_0" / "simple"
    pages = sorted(simple.glob("*/index.json"))
    assert len(pages) > 300
    for path in pages:
        body, name = path.read_bytes(), path.parent.name
        url = f"https://pypi.org/simple/{name}/"
        assert _streamed(body, name) is not None, name  # read entry by entry indeed
        streamed, whole = _streamed_page(body, url, name), _whole(body, url, name, monkeypatch)
        assert isinstance(streamed, ProjectPage) and isinstance(whole, ProjectPage), name
        assert streamed == whole and list(streamed.filenames) == list(whole.filenames), name
        assert streamed.notes == whole.notes and streamed.api_version == whole.api_version, name


@pytest.mark.parametrize("body", [
    # odd but well-formed: the same page either way
    b'{"files": [], "name": "pkg"}',
    b' \n{ "meta" : {"api-version": "1.1"} , "name":"pkg" ,"files":[ '
    b'{"filename":"pkg-1.0.tar.gz","url":"https://h/pkg-1.0.tar.gz","hashes":{}} ] } \n',
    b'{"fil\\u0065s": [{"filename": "pkg-1.0.tar.gz", "url": "u"}], "name": "pkg"}',  # an escaped key
    b'{"files": [{"filename": "pkg-1.0.tar.gz", "url": "u"}], "files": [{"filename": "pkg-2.0.tar.gz", '
    b'"url": "v"}]}',  # the key twice: the last counts
    b'{"files": [{"filename": "pkg-1.0.tar.gz", "url": "u"}], "files": 3}',
    b'{"files": [{"filename": "other-1.0-py3-none-any.whl", "url": "u"}, '
    b'{"filename": "pkg-1.0.tar.gz", "url": "u", "yanked": "bad", "requires-python": ">=3.8",'
    b' "size": 12, "upload-time": "2020-01-01T00:00:00Z", "core-metadata": {"sha256": "ab"}}]}',
    '\ufeff{"files": []}'.encode(),  # a UTF-8 BOM
    '{"files": [{"filename": "pkg-1.0.tar.gz", "url": "u\u00e9"}]}'.encode("utf-16"),
    # not what a page is, or not JSON: the same error either way
    b'{"files": [{"filename": "pkg-1.0.tar.gz"}]}',
    b'{"files": [{"filename": "pkg-1.0.tar.gz", "url": "u"},]}',
    b'{"files": [], }',
    b'{"files": []} x',
    b'{"files": [], "meta": {"api-version": "2.0"}}',
    b'{"files": [], "name": "other"}',
    b'{"files": [], "name": 5}',
    b'{"files" [] }',
    b'["files"]',
    b'{"files": [1, 2]}',
    b'{"files": [{"filename": "pkg-1.0.tar.gz", "url": "u"}]',
    b'',
    b'\xff\xfe\x00',
])
def test_an_odd_json_page_reads_the_same_entry_by_entry(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://h/simple/pkg/"
    streamed, whole = _streamed_page(body, url, "pkg"), _whole(body, url, "pkg", monkeypatch)
    assert type(streamed) is type(whole) and streamed == whole
    if isinstance(streamed, ProjectPage) and isinstance(whole, ProjectPage):
        assert list(streamed.filenames) == list(whole.filenames) and streamed.notes == whole.notes

"""Parsing of real saved index pages (pypi.org, recorded for these tests) and of core metadata."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from stackmeta.errors import IndexAccessError
from stackmeta.index.metadata import parse_metadata
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

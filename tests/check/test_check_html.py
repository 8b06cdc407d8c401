"""``stackmeta check --platform all --format html``: a self-contained page, rendered by headless
Chromium (Debian's ``chromium``; the test is skipped when /usr/bin/chromium is missing), checked
on what a person sees: the DOM Chromium built (the matrix's cells, the per-platform shares) and
the pixels of a screenshot (green, yellow and red cells)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stackmeta.cli import main
from tests.check.test_platforms import LAPTOP_SNAPSHOT, SNAPSHOTS, write_laptop_locks

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: apt-get install -y chromium (Debian)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GREEN, YELLOW, RED = (0xD4, 0xF4, 0xDD), (0xFF, 0xF1, 0xC2), (0xF9, 0xD0, 0xD0)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


class Tables(HTMLParser):
    """The text of every cell of every table, by the table's id: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def by_first_column(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    head = rows[0]
    return {r[0]: dict(zip(head, r, strict=True)) for r in rows[1:]}


def png_colours(data: bytes) -> set[tuple[int, ...]]:
    """The colours of an 8-bit RGB or RGBA non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    channels = 3
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, _height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    colours = set()
    for at in range(0, len(raw), stride + 1):
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        colours.update(tuple(line[i:i + 3]) for i in range(0, stride, channels * 7))
        prev = line
    return colours


def write_page(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Path:
    out = tmp_path / "report.html"
    code = main(["check", "CMSSW_14_0_0", "--no-save", "--no-cache", "--platform", "all", "--format", "html",
                 "--out", str(out), *args])
    capsys.readouterr()
    assert code == 1
    return out


def test_the_page_is_self_contained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = write_page(tmp_path, capsys, "--index-url", (SNAPSHOTS / "CMSSW_14_0_0").as_uri()).read_text()
    assert page.startswith("<!DOCTYPE html>\n") and "<style>" in page
    for outside in ("<script", "<link", "src=", "@import", "url("):
        assert outside not in page
    # stdout when no --out
    assert main(["check", "CMSSW_14_0_0", "--no-save", "--no-cache", "--platform", "all", "--format", "html",
                 "--index-url", (SNAPSHOTS / "CMSSW_14_0_0").as_uri()]) == 1
    assert capsys.readouterr().out.rstrip("\n") == page.rstrip("\n")


@needs_chromium
def test_chromium_shows_the_matrix_for_python_3_9(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = write_page(tmp_path, capsys, "--index-url", (SNAPSHOTS / "CMSSW_14_0_0").as_uri())
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    parser = Tables()
    parser.feed(dom)
    matrix = by_first_column(parser.tables["matrix"])
    assert len(matrix) == 321
    assert matrix["tensorflow"] == {
        "package": "tensorflow", "version": "2.12.0", "linux-x86_64": "wheel", "linux-aarch64": "wheel",
        "macos-x86_64": "wheel", "macos-arm64": "none", "windows-amd64": "wheel"}
    assert matrix["psutil"]["linux-aarch64"] == "sdist"
    assert matrix["dxr"]["windows-amd64"] == "not PEP 440"
    summary = by_first_column(parser.tables["summary"])
    assert {p: s["from wheels"] for p, s in summary.items()} == {
        "linux-x86_64": "298/321 (93%)", "linux-aarch64": "294/321 (92%)", "macos-x86_64": "297/321 (93%)",
        "macos-arm64": "288/321 (90%)", "windows-amd64": "297/321 (93%)"}
    assert summary["macos-arm64"]["nothing installable"] == (
        "dxr==1.0.x, tensorflow==2.12.0, tensorflow-io-gcs-filesystem==0.32.0")

    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1400,1600", f"--screenshot={shot}", page.as_uri())
    colours = png_colours(shot.read_bytes())
    assert {GREEN, YELLOW, RED} <= colours


@needs_chromium
def test_chromium_shows_the_moves_for_python_3_12(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locks = write_laptop_locks(tmp_path / "locks")
    page = write_page(tmp_path, capsys, "--locks-dir", str(locks), "--python", "3.12",
                      "--index-url", LAPTOP_SNAPSHOT.as_uri())
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    parser = Tables()
    parser.feed(dom)
    matrix = by_first_column(parser.tables["matrix"])
    assert matrix["numpy"]["macos-arm64"] == "sdist \u2192 1.26.0"
    assert matrix["scipy"]["windows-amd64"] == "none \u2192 1.11.2"
    assert matrix["six"]["linux-aarch64"] == "wheel"
    summary = by_first_column(parser.tables["summary"])
    x86 = summary["linux-x86_64"]
    assert x86["from wheels"] == "18/28 (64%)"
    assert "tensorflow 2.12.0 \u2192 2.16.1" in x86["moved to the nearest version with a wheel"]
    holds = x86["does the moved set hold?"].splitlines()
    assert holds[0] == "NO: 4 new problems"
    assert holds[-1] == "and 1 the release has as pinned"


def test_out_a_folder_is_refused_before_any_request(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "CMSSW_14_0_0", "--no-save", "--no-cache", "--platform", "all", "--format", "html",
                 "--out", str(tmp_path), "--index-url", "http://127.0.0.1:9/simple"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path} is a folder: give the page's file name, e.g. "
        f"{tmp_path}/CMSSW_14_0_0.html\n")
    assert list(tmp_path.iterdir()) == []

"""Reading a wheel's METADATA by byte ranges (stackmeta.index.lazywheel), on zips written by
the standard library's zipfile: plain, zip64 (every size and offset in the central directory's
extra field), several ``.dist-info`` folders, and damaged ones."""

from __future__ import annotations

import io
import zipfile

import pytest

from stackmeta.index import lazywheel


def _reader(body: bytes) -> lazywheel.RangeReader:
    def read(start: int | None, end: int) -> lazywheel.Chunk:
        if start is None:  # the last *end* bytes
            start, end = max(0, len(body) - end), len(body) - 1
        return lazywheel.Chunk(data=body[start:end + 1], offset=start, total=len(body))
    return read


def _wheel(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


METADATA = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\nRequires-Dist: six\n"


def _files(n: int) -> dict[str, bytes]:
    return {f"demo_pkg/mod{i}.py": b"x = %d\n" % i for i in range(n)}


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_the_metadata_of_a_wheel_with_many_files(compression: int) -> None:
    body = _wheel({**_files(3000), "demo_pkg-1.0.dist-info/METADATA": METADATA,
                   "demo_pkg-1.0.dist-info/RECORD": b""}, compression=compression)
    data, requests = lazywheel.read_metadata(_reader(body), "demo-pkg", len(body))
    assert data == METADATA
    assert requests >= 2  # the central directory of 3000 files is larger than the first tail read


def test_the_project_s_own_dist_info_is_read_when_there_are_several() -> None:
    other = b"Metadata-Version: 2.1\nName: vendored\nVersion: 9\n"
    body = _wheel({"vendored-9.dist-info/METADATA": other, "docs/METADATA": b"not this",
                   "demo_pkg-1.0.dist-info/METADATA": METADATA, **_files(5)})
    assert lazywheel.read_metadata(_reader(body), "Demo.Pkg")[0] == METADATA
    assert lazywheel.read_metadata(_reader(body), "vendored")[0] == other
    # no dist-info of the project: the first one there is
    assert lazywheel.read_metadata(_reader(body), "elsewhere")[0] == other


def test_zip64_sizes_and_offsets_in_the_central_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile writes the zip64 extra field (sizes and offset 0xFFFFFFFF in the entry) past this limit
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 0)
    body = _wheel({**_files(20), "demo_pkg-1.0.dist-info/METADATA": METADATA})
    assert b"\xff\xff\xff\xff" in body
    assert lazywheel.read_metadata(_reader(body), "demo-pkg", len(body))[0] == METADATA


def test_a_zip_without_metadata_or_damaged_is_an_error() -> None:
    body = _wheel({**_files(5), "demo_pkg-1.0.dist-info/RECORD": b""})
    with pytest.raises(lazywheel.ZipReadError, match=r"no \.dist-info/METADATA"):
        lazywheel.read_metadata(_reader(body), "demo-pkg")
    good = _wheel({"demo_pkg-1.0.dist-info/METADATA": METADATA})
    at = good.index(b"PK\x01\x02")
    damaged = good[:at + 16] + b"\0\0\0\0" + good[at + 20:]  # the entry's CRC-32
    with pytest.raises(lazywheel.ZipReadError, match="CRC-32"):
        lazywheel.read_metadata(_reader(damaged), "demo-pkg")
    with pytest.raises(lazywheel.ZipReadError, match="not a zip"):
        lazywheel.read_metadata(_reader(b"\0" * 100), "demo-pkg")

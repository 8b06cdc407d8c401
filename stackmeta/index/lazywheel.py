"""A wheel's METADATA read with HTTP range requests, as pip's lazy wheel does.

Fetch the tail of the wheel, find the zip central directory (fetching the rest of it when the
tail did not hold it all), find ``<name>-<version>.dist-info/METADATA``, then fetch only that
member (often already inside the tail) and inflate it, checking its CRC-32. The zip reading is
pure: it works over a :class:`RangeReader`, which the client implements with HTTP.

What the zip says is untrusted: a central directory larger than ``MAX_CENTRAL`` or a METADATA
larger than ``MAX_METADATA`` (compressed, as announced, or as it inflates) raises
:class:`TooLarge` before anything that large is asked for or inflated; a malformed one
raises :class:`ZipReadError` (never ``struct.error``).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from stackmeta.index.metadata import MAX_METADATA

TAIL = 64 * 1024
MAX_CENTRAL = 64 << 20  # a central directory of ~600,000 files; real wheels stay far below

_EOCD = b"PK\x05\x06"
_EOCD64_LOC = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA$")
_METADATA_END = b".dist-info/METADATA"
# fields of a central directory entry: compression method (at 10, then time and date), CRC-32
# and sizes; the lengths of name, extra field and comment (at 28); the local header's offset (42)
_SIZES = struct.Struct("<H4xLLL")
_LENGTHS = struct.Struct("<3H")
_OFFSET = struct.Struct("<L")


class ZipReadError(Exception):
    """The bytes are not the zip (or the wheel) they should be."""


class TooLarge(Exception):
    """The zip announces (or inflates to) more than any real wheel's would: not read."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Chunk:
    """Bytes of the remote file: ``data`` starts at ``offset``; ``total`` is the file size."""

    data: bytes
    offset: int
    total: int


# A reader answers (start, end) inclusive, or (None, n) for the last n bytes.
RangeReader = Callable[[int | None, int], Chunk]


class _Sparse:
    def __init__(self, read: RangeReader) -> None:
        self._read = read
        self._chunks: list[Chunk] = []
        self.total = -1
        self.requests = 0

    def fetch(self, start: int | None, end: int) -> Chunk:
        chunk = self._read(start, end)
        self.requests += 1
        self.total = chunk.total
        self._chunks.append(chunk)
        return chunk

    def get(self, start: int, length: int) -> bytes:
        """Bytes [start, start+length), fetching them unless already held."""
        if start < 0 or length <= 0 or (self.total >= 0 and start + length > self.total):
            raise ZipReadError(f"bytes {start}-{start + length - 1} lie outside the file")
        if length > MAX_CENTRAL:
            raise TooLarge(f"a zip record of {length} bytes (more than {MAX_CENTRAL >> 20} MB)")
        for c in self._chunks:
            if c.offset <= start and start + length <= c.offset + len(c.data):
                return c.data[start - c.offset:start - c.offset + length]
        c = self.fetch(start, start + length - 1)
        if not (c.offset <= start and start + length <= c.offset + len(c.data)):
            raise ZipReadError(f"the server answered bytes {c.offset}-{c.offset + len(c.data)} "
                               f"for {start}-{start + length - 1}")
        return c.data[start - c.offset:start - c.offset + length]


def read_metadata(read: RangeReader, project: str, size: int | None = None) -> tuple[bytes, int]:
    """The METADATA bytes of the wheel behind *read*, and the number of requests made."""
    try:
        return _read_metadata(_Sparse(read), project, size)
    except (struct.error, ValueError, IndexError, OverflowError) as exc:  # what a mangled record gives
        raise ZipReadError(f"malformed zip ({exc})") from None


def _read_metadata(sparse: _Sparse, project: str, size: int | None) -> tuple[bytes, int]:
    tail = sparse.fetch(0, size - 1) if size is not None and size <= TAIL else sparse.fetch(None, TAIL)
    total = tail.total
    end_data = tail.data
    pos = end_data.rfind(_EOCD)
    while pos >= 0 and len(end_data) - pos < 22:
        pos = end_data.rfind(_EOCD, 0, pos)
    if pos < 0:
        raise ZipReadError("no end of central directory: not a zip file")
    eocd_at = tail.offset + pos
    (_, _, _, _, entries, cd_size, cd_offset, _) = struct.unpack("<4s4H2LH", end_data[pos:pos + 22])
    if cd_offset == 0xFFFFFFFF or cd_size == 0xFFFFFFFF or entries == 0xFFFF:
        loc = sparse.get(eocd_at - 20, 20)
        if loc[:4] != _EOCD64_LOC:
            raise ZipReadError("zip64 locator missing")
        (_, _, eocd64_at, _) = struct.unpack("<4sLQL", loc)
        rec = sparse.get(eocd64_at, 56)
        if rec[:4] != _EOCD64:
            raise ZipReadError("zip64 end of central directory missing")
        (_, _, _, _, _, _, _, entries, cd_size, cd_offset) = struct.unpack("<4sQ2H2L4Q", rec)
    if cd_offset + cd_size > total:
        raise ZipReadError("central directory beyond the end of the file")
    if cd_size > MAX_CENTRAL:
        raise TooLarge(f"a central directory of {cd_size} bytes (more than {MAX_CENTRAL >> 20} MB)")
    central = sparse.get(cd_offset, cd_size)
    member = _find_metadata(central, project)
    if member is None:
        raise ZipReadError("no .dist-info/METADATA in the wheel")
    method, crc, csize, usize, local_at, guess = member
    if max(csize, usize) > MAX_METADATA:
        raise TooLarge(f"METADATA of {max(csize, usize)} bytes (more than {MAX_METADATA >> 20} MB)")
    # one request for the local header and the data (the local extra field may differ from
    # the central one: ask for a little more, and again only if that was not enough)
    want = min(30 + guess + csize + 1024, total - local_at)
    block = sparse.get(local_at, want)
    if block[:4] != _LOCAL:
        raise ZipReadError("bad local file header")
    name_len, extra_len = struct.unpack("<2H", block[26:30])
    start = 30 + name_len + extra_len
    data = block[start:start + csize] if start + csize <= len(block) else sparse.get(local_at + start, csize)
    if method == 0:
        content = data
    elif method == 8:
        inflater = zlib.decompressobj(-15)
        try:
            content = inflater.decompress(data, MAX_METADATA + 1)
        except zlib.error as exc:
            raise ZipReadError(f"METADATA does not inflate: {exc}") from None
        if len(content) > MAX_METADATA:
            raise TooLarge(f"METADATA inflates past {MAX_METADATA >> 20} MB")
    else:
        raise ZipReadError(f"METADATA compressed with unsupported method {method}")
    if zlib.crc32(content) & 0xFFFFFFFF != crc:
        raise ZipReadError("METADATA fails its CRC-32")
    return content, sparse.requests


def _find_metadata(central: bytes, project: str) -> tuple[int, int, int, int, int, int] | None:
    """The METADATA entry of *project*'s ``.dist-info`` in the central directory (or of
    another ``.dist-info`` when none is *project*'s): (method, crc, compressed and full size,
    local header offset, name and extra lengths). Walked entry by entry, as zipfile does; only a
    name ending in ``/METADATA`` is decoded (a wheel holds thousands of files)."""
    wanted = canonicalize_name(project)
    found: list[tuple[bool, tuple[int, int, int, int, int, int]]] = []
    pos, size = 0, len(central)
    while pos + 46 <= size and central.startswith(_CENTRAL, pos):
        nlen, xlen, clen = _LENGTHS.unpack_from(central, pos + 28)
        start = pos + 46
        if central.endswith(_METADATA_END, start, start + nlen):
            m = _METADATA.match(central[start:start + nlen].decode("utf-8", "replace"))
            if m:
                method, crc, csize, usize = _SIZES.unpack_from(central, pos + 10)
                (local_at,) = _OFFSET.unpack_from(central, pos + 42)
                if 0xFFFFFFFF in (csize, usize, local_at):
                    extra = central[start + nlen:start + nlen + xlen]
                    usize, csize, local_at = _zip64_extra(extra, usize, csize, local_at)
                dist = m.group(1).rsplit("-", 1)[0]
                entry = (method, crc, csize, usize, local_at, nlen + xlen)
                found.append((canonicalize_name(dist) == wanted, entry))
        pos = start + nlen + xlen + clen
    if not found:
        return None
    found.sort(key=lambda x: not x[0])
    return found[0][1]


def _zip64_extra(extra: bytes, usize: int, csize: int, local_at: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        hid, hlen = struct.unpack("<2H", extra[pos:pos + 4])
        if hid == 1:
            body = extra[pos + 4:pos + 4 + hlen]
            vals = [struct.unpack("<Q", body[i:i + 8])[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if local_at == 0xFFFFFFFF:
                local_at = next(it, local_at)
            return usize, csize, local_at
        pos += 4 + hlen
    raise ZipReadError("zip64 sizes missing")

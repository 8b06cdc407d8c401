"""Reading ahead (Memo.read_ahead, Memo.ahead): a search that goes through a project's versions
one by one asks, when the cache is cold, for the metadata of the next ones at once (through the
client's worker threads) instead of one request after another on the main thread; when the
metadata is at hand (a warm cache) it asks for nothing. Real parts: wheels on a static index
served on loopback (metadata read by range requests), the real client and its disk cache."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from stackmeta.index import IndexClient, IndexSource
from stackmeta.resolve.provider import Memo
from stackmeta.target import Target
from tests.httpserver import StaticServer
from tests.pypiserver_fixture import make_wheel

T39 = Target(python=Version("3.9.14"))
NAME = canonicalize_name("many")
WHEELS = [f"1.{i}" for i in range(12)]  # each requires six
SDIST_ONLY = "1.3"  # no wheel: never read ahead (its sdist is built or downloaded, not guessed)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    root = tmp_path_factory.mktemp("index")
    links = []
    for version in WHEELS:
        if version == SDIST_ONLY:
            sdist = root / "files" / f"many-{version}.tar.gz"
            sdist.write_bytes(b"not read in this test")
            path = sdist
        else:
            path = make_wheel(root / "files", "many", version, requires=["six"])
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        links.append(f'<a href="../../files/{path.name}#sha256={sha}">{path.name}</a>')
    page = root / "simple" / "many" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    with StaticServer(root, negotiate=False) as server:
        yield server


def _client(server: StaticServer, cache: Path) -> IndexClient:
    return IndexClient(server.url + "/simple", cache, retries=0, timeout=5.0)


def _wheel_reads(server: StaticServer) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path, _ in server.log if path.endswith(".whl")}


def test_a_cold_cache_reads_the_next_versions_at_once_a_warm_one_nothing_more(
        index: StaticServer, tmp_path: Path) -> None:
    order = [Version(v) for v in WHEELS]
    with _client(index, tmp_path / "cache") as client:
        source = IndexSource(client, T39)
        source.prefetch([NAME])
        memo = Memo(source)
        index.clear()
        # cold: the first version's metadata is not at hand, so the next 8 (those with a wheel)
        # are asked for at once
        assert memo.read_ahead(NAME, order, 0) is True
        read = _wheel_reads(index)
        assert read == {f"many-{v}-py3-none-any.whl" for v in WHEELS[:8] if v != SDIST_ONLY}
        assert all(source.at_hand(NAME, Version(v)) for v in WHEELS[:8] if v != SDIST_ONLY)
        assert not source.at_hand(NAME, Version(WHEELS[8]))
        # what was read ahead is what the search then reads: no request more
        index.clear()
        deps = [memo.dependencies(NAME, v) for v in order[:3]]
        assert [[str(r) for r in d or ()] for d in deps] == [["six"]] * 3
        assert index.log == []
        # at a version already read, nothing is asked
        assert memo.read_ahead(NAME, order, 1) is False and index.log == []
        # going through every version: at the first one not at hand (1.3, an sdist: the three
        # before it were read), the next versions with a wheel up to 8 on are asked for at once
        index.clear()
        walk = memo.ahead(NAME, order)
        assert [next(walk) for _ in range(4)] == order[:4]
        assert _wheel_reads(index) == {f"many-{v}-py3-none-any.whl" for v in WHEELS[8:11]}
        assert not source.at_hand(NAME, Version(WHEELS[11]))
        assert list(walk) == order[4:]
        wheels = [i for i, v in enumerate(WHEELS) if v != SDIST_ONLY]
        assert all(memo.dependencies(NAME, order[i]) for i in wheels)
    # warm: a new client on the same cache has every wheel's metadata at hand and asks for none
    with _client(index, tmp_path / "cache") as client:
        source = IndexSource(client, T39)
        source.prefetch([NAME])
        memo = Memo(source)
        index.clear()
        assert all(memo.read_ahead(NAME, order, i) is False for i in wheels)
        assert list(memo.ahead(NAME, order)) == order
        assert _wheel_reads(index) == set()
        assert [str(r) for r in memo.dependencies(NAME, order[-1]) or ()] == ["six"]
        assert _wheel_reads(index) == set()


def test_what_a_search_was_asked_is_the_same_from_a_cold_cache_and_a_warm_one(
        index: StaticServer, tmp_path: Path) -> None:
    # reading ahead asks whether the next versions have a wheel only from a cold cache: those
    # questions are not the search's, so another cell's sameness check (Answers.same) does not
    # depend on what the cache held
    order = [Version(v) for v in WHEELS]
    asked = []
    for _ in ("cold", "warm"):
        with _client(index, tmp_path / "cache") as client:
            source = IndexSource(client, T39)
            source.prefetch([NAME])
            memo = Memo(source)
            walk = memo.ahead(NAME, order)
            assert [next(walk) for _ in range(2)] == order[:2]
            for v in order[:2]:
                memo.has_wheel(NAME, v, T39)
                memo.dependencies(NAME, v)
            asked.append(memo.answers())
    cold, warm = asked
    assert cold.wheels == warm.wheels == ((NAME, (order[0], order[1]), frozenset(order[:2])),)
    assert cold == warm

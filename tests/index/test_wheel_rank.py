"""Which wheels a target can install, and in what order (:meth:`stackmeta.target.Target.wheel_rank`),
checked against packaging's own reading of each name: the rank is remembered per tag part of the
name, so names that share tags but differ in validity must still be judged apart."""

from __future__ import annotations

import pytest
from packaging import tags
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from stackmeta.target import Target, platform_tags

NAMES = [
    "numpy-1.24.3-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-1.24.3-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-1.24.3-cp39-cp39-macosx_11_0_arm64.whl",
    "numpy-1.24.3-cp39-cp39-win_amd64.whl",
    "numpy-1.24.3-cp39-cp39-musllinux_1_1_x86_64.whl",
    "numpy-1.24.3-pp39-pypy39_pp73-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "six-1.16.0-py2.py3-none-any.whl",
    "awkward_cpp-13-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "scipy-1.11.1-cp39-abi3-manylinux_2_28_x86_64.whl",
    "cryptography-41.0.3-cp37-abi3-manylinux_2_28_x86_64.whl",
    "Pillow-9.5.0-1-cp39-cp39-manylinux_2_28_x86_64.whl",  # a build tag
    "bad-not.a.version!-py3-none-any.whl",  # fits every target by its tags, but not a valid name
    "also-bad-py3-none-any-extra.whl",
    "six-1.16.0.tar.gz",
    "six-1.16.0-PY3-NONE-ANY.whl",
]
TARGETS = [Target(python=Version(p), platform=pl) for p in ("3.9", "3.12")
           for pl in ("linux-x86_64", "macos-arm64", "windows-amd64")]


def _expected(target: Target, filename: str) -> int | None:
    plats = platform_tags(target.platform)
    order = {tag: i for i, tag in enumerate(tags.cpython_tags(target.python_minor, platforms=plats))}
    order.update({tag: len(order) + i for i, tag in enumerate(
        tags.compatible_tags(target.python_minor, platforms=plats))})
    try:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
    except ValueError:
        return None
    ranks = [order[t] for t in wheel_tags if t in order]
    return min(ranks) if ranks else None


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_wheel_rank_fits_exactly_the_wheels_packaging_accepts(target: Target) -> None:
    for name in NAMES:
        assert (target.wheel_rank(name) is None) == (_expected(target, name) is None), (target, name)
    fitting = [n for n in NAMES if target.wheel_rank(n) is not None]
    # lower is better: a wheel built for this Python and platform before the pure one
    pure = target.wheel_rank("six-1.16.0-py2.py3-none-any.whl")
    assert pure is not None
    assert all(rank < pure for n in fitting if "none-any" not in n.lower()
               for rank in [target.wheel_rank(n)] if rank is not None)
    assert len(fitting) >= 2
    # a name whose tags fit but which is not a wheel's name is turned down, after a valid one
    # with the same tags was judged (the rank is remembered by tags)
    assert target.wheel_rank("bad-not.a.version!-py3-none-any.whl") is None


def test_a_markers_answer_is_its_own_per_target_and_extras() -> None:
    """Target.evaluate remembers answers per marker object: the same object asked for other
    targets and extras gets their own answers, and an equal marker made anew is evaluated (not
    taken for another by its id)."""
    from packaging.markers import Marker

    marker = Marker('python_version >= "3.10" and sys_platform == "darwin" or extra == "cuda"')
    mac310 = Target(python=Version("3.10"), platform="macos-arm64")
    mac39 = Target(python=Version("3.9"), platform="macos-arm64")
    linux310 = Target(python=Version("3.10"), platform="linux-x86_64")
    asked = [(mac310, frozenset()), (mac39, frozenset()), (linux310, frozenset()),
             (linux310, frozenset({"cuda"})), (mac39, frozenset({"cuda"}))]
    want = [True, False, False, True, True]
    for _ in range(2):  # the second time from what was remembered
        assert [t.evaluate(marker, extras) for t, extras in asked] == want
    for _ in range(50):  # fresh objects, ids reused as they die: each evaluated as itself
        assert linux310.evaluate(Marker('sys_platform == "linux"')) is True
        assert linux310.evaluate(Marker('sys_platform == "win32"')) is False

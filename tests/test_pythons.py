"""Finding this machine's interpreters (stackmeta.pythons), for real: each probe runs the
interpreter."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stackmeta import pythons
from stackmeta.once import Once


def test_an_interpreter_is_probed_once_however_many_threads_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    minor = (sys.version_info[0], sys.version_info[1])
    monkeypatch.setattr(pythons, "_found", Once())  # nothing found yet in this process
    probed: list[str] = []
    real = subprocess.run

    def run(cmd: Any, **kwargs: Any) -> Any:
        probed.append(str(cmd[0]))
        return real(cmd, **kwargs)

    monkeypatch.setattr(pythons.subprocess, "run", run)
    with ThreadPoolExecutor(16) as pool:  # as a resolve's request threads ask at once
        found = set(pool.map(lambda _: pythons.find_minor(minor), range(32)))
    assert len(found) == 1 and None not in found
    assert probed and len(probed) == len(set(probed))  # each candidate run once at most
    assert probed[-1] == found.pop()  # the last one probed is the one that answered
    assert pythons.find_minor((1, 9)) is None  # no such Python: None, and remembered
    assert pythons._found.has((1, 9))

"""A computation per key done once however many threads ask at once (the others wait for it):
the index client's pages and metadata, sdist builds, the tools' smoke runs, the interpreters
found on this machine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """Results by key. :meth:`get` computes a key's result once; an exception is not
    remembered, nor a result *keep* refuses (it is computed again when asked again)."""

    def __init__(self, keep: Callable[[T], bool] = lambda _: True) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._results: dict[Hashable, T] = {}

    def peek(self, key: Hashable) -> T | None:
        """The key's result if there is one; never computes."""
        with self._lock:
            return self._results.get(key)

    def has(self, key: Hashable) -> bool:
        """Whether the key has a result; never computes."""
        with self._lock:
            return key in self._results

    def put(self, key: Hashable, value: T) -> T:
        """Remember *value* for *key* unless a result is there already; the result kept."""
        with self._lock:
            return self._results.setdefault(key, value)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._results:
                return self._results[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._results:
                    return self._results[key]
            result = compute()
            if self._keep(result):
                with self._lock:
                    self._results[key] = result
            return result

"""Giving free heap memory back: a call that works on glibc and is harmless elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from monitor import heap


def test_gives_back_where_the_c_library_can(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: type(
        "Libc", (), {"malloc_trim": staticmethod(trim)})())
    try:
        assert heap.give_back() is True
        assert calls == [0]
    finally:
        heap._malloc_trim.cache_clear()


@pytest.mark.parametrize("problem", ["no libc", "no malloc_trim"])
def test_nothing_happens_without_malloc_trim(monkeypatch: pytest.MonkeyPatch,
                                             problem: str) -> None:
    heap._malloc_trim.cache_clear()
    if problem == "no libc":
        monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    else:
        monkeypatch.setattr(ctypes, "CDLL", lambda name: object())
    try:
        assert heap.give_back() is False
    finally:
        heap._malloc_trim.cache_clear()


def test_the_real_call_runs_here() -> None:
    """This machine runs glibc (Debian): the call is made and returns."""
    heap._malloc_trim.cache_clear()
    assert heap.give_back() is True

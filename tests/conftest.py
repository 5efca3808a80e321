"""Shared fixture for the tests that use real sockets: a background event loop.

Rule: real UDP on 127.0.0.1, short timeouts, no pytest-asyncio (tests call `asyncio.run` or use
the background loop below, which also plays "the other peer" while a blocking call runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

class BackgroundLoop:
    """An event loop in a thread: run servers and peers there while the test thread blocks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `coro` on the loop; returns a future the test thread can wait on."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        """Run `coro` on the loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def background() -> Iterator[BackgroundLoop]:
    """A fresh background event loop, stopped after the test."""
    bg = BackgroundLoop()
    yield bg
    bg.close()

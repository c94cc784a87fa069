"""The lifecycle of a background duty: a task that runs while a context is open.

aiohttp's ``cleanup_ctx`` pattern as a plain async context manager: the duty starts on entry
and is cancelled, and awaited, on exit, so a daemon that stops leaves no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def background(work: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    task = asyncio.create_task(work())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

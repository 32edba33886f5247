"""Run pyHanko's async API from synchronous code, whether or not an event loop is running.

pyHanko 0.38 is async-first; our service layer is synchronous but may be called from inside
FastAPI's loop, where ``asyncio.run`` refuses to nest — so in that case the coroutine runs on a
short-lived helper thread with its own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    # Decide outside the ``except`` block so the probe's RuntimeError is not chained as the
    # __context__ of every exception raised inside the coroutine.
    if not _loop_running():
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

"""Awaiting a library's coroutine so that a cancellation always reaches the caller.

On Python 3.11, ``asyncio.wait_for`` returns its result instead of raising when the
cancellation of the task arrives together with that result (CPython gh-86296; fixed in 3.12).
Libraries that wait with it (pymodbus for every Modbus reply, aiomqtt for every publish and
subscribe) can so swallow a cancellation: a poll or publish loop cancelled at that moment runs
on for ever, and whoever waits for it (a task group stopping a station) waits for ever too.
:func:`cancellable` runs such a coroutine in a task of its own and only waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def cancellable(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` in a task of its own, so that cancelling the caller always raises
    :class:`asyncio.CancelledError` in the caller, even if the awaitable swallows it. On
    cancellation the inner task is cancelled and waited for (a connection is never used by
    an exchange the caller has left)."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait([task])
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the caller is cancelled, the outcome is moot
        raise
    return task.result()

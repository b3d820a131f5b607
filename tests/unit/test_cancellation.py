"""A cancellation of a Modbus exchange is never lost: pymodbus awaits its replies with
``asyncio.wait_for``, which on Python 3.11 returns the reply instead of raising when the
cancellation arrives together with it (a station's poll loop then polled on for ever and the
station never stopped). No sockets: the reply is a future set at the moment of the cancel."""

from __future__ import annotations

import asyncio

import pytest

from cellrig.drivers.cancellation import cancellable


async def test_a_cancellation_that_arrives_with_the_reply_reaches_the_caller() -> None:
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    inner_ended: list[str] = []

    async def exchange() -> str:  # as pymodbus awaits a reply
        try:
            return await asyncio.wait_for(reply, timeout=5.0)
        finally:
            inner_ended.append("ended")

    caller = asyncio.create_task(cancellable(exchange()))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the exchange is waiting for its reply
    reply.set_result("reply")
    caller.cancel()  # in the same turn of the loop as the reply
    async with asyncio.timeout(5.0):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert inner_ended == ["ended"]  # the exchange was waited for, not left running


async def test_a_reply_and_an_error_pass_through() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 7

    async def fail() -> int:
        await asyncio.sleep(0)
        raise ValueError("no")

    assert await cancellable(answer()) == 7
    with pytest.raises(ValueError, match="no"):
        await cancellable(fail())


async def test_a_timeout_around_it_still_fires() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancellable(asyncio.wait_for(never, timeout=5.0))

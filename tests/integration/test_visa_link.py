"""The VISA link through real pyvisa-py (``TCPIP::…::SOCKET``) against the SCPI server and its
wire faults: round trips, the lock, timeouts and resynchronisation, dropped connections,
garbage, reconnecting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.visa_link import VisaLink
from cellrig.errors import ConnectionLost, InstrumentTimeout, MalformedReply
from cellrig.simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.integration


class Echo:
    """Answers ``X?`` with ``X``; counts the commands it took."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    async def execute(self, message: str) -> str | None:
        self.commands.append(message)
        return message[:-1] if message.endswith("?") else None

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[ScpiServer]:
    async with ScpiServer(Echo()) as served:
        yield served


def link(server: ScpiServer, timeout_s: float = 0.3) -> VisaLink:
    return VisaLink(server.resource, instrument="echo", timeout_s=timeout_s, margin_s=0.5)


async def test_round_trips_and_the_lock(server: ScpiServer) -> None:
    async with link(server) as visa:
        assert await visa.query("A?") == "A"
        await visa.write("SET 1")

        async def pair(name: str) -> tuple[str, str]:
            async with visa.lock:
                return await visa.query(f"{name}1?"), await visa.query(f"{name}2?")

        results = await asyncio.gather(*(pair(f"Q{n}") for n in range(10)))
    assert results == [(f"Q{n}1", f"Q{n}2") for n in range(10)]


async def test_a_timeout_names_the_exchange_and_the_late_reply_is_dropped(
        server: ScpiServer) -> None:
    async with link(server) as visa:
        server.faults.delay_s = 0.5
        with pytest.raises(InstrumentTimeout) as caught:
            await visa.query("LATE?")
        assert (caught.value.instrument, caught.value.address, caught.value.command) == (
            "echo", server.resource, "LATE?")
        server.faults.delay_s = 0.0
        await asyncio.sleep(0.3)  # the late reply arrives
        assert await visa.query("NEXT?") == "NEXT"


async def test_a_connection_dropped_mid_reply_is_lost_then_reopened(
        server: ScpiServer) -> None:
    async with link(server) as visa:
        server.faults.drop_mid_reply = 1
        with pytest.raises(ConnectionLost, match="closed the connection"):
            await visa.query("HALF?")
        assert not visa.is_open
        with pytest.raises(ConnectionLost, match="not connected"):
            await visa.query("X?")
        await visa.reopen(Backoff(initial_s=0.01, max_s=0.05))
        assert await visa.query("WHOLE?") == "WHOLE"
    assert server.connections == 2


async def test_a_peer_that_closed_is_noticed_before_waiting(server: ScpiServer) -> None:
    async with link(server, timeout_s=2.0) as visa:
        assert await visa.query("A?") == "A"
        await server.close()  # the instrument goes away between two exchanges
        started = time.monotonic()
        with pytest.raises(ConnectionLost):
            await visa.query("C?")
        assert time.monotonic() - started < 1.0


async def test_garbage_is_a_malformed_reply_and_the_link_goes_on(server: ScpiServer) -> None:
    async with link(server) as visa:
        server.faults.garble_replies = 1
        with pytest.raises(MalformedReply, match="undecodable"):
            await visa.query("G?")
        assert await visa.query("CLEAN?") == "CLEAN"


async def test_nothing_listening_is_a_lost_connection_retried_with_backoff() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    visa = VisaLink(f"TCPIP::127.0.0.1::{port}::SOCKET", instrument="nobody", timeout_s=0.3,
                    open_timeout_s=0.5)
    with pytest.raises(ConnectionLost, match="cannot open"):
        await visa.open()
    delays: list[float] = []

    async def no_wait(delay_s: float) -> None:
        delays.append(delay_s)

    with pytest.raises(ConnectionLost):
        await visa.reopen(Backoff(initial_s=0.1, max_s=1.0, jitter=0.0), attempts=3,
                          sleep=no_wait)
    assert delays == [0.1, 0.2]
    await visa.close()

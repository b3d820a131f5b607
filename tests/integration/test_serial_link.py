"""The serial link against the emulators' line server, through real pyserial transports:
a pseudo-terminal and a ``socket://`` URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.serial_link import SerialLink
from cellrig.errors import ConnectionLost, InstrumentTimeout, MalformedReply
from cellrig.simulators.line_server import LineServer, LineSession


class Upper:
    """Answers every line with it in capitals; ``MANY n`` answers n lines then ``END``."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def on_line(self, line: str, session: LineSession) -> None:
        self.received.append(line)
        if line.startswith("many "):
            for index in range(int(line.split()[1])):
                await session.send_line(f"LINE {index}")
            await session.send_line("END")
        elif line != "quiet":
            await session.send_line(line.upper())


@pytest.fixture(params=["tcp", "pty"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LineServer, str]]:
    server = LineServer(Upper(), read_terminator=b"\r\n", write_terminator=b"\r\n")
    url = await server.start_tcp() if request.param == "tcp" else server.start_pty()
    yield server, url
    await server.close()


async def test_query_round_trip(served: tuple[LineServer, str]) -> None:
    _server, url = served
    async with SerialLink(url, instrument="upper", timeout_s=2.0) as link:
        assert await link.query("temp?") == "TEMP?"
        lines = await link.query_lines("many 3", until=lambda line: line == "END")
        assert lines == ["LINE 0", "LINE 1", "LINE 2", "END"]


async def test_concurrent_queries_do_not_interleave(served: tuple[LineServer, str]) -> None:
    _server, url = served
    async with SerialLink(url, instrument="upper", timeout_s=2.0) as link:
        replies = await asyncio.gather(*(link.query(f"q{n}") for n in range(20)))
    assert replies == [f"Q{n}" for n in range(20)]


async def test_timeout_then_resynchronised(served: tuple[LineServer, str]) -> None:
    server, url = served
    async with SerialLink(url, instrument="upper", timeout_s=0.2) as link:
        server.faults.delay_s = 0.4
        with pytest.raises(InstrumentTimeout) as caught:
            await link.query("late")
        assert caught.value.command == "late" and caught.value.address == url
        assert "upper at " in str(caught.value)
        server.faults.delay_s = 0.0
        await asyncio.sleep(0.35)          # the late reply arrives now and must be dropped
        assert await link.query("next") == "NEXT"


async def test_swallowed_and_garbled_replies(served: tuple[LineServer, str]) -> None:
    server, url = served
    async with SerialLink(url, instrument="upper", timeout_s=0.2) as link:
        server.faults.swallow_replies = 1
        with pytest.raises(InstrumentTimeout):
            await link.query("lost")
        assert await link.query("again") == "AGAIN"
        server.faults.garble_replies = 1
        with pytest.raises(MalformedReply):
            await link.query("garbled")
        assert await link.query("fine") == "FINE"


async def test_dropped_connection_is_reported_and_reopened() -> None:
    server = LineServer(Upper(), read_terminator=b"\r\n")
    url = await server.start_tcp()
    try:
        async with SerialLink(url, instrument="upper", timeout_s=1.0) as link:
            server.faults.disconnect = True
            with pytest.raises(ConnectionLost):
                await link.query("bye")
            with pytest.raises(ConnectionLost):
                await link.query("closed")
            server.faults.disconnect = False
            await link.reopen(Backoff(initial_s=0.01, max_s=0.05))
            assert await link.query("back") == "BACK"
    finally:
        await server.close()


async def test_reopen_gives_up_after_bounded_attempts() -> None:
    server = LineServer(Upper())
    url = await server.start_tcp()
    await server.close()
    slept: list[float] = []

    async def record(delay_s: float) -> None:
        slept.append(delay_s)

    link = SerialLink(url, instrument="upper")
    with pytest.raises(ConnectionLost) as caught:
        await link.reopen(Backoff(initial_s=0.1, max_s=0.3, jitter=0.5), attempts=4, sleep=record)
    assert "cannot open" in str(caught.value)
    assert len(slept) == 3
    assert 0.05 <= slept[0] <= 0.1 and all(delay <= 0.3 for delay in slept)
    assert slept[2] >= 0.15


def test_backoff_is_bounded_and_jittered() -> None:
    import random
    delays = Backoff(initial_s=1.0, max_s=8.0, factor=2.0, jitter=0.25).delays(random.Random(1))
    drawn = [next(delays) for _ in range(10)]
    assert all(0.75 <= d <= 8.0 for d in drawn)
    assert drawn[-1] >= 6.0 and len(set(drawn)) == len(drawn)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=0.0)

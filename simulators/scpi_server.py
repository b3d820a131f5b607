"""Serve an emulated SCPI instrument on a raw TCP socket, with wire faults.

LAN instruments take SCPI on a raw socket (port 5025 on Keithley, Keysight and Tektronix
boxes): one program message per line ending in ``\\n``, one reply line per message that holds a
query. :class:`ScpiServer` serves an emulator's :meth:`ScpiInstrument.execute` that way, so
pyvisa-py reaches it as ``TCPIP::127.0.0.1::<port>::SOCKET`` (:attr:`ScpiServer.resource`),
exactly as it reaches hardware. Messages from all connections are executed one at a time.

:class:`ScpiFaults` makes the wire misbehave on purpose, for the drivers' error handling:
drop the connection in the middle of a reply, answer garbage, stop answering (commands are
still executed), or answer late. Instrument-reported errors are the emulator's (its event
log), not the wire's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

log = logging.getLogger(__name__)

#: What a garbled reply looks like: bytes that are not ASCII, then the terminator.
GARBAGE = b"\xfe\x15#?\x80\xff"


class ScpiInstrument(Protocol):
    """An emulated instrument: runs program messages, answers queries."""

    async def execute(self, message: str) -> str | None:
        """Run one program message; the reply line, or None when there is nothing to send."""
        ...

    async def aclose(self) -> None:
        """Stop whatever the instrument runs in the background."""
        ...


@dataclass
class ScpiFaults:
    """Faults applied to replies; counters count down as replies go out."""

    drop_mid_reply: int = 0
    """the next N replies are cut in half and the connection is closed"""
    garble_replies: int = 0
    """the next N replies are replaced by bytes that are not ASCII"""
    silent: bool = False
    """execute commands but send nothing until cleared"""
    delay_s: float = 0.0
    """send every reply this late (real seconds)"""


class ScpiServer:
    """A raw-socket SCPI server for one instrument; ``async with`` starts and stops it."""

    def __init__(self, instrument: ScpiInstrument, *, host: str = "127.0.0.1", port: int = 0,
                 faults: ScpiFaults | None = None) -> None:
        self.instrument = instrument
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else ScpiFaults()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._lock = asyncio.Lock()
        self._closing = False

    @property
    def resource(self) -> str:
        """The VISA resource string a client opens."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    async def start(self) -> None:
        """Listen (on a free port when ``port`` is 0)."""
        self._closing = False
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, close every connection, stop the instrument's background work."""
        server, self._server = self._server, None
        self._closing = True
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()
        await self.instrument.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:  # accepted just before the server closed
            writer.close()
            return
        self._writers.add(writer)
        self.connections += 1
        buffer = b""
        try:
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    message = raw.decode("ascii", errors="replace").strip("\r")
                    async with self._lock:
                        reply = await self.instrument.execute(message)
                    if reply is not None:
                        await self._send(writer, reply)
        except (ConnectionError, OSError) as error:
            log.debug("SCPI connection ended: %s", error)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, reply: str) -> None:
        faults = self.faults
        if faults.silent:
            return
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        payload = reply.encode("ascii") + b"\n"
        if faults.drop_mid_reply > 0:
            faults.drop_mid_reply -= 1
            writer.write(payload[: max(1, len(payload) // 2)])
            await writer.drain()
            writer.close()
            return
        if faults.garble_replies > 0:
            faults.garble_replies -= 1
            payload = GARBAGE + b"\n"
        writer.write(payload)
        await writer.drain()

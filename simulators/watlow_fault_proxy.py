"""A Modbus TCP forwarder that makes the wire misbehave on purpose.

It sits between drivers and a pymodbus server, passes requests through unchanged and applies
:class:`ModbusWireFaults` to the replies, frame by frame (Modbus TCP frames carry their length
in the MBAP header): swallow them (the device "did not answer"), replace them by bytes that
frame as nothing (garbage), send the first bytes of a reply and drop the connection, or go
silent altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

_MBAP_BYTES = 6
"""transaction id, protocol id and length precede the rest of every Modbus TCP frame"""


@dataclass
class ModbusWireFaults:
    """Faults applied to replies; the counters count down as replies go by."""

    swallow_replies: int = 0
    """the next N replies are not sent"""
    garble_replies: int = 0
    """the next N replies are replaced by bytes that frame as no reply"""
    drop_mid_reply: bool = False
    """send the first half of each reply, then close the connection (until cleared)"""
    silent: bool = False
    """send nothing until cleared"""


class FaultProxy:
    """Listens for clients and forwards each to ``upstream`` with the faults applied."""

    def __init__(self, upstream: tuple[str, int], faults: ModbusWireFaults | None = None) -> None:
        self.upstream = upstream
        self.faults = faults if faults is not None else ModbusWireFaults()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening, close every connection and wait for the forwarding to end."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            async with asyncio.TaskGroup() as group:
                requests = group.create_task(self._pump(reader, upstream_writer),
                                             name="modbus-proxy.requests")
                replies = group.create_task(self._replies(upstream_reader, writer),
                                            name="modbus-proxy.replies")
                await asyncio.wait({requests, replies}, return_when=asyncio.FIRST_COMPLETED)
                for direction in (requests, replies):
                    direction.cancel()          # one side ended: end the other one too
        except (ConnectionError, OSError) as error:
            log.debug("modbus proxy connection ended: %s", error)
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await end.wait_closed()
            self._handlers.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()

    async def _replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while data := await reader.read(4096):
            buffer += data
            while len(buffer) >= _MBAP_BYTES:
                size = _MBAP_BYTES + int.from_bytes(buffer[4:6], "big")
                if len(buffer) < size:
                    break
                frame, buffer = buffer[:size], buffer[size:]
                if not await self._send(frame, writer):
                    return

    async def _send(self, frame: bytes, writer: asyncio.StreamWriter) -> bool:
        """Send one reply frame as the faults say; False once the connection is dropped."""
        faults = self.faults
        if faults.silent:
            return True
        if faults.drop_mid_reply:
            writer.write(frame[: len(frame) // 2])
            await writer.drain()
            return False
        if faults.swallow_replies > 0:
            faults.swallow_replies -= 1
            return True
        if faults.garble_replies > 0:
            faults.garble_replies -= 1
            frame = b"\x15?#" + frame[::-1][:5] + b"\xfe"
        writer.write(frame)
        await writer.drain()
        return True

"""Serve an instrument's line protocol on a pseudo-terminal and on TCP, with wire faults.

The emulators of serial instruments (ESPEC, Alicat, Mark-10, PalmSens MethodSCRIPT) speak their
protocol through this server, so a driver reaches an emulator exactly as it reaches hardware:
through pyserial on a device path (the pseudo-terminal's slave, e.g. ``/dev/pts/7``) or through
a ``socket://127.0.0.1:PORT`` URL (a terminal server). An emulator is a :class:`LineHandler`;
it gets each received line and answers through the :class:`LineSession` it was given, at once
or later (a MethodSCRIPT measurement streams packets while it runs).

:class:`WireFaults` makes the wire misbehave on purpose — swallow replies, garble them, delay
them, drop the connection — so drivers' recovery is tested against the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

#: How long closing waits for the connections' handlers to return.
CLOSE_WAIT_S = 1.0


@dataclass
class WireFaults:
    """Faults applied to what the server sends; counters count down as replies go out."""

    swallow_replies: int = 0
    """the next N reply lines are not sent (the instrument "did not answer")"""
    garble_replies: int = 0
    """the next N reply lines are replaced by bytes that parse as nothing"""
    delay_s: float = 0.0
    """every reply line is sent this late"""
    disconnect: bool = False
    """drop TCP connections at the next reply (a pseudo-terminal goes silent instead)"""
    silent: bool = False
    """send nothing at all until cleared"""


class LineSession(Protocol):
    """Where a handler sends its reply lines (the terminator is added)."""

    async def send_line(self, text: str) -> None:
        """Send one line to the client."""
        ...


class LineHandler(Protocol):
    """One emulated instrument's protocol: called with every line the client sends."""

    async def on_line(self, line: str, session: LineSession) -> None:
        """Handle one received line (without its terminator)."""
        ...


class _Session:
    """One client connection: frames lines in and applies the faults on the way out."""

    def __init__(self, server: LineServer, write: Callable[[bytes], None],
                 close: Callable[[], None]) -> None:
        self._server = server
        self._write = write
        self._close = close
        self._buffer = b""

    async def send_line(self, text: str) -> None:
        faults = self._server.faults
        if faults.silent:
            return
        if faults.delay_s > 0:
            await asyncio.sleep(faults.delay_s)
        if faults.disconnect:
            self._close()
            return
        if faults.swallow_replies > 0:
            faults.swallow_replies -= 1
            return
        payload = text.encode(self._server.encoding)
        if faults.garble_replies > 0:
            faults.garble_replies -= 1
            payload = b"\x15?#" + payload[::-1][:8] + b"\xfe"
        self._write(payload + self._server.write_terminator)

    async def feed(self, data: bytes) -> None:
        self._buffer += data
        terminator = self._server.read_terminator
        while terminator in self._buffer:
            raw, self._buffer = self._buffer.split(terminator, 1)
            line = raw.decode(self._server.encoding, errors="replace").strip("\r\n")
            await self._server.handler.on_line(line, self)


class LineServer:
    """A line-protocol server for one emulated instrument, on TCP and/or a pseudo-terminal.

    ``read_terminator`` frames what clients send (a lone ``\\r`` or ``\\n`` left over from a
    ``\\r\\n`` pair is stripped); ``write_terminator`` ends every line sent back.
    """

    def __init__(self, handler: LineHandler, *, read_terminator: bytes = b"\n",
                 write_terminator: bytes = b"\r\n", encoding: str = "ascii",
                 faults: WireFaults | None = None) -> None:
        self.handler = handler
        self.read_terminator = read_terminator
        self.write_terminator = write_terminator
        self.encoding = encoding
        self.faults = faults if faults is not None else WireFaults()
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._tcp_handlers: set[asyncio.Task[object]] = set()
        self._pty_fds: tuple[int, int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on TCP; returns the ``socket://host:port`` URL a pyserial client opens."""
        self._tcp = await asyncio.start_server(self._serve_tcp, host, port)
        bound_port = self._tcp.sockets[0].getsockname()[1]
        return f"socket://{host}:{bound_port}"

    def start_pty(self) -> str:
        """Open a pseudo-terminal in raw mode; returns its device path for pyserial."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty_fds = (master, slave)
        session = _Session(self, lambda data: self._pty_write(master, data), lambda: None)
        received: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pty_readable, master, received)
        task = loop.create_task(self._serve_pty(received, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return os.ttyname(slave)

    async def close(self) -> None:
        """Stop listening and close every connection and the pseudo-terminal."""
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_writers):
                writer.close()
            # let the connections' handlers see their end and return: one still running when
            # the event loop stops is cancelled, and Python 3.11's stream callback then logs
            # the cancellation as an error
            if self._tcp_handlers:
                await asyncio.wait(list(self._tcp_handlers), timeout=CLOSE_WAIT_S)
            await self._tcp.wait_closed()
            self._tcp = None
        if self._pty_fds is not None:
            master, slave = self._pty_fds
            asyncio.get_running_loop().remove_reader(master)
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pty_fds = None
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> LineServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- TCP ---------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._tcp_handlers.add(handler)
            handler.add_done_callback(self._tcp_handlers.discard)
        session = _Session(self, writer.write, writer.close)
        try:
            while not writer.is_closing():
                data = await reader.read(4096)
                if not data:
                    break
                await session.feed(data)
        except (ConnectionError, OSError) as error:
            log.debug("emulator connection ended: %s", error)
        finally:
            self._tcp_writers.discard(writer)
            writer.close()

    # -- pseudo-terminal --------------------------------------------------------------------

    @staticmethod
    def _pty_readable(master: int, received: asyncio.Queue[bytes]) -> None:
        try:
            data = os.read(master, 4096)
        except OSError:
            return
        if data:
            received.put_nowait(data)

    @staticmethod
    async def _serve_pty(received: asyncio.Queue[bytes], session: _Session) -> None:
        while True:
            await session.feed(await received.get())

    @staticmethod
    def _pty_write(master: int, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(master, data)

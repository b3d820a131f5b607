"""A line-framed serial connection for asyncio: device paths, pseudo-terminals and ``socket://``.

Most bench instruments (ESPEC chambers, Alicat controllers, Mark-10 gauges, PalmSens
MethodSCRIPT devices) talk ASCII lines over RS-232/USB serial, or over a terminal server that a
``socket://host:port`` URL reaches. :class:`SerialLink` owns one such connection as an
``async with`` resource, serialises exchanges with one lock, frames lines with the instrument's
terminators and turns every wire problem into the project's :class:`InstrumentError` tree,
naming instrument, address and command.

After a timeout the link is out of step: a late reply would be taken as the answer to the next
command. So the next exchange first discards whatever arrives until the line has been quiet
for ``resync_quiet_s`` (resynchronisation).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import NoReturn, Self, TypeVar

import serial
import serial_asyncio_fast

from cellrig.errors import ConnectionLost, InstrumentError, InstrumentTimeout, MalformedReply

from .backoff import Backoff

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=InstrumentError)


class SerialLink:
    """One serial line to one instrument, with line framing, a lock and resynchronisation."""

    def __init__(
        self,
        url: str,
        *,
        instrument: str,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        write_terminator: bytes = b"\r\n",
        read_terminator: bytes = b"\r\n",
        timeout_s: float = 1.0,
        encoding: str = "ascii",
        resync_quiet_s: float = 0.05,
    ) -> None:
        self.url = url
        self.instrument = instrument
        self.timeout_s = timeout_s
        self.write_terminator = write_terminator
        self.read_terminator = read_terminator
        self.encoding = encoding
        self.resync_quiet_s = resync_quiet_s
        self.lock = asyncio.Lock()
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._out_of_step = False

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as the link knows)."""
        return self._writer is not None and not self._writer.is_closing()

    async def open(self) -> None:
        """Open the connection once; raises :class:`ConnectionLost` if it cannot."""
        try:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=self.url, baudrate=self.baudrate, bytesize=self.bytesize,
                parity=self.parity, stopbits=self.stopbits)
        except (OSError, serial.SerialException, ValueError) as error:
            raise self._error(ConnectionLost, f"cannot open: {error}", None) from error
        self._out_of_step = False

    async def close(self) -> None:
        """Close the connection; never raises."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        try:
            writer.close()
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError, serial.SerialException):
            pass

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                     rng: random.Random | None = None) -> None:
        """Close and open again, retrying with bounded jittered backoff; raises the last
        :class:`ConnectionLost` when every attempt failed."""
        await self.close()
        delays = (backoff or Backoff()).delays(rng)
        last: InstrumentError | None = None
        for attempt in range(attempts):
            try:
                await self.open()
                if attempt:
                    log.info("%s at %s: reconnected after %d attempt(s)",
                             self.instrument, self.url, attempt + 1)
                return
            except ConnectionLost as error:
                last = error
                delay_s = next(delays)
                log.warning("%s at %s: reconnect failed (%s); next try in %.2f s",
                            self.instrument, self.url, error.detail, delay_s)
                if attempt + 1 < attempts:
                    await sleep(delay_s)
        assert last is not None
        raise last

    # -- exchanges (call with ``lock`` held when several steps must not interleave) ---------

    async def write_line(self, text: str) -> None:
        """Send one command line (the terminator is added)."""
        writer = self._require_open(text)
        await self._resync_if_needed(text)
        try:
            writer.write(text.encode(self.encoding) + self.write_terminator)
            await writer.drain()
        except (OSError, serial.SerialException) as error:
            await self._lost(text, error)

    async def read_line(self, *, command: str | None = None, timeout_s: float | None = None) -> str:
        """Receive one reply line (without its terminator)."""
        reader = self._require_reader(command)
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(wait_s):
                raw = await reader.readuntil(self.read_terminator)
        except TimeoutError as error:
            self._out_of_step = True
            message = f"no reply within {wait_s:g} s"
            raise self._error(InstrumentTimeout, message, command) from error
        except asyncio.IncompleteReadError as error:
            await self._lost(command, error)
        except asyncio.LimitOverrunError as error:
            self._out_of_step = True
            raise self._error(MalformedReply, "reply line too long", command) from error
        except (OSError, serial.SerialException) as error:
            await self._lost(command, error)
        try:
            return raw[: -len(self.read_terminator)].decode(self.encoding)
        except UnicodeDecodeError as error:
            raise self._error(MalformedReply, f"undecodable reply {raw!r}", command) from error

    async def query(self, text: str, *, timeout_s: float | None = None) -> str:
        """Send a command and return its one-line reply, under the lock."""
        async with self.lock:
            await self.write_line(text)
            return await self.read_line(command=text, timeout_s=timeout_s)

    async def query_lines(self, text: str, until: Callable[[str], bool], *,
                          timeout_s: float | None = None, max_lines: int = 100_000) -> list[str]:
        """Send a command and collect reply lines up to and including the first line for
        which ``until`` is true, under the lock."""
        async with self.lock:
            await self.write_line(text)
            lines: list[str] = []
            while len(lines) < max_lines:
                line = await self.read_line(command=text, timeout_s=timeout_s)
                lines.append(line)
                if until(line):
                    return lines
            self._out_of_step = True
            raise self._error(MalformedReply, f"no end of reply after {max_lines} lines", text)

    async def discard_input(self) -> int:
        """Drop whatever arrives until the line is quiet for ``resync_quiet_s``; returns the
        number of bytes dropped."""
        reader = self._reader
        if reader is None:
            return 0
        dropped = 0
        while True:
            try:
                async with asyncio.timeout(self.resync_quiet_s):
                    chunk = await reader.read(4096)
            except TimeoutError:
                break
            except (OSError, serial.SerialException):
                break
            if not chunk:
                break
            dropped += len(chunk)
        self._out_of_step = False
        return dropped

    # -- internals --------------------------------------------------------------------------

    async def _resync_if_needed(self, command: str) -> None:
        if self._out_of_step:
            dropped = await self.discard_input()
            if dropped:
                log.info("%s at %s: resynchronised before %r, dropped %d stale byte(s)",
                         self.instrument, self.url, command, dropped)

    def _require_open(self, command: str | None) -> asyncio.StreamWriter:
        if self._writer is None or self._writer.is_closing():
            raise self._error(ConnectionLost, "not connected", command)
        return self._writer

    def _require_reader(self, command: str | None) -> asyncio.StreamReader:
        self._require_open(command)
        assert self._reader is not None
        return self._reader

    async def _lost(self, command: str | None, error: BaseException) -> NoReturn:
        await self.close()
        raise self._error(ConnectionLost, f"connection lost: {error}", command) from error

    def _error(self, kind: type[_E], message: str, command: str | None) -> _E:
        return kind(message, instrument=self.instrument, address=self.url, command=command)

"""A PalmSens MethodSCRIPT instrument (Nexus, EmStat4) on a pseudo-terminal or ``socket://``.

It answers the online commands the driver uses, as the EmStat4 communication protocol (v1.3)
and PalmSens' ``palmsens/instrument.py`` describe them: ``t`` (firmware version: the device
code and version, then a line ending with ``*``), ``i`` (serial number), ``e`` + script + empty
line (``e`` and the script's output, or ``e!XXXX: Line L, Col C``), ``Z`` (``Z``, the end of the
aborted script's output and an empty line; ``Z!0006`` when nothing runs). Any other command is
answered with its letter and error 0x0003 (``q!0003``); a command other than ``Z`` while a
script runs with 0x0006. Scripts are parsed by :mod:`~cellrig.simulators.methodscript_parser`
and run on a bench cell by :mod:`~cellrig.simulators.methodscript_runner`.

Faults, for the drivers' recovery tests: the :class:`~cellrig.simulators.line_server.WireFaults`
of its line server (``faults``: swallow or garble replies, go silent, delay), plus
:meth:`PalmSensEmulator.drop_connection` (close the TCP connection after N more lines: mid-reply)
and :meth:`PalmSensEmulator.inject_error` (the running script, or the next, stops with an
instrument error such as 0x0032, critical overload). The instrument keeps executing what it
receives whatever its replies suffer, so an abort sent into a silent line still stops the cell.
"""

from __future__ import annotations

import asyncio
import logging

from cellrig.drivers.methodscript_codec import format_error
from cellrig.drivers.palmsens_ranges import NEXUS, PalmSensModel
from cellrig.simulators.bench import BenchCell
from cellrig.simulators.line_server import LineServer, LineSession, WireFaults
from cellrig.simulators.methodscript_parser import ScriptError, parse_script
from cellrig.simulators.methodscript_runner import Device, Noise, ScriptRunner

log = logging.getLogger(__name__)

UNKNOWN = 0x0003
BUSY = 0x0006
OVERLOAD = 0x0032


class PalmSensEmulator:
    """One emulated MethodSCRIPT channel around a bench cell (a line handler with its server).

    ``firmware`` is the text after the device code in the version reply.
    """

    def __init__(self, cell: BenchCell, *, model: PalmSensModel = NEXUS,
                 serial_number: str = "NX24A0042", firmware: str = "14#Sep 30 2025 12:00:00",
                 noise: Noise | None = None, seed: int = 0) -> None:
        self.device = Device(cell, model, noise if noise is not None else Noise(), seed)
        self.serial_number = serial_number
        self.firmware = firmware
        self.server = LineServer(self, read_terminator=b"\n", write_terminator=b"\n")
        self.received: list[str] = []
        self._upload: list[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._runner: ScriptRunner | None = None
        self._drop_after: int | None = None

    # -- serving --------------------------------------------------------------------------------
    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on TCP; returns the ``socket://`` URL."""
        return await self.server.start_tcp(host, port)

    def start_pty(self) -> str:
        """Open a pseudo-terminal; returns its device path."""
        return self.server.start_pty()

    async def close(self) -> None:
        """Abort a running script (the cell goes off) and stop serving."""
        await self._stop_script()
        await self.server.close()

    async def __aenter__(self) -> PalmSensEmulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- state and faults ---------------------------------------------------------------------
    @property
    def faults(self) -> WireFaults:
        """The line server's wire faults."""
        return self.server.faults

    @property
    def cell_on(self) -> bool:
        """Whether the cell is connected to the source (``cell_on``)."""
        return self.device.cell_on

    @property
    def running(self) -> bool:
        """Whether a script is running."""
        return self._task is not None and not self._task.done()

    def inject_error(self, code: int = OVERLOAD) -> None:
        """The next measurement reading (of this script or the next) stops the script with
        error ``code``; ``on_finished:`` switches the cell off."""
        self.device.pending_error = code

    def drop_connection(self, after_lines: int = 0) -> None:
        """Close the TCP connection when the line after the next ``after_lines`` is sent (a
        pseudo-terminal drops that line instead); once."""
        self._drop_after = after_lines

    # -- the protocol -------------------------------------------------------------------------
    async def on_line(self, line: str, session: LineSession) -> None:
        """Handle one received line."""
        self.received.append(line)
        if self._upload is not None:
            if line.strip():
                self._upload.append(line)
            else:
                lines, self._upload = self._upload, None
                await self._start(lines, session)
            return
        command = line.strip()
        if not command:
            return
        if command == "Z":
            await self._abort(session)
        elif self.running:
            await self._send(session, format_error(BUSY, command[0]))
        elif command == "e":
            self._upload = []
        elif command == "t":
            await self._send(session, f"t{self.device.model.code}{self.firmware}")
            await self._send(session, "R*")
        elif command == "i":
            await self._send(session, f"i{self.serial_number}")
        else:
            await self._send(session, format_error(UNKNOWN, command[0]))

    async def _send(self, session: LineSession, text: str) -> None:
        if self._drop_after is not None:
            if self._drop_after == 0:
                self._drop_after = None
                self.faults.disconnect = True
                try:
                    await session.send_line(text)
                finally:
                    self.faults.disconnect = False
                return
            self._drop_after -= 1
        await session.send_line(text)

    async def _start(self, lines: list[str], session: LineSession) -> None:
        try:
            script = parse_script(lines)
        except ScriptError as error:
            await self._send(session, format_error(error.code, "e", error.line, error.column))
            return
        await self._send(session, "e")

        async def send(text: str) -> None:
            await self._send(session, text)

        runner = ScriptRunner(script, self.device, send)
        self._runner = runner
        self._task = asyncio.create_task(runner.run(), name="palmsens-emulator.script")
        self._task.add_done_callback(_log_failure)

    async def _abort(self, session: LineSession) -> None:
        runner = self._runner
        if not self.running or runner is None:
            await self._send(session, format_error(BUSY, "Z"))
            return
        in_loop = runner.in_loop
        await self._stop_script()
        await self._send(session, "Z")
        if in_loop:
            await self._send(session, "*")
        await self._send(session, "")

    async def _stop_script(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        self._task = self._runner = None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("emulated script failed", exc_info=task.exception())

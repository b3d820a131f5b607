"""The MethodSCRIPT exchanges over a line link: abort-and-sync, identify, upload, collect.

Kept apart from the driver's rig logic (:mod:`cellrig.drivers.palmsens`) so each exchange reads
as the protocol documents describe it (EmStat4 communication protocol v1.3; PalmSens'
``palmsens/instrument.py``):

* abort and sync: an empty line (ends a half-received command or upload), then ``Z``; the reply
  is ``Z`` when a script was running (its output then runs on to an empty line) or ``Z!0006``
  when nothing was; after an error reply the device ignores input for about 50 ms;
* identify: ``t`` answers lines up to one ending with ``*``, the first starting with ``t`` and the
  six-character device code; ``i`` answers ``i`` and the serial number;
* upload: ``e``, the script's lines, an empty line; the device answers ``e`` and runs the
  script, or ``e!XXXX: Line L, Col C`` if it does not parse.

Callers hold ``link.lock`` around each exchange.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.methodscript_codec import (
    LineKind,
    PacketError,
    classify,
    decode_packet,
    parse_error_line,
)
from cellrig.errors import InstrumentError, InstrumentReported, InstrumentTimeout, MalformedReply

#: Code of the reply to ``Z`` when no script was running.
NOTHING_RUNNING = 0x0006


class LineLink(Protocol):
    """What the exchanges need of a line link (:class:`~cellrig.drivers.serial_link.SerialLink`
    has it; unit tests script one)."""

    url: str
    instrument: str
    timeout_s: float
    lock: asyncio.Lock

    async def open(self) -> None:
        """Open the connection."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5) -> None:
        """Close and open again with backoff."""
        ...

    async def write_line(self, text: str) -> None:
        """Send one line."""
        ...

    async def read_line(self, *, command: str | None = None,
                        timeout_s: float | None = None) -> str:
        """Receive one line."""
        ...

    async def discard_input(self) -> int:
        """Drop input until the line is quiet."""
        ...


@dataclass(slots=True)
class ScriptRun:
    """A script the device is running: the command that names it in errors, the instrument
    time it started at, how long to wait for each line, and the current of its readings when
    they carry none (a rest: 0)."""

    command: str
    started_s: float
    line_timeout_s: float
    rest_current_a: float | None


@dataclass(slots=True)
class Sweep:
    """What an EIS script sent: the open-circuit potential before it (NaN if not measured),
    the points and the instrument time of the last one."""

    ocv_v: float = math.nan
    frequency_hz: list[float] = field(default_factory=list)
    z_real_ohm: list[float] = field(default_factory=list)
    z_imag_ohm: list[float] = field(default_factory=list)
    end_s: float = 0.0


class Wire:
    """MethodSCRIPT exchanges over one link."""

    def __init__(self, link: LineLink, backoff: Backoff, reconnect_attempts: int, *,
                 abort_timeout_s: float = 5.0, error_pause_s: float = 0.1) -> None:
        self.link = link
        self.backoff = backoff
        self.reconnect_attempts = reconnect_attempts
        self.abort_timeout_s = abort_timeout_s
        self.error_pause_s = error_pause_s

    def _error(self, kind: type[InstrumentError], message: str, command: str | None
               ) -> InstrumentError:
        return kind(message, instrument=self.link.instrument, address=self.link.url,
                    command=command)

    def reported(self, line: str, command: str) -> InstrumentReported:
        """The error an error line reports, as :class:`InstrumentReported` with its code."""
        error = parse_error_line(line)
        assert error is not None
        return InstrumentReported(error.message, instrument=self.link.instrument,
                                  address=self.link.url, command=command, code=error.code)

    async def reconnect(self) -> None:
        """Reopen the link with bounded, jittered backoff."""
        await self.link.reopen(self.backoff, attempts=self.reconnect_attempts)

    async def abort_and_sync(self) -> bool:
        """Abort whatever runs and wait for its end; returns whether a script was running."""
        await self.link.write_line("")
        await self.link.write_line("Z")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.abort_timeout_s
        reply = await self._line_until(deadline, lambda line: line.startswith("Z"))
        if reply == "Z":
            await self._line_until(deadline, lambda line: line == "")
            return True
        error = parse_error_line(reply)
        if error is None or error.code != NOTHING_RUNNING:
            raise self._error(MalformedReply, f"unexpected reply {reply!r} to the abort", "Z")
        await asyncio.sleep(self.error_pause_s)
        return False

    async def _line_until(self, deadline: float, wanted: Callable[[str], bool]) -> str:
        """Read lines, dropping what comes before the wanted one (a running script's output,
        or garbage), until ``deadline``."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._error(InstrumentTimeout, "no end of the aborted script within "
                                  f"{self.abort_timeout_s:g} s", "Z")
            try:
                line = await self.link.read_line(command="Z", timeout_s=remaining)
            except MalformedReply:
                continue
            if wanted(line):
                return line

    async def identify(self) -> tuple[str, str]:
        """The firmware-version text (device code first) and the serial number."""
        await self.link.write_line("t")
        lines = [await self.link.read_line(command="t")]
        while not lines[-1].endswith("*"):
            if len(lines) >= 5:
                raise self._error(MalformedReply, f"no end of the version reply: {lines!r}", "t")
            lines.append(await self.link.read_line(command="t"))
        if not lines[0].startswith("t") or "!" in lines[0]:
            raise self._error(MalformedReply, f"unexpected version reply {lines!r}", "t")
        version = " ".join(line.rstrip("*").strip() for line in lines)[1:].strip()
        await self.link.write_line("i")
        serial = await self.link.read_line(command="i")
        if not serial.startswith("i") or "!" in serial:
            raise self._error(MalformedReply, f"unexpected serial-number reply {serial!r}", "i")
        return version, serial[1:].strip()

    async def upload(self, script: list[str], name: str) -> None:
        """Send a script and wait for the device to take it (``e``)."""
        await self.link.write_line("e")
        for line in script:
            await self.link.write_line(line)
        await self.link.write_line("")
        reply = await self.link.read_line(command=name)
        if reply == "e":
            return
        if classify(reply) is LineKind.ERROR:
            await asyncio.sleep(self.error_pause_s)
            raise self.reported(reply, name)
        raise self._error(MalformedReply, f"unexpected reply {reply!r} to the upload", name)

    async def run_to_end(self, script: list[str], name: str) -> None:
        """Upload a script without measurement loops and wait for its end, at most
        ``abort_timeout_s``: a line that keeps sending something other than the end (a
        script still streaming, garbage) is not waited on for ever."""
        await self.upload(script, name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.abort_timeout_s
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._error(InstrumentTimeout, f"no end of {name} within "
                                  f"{self.abort_timeout_s:g} s", name)
            line = await self.link.read_line(command=name,
                                             timeout_s=min(self.link.timeout_s, remaining))
            kind = classify(line)
            if kind is LineKind.END:
                return
            if kind is LineKind.ERROR:
                raise self.reported(line, name)

    async def collect_sweep(self, run: ScriptRun) -> Sweep:
        """The output of an EIS script up to its end."""
        sweep = Sweep()
        while True:
            line = await self.link.read_line(command=run.command, timeout_s=run.line_timeout_s)
            kind = classify(line)
            if kind is LineKind.END:
                return sweep
            if kind is LineKind.ERROR:
                await self.link.discard_input()
                raise self.reported(line, run.command)
            if kind is LineKind.OTHER:
                raise self._error(MalformedReply, f"unexpected line {line!r}", run.command)
            if kind is LineKind.PACKET:
                self._add_point(sweep, run, line)

    def _add_point(self, sweep: Sweep, run: ScriptRun, line: str) -> None:
        try:
            packet = decode_packet(line)
        except PacketError as error:
            raise self._error(MalformedReply, str(error), run.command) from error
        values = [variable.value for variable in packet.variables]
        types = packet.types()
        if len(types) == 1 and types[0] in ("ab", "da"):
            sweep.ocv_v = values[0]
        elif types == ("eb", "dc", "cc", "cd"):
            sweep.end_s = run.started_s + values[0]
            sweep.frequency_hz.append(values[1])
            sweep.z_real_ohm.append(values[2])
            sweep.z_imag_ohm.append(values[3])
        else:
            raise self._error(MalformedReply, f"packet {line!r} is not an impedance point",
                              run.command)

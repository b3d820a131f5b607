"""A Keithley 2450 SourceMeter on the wire, backed by a bench cell.

Speaks the SCPI command set of the Keithley 2450 reference manual (2450-901-01; the 2460 and
2461 share it, their manuals 2461-901-01 give the newer ``:TRIGger:LOAD "<template>"`` forms and
the event-log replies) through :class:`~cellrig.simulators.scpi_server.ScpiServer`, so a driver
reaches it as ``TCPIP::127.0.0.1::<port>::SOCKET`` through pyvisa-py, exactly as it reaches the
instrument's raw LAN socket (port 5025). Every measurement is the bench cell's, at the bench
clock's time; each one takes its integration time (``NPLC`` power-line cycles at 50 Hz, twice
with source readback on) of bench time.

What the emulated instrument does, as the manual describes it:

- **Source**: ``:SOURce:FUNCtion`` CURRent or VOLTage; the level; the limit of the other
  quantity (``:SOURce:CURRent:VLIMit``, ``:SOURce:VOLTage:ILIMit``; limits are magnitudes, and
  a limit reached clamps the source: the bench cell's compliance); the overvoltage protection
  (``:SOURce:VOLTage:PROTection PROT2`` … ``PROT180`` or ``NONE``) caps every voltage limit
  and level, whatever the source function; ``:TRIPped?`` queries say whether a limit holds.
- **Output-off states** (``:OUTPut[:<function>]:SMODe``, kept per source function): NORMal and
  ZERO connect a 0 V source with a current limit of 10 % of the present current range (which
  discharges a cell: the reason drivers choose HIMPedance); HIMPedance opens the output relay
  (the cell floats, and nothing can be measured: readings are 9.91E37); GUARd is a 0 A source
  (the cell floats).
- **Measure**: ``:SENSe:FUNCtion "VOLT"`` or ``"CURR"``; ``:READ?`` makes ``:SENSe:COUNt``
  readings into a buffer and returns the last one's elements; source readback (on by default)
  makes ``SOURce`` the measured source value instead of the programmed one. Ranges, NPLC and
  4-wire sense are kept and answered; the bench cell is measured at its terminals either way.
- **Buffers and trigger model**: see :mod:`~cellrig.simulators.keithley2450_buffer`.
- **Errors**: the event log of :class:`~cellrig.simulators.scpi.ErrorQueue`, read with
  ``:SYSTem:ERRor?`` as ``-113,"Undefined header;1;2026/01/01 00:00:00.000"`` and
  ``0,"No error;0,0,0"`` when empty; :meth:`Keithley2450Emulator.inject_error` puts an error
  there as the instrument would report a fault.
- ``*LANG?`` answers the command set; an emulator made with ``language="TSP"`` answers common
  commands only and logs every SCPI command as a TSP syntax error.

Not emulated: pulse and sweep commands, configuration lists, digital I/O, statistics, math,
the 2-wire lead resistance (measurements are at the cell), relay settling time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .bench import BenchCell
from .keithley2450_buffer import NOT_A_NUMBER, Reading, ReadingBuffer, TriggerModel
from .keithley2450_commands import CURRENT, VOLTAGE, register_commands
from .scpi import CommandTable, ErrorQueue, ScpiError

log = logging.getLogger(__name__)

UNITS = {CURRENT: "Amp DC", VOLTAGE: "Volt DC"}
CURRENT_RANGES_A = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
DEFAULT_BUFFER_CAPACITY = 100_000
TSP_SYNTAX_ERROR = (-285, "TSP Syntax error at line 1: unexpected symbol near SCPI command")


@dataclass(frozen=True, slots=True)
class Rating:
    """A model's source ratings and overvoltage-protection settings."""

    model: str
    max_current_a: float
    max_voltage_v: float
    protection_levels_v: tuple[int, ...]


RATINGS = {
    "2450": Rating("2450", 1.05, 210.0, (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)),
    "2460": Rating("2460", 7.35, 105.0, (2, 5, 10, 20, 40, 60, 80)),
    "2461": Rating("2461", 7.35, 105.0, (2, 5, 10, 20, 40, 60, 80)),
}


class Keithley2450Emulator:
    """The instrument: its settings, the bench cell it is wired to, its buffers and event log."""

    def __init__(self, cell: BenchCell, *, model: str = "2450", serial_number: str = "04512345",
                 firmware: str = "1.7.12b", language: str = "SCPI",
                 line_frequency_hz: float = 50.0) -> None:
        if model not in RATINGS:
            raise ValueError(f"no rating for model {model!r}; known: {', '.join(RATINGS)}")
        self.cell = cell
        self.clock = cell.clock
        self.rating = RATINGS[model]
        self.identity = f"KEITHLEY INSTRUMENTS,MODEL {model},{serial_number},{firmware}"
        self.language = language
        self.line_frequency_hz = line_frequency_hz
        self.epoch_unix_s = time.time() - self.clock.now_s()
        self.errors = ErrorQueue()
        self.commands_received = 0
        self._drive_pending = False
        self._loop_task: asyncio.Task[None] | None = None
        self.table = CommandTable()
        self.common_only = CommandTable()
        register_commands(self, self.table, self.common_only)
        self.reset_settings()
        self.settle()

    # -- settings ---------------------------------------------------------------------------

    def reset_settings(self) -> None:
        """``*RST`` defaults: output off in the NORMal state, source voltage 0 V with a
        105 µA limit, measure current, buffers empty, no trigger model."""
        self.output_on = False
        self.source_function = VOLTAGE
        self.levels = {CURRENT: 0.0, VOLTAGE: 0.0}
        self.voltage_limit_v = 21.0
        self.current_limit_a = 105e-6
        self.protection_v: int | None = None
        self.off_modes = {CURRENT: "NORMal", VOLTAGE: "NORMal"}
        self.read_back = {CURRENT: True, VOLTAGE: True}
        self.source_auto_range = {CURRENT: True, VOLTAGE: True}
        self.source_range = {CURRENT: 1e-6, VOLTAGE: 0.02}
        self.sense_function = CURRENT
        self.four_wire = {CURRENT: False, VOLTAGE: False}
        self.nplc = {CURRENT: 1.0, VOLTAGE: 1.0}
        self.sense_auto_range = {CURRENT: True, VOLTAGE: True}
        self.sense_range = {CURRENT: 1e-6, VOLTAGE: 0.02}
        self.count = 1
        self.buffers = {name: ReadingBuffer(name, DEFAULT_BUFFER_CAPACITY)
                        for name in ("defbuffer1", "defbuffer2")}
        self.trigger = TriggerModel()
        self.stop_trigger_model("IDLE")
        self.drive()

    @property
    def protection_limit_v(self) -> float:
        """The overvoltage protection in volts (the rating with ``NONE``)."""
        if self.protection_v is None:
            return self.rating.max_voltage_v
        return float(self.protection_v)

    @property
    def in_compliance(self) -> bool:
        """Whether the source is clamped by its limit now (output on)."""
        self.settle()
        return self.output_on and self.cell.in_compliance

    def current_range_a(self) -> float:
        """The present current range: of the source current, or of the current limit."""
        present = (abs(self.levels[CURRENT]) if self.source_function == CURRENT
                   else self.current_limit_a)
        return next((r for r in CURRENT_RANGES_A if present <= r * 1.05), CURRENT_RANGES_A[-1])

    def drive(self) -> None:
        """The output changed: the bench cell follows when the message is done (or before a
        measurement in it), so a message of several settings changes the cell once."""
        self._drive_pending = True

    def settle(self) -> None:
        """Put the bench cell under what the output does now, if that changed."""
        if self._drive_pending:
            self._drive_pending = False
            self._drive_cell()

    def _drive_cell(self) -> None:
        cell = self.cell
        function = self.source_function
        if not self.output_on:
            mode = self.off_modes[function]
            if mode in ("HIMPedance", "GUARd"):
                cell.open_circuit()
            else:
                cell.source_voltage(0.0, current_limit_a=0.1 * self.current_range_a())
            return
        protection = self.protection_limit_v
        if function == VOLTAGE:
            level = max(-protection, min(protection, self.levels[VOLTAGE]))
            cell.source_voltage(level, current_limit_a=self.current_limit_a)
            return
        limit = min(self.voltage_limit_v, protection)
        level = self.levels[CURRENT]
        if level == 0.0 and abs(cell.measure().voltage_v) < limit:
            cell.open_circuit()  # a 0 A source inside its limit: the cell floats
            return
        cell.source_current(level, voltage_limit_v=limit if level >= 0 else -limit)

    # -- measuring ----------------------------------------------------------------------------

    def measure_time_s(self) -> float:
        """Bench time one reading takes: the integration, twice with source readback."""
        conversions = 2 if self.read_back[self.source_function] else 1
        return conversions * self.nplc[self.sense_function] / self.line_frequency_hz

    async def measure(self, integrate: bool = True) -> Reading:
        """Integrate (unless the caller has waited for it), then read the bench cell."""
        self.settle()
        if integrate:
            await self.clock.sleep(self.measure_time_s())
        sample = self.cell.measure()
        function = self.source_function
        sense = self.sense_function
        if not self.output_on and self.off_modes[function] == "HIMPedance":
            value = source = NOT_A_NUMBER
        else:
            value = sample.voltage_v if sense == VOLTAGE else sample.current_a
            measured = sample.current_a if function == CURRENT else sample.voltage_v
            source = measured if self.read_back[function] else self.levels[function]
        return Reading(sample.time_s, value, source, UNITS[sense], UNITS[function])

    # -- trigger model ------------------------------------------------------------------------

    def start_trigger_model(self) -> None:
        """``:INITiate``: the template's first block (the buffer clear) at once, the rest as a
        task of the emulator."""
        self.buffers[self.trigger.buffer].clear()
        self.trigger.state, self.trigger.block = "RUNNING", 1
        self._loop_task = asyncio.get_running_loop().create_task(
            self._run_trigger_model(self.trigger), name=f"keithley{self.rating.model}.trigger")

    def stop_trigger_model(self, state: str = "ABORTED") -> None:
        """``:ABORt`` (or a reset): stop a running template."""
        task, self._loop_task = self._loop_task, None
        if task is not None and not task.done():
            task.cancel()
            self.trigger.state = state
        elif self.trigger.state == "RUNNING":
            self.trigger.state = state

    async def wait_trigger_model(self) -> None:
        """``*WAI``/``*OPC?``: wait until a running template has finished."""
        task = self._loop_task
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def _run_trigger_model(self, model: TriggerModel) -> None:
        buffer = self.buffers[model.buffer]
        if model.template == "DurationLoop":
            self.output_on = True
            self.drive()
        start_s = self.clock.now_s()
        end_s = start_s + model.duration_s
        period_s = model.delay_s + self.measure_time_s()
        taken = 0
        try:
            while True:
                # On a schedule: a reading late because the host was busy does not delay
                # the next ones.
                model.block = 2
                await self.clock.sleep(start_s + (taken + 1) * period_s - self.clock.now_s())
                model.block = 3
                buffer.append(await self.measure(integrate=False))
                taken += 1
                if model.template == "SimpleLoop" and taken >= model.count:
                    break
                if model.template == "DurationLoop" and self.clock.now_s() >= end_s - 1e-9:
                    break
        except Exception:
            log.exception("trigger model %s failed", model.template)
            model.state = "FAILED"
            return
        model.state = "IDLE"

    async def aclose(self) -> None:
        """Stop what runs in the background."""
        task = self._loop_task
        self.stop_trigger_model()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the event log ------------------------------------------------------------------------

    def inject_error(self, code: int, message: str) -> None:
        """Put an error in the event log, as the instrument does when it detects a fault."""
        self.errors.push(code, message, self.clock.now_s())

    def log_error(self, error: ScpiError) -> None:
        """Where the parser reports refused commands."""
        log.debug("Keithley %s emulator refused a command: %s", self.rating.model, error)
        self.errors.push(error.code, error.message, self.clock.now_s())

    def next_error(self) -> str:
        """``:SYSTem:ERRor?``: the oldest error, formatted as the instrument does."""
        entry = self.errors.next()
        if entry is None:
            return '0,"No error;0,0,0"'
        stamp = datetime.fromtimestamp(self.epoch_unix_s + entry.time_s, UTC)
        text = stamp.strftime("%Y/%m/%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"
        return f'{entry.code},"{entry.message};1;{text}"'

    # -- the wire -----------------------------------------------------------------------------

    async def execute(self, message: str) -> str | None:
        """Run one program message; the reply line, or None when it has no query to answer."""
        self.commands_received += 1
        try:
            if self.language != "SCPI":
                return await self.common_only.execute(message, self._tsp_error)
            return await self.table.execute(message, self.log_error)
        finally:
            self.settle()

    def _tsp_error(self, error: ScpiError) -> None:
        self.errors.push(TSP_SYNTAX_ERROR[0], TSP_SYNTAX_ERROR[1], self.clock.now_s())

    def buffer(self, name: str) -> ReadingBuffer:
        """A buffer by name, or the instrument's error for a missing one."""
        found = self.buffers.get(name)
        if found is None:
            raise ScpiError((-224, "Illegal parameter value"), f"no reading buffer {name!r}")
        return found

    @staticmethod
    def finite(value: float) -> float:
        """Readings as numbers (9.91E37 where nothing could be measured)."""
        return value if math.isfinite(value) else NOT_A_NUMBER

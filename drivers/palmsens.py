"""PalmSens MethodSCRIPT potentiostats (Nexus, EmStat4): the potentiostat and EIS ports.

Sources: the MethodSCRIPT manual v1.8 (www.palmsens.com/msmanual), the communication protocol
documents of the EmStat4 (v1.3) and EmStat Pico (v1.6), and PalmSens' examples
(github.com/PalmSens/MethodSCRIPT_Examples: ``palmsens/instrument.py`` for ``t``, ``i``,
``e`` and the ``\\n`` + ``Z`` abort-and-sync; ``Measurement_Loops`` for the scripts). Wire:
serial 8N1 at 921600 baud (EmStat4, Nexus), every line ends with ``\\n``.

How a step runs: :meth:`PalmSens.apply` uploads one script (``e``, its lines, an empty line;
the device answers ``e`` or ``e!XXXX``) whose measurement loop sends a packet per reading;
:meth:`PalmSens.read` hands each packet over as a one-reading block, and a block with ``done``
when the loop ended on the device (a voltage cut-off's ``breakloop`` or the run time);
:meth:`PalmSens.end_step` and :meth:`PalmSens.safe` abort with ``Z``. Every script switches the
cell off in ``on_finished:``, so whatever ends it leaves the cell at open circuit.

Time: a reading's time is the instrument's timer (``timer_get``) from the script's start, added
to the instrument time at which the script started; between scripts the driver counts host time
times ``time_scale`` (1 for hardware, the bench speed for an accelerated emulator).

Failures: a dropped connection is reopened with bounded backoff, a timeout or an unreadable
line is followed by an abort; either way the driver then switches the cell off and raises the
error (:class:`ConnectionLost`, :class:`InstrumentTimeout`, :class:`MalformedReply`). An error
line from the device raises :class:`InstrumentReported` with its code (the device has already
ended the script and switched the cell off).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import numpy as np

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.methodscript_codec import (
    LineKind,
    PacketError,
    classify,
    decode_packet,
)
from cellrig.drivers.methodscript_scripts import (
    Cutoff,
    Ranges,
    cell_off,
    chronoamperometry,
    chronopotentiometry,
    impedance_sweep,
    open_circuit,
    sweep_points,
)
from cellrig.drivers.palmsens_ranges import MODELS, NEXUS, PalmSensModel, program_refusals
from cellrig.drivers.palmsens_wire import LineLink, ScriptRun, Wire
from cellrig.drivers.ports import Identity
from cellrig.drivers.serial_link import SerialLink
from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    MalformedReply,
    UnsupportedInstrument,
)
from cellrig.protocols.program import EisMode, EisStep, Operator, Program, Quantity
from cellrig.protocols.rig import Block, Capabilities, Command, Mode, Spectrum

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Run time of a loop whose step has no time condition (about 11.6 days).
LONG_RUN_S = 1.0e6
_POTENTIAL_TYPES = frozenset({"ab", "da", "af"})
_CURRENT_TYPES = frozenset({"ba", "db"})


@dataclass(frozen=True, slots=True)
class _Reading:
    time_s: float
    voltage_v: float
    current_a: float


class PalmSens:
    """One PalmSens MethodSCRIPT channel on a serial line (device path, pty or ``socket://``).

    ``model`` fixes the ranges; None takes them from the device code the instrument reports.
    ``timeout_s`` bounds each reply (plus three sampling intervals while a loop runs),
    ``abort_timeout_s`` the end of an aborted script; ``link`` replaces the serial link (tests).
    Use as ``async with PalmSens(url) as channel:``.
    """

    def __init__(self, url: str, *, instrument: str = "palmsens",
                 model: PalmSensModel | None = None, baudrate: int = 921_600,
                 timeout_s: float = 2.0, time_scale: float = 1.0,
                 backoff: Backoff | None = None, reconnect_attempts: int = 3,
                 link: LineLink | None = None, error_pause_s: float = 0.1,
                 abort_timeout_s: float = 5.0) -> None:
        self.url = url
        self.instrument = instrument
        self.time_scale = time_scale
        self._configured_model = model
        self.model = model if model is not None else NEXUS
        self.identity: Identity | None = None
        if link is None:
            link = SerialLink(url, instrument=instrument, baudrate=baudrate,
                              write_terminator=b"\n", read_terminator=b"\n",
                              timeout_s=timeout_s)
        self._wire = Wire(link, backoff or Backoff(initial_s=0.1, max_s=2.0),
                          reconnect_attempts, abort_timeout_s=abort_timeout_s,
                          error_pause_s=error_pause_s)
        self._run: ScriptRun | None = None
        self._time_s = 0.0
        self._mark = time.monotonic()

    # -- lifetime ---------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.safe()
        except InstrumentError as error:
            log.error("%s at %s: could not switch the cell off on close: %s",
                      self.instrument, self.url, error)
        finally:
            await self._wire.link.close()

    async def open(self) -> None:
        """Open the line, abort whatever runs, identify the instrument and take its ranges
        (a configured model may narrow them, never widen them)."""
        await self._wire.link.open()
        try:
            async with self._wire.link.lock:
                await self._wire.abort_and_sync()
                version, serial_number = await self._wire.identify()
            self._take_model(version[:6])
        except BaseException:
            await self._wire.link.close()
            raise
        known = MODELS.get(version[:6])
        self.identity = Identity("PalmSens", known.name if known else version[:6],
                                 serial_number, version[6:].strip())
        log.info("%s at %s: %s %s, firmware %s", self.instrument, self.url,
                 self.identity.model, serial_number, self.identity.firmware)

    def _take_model(self, code: str) -> None:
        known, configured = MODELS.get(code), self._configured_model
        if known is None and configured is None:
            raise self._error(UnsupportedInstrument,
                              f"device code {code!r} is not a PalmSens MethodSCRIPT "
                              f"potentiostat this driver knows ({', '.join(MODELS)})", "t")
        if known is None:
            return
        if configured is None:
            self.model = known
            return
        low, high = configured.eis_frequency_hz
        if (configured.max_current_a > known.max_current_a
                or configured.potential_limit_v > known.potential_limit_v
                or low < known.eis_frequency_hz[0] or high > known.eis_frequency_hz[1]):
            raise self._error(UnsupportedInstrument,
                              f"configured as a {configured.name}, but the instrument is a "
                              f"{known.name} with narrower ranges", "t")

    # -- what it can do ---------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """Ranges of the model, device-side cut-offs, EIS; no constant power or load."""
        return self.model.capabilities()

    @property
    def frequency_range_hz(self) -> tuple[float, float]:
        """The EIS frequency range of the model."""
        return self.model.eis_frequency_hz

    def refusals(self, program: Program) -> list[str]:
        """Why ``program`` cannot run on this channel (empty if it can)."""
        return program_refusals(program, self.capabilities, f"{self.model.name} "
                                f"({self.instrument})")

    # -- the potentiostat port ----------------------------------------------------------------
    async def apply(self, command: Command) -> float:
        """Stop what runs and start the command's script; returns the instrument time it
        started at (when the device took the script). ``OFF`` switches the cell off."""
        if command.mode is Mode.OFF:
            await self.safe()
            return self._instrument_now()
        script, name = self._script_for(command)
        async with self._wire.link.lock:
            await self._guarded(self._stop_running)
            await self._guarded(lambda: self._wire.upload(script, name))
            started_s = self._instrument_now()
            self._run = ScriptRun(name, started_s, self._line_timeout(command.sample_interval_s),
                                  0.0 if command.mode is Mode.REST else None)
        return started_s

    async def read(self) -> Block:
        """The next reading as a one-reading block; an empty ``done`` block once the loop has
        ended on the device (or when nothing runs)."""
        async with self._wire.link.lock:
            run = self._run
            if run is None:
                return _block([], done=True)
            reading = await self._guarded(lambda: self._next_reading(run))
        if reading is None:
            return _block([], done=True)
        return _block([reading])

    async def end_step(self, at_time_s: float) -> None:
        """A condition ended the step: abort the script (the cell goes to open circuit)."""
        async with self._wire.link.lock:
            await self._guarded(self._stop_running)

    async def safe(self) -> None:
        """Abort any script and run ``cell_off``: the cell floats, the output is off."""
        async with self._wire.link.lock:
            await self._guarded(self._switch_off)

    # -- the EIS port -----------------------------------------------------------------------
    async def eis(self, step: EisStep) -> Spectrum:
        """A potentiostatic sweep at open circuit (or at the step's DC level)."""
        self._check_eis(step)
        points = sweep_points(step.start_hz, step.stop_hz, step.points_per_decade)
        ranges = Ranges(self.model.max_current_a, self.model.potential_limit_v)
        script = impedance_sweep(step.start_hz, step.stop_hz, points, step.amplitude, ranges,
                                 step.dc_voltage_v)
        point_timeout_s = self._wire.link.timeout_s + 5.0 / min(
            step.start_hz, step.stop_hz) / self.time_scale
        async with self._wire.link.lock:
            await self._guarded(self._stop_running)
            await self._guarded(lambda: self._wire.upload(script, "meas_loop_eis"))
            started_s = self._instrument_now()
            run = ScriptRun("meas_loop_eis", started_s, point_timeout_s, None)
            self._run = run
            sweep = await self._guarded(lambda: self._wire.collect_sweep(run))
            self._run = None
        self._set_time(sweep.end_s)
        meta = {"amplitude_v": step.amplitude, "points": float(len(sweep.frequency_hz))}
        if not math.isnan(sweep.ocv_v):
            meta["ocv_v"] = sweep.ocv_v
        return Spectrum(np.asarray(sweep.frequency_hz), np.asarray(sweep.z_real_ohm),
                        np.asarray(sweep.z_imag_ohm), time_s=sweep.end_s, meta=meta)

    # -- internals ----------------------------------------------------------------------------
    def _line_timeout(self, interval_s: float) -> float:
        """How long to wait for a reading: the link's timeout plus three sampling intervals
        of instrument time, in host time."""
        return self._wire.link.timeout_s + 3.0 * interval_s / self.time_scale

    def _instrument_now(self) -> float:
        return self._time_s + (time.monotonic() - self._mark) * self.time_scale

    def _set_time(self, time_s: float) -> None:
        self._time_s, self._mark = max(time_s, self._time_s), time.monotonic()

    def _error(self, kind: type[InstrumentError], message: str, command: str | None
               ) -> InstrumentError:
        return kind(message, instrument=self.instrument, address=self.url, command=command)

    def _script_for(self, command: Command) -> tuple[list[str], str]:
        model = self.model
        interval = max(command.sample_interval_s, model.min_sample_interval_s)
        run_time = _run_time(command, interval)
        cutoffs = _cutoffs(command)
        if command.mode is Mode.CURRENT:
            self._check_level(abs(command.current_a), model.max_current_a, "current", "A")
            ranges = Ranges(model.current_range_for(command.current_a), model.potential_limit_v)
            return (chronopotentiometry(command.current_a, interval, run_time, ranges, cutoffs),
                    "meas_loop_cp")
        if command.mode is Mode.VOLTAGE:
            self._check_level(abs(command.voltage_v), model.potential_limit_v, "voltage", "V")
            limit = (command.current_limit_a if command.current_limit_a is not None
                     else model.max_current_a)
            ranges = Ranges(model.current_range_for(limit), model.potential_limit_v)
            return chronoamperometry(command.voltage_v, interval, run_time, ranges), "meas_loop_ca"
        if command.mode is Mode.REST:
            ranges = Ranges(model.max_current_a, model.potential_limit_v)
            return open_circuit(interval, run_time, ranges, cutoffs), "meas_loop_ocp"
        raise self._error(UnsupportedInstrument,
                          f"{model.name} has no {command.mode.value} mode", command.mode.value)

    def _check_level(self, magnitude: float, limit: float, what: str, unit: str) -> None:
        if magnitude > limit * (1 + 1e-9):
            raise self._error(UnsupportedInstrument,
                              f"{what} {magnitude:g} {unit} exceeds the {self.model.name}'s "
                              f"{limit:g} {unit}", what)

    def _check_eis(self, step: EisStep) -> None:
        low, high = self.frequency_range_hz
        if step.mode is not EisMode.POTENTIOSTATIC:
            raise self._error(UnsupportedInstrument, "only potentiostatic EIS is supported",
                              "meas_loop_eis")
        if not (low <= step.start_hz <= high and low <= step.stop_hz <= high):
            raise self._error(UnsupportedInstrument,
                              f"sweep {step.start_hz:g}–{step.stop_hz:g} Hz is outside "
                              f"{low:g}–{high:g} Hz", "meas_loop_eis")

    async def _guarded(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run a wire operation; on a wire failure make the cell safe, then re-raise."""
        try:
            return await operation()
        except InstrumentReported:
            self._run = None
            raise
        except InstrumentError as error:
            self._run = None
            log.warning("%s at %s: %s; switching the cell off", self.instrument, self.url,
                        error.detail)
            try:
                if isinstance(error, ConnectionLost):
                    await self._wire.reconnect()
                await self._wire.abort_and_sync()
                await self._wire.run_to_end(cell_off(), "cell_off")
            except InstrumentError as second:
                log.error("%s at %s: could not switch the cell off after %s: %s",
                          self.instrument, self.url, type(error).__name__, second)
            raise

    async def _stop_running(self) -> None:
        if self._run is not None:
            await self._wire.abort_and_sync()
            self._run = None

    async def _switch_off(self) -> None:
        await self._stop_running()
        await self._wire.run_to_end(cell_off(), "cell_off")

    async def _next_reading(self, run: ScriptRun) -> _Reading | None:
        while True:
            line = await self._wire.link.read_line(command=run.command,
                                                   timeout_s=run.line_timeout_s)
            kind = classify(line)
            if kind is LineKind.PACKET:
                return self._reading(run, line)
            if kind is LineKind.END:
                self._run = None
                return None
            if kind is LineKind.ERROR:
                await self._wire.link.discard_input()
                raise self._wire.reported(line, run.command)
            if kind is LineKind.OTHER:
                raise self._error(MalformedReply, f"unexpected line {line!r}", run.command)

    def _reading(self, run: ScriptRun, line: str) -> _Reading:
        try:
            packet = decode_packet(line)
        except PacketError as error:
            raise self._error(MalformedReply, str(error), run.command) from error
        types = packet.types()
        values = [variable.value for variable in packet.variables]
        rest = run.rest_current_a
        expected = [{"eb"}, _POTENTIAL_TYPES] + ([] if rest is not None else [_CURRENT_TYPES])
        if len(types) != len(expected) or any(
                kind not in allowed for kind, allowed in zip(types, expected, strict=True)):
            raise self._error(MalformedReply, f"packet {line!r} does not carry time, "
                              "potential and current", run.command)
        time_s = run.started_s + values[0]
        self._set_time(time_s)
        return _Reading(time_s, values[1], rest if rest is not None else values[2])



def _block(readings: list[_Reading], done: bool = False) -> Block:
    return Block(np.array([r.time_s for r in readings], dtype=float),
                 np.array([r.voltage_v for r in readings], dtype=float),
                 np.array([r.current_a for r in readings], dtype=float), done=done)


def _run_time(command: Command, interval_s: float) -> float:
    """The loop's run time: what is left of the step's earliest time condition, else long."""
    remaining = [c.value - command.elapsed_s for c in command.until
                 if c.quantity is Quantity.TIME and c.operator is Operator.AT_LEAST]
    if not remaining:
        return LONG_RUN_S
    return max(min(remaining), interval_s)


def _cutoffs(command: Command) -> tuple[Cutoff, ...]:
    """Device-side cut-offs: the step's voltage conditions (not in a CV hold, where the
    potential is what is held) and, for a constant current, its voltage compliance."""
    if command.mode is Mode.VOLTAGE:
        return ()
    found = [Cutoff(c.value, c.operator is Operator.AT_LEAST) for c in command.until
             if c.quantity is Quantity.VOLTAGE]
    if command.mode is Mode.CURRENT and command.voltage_limit_v is not None:
        found.append(Cutoff(command.voltage_limit_v, command.current_a >= 0))
    return tuple(dict.fromkeys(found))

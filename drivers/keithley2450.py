"""Keithley 2450 / 2460 / 2461 SourceMeters (SCPI command set): the potentiostat port.

Sources: the Model 2450 Interactive SourceMeter reference manual (2450-901-01 Rev. B, section
6 "SCPI command reference" and appendix B "Common commands") and the Model 2461 reference
manual (2461-901-01 A: the same SCPI tree, with the ``:TRIGger:LOAD "<template>"`` forms,
``:SYSTem:ERRor:COUNt?`` and the event log's reply format). Every command the driver sends is
listed, with why, in ``docs/instruments/keithley2450.md``; the command strings themselves are
built in :mod:`cellrig.drivers.keithley2450_setup`.

Connecting (``async with``): ``*IDN?`` must name a Keithley 2450, 2460 or 2461 and ``*LANG?``
must be ``SCPI`` (a box left in TSP or SCPI2400 mode is refused with
:class:`UnsupportedInstrument`: it needs ``*LANG SCPI`` and a power cycle). Then the reset, in
one message with the high-impedance output-off state; overvoltage protection at the lowest
setting above the channel's maximum voltage; voltage and current limits at the channel's hard
limits; autoranging, readback, NPLC and 4-wire sense for both functions; the error queue read
until ``0,"No error"``; the output-off state and protection read back.

Steps run on the host (``device_cutoffs`` is False): :meth:`Keithley2450.apply` sets the
source (how each kind of command is sourced: :func:`~cellrig.drivers.keithley2450_setup.
source_setting`) and takes a first reading, whose time it returns; :meth:`Keithley2450.read`
takes the next reading when it is due (``:READ? "defbuffer1", READ, SOUR, REL`` with the error
count in the same message). When the command asks for readings faster than
``buffered_below_s``, the instrument times them itself: a ``SimpleLoop`` trigger-model template
fills ``defbuffer1`` and :meth:`read` fetches what is new with ``:TRACe:DATA?``.

Opened with ``reset_on_open=False`` (a restart whose job goes on), the driver first reads
what the instrument does, by queries only (:meth:`Keithley2450.source_state`); an instrument
whose output is on with the protection the driver sets is left sourcing and adopted as it is
(the next :meth:`apply` of the same setting sends nothing but its reading), any other is reset
and configured as usual.

Failures: every wire problem is an :class:`InstrumentError` naming instrument, address and
command. A reading that fails (timeout, garbage, dropped connection) is retried ``retries``
times — after reconnecting with backoff when the connection dropped — and then raised; an
error in the instrument's queue is raised as :class:`InstrumentReported`. :meth:`safe`
reconnects if it must and switches the output off (high impedance), and checks that it is off.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import numpy as np

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.keithley2450_buffered import BufferedRun
from cellrig.drivers.keithley2450_models import (
    MODELS,
    ChannelLimits,
    SmuModel,
    parse_error,
    parse_identity,
    parse_numbers,
)
from cellrig.drivers.keithley2450_setup import (
    CURRENT,
    READ_QUERY,
    RESET,
    SWITCH_OFF,
    VERIFY_QUERY,
    VOLTAGE,
    SettingRefused,
    SourceSetting,
    configuration_commands,
    setting_commands,
    source_setting,
)
from cellrig.drivers.keithley2450_state import (
    STATE_QUERY,
    TRIPPED_QUERY,
    parse_state,
    parse_tripped,
    same_setting,
)
from cellrig.drivers.keithley2450_timebase import RelativeTimebase
from cellrig.drivers.ports import Identity, SourceState
from cellrig.drivers.visa_link import MessageTransport, VisaLink
from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
    UnsupportedInstrument,
)
from cellrig.protocols.rig import Block, Capabilities, Command, Mode

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: At most this many errors are read from the queue in one go.
MAX_ERRORS = 32


class Keithley2450:
    """One Keithley 2450-family SourceMeter as a potentiostat channel."""

    def __init__(self, transport: MessageTransport, *, limits: ChannelLimits,
                 model: str = "2450", nplc: float = 1.0, four_wire: bool = True,
                 time_scale: float = 1.0, max_poll_interval_s: float = 1.0,
                 buffered_below_s: float = 0.05, retries: int = 1,
                 backoff: Backoff | None = None, reconnect_attempts: int = 5,
                 reset_on_open: bool = True) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
        self.transport = transport
        self.limits = limits
        self.expected_model = model
        self.nplc = nplc
        self.four_wire = four_wire
        self.max_poll_interval_s = max_poll_interval_s
        self.buffered_below_s = buffered_below_s
        self.retries = retries
        self.backoff = backoff or Backoff(initial_s=0.2, max_s=5.0)
        self.reconnect_attempts = reconnect_attempts
        self.reset_on_open = reset_on_open
        self.found_state: SourceState | None = None
        """what the instrument was doing when opened without a reset (None: it was reset)"""
        self._adopted: SourceSetting | None = None
        self._previous_reading_s: float | None = None
        self.identity: Identity | None = None
        self.line_frequency_hz = 50.0
        self.timebase = RelativeTimebase(time_scale)
        self._setting: SourceSetting | None = None
        self._output_on = False
        self._command = Command(Mode.OFF)
        self._pending: Block | None = None
        self._buffered: BufferedRun | None = None
        self._configured = False
        self._last_voltage_v: float | None = None
        self._lead_s = 0.0

    @classmethod
    def over_visa(cls, address: str, *, limits: ChannelLimits,
                  instrument: str = "keithley-2450", timeout_s: float = 2.0,
                  **options: Any) -> Self:
        """A driver on a :class:`VisaLink` (pyvisa-py) to ``address``."""
        return cls(VisaLink(address, instrument=instrument, timeout_s=timeout_s),
                   limits=limits, **options)

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.transport.open()
        try:
            await self.connect()
        except BaseException:
            await self.transport.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.safe()
        except InstrumentError as error:
            log.error("%s: could not switch the output off on closing: %s",
                      self.transport.instrument, error)
        finally:
            await self.transport.close()

    async def connect(self) -> Identity:
        """Identify, reset and configure (the output ends off, high impedance); without
        ``reset_on_open``, an instrument found sourcing under the driver's protection is
        adopted as it is instead."""
        identity = await self.identify()
        if not self.reset_on_open and await self._adopt():
            return identity
        await self.configure()
        return identity

    async def _adopt(self) -> bool:
        """Keep an instrument that sources with the protection this driver sets: read its
        state and line frequency, reset nothing. False when it must be configured afresh."""
        protection = self.model.protection(self.limits.max_voltage_v)
        async with self.transport.lock:
            # a loop a killed daemon left running stops; the source stays as it is
            await self.transport.write(":ABOR;*CLS")
            settings = (await self.transport.query(VERIFY_QUERY)).strip().upper()
            frequency = parse_numbers(await self.transport.query(":SYST:LFR?"))
        if settings != f"HIMP;HIMP;{protection}" or frequency is None or len(frequency) != 1:
            log.warning("%s: not as this driver left it (%r); resetting it",
                        self.transport.instrument, settings)
            return False
        self.line_frequency_hz = frequency[0]
        self._configured = True  # source_state reads through the configured paths
        state = await self.source_state()
        if not state.output_on:
            self._configured = False
            return False
        self.found_state = state
        log.info("%s: found sourcing (%s %.7g, limit %.7g%s); left as it is",
                 self.transport.instrument, state.mode.value, state.level, state.limit,
                 ", in compliance" if state.in_compliance else "")
        return True

    # -- identity and configuration -------------------------------------------------------------

    @property
    def model(self) -> SmuModel:
        """The connected model (the expected one before identification)."""
        if self.identity is not None:
            return MODELS[self.identity.model]
        return MODELS[self.expected_model]

    @property
    def capabilities(self) -> Capabilities:
        """The model's ranges within the channel's limits; steps ended by the host; readings
        no faster than one integration (twice ``nplc`` line cycles, with readback)."""
        model, limits = self.model, self.limits
        base = model.capabilities(self.measure_time_s)
        low_v = limits.min_voltage_v if limits.min_voltage_v > 0 else base.min_voltage_v
        return Capabilities(
            max_current_a=min(base.max_current_a, limits.max_current_a),
            min_voltage_v=low_v, max_voltage_v=min(base.max_voltage_v, limits.max_voltage_v),
            constant_power=False, constant_resistance=False, device_cutoffs=False,
            min_sample_interval_s=base.min_sample_interval_s)

    @property
    def measure_time_s(self) -> float:
        """One reading's integration: ``nplc`` line cycles, twice (the source readback)."""
        return 2.0 * self.nplc / self.line_frequency_hz

    async def identify(self) -> Identity:
        """``*IDN?`` and ``*LANG?``; refuses other instruments and other command sets."""
        async with self.transport.lock:
            reply = await self.transport.query("*IDN?")
            identity = parse_identity(reply)
            if identity is None:
                raise self._error(MalformedReply, f"not an identity: {reply!r}", "*IDN?")
            if "KEITHLEY" not in identity.manufacturer.upper() or identity.model not in MODELS:
                raise self._error(UnsupportedInstrument, f"{reply.strip()!r} is not a Keithley "
                                  f"{', '.join(MODELS)}", "*IDN?")
            language = (await self.transport.query("*LANG?")).strip().upper()
        if language != "SCPI":
            raise self._error(UnsupportedInstrument,
                              f"the instrument uses the {language} command set; send "
                              f"'*LANG SCPI' and power-cycle it", "*LANG?")
        problems = self.limits.within(MODELS[identity.model])
        if problems:
            raise self._error(UnsupportedInstrument, "; ".join(problems), "*IDN?")
        self.identity = identity
        log.info("%s at %s: %s %s, serial %s, firmware %s", self.transport.instrument,
                 self.transport.address, identity.manufacturer, identity.model,
                 identity.serial_number, identity.firmware)
        return identity

    async def configure(self) -> None:
        """Reset and set up the instrument for the channel (output off, high impedance)."""
        commands = configuration_commands(self.model, self.limits, nplc=self.nplc,
                                          four_wire=self.four_wire)
        protection = self.model.protection(self.limits.max_voltage_v)
        async with self.transport.lock:
            await self.transport.write("*CLS")
            await self.transport.write(RESET)
            self._setting, self._output_on, self._buffered, self._pending = None, False, None, None
            self._adopted = None
            for command in commands:
                await self.transport.write(command)
            await self._check_errors([RESET, *commands])
            settings = (await self.transport.query(VERIFY_QUERY)).strip().upper()
            if settings != f"HIMP;HIMP;{protection}":
                raise self._error(InstrumentReported, f"the protection did not take: output-off "
                                  f"states and protection read {settings!r}", VERIFY_QUERY)
            frequency = parse_numbers(await self.transport.query(":SYST:LFR?"))
            if frequency is None or len(frequency) != 1 or frequency[0] not in (50.0, 60.0):
                raise self._error(MalformedReply, "not a line frequency", ":SYST:LFR?")
            self.line_frequency_hz = frequency[0]
            self.timebase.restart()
        self._command = Command(Mode.OFF)
        self._configured = True

    async def check_errors(self) -> None:
        """Read the error queue until it is empty; raise the first error found."""
        async with self.transport.lock:
            await self._check_errors([])

    # -- reading the source without changing it -------------------------------------------------

    async def source_state(self) -> SourceState:
        """What the instrument sources now and one reading, by queries only (see
        :mod:`cellrig.drivers.keithley2450_state`). A source found on is adopted: an
        :meth:`apply` of the same setting next sends no setting, only its reading."""
        async with self.transport.lock:
            await self._stop_buffered()
            reply = await self.transport.query(STATE_QUERY)
            found = parse_state(reply)
            if found is None:
                raise self._error(MalformedReply, f"not a source state: {reply!r}",
                                  STATE_QUERY)
            previous_s = None
            if found.buffer_end > 0:
                query = f':TRAC:DATA? {found.buffer_end}, {found.buffer_end}, "defbuffer1", REL'
                values = parse_numbers(await self.transport.query(query))
                if values is None or len(values) != 1:
                    raise self._error(MalformedReply, "not a relative time", query)
                previous_s = values[0]
            setting = found.setting if found.output_on else None
            self._pending = None
            block = await self._measure([], setting)
            tripped = parse_tripped(await self.transport.query(TRIPPED_QUERY),
                                    found.setting.function)
            if tripped is None:
                raise self._error(MalformedReply, "not the limits' states", TRIPPED_QUERY)
        relative_s = float(block.time_s[0]) - self.timebase.offset_s
        since_s = (None if previous_s is None or relative_s < previous_s
                   else relative_s - previous_s)
        if self._previous_reading_s is None and since_s is not None:
            # the first look of this connection: the buffer's last reading is the previous
            # connection's; later looks count from it too
            self._previous_reading_s = float(block.time_s[0]) - since_s
        if self._previous_reading_s is not None:
            since_s = float(block.time_s[0]) - self._previous_reading_s
        self._setting, self._output_on = setting, found.output_on
        self._adopted = setting
        mode = (Mode.OFF if not found.output_on else
                Mode.CURRENT if found.setting.function == CURRENT else Mode.VOLTAGE)
        return SourceState(found.output_on, mode, found.setting.level, found.setting.limit,
                           found.output_on and tripped, float(block.voltage_v[0]),
                           float(block.current_a[0]), float(block.time_s[0]),
                           self.timebase.time_scale, since_s)

    def sources(self, state: SourceState, command: Command) -> bool:
        """Whether ``state`` is ``command`` as this driver sources it (a discharge as the
        voltage source at its bound it chose when the step started above the bound)."""
        if not state.output_on:
            return False
        try:
            wanted = source_setting(command, self.limits, None)
        except SettingRefused:
            return False
        function = CURRENT if state.mode is Mode.CURRENT else VOLTAGE
        return same_setting(SourceSetting(function, state.level, state.limit), wanted)

    # -- the potentiostat port ------------------------------------------------------------------

    async def apply(self, command: Command) -> float:
        """Set the source and take the first reading; returns its instrument time."""
        if not self._configured:
            raise self._error(InstrumentError, "not configured (use 'async with')", None)
        try:
            setting = source_setting(command, self.limits, self._last_voltage_v)
            adopted, self._adopted = self._adopted, None
            if adopted is not None and same_setting(adopted, source_setting(
                    command, self.limits, None)):
                setting = adopted  # the source found on after a restart: keep it as it is
        except SettingRefused as refused:
            raise self._error(InstrumentError, str(refused), None) from refused
        async with self.transport.lock:
            await self._stop_buffered()
            self._pending = None
            if setting is None:
                await self._switch_off()
                self._command = command
                return self.timebase.now_s()
            commands = setting_commands(setting, self._setting, self._output_on)
            self._setting, self._output_on = None, True  # unknown until the reply came
            first = await self._measure(commands, setting)
            self._setting = setting
            self._command = command
            interval_s = self._interval_s(command)
            if interval_s < self.buffered_below_s:
                await self._start_buffered(interval_s)
        self._pending = first
        return float(first.time_s[0])

    async def read(self) -> Block:
        """The next readings under the current command (one when host-polled, what the
        instrument stored since the last call when buffered)."""
        if self._pending is not None:
            block, self._pending = self._pending, None
            return block
        if self._command.mode is Mode.OFF:
            now = np.array([self.timebase.now_s()])
            return Block(now, np.array([math.nan]), np.zeros(1))
        if self._buffered is not None:
            return await self._retrying(self._read_buffered)
        # The reading is taken some time into the exchange: send it that much early. The lead
        # is learnt from the spacing the readings get (instrument time) against the interval.
        interval_s = self._interval_s(self._command)
        previous_s = self.timebase.last_s
        wait_s = self.timebase.wait_host_s(interval_s) - self._lead_s
        await asyncio.sleep(max(wait_s, 0.0))
        block = await self._retrying(self._read_one)
        if previous_s is not None and wait_s > 0:
            error_s = (float(block.time_s[-1]) - previous_s - interval_s) / (
                self.timebase.time_scale)
            self._lead_s = min(max(self._lead_s + 0.3 * error_s, 0.0),
                               interval_s / self.timebase.time_scale)
        return block

    async def end_step(self, at_time_s: float) -> None:
        """Stop an instrument-timed loop; the source stays as it is until the next command."""
        self._pending = None
        if self._buffered is not None:
            async with self.transport.lock:
                await self._stop_buffered()

    async def safe(self) -> None:
        """Output off in the high-impedance state (reconnecting first if the connection
        dropped), checked with ``:OUTP?``; raises the last error if that fails twice."""
        last: InstrumentError | None = None
        for attempt in range(2):
            try:
                if not self.transport.is_open:
                    await self.transport.reopen(self.backoff, attempts=self.reconnect_attempts)
                async with self.transport.lock:
                    await self._switch_off()
                self._command = Command(Mode.OFF)
                return
            except InstrumentError as error:
                last = error
                log.warning("%s: switching the output off failed (attempt %d): %s",
                            self.transport.instrument, attempt + 1, error)
                if isinstance(error, ConnectionLost):
                    await self.transport.close()
        assert last is not None
        raise last

    # -- internals ------------------------------------------------------------------------------

    def _interval_s(self, command: Command) -> float:
        return min(max(command.sample_interval_s, self.measure_time_s), self.max_poll_interval_s)

    async def _read_one(self) -> Block:
        async with self.transport.lock:
            return await self._measure([], self._setting)

    async def _measure(self, commands: list[str], setting: SourceSetting | None) -> Block:
        """``commands``, then ``:READ?`` with the error count, in one message (one round
        trip); one reading as a block."""
        message = ";".join([*commands, READ_QUERY])
        try:
            reply = await self.transport.query(message)
        except InstrumentTimeout:
            if commands:  # a refused command ends the message before the query: say which
                await self._check_errors(commands)
            raise
        values, _, count = reply.rpartition(";")
        numbers = parse_numbers(values)
        if numbers is None or len(numbers) != 3 or not count.strip().isdigit():
            raise self._error(MalformedReply, f"not a reading: {reply!r}", message)
        if int(count):
            await self._check_errors(commands or [READ_QUERY])
        reading, source, relative_s = numbers
        return self._block(np.array([reading]), np.array([source]), np.array([relative_s]),
                           setting)

    def _block(self, reading: Any, source: Any, relative_s: Any,
               setting: SourceSetting | None) -> Block:
        times = self.timebase.place(np.asarray(relative_s, dtype=float))
        sensed_voltage = setting is None or setting.sense == VOLTAGE
        voltage, current = (reading, source) if sensed_voltage else (source, reading)
        last_v = float(np.asarray(voltage, dtype=float)[-1])
        self._last_voltage_v = last_v if math.isfinite(last_v) else self._last_voltage_v
        return Block(times, np.asarray(voltage, dtype=float), np.asarray(current, dtype=float))

    async def _start_buffered(self, interval_s: float) -> None:
        """Load and start a loop that measures every ``interval_s`` into defbuffer1."""
        run = BufferedRun.every(interval_s, self.measure_time_s)
        await self.transport.write(run.start_message)
        self.timebase.restart(lead_s=run.delay_s + self.measure_time_s)
        self._buffered = run

    async def _stop_buffered(self) -> None:
        if self._buffered is not None:
            self._buffered = None
            await self.transport.write(":ABOR")

    async def _read_buffered(self) -> Block:
        run = self._buffered
        assert run is not None
        while True:
            await asyncio.sleep(run.poll_host_s(self.timebase.time_scale))
            async with self.transport.lock:
                if self._buffered is not run:
                    raise self._error(InstrumentError, "the buffered acquisition was stopped",
                                      None)
                table = await run.fetch(self.transport, self._check_errors, self._error)
                if table is None:
                    continue
                block = self._block(table[:, 0], table[:, 1], table[:, 2], self._setting)
                if run.complete:
                    await self._start_buffered(run.interval_s)
                return block

    async def _switch_off(self) -> None:
        self._buffered, self._adopted = None, None
        state = (await self.transport.query(SWITCH_OFF)).strip()
        self._output_on = False
        if state != "0":
            raise self._error(InstrumentReported, f"the output is still on ({state!r})",
                              SWITCH_OFF)

    async def _check_errors(self, context: list[str]) -> None:
        """Read ``:SYST:ERR?`` until ``0``; raise the first error (all are logged)."""
        found: list[tuple[int, str]] = []
        for _ in range(MAX_ERRORS):
            reply = await self.transport.query(":SYST:ERR?")
            parsed = parse_error(reply)
            if parsed is None:
                raise self._error(MalformedReply, f"not an error-queue entry: {reply!r}",
                                  ":SYST:ERR?")
            if parsed[0] == 0:
                break
            found.append(parsed)
        if not found:
            return
        sent = "; ".join(context) if context else None
        for code, message in found:
            log.error("%s at %s reported %d %r after %s", self.transport.instrument,
                      self.transport.address, code, message, sent)
        code, message = found[0]
        raise InstrumentReported(message, instrument=self.transport.instrument,
                                 address=self.transport.address, command=sent, code=code)

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except (InstrumentTimeout, MalformedReply, ConnectionLost) as error:
                if attempt >= self.retries:
                    raise
                log.warning("%s: reading failed (%s); retrying", self.transport.instrument,
                            error)
                if isinstance(error, ConnectionLost):
                    await self.transport.reopen(self.backoff, attempts=self.reconnect_attempts)
        raise AssertionError("unreachable")

    def _error(self, kind: type[InstrumentError], message: str,
               command: str | None) -> InstrumentError:
        return kind(message, instrument=self.transport.instrument,
                    address=self.transport.address, command=command)

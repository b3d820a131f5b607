"""The safety supervisor: one per channel, independent of the engine that runs the job.

It watches what the channel's instruments report and nothing else: every block the potentiostat
hands over (a tap on :meth:`ChannelRig.read`, before the engine sees it) and every value the
environment poller reads from the channel's chamber and jig. It enforces the effective limits
(the job's ∩ the channel's hard limits ∩ the instruments' ranges, see
:mod:`cellrig.daemon.supervisor_limits`), with warning and critical levels, trip delays and
hysteresis; and a watchdog on every instrument: while the channel is engaged, an instrument
without a fresh reading for ``watchdog_periods`` of its sampling periods trips the channel.

A trip puts every instrument of the channel in its safe state — potentiostat output off at high
impedance, chamber holding its setpoint, jig holding its pressure — each tried on its own under
its own timeout, a failure logged, reported and retried with backoff, never raised. The channel
then stays latched safe (its rig refuses to source) until :meth:`ChannelSupervisor.reset`.
Events go to a callback; a failing callback is logged and ignored. Each channel's watchdog runs
as its own task, so a channel whose instruments hang never delays another channel's checks.

Time comes from an injected :class:`~cellrig.daemon.environment.Timer`: limit delays are
measured on the readings' own clocks (the potentiostat's instrument time, the poll times of the
environment), watchdogs on the timer's monotonic time, events stamped with its UTC time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from cellrig.daemon.channel_rig import POTENTIOSTAT, ChannelRig, ChannelTripped, SafeAction
from cellrig.daemon.environment import EnvironmentInstrument, Stamped, Timer
from cellrig.daemon.supervisor_limits import (
    EffectiveLimit,
    Finding,
    Level,
    LevelMonitor,
    Quantity,
    effective_limits,
    instrument_limits,
)
from cellrig.drivers.backoff import Backoff
from cellrig.protocols.program import Limits
from cellrig.protocols.rig import Block, Command

log = logging.getLogger(__name__)

#: Name of the EIS unit among a channel's watched instruments.
EIS = "eis"
#: Recent events kept in memory per channel (for status and tests; the store keeps all).
EVENTS_KEPT = 256


class SafetyEventKind(StrEnum):
    """What the supervisor reports."""

    WARNING = "warning"
    LIMIT = "limit"
    WATCHDOG = "watchdog"
    ALARM = "alarm"
    SAFE_FAILED = "safe failed"


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """One report of a channel's supervisor.

    ``quantity`` is the limited quantity for warnings and limits, the instrument for watchdog,
    alarm and safe-failed events. ``value`` and ``limit`` are the reading and the level passed
    (for a watchdog: seconds without a fresh reading and the timeout). ``time_s`` is UTC;
    ``reading_time_s`` is the reading's own time (instrument time for voltage and current).
    """

    channel: str
    kind: SafetyEventKind
    quantity: str
    value: float
    limit: float
    time_s: float
    message: str
    reading_time_s: float | None = None


EventCallback = Callable[[SafetyEvent], None]


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """Watchdog periods and floor, hysteresis (share of the window's span), the timeout of
    each safe action, the watchdog tick and the retry backoff of failed safe actions."""

    watchdog_periods: float = 3.0
    watchdog_floor_s: float = 5.0
    hysteresis_fraction: float = 0.01
    safe_timeout_s: float = 5.0
    tick_s: float = 0.25
    retry: Backoff = field(default_factory=lambda: Backoff(initial_s=1.0, max_s=30.0))


class Watchdog:
    """One instrument's freshness: armed with a timeout, fed by fresh readings."""

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.timeout_s = math.inf
        self.armed_at_s: float | None = None
        self.fresh_at_s = -math.inf

    def arm(self, now_s: float, timeout_s: float, *, restart: bool = False) -> None:
        """Expect fresh readings within ``timeout_s``, counted from now if newly armed or
        ``restart`` (a new command: its readings start now)."""
        if self.armed_at_s is None or restart:
            self.armed_at_s = now_s
        self.timeout_s = timeout_s

    def disarm(self) -> None:
        """Expect nothing."""
        self.armed_at_s = None

    def feed(self, now_s: float) -> None:
        """A fresh reading arrived."""
        self.fresh_at_s = now_s

    def silence_s(self, now_s: float) -> float | None:
        """How long the instrument has been silent past its timeout's start, if overdue."""
        if self.armed_at_s is None:
            return None
        silent_s = now_s - max(self.fresh_at_s, self.armed_at_s)
        return silent_s if silent_s > self.timeout_s else None


class ChannelSupervisor:
    """Limits, watchdogs, safe state and latch of one channel."""

    def __init__(self, rig: ChannelRig, *, timer: Timer, hard_limits: Limits | None = None,
                 on_event: EventCallback | None = None,
                 settings: SupervisorSettings | None = None, rng: random.Random | None = None
                 ) -> None:
        self.rig = rig
        self.channel = rig.name
        self.timer = timer
        self.hard_limits = hard_limits or Limits()
        self.on_event = on_event
        self.settings = settings or SupervisorSettings()
        self._rng = rng or random.Random()
        self.job_limits: Limits | None = None
        self.trip: SafetyEvent | None = None
        self.events: deque[SafetyEvent] = deque(maxlen=EVENTS_KEPT)
        self._unsafe: dict[str, tuple[float, Iterator[float]]] = {}
        self._output_on = False
        self._sweeping = False
        self._environment: list[EnvironmentInstrument] = [
            part for part in (rig.chamber, rig.jig) if part is not None]
        self.watchdogs = {POTENTIOSTAT: Watchdog(POTENTIOSTAT), EIS: Watchdog(EIS)}
        for part in self._environment:
            self.watchdogs[part.name] = Watchdog(part.name)
            part.listeners.append(self)
        self.limits: dict[Quantity, EffectiveLimit] = {}
        self.monitors: dict[Quantity, LevelMonitor] = {}
        self._set_limits(self.job_limits)
        rig.tap = self

    # -- limits and the job -------------------------------------------------------------------
    def instrument_ranges(self) -> Limits:
        """The channel's instruments' ranges as limits."""
        capabilities = self.rig.potentiostat.capabilities
        chamber, jig = self.rig.chamber, self.rig.jig
        return instrument_limits(
            min_voltage_v=capabilities.min_voltage_v, max_voltage_v=capabilities.max_voltage_v,
            max_current_a=capabilities.max_current_a,
            temperature_range_c=None if chamber is None else chamber.port.temperature_range_c,
            max_pressure_pa=None if jig is None else jig.port.max_pressure_pa)

    def _set_limits(self, job_limits: Limits | None) -> None:
        sources = [("channel hard limit", self.hard_limits),
                   ("instrument range", self.instrument_ranges())]
        if job_limits is not None:
            sources.insert(0, ("job limit", job_limits))
        self.limits = effective_limits(sources)
        self.monitors = {quantity: LevelMonitor(limit, self.settings.hysteresis_fraction)
                         for quantity, limit in self.limits.items()}
        self.job_limits = job_limits

    def begin_job(self, job_limits: Limits) -> dict[Quantity, EffectiveLimit]:
        """Watch a job's limits (with the channel's and the instruments') from now on, and
        the environment instruments' freshness until :meth:`end_job`.

        Raises:
            ChannelTripped: the channel is latched safe.
            LimitsConflict: the job's limits leave no window inside the channel's.
        """
        if self.trip is not None:
            raise ChannelTripped(self.channel, self.trip.message)
        self._set_limits(job_limits)
        self._engaged_changed()
        return self.limits

    def end_job(self) -> None:
        """Back to the channel's hard limits and the instruments' ranges."""
        self._set_limits(None)
        self._engaged_changed()

    @property
    def latched(self) -> bool:
        """Whether the channel is held safe after a trip."""
        return self.trip is not None

    def reset(self) -> None:
        """Clear the latch (a person decided the channel may run again)."""
        if self.trip is not None:
            log.warning("%s: safety latch reset (was: %s)", self.channel, self.trip.message)
        self.trip = None
        self._unsafe.clear()
        self._set_limits(self.job_limits)

    # -- the tap on the channel's rig ---------------------------------------------------------
    def refusal(self) -> str | None:
        """The trip's message while latched."""
        return None if self.trip is None else self.trip.message

    def command_applied(self, command: Command, sample_interval_s: float) -> None:
        """The output is on: the potentiostat must read at least every few intervals."""
        del command
        settings = self.settings
        self.watchdogs[POTENTIOSTAT].arm(self.timer.now_s(), max(
            settings.watchdog_periods * sample_interval_s, settings.watchdog_floor_s),
            restart=True)
        self._output_on = True
        self._engaged_changed()

    def output_off(self) -> None:
        """Nothing to read from the potentiostat."""
        self.watchdogs[POTENTIOSTAT].disarm()
        self._output_on = False
        self._engaged_changed()

    def sweep_started(self, nominal_s: float) -> None:
        """The EIS unit must finish within a few times the sweep's nominal length."""
        settings = self.settings
        self.watchdogs[EIS].arm(self.timer.now_s(), settings.watchdog_periods * nominal_s
                                + settings.watchdog_floor_s)
        self._sweeping = True
        self._engaged_changed()

    def sweep_ended(self) -> None:
        """The sweep is over."""
        self.watchdogs[EIS].disarm()
        self._sweeping = False
        self._engaged_changed()

    async def readings(self, block: Block) -> float | None:
        """Voltage and current of every reading against their limits; the time of the
        reading that tripped the channel, if one did."""
        if len(block) == 0:
            return None
        self.watchdogs[POTENTIOSTAT].feed(self.timer.now_s())
        findings: list[Finding] = []
        monitor = self.monitors.get(Quantity.VOLTAGE)
        if monitor is not None:
            findings += monitor.observe(block.time_s, block.voltage_v)
        monitor = self.monitors.get(Quantity.CURRENT)
        if monitor is not None:
            findings += monitor.observe(block.time_s, np.abs(block.current_a))
        if self.trip is not None:
            return None  # latched by another trip meanwhile: nothing new to act on
        findings.sort(key=lambda finding: finding.time_s)  # voltage and current interleaved
        return await self._handle(findings)

    # -- the environment poller's listener ----------------------------------------------------
    async def environment_reading(self, source: EnvironmentInstrument, reading: Stamped) -> None:
        """A chamber temperature or a stack pressure against its limits."""
        self.watchdogs[source.name].feed(reading.at_s)
        monitor = self.monitors.get(Quantity(source.quantity))
        if monitor is not None:
            await self._handle(monitor.observe(np.array([reading.at_s]),
                                               np.array([reading.value])))

    async def environment_alarms(self, source: EnvironmentInstrument,
                                 alarms: tuple[str, ...]) -> None:
        """Alarms the instrument raises are reported (its own protection acts on them)."""
        if alarms:
            self._emit(SafetyEventKind.ALARM, source.name, float(len(alarms)), 0.0,
                       f"{source.name} alarms: {', '.join(alarms)}")

    # -- trips and the safe state -------------------------------------------------------------
    def _engaged_changed(self) -> None:
        engaged = self._output_on or self._sweeping or self.job_limits is not None
        now_s = self.timer.now_s()
        for part in self._environment:
            watchdog = self.watchdogs[part.name]
            if engaged:
                watchdog.arm(now_s, max(self.settings.watchdog_periods * part.poll_period_s,
                                        self.settings.watchdog_floor_s))
            else:
                watchdog.disarm()

    async def _handle(self, findings: Sequence[Finding]) -> float | None:
        """Warnings as events; the first trip (in reading order) trips the channel and ends
        the findings. Returns the tripping reading's time."""
        for finding in findings:
            if finding.level is Level.WARNING:
                self._emit(SafetyEventKind.WARNING, finding.quantity.value, finding.value,
                           finding.limit, finding.message, finding.time_s)
            else:
                await self._trip(SafetyEventKind.LIMIT, finding.quantity.value, finding.value,
                                 finding.limit, finding.message, finding.time_s)
                return finding.time_s
        return None

    async def _trip(self, kind: SafetyEventKind, quantity: str, value: float, limit: float,
                    message: str, reading_time_s: float | None = None) -> None:
        if self.trip is not None:
            return
        self.trip = SafetyEvent(self.channel, kind, quantity, value, limit,
                                self.timer.unix_now(), message, reading_time_s)
        log.error("%s: %s: %s; making the channel safe", self.channel, kind.value, message)
        await self._reach_safe_state(self.rig.safe_actions())
        self._deliver(self.trip)

    async def _reach_safe_state(self, actions: Sequence[SafeAction]) -> None:
        async def attempt(action: SafeAction) -> None:
            try:
                async with asyncio.timeout(self.settings.safe_timeout_s):
                    await action.act()
            except Exception as exc:  # every instrument is tried, whatever the others do
                first = action.instrument not in self._unsafe
                delays = self._unsafe[action.instrument][1] if not first else \
                    self.settings.retry.delays(self._rng)
                self._unsafe[action.instrument] = (self.timer.now_s() + next(delays), delays)
                detail = str(exc) or type(exc).__name__
                if first:
                    self._emit(SafetyEventKind.SAFE_FAILED, action.instrument, math.nan,
                               math.nan, f"{action.instrument} could not be made safe: {detail}")
                else:
                    log.warning("%s: %s still not safe: %s", self.channel, action.instrument,
                                detail)
            else:
                if self._unsafe.pop(action.instrument, None) is not None:
                    log.info("%s: %s is safe now", self.channel, action.instrument)

        await asyncio.gather(*(attempt(action) for action in actions))

    @property
    def unsafe_instruments(self) -> list[str]:
        """Instruments whose safe action failed and is being retried."""
        return sorted(self._unsafe)

    async def tick(self) -> None:
        """Check the watchdogs; retry safe actions that failed and are due."""
        now_s = self.timer.now_s()
        if self.trip is None:
            for watchdog in self.watchdogs.values():
                silent_s = watchdog.silence_s(now_s)
                if silent_s is not None:
                    await self._trip(
                        SafetyEventKind.WATCHDOG, watchdog.instrument, silent_s,
                        watchdog.timeout_s, f"no fresh reading from {watchdog.instrument} for "
                        f"{silent_s:.3g} s (timeout {watchdog.timeout_s:.3g} s)")
                    return
        due = {name for name, (at_s, _) in self._unsafe.items() if at_s <= now_s}
        if due:
            await self._reach_safe_state(
                [action for action in self.rig.safe_actions() if action.instrument in due])

    async def run(self) -> None:
        """Tick for ever (returns only when cancelled)."""
        while True:
            try:
                await self.tick()
            except Exception:  # the watchdog of this channel must outlive its own bugs
                log.exception("%s: supervisor tick failed", self.channel)
            await self.timer.sleep(self.settings.tick_s)

    # -- events -------------------------------------------------------------------------------
    def _emit(self, kind: SafetyEventKind, quantity: str, value: float, limit: float,
              message: str, reading_time_s: float | None = None) -> None:
        event = SafetyEvent(self.channel, kind, quantity, value, limit, self.timer.unix_now(),
                            message, reading_time_s)
        level = logging.WARNING if kind in (SafetyEventKind.WARNING,
                                            SafetyEventKind.ALARM) else logging.ERROR
        log.log(level, "%s: %s: %s", self.channel, kind.value, message)
        self._deliver(event)

    def _deliver(self, event: SafetyEvent) -> None:
        self.events.append(event)
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a failing consumer must not undo the safety action
            log.exception("%s: the safety event callback failed", self.channel)


class Supervisor:
    """The station's supervisors: one watchdog task per channel, until cancelled."""

    def __init__(self, channels: Sequence[ChannelSupervisor]) -> None:
        self.channels = {channel.channel: channel for channel in channels}

    async def run(self) -> None:
        """Run every channel's watchdog loop (returns only when cancelled)."""
        async with asyncio.TaskGroup() as group:
            for name, channel in self.channels.items():
                group.create_task(channel.run(), name=f"{name}.supervisor")

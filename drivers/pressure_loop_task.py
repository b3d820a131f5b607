"""The pressure loop's cadence: read the gauge, update the controller, command the regulator.

One :meth:`PressureLoop.tick` is one exchange with each instrument: a force reading, then
either a new setpoint (the Alicat answers a setpoint with its data frame) or a poll. Wire
problems never escape a tick: a missing reading holds the output at once and raises
``GAUGE_LOST`` once it lasts the response timeout; a regulator that does not answer raises
``REGULATOR_LOST`` the same way, and the unsent setpoint goes out on the next tick. A force
above the jig's maximum or a pressure above the ceiling trips the raise inhibit: from then on
the loop may lower the regulator but never raise it, until a different setpoint is given
(the trip latches, so the loop does not creep back up against the limit). Time
comes from an injected clock and sleep, so the loop runs on the bench's virtual clock in
tests and simulations exactly as on the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.jig_monitor import ForceGaugePort, ForceMonitor, JigReading, read_gauge
from cellrig.drivers.pressure_loop import LoopTuning, PressureController
from cellrig.drivers.pressure_loop_alarms import AlarmBook, JigAlarm, Persistence
from cellrig.errors import InstrumentError

log = logging.getLogger(__name__)


class RegulatorState(Protocol):
    """What a regulator reports: its measured output pressure and its setpoint."""

    @property
    def pressure_pa(self) -> float:
        """The regulated pressure now."""
        ...

    @property
    def setpoint_pa(self) -> float:
        """The setpoint it is regulating to."""
        ...


class RegulatorPort(Protocol):
    """A pressure regulator as the loop uses it (the Alicat driver, or a model in tests)."""

    @property
    def full_scale_pa(self) -> float:
        """The highest setpoint it accepts."""
        ...

    async def poll(self) -> RegulatorState:
        """Its state now."""
        ...

    async def set_pressure(self, pressure_pa: float) -> RegulatorState:
        """A new setpoint; returns the state with it."""
        ...


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """The loop's tuning and its interlock thresholds.

    ``tracking_*``: the regulator's pressure staying further than ``tracking_fraction`` of
    its setpoint (at least ``tracking_min_pa``) for ``tracking_timeout_s`` raises
    ``REGULATOR_TRACKING``; ``tolerance_*``: the stack pressure staying outside
    ``±tolerance_fraction`` of the setpoint for ``tolerance_timeout_s`` (once the reference
    has arrived) raises ``OUT_OF_TOLERANCE``. ``min_command_change_pa`` is the smallest
    change of regulator setpoint worth sending.
    """

    tuning: LoopTuning = field(default_factory=LoopTuning)
    response_timeout_s: float = 5.0
    tracking_fraction: float = 0.03
    tracking_min_pa: float = 2.0e3
    tracking_timeout_s: float = 30.0
    tolerance_fraction: float = 0.02
    tolerance_timeout_s: float = 60.0
    min_command_change_pa: float = 100.0


class PressureLoop:
    """A stack-pressure loop over one regulator and one gauge."""

    def __init__(self, name: str, geometry: JigGeometry, regulator: RegulatorPort,
                 gauge: ForceGaugePort, *, settings: LoopSettings | None = None,
                 alarms: AlarmBook | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_reading: Callable[[JigReading], None] | None = None) -> None:
        self.name = name
        self.settings = settings if settings is not None else LoopSettings()
        self.alarms = alarms if alarms is not None else AlarmBook(name)
        self.regulator = regulator
        self.gauge = gauge
        self.controller = PressureController(geometry, self.settings.tuning,
                                             regulator_max_pa=regulator.full_scale_pa)
        self.monitor = ForceMonitor(geometry, self.alarms,
                                    response_timeout_s=self.settings.response_timeout_s,
                                    ceiling_pa=self.controller.ceiling_pa)
        self.regulator_state: RegulatorState | None = None
        self._clock = clock
        self._sleep = sleep
        self._on_reading = on_reading
        self._sent_pa: float | None = None
        self._regulator_ok_s: float | None = None
        self._regulator_failing = False
        self._tracking = Persistence(self.settings.tracking_timeout_s)
        self._tolerance = Persistence(self.settings.tolerance_timeout_s)
        self.ticks = 0
        self.raise_inhibited = False
        """latched by an over-force or over-pressure trip; a different setpoint releases it"""
        self._was_over_limit = False

    # -- settings from the station and the engine ---------------------------------------------

    def set_target(self, pressure_pa: float) -> None:
        """A new stack-pressure setpoint (refused above the ceiling). A setpoint other than
        the present one releases the raise inhibit; the same one sent again (a safe state
        re-asserting its setpoint) does not."""
        changed = pressure_pa != self.controller.target_pa
        self.controller.set_target(pressure_pa)
        if changed:
            self._tolerance.reset()
            self.raise_inhibited = False

    def set_ceiling(self, ceiling_pa: float) -> None:
        """The protocol's pressure limit (the loop never commands above it)."""
        self.controller.set_ceiling(ceiling_pa)
        self.monitor.ceiling_pa = self.controller.ceiling_pa

    # -- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Take over, then tick every period until cancelled."""
        await self.start()
        while True:
            await self._sleep(self.settings.tuning.period_s)
            await self.tick()

    async def start(self) -> None:
        """Read both instruments once and take over bumplessly from the regulator."""
        now_s = self._clock()
        force_n, why_not = await read_gauge(self.gauge)
        reading = self._observe(now_s, force_n, why_not)
        state = await self._exchange(now_s, None)
        setpoint_pa = state.setpoint_pa if state is not None else 0.0
        self._sent_pa = state.setpoint_pa if state is not None else None
        measured_pa = reading.pressure_pa if reading is not None else None
        self.controller.start(now_s, setpoint_pa, measured_pa)

    async def tick(self) -> None:
        """One period: read, compute, command, check the interlocks."""
        self.ticks += 1
        now_s = self._clock()
        force_n, why_not = await read_gauge(self.gauge)
        reading = self._observe(now_s, force_n, why_not)
        measured_pa = reading.pressure_pa if reading is not None else None
        behind, ahead = self._regulator_off()
        over_limit = self.monitor.over_limit
        if over_limit and not self._was_over_limit:
            self.raise_inhibited = True
        self._was_over_limit = over_limit
        allow_raise = not (self.raise_inhibited or over_limit)
        command_pa = self.controller.update(now_s, measured_pa, hold=self.monitor.missing,
                                            allow_raise=allow_raise,
                                            regulator_behind=behind, regulator_ahead=ahead)
        change_pa = self.settings.min_command_change_pa
        send = self._sent_pa is None or abs(command_pa - self._sent_pa) >= change_pa
        state = await self._exchange(now_s, command_pa if send else None)
        self._check_tracking(now_s, state)
        self._check_tolerance(now_s, measured_pa)

    # -- internals ----------------------------------------------------------------------------

    def _observe(self, now_s: float, force_n: float | None, why_not: str) -> JigReading | None:
        reading = self.monitor.observe(now_s, force_n, why_not)
        if reading is not None and self._on_reading is not None:
            self._on_reading(reading)
        return reading

    async def _exchange(self, now_s: float, command_pa: float | None) -> RegulatorState | None:
        if self._regulator_ok_s is None:
            self._regulator_ok_s = now_s
        try:
            if command_pa is None:
                state = await self.regulator.poll()
            else:
                state = await self.regulator.set_pressure(command_pa)
                self._sent_pa = command_pa
        except InstrumentError as error:
            level = logging.DEBUG if self._regulator_failing else logging.WARNING
            log.log(level, "%s: regulator exchange failed: %s", self.name, error)
            self._regulator_failing = True
            silent_s = now_s - self._regulator_ok_s
            if silent_s >= self.settings.response_timeout_s:
                self.alarms.update(JigAlarm.REGULATOR_LOST, True, now_s,
                                   f"no answer for {silent_s:.1f} s ({error.detail})")
            return None
        if self._regulator_failing:
            log.info("%s: the regulator answers again", self.name)
        self._regulator_failing = False
        self._regulator_ok_s = now_s
        self.regulator_state = state
        self.alarms.update(JigAlarm.REGULATOR_LOST, False, now_s)
        return state

    def _tracking_band_pa(self, state: RegulatorState) -> float:
        settings = self.settings
        return max(settings.tracking_fraction * state.setpoint_pa, settings.tracking_min_pa)

    def _regulator_off(self) -> tuple[bool, bool]:
        """Whether the regulator's pressure is well below / above its own setpoint."""
        state = self.regulator_state
        if state is None:
            return False, False
        band_pa = self._tracking_band_pa(state)
        gap_pa = state.pressure_pa - state.setpoint_pa
        return gap_pa < -band_pa, gap_pa > band_pa

    def _check_tracking(self, now_s: float, state: RegulatorState | None) -> None:
        if state is None:
            return
        gap_pa = abs(state.pressure_pa - state.setpoint_pa)
        off = gap_pa > self._tracking_band_pa(state) and not self.controller.ramping
        lasting = self._tracking.update(off, now_s)
        self.alarms.update(JigAlarm.REGULATOR_TRACKING, lasting, now_s,
                           f"regulator at {state.pressure_pa / 1e3:.1f} kPa, its setpoint "
                           f"{state.setpoint_pa / 1e3:.1f} kPa: leak or no supply?")

    def _check_tolerance(self, now_s: float, measured_pa: float | None) -> None:
        target_pa = self.controller.target_pa
        if measured_pa is None or target_pa is None:
            return
        band_pa = self.settings.tolerance_fraction * target_pa
        off = abs(measured_pa - target_pa) > band_pa and not self.controller.ramping
        lasting = self._tolerance.update(off, now_s)
        self.alarms.update(JigAlarm.OUT_OF_TOLERANCE, lasting, now_s,
                           f"stack pressure {measured_pa / 1e6:.3f} MPa, setpoint "
                           f"{target_pa / 1e6:.3f} MPa")

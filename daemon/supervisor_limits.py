"""The supervisor's limits: what a channel may see, and the level logic over readings.

Effective limits are the intersection of every source that constrains a quantity: the job's
limits (from its protocol), the channel's hard limits (station configuration) and the
instruments' ranges (the potentiostat's voltage and current range, the chamber's temperature
range, the jig's maximum pressure). Per side of a window the tightest level wins, and with it
its source's delay (the shortest delay on a tie); the warning level is the tightest warning
level of any source that still lies inside the effective window. Current is compared as a
magnitude, as in the engine.

A :class:`LevelMonitor` watches one quantity. A reading beyond a critical level starts a
breach; the breach trips when it has lasted the level's delay (measured on the readings' own
clock, from the first reading beyond; 0 trips at once). A pending breach is cleared only when
the readings come back inside by the hysteresis band, or stay inside for as long as the delay,
so a value dithering across the level still trips. A warning is given once per excursion past
a warning level and re-arms only when the reading is back inside it by the band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from cellrig.errors import CellrigError
from cellrig.protocols.program import Limit, Limits

FloatArray = npt.NDArray[np.float64]


class Quantity(StrEnum):
    """What a limit is on."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"


UNITS = {Quantity.VOLTAGE: "V", Quantity.CURRENT: "A", Quantity.TEMPERATURE: "°C",
         Quantity.PRESSURE: "Pa"}
_FIELDS = {Quantity.VOLTAGE: "voltage_v", Quantity.CURRENT: "current_a",
           Quantity.TEMPERATURE: "temperature_c", Quantity.PRESSURE: "pressure_pa"}


class LimitsConflict(CellrigError):
    """The sources leave no window at all (a job whose limits miss the channel's)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """One side of an effective limit: the critical level, its warning level, the delay
    and which source set the level."""

    level: float
    warn: float | None = None
    delay_s: float = 0.0
    source: str = ""


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    """The window a quantity must stay in (either side may be open)."""

    quantity: Quantity
    low: Bound | None = None
    high: Bound | None = None

    @property
    def span(self) -> float:
        """The window's width, or the magnitude of its only level (the hysteresis base)."""
        if self.low is not None and self.high is not None:
            return self.high.level - self.low.level
        side = self.high or self.low
        return 0.0 if side is None else abs(side.level)


def instrument_limits(*, min_voltage_v: float = -math.inf, max_voltage_v: float = math.inf,
                      max_current_a: float = math.inf,
                      temperature_range_c: tuple[float, float] | None = None,
                      max_pressure_pa: float | None = None) -> Limits:
    """The instruments' ranges as limits (open where the range is unbounded)."""
    def window(low: float, high: float) -> Limit | None:
        low_or_none = low if math.isfinite(low) else None
        high_or_none = high if math.isfinite(high) else None
        return None if low_or_none is None and high_or_none is None else Limit(low_or_none,
                                                                               high_or_none)

    temperature = None if temperature_range_c is None else window(*temperature_range_c)
    pressure = None if max_pressure_pa is None else window(-math.inf, max_pressure_pa)
    return Limits(voltage_v=window(min_voltage_v, max_voltage_v),
                  current_a=window(-math.inf, max_current_a),
                  temperature_c=temperature, pressure_pa=pressure)


def _side(quantity: Quantity, sources: Sequence[tuple[str, Limit]], high: bool) -> Bound | None:
    levels = []
    for source, limit in sources:
        level = limit.high if high else limit.low
        if level is not None and math.isfinite(level):
            levels.append((level if high else -level, limit.delay_s, source))
    if not levels:
        return None
    key, delay_s, source = min(levels)
    level = key if high else -key
    warns = [limit.warn_high if high else limit.warn_low for _, limit in sources]
    inside = [w for w in warns if w is not None and (w < level if high else w > level)]
    warn = (min(inside) if high else max(inside)) if inside else None
    return Bound(level, warn, delay_s, source)


def effective_limits(sources: Sequence[tuple[str, Limits]]) -> dict[Quantity, EffectiveLimit]:
    """The intersection of named limit sets, per quantity (quantities nobody limits are left
    out).

    Raises:
        LimitsConflict: the sources leave an empty window for some quantity.
    """
    found: dict[Quantity, EffectiveLimit] = {}
    for quantity, name in _FIELDS.items():
        named = [(source, limit) for source, limits in sources
                 if (limit := getattr(limits, name)) is not None]
        low, high = _side(quantity, named, False), _side(quantity, named, True)
        if quantity is Quantity.CURRENT:
            low = None  # a maximum of the magnitude
        if low is None and high is None:
            continue
        if low is not None and high is not None:
            if low.level >= high.level:
                raise LimitsConflict(
                    f"no {quantity} window is left: {low.source} needs at least "
                    f"{low.level:g} {UNITS[quantity]}, {high.source} at most "
                    f"{high.level:g} {UNITS[quantity]}")
            if low.warn is not None and high.warn is not None and low.warn >= high.warn:
                low, high = Bound(low.level, None, low.delay_s, low.source), Bound(
                    high.level, None, high.delay_s, high.source)
            if low.warn is not None and low.warn >= high.level:
                low = Bound(low.level, None, low.delay_s, low.source)
            if high.warn is not None and high.warn <= low.level:
                high = Bound(high.level, None, high.delay_s, high.source)
        found[quantity] = EffectiveLimit(quantity, low, high)
    return found


class Level(StrEnum):
    """What a finding is: a warning level passed, or a critical level held for its delay."""

    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    """A warning or a trip at one reading."""

    level: Level
    quantity: Quantity
    value: float
    limit: float
    time_s: float
    source: str

    @property
    def message(self) -> str:
        """For logs and events: which quantity, the value, the level and its source."""
        unit = UNITS[self.quantity]
        word = "trip" if self.level is Level.CRITICAL else "warning"
        past = "above" if self.value > self.limit else "below"
        return (f"{self.quantity} {word}: {self.value:.6g} {unit} {past} "
                f"{self.limit:.6g} {unit} ({self.source})")


class LevelMonitor:
    """Warning and critical levels of one quantity, over readings in time order."""

    def __init__(self, limit: EffectiveLimit, hysteresis_fraction: float = 0.01) -> None:
        self.limit = limit
        self.band = hysteresis_fraction * limit.span
        low, high = limit.low, limit.high
        # Below these a reading needs no attention in a clean state.
        self._quiet_low = -math.inf if low is None else (
            low.level if low.warn is None else low.warn)
        self._quiet_high = math.inf if high is None else (
            high.level if high.warn is None else high.warn)
        self.breach_since_s: float | None = None
        self._breach_high = False
        self._inside_since_s: float | None = None
        self.warned_low = False
        self.warned_high = False

    @property
    def clean(self) -> bool:
        """No breach pending and every warning armed."""
        return self.breach_since_s is None and not self.warned_low and not self.warned_high

    def observe(self, time_s: FloatArray, values: FloatArray) -> list[Finding]:
        """Findings over a block (NaN readings are skipped); stops at the first trip."""
        findings: list[Finding] = []
        count = values.shape[0]
        if count == 1 and self.clean:  # the host-polled case: plain floats
            value = float(values[0])
            if not (self._quiet_low <= value <= self._quiet_high or math.isnan(value)):
                self._step(float(time_s[0]), value, findings)
            return findings
        index = 0
        while index < count:
            if self.clean:
                index = self._next_loud(values, index)
                if index >= count:
                    break
            value = float(values[index])
            if not math.isnan(value):
                trip = self._step(float(time_s[index]), value, findings)
                if trip:
                    break
            index += 1
        return findings

    def _next_loud(self, values: FloatArray, start: int) -> int:
        rest = values[start:]
        loud = (rest > self._quiet_high) | (rest < self._quiet_low)  # NaN compares False
        if not loud.any():
            return int(values.shape[0])
        return start + int(np.argmax(loud))

    def _step(self, time_s: float, value: float, findings: list[Finding]) -> bool:
        low, high = self.limit.low, self.limit.high
        beyond_high = high is not None and value > high.level
        beyond_low = low is not None and value < low.level
        if beyond_high or beyond_low:
            bound = high if beyond_high else low
            assert bound is not None
            if self.breach_since_s is None or self._breach_high != beyond_high:
                self.breach_since_s, self._breach_high = time_s, beyond_high
            self._inside_since_s = None
            if time_s - self.breach_since_s >= bound.delay_s:
                findings.append(Finding(Level.CRITICAL, self.limit.quantity, value, bound.level,
                                        time_s, bound.source))
                return True
        elif self.breach_since_s is not None:
            self._clear_breach(time_s, value)
        self._warnings(time_s, value, findings)
        return False

    def _clear_breach(self, time_s: float, value: float) -> None:
        bound = self.limit.high if self._breach_high else self.limit.low
        assert bound is not None
        back = (value <= bound.level - self.band if self._breach_high
                else value >= bound.level + self.band)
        if self._inside_since_s is None:
            self._inside_since_s = time_s
        if back or time_s - self._inside_since_s >= bound.delay_s:
            self.breach_since_s = self._inside_since_s = None

    def _warnings(self, time_s: float, value: float, findings: list[Finding]) -> None:
        high, low = self.limit.high, self.limit.low
        if high is not None and high.warn is not None:
            if not self.warned_high and value > high.warn:
                self.warned_high = True
                findings.append(Finding(Level.WARNING, self.limit.quantity, value, high.warn,
                                        time_s, high.source))
            elif self.warned_high and value <= high.warn - self.band:
                self.warned_high = False
        if low is not None and low.warn is not None:
            if not self.warned_low and value < low.warn:
                self.warned_low = True
                findings.append(Finding(Level.WARNING, self.limit.quantity, value, low.warn,
                                        time_s, low.source))
            elif self.warned_low and value >= low.warn + self.band:
                self.warned_low = False

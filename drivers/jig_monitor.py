"""Watching a jig's force gauge: the latest reading, and the interlocks every jig has.

Both jigs — pneumatic (controlled) and bolted (measured only) — read their gauge on a period
and keep the latest reading for the station to record. Whatever the kind, three interlocks
apply: no valid reading within the response timeout (``GAUGE_LOST``), a force above the
jig's maximum (``OVER_FORCE``) and a stack pressure above the ceiling (``OVER_PRESSURE``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.pressure_loop_alarms import AlarmBook, JigAlarm
from cellrig.errors import InstrumentError

log = logging.getLogger(__name__)


class ForceGaugePort(Protocol):
    """A force gauge as a jig uses it (the Mark-10 driver, or a model in tests)."""

    async def read_force_n(self) -> float:
        """The force on the stack now, compression positive, in newtons."""
        ...


@dataclass(frozen=True, slots=True)
class JigReading:
    """One force reading and the stack pressure it means, at ``time_s`` on the jig's clock."""

    time_s: float
    force_n: float
    pressure_pa: float


async def read_gauge(gauge: ForceGaugePort) -> tuple[float | None, str]:
    """One reading, or None and why not: wire problems are returned, not raised, because a
    control loop must keep its cadence whatever one exchange does (the monitor logs them)."""
    try:
        force_n = await gauge.read_force_n()
    except InstrumentError as error:
        return None, str(error)
    if not math.isfinite(force_n):
        return None, "the gauge returned no finite reading"
    return force_n, ""


class ForceMonitor:
    """The latest reading of one jig's gauge and its interlocks.

    ``response_timeout_s`` is how long the jig may go without a valid reading before
    ``GAUGE_LOST`` is raised (counted from the last valid reading, or from the first
    observation); ``ceiling_pa`` the stack pressure above which ``OVER_PRESSURE`` is raised.
    """

    def __init__(self, geometry: JigGeometry, alarms: AlarmBook, *,
                 response_timeout_s: float = 5.0, ceiling_pa: float | None = None) -> None:
        self.geometry = geometry
        self.alarms = alarms
        self.response_timeout_s = response_timeout_s
        self.ceiling_pa = geometry.max_pressure_pa if ceiling_pa is None else ceiling_pa
        self.latest: JigReading | None = None
        self.missing = False
        self._valid_since_s: float | None = None

    @property
    def over_limit(self) -> bool:
        """Whether the force or the pressure is above its maximum now."""
        return (self.alarms.is_active(JigAlarm.OVER_FORCE)
                or self.alarms.is_active(JigAlarm.OVER_PRESSURE))

    def observe(self, now_s: float, force_n: float | None, why_not: str = "") -> JigReading | None:
        """Take one poll's outcome: a force, or None with the reason it is missing."""
        if self._valid_since_s is None:
            self._valid_since_s = now_s
        if force_n is None or not math.isfinite(force_n):
            level = logging.DEBUG if self.missing else logging.WARNING
            log.log(level, "%s: no force reading: %s", self.alarms.jig, why_not or "no value")
            self.missing = True
            silent_s = now_s - self._valid_since_s
            if silent_s >= self.response_timeout_s:
                self.alarms.update(JigAlarm.GAUGE_LOST, True, now_s,
                                   f"no valid force reading for {silent_s:.1f} s "
                                   f"({why_not or 'no reading'})")
            return None
        if self.missing:
            log.info("%s: force readings are back", self.alarms.jig)
        self.missing = False
        self._valid_since_s = now_s
        reading = JigReading(now_s, force_n, self.geometry.pressure_for_force(force_n))
        self.latest = reading
        self.alarms.update(JigAlarm.GAUGE_LOST, False, now_s)
        max_force_n = self.geometry.max_safe_force_n
        self.alarms.update(JigAlarm.OVER_FORCE, force_n > max_force_n, now_s,
                           f"force {force_n:.0f} N above the jig's maximum {max_force_n:.0f} N")
        self.alarms.update(JigAlarm.OVER_PRESSURE, reading.pressure_pa > self.ceiling_pa, now_s,
                           f"stack pressure {reading.pressure_pa / 1e6:.3f} MPa above the "
                           f"ceiling {self.ceiling_pa / 1e6:.3f} MPa")
        return reading

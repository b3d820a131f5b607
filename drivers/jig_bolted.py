"""A bolted jig: plates clamped by bolts, a gauge measuring the force
(:class:`cellrig.drivers.ports.JigPort` of kind ``MEASURE_ONLY``).

Nothing sets the pressure: it follows the cell as it swells and shrinks. The jig reads its
gauge on a period for the station to record, and keeps the same interlocks as a pneumatic
jig (gauge lost, force above the maximum, pressure above the ceiling). A setpoint is refused
with :class:`JigRefused`; a protocol that sets pressure is refused earlier, at submission,
because the channel's capabilities say ``MEASURE_ONLY``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from cellrig.drivers.jig_errors import JigRefused
from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.jig_lifetime import OwnedTask
from cellrig.drivers.jig_monitor import ForceGaugePort, ForceMonitor, JigReading, read_gauge
from cellrig.drivers.pressure_loop_alarms import AlarmBook, AlarmEvent
from cellrig.protocols.rig import JigKind


class BoltedJig:
    """A measure-only jig: pressure measured, recorded and interlocked, never set."""

    def __init__(self, name: str, geometry: JigGeometry, gauge: ForceGaugePort, *,
                 period_s: float = 1.0, response_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_event: Callable[[AlarmEvent], None] | None = None,
                 on_reading: Callable[[JigReading], None] | None = None) -> None:
        self.name = name
        self.geometry = geometry
        self.gauge = gauge
        self.period_s = period_s
        self.book = AlarmBook(name, on_event)
        self.monitor = ForceMonitor(geometry, self.book, response_timeout_s=response_timeout_s)
        self._clock = clock
        self._sleep = sleep
        self._on_reading = on_reading
        self._owner = OwnedTask(name)

    async def __aenter__(self) -> Self:
        await self._owner.start((self.gauge,), self._watch, f"{self.name}.force-monitor")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._owner.stop()

    async def poll(self) -> JigReading | None:
        """Read the gauge once and run the interlocks on what came back."""
        force_n, why_not = await read_gauge(self.gauge)
        reading = self.monitor.observe(self._clock(), force_n, why_not)
        if reading is not None and self._on_reading is not None:
            self._on_reading(reading)
        return reading

    async def _watch(self) -> None:
        while True:
            await self.poll()
            await self._sleep(self.period_s)

    # -- JigPort ------------------------------------------------------------------------------

    @property
    def kind(self) -> JigKind:
        """A bolted jig only measures."""
        return JigKind.MEASURE_ONLY

    @property
    def max_pressure_pa(self) -> float:
        """The highest stack pressure the jig may see before its interlock trips."""
        return self.geometry.max_pressure_pa

    @property
    def latest(self) -> JigReading | None:
        """The latest valid reading."""
        return self.monitor.latest

    def set_ceiling(self, ceiling_pa: float) -> None:
        """The running protocol's pressure limit, checked on every reading."""
        self.monitor.ceiling_pa = min(ceiling_pa, self.geometry.max_pressure_pa)

    async def set_pressure(self, pressure_pa: float) -> None:
        """Refused: a bolted jig cannot set a pressure."""
        raise JigRefused(f"{self.name} is a bolted jig: it measures the stack pressure but "
                         f"cannot set it (asked for {pressure_pa / 1e6:.3f} MPa)")

    async def read_pressure(self) -> float:
        """The latest stack pressure if fresh, else one read now (raises on wire errors)."""
        latest = self.monitor.latest
        if latest is not None and self._clock() - latest.time_s <= 2.5 * self.period_s:
            return latest.pressure_pa
        force_n = await self.gauge.read_force_n()
        return self.geometry.pressure_for_force(force_n)

    async def alarms(self) -> list[str]:
        """The active interlocks."""
        return self.book.messages()

"""A pneumatic jig: a pressure regulator (Alicat) drives a piston, a gauge (Mark-10) measures
the force, and cellrig's loop holds the stack pressure (:class:`cellrig.drivers.ports.JigPort`).

``async with PneumaticJig(...)`` opens both instruments, takes over from the regulator
without a bump, and runs the loop as one named task until the block ends; on the way out the
task is cancelled and awaited and the instruments are closed. The regulator keeps its last
setpoint after that, so the stack stays pressed (a released stack loses its contacts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.jig_lifetime import OwnedTask
from cellrig.drivers.jig_monitor import ForceGaugePort, JigReading
from cellrig.drivers.pressure_loop_alarms import AlarmBook, AlarmEvent, JigAlarm
from cellrig.drivers.pressure_loop_task import LoopSettings, PressureLoop, RegulatorPort
from cellrig.protocols.rig import JigKind

log = logging.getLogger(__name__)


class PneumaticJig:
    """A controlled jig: stack pressure set and held in closed loop."""

    def __init__(self, name: str, geometry: JigGeometry, regulator: RegulatorPort,
                 gauge: ForceGaugePort, *, settings: LoopSettings | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 on_event: Callable[[AlarmEvent], None] | None = None,
                 on_reading: Callable[[JigReading], None] | None = None) -> None:
        if not geometry.pneumatic:
            raise ValueError(f"{name}: a pneumatic jig needs a piston area")
        self.name = name
        self.geometry = geometry
        self.book = AlarmBook(name, on_event)
        self.loop = PressureLoop(name, geometry, regulator, gauge, settings=settings,
                                 alarms=self.book, clock=clock, sleep=sleep,
                                 on_reading=on_reading)
        self._clock = clock
        self._owner = OwnedTask(name)

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._owner.start((self.loop.regulator, self.loop.gauge), self._run,
                                f"{self.name}.pressure-loop")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._owner.stop()

    async def _run(self) -> None:
        try:
            await self.loop.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s: pressure loop stopped", self.name)
            self.book.update(JigAlarm.LOOP_STOPPED, True, self._clock(), repr(error))

    # -- JigPort ------------------------------------------------------------------------------

    @property
    def kind(self) -> JigKind:
        """A pneumatic jig is controlled."""
        return JigKind.CONTROLLED

    @property
    def max_pressure_pa(self) -> float:
        """The jig's own maximum stack pressure."""
        return self.geometry.max_pressure_pa

    @property
    def latest(self) -> JigReading | None:
        """The loop's latest valid reading."""
        return self.loop.monitor.latest

    async def set_pressure(self, pressure_pa: float) -> None:
        """A new stack-pressure setpoint; raises JigRefused above the ceiling."""
        self.loop.set_target(pressure_pa)

    def set_ceiling(self, ceiling_pa: float) -> None:
        """The running protocol's pressure limit: the loop never commands above it."""
        self.loop.set_ceiling(ceiling_pa)

    async def read_pressure(self) -> float:
        """The latest stack pressure the loop measured, if it is fresh; otherwise a reading
        taken now (raising the gauge's InstrumentError if it does not answer)."""
        latest = self.loop.monitor.latest
        fresh_s = 2.5 * self.loop.settings.tuning.period_s
        if latest is not None and self._clock() - latest.time_s <= fresh_s:
            return latest.pressure_pa
        force_n = await self.loop.gauge.read_force_n()
        return self.geometry.pressure_for_force(force_n)

    async def alarms(self) -> list[str]:
        """The active interlocks and alarms."""
        return self.book.messages()

"""The environment instruments of a station: temperature chambers and stack-pressure jigs.

A chamber is usually shared by several channels, a jig belongs to one cell. Each is wrapped
once per station (:class:`SharedChamber`, :class:`StackJig`) and polled by one task at its own
period (:class:`EnvironmentPoller`), whatever the number of channels that use it. Every value
read is stamped with the station's monotonic time, so a reader can tell a fresh value from an
old one: a value older than a few poll periods is reported as NaN, never as the last number
seen (:meth:`Stamped.fresh`).

The shared-chamber rule: a chamber takes one temperature. A channel that asks for a setpoint
holds the chamber at it; other channels may join at the same setpoint, and a channel asking for
another setpoint while any other channel holds the chamber is refused with
:class:`ChamberBusy` (the job manager decides whether the job waits or is refused). When the
last holder releases the chamber it stays where it is until the next setpoint.

Listeners (the channels' safety supervisors) receive every fresh value and every change of the
instrument's active alarms. A failing read is logged once per outage and leaves the last value
to age into staleness; the poll loop itself never stops on an instrument error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cellrig.drivers.ports import ChamberPort, JigPort
from cellrig.errors import CellrigError
from cellrig.protocols.rig import JigKind

log = logging.getLogger(__name__)

#: Two chamber setpoints closer than this are the same setpoint.
SAME_SETPOINT_C = 1e-3


class Timer(Protocol):
    """The station's time: monotonic seconds for ages and timeouts, UTC for records."""

    def now_s(self) -> float:
        """Monotonic seconds (only differences mean anything)."""
        ...

    def unix_now(self) -> float:
        """UTC seconds since the epoch."""
        ...

    async def sleep(self, duration_s: float) -> None:
        """Let ``duration_s`` pass."""
        ...


class SystemTimer:
    """The machine's monotonic clock, its UTC clock and asyncio's sleep."""

    def now_s(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def unix_now(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep(self, duration_s: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(duration_s, 0.0))


@dataclass(frozen=True, slots=True)
class Stamped:
    """A value and the monotonic time at which it was read."""

    value: float
    at_s: float

    def fresh(self, now_s: float, max_age_s: float) -> float:
        """The value if it is at most ``max_age_s`` old at ``now_s``, else NaN."""
        return self.value if now_s - self.at_s <= max_age_s else math.nan


class EnvironmentRefused(CellrigError):
    """A chamber or jig setpoint that cannot be taken."""


class ChamberBusy(EnvironmentRefused):
    """The chamber is held at another temperature by other channels."""

    def __init__(self, chamber: str, channel: str, setpoint_c: float,
                 holders: dict[str, float]) -> None:
        self.chamber = chamber
        self.channel = channel
        self.setpoint_c = setpoint_c
        self.holders = dict(holders)
        held = ", ".join(f"{name} at {value:g} °C" for name, value in sorted(holders.items()))
        super().__init__(
            f"chamber {chamber} is held by {held}: channel {channel} cannot set "
            f"{setpoint_c:g} °C until they release it")


class PressureNotControlled(EnvironmentRefused):
    """A pressure setpoint for a jig that can only measure."""

    def __init__(self, jig: str, pressure_pa: float) -> None:
        self.jig = jig
        super().__init__(
            f"jig {jig} only measures the stack pressure (bolted); it cannot be set to "
            f"{pressure_pa / 1e6:g} MPa")


class SetpointOutOfRange(EnvironmentRefused):
    """A setpoint outside what the instrument accepts."""


class EnvironmentListener(Protocol):
    """Who wants every fresh environment value and every change of alarms."""

    async def environment_reading(self, source: EnvironmentInstrument, reading: Stamped) -> None:
        """A fresh value of ``source.quantity``."""
        ...

    async def environment_alarms(self, source: EnvironmentInstrument,
                                 alarms: tuple[str, ...]) -> None:
        """The instrument's active alarms changed (to ``alarms``; empty when cleared)."""
        ...


class EnvironmentInstrument:
    """One polled environment instrument: its last value, alarms, listeners and poll loop."""

    quantity = ""

    def __init__(self, name: str, timer: Timer, poll_period_s: float) -> None:
        if not poll_period_s > 0:
            raise ValueError(f"{name}: the poll period must be positive, not {poll_period_s}")
        self.name = name
        self.timer = timer
        self.poll_period_s = poll_period_s
        self.last: Stamped | None = None
        self.alarms: tuple[str, ...] = ()
        self.listeners: list[EnvironmentListener] = []
        self._failing = False

    async def _measure(self) -> float:
        raise NotImplementedError

    async def _read_alarms(self) -> list[str]:
        raise NotImplementedError

    def fresh_value(self, max_age_periods: float) -> float:
        """The last value if it is at most ``max_age_periods`` poll periods old, else NaN."""
        if self.last is None:
            return math.nan
        return self.last.fresh(self.timer.now_s(), max_age_periods * self.poll_period_s)

    async def poll(self) -> Stamped | None:
        """Read the value and the alarms once and tell the listeners; None if the read
        failed (logged once per outage; the last value then ages into staleness)."""
        try:
            value = await self._measure()
            alarms = tuple(await self._read_alarms())
        except CellrigError as exc:
            if not self._failing:
                log.warning("%s: %s reading failed: %s", self.name, self.quantity, exc)
            self._failing = True
            return None
        if self._failing:
            log.info("%s: %s readings are back", self.name, self.quantity)
            self._failing = False
        reading = Stamped(value, self.timer.now_s())
        self.last = reading
        await self._tell(lambda listener: listener.environment_reading(self, reading))
        if alarms != self.alarms:
            self.alarms = alarms
            await self._tell(lambda listener: listener.environment_alarms(self, alarms))
        return reading

    async def _tell(self, call: Callable[[EnvironmentListener], Awaitable[None]]) -> None:
        async def one(listener: EnvironmentListener) -> None:
            try:
                await call(listener)
            except Exception:  # a listener's failure must not stop the others or the loop
                log.exception("%s: a listener failed on a %s reading", self.name, self.quantity)

        await asyncio.gather(*(one(listener) for listener in list(self.listeners)))

    async def run(self) -> None:
        """Poll for ever, every ``poll_period_s``."""
        while True:
            try:
                await self.poll()
            except Exception:  # a bug in one instrument's loop must not end the others'
                log.exception("%s: polling failed", self.name)
            await self.timer.sleep(self.poll_period_s)


class SharedChamber(EnvironmentInstrument):
    """A temperature chamber and the channels that hold it at a setpoint."""

    quantity = "temperature"

    def __init__(self, name: str, port: ChamberPort, timer: Timer,
                 poll_period_s: float = 2.0) -> None:
        super().__init__(name, timer, poll_period_s)
        self.port = port
        self.setpoint_c: float | None = None
        self._holders: dict[str, float] = {}
        self._lock = asyncio.Lock()

    @property
    def holders(self) -> dict[str, float]:
        """The channels holding the chamber and the setpoint they hold it at."""
        return dict(self._holders)

    def can_take(self, channel: str, setpoint_c: float) -> bool:
        """Whether ``channel`` could set ``setpoint_c`` now (no other holder at another)."""
        return all(abs(held - setpoint_c) <= SAME_SETPOINT_C
                   for name, held in self._holders.items() if name != channel)

    def check_claim(self, channel: str, setpoint_c: float) -> None:
        """Refuse a setpoint ``channel`` cannot take now (no I/O).

        Raises:
            ChamberBusy: another channel holds the chamber at another setpoint.
            SetpointOutOfRange: the chamber does not accept the setpoint.
        """
        low, high = self.port.temperature_range_c
        if not low <= setpoint_c <= high:
            raise SetpointOutOfRange(
                f"chamber {self.name} accepts {low:g} to {high:g} °C, not {setpoint_c:g} °C")
        if not self.can_take(channel, setpoint_c):
            others = {name: held for name, held in self._holders.items() if name != channel}
            raise ChamberBusy(self.name, channel, setpoint_c, others)

    async def claim(self, channel: str, setpoint_c: float) -> None:
        """Hold the chamber at ``setpoint_c`` for ``channel`` (and send it if it is new);
        refused as :meth:`check_claim` says."""
        async with self._lock:
            self.check_claim(channel, setpoint_c)
            if self.setpoint_c is None or abs(self.setpoint_c - setpoint_c) > SAME_SETPOINT_C:
                await self.port.set_temperature(setpoint_c)
                self.setpoint_c = setpoint_c
            self._holders[channel] = setpoint_c

    def release(self, channel: str) -> None:
        """``channel`` no longer needs the chamber (it stays at its setpoint)."""
        self._holders.pop(channel, None)

    async def hold(self) -> None:
        """The chamber's safe state: keep the setpoint it has (sent again, so a program or a
        ramp the chamber was running gives way to it). Nothing to send before any setpoint."""
        if self.setpoint_c is not None:
            await self.port.set_temperature(self.setpoint_c)

    async def _measure(self) -> float:
        return await self.port.read_temperature()

    async def _read_alarms(self) -> list[str]:
        return await self.port.alarms()


class StackJig(EnvironmentInstrument):
    """A stack-pressure jig (one cell's): pneumatic and controlled, or bolted and measure-only."""

    quantity = "pressure"

    def __init__(self, name: str, port: JigPort, timer: Timer,
                 poll_period_s: float = 1.0) -> None:
        super().__init__(name, timer, poll_period_s)
        self.port = port
        self.setpoint_pa: float | None = None

    @property
    def kind(self) -> JigKind:
        """Controlled or measure-only."""
        return self.port.kind

    def check_setpoint(self, pressure_pa: float) -> None:
        """Refuse a setpoint this jig cannot take (no I/O).

        Raises:
            PressureNotControlled: the jig only measures.
            SetpointOutOfRange: the pressure is negative or above the jig's maximum.
        """
        if self.kind is not JigKind.CONTROLLED:
            raise PressureNotControlled(self.name, pressure_pa)
        maximum = self.port.max_pressure_pa
        if not 0.0 <= pressure_pa <= maximum:
            raise SetpointOutOfRange(
                f"jig {self.name} applies 0 to {maximum / 1e6:g} MPa, not "
                f"{pressure_pa / 1e6:g} MPa")

    async def set_pressure(self, pressure_pa: float) -> None:
        """A new stack-pressure setpoint (checked first, see :meth:`check_setpoint`)."""
        self.check_setpoint(pressure_pa)
        await self.port.set_pressure(pressure_pa)
        self.setpoint_pa = pressure_pa

    async def hold(self) -> None:
        """The jig's safe state: keep the pressure it was set to (sent again); a bolted jig
        holds by construction."""
        if self.kind is JigKind.CONTROLLED and self.setpoint_pa is not None:
            await self.port.set_pressure(self.setpoint_pa)

    async def _measure(self) -> float:
        return await self.port.read_pressure()

    async def _read_alarms(self) -> list[str]:
        return await self.port.alarms()


class EnvironmentPoller:
    """Polls every environment instrument of a station, one task each, until cancelled."""

    def __init__(self, instruments: Sequence[EnvironmentInstrument]) -> None:
        self.instruments = list(instruments)

    async def run(self) -> None:
        """Run the poll loops (returns only when cancelled)."""
        async with asyncio.TaskGroup() as group:
            for instrument in self.instruments:
                group.create_task(instrument.run(), name=f"{instrument.name}.poll")

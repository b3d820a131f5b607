"""One channel's rig (the engine's port), composed from the station's instruments.

A channel binds a cell position to a potentiostat channel and, where it has them, an EIS unit,
a temperature chamber (often shared with other channels) and a pressure jig. :class:`ChannelRig`
puts them behind the engine's :class:`~cellrig.protocols.rig.Rig` port:

- capabilities: the potentiostat's source part, with EIS (and its frequency range), chamber and
  jig kind taken from the other instruments;
- ``apply``, ``read``, ``end_step`` and ``safe`` go to the potentiostat; every block read is
  shown to the channel's tap (the safety supervisor) before the engine sees it, and its
  temperature and pressure columns are filled with the chamber's and the jig's last polled
  values, or NaN when those are older than ``stale_after_periods`` poll periods;
- ``set_environment`` claims the shared chamber (:class:`~cellrig.daemon.environment.ChamberBusy`
  when another channel holds it at another temperature) and sets the jig (a bolted jig refuses);
  both setpoints are checked before either is sent;
- ``eis`` turns the potentiostat's output off (the sweep is at open circuit, and a separate
  analyser must not see a driven cell), runs the sweep, and returns the spectrum stamped with
  the potentiostat's time at the sweep's end, the clock the engine's test time runs on.

A block in which the tap trips the channel reaches the engine up to and including the tripping
reading (so the sample that shows the breach is stored) and without ``done``. From then on the
tap refuses (the supervisor latched the channel safe): the rig takes no source command but
output off, reads nothing and sets nothing, raising :class:`ChannelTripped`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cellrig.daemon.environment import EnvironmentRefused, SharedChamber, StackJig
from cellrig.drivers.ports import EisPort, PotentiostatPort
from cellrig.errors import CellrigError
from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Block, Capabilities, Command, FloatArray, JigKind, Mode, Spectrum

#: Name of the potentiostat among a channel's safe actions.
POTENTIOSTAT = "potentiostat"


class ChannelTripped(CellrigError):
    """The channel is latched safe after a safety trip; it sources nothing until reset."""

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        self.reason = reason
        super().__init__(f"channel {channel} is latched safe: {reason}")


class ChannelTap(Protocol):
    """What the safety supervisor needs to see of a channel's rig."""

    def refusal(self) -> str | None:
        """Why the channel may not source now (None when it may)."""
        ...

    def command_applied(self, command: Command, sample_interval_s: float) -> None:
        """The potentiostat took ``command`` (readings expected every ``sample_interval_s``)."""
        ...

    def output_off(self) -> None:
        """The potentiostat's output is off: no readings expected."""
        ...

    async def readings(self, block: Block) -> float | None:
        """A block read from the potentiostat, before the engine sees it; returns the time of
        the reading at which it tripped the channel, if it did."""
        ...

    def sweep_started(self, nominal_s: float) -> None:
        """An impedance sweep of about ``nominal_s`` started."""
        ...

    def sweep_ended(self) -> None:
        """The impedance sweep ended (or failed)."""
        ...


@dataclass(frozen=True, slots=True)
class SafeAction:
    """One instrument's way into its safe state."""

    instrument: str
    act: Callable[[], Awaitable[None]]


def nominal_sweep_s(step: EisStep) -> float:
    """About how long a sweep takes: two periods of every frequency plus half a second of
    settling and transfer per point (log-spaced, ``points_per_decade``)."""
    decades = abs(math.log10(step.start_hz / step.stop_hz))
    count = max(2, round(decades * step.points_per_decade) + 1)
    frequency_hz = np.logspace(math.log10(step.start_hz), math.log10(step.stop_hz), count)
    return float(np.sum(2.0 / frequency_hz)) + 0.5 * count


class ChannelRig:
    """The engine's rig port over one channel's instruments."""

    def __init__(self, name: str, potentiostat: PotentiostatPort, *,
                 eis: EisPort | None = None, chamber: SharedChamber | None = None,
                 jig: StackJig | None = None, stale_after_periods: float = 3.0) -> None:
        self.name = name
        self.potentiostat = potentiostat
        self.eis_unit = eis
        self.chamber = chamber
        self.jig = jig
        self.stale_after_periods = stale_after_periods
        self.tap: ChannelTap | None = None

    @property
    def capabilities(self) -> Capabilities:
        """The potentiostat's, with EIS, chamber and jig from the other instruments."""
        eis_range = (0.0, math.inf) if self.eis_unit is None else self.eis_unit.frequency_range_hz
        return dataclasses.replace(
            self.potentiostat.capabilities, eis=self.eis_unit is not None,
            eis_frequency_hz=eis_range, chamber=self.chamber is not None,
            jig=JigKind.NONE if self.jig is None else self.jig.kind)

    def _check_allowed(self) -> None:
        reason = None if self.tap is None else self.tap.refusal()
        if reason is not None:
            raise ChannelTripped(self.name, reason)

    async def apply(self, command: Command) -> float:
        """Set the potentiostat's source (refused while latched, except output off)."""
        if command.mode is not Mode.OFF:
            self._check_allowed()
        at_s = await self.potentiostat.apply(command)
        if self.tap is not None:
            if command.mode is Mode.OFF:
                self.tap.output_off()
            else:
                interval_s = max(command.sample_interval_s,
                                 self.potentiostat.capabilities.min_sample_interval_s)
                self.tap.command_applied(command, interval_s)
        return at_s

    async def read(self) -> Block:
        """The potentiostat's next block, shown to the tap, with the environment filled in."""
        self._check_allowed()
        block = await self.potentiostat.read()
        if self.tap is not None:
            tripped_at_s = await self.tap.readings(block)
            if tripped_at_s is not None:
                block = _cut(block, tripped_at_s)
        return self._with_environment(block)

    def _with_environment(self, block: Block) -> Block:
        if self.chamber is None and self.jig is None:
            return block
        temperature, pressure = block.temperature_c, block.pressure_pa
        if self.chamber is not None:
            value = self.chamber.fresh_value(self.stale_after_periods)
            temperature = _fill(temperature, value, len(block))
        if self.jig is not None:
            value = self.jig.fresh_value(self.stale_after_periods)
            pressure = _fill(pressure, value, len(block))
        return Block(block.time_s, block.voltage_v, block.current_a, temperature, pressure,
                     block.done)

    async def end_step(self, at_time_s: float) -> None:
        """The potentiostat stops at the reading taken at ``at_time_s``."""
        await self.potentiostat.end_step(at_time_s)

    async def safe(self) -> None:
        """Potentiostat output off, high impedance. Only a safe() that succeeded tells the
        tap the output is off: after a failure its watchdog stays armed and trips."""
        await self.potentiostat.safe()
        if self.tap is not None:
            self.tap.output_off()

    async def set_environment(self, temperature_c: float | None,
                              pressure_pa: float | None) -> None:
        """Claim the chamber at ``temperature_c`` and set the jig to ``pressure_pa`` (None:
        leave as is). Both are checked before anything is sent.

        Raises:
            EnvironmentRefused: no chamber or jig for the setpoint, a bolted jig, a setpoint
                out of range, or the shared chamber held at another temperature.
            ChannelTripped: the channel is latched safe.
        """
        self._check_allowed()
        if temperature_c is not None:
            if self.chamber is None:
                raise EnvironmentRefused(f"channel {self.name} has no chamber to set "
                                         f"{temperature_c:g} °C")
            self.chamber.check_claim(self.name, temperature_c)
        if pressure_pa is not None:
            if self.jig is None:
                raise EnvironmentRefused(f"channel {self.name} has no jig to set "
                                         f"{pressure_pa / 1e6:g} MPa")
            self.jig.check_setpoint(pressure_pa)
        if temperature_c is not None and self.chamber is not None:
            await self.chamber.claim(self.name, temperature_c)
        if pressure_pa is not None and self.jig is not None:
            await self.jig.set_pressure(pressure_pa)

    def release_environment(self) -> None:
        """The channel's job no longer needs the chamber at its setpoint."""
        if self.chamber is not None:
            self.chamber.release(self.name)

    async def eis(self, step: EisStep) -> Spectrum:
        """Output off, the sweep, and the spectrum on the potentiostat's clock."""
        self._check_allowed()
        if self.eis_unit is None:
            raise EnvironmentRefused(f"channel {self.name} has no EIS unit")
        await self.apply(Command(Mode.OFF))
        if self.tap is not None:
            self.tap.sweep_started(nominal_sweep_s(step))
        try:
            spectrum = await self.eis_unit.eis(step)
        finally:
            if self.tap is not None:
                self.tap.sweep_ended()
        ended_at_s = await self.apply(Command(Mode.OFF))
        return dataclasses.replace(spectrum, time_s=ended_at_s)

    def safe_actions(self) -> list[SafeAction]:
        """Each instrument's way into its safe state: potentiostat output off (high
        impedance), chamber holding its setpoint, jig holding its pressure."""
        actions = [SafeAction(POTENTIOSTAT, self.safe)]
        if self.chamber is not None:
            actions.append(SafeAction(self.chamber.name, self.chamber.hold))
        if self.jig is not None:
            actions.append(SafeAction(self.jig.name, self.jig.hold))
        return actions


def _cut(block: Block, last_time_s: float) -> Block:
    """The readings up to and including ``last_time_s``: what came after a trip is not the
    job's (the output went off there), and the engine's next read fails on the latch."""
    keep = block.time_s <= last_time_s

    def part(column: FloatArray | None) -> FloatArray | None:
        return None if column is None else column[keep]

    return Block(block.time_s[keep], block.voltage_v[keep], block.current_a[keep],
                 part(block.temperature_c), part(block.pressure_pa), done=False)


def _fill(column: FloatArray | None, value: float, length: int) -> FloatArray:
    """``column`` with its NaN entries (all of it when absent) set to ``value``."""
    if column is None:
        return np.full(length, value)
    if length == 1:  # the host-polled case
        return column if not math.isnan(column[0]) else np.array([value])
    return np.where(np.isnan(column), value, column)

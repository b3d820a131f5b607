"""Small in-test instruments for the channel rig and supervisor tests, in virtual time.

The ports are Protocols; these fakes implement them with a few attributes a test can set (a
voltage, a failure to raise, a read that never answers). The real drivers are tested against
their emulators elsewhere. This module holds no tests of its own.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import numpy as np

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import SharedChamber, StackJig
from cellrig.errors import ConnectionLost, InstrumentError, InstrumentTimeout
from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode, Spectrum


class VirtualTimer:
    """Monotonic and UTC time that move only when advanced (sleeping advances them)."""

    def __init__(self, start_s: float = 100.0, unix_start: float = 1_767_225_600.0) -> None:
        self.now = start_s
        self.unix_offset = unix_start - start_s

    def now_s(self) -> float:
        """Virtual monotonic seconds."""
        return self.now

    def unix_now(self) -> float:
        """Virtual UTC."""
        return self.now + self.unix_offset

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds

    async def sleep(self, duration_s: float) -> None:
        """Advance and let other tasks run once."""
        self.advance(duration_s)
        await asyncio.sleep(0)


def wire_error(kind: type[InstrumentError], instrument: str, command: str) -> InstrumentError:
    """An instrument error as a driver raises it."""
    return kind("no answer", instrument=instrument, address="socket://lab:5025", command=command)


@dataclass
class FakePotentiostat:
    """A source that reads ``voltage_v`` (or the next of ``script``) every ``dt_s`` of its
    own time, ``block_size`` readings a block; the current is the command's."""

    capabilities: Capabilities = field(default_factory=lambda: Capabilities(
        max_current_a=5.0, min_voltage_v=0.0, max_voltage_v=5.0, constant_power=False,
        constant_resistance=False, min_sample_interval_s=0.1))
    voltage_v: float = 3.7
    script: list[float] = field(default_factory=list)
    dt_s: float = 1.0
    block_size: int = 1
    time_s: float = 0.0
    command: Command = field(default_factory=lambda: Command(Mode.OFF))
    applied: list[Command] = field(default_factory=list)
    safe_calls: int = 0
    ended_at: list[float] = field(default_factory=list)
    safe_error: InstrumentError | None = None
    safe_hangs: bool = False
    temperature_c: float = math.nan

    async def apply(self, command: Command) -> float:
        """Take the command now."""
        self.command = command
        self.applied.append(command)
        return self.time_s

    async def read(self) -> Block:
        """The next readings."""
        times, volts = [], []
        for _ in range(self.block_size):
            self.time_s += self.dt_s
            times.append(self.time_s)
            volts.append(self.script.pop(0) if self.script else self.voltage_v)
        current = self.command.current_a if self.command.mode is Mode.CURRENT else 0.0
        count = len(times)
        return Block(np.array(times), np.array(volts), np.full(count, current),
                     np.full(count, self.temperature_c), np.full(count, math.nan))

    async def end_step(self, at_time_s: float) -> None:
        """Remember where the step ended."""
        self.ended_at.append(at_time_s)

    async def safe(self) -> None:
        """Output off, or the configured failure."""
        if self.safe_hangs:
            await asyncio.Event().wait()
        if self.safe_error is not None:
            raise self.safe_error
        self.safe_calls += 1
        self.command = Command(Mode.OFF)


@dataclass
class FakeChamber:
    """A chamber whose air temperature is ``temperature_c``."""

    temperature_c: float = 25.0
    temperature_range_c: tuple[float, float] = (-40.0, 180.0)
    setpoints: list[float] = field(default_factory=list)
    active_alarms: list[str] = field(default_factory=list)
    read_error: InstrumentError | None = None
    set_error: InstrumentError | None = None
    standby_calls: int = 0

    async def set_temperature(self, setpoint_c: float) -> None:
        """Remember the setpoint."""
        if self.set_error is not None:
            raise self.set_error
        self.setpoints.append(setpoint_c)

    async def read_temperature(self) -> float:
        """The air temperature, or the configured failure."""
        if self.read_error is not None:
            raise self.read_error
        return self.temperature_c

    async def alarms(self) -> list[str]:
        """The configured alarms."""
        return list(self.active_alarms)

    async def standby(self) -> None:
        """Counted: the supervisor must never put a shared chamber in standby."""
        self.standby_calls += 1


@dataclass
class FakeJig:
    """A jig reading ``pressure_pa``."""

    kind: JigKind = JigKind.CONTROLLED
    max_pressure_pa: float = 10e6
    pressure_pa: float = 2e6
    setpoints: list[float] = field(default_factory=list)
    set_error: InstrumentError | None = None

    async def set_pressure(self, pressure_pa: float) -> None:
        """Remember the setpoint."""
        if self.set_error is not None:
            raise self.set_error
        self.setpoints.append(pressure_pa)

    async def read_pressure(self) -> float:
        """The stack pressure."""
        return self.pressure_pa

    async def alarms(self) -> list[str]:
        """None."""
        return []


@dataclass
class FakeEis:
    """An analyser whose sweep takes ``sweep_s`` on the potentiostat's clock (the same box)
    and reports its end on a clock of its own (``own_time_s``)."""

    potentiostat: FakePotentiostat
    frequency_range_hz: tuple[float, float] = (1e-3, 1e6)
    sweep_s: float = 120.0
    own_time_s: float = 5.0e6
    commands_during_sweep: list[Mode] = field(default_factory=list)

    async def eis(self, step: EisStep) -> Spectrum:
        """Three points of a plain resistor."""
        self.commands_during_sweep.append(self.potentiostat.command.mode)
        self.potentiostat.time_s += self.sweep_s
        frequency = np.array([step.start_hz, math.sqrt(step.start_hz * step.stop_hz),
                              step.stop_hz])
        return Spectrum(frequency, np.full(3, 0.05), np.zeros(3), self.own_time_s)


@dataclass
class Channel:
    """One channel of fakes composed into a rig."""

    rig: ChannelRig
    potentiostat: FakePotentiostat
    chamber: FakeChamber | None
    jig: FakeJig | None


def make_channel(name: str, timer: VirtualTimer, *, chamber: SharedChamber | None = None,
                 jig: FakeJig | None = None, with_eis: bool = False,
                 potentiostat: FakePotentiostat | None = None) -> Channel:
    """A channel rig over fakes (the chamber may be shared with other channels)."""
    source = potentiostat or FakePotentiostat()
    stack = None if jig is None else StackJig(f"{name}-jig", jig, timer, poll_period_s=1.0)
    rig = ChannelRig(name, source, eis=FakeEis(source) if with_eis else None, chamber=chamber,
                     jig=stack)
    fake_chamber = None if chamber is None else chamber.port
    assert fake_chamber is None or isinstance(fake_chamber, FakeChamber)
    return Channel(rig, source, fake_chamber, jig)


def shared_chamber(timer: VirtualTimer, port: FakeChamber | None = None) -> SharedChamber:
    """A chamber polled every 2 s."""
    return SharedChamber("chamber-1", port or FakeChamber(), timer, poll_period_s=2.0)


__all__ = ["Channel", "ConnectionLost", "FakeChamber", "FakeEis", "FakeJig",
           "FakePotentiostat", "InstrumentTimeout", "VirtualTimer", "make_channel",
           "shared_chamber", "wire_error"]

"""A station of bench-model channels built by hand, for the job manager's tests.

Every channel has its own bench (cell, chamber model, pneumatic jig, virtual clock), so each
cell's time moves only with its own job. The channels share one chamber: the station's
:class:`SharedChamber` sets every bench's chamber model at once, as one physical chamber
would. Each potentiostat is the model rig, optionally paced (a real sleep before each block)
and cut into blocks of ``max_block_s`` of instrument time, so a job lasts long enough in real
time to be paused, stopped or interrupted between blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import EnvironmentPoller, SharedChamber, StackJig, SystemTimer
from cellrig.daemon.station_config_model import (
    ChannelConfig,
    JigConfig,
    JigType,
    PotentiostatBinding,
    StationConfig,
)
from cellrig.daemon.supervisor import ChannelSupervisor, SafetyEvent, Supervisor
from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.palmsens_ranges import program_refusals
from cellrig.errors import ConnectionLost
from cellrig.protocols.clock import SystemClock
from cellrig.protocols.program import Limit, Limits, Program
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind
from cellrig.simulators.bench import Bench, BenchCell
from cellrig.simulators.model_rig import ModelRig

HARD_LIMITS = Limits(voltage_v=Limit(-0.5, 4.5), current_a=Limit(None, 2.0),
                     temperature_c=Limit(-30.0, 95.0), pressure_pa=Limit(0.2e6, 8e6))
CHAMBER_RANGE_C = (-20.0, 90.0)


@dataclass
class PacedModel:
    """The model rig as a potentiostat, sleeping ``pace_s`` of real time before each block."""

    model: ModelRig
    pace_s: float = 0.0
    reads: int = 0
    fail_at_read: int | None = None
    """the read that loses the connection (an instrument fault), if any"""

    @property
    def capabilities(self) -> Capabilities:
        return self.model.capabilities

    async def apply(self, command: Command) -> float:
        return await self.model.apply(command)

    async def read(self) -> Block:
        if self.pace_s > 0:
            await asyncio.sleep(self.pace_s)
        self.reads += 1
        if self.reads == self.fail_at_read:
            raise ConnectionLost("the connection dropped", instrument="model-smu",
                                 address="in-process", command="READ?")
        return await self.model.read()

    async def end_step(self, at_time_s: float) -> None:
        await self.model.end_step(at_time_s)

    async def safe(self) -> None:
        await self.model.safe()


@dataclass
class GangedChamberPort:
    """One chamber over every bench's chamber model (each set at its own bench's time)."""

    benches: list[Bench]
    temperature_range_c: tuple[float, float] = CHAMBER_RANGE_C
    sent: list[float] = field(default_factory=list)

    async def set_temperature(self, setpoint_c: float) -> None:
        self.sent.append(setpoint_c)
        for bench in self.benches:
            bench.chambers["chamber-1"].set(setpoint_c, bench.clock.now_s())

    async def read_temperature(self) -> float:
        bench = self.benches[0]
        chamber = bench.chambers["chamber-1"]
        return float(chamber.measure(np.array([bench.clock.now_s()]))[0])

    async def alarms(self) -> list[str]:
        return []

    async def standby(self) -> None:
        return None


@dataclass
class ModelJigPort:
    """A pneumatic jig over a bench cell's jig model."""

    bench_cell: BenchCell

    @property
    def kind(self) -> JigKind:
        return JigKind.CONTROLLED

    @property
    def max_pressure_pa(self) -> float:
        return 8e6

    async def set_pressure(self, pressure_pa: float) -> None:
        assert self.bench_cell.jig is not None
        self.bench_cell.jig.set_pressure(pressure_pa, self.bench_cell.clock.now_s())

    async def read_pressure(self) -> float:
        jig = self.bench_cell.jig
        assert jig is not None
        swell = np.array([self.bench_cell.cell.thickness_change_m()])
        return float(jig.measure_pressure(np.array([self.bench_cell.clock.now_s()]), swell)[0])

    async def alarms(self) -> list[str]:
        return []


@dataclass
class ModelChannel:
    """One channel of the model station (the job manager's ``JobChannel``)."""

    name: str
    config: ChannelConfig
    rig: ChannelRig
    supervisor: ChannelSupervisor
    chamber: SharedChamber | None
    jig: StackJig | None
    potentiostat: PacedModel
    bench: Bench

    def refusals(self, program: Program) -> list[str]:
        return program_refusals(program, self.rig.capabilities, f"{self.name} (model)")

    @property
    def model(self) -> ModelRig:
        return self.potentiostat.model


@dataclass
class ModelStation:
    """Channels on bench models, one shared chamber (the job manager's ``JobStation``)."""

    config: StationConfig
    channels: dict[str, ModelChannel]
    chamber: SharedChamber
    clock: SystemClock = field(default_factory=SystemClock)
    safety_events: list[SafetyEvent] = field(default_factory=list)

    async def run(self) -> None:
        """Pollers and watchdogs until cancelled."""
        parts = [self.chamber, *(c.jig for c in self.channels.values() if c.jig is not None)]
        async with asyncio.TaskGroup() as group:
            group.create_task(EnvironmentPoller(parts).run())
            group.create_task(Supervisor([c.supervisor for c in self.channels.values()]).run())


def build_station(names: Iterator[str] | list[str] = ("A1", "A2"), *, pace_s: float = 0.0,
                  max_block_s: float = 2.0 * 86400.0, data_folder: Path = Path(".")
                  ) -> ModelStation:
    """Channels ``names`` on their own benches, sharing one chamber."""
    timer = SystemTimer()
    benches = {name: Bench.default() for name in names}
    chamber = SharedChamber("chamber", GangedChamberPort(list(benches.values())), timer,
                            poll_period_s=0.5)
    events: list[SafetyEvent] = []
    channels: dict[str, ModelChannel] = {}
    geometry = JigGeometry(cell_area_m2=93.28e-4, piston_area_m2=0.1, preload_n=150.0,
                           max_force_n=1e5)
    for name, bench in benches.items():
        cell = bench.cells["cell-1"]
        potentiostat = PacedModel(ModelRig(cell, max_block_s=max_block_s), pace_s)
        jig = StackJig(f"{name}-jig", ModelJigPort(cell), timer, poll_period_s=0.5)
        rig = ChannelRig(name, potentiostat, chamber=chamber, jig=jig)
        supervisor = ChannelSupervisor(rig, timer=timer, hard_limits=HARD_LIMITS,
                                       on_event=events.append)
        config = ChannelConfig(name, PotentiostatBinding(f"model-{name}"), HARD_LIMITS,
                               chamber="chamber",
                               jig=JigConfig(JigType.PNEUMATIC, f"gauge-{name}", geometry,
                                             f"regulator-{name}"))
        channels[name] = ModelChannel(name, config, rig, supervisor, chamber, jig,
                                      potentiostat, bench)
    config = StationConfig(name="model-lab", data_folder=data_folder, instruments={},
                           channels={name: c.config for name, c in channels.items()},
                           influxdb=None, mqtt=None, sha256="0" * 64)
    return ModelStation(config, channels, chamber, safety_events=events)

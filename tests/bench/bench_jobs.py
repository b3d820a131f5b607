"""Benchmark: the job manager (prints figures; docs/jobs.md quotes them).

Run: ``python tests/bench/bench_jobs.py [--submissions N] [--channels C] [--seconds S]``.

1. submit → queued: how long ``submit`` takes to answer for the library formation protocol
   (parse, resolve and refuse in a thread, the job committed to the store), with the channel
   busy so the job stays queued; and its two parts measured alone.
2. submit → running: from the ``submit`` call until the channel's worker has the job running
   (the live status names it), on an idle channel.
3. CPU per channel of running jobs at one reading a second: C channels whose potentiostat
   hands over one reading each second of real time (a steady cell: constant voltage, the
   commanded current), each running a job that stores every reading; the process's CPU time
   over S seconds, less that of the same station idle, per channel. It covers the engine, the
   channel rig and its supervisor tap, the job manager's sinks and the store's writer thread;
   not the instruments' drivers. Then the cost of one ``status()`` call with every channel
   running.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.control_api import SubmitRequest
from cellrig.daemon.environment import EnvironmentPoller, SharedChamber, StackJig, SystemTimer
from cellrig.daemon.job_station import JobSettings
from cellrig.daemon.job_submit import prepare
from cellrig.daemon.jobs import JobManager
from cellrig.daemon.station_config_model import (
    ChannelConfig,
    PotentiostatBinding,
    StationConfig,
)
from cellrig.daemon.store import Store
from cellrig.daemon.supervisor import ChannelSupervisor, Supervisor
from cellrig.protocols.clock import SystemClock
from cellrig.protocols.program import Limit, Limits, Program
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode

LIMITS = Limits(voltage_v=Limit(0.0, 4.5), current_a=Limit(None, 2.0),
                temperature_c=Limit(-30.0, 95.0), pressure_pa=Limit(0.2e6, 8e6))
ONE_HERTZ = """cellrig: 1
name: one-hertz
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.4 V]}
record: {every: 1 s}
steps:
  - Charge at 0.1C for 10 hours
"""
LONG = ONE_HERTZ.replace("name: one-hertz", "name: long")


@dataclass
class SteadyPotentiostat:
    """One reading per ``period_s`` of real time: a steady 3.7 V at the commanded current."""

    period_s: float = 1.0
    current_a: float = 0.0
    origin_s: float = field(default_factory=time.monotonic)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(max_current_a=2.0, min_voltage_v=0.0, max_voltage_v=5.0)

    async def apply(self, command: Command) -> float:
        self.current_a = command.current_a if command.mode is Mode.CURRENT else 0.0
        return time.monotonic() - self.origin_s

    async def read(self) -> Block:
        now = time.monotonic() - self.origin_s
        await asyncio.sleep(self.period_s - now % self.period_s)
        at = time.monotonic() - self.origin_s
        return Block(np.array([at]), np.array([3.7]), np.array([self.current_a]))

    async def end_step(self, at_time_s: float) -> None:
        return None

    async def safe(self) -> None:
        self.current_a = 0.0


@dataclass
class IdealChamber:
    """A chamber that is where it was set."""

    temperature_range_c: tuple[float, float] = (-40.0, 150.0)
    setpoint_c: float = 25.0

    async def set_temperature(self, setpoint_c: float) -> None:
        self.setpoint_c = setpoint_c

    async def read_temperature(self) -> float:
        return self.setpoint_c

    async def alarms(self) -> list[str]:
        return []

    async def standby(self) -> None:
        return None


@dataclass
class IdealJig:
    """A pneumatic jig that is where it was set."""

    pressure_pa: float = 2e6

    @property
    def kind(self) -> JigKind:
        return JigKind.CONTROLLED

    @property
    def max_pressure_pa(self) -> float:
        return 8e6

    async def set_pressure(self, pressure_pa: float) -> None:
        self.pressure_pa = pressure_pa

    async def read_pressure(self) -> float:
        return self.pressure_pa

    async def alarms(self) -> list[str]:
        return []


@dataclass
class BenchChannel:
    name: str
    config: ChannelConfig
    rig: ChannelRig
    supervisor: ChannelSupervisor
    chamber: SharedChamber | None
    jig: StackJig | None

    def refusals(self, program: Program) -> list[str]:
        return []


@dataclass
class BenchStation:
    config: StationConfig
    channels: dict[str, BenchChannel]
    clock: SystemClock = field(default_factory=SystemClock)

    async def run(self) -> None:
        """Pollers and watchdogs."""
        parts: list[SharedChamber | StackJig] = [next(iter(self.channels.values())).chamber
                                                 or SharedChamber("none", IdealChamber(),
                                                                  SystemTimer())]
        parts += [c.jig for c in self.channels.values() if c.jig is not None]
        async with asyncio.TaskGroup() as group:
            group.create_task(EnvironmentPoller(parts).run())
            group.create_task(Supervisor([c.supervisor for c in self.channels.values()]).run())


def station(count: int) -> BenchStation:
    timer = SystemTimer()
    chamber = SharedChamber("chamber", IdealChamber(), timer)
    channels = {}
    for number in range(1, count + 1):
        name = f"C{number}"
        jig = StackJig(f"{name}-jig", IdealJig(), timer)
        rig = ChannelRig(name, SteadyPotentiostat(), chamber=chamber, jig=jig)
        supervisor = ChannelSupervisor(rig, timer=timer, hard_limits=LIMITS)
        config = ChannelConfig(name, PotentiostatBinding(name), LIMITS, chamber="chamber")
        channels[name] = BenchChannel(name, config, rig, supervisor, chamber, jig)
    config = StationConfig("bench", Path("."), {}, {c.name: c.config for c in channels.values()},
                           None, None, "0" * 64)
    return BenchStation(config, channels)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"median {statistics.median(ordered) * 1e3:.1f} ms, 95th percentile "
            f"{p95 * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms")


async def submit_figures(folder: Path, submissions: int) -> None:
    stations = station(2)
    formation = SubmitRequest(channel="C1", protocol_text="formation", cell={})
    with Store.open(folder / "submit.db") as store:
        manager = JobManager(stations, store, settings=JobSettings(stop_wait_s=1.0))
        runners = [asyncio.create_task(manager.run()), asyncio.create_task(stations.run())]
        busy = await manager.submit(SubmitRequest("C1", LONG, {}))  # keeps C1 busy
        queued = []
        for _ in range(submissions):
            started = time.perf_counter()
            view = await manager.submit(formation)
            queued.append(time.perf_counter() - started)
            assert view.state == "queued", view
        prepared = []
        for _ in range(submissions):
            started = time.perf_counter()
            result = prepare(formation, stations)
            prepared.append(time.perf_counter() - started)
        committed = []
        for _ in range(submissions):
            started = time.perf_counter()
            store.add_job("C2", result.provenance)
            committed.append(time.perf_counter() - started)
        running = []
        for _ in range(min(submissions, 20)):
            started = time.perf_counter()
            view = await manager.submit(SubmitRequest("C2", LONG, {}))
            while (await manager.status()).channels[1].job_id != view.id:
                await asyncio.sleep(0.0005)
            running.append(time.perf_counter() - started)
            await manager.stop(view.id)
        await manager.stop(busy.id)
        for runner in runners:
            runner.cancel()
        manager.close()
    print(f"submit → queued (formation, {submissions} submissions): {percentiles(queued)}")
    print(f"  of which parse, resolve, refuse and provenance alone: {percentiles(prepared)}")
    print(f"  of which the store's add_job (committed) alone: {percentiles(committed)}")
    print(f"submit → running on an idle channel: {percentiles(running)}")


async def cpu_figures(folder: Path, channels: int, seconds: float) -> None:
    stations = station(channels)
    with Store.open(folder / "cpu.db") as store:
        manager = JobManager(stations, store)
        tasks = [asyncio.create_task(manager.run()), asyncio.create_task(stations.run())]
        await asyncio.sleep(1.0)
        idle_cpu = time.process_time()
        await asyncio.sleep(seconds)
        idle_cpu = time.process_time() - idle_cpu
        for name in stations.channels:
            await manager.submit(SubmitRequest(name, ONE_HERTZ, {}))
        await asyncio.sleep(2.0)  # every job running
        busy_cpu = time.process_time()
        await asyncio.sleep(seconds)
        busy_cpu = time.process_time() - busy_cpu
        calls = 2000
        started = time.perf_counter()
        for _ in range(calls):
            await manager.status()
        status_s = (time.perf_counter() - started) / calls
        for task in tasks:
            task.cancel()
        with store.reader() as reader:
            stored = sum(reader.sample_count(job.id) for job in reader.jobs())
        manager.close()
    print(f"  {stored} samples stored ({stored / channels:.0f} per channel); status() with "
          f"{channels} running channels: {status_s * 1e6:.0f} µs a call")
    per_channel_s = (busy_cpu - idle_cpu) / channels / seconds
    print(f"{channels} channels at 1 reading/s for {seconds:g} s: process CPU {busy_cpu:.2f} s "
          f"(idle {idle_cpu:.2f} s); per channel {per_channel_s * 1e3:.2f} ms per second "
          f"({per_channel_s * 100:.3f} % of a core)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await submit_figures(Path(folder), args.submissions)
        await cpu_figures(Path(folder), args.channels, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())

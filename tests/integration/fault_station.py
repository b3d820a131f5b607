"""A station on the wire with the job manager on it, for the fault tests.

The emulators of :func:`~cellrig.simulators.sim_station.serve_sim_station` (a Keithley 2450 per
cell over SCPI on TCP, a pneumatic jig of an Alicat and a Mark-10 per cell, an ESPEC chamber),
plus a second ESPEC chamber: cells A1 and A2 sit in ``chamber``, A3 and A4 in ``chamber-2``.
The real drivers reach them through pyvisa-py and pyserial (``open_station``), the job manager
runs jobs on them with a real SQLite store, and every safety event is collected.

Faults are injected where they happen in a lab: on a wire (the servers' faults, a server
closed and opened again), in a cell (a short), in a chamber (its controller given another
setpoint) or in a jig (a leak).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from job_fixtures import FAST

from cellrig.daemon.environment import EnvironmentInstrument, Stamped
from cellrig.daemon.jobs import JobManager
from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store import Store
from cellrig.daemon.store_read import StoreReader
from cellrig.daemon.supervisor import SafetyEvent, SafetyEventKind, SupervisorSettings
from cellrig.drivers.backoff import Backoff
from cellrig.simulators.bench import BenchCell, BenchReading
from cellrig.simulators.espec_emulator import EspecEmulator
from cellrig.simulators.keithley2450_buffer import Reading
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.line_server import LineServer
from cellrig.simulators.sim_station import CHAMBER, CHAMBER_RANGE_C, SimStation, serve_sim_station

#: The bench runs this many times faster than real time: one second of a cell's time is 3.3 ms,
#: and the potentiostats read every 10 s of it (the protocols' recording interval), 33 ms.
SPEED = 300.0
SECOND_CHAMBER = "chamber-2"
CHANNELS = ("A1", "A2", "A3", "A4")
IN_SECOND_CHAMBER = ("A3", "A4")
#: The supervisor's defaults (a watchdog trips after 5 s without a fresh reading), with two
#: changes for this bench. The potentiostat's sampling interval is instrument time, which runs
#: SPEED times faster than the real seconds the watchdog counts: its three periods are
#: 3 / SPEED of the interval in real time. And failed safe actions are retried soon (0.2 s,
#: doubling, at most 1 s) so an instrument that comes back is made safe within a second.
SETTINGS = SupervisorSettings(watchdog_periods=3.0 / SPEED, tick_s=0.05,
                              retry=Backoff(initial_s=0.2, max_s=1.0))

#: A short charge; ``{limits}`` and ``{minutes}`` are filled in per test.
CHARGE = """cellrig: 1
name: {name}
cell: {{capacity: 600 mAh}}
limits: {{{limits}}}
record: {{every: 10 s}}
steps:
  - set: {{temperature: 25 degC, pressure: 2 MPa}}
  - Charge at 0.5C for {minutes} minutes
"""
#: Limits no healthy cell of these tests comes near.
WIDE = "voltage: [0.5 V, 4.3 V], temperature: [10 degC, 60 degC], pressure: [1 MPa, 4 MPa]"


def charge(name: str, *, minutes: float = 10.0, limits: str = WIDE) -> str:
    """The short charge protocol with these limits."""
    return CHARGE.format(name=name, minutes=f"{minutes:g}", limits=limits)


@dataclass
class FaultStation:
    """The emulators, the station opened on them, its job manager and what it reported."""

    sim: SimStation
    station: Station
    manager: JobManager
    store_path: Path
    events: list[SafetyEvent]
    delivered_s: list[float]
    """when each event reached the callback (``time.time()``): a trip's event is delivered
    once every instrument of the channel has been sent to its safe state"""
    chamber2: EspecEmulator
    chamber2_server: LineServer
    charge_logs: dict[str, dict[float, float]] = dataclasses.field(default_factory=dict)
    """per cell, the charge it had taken (Ah) at each bench time its sensors were read"""

    def charge_taken(self, channel: str, start_s: float, end_s: float) -> float:
        """The charge (Ah) the emulated cell took between two of its readings (bench times of
        readings the Keithley took, e.g. a step's first and last): counted by the cell model,
        not by the driver or the job."""
        taken = self.charge_logs[channel]
        return taken[end_s] - taken[start_s]

    def trips(self, channel: str) -> list[SafetyEvent]:
        """The channel's trips (limit and watchdog events)."""
        return [event for event in self.events if event.channel == channel
                and event.kind in (SafetyEventKind.LIMIT, SafetyEventKind.WATCHDOG)]

    def delivered(self, event: SafetyEvent) -> float:
        """When ``event`` reached the callback (UTC seconds)."""
        return self.delivered_s[self.events.index(event)]

    def smu(self, channel: str) -> Keithley2450Emulator:
        """The channel's Keithley emulator."""
        return self.sim.keithleys[channel]

    def cell(self, channel: str) -> BenchCell:
        """The channel's bench cell."""
        return self.sim.bench.cells[channel]

    def output_safe(self, channel: str) -> bool:
        """The Keithley's own state: output off, in high impedance."""
        smu = self.smu(channel)
        return not smu.output_on and smu.off_modes[smu.source_function] == "HIMPedance"

    def readings(self, channel: str) -> list[Reading]:
        """Every reading the Keithley took into ``defbuffer1`` (bench time, value, source)."""
        return list(self.smu(channel).buffers["defbuffer1"].readings)

    def samples(self, job_id: int, *columns: str) -> dict[str, np.ndarray]:
        """A job's stored samples, by column."""
        with StoreReader(self.store_path) as reader:
            stored = reader.samples(job_id, columns=list(columns))
        return dict(stored.columns)

    def bench_to_monotonic(self) -> Callable[[float], float]:
        """Turns a bench time into the station's monotonic time (``time.monotonic``)."""
        clock = self.sim.bench.clock
        assert clock.scale is not None
        scale = clock.scale
        then_mono, then_bench = time.monotonic(), clock.now_s()
        return lambda bench_s: then_mono + (bench_s - then_bench) / scale


async def second_chamber(sim: SimStation) -> tuple[EspecEmulator, LineServer, str]:
    """An ESPEC emulator for a second chamber, into which A3 and A4 are moved; its server
    started (the caller closes it) and its address."""
    chamber = sim.bench.add_chamber(SECOND_CHAMBER)
    for name in IN_SECOND_CHAMBER:
        sim.bench.cells[name].chamber = chamber
    emulator = EspecEmulator(chamber, sim.bench.clock, rated_range_c=CHAMBER_RANGE_C)
    server = emulator.server()
    return emulator, server, await server.start_tcp()


def log_charge(cell: BenchCell) -> dict[float, float]:
    """From now on, the charge the cell has taken (Ah) at every reading of its sensors, by
    bench time (the time its readings carry)."""
    taken: dict[float, float] = {}
    measure = cell.measure

    def logged() -> BenchReading:
        reading = measure()
        taken[reading.time_s] = cell.cell.state.charge_in_ah
        return reading

    cell.measure = logged  # type: ignore[method-assign]
    return taken


def with_second_chamber(text: str, address: str) -> str:
    """``station.toml`` with a second ESPEC chamber for A3 and A4."""
    lines = text.splitlines()
    start = lines.index(f"[instruments.{CHAMBER}]")
    block = lines[start:lines.index("", start)]
    added = [line.replace(f"[instruments.{CHAMBER}]", f"[instruments.{SECOND_CHAMBER}]")
             for line in block]
    added = [f'address = "{address}"' if line.startswith("address =") else line
             for line in added]
    out: list[str] = []
    section = ""
    for line in lines:
        if line.startswith("["):
            section = line
        if (line == f'chamber = "{CHAMBER}"'
                and section in {f"[channels.{name}]" for name in IN_SECOND_CHAMBER}):
            line = f'chamber = "{SECOND_CHAMBER}"'
        out.append(line)
    return "\n".join([*out, "", *added, ""])


@contextlib.asynccontextmanager
async def fault_station(folder: Path, *, settings: SupervisorSettings = SETTINGS,
                        options: dict[str, str] | None = None) -> AsyncIterator[FaultStation]:
    """The station of the module running its pollers, watchdogs and job workers; everything
    closed on exit. ``options`` replaces text in ``station.toml`` (e.g. a driver's options)."""
    async with serve_sim_station(len(CHANNELS), SPEED) as sim:
        chamber2, server2, address2 = await second_chamber(sim)
        charge_logs = {name: log_charge(sim.bench.cells[name]) for name in CHANNELS}
        try:
            text = with_second_chamber(sim.station_toml(data_folder=str(folder)), address2)
            for old, new in (options or {}).items():
                assert old in text, old
                text = text.replace(old, new)
            events: list[SafetyEvent] = []
            delivered_s: list[float] = []

            def collect(event: SafetyEvent) -> None:
                events.append(event)
                delivered_s.append(time.time())

            config = load_station_text(text, "faults.toml")
            async with open_station(config, on_event=collect,
                                    settings=settings) as station:
                assert list(station.channels) == list(CHANNELS), station.unavailable
                store_path = folder / "station.db"
                store = Store.open(store_path)
                manager = JobManager(station, store, settings=FAST)
                try:
                    async with asyncio.TaskGroup() as group:
                        tasks = [group.create_task(station.run()),
                                 group.create_task(manager.run())]
                        try:
                            yield FaultStation(sim, station, manager, store_path, events,
                                               delivered_s, chamber2, server2, charge_logs)
                        finally:
                            for task in tasks:
                                task.cancel()
                finally:
                    manager.close()
                    store.close()
        finally:
            await server2.close()


def first_crossing(value: Callable[[float], float], start_s: float, end_s: float,
                   beyond: Callable[[float], bool]) -> float:
    """The first time in ``[start_s, end_s]`` at which ``value`` is ``beyond`` (a curve that
    crosses once), to a millisecond."""
    assert not beyond(value(start_s)) and beyond(value(end_s))
    low, high = start_s, end_s
    while high - low > 1e-3:
        middle = 0.5 * (low + high)
        low, high = (low, middle) if beyond(value(middle)) else (middle, high)
    return high


@contextlib.asynccontextmanager
async def watching(instrument: EnvironmentInstrument) -> AsyncIterator[list[Stamped]]:
    """Every value the station polls from ``instrument`` while the block runs (looked at
    every few milliseconds; polls are hundreds of milliseconds apart)."""
    seen: list[Stamped] = []

    async def watch() -> None:
        while True:
            last = instrument.last
            if last is not None and (not seen or seen[-1] is not last):
                seen.append(last)
            await asyncio.sleep(0.002)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""The engine on a channel rig over model-backed ports, with the supervisor, the environment
poller and the watchdogs running: an injected hard short trips the supervisor within one
sampling period and the output ends off; without a fault the job completes untouched.

The potentiostat is the model rig (the cell model computing each step as a block); the chamber
and the jig are small adapters over the bench's chamber and jig models, read on the bench's
clock. Nothing here is mocked: the supervisor sees what the model says.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import EnvironmentPoller, SharedChamber, StackJig, SystemTimer
from cellrig.daemon.supervisor import (
    ChannelSupervisor,
    SafetyEvent,
    SafetyEventKind,
    Supervisor,
)
from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobOutcome, JobState, ListSink
from cellrig.protocols.program import Limit, Limits
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Mode
from cellrig.simulators.bench import Bench
from cellrig.simulators.bench_ports import BenchChamberPort, BenchJigPort
from cellrig.simulators.cell_faults import Fault, FaultKind
from cellrig.simulators.model_rig import ModelRig

pytestmark = pytest.mark.integration

SAMPLE_S = 10.0
HEADER = f"""cellrig: 1
name: supervised
cell: {{capacity: 600 mAh}}
limits: {{voltage: [0 V, 4.35 V]}}
record: {{every: {SAMPLE_S:g} s}}
steps:
"""
#: The as-built anode-free cell starts near 1 V: formed first, without the channel's limits.
FORMATION = HEADER + "  - Charge at 0.1C until 4.25 V\n  - Rest for 10 minutes\n"
#: The supervised job on the formed cell.
DISCHARGE = HEADER + """  - set: {temperature: 25 degC, pressure: 2 MPa}
  - Discharge at 0.2C until 2.5 V
  - Rest for 10 minutes
  - Charge at 0.2C until 4.2 V
"""
#: The short, this long after the supervised job's discharge started (between two readings).
FAULT_AFTER_S = 1805.0
HARD_LIMITS = Limits(voltage_v=Limit(2.4, 4.4), temperature_c=Limit(-20.0, 80.0),
                     pressure_pa=Limit(0.5e6, 8e6))


@dataclass
class Station:
    """One channel on the default bench, supervised."""

    model: ModelRig
    rig: ChannelRig
    supervisor: ChannelSupervisor
    chamber: SharedChamber
    events: list[SafetyEvent]


async def station() -> Station:
    """The default bench's cell, formed, on channel A1 with its chamber and jig."""
    bench = Bench.default()
    bench_cell = bench.cells["cell-1"]
    model = ModelRig(bench_cell)
    formed = await Engine(resolve(load_protocol_text(FORMATION, "formation.yaml")), model,
                          ListSink(keep_checkpoints=False), VirtualClock()).run()
    assert formed.state is JobState.COMPLETED, formed.reason
    timer = SystemTimer()
    chamber = SharedChamber("chamber-1", BenchChamberPort(bench.chambers["chamber-1"],
                                                          bench.clock), timer)
    jig = StackJig("cell-1-jig", BenchJigPort(bench_cell), timer)
    rig = ChannelRig("A1", model, chamber=chamber, jig=jig)
    events: list[SafetyEvent] = []
    supervisor = ChannelSupervisor(rig, timer=timer, hard_limits=HARD_LIMITS,
                                   on_event=events.append)
    return Station(model, rig, supervisor, chamber, events)


async def run_job(unit: Station) -> tuple[JobOutcome, ListSink]:
    """The supervised job, with the environment poller and the watchdogs running."""
    program = resolve(load_protocol_text(DISCHARGE, "discharge.yaml"))
    unit.supervisor.begin_job(program.limits)
    sink = ListSink(keep_checkpoints=False)
    jig = unit.rig.jig
    assert jig is not None
    async with asyncio.timeout(60.0), asyncio.TaskGroup() as group:
        background = [group.create_task(EnvironmentPoller([unit.chamber, jig]).run()),
                      group.create_task(Supervisor([unit.supervisor]).run())]
        await asyncio.sleep(0)  # the first polls
        outcome = await Engine(program, unit.rig, sink, VirtualClock()).run()
        for task in background:
            task.cancel()
    unit.supervisor.end_job()
    unit.rig.release_environment()
    return outcome, sink


async def test_a_hard_short_trips_within_one_sampling_period_and_the_output_ends_off() -> None:
    unit = await station()
    fault_at_s = unit.model.now_s() + FAULT_AFTER_S
    unit.model.cell.inject(Fault(FaultKind.HARD_SHORT, at_s=unit.model.cell.time_s
                                 + FAULT_AFTER_S, resistance_ohm=0.01))
    outcome, sink = await run_job(unit)
    trips = [event for event in unit.events if event.kind is SafetyEventKind.LIMIT]
    assert len(trips) == 1 and unit.supervisor.trip == trips[0]
    trip = trips[0]
    assert (trip.channel, trip.quantity, trip.limit) == ("A1", "voltage", 2.4)
    assert trip.value < 2.4
    assert trip.reading_time_s is not None
    assert fault_at_s <= trip.reading_time_s <= fault_at_s + SAMPLE_S
    # the output ends off, the chamber and the jig held, and the engine cannot go on
    assert unit.model.command.mode is Mode.OFF
    assert unit.supervisor.unsafe_instruments == []
    assert outcome.state is JobState.FAILED and "latched safe" in outcome.reason
    # the sample that shows the collapse is stored; nothing after the trip
    times = sink.column("Test Time / s")
    voltages = sink.column("Voltage / V")
    assert voltages[-1] < 2.4 and voltages[-1] == pytest.approx(trip.value)
    job_start_s = fault_at_s - FAULT_AFTER_S  # instrument time of the job's first command
    assert float(np.max(times)) == pytest.approx(trip.reading_time_s - job_start_s)
    assert [event.kind for event in unit.events] == [SafetyEventKind.LIMIT]


async def test_without_a_fault_the_job_completes_untouched() -> None:
    unit = await station()
    outcome, sink = await run_job(unit)
    assert outcome.state is JobState.COMPLETED, outcome.reason
    assert unit.events == [] and not unit.supervisor.latched
    temperature = sink.column("Ambient Temperature / degC")
    pressure = sink.column("Applied Pressure / Pa")
    assert np.isfinite(temperature).all() and np.isfinite(pressure).all()
    assert float(np.min(pressure)) > 1.5e6

"""Jobs on a station of ``driver = "model"`` instruments, with no wire: the engine on two
channels at once with the environment pollers and the watchdogs running, on a bench that runs
1000 times faster than real time; an impedance sweep; a leak injected into one jig trips that
channel's supervisor on the stack pressure and leaves the other one running."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.supervisor import SafetyEvent, SafetyEventKind
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobOutcome, JobState, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.simulators.jig import JigFault

pytestmark = pytest.mark.integration

JIG = ('jig = { kind = "pneumatic", regulator = "bench", gauge = "bench", '
       'cell_area = "93.28 cm^2", piston_area = "0.1 m^2", max_force = "100 kN" }')
LIMITS = ('limits = { voltage = ["0 V", "4.4 V"], current = "0.8 A", '
          'temperature = ["-20 degC", "80 degC"], pressure = ["0.5 MPa", "8 MPa"] }')
STATION = f"""
[station]
name = "model-station"
data_folder = "data"

[instruments.bench]
driver = "model"
options = {{ time_scale = 1000 }}

[channels.A1]
potentiostat = "bench"
chamber = "bench"
eis = "bench"
{JIG}
{LIMITS}

[channels.A2]
potentiostat = {{ instrument = "bench", channel = 2 }}
chamber = "bench"
{JIG}
{LIMITS}
"""
HEADER = """cellrig: 1
name: {name}
cell: {{capacity: 600 mAh}}
limits: {{voltage: [0 V, 4.35 V], pressure: [1 MPa, 4 MPa]}}
record: {{every: 10 s}}
steps:
  - set: {{temperature: 30 degC, pressure: 2 MPa}}
"""
CHARGE = HEADER.format(name="charge") + "  - Charge at 0.5C for 20 minutes\n"
SWEEP = HEADER.format(name="sweep") + (
    "  - eis: {start: 100 kHz, stop: 100 mHz, amplitude: 10 mV, per_decade: 5}\n"
    "  - Charge at 0.5C for 20 minutes\n")


async def run_job(station: Station, channel: str, text: str) -> tuple[JobOutcome, ListSink]:
    built = station.channels[channel]
    program = resolve(load_protocol_text(text, "job.yaml"))
    assert built.refusals(program) == []
    built.supervisor.begin_job(program.limits)
    sink = ListSink(keep_checkpoints=False)
    try:
        outcome = await Engine(program, built.rig, sink, station.clock).run()
    finally:
        built.supervisor.end_job()
        built.rig.release_environment()
    return outcome, sink


async def test_two_channels_share_the_chamber_and_run_at_once() -> None:
    events: list[SafetyEvent] = []
    async with open_station(load_station_text(STATION), on_event=events.append) as station:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(station.run())
            async with asyncio.timeout(30.0):
                results = await asyncio.gather(run_job(station, "A1", SWEEP),
                                               run_job(station, "A2", CHARGE))
            running.cancel()
        assert events == []
        assert station.chambers["bench"].setpoint_c == 30.0
        for outcome, sink in results:
            assert outcome.state is JobState.COMPLETED, outcome.reason
            temperature = sink.column("Ambient Temperature / degC")
            pressure = sink.column("Applied Pressure / Pa")
            assert np.isfinite(temperature).all() and np.isfinite(pressure).all()
            assert temperature[-1] > 26.0  # heading for 30 °C (600 s time constant)
            assert np.abs(pressure - 2e6).max() < 0.05e6
        sweep = results[0][1].spectra
        assert len(sweep) == 1
        spectrum = sweep[0][2]
        assert spectrum.frequency_hz[0] == pytest.approx(1e5)
        assert np.all(spectrum.z_real_ohm > 0)
        # the charge after the sweep starts where the sweep ended, on the bench's clock
        times = results[0][1].column("Test Time / s")
        assert times[-1] > 1200.0
        assert station.model is not None
        for name in ("A1", "A2"):
            charged = station.model.cell(name).cell.state.charge_in_ah
            assert charged == pytest.approx(0.1, rel=0.05)


async def test_a_leaking_jig_trips_its_channel_and_leaves_the_other_running() -> None:
    events: list[SafetyEvent] = []
    async with open_station(load_station_text(STATION), on_event=events.append) as station:
        assert station.model is not None
        jig = station.model.cell("A1").jig
        assert jig is not None
        jig.inject(JigFault.LEAK, station.timer.now_s() + 100.0)
        async with asyncio.TaskGroup() as group:
            running = group.create_task(station.run())
            async with asyncio.timeout(30.0):
                results = await asyncio.gather(run_job(station, "A1", CHARGE),
                                               run_job(station, "A2", CHARGE))
            running.cancel()
        leaking, healthy = results
        # the engine sees the breach in its samples too: whichever acts first ends the job
        assert leaking[0].state in (JobState.ABORTED, JobState.FAILED), leaking[0].reason
        assert "pressure" in leaking[0].reason or "latched safe" in leaking[0].reason
        assert healthy[0].state is JobState.COMPLETED, healthy[0].reason
        # the supervisor trips on the job's 1 MPa, or (when the engine ended the job first)
        # on the channel's 0.5 MPa as the jig goes on leaking with no job
        trips = [event for event in events if event.kind is SafetyEventKind.LIMIT]
        assert [(event.channel, event.quantity) for event in trips] == [("A1", "pressure")]
        assert trips[0].value < trips[0].limit in (1e6, 0.5e6)
        assert station.channels["A1"].supervisor.latched
        assert not station.channels["A2"].supervisor.latched
        assert station.model.potentiostats["A1"].command.mode.value == "off"

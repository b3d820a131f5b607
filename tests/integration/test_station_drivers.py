"""The driver registry on the wire, for the drivers a simulated station of Keithleys does not
use: a Watlow F4T chamber (Modbus TCP), a PalmSens as a channel's potentiostat and EIS unit,
and a bolted jig (a Mark-10 gauge and its force monitor), each against its emulator on one
accelerated bench; a PalmSens channel the driver does not drive is left out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobState, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import JigKind
from cellrig.simulators.bench import Bench, BenchClock, bolted_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.mark10_emulator import Mark10Emulator
from cellrig.simulators.palmsens_emulator import PalmSensEmulator
from cellrig.simulators.watlow_emulator import WatlowF4TEmulator

pytestmark = pytest.mark.integration

SPEED = 400.0


@dataclass
class Wire:
    bench: Bench
    watlow_port: int
    palmsens_url: str
    gauge_url: str


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    bench = Bench(BenchClock(scale=SPEED))
    chamber = bench.add_chamber("oven")
    params = load_builtin_cell()
    cell = bench.add_cell("P1", "oven", CellModel(params, temperature_c=chamber.temperature_c),
                          bolted_jig(params, 3e6))
    watlow = WatlowF4TEmulator(chamber, bench.clock, set_point_range_c=(-40.0, 150.0))
    palmsens = PalmSensEmulator(cell)
    gauge = Mark10Emulator.for_bench_cell(cell)
    gauge_server = gauge.line_server()
    try:
        yield Wire(bench, await watlow.start(), await palmsens.start_tcp(),
                   await gauge_server.start_tcp())
    finally:
        await gauge_server.close()
        await palmsens.close()
        await watlow.close()


def station_text(wire: Wire) -> str:
    return f"""
[station]
name = "drivers"
data_folder = "data"

[instruments.oven]
driver = "watlow-f4t"
address = "127.0.0.1:{wire.watlow_port}"
options = {{ temperature_range = ["-20 degC", "120 degC"], poll_period = "0.2 s" }}

[instruments.mes]
driver = "palmsens"
address = "{wire.palmsens_url}"
options = {{ model = "nexus1", channels = 2, time_scale = {SPEED:g}, timeout = "5 s" }}

[instruments.gauge]
driver = "mark10"
address = "{wire.gauge_url}"
options = {{ poll_period = "0.2 s" }}

[channels.P1]
potentiostat = "mes"
eis = "mes"
chamber = "oven"
jig = {{ kind = "bolted", gauge = "gauge", cell_area = "93.28 cm^2", max_pressure = "10 MPa" }}
limits = {{ voltage = ["0 V", "4.4 V"], current = "0.8 A", pressure = ["1 MPa", "8 MPa"] }}

[channels.P2]
potentiostat = {{ instrument = "mes", channel = 2 }}
chamber = "oven"
limits = {{ voltage = ["0 V", "4.4 V"], current = "0.8 A" }}
"""


CHARGE = """cellrig: 1
name: palmsens-charge
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V]}
record: {every: 10 s}
steps:
  - set: {temperature: 30 degC}
  - Charge at 0.1C for 5 minutes
"""


async def test_watlow_palmsens_and_a_bolted_jig_make_a_channel(wire: Wire) -> None:
    async with open_station(load_station_text(station_text(wire))) as station:
        assert list(station.channels) == ["P1"]
        assert station.unavailable == {
            "P2": "channel P2: the PalmSens driver drives channel 1 of mes only, not channel 2"}
        channel = station.channels["P1"]
        assert channel.jig is not None and channel.jig.kind is JigKind.MEASURE_ONLY
        assert channel.rig.capabilities.eis and channel.rig.capabilities.device_cutoffs
        assert station.chambers["oven"].port.temperature_range_c == (-20.0, 120.0)
        program = resolve(load_protocol_text(CHARGE, "charge.yaml"))
        assert channel.refusals(program) == []
        bolted = resolve(load_protocol_text(CHARGE.replace(
            "temperature: 30 degC", "temperature: 30 degC, pressure: 2 MPa"), "p.yaml"))
        assert any("jig P1-jig is bolted" in problem for problem in channel.refusals(bolted))
        channel.supervisor.begin_job(program.limits)
        sink = ListSink(keep_checkpoints=False)
        async with asyncio.TaskGroup() as group:
            running = group.create_task(station.run())
            async with asyncio.timeout(60.0):
                outcome = await Engine(program, channel.rig, sink, station.clock).run()
            running.cancel()
        assert outcome.state is JobState.COMPLETED, outcome.reason
        pressure = sink.column("Applied Pressure / Pa")
        temperature = sink.column("Ambient Temperature / degC")
        assert np.isfinite(pressure).all() and np.isfinite(temperature).all()
        assert pressure.mean() == pytest.approx(3e6, rel=0.05)  # the bolted jig's preload
        assert sink.column("Test Time / s")[-1] == pytest.approx(300.0, abs=15.0)
        assert wire.bench.chambers["oven"].setpoint_c == 30.0

"""The ports a model station gets from the bench, on a virtual bench clock: a host-polled
potentiostat that reads when a sample is due, an EIS sweep that takes its time, a chamber and
a jig that refuse what their instruments would."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellrig.errors import InstrumentReported
from cellrig.protocols.program import EisMode, EisStep
from cellrig.protocols.rig import Command, JigKind, Mode
from cellrig.simulators.bench import Bench, BenchClock, bolted_jig
from cellrig.simulators.bench_ports import (
    BenchChamberPort,
    BenchEis,
    BenchJigPort,
    BenchPotentiostat,
)
from cellrig.simulators.cell_params import load_builtin_cell


def bench() -> Bench:
    made = Bench.default(BenchClock())
    made.add_cell("bolted", "chamber-1", jig=bolted_jig(load_builtin_cell(), 2e6))
    return made


async def test_readings_come_when_they_are_due_on_the_bench_clock() -> None:
    made = bench()
    port = BenchPotentiostat(made.cells["cell-1"])
    started_s = await port.apply(Command(Mode.CURRENT, current_a=0.06, sample_interval_s=10.0))
    assert started_s == made.clock.now_s()
    first = await port.read()  # the reading taken when the command was applied
    assert float(first.time_s[0]) == started_s
    assert first.current_a[0] == pytest.approx(0.06)
    times = [float((await port.read()).time_s[0]) for _ in range(5)]
    assert np.diff([started_s, *times]) == pytest.approx([10.0] * 5)
    assert made.cells["cell-1"].cell.state.charge_in_ah == pytest.approx(0.06 * 50 / 3600)
    assert first.temperature_c is None and first.pressure_pa is None  # the station's pollers


async def test_a_voltage_limit_holds_as_a_source_in_compliance() -> None:
    made = bench()
    port = BenchPotentiostat(made.cells["cell-1"])
    await port.apply(Command(Mode.CURRENT, current_a=0.6, voltage_limit_v=1.5,
                             sample_interval_s=60.0))
    await port.read()
    blocks = [await port.read() for _ in range(30)]
    assert float(blocks[-1].voltage_v[0]) == pytest.approx(1.5, abs=1e-3)
    assert 0.0 < float(blocks[-1].current_a[0]) < 0.6


async def test_output_off_reads_no_voltage_and_rest_reads_the_cell() -> None:
    made = bench()
    port = BenchPotentiostat(made.cells["cell-1"])
    await port.apply(Command(Mode.REST, sample_interval_s=1.0))
    rest = await port.read()
    assert math.isfinite(float(rest.voltage_v[0])) and rest.current_a[0] == 0.0
    await port.safe()
    assert port.command.mode is Mode.OFF
    off = await port.read()
    assert math.isnan(float(off.voltage_v[0])) and off.current_a[0] == 0.0


async def test_constant_power_is_refused() -> None:
    port = BenchPotentiostat(bench().cells["cell-1"], instrument="bench")
    assert not port.capabilities.constant_power and not port.capabilities.device_cutoffs
    with pytest.raises(InstrumentReported, match="bench at in-process: the model potentiostat "
                                                 "has no power mode"):
        await port.apply(Command(Mode.POWER, power_w=1.0))


async def test_a_sweep_takes_its_time_and_leaves_the_cell_at_open_circuit() -> None:
    made = bench()
    eis = BenchEis(made.cells["cell-1"])
    step = EisStep(id=1, label="eis", mode=EisMode.POTENTIOSTATIC, start_hz=1e4, stop_hz=1.0,
                   points_per_decade=5, amplitude=0.01)
    before_s = made.clock.now_s()
    spectrum = await eis.eis(step)
    assert spectrum.frequency_hz.shape == (21,)
    assert spectrum.time_s - before_s == pytest.approx(spectrum.meta["duration_s"])
    assert np.all(spectrum.z_real_ohm > 0)


async def test_the_chamber_refuses_a_setpoint_out_of_its_range() -> None:
    made = bench()
    port = BenchChamberPort(made.chambers["chamber-1"], made.clock, (-20.0, 100.0), "oven")
    await port.set_temperature(60.0)
    made.clock.advance(3600.0)
    assert await port.read_temperature() == pytest.approx(60.0, abs=0.5)
    with pytest.raises(InstrumentReported, match="oven at in-process: setpoint 120 °C is "
                                                 "outside -20 to 100 °C"):
        await port.set_temperature(120.0)


async def test_a_pneumatic_jig_is_set_and_a_bolted_one_only_measured() -> None:
    made = bench()
    pneumatic = BenchJigPort(made.cells["cell-1"], 8e6)
    assert pneumatic.kind is JigKind.CONTROLLED and pneumatic.max_pressure_pa == 8e6
    await pneumatic.set_pressure(3e6)
    made.clock.advance(60.0)
    assert await pneumatic.read_pressure() == pytest.approx(3e6, rel=1e-3)
    with pytest.raises(InstrumentReported, match="outside 0 to 8 MPa"):
        await pneumatic.set_pressure(9e6)
    bolted = BenchJigPort(made.cells["bolted"])
    assert bolted.kind is JigKind.MEASURE_ONLY
    assert await bolted.read_pressure() == pytest.approx(2e6, rel=0.01)
    with pytest.raises(InstrumentReported, match="a bolted jig cannot set a pressure"):
        await bolted.set_pressure(2e6)


def test_a_cell_without_a_jig_has_no_jig_port() -> None:
    made = Bench(BenchClock())
    made.add_chamber("room")
    with pytest.raises(ValueError, match="no jig"):
        BenchJigPort(made.add_cell("bare", "room"))

"""The model rig through the engine: results must be what the cell model says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobOutcome, ListSink
from cellrig.protocols.program import EisMode, EisStep
from cellrig.protocols.resolve import check
from cellrig.protocols.rig import Command, JigKind, Mode
from cellrig.simulators.bench import Bench, bolted_jig
from cellrig.simulators.cell_faults import Fault, FaultKind
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.model_rig import ModelRig
from cellrig.simulators.model_rig_steps import eis_frequencies, sweep_duration_s

PARAMS = load_builtin_cell()
CAPACITY_AH = PARAMS.capacity_ah
HEADER = f"""cellrig: 1
name: test
cell: {{capacity: {CAPACITY_AH * 1000:.6f} mAh}}
limits: {{voltage: [-0.1 V, 4.35 V]}}
record: {{every: 10 s}}
steps:
"""


async def run(steps: str, rig: ModelRig | None = None) -> tuple[JobOutcome, ListSink, ModelRig]:
    """Run protocol steps (YAML lines) on a model rig (the default bench unless given)."""
    result = check(load_protocol_text(HEADER + steps, "test.yaml"))
    assert result.program is not None, [d.render() for d in result.errors]
    rig = rig if rig is not None else ModelRig(Bench.default().cells["cell-1"])
    sink = ListSink(keep_checkpoints=False)
    outcome = await Engine(result.program, rig, sink, VirtualClock()).run()
    return outcome, sink, rig


def step_rows(sink: ListSink, step_id: int) -> dict[str, np.ndarray]:
    """The samples of one step, by short column name."""
    mask = sink.column("Step ID") == step_id
    return {name: sink.column(column)[mask] for name, column in (
        ("t", "Test Time / s"), ("step_t", "Step Time / s"), ("v", "Voltage / V"),
        ("i", "Current / A"), ("temp", "Ambient Temperature / degC"),
        ("p", "Applied Pressure / Pa"))}


def reference_model() -> CellModel:
    """The default bench's cell, built independently."""
    return CellModel(load_builtin_cell(), 25.0, 2.0e6)


class TestCutOffs:
    async def test_cc_cv_cc_end_where_the_model_says(self) -> None:
        outcome, sink, rig = await run("  - Charge at 0.5C until 4.25 V\n"
                                       "  - Hold at 4.25 V until 0.05C\n"
                                       "  - Discharge at 0.5C until 2.5 V\n")
        model = reference_model()
        current = 0.5 * CAPACITY_AH
        charge_s = model.time_to_voltage(current, 4.25, 1e6)
        assert charge_s is not None
        model.run_current(current, [charge_s])
        hold_s = model.time_to_current(4.25, 0.05 * CAPACITY_AH, 1e6)
        assert hold_s is not None
        model.run_voltage(4.25, [hold_s])
        discharge_s = model.time_to_voltage(-current, 2.5, 1e6)
        assert discharge_s is not None

        charge, hold, discharge = (step_rows(sink, n) for n in (1, 2, 3))
        assert charge["t"][-1] == pytest.approx(charge_s, abs=1e-3)
        assert charge["v"][-1] == pytest.approx(4.25, abs=1e-9)
        assert hold["t"][-1] == pytest.approx(charge_s + hold_s, abs=0.05)
        assert abs(hold["i"][-1]) == pytest.approx(0.05 * CAPACITY_AH, rel=1e-6)
        assert discharge["step_t"][-1] == pytest.approx(discharge_s, abs=1e-3)
        assert discharge["v"][-1] == pytest.approx(2.5, abs=1e-9)
        assert sink.cycles[0].discharge_capacity_ah == pytest.approx(
            current * discharge_s / 3600.0, rel=1e-6)
        assert outcome.test_time_s == pytest.approx(rig.now_s(), abs=1e-6)

    async def test_readings_sit_on_the_recording_grid(self) -> None:
        _, sink, _ = await run("  - Charge at 0.1C for 1 h\n")
        rows = step_rows(sink, 1)
        assert rows["step_t"][0] == 0.0
        assert rows["step_t"][-1] == pytest.approx(3600.0)
        assert np.allclose(np.diff(rows["step_t"]), 10.0)

    async def test_time_and_charge_conditions_in_closed_form(self) -> None:
        _, sink, _ = await run("  - Charge at 0.2C until 4.3 V\n"
                               "  - charge: 0.2C\n"
                               "    until: {charge: 3.7 %}\n")
        rows = step_rows(sink, 2)
        expected_s = 0.037 / 0.2 * 3600.0
        assert rows["step_t"][-1] == pytest.approx(expected_s, rel=1e-9)
        assert sink.column("Step Charging Capacity / Ah")[-1] == pytest.approx(
            0.037 * CAPACITY_AH, rel=1e-9)

    async def test_condition_found_by_the_engine_rewinds_the_model(self) -> None:
        outcome, sink, rig = await run("  - Charge at 0.5C until 4.25 V\n"
                                       "  - rest: 4 h\n"
                                       "    until: {dvdt: 10 mV/h}\n")
        rest = step_rows(sink, 2)
        assert rest["step_t"][-1] < 4 * 3600.0
        assert outcome.test_time_s == pytest.approx(rig.now_s())
        assert rig.bench_cell.clock.now_s() == pytest.approx(rig.now_s())
        assert rig.cell.state.current_a == 0.0

    async def test_compliance_holds_the_voltage_limit(self) -> None:
        """A charge with no voltage cut-off stops rising at the program's voltage limit and
        holds it, the current falling: a source in compliance."""
        _, sink, _ = await run("  - charge: 0.5C\n"
                               "    until: {charge: 110 %}\n")
        rows = step_rows(sink, 1)
        assert rows["v"].max() == pytest.approx(4.35, abs=1e-9)
        held = rows["v"] > 4.35 - 1e-9
        assert held.sum() > 10
        assert np.all(np.diff(rows["i"][held]) < 0)

    async def test_constant_power_is_held(self) -> None:
        _, sink, _ = await run("  - Charge at 0.5C until 4.25 V\n"
                               "  - Discharge at 1 W until 3.0 V\n")
        rows = step_rows(sink, 2)
        power = rows["v"][1:] * rows["i"][1:]
        assert np.allclose(power, -1.0, rtol=5e-3)
        assert rows["v"][-1] <= 3.0


class TestEnvironment:
    async def test_set_drives_chamber_and_jig(self) -> None:
        _, sink, rig = await run(
            "  - set: {temperature: 60 degC, pressure: 4 MPa}\n"
            "    wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 30 min}\n")
        rows = step_rows(sink, 1)
        assert rows["temp"][0] == pytest.approx(25.0)
        assert abs(rows["temp"][-1] - 60.0) <= 0.5
        assert rows["p"][-1] == pytest.approx(4.0e6, rel=0.025)
        assert rig.cell.temperature_c == pytest.approx(rows["temp"][-1], abs=0.5)
        assert rig.capabilities.jig is JigKind.CONTROLLED

    async def test_bolted_jig_pressure_rises_and_falls_with_each_charge(self) -> None:
        bench = Bench()
        bench.add_chamber("chamber-1")
        cell = bench.add_cell("cell-1", "chamber-1", CellModel(PARAMS), bolted_jig(PARAMS, 2.0e6))
        rig = ModelRig(cell)
        assert rig.capabilities.jig is JigKind.MEASURE_ONLY
        _, sink, _ = await run("  - repeat: 2\n    steps:\n"
                               "      - Charge at 0.5C until 4.25 V\n"
                               "      - Discharge at 0.5C until 2.5 V\n", rig)
        pressures = [step_rows(sink, n)["p"] for n in (1, 2)]
        charge, discharge = pressures
        assert charge[-1] > charge[0] + 0.5e6
        assert discharge[-1] < charge[-1] - 0.5e6
        steps = sink.column("Step Count / 1")
        pressure = sink.column("Applied Pressure / Pa")
        peaks = [pressure[steps == n].max() for n in (1, 3)]
        troughs = [pressure[steps == n][-1] for n in (2, 4)]
        assert min(peaks) > max(troughs) + 0.5e6


class TestEis:
    async def test_spectrum_is_the_models_impedance(self) -> None:
        bench = Bench.default()
        rig = ModelRig(bench.cells["cell-1"])
        step = EisStep(id=1, label="eis", mode=EisMode.POTENTIOSTATIC, start_hz=1e5,
                       stop_hz=0.1, points_per_decade=5, amplitude=0.01)
        expected = rig.cell.impedance(eis_frequencies(step))
        before = rig.now_s()
        spectrum = await rig.eis(step)
        assert np.allclose(spectrum.z_real_ohm + 1j * spectrum.z_imag_ohm, expected)
        assert spectrum.frequency_hz[0] == pytest.approx(1e5)
        assert spectrum.time_s - before == pytest.approx(sweep_duration_s(spectrum.frequency_hz))
        assert bench.clock.now_s() == pytest.approx(spectrum.time_s)


class TestPort:
    async def test_resumed_command_keeps_the_step_grid(self) -> None:
        rig = ModelRig(Bench.default().cells["cell-1"])
        await rig.apply(Command(Mode.CURRENT, current_a=0.1, sample_interval_s=10.0,
                                elapsed_s=5.0))
        block = await rig.read()
        step_times = 5.0 + (block.time_s - block.time_s[0])
        assert step_times[1] == pytest.approx(10.0)
        assert not block.done

    async def test_faults_take_the_model_path(self) -> None:
        """A soft short: the charge never reaches its cut-off; the charge limit ends it."""
        bench = Bench.default()
        bench.cells["cell-1"].cell.inject(Fault(FaultKind.SOFT_SHORT, at_s=0.0,
                                                resistance_ohm=5.0))
        rig = ModelRig(bench.cells["cell-1"])
        outcome, sink, _ = await run("  - charge: 0.2C\n"
                                     "    until: [{voltage: 4.25 V}, {charge: 130 %}]\n", rig)
        rows = step_rows(sink, 1)
        assert rows["v"].max() < 4.25
        assert sink.column("Step Charging Capacity / Ah")[-1] == pytest.approx(
            1.3 * CAPACITY_AH, rel=1e-6)
        assert outcome.test_time_s == pytest.approx(1.3 / 0.2 * 3600.0, rel=1e-6)

    async def test_safe_rests_the_cell(self) -> None:
        rig = ModelRig(Bench.default().cells["cell-1"])
        await rig.apply(Command(Mode.CURRENT, current_a=0.3, sample_interval_s=60.0))
        await rig.read()
        await rig.safe()
        await rig.apply(Command(Mode.REST, sample_interval_s=60.0))
        block = await rig.read()
        assert np.all(block.current_a == 0.0)
        assert math.isfinite(float(block.voltage_v[-1]))

    def test_needs_a_virtual_clock(self) -> None:
        from cellrig.simulators.bench import BenchClock

        with pytest.raises(ValueError, match="virtual clock"):
            ModelRig(Bench.default(BenchClock(scale=10.0)).cells["cell-1"])

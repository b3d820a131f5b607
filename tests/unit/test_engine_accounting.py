"""Accounting (charge and energy per step, cycle and test), the cycle rule, per-cycle summaries,
per-test figures and the recording rule.

The linear test cell makes the expected values analytic: under constant current its voltage
is a straight line in time, so the power is too, and the trapezoid rule is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from engine_helpers import FadingRig, Run, program, rig, run
from rigs import LinearCell

from cellrig.protocols.engine import EventKind
from cellrig.protocols.engine.blocks import split_trapezoid
from cellrig.protocols.engine.output import COLUMNS

OCV0, SLOPE, R = 3.0, 1.2, 0.1


def cc_energy_wh(current_a: float, seconds: float, charge_ah: float = 0.0) -> float:
    """|Energy| of a CC step on the linear cell: |I|/3600 * integral of V over the step."""
    v0 = OCV0 + SLOPE * charge_ah + current_a * R
    return abs(current_a) / 3600 * (v0 * seconds
                                    + SLOPE * current_a / 3600 * seconds**2 / 2)


def at_end_of_each_cycle(done: Run, name: str) -> list[float]:
    """A column's value at the last sample of every cycle."""
    cycles = done.column("Cycle Count / 1")
    values = done.column(name)
    return [float(values[np.flatnonzero(cycles == c)[-1]]) for c in np.unique(cycles)]


async def test_cc_charge_is_current_times_time_exactly() -> None:
    done = await run(program("  - charge: 0.7 A\n    for: 1 h"))
    assert all(list(block.columns) == list(COLUMNS) for block in done.sink.blocks)
    expected_ah = 0.7 * 3600 / 3600
    for prefix in ("", "Cycle ", "Step "):
        assert done.column(f"{prefix}Charging Capacity / Ah")[-1] == pytest.approx(
            expected_ah, rel=1e-12, abs=0)
        assert done.column(f"{prefix}Discharging Capacity / Ah")[-1] == 0.0
        assert done.column(f"{prefix}Charging Energy / Wh")[-1] == pytest.approx(
            cc_energy_wh(0.7, 3600), rel=1e-12, abs=0)
    summary = done.sink.cycles[0]
    assert summary.charge_capacity_ah == pytest.approx(expected_ah, rel=1e-12, abs=0)
    assert summary.charge_energy_wh == pytest.approx(cc_energy_wh(0.7, 3600), rel=1e-12, abs=0)


async def test_cc_discharge_capacity_and_energy_are_analytic() -> None:
    done = await run(program("  - discharge: 0.4 A\n    for: 50 min"), rig(charge_ah=0.6))
    summary = done.sink.cycles[0]
    assert summary.discharge_capacity_ah == pytest.approx(0.4 * 3000 / 3600, rel=1e-12, abs=0)
    assert summary.discharge_energy_wh == pytest.approx(cc_energy_wh(-0.4, 3000, 0.6),
                                                        rel=1e-12, abs=0)
    assert summary.charge_capacity_ah == 0.0
    assert summary.average_discharge_voltage_v == pytest.approx(
        cc_energy_wh(-0.4, 3000, 0.6) / (0.4 * 3000 / 3600), rel=1e-12)


async def test_step_cycle_and_test_totals_restart_where_they_should() -> None:
    done = await run(program("""
  - repeat: 2
    steps:
      - Charge at 1C for 10 minutes
      - Rest for 1 minute
      - Discharge at 0.5C for 10 minutes
"""))
    tenth = 1 / 6
    step_charge = done.column("Step Charging Capacity / Ah")
    step_time = done.column("Step Time / s")
    assert step_charge[step_time == 0.0].tolist() == [0.0] * 6
    assert at_end_of_each_cycle(done, "Cycle Charging Capacity / Ah") == pytest.approx(
        [tenth, tenth], rel=1e-12)
    assert at_end_of_each_cycle(done, "Cycle Discharging Capacity / Ah") == pytest.approx(
        [tenth / 2, tenth / 2], rel=1e-12)
    assert done.column("Charging Capacity / Ah")[-1] == pytest.approx(2 * tenth, rel=1e-12)
    assert done.column("Discharging Capacity / Ah")[-1] == pytest.approx(tenth, rel=1e-12)
    # within a cycle the cycle total only grows; the test total never falls
    assert np.all(np.diff(done.column("Charging Capacity / Ah")) >= 0)


def test_a_segment_through_zero_is_split_at_the_crossing() -> None:
    positive, negative = split_trapezoid(np.array([1.0, 2.0, -1.0]), np.array([-1.0, 2.0, 3.0]),
                                         np.array([2.0, 1.0, 4.0]))
    assert positive.tolist() == [0.5, 2.0, 4.5]
    assert negative.tolist() == [0.5, 0.0, 0.5]


async def test_a_new_cycle_starts_with_a_charge_after_a_discharge() -> None:
    done = await run(program("""
  - Charge at 1C for 10 minutes
  - Hold at 3.2 V for 2 minutes
  - Rest for 1 minute
  - Discharge at 1C for 5 minutes
  - Rest for 1 minute
  - Charge at 1C for 1 minute
  - Rest for 1 minute
"""))
    by_step = {int(s): int(c) for s, c in zip(done.column("Step ID"),
                                              done.column("Cycle Count / 1"), strict=True)}
    assert by_step == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2}
    assert [c.cycle for c in done.sink.cycles] == [1, 2]


async def test_a_test_that_starts_with_a_discharge_has_it_in_cycle_one() -> None:
    done = await run(program("""
  - Discharge at 1C for 5 minutes
  - Rest for 1 minute
  - Charge at 1C for 5 minutes
  - Discharge at 1C for 5 minutes
"""), rig(charge_ah=0.5))
    assert [(c.cycle, c.charge_capacity_ah > 0, c.discharge_capacity_ah > 0)
            for c in done.sink.cycles] == [(1, False, True), (2, True, True)]


async def test_reverse_current_in_a_hold_does_not_count_as_a_discharge() -> None:
    done = await run(program("""
  - Charge at 1C until 3.60025 V
  - Hold at 3.5 V for 5 minutes
  - Charge at 1C for 1 minute
  - Discharge at 1C for 1 minute
"""))
    hold = done.column("Step ID") == 2
    assert np.all(done.column("Current / A")[hold][1:] < 0)
    assert done.outcome.cycles == 1
    assert len(done.sink.cycles) == 1


async def test_a_loop_whose_body_discharges_first() -> None:
    done = await run(program("""
  - repeat: 3
    steps:
      - Discharge at 1C for 10 minutes
      - Charge at 1C for 10 minutes
"""), rig(charge_ah=0.5))
    sixth = 1 / 6
    assert [c.cycle for c in done.sink.cycles] == [1, 2, 3, 4]
    assert [c.charge_capacity_ah for c in done.sink.cycles] == pytest.approx(
        [0.0, sixth, sixth, sixth], rel=1e-12)
    assert [c.discharge_capacity_ah for c in done.sink.cycles] == pytest.approx(
        [sixth, sixth, sixth, 0.0], rel=1e-12)


@pytest.mark.parametrize("discharge_first", [False, True])
async def test_loop_until_discharge_capacity_below_80_percent_of_first(
        discharge_first: bool) -> None:
    body = ["      - Charge at 1C until 4.0 V", "      - Discharge at 1C until 3.2 V"]
    if discharge_first:
        body.reverse()
    prog = program("  - repeat: 100\n    until: discharge capacity < 80 % of first\n"
                   "    steps:\n" + "\n".join(body), record="{every: 1 min}")
    done = await run(prog, FadingRig(cell=LinearCell(charge_ah=0.5), growth_ohm=0.01))
    discharges = [c.discharge_capacity_ah for c in done.sink.cycles
                  if c.discharge_capacity_ah > 0]
    first = discharges[0]
    ending = next(n for n, q in enumerate(discharges) if q <= 0.8 * first)
    assert ending > 3  # the cell really faded over several passes
    assert len(discharges) == ending + 1  # the loop stopped after that pass
    loop_end = [e for e in done.events(EventKind.STEP_END) if e.step_id is None]
    assert loop_end[0].data["iterations"] == ending + 1
    assert done.outcome.cycles_to_retention["80%"] == done.sink.cycles[ending].cycle


async def test_cycle_summary_fields() -> None:
    prog = program("""
  - set: {temperature: 35 degC, pressure: 2 MPa}
  - repeat: 3
    steps:
      - cccv: {current: 1C, voltage: 3.90025 V, cutoff: 0.1C}
      - Rest for 5 minutes
      - Discharge at 1C until 3.20025 V
      - Rest for 5 minutes
""")
    done = await run(prog, FadingRig(cell=LinearCell(charge_ah=0.2), growth_ohm=0.02),
                     reference_cycle=2)
    cycles = done.column("Cycle Count / 1")
    test_time = done.column("Test Time / s")
    summaries = done.sink.cycles
    assert [s.cycle for s in summaries] == [1, 2, 3]
    for summary in summaries:
        rows = cycles == summary.cycle
        last = np.flatnonzero(rows)[-1]
        charge = done.column("Cycle Charging Capacity / Ah")[last]
        discharge = done.column("Cycle Discharging Capacity / Ah")[last]
        e_charge = done.column("Cycle Charging Energy / Wh")[last]
        e_discharge = done.column("Cycle Discharging Energy / Wh")[last]
        assert summary.charge_capacity_ah == pytest.approx(charge, rel=1e-12)
        assert summary.discharge_capacity_ah == pytest.approx(discharge, rel=1e-12)
        assert summary.coulombic_efficiency == pytest.approx(discharge / charge, rel=1e-12)
        assert summary.energy_efficiency == pytest.approx(e_discharge / e_charge, rel=1e-12)
        assert summary.average_charge_voltage_v == pytest.approx(e_charge / charge, rel=1e-12)
        assert summary.average_discharge_voltage_v == pytest.approx(e_discharge / discharge,
                                                                    rel=1e-12)
        step_charge = done.column("Step Charging Capacity / Ah")
        kinds = done.column("Step Type")
        switch = np.flatnonzero(rows & (kinds == "CC_CHG"))[-1]  # the CC phase's last reading
        cv_charge = step_charge[np.flatnonzero(rows & (kinds == "CV_CHG"))[-1]] - step_charge[
            switch]
        assert summary.cv_charge_share == pytest.approx(cv_charge / charge, rel=1e-9)
        assert summary.cc_charge_share == pytest.approx(1 - cv_charge / charge, rel=1e-9)
        assert summary.end_test_time_s == test_time[last]
        assert summary.duration_s == pytest.approx(test_time[last] - test_time[rows][0])
        for name, low, high in (("Ambient Temperature / degC", "min_temperature_c",
                                 "max_temperature_c"),
                                ("Applied Pressure / Pa", "min_pressure_pa", "max_pressure_pa")):
            assert getattr(summary, low) == done.column(name)[rows].min()
            assert getattr(summary, high) == done.column(name)[rows].max()
        assert summary.retention == pytest.approx(discharge / summaries[0].discharge_capacity_ah)
        reference = summaries[1].discharge_capacity_ah
        assert summary.reference_retention == (
            None if summary.cycle < 2 else pytest.approx(discharge / reference))
    assert summaries[0].start_test_time_s == 0.0
    assert summaries[1].start_test_time_s == summaries[0].end_test_time_s
    assert summaries[0].min_temperature_c == 25.0 and summaries[2].max_temperature_c > 34.9
    assert summaries[2].retention < summaries[1].retention < 1.0 == summaries[0].retention
    assert done.outcome.initial_coulombic_efficiency == summaries[0].coulombic_efficiency


async def test_cycles_to_retention_levels() -> None:
    prog = program("""
  - repeat: 40
    until: discharge capacity < 75 % of first
    steps:
      - Charge at 1C until 4.0 V
      - Discharge at 1C until 3.2 V
""", record="{every: 10 min}")
    done = await run(prog, FadingRig(growth_ohm=0.01))
    retention = {s.cycle: s.retention for s in done.sink.cycles}
    expected = {f"{level:.0%}": min(c for c, r in retention.items() if r <= level)
                for level in (0.95, 0.90, 0.80)}
    assert done.outcome.cycles_to_retention == expected
    assert expected["95%"] < expected["90%"] < expected["80%"]
    job_end = done.events(EventKind.JOB_END)[0]
    assert job_end.data["cycles_to_retention"] == expected


async def test_an_aborted_partial_cycle_is_summarised_but_not_counted_for_retention() -> None:
    prog = program("""
  - Charge at 1C until 4.0 V
  - Discharge at 1C until 3.2 V
  - Charge at 1C until 4.0 V
  - set: {temperature: 40 degC}
  - Discharge at 1C until 3.2 V
""", limits="{temperature: [0 degC, 35 degC]}")
    done = await run(prog)
    assert done.outcome.state.value == "aborted"
    assert len(done.sink.cycles) == 2
    assert done.sink.cycles[1].retention == pytest.approx(66 / 3600 / 0.5, rel=1e-3)
    assert done.outcome.cycles_to_retention == {}


# -- recording ------------------------------------------------------------------------------


def grid_mask(values: np.ndarray, size: float) -> np.ndarray:
    """Where a value moves to another multiple of ``size`` than the reading before."""
    cells = np.floor(values / size)
    return np.concatenate(([True], cells[1:] != cells[:-1]))


async def recorded(steps: str, record: str, test_rig_charge: float = 0.0) -> tuple[Run, Run]:
    """A run storing every reading, and the same run under ``record``."""
    everything = await run(program(steps, record="{every: 1 s}"), rig(charge_ah=test_rig_charge))
    ruled = await run(program(steps, record=record), rig(charge_ah=test_rig_charge))
    return everything, ruled


async def test_every_stores_a_sample_when_step_time_passes_a_multiple() -> None:
    _, ruled = await recorded("  - Charge at 1C for 95 seconds\n  - Rest for 25 seconds",
                              "{every: 10 s}")
    times = list(zip(ruled.column("Step ID").tolist(),
                     ruled.column("Step Time / s").tolist(), strict=True))
    assert times == ([(1, float(t)) for t in [*range(0, 100, 10), 95]]
                     + [(2, float(t)) for t in [0, 10, 20, 25]])


@pytest.mark.parametrize(("steps", "record", "column", "size", "charge"), [
    ("  - Charge at 1C for 10 minutes", "{voltage_change: 10 mV}", "Voltage / V", 0.01, 0.0),
    ("  - Hold at 3.5 V until 0.05C", "{current_change: 0.1C}", "Current / A", 0.1, 0.25),
])
async def test_change_rules_store_a_sample_when_a_value_crosses_a_grid_line(
        steps: str, record: str, column: str, size: float, charge: float) -> None:
    everything, ruled = await recorded(steps, record, charge)
    values = everything.column(column)
    expected = grid_mask(values, size)
    expected[-1] = True
    stored = ruled.column("Step Time / s")
    assert stored.tolist() == everything.column("Step Time / s")[
        expected].tolist()
    assert 5 < stored.shape[0] < values.shape[0] / 5


async def test_rules_combine_and_a_steps_own_rule_replaces_the_programs() -> None:
    steps = """
  - Charge at 1C for 10 minutes
  - charge: 1C
    for: 10 minutes
    record: {every: 30 s}
"""
    everything, ruled = await recorded(steps, "{every: 2 min, voltage_change: 10 mV}")
    step_id = everything.column("Step ID")
    step_time = everything.column("Step Time / s")
    voltage = everything.column("Voltage / V")
    first = step_id == 1
    expected_first = grid_mask(step_time[first], 120) | grid_mask(voltage[first], 0.01)
    expected_first[-1] = True
    expected_second = grid_mask(step_time[~first], 30)
    expected_second[-1] = True
    stored = ruled.column("Step Time / s")
    stored_id = ruled.column("Step ID")
    assert stored[stored_id == 1].tolist() == step_time[first][expected_first].tolist()
    assert stored[stored_id == 2].tolist() == step_time[~first][expected_second].tolist()


async def test_the_reading_that_ends_a_step_is_always_stored() -> None:
    done = await run(program("  - Charge at 1C until 3.30025 V", record="{every: 1 h}"))
    step_time = done.column("Step Time / s").tolist()
    expected_end = math.ceil((3.30025 - 3.1) * 3000)
    assert step_time == [0.0, float(expected_end)]
    assert done.column("Voltage / V")[-1] >= 3.30025

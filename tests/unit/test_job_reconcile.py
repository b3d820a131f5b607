"""Reconciling a job with its instrument after a restart: the outage's charge by what the
instrument did, and the checkpoint moved on by it (``daemon/job_reconcile.py``)."""

from __future__ import annotations

import pytest

from cellrig.daemon.job_reconcile import (
    account_outage,
    cutoff_passed,
    outage_amounts,
    step_command,
    step_of,
)
from cellrig.drivers.ports import SourceState
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine.state import EngineState, StepProgress, Totals
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Mode

PROTOCOL = """cellrig: 1
name: cccv
cell: {capacity: 600 mAh}
limits: {voltage: [2.5 V, 4.35 V], current: 1 C}
steps:
  - Charge at 0.5C until 4.2 V
  - Hold at 4.2 V until 0.05C
  - Rest for 5 minutes
  - Discharge at 0.5C until 3.0 V
"""


def state(mode: Mode, level: float, limit: float, *, compliance: bool = False,
          voltage_v: float = 3.9, current_a: float = 0.3) -> SourceState:
    return SourceState(True, mode, level, limit, compliance, voltage_v, current_a, 12.0)


def test_a_current_source_inside_its_limit_passed_its_current_for_the_whole_gap() -> None:
    found = state(Mode.CURRENT, 0.3, 4.2, current_a=0.2999)
    charge_ah, energy_wh = outage_amounts(found, 0.25, 3.8, 600.0)
    assert charge_ah == pytest.approx(0.3 * 600 / 3600, rel=1e-12)
    assert energy_wh == pytest.approx(charge_ah * (3.8 + 3.9) / 2, rel=1e-12)


def test_a_discharge_held_at_its_current_limit_passed_that_limit() -> None:
    found = state(Mode.VOLTAGE, 3.0, 0.3, compliance=True, voltage_v=3.5, current_a=-0.2999)
    charge_ah, energy_wh = outage_amounts(found, -0.3, 3.6, 360.0)
    assert charge_ah == pytest.approx(-0.03, rel=1e-12)
    assert energy_wh < 0


def test_a_voltage_hold_is_bounded_by_the_trapezoid_of_the_two_currents() -> None:
    found = state(Mode.VOLTAGE, 4.2, 0.6, voltage_v=4.2, current_a=0.1)
    charge_ah, _ = outage_amounts(found, 0.3, 4.2, 3600.0)
    assert charge_ah == pytest.approx(0.2, rel=1e-12)
    clamped = state(Mode.CURRENT, 0.3, 4.2, compliance=True, voltage_v=4.2, current_a=0.1)
    assert outage_amounts(clamped, 0.3, 4.15, 3600.0)[0] == pytest.approx(0.2, rel=1e-12)


def test_the_checkpoint_moves_on_by_the_outage_in_every_total() -> None:
    engine = EngineState(test_time_s=1000.0, step=StepProgress(
        step_id=1, elapsed_s=400.0, totals=Totals(charge_ah=0.02, charge_wh=0.08)))
    engine.cycle.totals = Totals(charge_ah=0.05, charge_wh=0.2)
    engine.test = Totals(charge_ah=0.5, discharge_ah=0.4, charge_wh=2.0, discharge_wh=1.5)
    checkpoint = engine.to_checkpoint()
    moved = account_outage(checkpoint, 300.0, 0.025, 0.1, cv=False)
    again = EngineState.from_checkpoint(moved)
    assert again.test_time_s == 1300.0 and again.step is not None
    assert again.step.elapsed_s == 700.0
    assert again.step.totals.charge_ah == pytest.approx(0.045)
    assert again.cycle.totals.charge_wh == pytest.approx(0.3)
    assert again.test.charge_ah == pytest.approx(0.525)
    assert again.test.discharge_ah == 0.4 and again.cycle.cv_charge_ah == 0.0
    assert checkpoint["test_time_s"] == 1000.0  # the stored one is left as it was
    discharged = EngineState.from_checkpoint(account_outage(checkpoint, 60.0, -0.005, -0.02,
                                                            cv=False))
    assert discharged.test.discharge_ah == pytest.approx(0.405)
    assert discharged.step is not None and discharged.step.totals.discharge_wh == 0.02
    held = EngineState.from_checkpoint(account_outage(checkpoint, 60.0, 0.004, 0.0168, cv=True))
    assert held.cycle.cv_charge_ah == pytest.approx(0.004)
    off = EngineState.from_checkpoint(account_outage(checkpoint, 300.0, 0.0, 0.0, cv=False,
                                                     in_step=False))
    assert off.test_time_s == 1300.0 and off.step is not None and off.step.elapsed_s == 400.0
    assert off.test == engine.test and off.step.totals == engine.step.totals


def test_each_step_has_the_command_the_engine_applies_and_its_cutoff_is_seen() -> None:
    program = resolve(load_protocol_text(PROTOCOL, "cccv.yaml"))
    steps = list(program.iter_steps())
    charge = step_command(program, steps[0], 0)
    assert charge is not None
    command, cv = charge
    assert (command.mode, command.current_a, command.voltage_limit_v, cv) == (
        Mode.CURRENT, pytest.approx(0.3), 4.2, False)
    hold = step_command(program, steps[1], 0)
    assert hold is not None and hold[0].mode is Mode.VOLTAGE and hold[1]
    rest = step_command(program, steps[2], 0)
    assert rest is not None and rest[0].mode is Mode.REST
    assert step_of(program, steps[3].id) is steps[3]
    assert cutoff_passed(steps[0], state(Mode.CURRENT, 0.3, 4.2, voltage_v=4.2)) == "4.2 V"
    assert cutoff_passed(steps[0], state(Mode.CURRENT, 0.3, 4.2, voltage_v=4.19)) is None
    assert cutoff_passed(steps[1], state(Mode.VOLTAGE, 4.2, 0.6, current_a=0.02)) is not None
    assert cutoff_passed(steps[3], state(Mode.VOLTAGE, 3.0, 0.3, voltage_v=3.0,
                                         current_a=-0.1)) is not None

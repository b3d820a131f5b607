"""After a restart: what did the instrument do while no daemon was running?

A real potentiostat outlives the daemon: killed mid-step, the daemon leaves the instrument
sourcing the step's command, within the limits set in the instrument. On restart, a channel
whose job goes on is opened without a reset (``open_station(resume=...)``) and
:func:`reconcile` reads the potentiostat by queries only (:class:`~cellrig.drivers.ports.
SourceReader`) and compares it with the command of the checkpoint's step:

- **still sourcing that command**: the outage is a stretch of the same step. Its length is the
  time since the job last stored anything, in instrument seconds (the host's clock times the
  instrument's speed, as the driver's timebase bridges its own buffer restarts). The charge
  in it: for a current source that its voltage limit does not hold, the current times the
  gap, exactly; for a voltage source held at its current limit (a discharge above its bound),
  that limit times the gap; otherwise (a CV hold, or a source clamped by its limit) the
  trapezoid between the last stored current and the current read now, which bounds a
  current that changed in one direction. The energy is the charge times the mean of the two
  voltages. Both are added to the step's, the cycle's and the test's totals (CV charge
  too, in a CV phase), and the gap to the step time and the test time
  (:func:`account_outage`); the engine's first command then counts from the reading taken
  here (the job rig returns its time as the command's), so test time is continuous and the
  interval between this reading and the first command is integrated by the engine itself.
  A cut-off passed during the outage ends the step at its first reading.
- **off, or doing something else**: it is made safe (output off) and the job continues from
  the checkpoint, as before this reconciliation existed; what the instrument did is lost. The
  test time still moves on by the outage (the step time does not: the step did not run).

Potentiostats that cannot be read this way (the bench model, which does not move on without
the daemon) are made safe as before.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.drivers.ports import SourceReader, SourceState
from cellrig.protocols.clock import Clock
from cellrig.protocols.program import (
    CccvStep,
    CurrentStep,
    Direction,
    Operator,
    Program,
    Quantity,
    RestStep,
    Step,
    VoltageStep,
)
from cellrig.protocols.rig import Command, Mode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What recovery found on the instrument and what it did about it."""

    checkpoint: dict[str, Any] | None
    """the checkpoint, with the outage accounted when the instrument kept sourcing"""
    resume_at_s: float | None = None
    """the instrument time (driver's clock) up to which the outage is accounted: the
    engine's first command counts from it (None: the rig was made safe)"""
    data: dict[str, Any] = field(default_factory=dict)
    """for the ``job resume`` event"""


def step_of(program: Program, step_id: int) -> Step | None:
    """The program's step with ``step_id``."""
    return next((step for step in program.iter_steps() if step.id == step_id), None)


def step_command(program: Program, step: Step, phase: int) -> tuple[Command, bool] | None:
    """The source command the engine applies for ``step`` (in ``phase`` of a CC-CV), and
    whether its charge is CV charge; None for steps that are not one steady command."""
    voltage = program.limits.voltage_v
    current = program.limits.current_a

    def compliance(direction: Direction) -> float | None:
        if voltage is None:
            return None
        return voltage.high if direction is Direction.CHARGE else voltage.low

    if isinstance(step, CurrentStep):
        limit = (step.voltage_limit_v if step.voltage_limit_v is not None
                 else compliance(step.direction))
        return Command(Mode.CURRENT, current_a=step.current_a, voltage_limit_v=limit), False
    if isinstance(step, CccvStep):
        if phase == 0:
            return Command(Mode.CURRENT, current_a=step.current_a,
                           voltage_limit_v=compliance(step.direction)), False
        return Command(Mode.VOLTAGE, voltage_v=step.voltage_v,
                       current_limit_a=abs(step.current_a)), True
    if isinstance(step, VoltageStep):
        limit_a = (step.current_limit_a if step.current_limit_a is not None
                   else None if current is None else current.high)
        return Command(Mode.VOLTAGE, voltage_v=step.voltage_v, current_limit_a=limit_a), True
    if isinstance(step, RestStep):
        return Command(Mode.REST), False
    return None


def outage_amounts(state: SourceState, last_current_a: float | None,
                   last_voltage_v: float | None, gap_s: float) -> tuple[float, float]:
    """Signed charge (Ah) and energy (Wh) passed in ``gap_s`` under ``state`` (see the
    module docstring for which estimate applies when)."""
    now_a = state.current_a if math.isfinite(state.current_a) else 0.0
    before_a = now_a if last_current_a is None else last_current_a
    if state.mode is Mode.CURRENT and not state.in_compliance:
        before_a = now_a = state.level
    elif state.mode is Mode.VOLTAGE and state.in_compliance:
        sign = math.copysign(1.0, now_a if now_a != 0 else before_a)
        before_a = now_a = sign * state.limit
    now_v = state.voltage_v if math.isfinite(state.voltage_v) else math.nan
    before_v = now_v if last_voltage_v is None else last_voltage_v
    charge_ah = 0.5 * (before_a + now_a) * gap_s / 3600.0
    mean_v = 0.5 * (before_v + now_v)
    energy_wh = charge_ah * mean_v if math.isfinite(mean_v) else 0.0
    return charge_ah, energy_wh


def account_outage(checkpoint: dict[str, Any], gap_s: float, charge_ah: float,
                   energy_wh: float, cv: bool, *, in_step: bool = True) -> dict[str, Any]:
    """``checkpoint`` moved on by an outage of ``gap_s`` in its step that passed
    ``charge_ah`` and ``energy_wh`` (signed: positive charges the cell); with ``in_step``
    False (the instrument did not source the step meanwhile) only the test time moves."""
    state = copy.deepcopy(checkpoint)
    step = state["step"]
    state["test_time_s"] = float(state["test_time_s"]) + gap_s
    if not in_step:
        return state
    step["elapsed_s"] = float(step["elapsed_s"]) + gap_s
    key_ah, key_wh = ("charge_ah", "charge_wh") if charge_ah >= 0 else (
        "discharge_ah", "discharge_wh")
    for totals in (step["totals"], state["cycle"]["totals"], state["test"]):
        totals[key_ah] = float(totals[key_ah]) + abs(charge_ah)
        totals[key_wh] = float(totals[key_wh]) + abs(energy_wh)
    if cv and charge_ah > 0:
        state["cycle"]["cv_charge_ah"] = float(state["cycle"]["cv_charge_ah"]) + charge_ah
    return state


def cutoff_passed(step: Step, state: SourceState) -> str | None:
    """The step's voltage or current condition that the reading ``state`` already meets."""
    for condition in step.until:
        if condition.quantity is Quantity.VOLTAGE:
            value = state.voltage_v
        elif condition.quantity is Quantity.CURRENT:
            value = abs(state.current_a)
        else:
            continue
        if not math.isfinite(value):
            continue
        if (value >= condition.value if condition.operator is Operator.AT_LEAST
                else value <= condition.value):
            return condition.text or condition.quantity.value
    return None


async def reconcile(checkpoint: dict[str, Any] | None, program: Program, paused: bool,
                    last_unix_s: float | None, rig: ChannelRig, clock: Clock,
                    timeout_s: float) -> Reconciled:
    """Read the channel's potentiostat and account the outage, or make it safe (see the
    module docstring). Never raises for an instrument problem: the rig is then made safe
    (or the worker's first command will tell)."""
    port = rig.potentiostat
    step_state: dict[str, Any] = (checkpoint or {}).get("step") or {}
    step = step_of(program, int(step_state["step_id"])) if step_state else None
    found = None if step is None else step_command(program, step, int(step_state["phase"]))
    if (paused or found is None or last_unix_s is None or checkpoint is None
            or checkpoint.get("ended") is not None or not isinstance(port, SourceReader)):
        await make_safe(rig, timeout_s)
        return Reconciled(checkpoint)
    assert step is not None
    command, cv = found
    try:
        async with asyncio.timeout(timeout_s):
            state = await port.source_state()
    except Exception as exc:  # reported, then the rig is made safe
        log.error("%s: could not read the instrument's state: %s", rig.name, exc)
        await make_safe(rig, timeout_s)
        return Reconciled(checkpoint, data={"instrument": f"not read: {exc}"})
    now_unix_s = clock.unix_now()
    gap_s = max(now_unix_s - last_unix_s, 0.0) * state.time_scale
    if not port.sources(state, command):
        what = "off" if not state.output_on else (
            f"sourcing {state.mode.value} {state.level:.7g} (limit {state.limit:.7g})")
        await make_safe(rig, timeout_s)
        # the step did not run meanwhile, but the test's clock (the instrument's) did
        return Reconciled(account_outage(checkpoint, gap_s, 0.0, 0.0, False, in_step=False),
                          data={"instrument": what, "outage_s": gap_s})
    charge_ah, energy_wh = outage_amounts(state, step_state.get("last_current_a"),
                                          step_state.get("last_voltage_v"), gap_s)
    accounted = account_outage(checkpoint, gap_s, charge_ah, energy_wh, cv)
    passed = cutoff_passed(step, state)
    data: dict[str, Any] = {
        "instrument": "sourcing the step", "outage_s": gap_s, "outage_charge_ah": charge_ah,
        "outage_energy_wh": energy_wh, "in_compliance": state.in_compliance,
        "instrument_since_last_reading_s": state.since_last_reading_s,
        "cutoff_passed": passed}
    log.info("%s: the instrument kept sourcing step %d: %.6g s and %.6g Ah accounted%s",
             rig.name, step.id, gap_s, charge_ah,
             "" if passed is None else f"; its cut-off ({passed}) was passed meanwhile")
    return Reconciled(accounted, state.time_s, data)


async def make_safe(rig: ChannelRig, timeout_s: float) -> None:
    """Output off, within ``timeout_s``; a failure is logged (the supervisor's watchdog and the
    worker's first command go on from there)."""
    try:
        async with asyncio.timeout(timeout_s):
            await rig.safe()  # continue from a known state: output off
    except Exception as exc:  # the worker's first command will tell
        log.error("%s: could not make the rig safe before resuming: %s", rig.name, exc)

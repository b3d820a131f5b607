"""Why a resolved program can never run on a channel: what submission refuses.

Beside the instruments' own refusals (``JobChannel.refusals``: ranges, modes, EIS), a job is
refused when it could only end in a trip or a fault:

- its limits leave no window inside the channel's hard limits;
- a step's current, or a voltage it sources or stops at, lies outside the hard limits (the
  supervisor would trip the channel before the step could end);
- a ``set`` step asks for a temperature outside the hard limits or outside the range of the
  chamber (a shared chamber can never be held there, however long the job waits), a pressure
  outside the hard limits, a temperature on a channel without a chamber, or a pressure on a
  channel without a jig that can set one.
"""

from __future__ import annotations

import math

from cellrig.daemon.environment import SharedChamber, StackJig
from cellrig.daemon.supervisor_limits import LimitsConflict, effective_limits
from cellrig.drivers.chamber_common import temperatures_outside
from cellrig.drivers.palmsens_ranges import program_refusals
from cellrig.protocols.program import Limit, Limits, Program, SetStep
from cellrig.protocols.rig import Capabilities, JigKind

HARD_LIMITS = "the channel's hard limits"


def _bounds(limit: Limit | None) -> tuple[float, float]:
    if limit is None:
        return -math.inf, math.inf
    low = -math.inf if limit.low is None else limit.low
    high = math.inf if limit.high is None else limit.high
    return low, high


def hard_limit_refusals(program: Program, hard: Limits) -> list[str]:
    """Where the program cannot stay inside the channel's hard limits."""
    problems: list[str] = []
    try:
        effective_limits([("the job's limits", program.limits), (HARD_LIMITS, hard)])
    except LimitsConflict as exc:
        problems.append(str(exc))
    low_v, high_v = _bounds(hard.voltage_v)
    _, max_current_a = _bounds(hard.current_a)
    ranges = Capabilities(max_current_a=max_current_a, min_voltage_v=low_v,
                          max_voltage_v=high_v, eis=True)
    problems.extend(program_refusals(program, ranges, HARD_LIMITS))
    low_c, high_c = _bounds(hard.temperature_c)
    low_pa, high_pa = _bounds(hard.pressure_pa)
    for step in program.iter_steps():
        if not isinstance(step, SetStep):
            continue
        where = f"step {step.id} ({step.label})"
        if step.temperature_c is not None and not low_c <= step.temperature_c <= high_c:
            problems.append(f"{where}: {step.temperature_c:g} °C is outside {HARD_LIMITS} "
                            f"({low_c:g} to {high_c:g} °C)")
        if step.pressure_pa is not None and not low_pa <= step.pressure_pa <= high_pa:
            problems.append(f"{where}: {step.pressure_pa / 1e6:g} MPa is outside "
                            f"{HARD_LIMITS} ({low_pa / 1e6:g} to {high_pa / 1e6:g} MPa)")
    return problems


def environment_refusals(program: Program, channel: str, chamber: SharedChamber | None,
                         jig: StackJig | None) -> list[str]:
    """Set steps the channel's chamber and jig can never take."""
    problems: list[str] = []
    sets = [step for step in program.iter_steps() if isinstance(step, SetStep)]
    for step in sets:
        where = f"step {step.id} ({step.label})"
        if step.temperature_c is not None and chamber is None:
            problems.append(f"{where}: channel {channel} has no chamber to set "
                            f"{step.temperature_c:g} °C")
        if step.pressure_pa is not None and (jig is None or jig.kind is not JigKind.CONTROLLED):
            what = "no jig" if jig is None else f"a jig ({jig.name}) that only measures"
            problems.append(f"{where}: channel {channel} has {what}, so it cannot set "
                            f"{step.pressure_pa / 1e6:g} MPa")
    if chamber is not None:
        low_c, high_c = chamber.port.temperature_range_c
        for step in temperatures_outside(program, (low_c, high_c)):
            problems.append(
                f"step {step.id} ({step.label}): chamber {chamber.name} accepts {low_c:g} to "
                f"{high_c:g} °C, so it can never be held at {step.temperature_c:g} °C")
    return problems

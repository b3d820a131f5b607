"""Why a program can never run on a channel: what submission refuses before anything moves.

Four sources, each a sentence per problem naming the step:

- the channel's instruments: source ranges, modes (constant power, constant resistance), EIS
  and its frequency range, the fastest sampling
  (:func:`~cellrig.drivers.palmsens_ranges.program_refusals` over the rig's capabilities);
- the chamber: a ``set`` temperature outside what it accepts, or no chamber at all
  (:func:`~cellrig.drivers.chamber_common.temperatures_outside`);
- the jig: a ``set`` pressure with no jig, on a bolted jig, or above the jig's maximum;
- the channel's hard limits: a current, voltage, temperature or pressure the program asks for
  outside them, and program limits that leave no window inside them.

A channel whose chamber is busy at another temperature is not refused here: that is a
question of when, not whether (the job manager decides).
"""

from __future__ import annotations

from cellrig.daemon.environment import SharedChamber, StackJig
from cellrig.daemon.supervisor_limits import LimitsConflict, effective_limits
from cellrig.drivers.chamber_common import temperatures_outside
from cellrig.drivers.palmsens_ranges import program_refusals
from cellrig.protocols.program import (
    CccvStep,
    CurrentStep,
    Limit,
    Limits,
    Program,
    PulseStep,
    SetStep,
    Step,
    VoltageStep,
)
from cellrig.protocols.quantities import format_si
from cellrig.protocols.rig import Capabilities, JigKind


def _where(step: Step) -> str:
    return f"step {step.id} ({step.label})"


def chamber_refusals(program: Program, chamber: SharedChamber | None) -> list[str]:
    """``set`` temperatures the channel's chamber cannot take (or no chamber)."""
    sets = [step for step in program.iter_steps()
            if isinstance(step, SetStep) and step.temperature_c is not None]
    if chamber is None:
        return [f"{_where(step)}: the channel has no chamber to set "
                f"{step.temperature_c:g} °C" for step in sets]
    low_c, high_c = chamber.port.temperature_range_c
    return [f"{_where(step)}: {step.temperature_c:g} °C is outside the {low_c:g} to "
            f"{high_c:g} °C of chamber {chamber.name}"
            for step in temperatures_outside(program, (low_c, high_c))]


def jig_refusals(program: Program, jig: StackJig | None) -> list[str]:
    """``set`` pressures the channel's jig cannot take."""
    problems = []
    for step in program.iter_steps():
        if not isinstance(step, SetStep) or step.pressure_pa is None:
            continue
        pressure = format_si(step.pressure_pa, "Pa")
        if jig is None:
            problems.append(f"{_where(step)}: the channel has no jig to set {pressure}")
        elif jig.kind is not JigKind.CONTROLLED:
            problems.append(f"{_where(step)}: jig {jig.name} is bolted; it measures the stack "
                            f"pressure but cannot set {pressure}")
        elif not 0.0 <= step.pressure_pa <= jig.port.max_pressure_pa:
            problems.append(f"{_where(step)}: {pressure} is above the "
                            f"{format_si(jig.port.max_pressure_pa, 'Pa')} jig {jig.name} may "
                            "apply")
    return problems


def _outside(value: float, limit: Limit | None) -> bool:
    if limit is None:
        return False
    return (limit.low is not None and value < limit.low) or (
        limit.high is not None and value > limit.high)


def _window(limit: Limit, unit: str) -> str:
    low = "" if limit.low is None else format_si(limit.low, unit)
    high = "" if limit.high is None else format_si(limit.high, unit)
    if low and high:
        return f"{low} to {high}"
    return f"at most {high}" if high else f"at least {low}"


def hard_limit_refusals(program: Program, hard: Limits) -> list[str]:
    """What the program asks for outside the channel's hard limits."""
    problems: list[str] = []
    try:
        effective_limits([("job limit", program.limits), ("channel hard limit", hard)])
    except LimitsConflict as conflict:
        problems.append(f"the protocol's limits leave nothing inside the channel's: {conflict}")
    for step in program.iter_steps():
        where = _where(step)
        checks: list[tuple[float, Limit | None, str, str]] = []
        if isinstance(step, CurrentStep | CccvStep | PulseStep):
            checks.append((abs(step.current_a), hard.current_a, "A", "current"))
        if isinstance(step, VoltageStep | CccvStep):
            checks.append((step.voltage_v, hard.voltage_v, "V", "voltage"))
        if isinstance(step, SetStep):
            if step.temperature_c is not None:
                checks.append((step.temperature_c, hard.temperature_c, "degC", "temperature"))
            if step.pressure_pa is not None:
                checks.append((step.pressure_pa, hard.pressure_pa, "Pa", "pressure"))
        for value, limit, unit, what in checks:
            if limit is not None and _outside(value, limit):
                shown = f"{value:g} °C" if unit == "degC" else format_si(value, unit)
                window = (f"{limit.low:g} to {limit.high:g} °C" if unit == "degC"
                          and limit.low is not None and limit.high is not None
                          else _window(limit, unit))
                problems.append(f"{where}: {what} {shown} is outside the channel's hard "
                                f"limit ({window})")
    return problems


def channel_refusals(program: Program, capabilities: Capabilities, instruments: str,
                     chamber: SharedChamber | None, jig: StackJig | None,
                     hard: Limits) -> list[str]:
    """Every reason ``program`` can never run on the channel ([] when it can)."""
    return [*program_refusals(program, capabilities, instruments),
            *chamber_refusals(program, chamber), *jig_refusals(program, jig),
            *hard_limit_refusals(program, hard)]

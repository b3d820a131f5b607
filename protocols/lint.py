"""Warnings for what is legal but probably wrong in a resolved program."""

from __future__ import annotations

from .builder import Built
from .context import Context
from .program import (
    CccvStep,
    CurrentStep,
    CycleMetric,
    Direction,
    Limit,
    Node,
    PowerStep,
    Program,
    Quantity,
    Repeat,
    Sequence,
    SetStep,
    Step,
    VoltageStep,
)
from .quantities import format_si

VOLTAGE_MATCH_V = 1e-3


def _steps_in(nodes: tuple[Node, ...]) -> list[Step]:
    found: list[Step] = []
    for node in nodes:
        if isinstance(node, Repeat | Sequence):
            found.extend(_steps_in(node.steps))
        else:
            found.append(node)
    return found


def _voltage_cutoff(step: Step) -> float | None:
    return next((c.value for c in step.until if c.quantity is Quantity.VOLTAGE), None)


def _outside(limit: Limit | None, value: float) -> bool:
    if limit is None:
        return False
    return (limit.low is not None and value < limit.low) or (
        limit.high is not None and value > limit.high)


def _window(limit: Limit, unit: str) -> str:
    low = "-" if limit.low is None else format_si(limit.low, unit)
    high = "-" if limit.high is None else format_si(limit.high, unit)
    return f"[{low}, {high}]"


class _Linter:
    def __init__(self, ctx: Context, program: Program, built: Built) -> None:
        self.ctx = ctx
        self.program = program
        self.built = built

    def warn(self, step: Step, message: str, example: str | None = None) -> None:
        loc = self.built.locations.get(step.id)
        if loc is not None:
            self.ctx.warn(loc, message, example)

    def walk(self, nodes: tuple[Node, ...]) -> None:
        previous: Node | None = None
        for node in nodes:
            if isinstance(node, Repeat):
                self.loop(node)
                self.walk(node.steps)
            elif isinstance(node, Sequence):
                self.walk(node.steps)
            else:
                self.step(node, previous)
            previous = node

    def loop(self, loop: Repeat) -> None:
        if loop.count is not None:
            return
        needs_discharge = any(
            c.metric in (CycleMetric.DISCHARGE_CAPACITY, CycleMetric.DISCHARGE_ENERGY,
                         CycleMetric.COULOMBIC_EFFICIENCY, CycleMetric.ENERGY_EFFICIENCY)
            for c in loop.until
        )
        has_discharge = any(s.direction is Direction.DISCHARGE for s in _steps_in(loop.steps))
        if loop.until and needs_discharge and not has_discharge:
            loc = self.built.loop_locations.get(id(loop))
            if loc is not None:
                self.ctx.warn(loc, "this loop ends on a discharge figure but never discharges, "
                              "and has no count: it can never end",
                              example="- repeat: 100\n  until: discharge capacity < 80 % of first")

    def step(self, step: Step, previous: Node | None) -> None:
        kinds = {c.quantity for c in step.until}
        if isinstance(step, VoltageStep | CccvStep) and not kinds & {Quantity.CURRENT,
                                                                    Quantity.TIME}:
            self.warn(step, "this constant-voltage step has neither a current nor a time "
                      "cut-off", "- hold: 4.25 V\n  until: 0.05C")
        if (isinstance(step, CurrentStep | PowerStep) and step.direction is Direction.CHARGE
                and not kinds & {Quantity.VOLTAGE, Quantity.CHARGE}):
            self.warn(step, "this charge step has neither a voltage nor a charge cut-off: "
                      "only time ends it", "- Charge at 0.1C until 4.25 V")
        if isinstance(step, CccvStep):
            cutoff = next((c.value for c in step.until if c.quantity is Quantity.CURRENT), None)
            if cutoff is not None and cutoff >= abs(step.current_a):
                self.warn(step, f"the cut-off ({format_si(cutoff, 'A')}) is not below the CC "
                          f"current ({format_si(abs(step.current_a), 'A')}): the CV phase ends "
                          "at once", "- cccv: {current: 0.1C, voltage: 4.25 V, cutoff: 0.05C}")
        if isinstance(step, VoltageStep) and isinstance(previous, CurrentStep):
            cutoff = _voltage_cutoff(previous)
            if cutoff is not None and abs(cutoff - step.voltage_v) > VOLTAGE_MATCH_V:
                self.warn(step, f"this hold is at {format_si(step.voltage_v, 'V')} but the "
                          f"step before it ends at {format_si(cutoff, 'V')}",
                          "- Charge at 0.1C until 4.25 V\n- Hold at 4.25 V until 0.05C")
        self.limits(step)

    def limits(self, step: Step) -> None:
        limits = self.program.limits
        current = getattr(step, "current_a", None)
        if (current is not None and limits.current_a is not None
                and limits.current_a.high is not None and abs(current) > limits.current_a.high):
            self.warn(step, f"this step's current ({format_si(abs(current), 'A')}) exceeds the "
                      f"current limit ({format_si(limits.current_a.high, 'A')})")
        voltages = [c.value for c in step.until if c.quantity is Quantity.VOLTAGE]
        if isinstance(step, VoltageStep | CccvStep):
            voltages.append(step.voltage_v)
        for volts in voltages:
            if limits.voltage_v is not None and _outside(limits.voltage_v, volts):
                self.warn(step, f"{format_si(volts, 'V')} lies outside the voltage limits "
                          f"{_window(limits.voltage_v, 'V')}")
        if isinstance(step, SetStep):
            if (step.pressure_pa is not None and limits.pressure_pa is not None
                    and _outside(limits.pressure_pa, step.pressure_pa)):
                self.warn(step, f"the set pressure {format_si(step.pressure_pa, 'Pa')} lies "
                          f"outside the pressure limits {_window(limits.pressure_pa, 'Pa')}")
            if (step.temperature_c is not None and limits.temperature_c is not None
                    and _outside(limits.temperature_c, step.temperature_c)):
                self.warn(step, f"the set temperature {step.temperature_c:g} degC lies outside "
                          f"the temperature limits {_window(limits.temperature_c, 'degC')}")


def lint(ctx: Context, program: Program, built: Built) -> None:
    """Add every warning about ``program`` to ``ctx``."""
    _Linter(ctx, program, built).walk(program.steps)

"""A resolved program as text: the step tree with absolute currents and cut-offs."""

from __future__ import annotations

from .program import (
    CONDITION_UNITS,
    Condition,
    CurrentStep,
    Limit,
    Node,
    Program,
    Quantity,
    Recording,
    Repeat,
    Sequence,
    Step,
)
from .quantities import format_duration, format_si

_SYMBOL = {
    Quantity.VOLTAGE: "V", Quantity.CURRENT: "|I|", Quantity.TIME: "t",
    Quantity.CHARGE: "|Q|", Quantity.ENERGY: "|E|", Quantity.VOLTAGE_RATE: "|dV/dt|",
    Quantity.TEMPERATURE: "T", Quantity.PRESSURE: "p",
}


def format_value(quantity: Quantity, value: float) -> str:
    """A condition value in its unit with a readable prefix."""
    if quantity is Quantity.TIME:
        return format_duration(value)
    if quantity is Quantity.TEMPERATURE:
        return f"{value:g} degC"
    return format_si(value, CONDITION_UNITS[quantity])


def format_condition(condition: Condition) -> str:
    """``V >= 4.25 V`` style, with where it leads if it jumps."""
    text = (f"{_SYMBOL[condition.quantity]} {condition.operator.value} "
            f"{format_value(condition.quantity, condition.value)}")
    if condition.then is not None:
        text += f" -> {condition.then}"
    return text


def _limit(name: str, limit: Limit | None, unit: str) -> str | None:
    if limit is None:
        return None

    def show(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:g} {unit}" if unit == "degC" else format_si(value, unit)

    if limit.low is None:
        text = f"{name} <= {show(limit.high)}"
    else:
        text = f"{name} [{show(limit.low)}, {show(limit.high)}]"
    if limit.warn_low is not None or limit.warn_high is not None:
        text += f" (warn {show(limit.warn_low)}, {show(limit.warn_high)})"
    if limit.delay_s:
        text += f" after {format_duration(limit.delay_s)}"
    return text


def format_recording(record: Recording) -> str:
    """The recording rule in words."""
    parts = []
    if record.every_s is not None:
        parts.append(f"every {format_duration(record.every_s)}")
    if record.voltage_change_v is not None:
        parts.append(f"dV {format_si(record.voltage_change_v, 'V')}")
    if record.current_change_a is not None:
        parts.append(f"dI {format_si(record.current_change_a, 'A')}")
    return ", ".join(parts) or "step ends only"


def _step_lines(step: Step, indent: str) -> list[str]:
    tag = f"  [{step.tag}]" if step.tag else ""
    lines = [f"{step.id:>4}  {indent}{step.label}{tag}"]
    detail = [format_condition(c) for c in step.until]
    if isinstance(step, CurrentStep):
        detail.insert(0, f"I = {format_si(step.current_a, 'A')}")
    if detail:
        lines.append(f"      {indent}  " + "; ".join(detail))
    if step.record is not None:
        lines.append(f"      {indent}  record {format_recording(step.record)}")
    return lines


def _node_lines(node: Node, depth: int) -> list[str]:
    indent = "  " * depth
    if isinstance(node, Repeat | Sequence):
        tag = f"  [{node.tag}]" if node.tag else ""
        lines = [f"      {indent}{node.label}{tag}"]
        for child in node.steps:
            lines.extend(_node_lines(child, depth + 1))
        return lines
    return _step_lines(node, indent)


def render_program(program: Program) -> str:
    """The whole program: header, cell, limits, recording and the step tree."""
    cell = program.cell
    cell_parts = []
    if cell.id:
        cell_parts.append(cell.id)
    if cell.capacity_ah is not None:
        cell_parts.append(f"capacity {format_si(cell.capacity_ah, 'Ah')}")
    if cell.area_m2 is not None:
        cell_parts.append(f"area {cell.area_m2 * 1e4:.4g} cm^2")
    if cell.mass_kg is not None:
        cell_parts.append(f"mass {format_si(cell.mass_kg * 1000, 'g')}")
    if cell.reference_offset_v:
        cell_parts.append(f"reference offset {format_si(cell.reference_offset_v, 'V')}")
    limits = program.limits
    limit_parts = [
        text for text in (
            _limit("V", limits.voltage_v, "V"), _limit("|I|", limits.current_a, "A"),
            _limit("T", limits.temperature_c, "degC"), _limit("p", limits.pressure_pa, "Pa"),
            _limit("|Q| per step", limits.charge_per_step_ah, "Ah"),
        ) if text is not None
    ]
    lines = [
        f"{program.name}  (program sha256 {program.sha256[:12]})",
        f"  cell:    {', '.join(cell_parts) or 'not given'}",
        f"  limits:  {'; '.join(limit_parts) or 'none'}",
        f"  record:  {format_recording(program.record)}",
    ]
    if program.parameters:
        lines.append("  params:  " + ", ".join(f"{k}={v}" for k, v in program.parameters.items()))
    lines.append("  steps:")
    for node in program.steps:
        lines.extend(_node_lines(node, 0))
    return "\n".join(lines)

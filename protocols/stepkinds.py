"""One builder per step kind: what each mapping step accepts and what it becomes."""

from __future__ import annotations

from dataclasses import dataclass

from .builder import COMMON_KEYS, Builder, StepKindBuilder, step_direction
from .program import (
    CccvStep,
    Condition,
    CurrentStep,
    Direction,
    EisMode,
    EisStep,
    Node,
    Operator,
    PowerStep,
    PulseStep,
    Quantity,
    Recording,
    ResistanceStep,
    RestStep,
    SetStep,
    StopStep,
    VoltageStep,
)
from .quantities import CurrentValue, Kind, format_duration, format_si
from .strings import (
    EXPECTED_STRING,
    STRING_EXAMPLES,
    Control,
    StepStringError,
    Verb,
    current_display,
    is_step_string,
    parse_step_string,
)
from .until import absolute_current, read_until, resolve_condition
from .yamlsource import YMap, YNode, YScalar

EXAMPLES = {
    "charge": "- charge: 0.1C\n  until: 4.25 V",
    "discharge": "- discharge: {current: 0.2C}\n  until: {voltage: 2.5 V, time: 10 h}",
    "hold": "- hold: 4.25 V\n  until: 0.05C",
    "cccv": "- cccv: {current: 0.1C, voltage: 4.25 V, cutoff: 0.05C}",
    "rest": "- rest: 10 min",
    "pulse": "- pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 20}\n  until: 2.5 V",
    "eis": "- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}",
    "set": "- set: {temperature: 60 degC, pressure: 2 MPa}\n"
           "  wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 30 min}",
    "stop": "- stop: open the cell for post-mortem",
    "step": "- step: Charge at 0.1C until 4.25 V\n  tag: first-charge",
}


@dataclass
class Common:
    """What every step kind reads the same way."""

    tag: str | None
    record: Recording | None
    until: list[Condition]
    label: str | None
    broken: bool = False


def _common(b: Builder, m: YMap, kind: str, direction: Direction,
            extra: tuple[str, ...] = ()) -> Common:
    b.ctx.check_keys(m, (kind, *extra, *COMMON_KEYS), f"a {kind} step", EXAMPLES[kind])
    conditions: list[Condition] = []
    errors_before = b.ctx.error_count
    until = m.get("until")
    if until is not None:
        found, targets = read_until(b.ctx, until, direction, b.scale)
        conditions.extend(found)
        b.targets.extend(targets)
    duration = m.get("for")
    if duration is not None:
        from .conditions import parse_duration
        from .quantities import QuantityError

        scalar = b.ctx.scalar(duration, "for", "for: 2 h")
        if scalar is not None:
            try:
                seconds = parse_duration(scalar.value)
                if seconds <= 0:
                    b.ctx.report(scalar, "for: a duration must be positive", example="for: 2 h")
                else:
                    conditions.append(Condition(Quantity.TIME, Operator.AT_LEAST, seconds, None,
                                                f"{scalar.text}"))
            except QuantityError as exc:
                b.ctx.report(scalar, f"for: {exc.message}", expected=exc.expected,
                             example="for: 2 h")
    broken = b.ctx.error_count > errors_before
    name = m.get("name")
    label = b.ctx.text(name, "name", "name: formation charge") if name is not None else None
    return Common(b.tag(m), b.record(m.get("record")), conditions, label, broken)


def _never_ends(b: Builder, at: YNode, kind: str, common: Common) -> None:
    if common.broken:
        return  # its 'until' or 'for' is wrong, and that is reported already
    b.ctx.report(at, f"this {kind} step can never end: give it 'until' or 'for'",
                 expected="a condition or a duration", example=EXAMPLES[kind])


def _describe(conditions: list[Condition]) -> str:
    if not conditions:
        return ""
    return " until " + " or ".join(c.text for c in conditions)


def _current_value(b: Builder, node: YNode, what: str) -> tuple[CurrentValue, float] | None:
    current = b.ctx.current(node, what)
    if current is None:
        return None
    amperes = absolute_current(b.ctx, current, b.scale, node)
    if amperes is None:
        return None
    if amperes <= 0:
        b.ctx.report(node, f"{what} must be positive: the step's verb gives the direction",
                     example="- discharge: 0.5C\n  until: 2.5 V")
        return None
    return current, amperes


def build_string(b: Builder, m: YMap, kind: str) -> Node | None:
    """A step string, alone or under ``step:`` with common keys."""
    node = b.ctx.substitute(m.get("step") or m)
    if b.ctx.unresolved(node):
        return None
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        b.ctx.report(node, "a step must be a step text or a mapping",
                     expected=EXPECTED_STRING, example=EXAMPLES["step"])
        return None
    if not is_step_string(node.text):
        from .builder import FLOW_KINDS, STEP_KINDS
        from .suggest import did_you_mean

        first = node.text.strip().split(" ", 1)[0].rstrip(":")
        hint = did_you_mean(first, ["Charge", "Discharge", "Hold", "Rest",
                                    *STEP_KINDS, *FLOW_KINDS])
        b.ctx.report(node, f"{node.text.strip()!r} is not a step{hint}",
                     expected=EXPECTED_STRING, example="\n".join(STRING_EXAMPLES))
        return None
    try:
        parsed = parse_step_string(node.text)
    except StepStringError as exc:
        b.ctx.report(b.ctx.location_in(node, exc.offset), exc.message, expected=exc.expected,
                     example=exc.example)
        return None
    sign = {Verb.CHARGE: 1.0, Verb.DISCHARGE: -1.0}.get(parsed.verb, 0.0)
    direction = {Verb.CHARGE: Direction.CHARGE, Verb.DISCHARGE: Direction.DISCHARGE}.get(
        parsed.verb, Direction.NONE)
    common = _common(b, m, "step", direction) if m.get("step") is not None else Common(
        None, None, [], None)
    conditions = []
    for raw in parsed.conditions:
        condition = resolve_condition(b.ctx, raw, direction, b.scale, node)
        if condition is not None:
            conditions.append(condition)
    if parsed.duration_s is not None:
        conditions.insert(0, Condition(Quantity.TIME, Operator.AT_LEAST, parsed.duration_s,
                                       None, format_duration(parsed.duration_s)))
    conditions.extend(common.until)
    record = common.record
    if parsed.period_s is not None:
        record = Recording(every_s=parsed.period_s)
    step_id = b.allocate_id(node)
    base = {"id": step_id, "label": common.label or parsed.text, "direction": direction,
                "tag": common.tag, "until": tuple(conditions), "record": record}
    if parsed.control is Control.REST:
        return RestStep(**base)  # type: ignore[arg-type]
    if parsed.control is Control.VOLTAGE:
        assert parsed.setpoint is not None
        return VoltageStep(voltage_v=parsed.setpoint, **base)  # type: ignore[arg-type]
    if parsed.control is Control.POWER:
        assert parsed.setpoint is not None
        return PowerStep(power_w=sign * parsed.setpoint, **base)  # type: ignore[arg-type]
    if parsed.control is Control.RESISTANCE:
        assert parsed.setpoint is not None
        if parsed.verb is not Verb.DISCHARGE:
            b.ctx.report(node, "a resistance can only discharge the cell",
                         example="Discharge at 10 Ohm for 1 h")
            return None
        return ResistanceStep(resistance_ohm=parsed.setpoint, **base)  # type: ignore[arg-type]
    assert parsed.current is not None
    amperes = absolute_current(b.ctx, parsed.current, b.scale, node)
    if amperes is None:
        return None
    limit = next((c.value for c in conditions if c.quantity is Quantity.VOLTAGE), None)
    label = common.label or parsed.text
    if common.label is None and parsed.current.unit.value != "A":
        label = f"{parsed.text} [{format_si(amperes, 'A')}]"
    base["label"] = label
    return CurrentStep(current_a=sign * amperes, voltage_limit_v=limit, **base)  # type: ignore[arg-type]


def build_current(b: Builder, m: YMap, kind: str) -> Node | None:
    """``charge`` / ``discharge``: constant current (or power, or load resistance)."""
    sign = 1.0 if kind == "charge" else -1.0
    direction = Direction.CHARGE if kind == "charge" else Direction.DISCHARGE
    common = _common(b, m, kind, direction)
    value = b.ctx.substitute(m.get(kind) or m)
    control = "current"
    if isinstance(value, YMap):
        b.ctx.check_keys(value, ("current", "power", "resistance"), kind, EXAMPLES[kind])
        present = [k for k in ("current", "power", "resistance") if k in value]
        if len(present) != 1:
            b.ctx.report(value, f"{kind} needs exactly one of current, power or resistance",
                         example=EXAMPLES[kind])
            return None
        control = present[0]
        inner = value.get(control)
        assert inner is not None
        value = inner
    elif isinstance(value, YScalar):
        from .quantities import classify

        classified = classify(value.value)
        control = {Kind.POWER: "power", Kind.RESISTANCE: "resistance"}.get(
            classified, "current") if classified else "current"
    if not common.until:
        _never_ends(b, m, kind, common)
        return None
    step_id = b.allocate_id(m)
    base = {"id": step_id, "direction": direction, "tag": common.tag, "until": tuple(common.until),
                "record": common.record}
    verb = kind.capitalize()
    if control == "power":
        watts = b.ctx.quantity(value, Kind.POWER, f"{kind} power")
        if watts is None:
            return None
        if watts <= 0:
            b.ctx.report(value, f"{kind} power must be positive: the verb gives the direction",
                         example="- discharge: {power: 2 W}\n  until: 2.5 V")
            return None
        label = common.label or f"{verb} at {format_si(watts, 'W')}{_describe(common.until)}"
        return PowerStep(power_w=sign * abs(watts), label=label, **base)  # type: ignore[arg-type]
    if control == "resistance":
        ohms = b.ctx.quantity(value, Kind.RESISTANCE, f"{kind} resistance")
        if ohms is None:
            return None
        if ohms <= 0:
            b.ctx.report(value, "a load resistance must be positive",
                         example="- discharge: {resistance: 10 Ohm}\n  for: 1 h")
            return None
        if kind == "charge":
            b.ctx.report(value, "a resistance can only discharge the cell",
                         example="- discharge: {resistance: 10 Ohm}\n  for: 1 h")
            return None
        label = common.label or f"{verb} at {format_si(ohms, 'Ohm')}{_describe(common.until)}"
        return ResistanceStep(resistance_ohm=ohms, label=label, **base)  # type: ignore[arg-type]
    pair = _current_value(b, value, f"{kind} current")
    if pair is None:
        return None
    written, amperes = pair
    limit = next((c.value for c in common.until if c.quantity is Quantity.VOLTAGE), None)
    absolute = "" if written.unit.value == "A" else f" [{format_si(amperes, 'A')}]"
    label = common.label or (
        f"{verb} at {current_display(written)}{absolute}{_describe(common.until)}"
    )
    return CurrentStep(current_a=sign * amperes, voltage_limit_v=limit, label=label,
                       **base)  # type: ignore[arg-type]


def build_hold(b: Builder, m: YMap, kind: str) -> Node | None:
    """``hold``: constant voltage, with an optional current limit."""
    common = _common(b, m, kind, Direction.NONE)
    value = b.ctx.substitute(m.get(kind) or m)
    current_limit: float | None = None
    if isinstance(value, YMap):
        b.ctx.check_keys(value, ("voltage", "current_limit"), "hold", EXAMPLES["hold"])
        limit_node = value.get("current_limit")
        if limit_node is not None:
            pair = _current_value(b, limit_node, "current_limit")
            current_limit = None if pair is None else pair[1]
        voltage_node = value.get("voltage")
        if voltage_node is None:
            b.ctx.report(value, "hold needs a voltage", example=EXAMPLES["hold"])
            return None
        value = voltage_node
    volts = b.ctx.quantity(value, Kind.VOLTAGE, "hold voltage")
    if not common.until:
        _never_ends(b, m, kind, common)
        return None
    if volts is None:
        return None
    label = common.label or f"Hold at {format_si(volts, 'V')}{_describe(common.until)}"
    return VoltageStep(id=b.allocate_id(m), label=label, tag=common.tag,
                       until=tuple(common.until), record=common.record, voltage_v=volts,
                       current_limit_a=current_limit)


def build_cccv(b: Builder, m: YMap, kind: str) -> Node | None:
    """``cccv``: constant current to a voltage, then constant voltage to a cut-off."""
    spec = b.ctx.mapping(b.ctx.substitute(m.get(kind) or m), "cccv", EXAMPLES["cccv"])
    if spec is None:
        return None
    b.ctx.check_keys(spec, ("current", "voltage", "cutoff", "direction"), "cccv",
                     EXAMPLES["cccv"])
    direction_node = spec.get("direction")
    direction = Direction.CHARGE
    if direction_node is not None:
        text = b.ctx.text(direction_node, "direction", "direction: discharge")
        if text not in ("charge", "discharge"):
            b.ctx.report(direction_node, "direction must be 'charge' or 'discharge'",
                         example="direction: discharge")
        elif text == "discharge":
            direction = Direction.DISCHARGE
    common = _common(b, m, kind, direction)
    missing = [k for k in ("current", "voltage") if k not in spec]
    if missing:
        b.ctx.report(spec, f"cccv needs {' and '.join(missing)}", example=EXAMPLES["cccv"])
        return None
    current_node, voltage_node = spec.get("current"), spec.get("voltage")
    assert current_node is not None and voltage_node is not None
    pair = _current_value(b, current_node, "cccv current")
    volts = b.ctx.quantity(voltage_node, Kind.VOLTAGE, "cccv voltage")
    conditions = list(common.until)
    cutoff_node = spec.get("cutoff")
    if cutoff_node is not None:
        cutoff = _current_value(b, cutoff_node, "cccv cutoff")
        if cutoff is not None:
            conditions.insert(0, Condition(Quantity.CURRENT, Operator.AT_MOST, cutoff[1], None,
                                           str(cutoff[0])))
    if not conditions:
        _never_ends(b, m, kind, common)
        return None
    if pair is None or volts is None:
        return None
    sign = 1.0 if direction is Direction.CHARGE else -1.0
    label = common.label or (
        f"CC-CV {direction.value} at {current_display(pair[0])} [{format_si(pair[1], 'A')}] "
        f"to {format_si(volts, 'V')}{_describe(conditions)}"
    )
    return CccvStep(id=b.allocate_id(m), label=label, direction=direction, tag=common.tag,
                    until=tuple(conditions), record=common.record, current_a=sign * pair[1],
                    voltage_v=volts)


def build_rest(b: Builder, m: YMap, kind: str) -> Node | None:
    """``rest``: open circuit for a duration and/or until a condition."""
    common = _common(b, m, kind, Direction.NONE)
    value = b.ctx.substitute(m.get(kind) or m)
    conditions = list(common.until)
    if b.ctx.unresolved(value):
        return None
    if isinstance(value, YScalar) and value.value is not None:
        seconds = b.ctx.quantity(value, Kind.TIME, "rest")
        if seconds is None:
            return None  # reported: not a duration
        if seconds <= 0:
            b.ctx.report(value, "a rest must last a positive time", example=EXAMPLES["rest"])
        conditions.insert(0, Condition(Quantity.TIME, Operator.AT_LEAST, seconds, None,
                                       value.text))
    elif not (isinstance(value, YScalar) or (isinstance(value, YMap) and not value.entries)):
        b.ctx.report(value, "rest takes a duration", example=EXAMPLES["rest"])
        return None
    if not conditions:
        _never_ends(b, m, kind, common)
        return None
    timed = conditions[0] if isinstance(value, YScalar) and value.value is not None else None
    others = conditions[1:] if timed is not None else conditions
    label = common.label or ("Rest" + (f" for {timed.text}" if timed else "")
                             + (" or" if timed and others else "") + _describe(others))
    return RestStep(id=b.allocate_id(m), label=label, tag=common.tag, until=tuple(conditions),
                    record=common.record)


def build_stop(b: Builder, m: YMap, kind: str) -> Node | None:
    """``stop``: end the job here, with a reason (it takes no conditions: it ends at once)."""
    b.ctx.check_keys(m, ("stop", "tag", "name"), "a stop step", EXAMPLES["stop"])
    name = m.get("name")
    common = Common(b.tag(m), None, [], b.ctx.text(name, "name", "name: open cell")
                    if name is not None else None)
    value = b.ctx.substitute(m.get(kind) or m)
    reason = ""
    if isinstance(value, YScalar) and isinstance(value.value, str):
        reason = value.value
    elif not (isinstance(value, YScalar) and (value.value is None or value.value is True)):
        b.ctx.report(value, "stop takes a reason (text)", example=EXAMPLES["stop"])
        return None
    return StopStep(id=b.allocate_id(m), label=common.label or f"Stop: {reason}".rstrip(": "),
                    tag=common.tag, record=common.record, reason=reason)


def kinds() -> dict[str, StepKindBuilder]:
    """Every step kind's builder, by key."""
    from .stepkinds_env import build_eis, build_pulse, build_set

    return {
        "step": build_string, "charge": build_current, "discharge": build_current,
        "hold": build_hold, "cccv": build_cccv, "rest": build_rest, "stop": build_stop,
        "pulse": build_pulse, "eis": build_eis, "set": build_set,
    }


__all__ = ["EXAMPLES", "Common", "EisMode", "EisStep", "PulseStep", "SetStep", "kinds",
           "step_direction"]

"""Turning written conditions into resolved ones: the ``until`` of steps and of loops."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .conditions import (
    CONDITION_EXPECTED,
    CYCLE_EXAMPLE,
    RawCondition,
    parse_condition,
    parse_cycle_condition,
)
from .context import Context, describe
from .program import (
    MAGNITUDE_QUANTITIES,
    Condition,
    CycleCondition,
    Direction,
    Operator,
    Quantity,
)
from .quantities import ChargeValue, CurrentValue, QuantityError
from .yamlsource import YMap, YNode, YScalar, YSeq

UNTIL_EXAMPLE = (
    "until:\n  - voltage: 2.0 V\n    then: check-up\n  - voltage: 2.5 V"
)
CONDITION_KEYS = tuple(q.value for q in Quantity)


@dataclass(frozen=True, slots=True)
class CellScale:
    """What a condition or setpoint needs from the cell to become absolute."""

    capacity_ah: float | None
    area_m2: float | None


def default_operator(quantity: Quantity, direction: Direction) -> Operator | None:
    """The comparison a condition uses when none is written, or None if it must be written.

    A voltage ends a charge when it rises to the value and a discharge when it falls to it;
    current, rate of voltage change end when they fall to the value (a CV hold's taper, a
    relaxing rest); time, charge and energy end when they reach it. Temperature and pressure,
    and a voltage on a step without a direction, need an explicit ``<`` or ``>``.
    """
    if quantity is Quantity.VOLTAGE:
        return {Direction.CHARGE: Operator.AT_LEAST, Direction.DISCHARGE: Operator.AT_MOST}.get(
            direction
        )
    if quantity in (Quantity.CURRENT, Quantity.VOLTAGE_RATE):
        return Operator.AT_MOST
    if quantity in (Quantity.TIME, Quantity.CHARGE, Quantity.ENERGY):
        return Operator.AT_LEAST
    return None


def absolute_current(
    ctx: Context, current: CurrentValue, scale: CellScale, at: YNode
) -> float | None:
    """Amperes for a written current, or None after saying what the cell lacks."""
    try:
        amperes = current.amperes(scale.capacity_ah, scale.area_m2)
    except ValueError as exc:
        needs = "capacity: 634 mAh" if "capacity" in str(exc) else "area: 93.28 cm^2"
        ctx.report(
            at,
            f"{exc}, and the cell has none",
            expected="a cell with its nominal capacity (or areal capacity and area)",
            example=f"cell: {{{needs}}}",
        )
        return None
    return _finite(ctx, amperes, f"the current {current}", at)


def absolute_charge(ctx: Context, charge: ChargeValue, scale: CellScale, at: YNode) -> float | None:
    """Ampere-hours for a written charge, or None after saying what the cell lacks."""
    try:
        ampere_hours = charge.ampere_hours(scale.capacity_ah)
    except ValueError as exc:
        ctx.report(at, f"{exc}, and the cell has none", example="cell: {capacity: 634 mAh}")
        return None
    return _finite(ctx, ampere_hours, "the charge", at)


def _finite(ctx: Context, value: float, what: str, at: YNode) -> float | None:
    """``value`` if it is a usable number; a C-rate of a huge cell can overflow."""
    if math.isfinite(value):
        return value
    ctx.report(at, f"{what} is too large for this cell")
    return None


def resolve_condition(
    ctx: Context,
    raw: RawCondition,
    direction: Direction,
    scale: CellScale,
    at: YNode,
    then: str | None = None,
) -> Condition | None:
    """A resolved condition, or None after reporting why it cannot be."""
    value: float | None
    if isinstance(raw.value, CurrentValue):
        value = absolute_current(ctx, raw.value, scale, at)
    elif isinstance(raw.value, ChargeValue):
        value = absolute_charge(ctx, raw.value, scale, at)
    else:
        value = raw.value
    operator = raw.operator or default_operator(raw.quantity, direction)
    if operator is None:
        ctx.report(
            at,
            f"'until {raw.text}': say whether the step ends when the {raw.quantity.value} "
            "rises to the value or falls to it",
            expected="the condition with > or < in front",
            example=f"until: '> {raw.text}'",
        )
        return None
    if value is None:
        return None
    if raw.quantity in MAGNITUDE_QUANTITIES:
        value = abs(value)
    if raw.quantity is Quantity.TIME and value <= 0:
        ctx.report(at, f"'until {raw.text}': a duration must be positive")
        return None
    return Condition(raw.quantity, operator, value, then, raw.text)


def _parse_raw(ctx: Context, node: YNode, key: str | None) -> RawCondition | None:
    scalar = ctx.scalar(node, "a condition", "until: 4.25 V")
    if scalar is None:
        return None
    try:
        raw = parse_condition(scalar.value)
    except QuantityError as exc:
        ctx.report(scalar, f"until: {exc.message}", expected=exc.expected, example=UNTIL_EXAMPLE)
        return None
    if key is not None and raw.quantity.value != key:
        ctx.report(
            scalar,
            f"'{key}: {scalar.text}' is a {raw.quantity.value} condition under the key {key!r}",
            expected=f"a {key} under {key!r}",
            example=f"until: {{{raw.quantity.value}: {scalar.text}}}",
        )
        return None
    return raw


def read_until(
    ctx: Context, node: YNode, direction: Direction, scale: CellScale
) -> tuple[list[Condition], list[tuple[str, YNode]]]:
    """Every condition of a step's ``until`` (text, mapping or list), and its ``then`` targets."""
    conditions: list[Condition] = []
    targets: list[tuple[str, YNode]] = []

    def add(value_node: YNode, key: str | None, then: str | None, then_node: YNode | None) -> None:
        substituted = ctx.substitute(value_node)
        if isinstance(substituted, YScalar) and isinstance(substituted.value, str) and (
            " or " in substituted.text
        ):
            for part in substituted.text.split(" or "):
                add(YScalar(part, part, substituted.loc), key, then, then_node)
            return
        raw = _parse_raw(ctx, substituted, key)
        if raw is None:
            return
        condition = resolve_condition(ctx, raw, direction, scale, substituted, then)
        if condition is not None:
            conditions.append(condition)
            if then is not None and then_node is not None:
                targets.append((then, then_node))

    def add_mapping(mapping: YMap) -> None:
        then_node = mapping.get("then")
        then = ctx.text(then_node, "then", "then: check-up") if then_node is not None else None
        for key_node, value in mapping.entries:
            key = str(key_node.value)
            if key == "then":
                continue
            if key not in CONDITION_KEYS:
                from .suggest import did_you_mean

                ctx.report(
                    key_node,
                    f"unknown condition {key!r}{did_you_mean(key, CONDITION_KEYS)}",
                    expected="one of " + ", ".join(CONDITION_KEYS),
                    example=UNTIL_EXAMPLE,
                )
                continue
            add(value, key, then, then_node)

    node = ctx.substitute(node)
    if isinstance(node, YScalar):
        add(node, None, None, None)
    elif isinstance(node, YMap):
        add_mapping(node)
    else:
        for item in node.items:
            item = ctx.substitute(item)
            if isinstance(item, YMap):
                add_mapping(item)
            elif isinstance(item, YScalar):
                add(item, None, None, None)
            else:
                ctx.report(item, f"a condition must be text or a mapping, not {describe(item)}",
                           expected=CONDITION_EXPECTED, example=UNTIL_EXAMPLE)
    return conditions, targets


def read_cycle_until(ctx: Context, node: YNode) -> list[CycleCondition]:
    """Every condition of a loop's ``until``: text or a list of texts."""
    items = node.items if isinstance(node, YSeq) else (node,)
    found: list[CycleCondition] = []
    for item in items:
        scalar = ctx.scalar(item, "a loop condition", CYCLE_EXAMPLE)
        if scalar is None:
            continue
        try:
            raw = parse_cycle_condition(scalar.value)
        except QuantityError as exc:
            ctx.report(scalar, f"until: {exc.message}", expected=exc.expected, example=exc.example)
            continue
        found.append(CycleCondition(raw.metric, raw.operator, raw.value, raw.reference, raw.text))
    return found

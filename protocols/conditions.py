"""Step conditions (``until 4.25 V``, ``until < 0.05C``) and loop conditions
(``discharge capacity < 80 % of first``) as written, before they are resolved for a cell.

The quantity a condition watches is read off its unit: volts watch the voltage, amperes,
C-rates and current densities the current, Ah and % the charge passed in the step, Wh the
energy, durations the step time, V/s the rate of voltage change, degC/K the temperature and
Pa the stack pressure. ``<`` and ``<=`` mean the same (readings are continuous), as do ``>``
and ``>=``; without an operator the step's direction decides (see ``steps.default_operator``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .program import CycleMetric, Operator, Quantity
from .quantities import (
    TIME_ALIASES,
    ChargeValue,
    CurrentValue,
    Kind,
    QuantityError,
    classify,
    parse_charge,
    parse_current,
    parse_quantity,
)

CONDITION_EXPECTED = (
    "a voltage (4.25 V), a current (50 mA, C/20, 0.05C), a charge (300 mAh, 50 %), "
    "an energy (1 Wh), a duration (2 h), a rate of voltage change (1 mV/min), "
    "a temperature (59.5 degC) or a pressure (1.8 MPa), optionally after < or >"
)
CONDITION_EXAMPLE = "until 4.25 V"

_OPERATOR_RE = re.compile(r"^\s*(<=|>=|=<|=>|<|>|≤|≥)?\s*(.*?)\s*$", re.DOTALL)
_OPERATORS = {
    "<": Operator.AT_MOST, "<=": Operator.AT_MOST, "=<": Operator.AT_MOST, "≤": Operator.AT_MOST,
    ">": Operator.AT_LEAST, ">=": Operator.AT_LEAST, "=>": Operator.AT_LEAST,
    "≥": Operator.AT_LEAST,
}
_TIME_RE = re.compile(r"^\s*([+-]?[0-9.eE+-]+)\s*([A-Za-z]+)\s*$")

_KIND_TO_QUANTITY = {
    Kind.VOLTAGE: Quantity.VOLTAGE,
    Kind.TIME: Quantity.TIME,
    Kind.ENERGY: Quantity.ENERGY,
    Kind.VOLTAGE_RATE: Quantity.VOLTAGE_RATE,
    Kind.TEMPERATURE: Quantity.TEMPERATURE,
    Kind.PRESSURE: Quantity.PRESSURE,
}

ConditionValue = float | CurrentValue | ChargeValue


@dataclass(frozen=True, slots=True)
class RawCondition:
    """A step condition as written: the value may still depend on the cell."""

    quantity: Quantity
    operator: Operator | None
    value: ConditionValue
    text: str


def split_operator(text: str) -> tuple[Operator | None, str]:
    """Split a leading comparison operator off ``text``."""
    match = _OPERATOR_RE.match(text)
    assert match is not None  # the pattern matches any text
    symbol, rest = match.group(1), match.group(2)
    return (_OPERATORS[symbol] if symbol else None), rest


def normalise_time(text: str) -> str:
    """Accept PyBaMM's time units (``m`` for minutes, ``hr``, ``sec``) as well as pint's."""
    match = _TIME_RE.match(text)
    if match is None:
        return text
    unit = TIME_ALIASES.get(match.group(2), match.group(2))
    return f"{match.group(1)} {unit}"


def parse_duration(text: object) -> float:
    """A duration in seconds, with PyBaMM's unit spellings too."""
    return parse_quantity(normalise_time(str(text)), Kind.TIME)


@lru_cache(maxsize=4096, typed=True)
def parse_condition(text: object) -> RawCondition:
    """Parse one step condition; raises QuantityError saying what conditions can be."""
    if isinstance(text, bool) or text is None:
        raise QuantityError(f"{text!r} is not a condition", CONDITION_EXPECTED, CONDITION_EXAMPLE)
    raw = str(text)
    operator, rest = split_operator(raw)
    kind = classify(rest)
    if kind is None or kind is Kind.LENGTH:
        kind = classify(normalise_time(rest))
        if kind is Kind.TIME:
            rest = normalise_time(rest)
    value: ConditionValue
    if kind is Kind.CURRENT:
        value = parse_current(rest)
        return RawCondition(Quantity.CURRENT, operator, value, raw.strip())
    if kind in (Kind.CHARGE, Kind.FRACTION):
        value = parse_charge(rest)
        return RawCondition(Quantity.CHARGE, operator, value, raw.strip())
    if kind is Kind.TEMPERATURE_DIFFERENCE:
        kind = Kind.TEMPERATURE
    if kind in _KIND_TO_QUANTITY:
        return RawCondition(
            _KIND_TO_QUANTITY[kind], operator, parse_quantity(rest, kind), raw.strip()
        )
    raise QuantityError(
        f"{rest.strip()!r} is not something a step can end on", CONDITION_EXPECTED,
        CONDITION_EXAMPLE,
    )


# -- loop (cycle) conditions -------------------------------------------------------------------

CYCLE_EXPECTED = (
    "'<figure> < <value>' where the figure is discharge capacity, charge capacity, "
    "discharge energy, coulombic efficiency or energy efficiency, and the value is absolute "
    "(mAh, Wh, %) or a share 'of first', 'of max' or 'of cycle N'"
)
CYCLE_EXAMPLE = "until: discharge capacity < 80 % of first"

_CYCLE_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_ ]+?)\s*(?P<op><=|>=|<|>|≤|≥)\s*(?P<value>[^\s].*?)"
    r"(?:\s+of\s+(?P<ref>first|max|cycle\s+(?P<cycle>\d+)))?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RawCycleCondition:
    """A loop condition, resolved already (it does not depend on the cell)."""

    metric: CycleMetric
    operator: Operator
    value: float
    reference: str | int | None
    text: str


def parse_cycle_condition(text: object) -> RawCycleCondition:
    """Parse a loop condition such as ``discharge capacity < 80 % of first``."""
    raw = str(text)
    match = _CYCLE_RE.match(raw)
    if match is None:
        raise QuantityError(f"{raw.strip()!r} is not a loop condition", CYCLE_EXPECTED,
                            CYCLE_EXAMPLE)
    name = " ".join(match.group("metric").replace("_", " ").lower().split())
    try:
        metric = CycleMetric(name)
    except ValueError:
        from .suggest import did_you_mean

        hint = did_you_mean(name, [m.value for m in CycleMetric])
        raise QuantityError(
            f"{name!r} is not a per-cycle figure{hint}", CYCLE_EXPECTED, CYCLE_EXAMPLE
        ) from None
    operator = _OPERATORS[match.group("op")]
    value_text = match.group("value")
    reference: str | int | None = None
    if match.group("cycle"):
        reference = int(match.group("cycle"))
    elif match.group("ref"):
        reference = match.group("ref").lower()
    is_share = reference is not None or metric in (
        CycleMetric.COULOMBIC_EFFICIENCY, CycleMetric.ENERGY_EFFICIENCY
    )
    if is_share:
        value = parse_quantity(value_text, Kind.FRACTION)
    elif metric is CycleMetric.DISCHARGE_ENERGY:
        value = parse_quantity(value_text, Kind.ENERGY)
    else:
        charge = parse_charge(value_text)
        if charge.of_nominal:
            raise QuantityError(
                f"{value_text!r}: a share needs a reference ('of first', 'of cycle 3')",
                CYCLE_EXPECTED, CYCLE_EXAMPLE,
            )
        value = charge.value
    return RawCycleCondition(metric, operator, value, reference, raw.strip())

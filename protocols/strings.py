"""Steps written as PyBaMM experiment strings.

The grammar of PyBaMM's ``step.string``::

    Charge|Discharge at <A|C|W|Ohm value> [for <duration>] [or] [until <condition>]
        [(<duration> period)]
    Hold at <V> for|until <condition>
    Rest for|until <condition>

with C-rates (``1C``, ``0.5 C``, ``C/20``), milli prefixes (``200 mA``, ``200mW``) and
conditions on voltage, current or C-rate with an optional ``<``/``>``. cellrig reads every
value with pint and adds: current densities (``Charge at 1.36 mA/cm^2``), conditions on charge
passed (``until 50 %``, ``until 300 mAh``) and the other condition kinds of
``conditions.parse_condition``, and several conditions joined by ``or``. Verbs are accepted in
any letter case. PyBaMM's sign (positive discharges) is not used: the verb carries the
direction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from .conditions import RawCondition, parse_condition, parse_duration
from .quantities import CurrentUnit, CurrentValue, Kind, QuantityError, classify, parse_current
from .quantities import parse_quantity as _parse_quantity

STRING_EXAMPLES = (
    "Charge at 0.1C until 4.25 V",
    "Discharge at C/3 for 2 hours or until 2.5 V",
    "Hold at 4.25 V until 0.05C",
    "Rest for 10 minutes",
)
EXPECTED_STRING = (
    "'Charge|Discharge at <current, C-rate, power or resistance> [for <duration>] "
    "[until <condition>]', 'Hold at <voltage> until <current>' or 'Rest for <duration>'"
)


class Verb(StrEnum):
    """The instruction a step string starts with."""

    CHARGE = "charge"
    DISCHARGE = "discharge"
    HOLD = "hold"
    REST = "rest"


class Control(StrEnum):
    """What a string step holds constant."""

    CURRENT = "current"
    POWER = "power"
    RESISTANCE = "resistance"
    VOLTAGE = "voltage"
    REST = "rest"


@dataclass(frozen=True, slots=True)
class StringStep:
    """A parsed step string, before the cell resolves its C-rates."""

    verb: Verb
    control: Control
    current: CurrentValue | None
    setpoint: float | None
    duration_s: float | None
    conditions: tuple[RawCondition, ...]
    period_s: float | None
    text: str


class StepStringError(ValueError):
    """A step string does not follow the grammar; ``offset`` is where in the string."""

    def __init__(self, message: str, offset: int = 0, expected: str = EXPECTED_STRING,
                 example: str = STRING_EXAMPLES[0]) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.expected = expected
        self.example = example


_PERIOD_RE = re.compile(r"\s*\(\s*(?P<period>[^()]*?)\s+period\s*\)\s*$", re.IGNORECASE)
_HEAD_RE = re.compile(r"^(?P<verb>[A-Za-z]+)(?:\s+at\s+(?P<value>.+?))?\s*$", re.IGNORECASE)
_SPLIT_OR_RE = re.compile(r"\s+or\s+", re.IGNORECASE)


def _find_word(text: str, word: str) -> int:
    match = re.search(rf"(?:^|\s){word}\s", text + " ", re.IGNORECASE)
    if match is None:
        return -1
    return match.start() + (1 if match.group(0)[0].isspace() else 0)


def _quantity_error(exc: QuantityError, offset: int) -> StepStringError:
    return StepStringError(exc.message, offset, exc.expected, exc.example)


def _parse_value(verb: Verb, text: str, offset: int) -> tuple[Control, CurrentValue | None,
                                                              float | None]:
    if verb is Verb.HOLD:
        try:
            return Control.VOLTAGE, None, _parse_quantity(text, Kind.VOLTAGE)
        except QuantityError as exc:
            raise _quantity_error(exc, offset) from None
    kind = classify(text)
    try:
        if kind in (Kind.POWER, Kind.RESISTANCE):
            value = _parse_quantity(text, kind)
            if value <= 0:
                raise StepStringError(
                    f"{text!r} must be positive: the verb gives the direction", offset,
                    example="Discharge at 2 W until 2.5 V")
            control = Control.POWER if kind is Kind.POWER else Control.RESISTANCE
            return control, None, value
        if kind is Kind.VOLTAGE:
            raise StepStringError(
                f"'{verb.value.capitalize()} at {text}' sets a voltage: write 'Hold at {text}'",
                offset, example="Hold at 4.25 V until 0.05C",
            )
        current = parse_current(text)
    except QuantityError as exc:
        raise StepStringError(
            f"{text!r} is not a current, C-rate, power or resistance", offset,
            "a current (200 mA), a C-rate (0.5C, C/20), a current density (1 mA/cm^2), "
            "a power (2 W) or a resistance (10 Ohm)",
            exc.example if kind is not None else STRING_EXAMPLES[0],
        ) from None
    if current.value < 0:
        raise StepStringError(
            f"{text!r} is negative: the verb gives the direction, the value is a magnitude",
            offset, example="Discharge at 0.5C until 2.5 V",
        )
    return Control.CURRENT, current, None


@lru_cache(maxsize=4096, typed=True)
def parse_step_string(text: str) -> StringStep:
    """Parse one step string; raises StepStringError with the offset of the problem."""
    original = text
    body = text.strip()
    lead = len(text) - len(text.lstrip())
    period_s: float | None = None
    period = _PERIOD_RE.search(body)
    if period is not None:
        try:
            period_s = parse_duration(period.group("period"))
        except QuantityError as exc:
            raise _quantity_error(exc, lead + period.start("period")) from None
        body = body[: period.start()]

    conditions: list[RawCondition] = []
    until_at = _find_word(body, "until")
    if until_at >= 0:
        condition_text = body[until_at + len("until"):]
        condition_offset = lead + until_at + len("until")
        body = re.sub(r"\s+or\s*$", "", body[:until_at].rstrip(), flags=re.IGNORECASE)
        cursor = 0
        for part in _SPLIT_OR_RE.split(condition_text):
            position = condition_text.find(part, cursor)
            cursor = position + len(part)
            if not part.strip():
                raise StepStringError("'until' needs a condition", condition_offset)
            try:
                conditions.append(parse_condition(part))
            except QuantityError as exc:
                leading = len(part) - len(part.lstrip())
                raise _quantity_error(exc, condition_offset + max(position, 0) + leading) from None

    duration_s: float | None = None
    for_at = _find_word(body, "for")
    if for_at >= 0:
        duration_text = body[for_at + len("for"):]
        duration_at = lead + for_at + len("for") + len(duration_text) - len(duration_text.lstrip())
        try:
            duration_s = parse_duration(duration_text)
        except QuantityError as exc:
            raise _quantity_error(exc, duration_at) from None
        if duration_s <= 0:
            raise StepStringError("a duration must be positive", duration_at)
        body = body[:for_at].rstrip()

    head = _HEAD_RE.match(body)
    if head is None:
        raise StepStringError(f"{original.strip()!r} is not a step", lead)
    verb_text = head.group("verb").lower()
    try:
        verb = Verb(verb_text)
    except ValueError:
        from .suggest import did_you_mean

        hint = did_you_mean(verb_text, [v.value for v in Verb])
        raise StepStringError(
            f"{head.group('verb')!r} is not an instruction{hint}", lead,
            "Charge, Discharge, Hold or Rest",
        ) from None
    value_text = head.group("value")
    if verb is Verb.REST:
        if value_text is not None:
            raise StepStringError("'Rest' takes no value: write 'Rest for 10 minutes'", lead)
        control, current, setpoint = Control.REST, None, None
    else:
        if value_text is None:
            raise StepStringError(
                f"'{head.group('verb')}' needs a value: '{head.group('verb')} at ...'",
                lead + len(body),
            )
        control, current, setpoint = _parse_value(verb, value_text, lead + head.start("value"))

    if duration_s is None and not conditions:
        raise StepStringError(
            f"{original.strip()!r} can never end: add 'for <duration>' or 'until <condition>'",
            lead + len(original.strip()),
        )
    return StringStep(verb, control, current, setpoint, duration_s, tuple(conditions), period_s,
                      original.strip())


def is_step_string(text: str) -> bool:
    """Whether ``text`` looks like a step string (starts with one of the verbs)."""
    first = text.strip().split(" ", 1)[0].lower()
    return first in {verb.value for verb in Verb}


def current_display(current: CurrentValue) -> str:
    """A current as it would be written in a step string."""
    if current.unit is CurrentUnit.C_RATE:
        return f"{current.value:g}C"
    return str(current)

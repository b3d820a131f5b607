"""Step strings: PyBaMM's experiment grammar and cellrig's extensions, parsed exactly."""

from __future__ import annotations

import pytest
from conftest import assert_close

from cellrig.protocols.conditions import RawCondition
from cellrig.protocols.program import Operator, Quantity
from cellrig.protocols.quantities import ChargeValue, CurrentUnit, CurrentValue
from cellrig.protocols.strings import (
    Control,
    StepStringError,
    StringStep,
    Verb,
    is_step_string,
    parse_step_string,
)

CM2 = 1e-4


def c_rate(value: float) -> CurrentValue:
    return CurrentValue(CurrentUnit.C_RATE, value)


def amps(value: float) -> CurrentValue:
    return CurrentValue(CurrentUnit.AMPERE, value)


def density(a_per_m2: float) -> CurrentValue:
    return CurrentValue(CurrentUnit.DENSITY, a_per_m2)


def until(quantity: Quantity, value: float | CurrentValue | ChargeValue, text: str,
          operator: Operator | None = None) -> RawCondition:
    return RawCondition(quantity, operator, value, text)


def step(text: str, verb: Verb, control: Control, *, current: CurrentValue | None = None,
         setpoint: float | None = None, duration_s: float | None = None,
         conditions: tuple[RawCondition, ...] = (), period_s: float | None = None) -> StringStep:
    return StringStep(verb, control, current, setpoint, duration_s, conditions, period_s, text)


CHARGE, DISCHARGE, HOLD, REST = Verb.CHARGE, Verb.DISCHARGE, Verb.HOLD, Verb.REST

#: Every example string of PyBaMM's experiment documentation, as PyBaMM means it.
PYBAMM_EXAMPLES = [
    step("Discharge at 1C for 0.5 hours", DISCHARGE, Control.CURRENT, current=c_rate(1.0),
         duration_s=1800.0),
    step("Discharge at C/20 for 0.5 hours", DISCHARGE, Control.CURRENT, current=c_rate(0.05),
         duration_s=1800.0),
    step("Charge at 0.5 C for 45 minutes", CHARGE, Control.CURRENT, current=c_rate(0.5),
         duration_s=2700.0),
    step("Discharge at 1 A for 0.5 hours", DISCHARGE, Control.CURRENT, current=amps(1.0),
         duration_s=1800.0),
    step("Charge at 200 mA for 45 minutes", CHARGE, Control.CURRENT, current=amps(0.2),
         duration_s=2700.0),
    step("Discharge at 1W for 0.5 hours", DISCHARGE, Control.POWER, setpoint=1.0,
         duration_s=1800.0),
    step("Charge at 200mW for 45 minutes", CHARGE, Control.POWER, setpoint=0.2,
         duration_s=2700.0),
    step("Rest for 10 minutes", REST, Control.REST, duration_s=600.0),
    step("Hold at 1V for 20 seconds", HOLD, Control.VOLTAGE, setpoint=1.0, duration_s=20.0),
    step("Charge at 1 C until 4.1V", CHARGE, Control.CURRENT, current=c_rate(1.0),
         conditions=(until(Quantity.VOLTAGE, 4.1, "4.1V"),)),
    step("Hold at 4.1 V until 50mA", HOLD, Control.VOLTAGE, setpoint=4.1,
         conditions=(until(Quantity.CURRENT, amps(0.05), "50mA"),)),
    step("Hold at 3V until C/50", HOLD, Control.VOLTAGE, setpoint=3.0,
         conditions=(until(Quantity.CURRENT, c_rate(0.02), "C/50"),)),
    step("Discharge at C/3 for 2 hours or until 2.5 V", DISCHARGE, Control.CURRENT,
         current=c_rate(1 / 3), duration_s=7200.0,
         conditions=(until(Quantity.VOLTAGE, 2.5, "2.5 V"),)),
]

#: PyBaMM's other forms: the period, operators, resistance, its time unit spellings.
PYBAMM_FORMS = [
    step("Discharge at 1C for 1 hour (1 minute period)", DISCHARGE, Control.CURRENT,
         current=c_rate(1.0), duration_s=3600.0, period_s=60.0),
    step("Charge at 1C for 1 hour or until 4.2 V (10 seconds period)", CHARGE, Control.CURRENT,
         current=c_rate(1.0), duration_s=3600.0, period_s=10.0,
         conditions=(until(Quantity.VOLTAGE, 4.2, "4.2 V"),)),
    step("Hold at 4.1 V until < 50 mA", HOLD, Control.VOLTAGE, setpoint=4.1,
         conditions=(until(Quantity.CURRENT, amps(0.05), "< 50 mA", Operator.AT_MOST),)),
    step("Charge at 1C until > 4.1 V", CHARGE, Control.CURRENT, current=c_rate(1.0),
         conditions=(until(Quantity.VOLTAGE, 4.1, "> 4.1 V", Operator.AT_LEAST),)),
    step("Discharge at 1C until < 2.5 V", DISCHARGE, Control.CURRENT, current=c_rate(1.0),
         conditions=(until(Quantity.VOLTAGE, 2.5, "< 2.5 V", Operator.AT_MOST),)),
    step("Discharge at 10 Ohm for 1 hour", DISCHARGE, Control.RESISTANCE, setpoint=10.0,
         duration_s=3600.0),
    step("Discharge at 2 W until 2.5 V", DISCHARGE, Control.POWER, setpoint=2.0,
         conditions=(until(Quantity.VOLTAGE, 2.5, "2.5 V"),)),
    step("Rest for 10 m", REST, Control.REST, duration_s=600.0),
    step("Rest for 1 hr", REST, Control.REST, duration_s=3600.0),
    step("Rest for 30 sec", REST, Control.REST, duration_s=30.0),
    step("Rest for 2 days", REST, Control.REST, duration_s=172800.0),
]

#: cellrig's extensions: charge, densities, more condition kinds, several joined by "or".
EXTENSIONS = [
    step("Charge at 0.1C until 50 %", CHARGE, Control.CURRENT, current=c_rate(0.1),
         conditions=(until(Quantity.CHARGE, ChargeValue(0.5, of_nominal=True), "50 %"),)),
    step("Charge at 0.1C until 300 mAh", CHARGE, Control.CURRENT, current=c_rate(0.1),
         conditions=(until(Quantity.CHARGE, ChargeValue(0.3, of_nominal=False), "300 mAh"),)),
    step("Charge at 1.36 mA/cm^2 until 4.2 V", CHARGE, Control.CURRENT,
         current=density(1.36e-3 / CM2), conditions=(until(Quantity.VOLTAGE, 4.2, "4.2 V"),)),
    step("Discharge at 0.5 mA/cm^2 for 2 h", DISCHARGE, Control.CURRENT,
         current=density(0.5e-3 / CM2), duration_s=7200.0),
    step("Discharge at 0.5C until 2.5 V or 2 h or 300 mAh", DISCHARGE, Control.CURRENT,
         current=c_rate(0.5),
         conditions=(until(Quantity.VOLTAGE, 2.5, "2.5 V"), until(Quantity.TIME, 7200.0, "2 h"),
                     until(Quantity.CHARGE, ChargeValue(0.3, of_nominal=False), "300 mAh"))),
    step("Hold at 4.2 V until C/20 or 5 h", HOLD, Control.VOLTAGE, setpoint=4.2,
         conditions=(until(Quantity.CURRENT, c_rate(0.05), "C/20"),
                     until(Quantity.TIME, 18000.0, "5 h"))),
    step("Rest until 1 mV/min", REST, Control.REST,
         conditions=(until(Quantity.VOLTAGE_RATE, 1e-3 / 60, "1 mV/min"),)),
    step("Rest for 4 h or until < 0.1 mV/min", REST, Control.REST, duration_s=14400.0,
         conditions=(until(Quantity.VOLTAGE_RATE, 1e-4 / 60, "< 0.1 mV/min", Operator.AT_MOST),)),
    step("Discharge at 1C until 2 Wh", DISCHARGE, Control.CURRENT, current=c_rate(1.0),
         conditions=(until(Quantity.ENERGY, 2.0, "2 Wh"),)),
    step("Rest until > 59.5 degC", REST, Control.REST,
         conditions=(until(Quantity.TEMPERATURE, 59.5, "> 59.5 degC", Operator.AT_LEAST),)),
    step("Rest until < 1.8 MPa", REST, Control.REST,
         conditions=(until(Quantity.PRESSURE, 1.8e6, "< 1.8 MPa", Operator.AT_MOST),)),
    step("Charge at 500 µA until 4.2 V", CHARGE, Control.CURRENT, current=amps(5e-4),
         conditions=(until(Quantity.VOLTAGE, 4.2, "4.2 V"),)),
    step("Discharge at 2 kOhm for 10 min", DISCHARGE, Control.RESISTANCE, setpoint=2000.0,
         duration_s=600.0),
    # verbs in any letter case
    step("CHARGE AT 0.1C UNTIL 4.2 V", CHARGE, Control.CURRENT, current=c_rate(0.1),
         conditions=(until(Quantity.VOLTAGE, 4.2, "4.2 V"),)),
    step("discharge at 1C for 1 h", DISCHARGE, Control.CURRENT, current=c_rate(1.0),
         duration_s=3600.0),
]


@pytest.mark.parametrize("expected", PYBAMM_EXAMPLES, ids=lambda s: s.text)
def test_pybamm_examples(expected: StringStep) -> None:
    assert_close(parse_step_string(expected.text), expected)


@pytest.mark.parametrize("expected", PYBAMM_FORMS, ids=lambda s: s.text)
def test_pybamm_forms(expected: StringStep) -> None:
    assert_close(parse_step_string(expected.text), expected)


@pytest.mark.parametrize("expected", EXTENSIONS, ids=lambda s: s.text)
def test_cellrig_extensions(expected: StringStep) -> None:
    assert_close(parse_step_string(expected.text), expected)


def test_surrounding_space_is_ignored() -> None:
    parsed = parse_step_string("   Rest for 10 minutes  ")
    assert parsed.text == "Rest for 10 minutes"
    assert parsed.duration_s == 600.0


ERRORS = [
    # (text, message, offset, the text found at the offset)
    ("Charge at 1C",
     "'Charge at 1C' can never end: add 'for <duration>' or 'until <condition>'", 12, ""),
    ("Rest", "'Rest' can never end: add 'for <duration>' or 'until <condition>'", 4, ""),
    ("Hold at 4.2 V", "'Hold at 4.2 V' can never end: add 'for <duration>' or "
     "'until <condition>'", 13, ""),
    ("Chrage at 1C until 4.2 V",
     "'Chrage' is not an instruction (did you mean 'charge'?)", 0, "Chrage"),
    ("  Dischrge at 1C until 2.5 V",
     "'Dischrge' is not an instruction (did you mean 'discharge'?)", 2, "Dischrge"),
    ("Charge at 4.2 V",
     "'Charge at 4.2 V' sets a voltage: write 'Hold at 4.2 V'", 10, "4.2 V"),
    ("Discharge at 3 V until 2 h",
     "'Discharge at 3 V' sets a voltage: write 'Hold at 3 V'", 13, "3 V"),
    ("Charge at -1C until 4.2V",
     "'-1C' is negative: the verb gives the direction, the value is a magnitude", 10, "-1C"),
    ("Discharge at -200 mA for 1 h",
     "'-200 mA' is negative: the verb gives the direction, the value is a magnitude", 13,
     "-200 mA"),
    ("Rest for -10 min", "a duration must be positive", 9, "-10 min"),
    ("Charge at 1 furlong until 4.2 V",
     "'1 furlong' is not a current, C-rate, power or resistance", 10, "1 furlong"),
    ("Charge at 1 xyzzy until 4.2 V",
     "'1 xyzzy' is not a current, C-rate, power or resistance", 10, "1 xyzzy"),
    ("Charge at 1C until 4.2 furlongs",
     "'4.2 furlongs' is not something a step can end on", 19, "4.2 furlongs"),
    ("Discharge at 0.5C until 2.5 V or 2 parsecs",
     "'2 parsecs' is not something a step can end on", 33, "2 parsecs"),
    ("Discharge at 0.5C until   2 parsecs",
     "'2 parsecs' is not something a step can end on", 26, "2 parsecs"),
    ("Rest for 10 parsecs", "'10 parsecs' is not a duration", 9, "10 parsecs"),
    ("Rest for   10 parsecs", "'10 parsecs' is not a duration", 11, "10 parsecs"),
    ("Rest for  -1 h", "a duration must be positive", 10, "-1 h"),
    ("Charge at 1C for 1 h (x period)", "'x' is not a number followed by a unit", 22, "x"),
    ("Hold at 1 A until 50 mA", "'1 A' is not a voltage", 8, "1 A"),
    ("Rest at 1 V for 1 h", "'Rest' takes no value: write 'Rest for 10 minutes'", 0, "Rest"),
    ("Charge for 1 h", "'Charge' needs a value: 'Charge at ...'", 6, ""),
    ("Charge at 1C until", "'until' needs a condition", 18, ""),
    ("Charge at 1C for", "'' is not a number followed by a unit", 16, ""),
]


@pytest.mark.parametrize(("text", "message", "offset", "token"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_say_what_and_where(text: str, message: str, offset: int, token: str) -> None:
    with pytest.raises(StepStringError) as caught:
        parse_step_string(text)
    error = caught.value
    assert error.message == message
    assert error.offset == offset
    assert text[error.offset:].startswith(token)
    assert error.expected
    assert error.example


def test_unknown_verb_lists_the_verbs() -> None:
    with pytest.raises(StepStringError) as caught:
        parse_step_string("Chrage at 1C until 4.2 V")
    assert caught.value.expected == "Charge, Discharge, Hold or Rest"


def test_voltage_on_a_charge_shows_a_hold() -> None:
    with pytest.raises(StepStringError) as caught:
        parse_step_string("Charge at 4.2 V")
    assert caught.value.example.startswith("Hold at")


@pytest.mark.parametrize(
    ("text", "answer"),
    [("Charge at 1C until 4.2 V", True), ("discharge at 1C for 1 h", True),
     ("  Rest for 1 h", True), ("HOLD at 4 V until 1 mA", True), ("Chrage at 1C", False),
     ("cccv: 1C", False), ("", False), ("${step}", False)],
)
def test_is_step_string(text: str, answer: bool) -> None:
    assert is_step_string(text) is answer

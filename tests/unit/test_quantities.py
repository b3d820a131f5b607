"""Quantities with units: every unit a protocol may use parses to the right SI value."""

from __future__ import annotations

import pytest

from cellrig.protocols.quantities import (
    KIND_INFO,
    ChargeValue,
    CurrentUnit,
    CurrentValue,
    Kind,
    QuantityError,
    classify,
    format_duration,
    format_si,
    parse_charge,
    parse_current,
    parse_quantity,
)

# The exact definitions, written out independently of pint.
POUND_FORCE_N = 0.45359237 * 9.80665
INCH_M = 0.0254
PSI_PA = POUND_FORCE_N / INCH_M**2
CM2_M2 = 1e-4

QUANTITIES = [
    # voltage (V)
    ("4.25 V", Kind.VOLTAGE, 4.25),
    ("4.25V", Kind.VOLTAGE, 4.25),
    ("50 mV", Kind.VOLTAGE, 0.05),
    ("-10 mV", Kind.VOLTAGE, -0.01),
    ("1e-3 V", Kind.VOLTAGE, 1e-3),
    # absolute current (A)
    ("2 A", Kind.CURRENT, 2.0),
    ("200 mA", Kind.CURRENT, 0.2),
    ("5 µA", Kind.CURRENT, 5e-6),  # MICRO SIGN
    ("5 μA", Kind.CURRENT, 5e-6),  # GREEK SMALL LETTER MU
    ("5 uA", Kind.CURRENT, 5e-6),
    ("50mA", Kind.CURRENT, 0.05),
    # time (s)
    ("30 s", Kind.TIME, 30.0),
    ("10 min", Kind.TIME, 600.0),
    ("45 minutes", Kind.TIME, 2700.0),
    ("1 minute", Kind.TIME, 60.0),
    ("2 h", Kind.TIME, 7200.0),
    ("0.5 hours", Kind.TIME, 1800.0),
    ("1 hour", Kind.TIME, 3600.0),
    ("1 day", Kind.TIME, 86400.0),
    ("20 seconds", Kind.TIME, 20.0),
    # temperature (degC inside)
    ("60 degC", Kind.TEMPERATURE, 60.0),
    ("-20 degC", Kind.TEMPERATURE, -20.0),
    ("60 °C", Kind.TEMPERATURE, 60.0),
    ("298.15 K", Kind.TEMPERATURE, 25.0),
    ("0 K", Kind.TEMPERATURE, -273.15),
    ("0.5 K", Kind.TEMPERATURE_DIFFERENCE, 0.5),
    ("0.5 degC", Kind.TEMPERATURE_DIFFERENCE, 0.5),
    # pressure (Pa)
    ("2 MPa", Kind.PRESSURE, 2e6),
    ("0.5 MPa", Kind.PRESSURE, 5e5),
    ("250 kPa", Kind.PRESSURE, 2.5e5),
    ("10 bar", Kind.PRESSURE, 1e6),
    ("100 psi", Kind.PRESSURE, 100 * PSI_PA),
    # charge (Ah)
    ("2.5 Ah", Kind.CHARGE, 2.5),
    ("300 mAh", Kind.CHARGE, 0.3),
    # energy (Wh)
    ("2.2 Wh", Kind.ENERGY, 2.2),
    ("500 mWh", Kind.ENERGY, 0.5),
    # power (W)
    ("1.5 W", Kind.POWER, 1.5),
    ("200 mW", Kind.POWER, 0.2),
    ("1W", Kind.POWER, 1.0),
    # resistance (Ohm)
    ("10 Ohm", Kind.RESISTANCE, 10.0),
    ("10 ohm", Kind.RESISTANCE, 10.0),
    ("10 Ω", Kind.RESISTANCE, 10.0),
    ("50 mOhm", Kind.RESISTANCE, 0.05),
    ("2 kOhm", Kind.RESISTANCE, 2000.0),
    # frequency (Hz)
    ("50 Hz", Kind.FREQUENCY, 50.0),
    ("100 kHz", Kind.FREQUENCY, 1e5),
    ("1 MHz", Kind.FREQUENCY, 1e6),
    ("10 mHz", Kind.FREQUENCY, 0.01),
    # shares
    ("80 %", Kind.FRACTION, 0.8),
    ("80%", Kind.FRACTION, 0.8),
    ("0.8", Kind.FRACTION, 0.8),
    # cell geometry
    ("93.28 cm^2", Kind.AREA, 93.28 * CM2_M2),
    ("2.95 g", Kind.MASS, 2.95e-3),
    ("6.8 mAh/cm^2", Kind.AREAL_CAPACITY, 6.8e-3 / CM2_M2),
    ("215 mAh/g", Kind.SPECIFIC_CAPACITY, 215.0),
    ("1 mV/min", Kind.VOLTAGE_RATE, 1e-3 / 60),
]


@pytest.mark.parametrize(("text", "kind", "si"), QUANTITIES, ids=[q[0] for q in QUANTITIES])
def test_quantity_parses_to_si(text: str, kind: Kind, si: float) -> None:
    assert parse_quantity(text, kind) == pytest.approx(si, rel=1e-12, abs=1e-12)


CURRENTS = [
    ("2 A", CurrentUnit.AMPERE, 2.0),
    ("200 mA", CurrentUnit.AMPERE, 0.2),
    ("5 µA", CurrentUnit.AMPERE, 5e-6),
    ("5 uA", CurrentUnit.AMPERE, 5e-6),
    ("0.5C", CurrentUnit.C_RATE, 0.5),
    ("0.5 C", CurrentUnit.C_RATE, 0.5),
    ("C/20", CurrentUnit.C_RATE, 0.05),
    ("C/3", CurrentUnit.C_RATE, 1 / 3),
    ("2C", CurrentUnit.C_RATE, 2.0),
    ("C", CurrentUnit.C_RATE, 1.0),
    ("1 mA/cm^2", CurrentUnit.DENSITY, 1e-3 / CM2_M2),
    ("1.36 mA/cm^2", CurrentUnit.DENSITY, 1.36e-3 / CM2_M2),
    ("10 A/m^2", CurrentUnit.DENSITY, 10.0),
]


@pytest.mark.parametrize(("text", "unit", "value"), CURRENTS, ids=[c[0] for c in CURRENTS])
def test_current_parses_as_written(text: str, unit: CurrentUnit, value: float) -> None:
    current = parse_current(text)
    assert current.unit is unit
    assert current.value == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("current", "capacity_ah", "area_m2", "amperes"),
    [
        (CurrentValue(CurrentUnit.C_RATE, 0.5), 0.634, None, 0.317),
        (CurrentValue(CurrentUnit.C_RATE, 0.05), 2.0, None, 0.1),
        (CurrentValue(CurrentUnit.DENSITY, 10.0), None, 93.28e-4, 0.09328),
        (CurrentValue(CurrentUnit.AMPERE, 0.2), None, None, 0.2),
    ],
)
def test_current_resolves_for_a_cell(
    current: CurrentValue, capacity_ah: float | None, area_m2: float | None, amperes: float
) -> None:
    assert current.amperes(capacity_ah, area_m2) == pytest.approx(amperes, rel=1e-12)


def test_c_rate_without_capacity_and_density_without_area_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CurrentValue(CurrentUnit.C_RATE, 1.0).amperes(None, 1.0)
    with pytest.raises(ValueError, match="area"):
        CurrentValue(CurrentUnit.DENSITY, 1.0).amperes(1.0, None)


@pytest.mark.parametrize(
    ("text", "charge"),
    [
        ("300 mAh", ChargeValue(0.3, of_nominal=False)),
        ("2 Ah", ChargeValue(2.0, of_nominal=False)),
        ("50 %", ChargeValue(0.5, of_nominal=True)),
        ("120%", ChargeValue(1.2, of_nominal=True)),
    ],
)
def test_charge_parses_as_written(text: str, charge: ChargeValue) -> None:
    parsed = parse_charge(text)
    assert parsed.of_nominal is charge.of_nominal
    assert parsed.value == pytest.approx(charge.value, rel=1e-12)


def test_share_of_capacity_resolves_against_the_cell() -> None:
    assert parse_charge("50 %").ampere_hours(0.634) == pytest.approx(0.317)
    assert parse_charge("300 mAh").ampere_hours(None) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="capacity"):
        parse_charge("50 %").ampere_hours(None)


WRONG_DIMENSION = [
    ("4.2 A", Kind.VOLTAGE, "voltage"),
    ("100 mA", Kind.VOLTAGE, "voltage"),
    ("4.2 V", Kind.CURRENT, "current"),
    ("10 V", Kind.TIME, "duration"),
    ("10 mm", Kind.TIME, "duration"),  # millimetres: "10 m" is PyBaMM's minutes
    ("60 V", Kind.TEMPERATURE, "temperature"),
    ("2 Ah", Kind.PRESSURE, "pressure"),
    ("2 MPa", Kind.CHARGE, "charge"),
    ("1 W", Kind.ENERGY, "energy"),
    ("1 Wh", Kind.POWER, "power"),
    ("10 V", Kind.RESISTANCE, "resistance"),
    ("10 s", Kind.FREQUENCY, "frequency"),
    ("0.5C", Kind.CURRENT, "current"),  # a C-rate where an absolute current is needed
    ("2 V", Kind.FRACTION, "share"),
]


@pytest.mark.parametrize(("text", "kind", "named"), WRONG_DIMENSION,
                         ids=[f"{w[0]} as {w[1].value}" for w in WRONG_DIMENSION])
def test_wrong_dimension_names_what_was_expected(text: str, kind: Kind, named: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text, kind)
    error = caught.value
    assert error.expected == KIND_INFO[kind].expected
    assert named in error.expected
    assert text.strip() in error.message
    assert error.example == KIND_INFO[kind].example


@pytest.mark.parametrize(
    ("text", "named"),
    [("4.2 V", "current"), ("1 mA/g", "current"), ("2 W", "current")],
)
def test_current_of_wrong_dimension_names_what_was_expected(text: str, named: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_current(text)
    assert named in caught.value.expected
    assert "C-rate" in caught.value.expected


def test_charge_of_wrong_dimension_names_what_was_expected() -> None:
    with pytest.raises(QuantityError) as caught:
        parse_charge("4.2 V")
    assert "charge" in caught.value.expected
    assert "%" in caught.value.expected


GARBAGE = [
    "",
    "   ",
    "V",
    "volts",
    "abc",
    "4..2 V",
    "4.2 V V",
    "4.2 $",
    "4.2 V; import os",
    "__import__('os').system('true')",
    "4.2 (V",
    "nan V",
    "inf V",
    "4,2 V",
    "4.2 furlongs",
    "4.2 xyzzy",
    "4.2 " + "m" * 60 + "V",
    "1 V**",
    "1 V^",
    "1 V/0",
    "1 ()",
    "1 .",
    "1 V*-",
]


@pytest.mark.parametrize("text", GARBAGE)
@pytest.mark.parametrize("kind", [Kind.VOLTAGE, Kind.TIME, Kind.PRESSURE, Kind.FREQUENCY])
def test_garbage_raises_quantity_error(text: str, kind: Kind) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text, kind)
    assert caught.value.expected
    assert caught.value.example


@pytest.mark.parametrize("text", [*GARBAGE, "C/0", "C/", "/20", "0.5 CC", "1 mA/cm^"])
def test_garbage_current_raises_quantity_error(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_current(text)


@pytest.mark.parametrize("text", ["", "abc", "50 percentage", "%", "4.2 V"])
def test_garbage_charge_raises_quantity_error(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_charge(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1e400 V", Kind.VOLTAGE),
        ("1e400 s", Kind.TIME),
        ("-1e400 degC", Kind.TEMPERATURE),
        ("1e308 kV", Kind.VOLTAGE),  # finite number, infinite in SI
        ("1e308 day", Kind.TIME),
        ("1e400 %", Kind.FRACTION),
    ],
)
def test_huge_values_raise(text: str, kind: Kind) -> None:
    with pytest.raises(QuantityError, match="too large"):
        parse_quantity(text, kind)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("unit", ["10^10^10", "V^9^9^9", "V**9**9**9", "V^(10^100)", "2^2^2^2^2^2"])
def test_towers_of_exponents_are_refused_quickly(unit: str) -> None:
    # pint evaluates integer powers exactly: 10^(10^10) would never finish
    with pytest.raises(QuantityError):
        parse_quantity(f"1 {unit}", Kind.VOLTAGE)
    with pytest.raises(QuantityError):
        parse_current(f"1 {unit}")
    assert classify(f"1 {unit}") is None


@pytest.mark.parametrize("kind", [Kind.TEMPERATURE, Kind.TEMPERATURE_DIFFERENCE])
@pytest.mark.parametrize("text", ["60 degF", "2 degF", "1 degRe"])
def test_offset_units_other_than_celsius_are_refused_not_misread(text: str, kind: Kind) -> None:
    # a factor cannot convert an offset unit: 60 degF is not 60 x 255.9 K
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text, kind)
    assert caught.value.expected == KIND_INFO[kind].expected


def test_a_bad_temperature_names_a_temperature_not_a_difference() -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity("60 V", Kind.TEMPERATURE)
    assert caught.value.message == "'60 V' is not a temperature"
    assert caught.value.expected == "a temperature (degC, K)"


@pytest.mark.parametrize("text", ["1e400C", "C/1e-400", "1e400 A", "1e400 mA/cm^2"])
def test_huge_currents_raise(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_current(text)


def test_huge_charge_raises() -> None:
    with pytest.raises(QuantityError):
        parse_charge("1e400 mAh")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, Kind.VOLTAGE), (True, Kind.VOLTAGE), (False, Kind.TIME), (4.2, Kind.VOLTAGE),
     (10, Kind.TIME)],
)
def test_non_text_values_raise(value: object, kind: Kind) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value, kind)


@pytest.mark.parametrize("value", [None, True, 3])
def test_non_text_currents_raise(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_current(value)


def test_a_number_without_unit_says_how_to_write_it() -> None:
    with pytest.raises(QuantityError, match="no unit"):
        parse_quantity("4.2", Kind.VOLTAGE)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("4.25 V", Kind.VOLTAGE),
        ("0.5C", Kind.CURRENT),
        ("C/20", Kind.CURRENT),
        ("200 mA", Kind.CURRENT),
        ("1 mA/cm^2", Kind.CURRENT),
        ("10 min", Kind.TIME),
        ("60 degC", Kind.TEMPERATURE),
        ("2 MPa", Kind.PRESSURE),
        ("300 mAh", Kind.CHARGE),
        ("50 %", Kind.FRACTION),
        ("1 Wh", Kind.ENERGY),
        ("1 W", Kind.POWER),
        ("10 Ohm", Kind.RESISTANCE),
        ("1 kHz", Kind.FREQUENCY),
        ("1 mV/min", Kind.VOLTAGE_RATE),
        ("93.28 cm^2", Kind.AREA),
        ("2.95 g", Kind.MASS),
    ],
)
def test_classify_reads_the_kind_off_the_unit(text: str, kind: Kind) -> None:
    assert classify(text) is kind


@pytest.mark.parametrize("value", [1000, 2.5, True, None, "first-charge", "open_circuit"])
def test_classify_leaves_plain_values_unclassified(value: object) -> None:
    assert classify(value) is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0.0634, "A", "63.4 mA"), (4.25, "V", "4.25 V"), (2e6, "Pa", "2 MPa"),
     (5e-6, "A", "5 µA"), (0.0, "A", "0 A"), (-0.5, "A", "-500 mA"), (25.0, "degC", "25 degC")],
)
def test_format_si(value: float, unit: str, text: str) -> None:
    assert format_si(value, unit) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45.0, "45 s"), (600.0, "10 min"), (5400.0, "1.5 h"), (7200.0, "2 h"),
     (86400.0, "1 day")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text

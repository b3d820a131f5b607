"""Quantities with units, parsed with pint at the boundary and returned as plain SI floats.

Every value in a protocol file carries its unit. This module turns text such as ``4.25 V``,
``0.5C``, ``C/20``, ``6.8 mA/cm^2``, ``50 %`` or ``60 degC`` into floats in the units cellrig
uses inside (volts, amperes, seconds, degrees Celsius, pascals, ampere-hours, watt-hours,
watts, ohms, hertz), or into a small tagged value where the meaning depends on the cell
(C-rates, current densities, shares of the nominal capacity).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

import pint

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>[^\s].*?)?\s*$")
_C_RATE_RE = re.compile(rf"^\s*(?P<number>{_NUMBER})?\s*C\s*(?:/\s*(?P<divisor>{_NUMBER}))?\s*$")
_UNIT_CHARS_RE = re.compile(r"^[A-Za-zµμΩ°%/^*·.0-9 _()-]+$")
_EXPONENT_RE = re.compile(r"(?:\^|\*\*)\s*[+-]?\d{1,2}(?![\d.^*])")
_CELSIUS_NAMES = frozenset({"degC", "°C", "celsius", "degree_Celsius", "degreeC", "C°"})
#: Time units as PyBaMM and people write them (``m`` is minutes in a duration, not metres).
TIME_ALIASES = {
    "m": "min", "mins": "min", "hr": "h", "hrs": "h", "sec": "s", "secs": "s",
    "d": "day", "days": "day",
}
#: Units that are C-rates (or coulombs, which cellrig does not use for charge).
_COULOMB_NAMES = frozenset({"C", "mC", "kC", "coulomb", "coulombs"})


class QuantityError(ValueError):
    """A value is not a quantity of the expected kind; says what was expected, with an example."""

    def __init__(self, message: str, expected: str, example: str) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.example = example


class Kind(StrEnum):
    """The kinds of quantity a protocol file can hold."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    POWER = "power"
    RESISTANCE = "resistance"
    TIME = "time"
    TEMPERATURE = "temperature"
    TEMPERATURE_DIFFERENCE = "temperature difference"
    PRESSURE = "pressure"
    CHARGE = "charge"
    ENERGY = "energy"
    FREQUENCY = "frequency"
    VOLTAGE_RATE = "voltage rate"
    FRACTION = "fraction"
    AREA = "area"
    MASS = "mass"
    LENGTH = "length"
    VOLUME = "volume"
    AREAL_CAPACITY = "areal capacity"
    SPECIFIC_CAPACITY = "specific capacity"


@dataclass(frozen=True, slots=True)
class _KindInfo:
    unit: str
    expected: str
    example: str


KIND_INFO: dict[Kind, _KindInfo] = {
    Kind.VOLTAGE: _KindInfo("V", "a voltage (V, mV)", "4.25 V"),
    Kind.CURRENT: _KindInfo(
        "A", "a current (A, mA, µA), a C-rate (0.5C, C/20) or a current density (mA/cm^2)", "0.5C"
    ),
    Kind.POWER: _KindInfo("W", "a power (W, mW)", "1.5 W"),
    Kind.RESISTANCE: _KindInfo("ohm", "a resistance (Ohm, mOhm, kOhm)", "10 Ohm"),
    Kind.TIME: _KindInfo("s", "a duration (s, min, minutes, h, hours, day)", "10 min"),
    Kind.TEMPERATURE: _KindInfo("degC", "a temperature (degC, K)", "60 degC"),
    Kind.TEMPERATURE_DIFFERENCE: _KindInfo("K", "a temperature difference (K, degC)", "0.5 K"),
    Kind.PRESSURE: _KindInfo("Pa", "a pressure (MPa, kPa, bar, psi)", "2 MPa"),
    Kind.CHARGE: _KindInfo(
        "Ah", "a charge (Ah, mAh) or a share of the nominal capacity (%)", "50 %"
    ),
    Kind.ENERGY: _KindInfo("Wh", "an energy (Wh, mWh)", "2.2 Wh"),
    Kind.FREQUENCY: _KindInfo("Hz", "a frequency (Hz, kHz, MHz, mHz)", "1 MHz"),
    Kind.VOLTAGE_RATE: _KindInfo("V/s", "a rate of voltage change (mV/s, mV/min, V/h)", "1 mV/min"),
    Kind.FRACTION: _KindInfo("", "a share (%, or a plain number between 0 and 1)", "80 %"),
    Kind.AREA: _KindInfo("m^2", "an area (cm^2, mm^2)", "93.28 cm^2"),
    Kind.MASS: _KindInfo("kg", "a mass (g, mg)", "2.95 g"),
    Kind.LENGTH: _KindInfo("m", "a length (µm, mm, cm)", "35 um"),
    Kind.VOLUME: _KindInfo("m^3", "a volume (cm^3, mm^3, mL)", "0.66 cm^3"),
    Kind.AREAL_CAPACITY: _KindInfo("A*h/m^2", "an areal capacity (mAh/cm^2)", "6.8 mAh/cm^2"),
    Kind.SPECIFIC_CAPACITY: _KindInfo("A*h/kg", "a specific capacity (mAh/g)", "215 mAh/g"),
}

#: The unit each kind is expressed in inside cellrig, for names and display.
SI_UNIT_NAME: dict[Kind, str] = {
    Kind.VOLTAGE: "V",
    Kind.CURRENT: "A",
    Kind.POWER: "W",
    Kind.RESISTANCE: "Ohm",
    Kind.TIME: "s",
    Kind.TEMPERATURE: "degC",
    Kind.TEMPERATURE_DIFFERENCE: "K",
    Kind.PRESSURE: "Pa",
    Kind.CHARGE: "Ah",
    Kind.ENERGY: "Wh",
    Kind.FREQUENCY: "Hz",
    Kind.VOLTAGE_RATE: "V/s",
    Kind.FRACTION: "1",
    Kind.AREA: "m^2",
    Kind.MASS: "kg",
    Kind.LENGTH: "m",
    Kind.VOLUME: "m^3",
    Kind.AREAL_CAPACITY: "Ah/m^2",
    Kind.SPECIFIC_CAPACITY: "Ah/kg",
}


class CurrentUnit(StrEnum):
    """How a current is written: absolute, as a C-rate, or as a current density."""

    AMPERE = "A"
    C_RATE = "C"
    DENSITY = "A/m^2"


@dataclass(frozen=True, slots=True)
class CurrentValue:
    """A current as written: amperes, a C-rate, or a density in A/m² (resolved per cell)."""

    unit: CurrentUnit
    value: float

    def amperes(self, capacity_ah: float | None, area_m2: float | None) -> float:
        """The absolute current for a cell; raises ValueError naming what the cell lacks."""
        if self.unit is CurrentUnit.AMPERE:
            return self.value
        if self.unit is CurrentUnit.C_RATE:
            if capacity_ah is None:
                raise ValueError("a C-rate needs the cell's nominal capacity")
            return self.value * capacity_ah
        if area_m2 is None:
            raise ValueError("a current density needs the cell's electrode area")
        return self.value * area_m2

    def __str__(self) -> str:
        if self.unit is CurrentUnit.C_RATE:
            return f"{self.value:g}C"
        if self.unit is CurrentUnit.DENSITY:
            return f"{self.value / 10:g} mA/cm^2"
        return format_si(self.value, "A")


@dataclass(frozen=True, slots=True)
class ChargeValue:
    """A charge as written: ampere-hours, or a share of the nominal capacity."""

    value: float
    of_nominal: bool

    def ampere_hours(self, capacity_ah: float | None) -> float:
        """The absolute charge for a cell; raises ValueError if a share has no capacity."""
        if not self.of_nominal:
            return self.value
        if capacity_ah is None:
            raise ValueError("a share of the nominal capacity needs the cell's capacity")
        return self.value * capacity_ah


@cache
def registry() -> pint.UnitRegistry[Any]:
    """The one unit registry, built on first use. Building it parses pint's definitions
    (about 0.13 s); pint keeps the parsed result in the user's cache folder, which brings a
    later start down to about 0.02 s. Where there is no writable cache folder (a sandboxed
    service), the registry is built without one."""
    try:
        units: pint.UnitRegistry[Any] = pint.UnitRegistry(cache_folder=":auto:")
    except OSError:
        units = pint.UnitRegistry()
    units.define("@alias ohm = Ohm")
    return units


def _fail(kind: Kind, message: str) -> QuantityError:
    info = KIND_INFO[kind]
    return QuantityError(message, info.expected, info.example)


def _split(text: str, kind: Kind) -> tuple[float, str]:
    match = _QUANTITY_RE.match(text)
    if match is None:
        raise _fail(kind, f"{text.strip()!r} is not a number followed by a unit")
    number = float(match.group("number"))
    if not math.isfinite(number):
        raise _fail(kind, f"{text.strip()!r} is too large")
    return number, (match.group("unit") or "").strip()


def _plausible_unit(unit: str) -> bool:
    """Whether ``unit`` is worth handing to pint: unit characters, numbers only as small
    exponents (pint evaluates ``10^10^10`` exactly, which would never finish)."""
    if len(unit) > 40 or not _UNIT_CHARS_RE.match(unit):
        return False
    return not any(char.isdigit() for char in _EXPONENT_RE.sub("", unit))


@lru_cache(maxsize=1024)
def _unit_factor(unit: str, target: str) -> tuple[float, str] | None:
    """Factor converting ``unit`` to ``target``, or None with the unit's dimension.

    None also for text pint cannot read and for units with an offset (``degF``), which no
    factor converts.
    """
    units = registry()
    try:
        parsed = units.Unit(unit)
    except Exception:  # pint's parser raises many kinds of error for text that is no unit
        return None
    try:
        offset = float(units.Quantity(0.0, parsed).to(target).magnitude)
        factor = float(units.Quantity(1.0, parsed).to(target).magnitude)
    except pint.errors.DimensionalityError:
        return math.nan, str(parsed.dimensionality)
    except (pint.errors.PintError, ArithmeticError, ValueError, TypeError):
        return None
    return (factor, "") if offset == 0.0 else None


def _convert(number: float, unit: str, kind: Kind, text: str) -> float:
    info = KIND_INFO[kind]
    if not _plausible_unit(unit):
        raise _fail(kind, f"{unit!r} is not a unit cellrig knows")
    converted = _unit_factor(unit, info.unit)
    if converted is None:
        raise _fail(kind, f"{unit!r} is not a unit cellrig knows")
    factor, _dimension = converted
    if math.isnan(factor):
        raise _fail(kind, f"{text.strip()!r} is not {info.expected.split(' (')[0]}")
    value = number * factor
    if not math.isfinite(value):
        raise _fail(kind, f"{text.strip()!r} is too large")
    return value


@lru_cache(maxsize=4096, typed=True)
def parse_quantity(value: object, kind: Kind) -> float:
    """Parse ``value`` as a quantity of ``kind`` and return it in cellrig's inside unit.

    Currents must be absolute here (use :func:`parse_current` for C-rates); charges must be
    absolute (use :func:`parse_charge` for shares of the nominal capacity).
    """
    if isinstance(value, bool) or value is None:
        raise _fail(kind, f"{value!r} is not {KIND_INFO[kind].expected.split(' (')[0]}")
    text = str(value)
    if kind is Kind.FRACTION:
        return _parse_fraction(text)
    if kind is Kind.CURRENT:
        current = parse_current(text)
        if current.unit is not CurrentUnit.AMPERE:
            raise _fail(kind, f"{text!r} must be an absolute current here (A, mA)")
        return current.value
    number, unit = _split(text, kind)
    if not unit:
        raise _fail(kind, f"{text.strip()!r} has no unit: write it as {KIND_INFO[kind].example}")
    if kind is Kind.TEMPERATURE:
        if unit in _CELSIUS_NAMES:
            return number
        try:
            return _convert(number, unit, Kind.TEMPERATURE_DIFFERENCE, text) - 273.15
        except QuantityError as exc:  # converted as kelvin, but a temperature was expected
            message = exc.message.replace("a temperature difference", "a temperature")
            raise _fail(kind, message) from None
    if kind is Kind.TEMPERATURE_DIFFERENCE and unit in _CELSIUS_NAMES:
        return number
    if kind is Kind.TIME:
        unit = TIME_ALIASES.get(unit, unit)
    if kind is Kind.CHARGE and unit in _COULOMB_NAMES:
        raise _fail(kind, f"{text.strip()!r}: write a charge in Ah or mAh ('C' means a C-rate "
                    "in protocols)")
    return _convert(number, unit, kind, text)


def _parse_fraction(text: str) -> float:
    number, unit = _split(text, Kind.FRACTION)
    if unit in ("%", "percent"):
        return number / 100.0
    if unit == "":
        return number
    raise _fail(Kind.FRACTION, f"{text.strip()!r} is not a share")


@lru_cache(maxsize=4096, typed=True)
def parse_current(value: object) -> CurrentValue:
    """Parse an absolute current, a C-rate or a current density."""
    if isinstance(value, bool) or value is None:
        raise _fail(Kind.CURRENT, f"{value!r} is not a current")
    text = str(value)
    rate = _C_RATE_RE.match(text)
    if rate is not None:
        number = float(rate.group("number")) if rate.group("number") else 1.0
        divisor = float(rate.group("divisor")) if rate.group("divisor") else 1.0
        if divisor == 0 or not math.isfinite(number / divisor):
            raise _fail(Kind.CURRENT, f"{text.strip()!r} is not a usable C-rate")
        return CurrentValue(CurrentUnit.C_RATE, number / divisor)
    number, unit = _split(text, Kind.CURRENT)
    if not unit:
        raise _fail(Kind.CURRENT, f"{text.strip()!r} has no unit: write 0.5C, 100 mA or 1 mA/cm^2")
    if "/" in unit:
        density = _try_convert(number, unit, "A/m^2")
        if density is not None:
            return CurrentValue(CurrentUnit.DENSITY, density)
    return CurrentValue(CurrentUnit.AMPERE, _convert(number, unit, Kind.CURRENT, text))


def _try_convert(number: float, unit: str, target: str) -> float | None:
    if not _plausible_unit(unit):
        return None
    converted = _unit_factor(unit, target)
    if converted is None or math.isnan(converted[0]):
        return None
    return number * converted[0]


@lru_cache(maxsize=4096, typed=True)
def parse_charge(value: object) -> ChargeValue:
    """Parse a charge in Ah/mAh or a share of the nominal capacity in %."""
    if isinstance(value, bool) or value is None:
        raise _fail(Kind.CHARGE, f"{value!r} is not a charge")
    text = str(value)
    number, unit = _split(text, Kind.CHARGE)
    if unit in ("%", "percent"):
        return ChargeValue(number / 100.0, of_nominal=True)
    if not unit:
        raise _fail(Kind.CHARGE, f"{text.strip()!r} has no unit: write 300 mAh or 50 %")
    if unit in _COULOMB_NAMES:
        raise _fail(Kind.CHARGE, f"{text.strip()!r}: write a charge in Ah or mAh ('C' means a "
                    "C-rate in protocols)")
    return ChargeValue(_convert(number, unit, Kind.CHARGE, text), of_nominal=False)


@lru_cache(maxsize=4096, typed=True)
def classify(value: object) -> Kind | None:
    """The kind a value's unit says it is (for parameters), or None for plain numbers/text."""
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return None
    text = str(value)
    if _C_RATE_RE.match(text):
        return Kind.CURRENT
    match = _QUANTITY_RE.match(text)
    if match is None or not match.group("unit"):
        return None
    unit = match.group("unit").strip()
    if unit in _CELSIUS_NAMES:
        return Kind.TEMPERATURE
    if unit in ("%", "percent"):
        return Kind.FRACTION
    for kind in (Kind.CURRENT, Kind.VOLTAGE, Kind.TIME, Kind.PRESSURE, Kind.CHARGE, Kind.ENERGY,
                 Kind.POWER, Kind.RESISTANCE, Kind.FREQUENCY, Kind.VOLTAGE_RATE, Kind.AREA,
                 Kind.MASS, Kind.LENGTH, Kind.AREAL_CAPACITY, Kind.SPECIFIC_CAPACITY):
        if _try_convert(1.0, unit, KIND_INFO[kind].unit) is not None:
            return kind
    if _try_convert(1.0, unit, "A/m^2") is not None:
        return Kind.CURRENT
    if _try_convert(1.0, unit, "K") is not None:
        return Kind.TEMPERATURE
    return None


def format_si(value: float, unit: str) -> str:
    """A float with an engineering prefix, for display (``0.0634 A`` -> ``63.4 mA``)."""
    if value == 0 or not math.isfinite(value) or unit in ("degC", "1", "%"):
        return f"{value:g} {unit}".strip()
    magnitude = abs(value)
    for factor, prefix in ((1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ")):
        if magnitude >= factor * 0.9995:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value / 1e-9:.4g} n{unit}"


def format_duration(seconds: float) -> str:
    """A duration as a person writes it: ``45 s``, ``1.5 min``, ``10 min``, ``1.5 h``."""
    if not math.isfinite(seconds):
        return f"{seconds} s"
    for size, unit in ((86400.0, "day"), (3600.0, "h"), (60.0, "min")):
        if abs(seconds) >= size and (abs(seconds) / size >= 1.5 or seconds % size == 0):
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds:.4g} s"

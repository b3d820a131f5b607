"""Jig geometry: stack pressure ↔ force ↔ regulator pressure, from the station configuration.

Stack pressure is the force on the stack over the cell's area: ``p = F / A_cell``. In a
pneumatic jig the force comes from gas pressure behind a piston plus whatever presses without
gas (the platen's weight, return springs): ``F = preload + p_regulator · A_piston``. A bolted
jig has no piston; its force is only measured.

The station configuration writes every value with its unit::

    [channels.ch1.jig]
    kind = "pneumatic"
    cell_area = "93.28 cm^2"
    piston_area = "0.1 m^2"
    preload = "150 N"
    max_force = "100 kN"
    max_pressure = "10 MPa"

:func:`geometry_from_config` reads such a table (pint at the boundary) into plain SI floats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pint

from cellrig.errors import ConfigError, Diagnostic, SourceLocation

_QUANTITY_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S.*?)\s*$")
_UNIT_RE = re.compile(r"^[A-Za-zµμ/^*·.0-9 _()-]+$")
_BIG_EXPONENT_RE = re.compile(r"\d{3,}|\^\s*[^\d\s-]|\^[^^]*\^")
_EXAMPLE = ('cell_area = "93.28 cm^2"\npiston_area = "0.1 m^2"\npreload = "150 N"\n'
            'max_force = "100 kN"\nmax_pressure = "10 MPa"')


@dataclass(frozen=True, slots=True)
class JigGeometry:
    """A jig's areas and limits in SI units; ``piston_area_m2`` is None for a bolted jig."""

    cell_area_m2: float
    max_force_n: float = math.inf
    max_stack_pressure_pa: float = math.inf
    piston_area_m2: float | None = None
    preload_n: float = 0.0

    def __post_init__(self) -> None:
        if not self.cell_area_m2 > 0:
            raise ValueError("cell_area_m2 must be positive")
        if self.piston_area_m2 is not None and not self.piston_area_m2 > 0:
            raise ValueError("piston_area_m2 must be positive")
        if not (self.max_force_n > 0 and self.max_stack_pressure_pa > 0):
            raise ValueError("the maximum force and pressure must be positive")
        if math.isinf(self.max_force_n) and math.isinf(self.max_stack_pressure_pa):
            raise ValueError("a jig needs a maximum force or a maximum stack pressure")
        if self.preload_n < 0:
            raise ValueError("preload_n cannot be negative")

    @property
    def pneumatic(self) -> bool:
        """Whether the jig has a piston (and so a regulator to set)."""
        return self.piston_area_m2 is not None

    @property
    def max_pressure_pa(self) -> float:
        """The highest stack pressure the jig may apply: its own limit, or its maximum force
        over the cell's area, whichever is lower."""
        return min(self.max_stack_pressure_pa, self.max_force_n / self.cell_area_m2)

    @property
    def max_safe_force_n(self) -> float:
        """The force above which the jig's interlock trips."""
        return min(self.max_force_n, self.max_stack_pressure_pa * self.cell_area_m2)

    def force_for_pressure(self, pressure_pa: float) -> float:
        """The force that gives ``pressure_pa`` on the cell."""
        return pressure_pa * self.cell_area_m2

    def pressure_for_force(self, force_n: float) -> float:
        """The stack pressure a force gives."""
        return force_n / self.cell_area_m2

    def regulator_for_force(self, force_n: float) -> float:
        """The regulator pressure that makes ``force_n`` (0 below the preload)."""
        return max(force_n - self.preload_n, 0.0) / self._piston()

    def force_for_regulator(self, regulator_pa: float) -> float:
        """The force a regulator pressure makes."""
        return self.preload_n + regulator_pa * self._piston()

    def regulator_for_pressure(self, pressure_pa: float) -> float:
        """The regulator pressure that gives ``pressure_pa`` on the cell."""
        return self.regulator_for_force(self.force_for_pressure(pressure_pa))

    def pressure_for_regulator(self, regulator_pa: float) -> float:
        """The stack pressure a regulator pressure gives."""
        return self.pressure_for_force(self.force_for_regulator(regulator_pa))

    @property
    def regulator_per_pressure(self) -> float:
        """Regulator pascals per stack pascal (the loop's gain conversion)."""
        return self.cell_area_m2 / self._piston()

    def _piston(self) -> float:
        if self.piston_area_m2 is None:
            raise ValueError("a bolted jig has no piston: its force cannot be set")
        return self.piston_area_m2


_KEYS = {  # key: (unit to convert to, what it is, example value)
    "cell_area": ("m^2", "the cell's active area", "93.28 cm^2"),
    "piston_area": ("m^2", "the piston's area (pneumatic jigs)", "0.1 m^2"),
    "preload": ("N", "the force on the stack with no gas pressure", "150 N"),
    "max_force": ("N", "the highest force the jig and gauge may see", "100 kN"),
    "max_pressure": ("Pa", "the highest stack pressure the jig may apply", "10 MPa"),
}


def geometry_from_config(values: Mapping[str, object], location: SourceLocation,
                         *, pneumatic: bool) -> JigGeometry:
    """Read a jig's table from the station configuration; raises :class:`ConfigError`
    naming every wrong or missing key at ``location`` (the table's place in the file)."""
    diagnostics: list[Diagnostic] = []
    parsed: dict[str, float] = {}

    def fail(message: str, expected: str, example: str) -> None:
        diagnostics.append(Diagnostic(location, message, expected=expected, example=example))

    for key, raw in values.items():
        if key == "kind":
            continue
        if key not in _KEYS:
            fail(f"unknown jig setting {key!r}", f"one of {', '.join(_KEYS)}", _EXAMPLE)
            continue
        unit, meaning, example = _KEYS[key]
        value = _to_si(raw, unit)
        if value is None or not value >= 0 or (key != "preload" and value == 0):
            fail(f"jig setting {key} = {raw!r} is not {meaning} with a unit",
                 f"a positive quantity convertible to {unit}", f'{key} = "{example}"')
            continue
        parsed[key] = value
    required = ["cell_area", "piston_area"] if pneumatic else ["cell_area"]
    for key in required:
        if key not in parsed and key not in values:
            fail(f"the jig needs {key} ({_KEYS[key][1]})", f"{key} with a unit", _EXAMPLE)
    if "max_force" not in values and "max_pressure" not in values:
        fail("the jig needs max_force or max_pressure (its interlock)",
             "max_force and/or max_pressure with units", _EXAMPLE)
    if diagnostics:
        raise ConfigError(diagnostics)
    return JigGeometry(
        cell_area_m2=parsed["cell_area"],
        max_force_n=parsed.get("max_force", math.inf),
        max_stack_pressure_pa=parsed.get("max_pressure", math.inf),
        piston_area_m2=parsed.get("piston_area") if pneumatic else None,
        preload_n=parsed.get("preload", 0.0))


def _to_si(raw: object, unit: str) -> float | None:
    if not isinstance(raw, str):
        return None
    match = _QUANTITY_RE.match(raw)
    if match is None:
        return None
    factor = unit_factor(match.group(2), unit)
    if factor is None:
        return None
    value = float(match.group(1)) * factor
    return value if math.isfinite(value) else None


@cache
def _registry() -> pint.UnitRegistry[Any]:
    return pint.UnitRegistry()


def unit_factor(unit: str, target: str) -> float | None:
    """How many ``target`` one ``unit`` is (``unit_factor("psi", "Pa")`` → 6894.76), or None
    when ``unit`` is no unit of that dimension. Text is checked before pint sees it: pint
    evaluates exponents exactly, and ``10^10^10`` would never finish."""
    if len(unit) > 40 or not _UNIT_RE.match(unit) or _BIG_EXPONENT_RE.search(unit):
        return None
    try:
        factor = float(_registry().Quantity(1.0, unit).m_as(target))
    except Exception:  # pint raises many kinds of error for text that is no unit
        return None
    return factor if math.isfinite(factor) and factor > 0 else None

"""Reading cell definition files: YAML with a unit on every quantity, checked field by field.

A file looks like this (every section but ``cell`` may be left out; what is left out keeps the
paper cell's value, see :class:`~cellrig.simulators.cell_params.CellParameters`)::

    cellrig-cell: 1
    name: pellet-10mm
    description: a 10 mm pellet cell
    cell:                       # the fields of a protocol's cell: section
      areal_capacity: 5.5 mAh/cm^2
      area: 0.7854 cm^2
      specific_capacity: 215 mAh/g
    electrolyte: {thickness: 500 um, conductivity: 1.8 mS/cm, activation_energy: 0.35 eV}
    interface: {resistance: 20 Ohm*cm^2}

Every problem is reported at once, each with the file, line and column, what was expected and
an example, as a :class:`~cellrig.errors.ConfigError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

from cellrig.errors import ConfigError, Diagnostic, SourceLocation
from cellrig.protocols.quantities import (
    KIND_INFO,
    Kind,
    QuantityError,
    parse_quantity,
    registry,
)

VERSION_KEY = "cellrig-cell"
EXAMPLE = "cellrig-cell: 1\nname: my-cell\ncell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}"
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")
_UNIT_TEXT = re.compile(r"^[A-Za-zµμΩ°/^*·.() _-]*(?:\^[+-]?\d[A-Za-zµμΩ°/^*·.() _-]*)*$")


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit outside the protocol kinds: the SI unit to convert to, and how to say it."""

    target: str
    expected: str
    example: str


@dataclass(frozen=True, slots=True)
class Number:
    """A plain number (no unit), with its allowed range."""

    low: float
    high: float
    expected: str
    example: str


Converter = Kind | Unit | Number
ASR = Unit("ohm*m^2", "an area-specific resistance (Ohm*cm^2)", "20 Ohm*cm^2")
ENERGY_EV = Unit("eV", "an activation energy (eV)", "0.35 eV")
CAPACITANCE = Unit("F/m^2", "a capacitance per area (uF/cm^2, mF/cm^2)", "10 uF/cm^2")
SWELL = Unit("m/(A*h/m^2)", "a thickness per areal capacity (um/(mAh/cm^2))", "4.85 um/(mAh/cm^2)")

#: Section → key → (CellParameters field, converter, whether zero is allowed).
SECTIONS: dict[str, dict[str, tuple[str, Converter, bool]]] = {
    "electrolyte": {
        "thickness": ("electrolyte_thickness_m", Kind.LENGTH, False),
        "conductivity": ("electrolyte_conductivity_s_per_m",
                         Unit("S/m", "a conductivity (mS/cm, S/m)", "1.8 mS/cm"), False),
        "activation_energy": ("electrolyte_activation_energy_ev", ENERGY_EV, True),
    },
    "series": {
        "resistance": ("series_resistance_ohm", Kind.RESISTANCE, True),
        "inductance": ("inductance_h", Unit("H", "an inductance (nH, uH)", "20 nH"), True),
    },
    "interface": {
        "resistance": ("interface_asr_ohm_m2", ASR, False),
        "activation_energy": ("interface_activation_energy_ev", ENERGY_EV, True),
        "capacitance": ("interface_capacitance_f_per_m2", CAPACITANCE, False),
        "cpe_exponent": ("interface_cpe_exponent",
                         Number(0.5, 1.0, "a CPE exponent between 0.5 and 1", "0.85"), False),
        "contact_pressure": ("contact_pressure_pa", Kind.PRESSURE, False),
        "contact_exponent": ("contact_exponent",
                             Number(0.5, 10.0, "a number between 0.5 and 10", "2"), False),
    },
    "charge_transfer": {
        "resistance": ("charge_transfer_asr_ohm_m2", ASR, False),
        "activation_energy": ("charge_transfer_activation_energy_ev", ENERGY_EV, True),
        "capacitance": ("charge_transfer_capacitance_f_per_m2", CAPACITANCE, False),
    },
    "diffusion": {
        "resistance": ("diffusion_asr_ohm_m2", ASR, False),
        "time_constant": ("diffusion_time_constant_s", Kind.TIME, False),
        "activation_energy": ("diffusion_activation_energy_ev", ENERGY_EV, True),
    },
    "lithiation": {
        "resistance": ("lithiation_asr_ohm_m2", ASR, True),
        "width": ("lithiation_width_ah_per_kg", Kind.SPECIFIC_CAPACITY, False),
        "activation_energy": ("lithiation_activation_energy_ev", ENERGY_EV, True),
    },
    "anode": {
        "agc_capacity": ("agc_capacity_ah_m2", Kind.AREAL_CAPACITY, False),
        "agc_potential": ("agc_potential_v", Kind.VOLTAGE, True),
        "knee_width": ("agc_knee_width_ah_m2", Kind.AREAL_CAPACITY, False),
        "bare_potential": ("bare_anode_potential_v", Kind.VOLTAGE, True),
        "bare_width": ("bare_anode_width_ah_m2", Kind.AREAL_CAPACITY, False),
    },
    "ageing": {
        "first_charge_loss": ("first_charge_loss_fraction", Kind.FRACTION, True),
        "first_charge_share": ("first_charge_loss_share", Kind.FRACTION, False),
        "coulombic_loss": ("coulombic_loss_fraction", Kind.FRACTION, True),
        "fade_acceleration": ("fade_acceleration_fraction", Kind.FRACTION, False),
        "pressure_exponent": ("fade_pressure_exponent",
                              Number(0.0, 10.0, "a number between 0 and 10", "2"), True),
        "interface_growth": ("interface_growth",
                             Number(0.0, 1e6, "a non-negative number", "2"), True),
    },
    "swell": {
        "lithium": ("lithium_swell_m_per_ah_m2", SWELL, True),
        "cathode_contraction": ("cathode_contraction_m_per_ah_m2", SWELL, True),
    },
    "thermal": {
        "heat_capacity": ("heat_capacity_j_per_k",
                          Unit("J/K", "a heat capacity (J/K)", "10 J/K"), False),
        "thermal_resistance": ("thermal_resistance_k_per_w",
                               Unit("K/W", "a thermal resistance (K/W)", "3 K/W"), False),
    },
}
#: Fields of a protocol's cell section the model uses, and the metadata it accepts as they are.
CELL_QUANTITIES: dict[str, Kind] = {
    "capacity": Kind.CHARGE, "areal_capacity": Kind.AREAL_CAPACITY, "area": Kind.AREA,
    "mass": Kind.MASS, "specific_capacity": Kind.SPECIFIC_CAPACITY, "volume": Kind.VOLUME,
    "reference_offset": Kind.VOLTAGE,
}
CELL_TEXT = ("id", "chemistry", "format", "notes", "fabrication")
TOP_KEYS = (VERSION_KEY, "name", "description", "reference_temperature", "cell", *SECTIONS)
CELL_EXAMPLE = (
    "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2, specific_capacity: 215 mAh/g}"
)


class _Reader:
    """Collects diagnostics while walking the composed YAML nodes of one file."""

    def __init__(self, text: str, filename: str) -> None:
        self.lines = text.splitlines()
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []

    def report(self, node: yaml.Node | None, message: str, expected: str | None = None,
               example: str | None = None) -> None:
        line = node.start_mark.line if node is not None else 0
        column = node.start_mark.column if node is not None else 0
        source = self.lines[line] if line < len(self.lines) else None
        self.diagnostics.append(Diagnostic(SourceLocation(self.filename, line + 1, column + 1),
                                           message, expected=expected, example=example,
                                           source_line=source))

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...],
                example: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.report(node, f"{what} must be a mapping", example=example)
            return {}
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
            if name in found:
                self.report(key, f"{name!r} appears twice in {what}", example=example)
            elif name not in allowed:
                self.report(key, f"unknown key {name!r} in {what}",
                            expected=f"one of {', '.join(allowed)}", example=example)
            else:
                found[name] = (key, value)
        return found

    def scalar(self, node: yaml.Node, what: str, example: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.report(node, f"{what} must be a single value", example=example)
            return None
        return str(node.value)

    def quantity(self, node: yaml.Node, converter: Converter, what: str,
                 zero_allowed: bool, signed: bool = False) -> float | None:
        example = _example(converter)
        text = self.scalar(node, what, f"{what.split()[-1]}: {example}")
        if text is None:
            return None
        try:
            value = _convert(text, converter)
        except QuantityError as exc:
            self.report(node, f"{what}: {exc.message}", exc.expected, exc.example)
            return None
        if not math.isfinite(value) or (not signed and (
                value < 0 or (value == 0 and not zero_allowed))):
            bound = "zero or more" if zero_allowed else "more than zero"
            self.report(node, f"{what} must be {bound}", expected=_expected(converter),
                        example=example)
            return None
        if isinstance(converter, Number) and not converter.low <= value <= converter.high:
            self.report(node, f"{what} is out of range", converter.expected, converter.example)
            return None
        if converter is Kind.FRACTION and value > 1:
            self.report(node, f"{what} must be at most 100 %", "a share up to 100 %", "3 %")
            return None
        return value


def _example(converter: Converter) -> str:
    return KIND_INFO[converter].example if isinstance(converter, Kind) else converter.example


def _expected(converter: Converter) -> str:
    return KIND_INFO[converter].expected if isinstance(converter, Kind) else converter.expected


def _convert(text: str, converter: Converter) -> float:
    if isinstance(converter, Kind):
        return parse_quantity(text, converter)
    match = _NUMBER.match(text)
    if match is None:
        raise QuantityError(f"{text.strip()!r} is not a number", converter.expected,
                            converter.example)
    number, unit = float(match.group(1)), match.group(2)
    if isinstance(converter, Number):
        if unit:
            raise QuantityError(f"{text.strip()!r} takes no unit", converter.expected,
                                converter.example)
        return number
    if not unit:
        raise QuantityError(f"{text.strip()!r} has no unit", converter.expected, converter.example)
    if len(unit) > 40 or not _UNIT_TEXT.match(unit):
        raise QuantityError(f"{unit!r} is not a unit cellrig knows", converter.expected,
                            converter.example)
    try:
        return float(registry().Quantity(number, unit).to(converter.target).magnitude)
    except Exception:  # pint raises many kinds of error for text that is no unit
        raise QuantityError(f"{text.strip()!r} is not {converter.expected.split(' (')[0]}",
                            converter.expected, converter.example) from None


def parse_cell_text(text: str, filename: str) -> tuple[dict[str, float], dict[str, str]]:
    """The numeric and text fields of CellParameters a file sets; ConfigError lists every
    problem."""
    reader = _Reader(text, filename)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line, mark.column) if mark is not None else (0, 0)
        source = reader.lines[line] if line < len(reader.lines) else None
        raise ConfigError([Diagnostic(SourceLocation(filename, line + 1, column + 1),
                                      f"not valid YAML: {exc.problem or exc}",
                                      source_line=source)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Diagnostic(SourceLocation(filename, 1, 1),
                                      f"not valid YAML: {exc}")]) from None
    if root is None:
        raise ConfigError([Diagnostic(SourceLocation(filename, 1, 1), "the cell file is empty",
                                      example=EXAMPLE)])
    top = reader.mapping(root, "a cell definition", TOP_KEYS, EXAMPLE)
    numbers: dict[str, float] = {}
    strings: dict[str, str] = {}
    _read_header(reader, root, top, numbers, strings)
    _read_cell(reader, root, top.get("cell"), numbers, strings)
    for section, keys in SECTIONS.items():
        if section not in top:
            continue
        _, section_node = top[section]
        first = [f"{key}: {_example(converter)}" for key, (_, converter, _) in keys.items()]
        example = f"{section}: {{{', '.join(first[:2])}}}"
        entries = reader.mapping(section_node, f"section {section!r}", tuple(keys), example)
        for key, (_, value_node) in entries.items():
            field_name, converter, zero_allowed = keys[key]
            value = reader.quantity(value_node, converter, f"{section} {key}", zero_allowed)
            if value is not None:
                numbers[field_name] = value
    if reader.diagnostics:
        raise ConfigError(sorted(reader.diagnostics,
                                 key=lambda d: (d.location.line, d.location.column)))
    return numbers, strings


def _read_header(reader: _Reader, root: yaml.Node, top: dict[str, tuple[yaml.Node, yaml.Node]],
                 numbers: dict[str, float], strings: dict[str, str]) -> None:
    if VERSION_KEY not in top:
        if isinstance(root, yaml.MappingNode):
            reader.report(root, f"a cell definition starts with '{VERSION_KEY}: 1'",
                          example=EXAMPLE)
    else:
        version = reader.scalar(top[VERSION_KEY][1], VERSION_KEY, f"{VERSION_KEY}: 1")
        if version is not None and version.strip() != "1":
            reader.report(top[VERSION_KEY][1], f"unsupported {VERSION_KEY} version {version!r}",
                          expected="1", example=f"{VERSION_KEY}: 1")
    for key in ("name", "description"):
        if key in top:
            text = reader.scalar(top[key][1], key, f"{key}: text")
            if text is not None:
                strings[key] = text.strip()
    if "name" not in top and isinstance(root, yaml.MappingNode):
        reader.report(root, "a cell definition needs a name", example=EXAMPLE)
    if "reference_temperature" in top:
        value = reader.quantity(top["reference_temperature"][1], Kind.TEMPERATURE,
                                "reference_temperature", zero_allowed=True, signed=True)
        if value is not None:
            numbers["reference_temperature_c"] = value


def _read_cell(reader: _Reader, root: yaml.Node, entry: tuple[yaml.Node, yaml.Node] | None,
               numbers: dict[str, float], strings: dict[str, str]) -> None:
    if entry is None:
        if isinstance(root, yaml.MappingNode):
            reader.report(root, "a cell definition needs a 'cell:' section with its capacity "
                          "and area", example=CELL_EXAMPLE)
        return
    key_node, node = entry
    allowed = (*CELL_QUANTITIES, *CELL_TEXT)
    cell = reader.mapping(node, "the cell section", allowed, CELL_EXAMPLE)
    values: dict[str, float] = {}
    for key, (_, value_node) in cell.items():
        if key in CELL_QUANTITIES:
            signed = key == "reference_offset"
            value = reader.quantity(value_node, CELL_QUANTITIES[key], f"cell {key}", signed,
                                    signed)
            if value is not None:
                values[key] = value
        elif key in ("chemistry", "format"):
            text = reader.scalar(value_node, f"cell {key}", f"{key}: text")
            if text is not None:
                strings[key] = text.strip()
    if "area" not in values and "area" not in cell:
        reader.report(key_node, "the cell needs its electrode area (the model's resistances "
                      "are per area)", example=CELL_EXAMPLE)
        return
    area = values.get("area")
    if area is None:
        return
    numbers["area_m2"] = area
    capacity = values.get("capacity")
    if capacity is None and "areal_capacity" in values:
        capacity = values["areal_capacity"] * area
    if capacity is None:
        if not any(key in cell for key in ("capacity", "areal_capacity")):
            reader.report(key_node, "the cell needs its capacity (capacity, or areal_capacity "
                          "with area)", example=CELL_EXAMPLE)
        return
    numbers["capacity_ah"] = capacity
    if "specific_capacity" in values:
        numbers["specific_capacity_ah_per_kg"] = values["specific_capacity"]
    elif "mass" in values:
        numbers["specific_capacity_ah_per_kg"] = capacity / values["mass"]

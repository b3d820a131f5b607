"""Cell definition files: the built-in cells, and clear errors for bad files."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from cellrig.errors import ConfigError
from cellrig.simulators.cell_params import (
    DEFAULT_CELL,
    CellParameters,
    builtin_cells,
    load_builtin_cell,
    load_cell_file,
    load_cell_text,
)

MINIMAL = "cellrig-cell: 1\nname: tiny\ncell: {capacity: 5 mAh, area: 1 cm^2}\n"


def test_builtin_cells() -> None:
    assert set(builtin_cells()) == {"paper-pouch-0.6Ah", "pouch-2x2cm", "pellet-10mm"}
    pouch = load_builtin_cell("pouch-2x2cm")
    assert pouch.capacity_ah == pytest.approx(6.8e-3 * 4, rel=1e-9)
    pellet = load_builtin_cell("pellet-10mm")
    assert pellet.area_m2 == pytest.approx(math.pi * 0.005 ** 2, rel=1e-3)
    assert pellet.areal_capacity_ah_m2 == pytest.approx(55.0, rel=1e-9)  # 5.5 mAh/cm²
    assert pellet.electrolyte_thickness_m == pytest.approx(500e-6)
    with pytest.raises(KeyError, match="no built-in cell"):
        load_builtin_cell("coin")


def test_paper_file_states_the_defaults() -> None:
    loaded = load_builtin_cell(DEFAULT_CELL)
    defaults = CellParameters()
    for field in dataclasses.fields(CellParameters):
        value, default = getattr(loaded, field.name), getattr(defaults, field.name)
        if isinstance(default, float):
            assert value == pytest.approx(default, rel=1e-12), field.name
        else:
            assert value == default, field.name


def test_minimal_file_keeps_the_defaults() -> None:
    params = load_cell_text(MINIMAL, "tiny.yaml")
    assert params.name == "tiny"
    assert params.capacity_ah == pytest.approx(5e-3)
    assert params.area_m2 == pytest.approx(1e-4)
    assert params.interface_asr_ohm_m2 == CellParameters().interface_asr_ohm_m2


def test_sections_override_with_units() -> None:
    text = MINIMAL + (
        "reference_temperature: 60 degC\n"
        "electrolyte: {thickness: 0.1 mm, conductivity: 3 mS/cm}\n"
        "interface: {resistance: 5 Ohm*cm^2, contact_pressure: 0.5 MPa}\n"
        "ageing: {coulombic_loss: 0.01 %}\n"
        "swell: {lithium: 4.85 um/(mAh/cm^2)}\n"
        "thermal: {heat_capacity: 2 J/K}\n"
    )
    params = load_cell_text(text)
    assert params.reference_temperature_c == 60.0
    assert params.electrolyte_thickness_m == pytest.approx(1e-4)
    assert params.electrolyte_conductivity_s_per_m == pytest.approx(0.3)
    assert params.interface_asr_ohm_m2 == pytest.approx(5e-4)
    assert params.contact_pressure_pa == pytest.approx(5e5)
    assert params.coulombic_loss_fraction == pytest.approx(1e-4)
    assert params.lithium_swell_m_per_ah_m2 == pytest.approx(4.85e-7)
    assert params.heat_capacity_j_per_k == pytest.approx(2.0)


def test_capacity_from_specific_capacity_and_mass() -> None:
    text = ("cellrig-cell: 1\nname: m\ncell: {capacity: 634 mAh, area: 93.28 cm^2, "
            "mass: 2.95 g}\n")
    params = load_cell_text(text)
    assert params.specific_capacity_ah_per_kg == pytest.approx(634 / 2.95, rel=1e-9)


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    (MINIMAL + "interface: {resistance: 20 Ohm}\n", 4, 25, "interface resistance"),
    (MINIMAL + "electrolyte: {thickness: 35}\n", 4, 26, "has no unit"),
    (MINIMAL + "interface: {resistnce: 20 Ohm*cm^2}\n", 4, 13, "unknown key 'resistnce'"),
    (MINIMAL + "anode: {agc_capacity: -1 mAh/cm^2}\n", 4, 23, "must be more than zero"),
    (MINIMAL + "interface: {cpe_exponent: 1.5}\n", 4, 27, "out of range"),
    (MINIMAL + "ageing: {first_charge_loss: 300 %}\n", 4, 29, "at most 100 %"),
    (MINIMAL + "colour: blue\n", 4, 1, "unknown key 'colour'"),
    ("cellrig-cell: 2\nname: x\ncell: {capacity: 5 mAh, area: 1 cm^2}\n", 1, 15,
     "unsupported cellrig-cell version"),
    ("cellrig-cell: 1\nname: x\ncell: {capacity: 5 mAh}\n", 3, 1, "electrode area"),
    ("cellrig-cell: 1\nname: x\ncell: {area: 1 cm^2}\n", 3, 1, "needs its capacity"),
    ("cellrig-cell: 1\nname: x\n", 1, 1, "needs a 'cell:' section"),
    ("cellrig-cell: 1\nname: [x\n", 3, 1, "not valid YAML"),
    ("", 1, 1, "empty"),
])
def test_errors_name_file_line_and_column(text: str, line: int, column: int,
                                          message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_cell_text(text, "bad.yaml")
    first = caught.value.diagnostics[0]
    assert message in first.message
    assert (first.location.file, first.location.line, first.location.column) == (
        "bad.yaml", line, column)
    rendered = caught.value.render()
    assert f"bad.yaml:{line}:{column}" in rendered


def test_every_error_is_reported_at_once() -> None:
    text = MINIMAL + "interface: {resistance: 20 Ohm, capacitance: 10 uF}\n"
    with pytest.raises(ConfigError) as caught:
        load_cell_text(text, "bad.yaml")
    assert len(caught.value.diagnostics) == 2
    assert all(d.example for d in caught.value.diagnostics)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the cell file"):
        load_cell_file(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL, encoding="utf-8")
    assert load_cell_file(good).name == "tiny"

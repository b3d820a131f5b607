"""Jig geometry: conversions between stack pressure, force and regulator pressure, and the
station configuration's jig table."""

from __future__ import annotations

import math

import pytest

from cellrig.drivers.jig_geometry import JigGeometry, geometry_from_config
from cellrig.errors import ConfigError, SourceLocation

HERE = SourceLocation("station.toml", 12, 1)


def pouch_jig() -> JigGeometry:
    return JigGeometry(cell_area_m2=93.28e-4, piston_area_m2=0.1, preload_n=150.0,
                       max_force_n=100e3, max_stack_pressure_pa=10e6)


def test_round_trips() -> None:
    jig = pouch_jig()
    assert jig.force_for_pressure(2e6) == pytest.approx(18_656.0)
    assert jig.pressure_for_force(18_656.0) == pytest.approx(2e6)
    regulator_pa = jig.regulator_for_pressure(2e6)
    assert regulator_pa == pytest.approx((18_656.0 - 150.0) / 0.1)
    assert jig.pressure_for_regulator(regulator_pa) == pytest.approx(2e6)
    assert jig.regulator_per_pressure == pytest.approx(93.28e-4 / 0.1)


def test_preload_alone_needs_no_gas() -> None:
    jig = pouch_jig()
    assert jig.regulator_for_force(100.0) == 0.0
    assert jig.pressure_for_regulator(0.0) == pytest.approx(150.0 / 93.28e-4)


def test_max_pressure_is_the_lower_of_both_limits() -> None:
    assert pouch_jig().max_pressure_pa == pytest.approx(10e6)
    by_force = JigGeometry(cell_area_m2=78.5e-6, max_force_n=500.0)
    assert by_force.max_pressure_pa == pytest.approx(500.0 / 78.5e-6)
    assert by_force.max_safe_force_n == 500.0


def test_bolted_jig_has_no_regulator() -> None:
    bolted = JigGeometry(cell_area_m2=1e-4, max_force_n=1e3)
    assert not bolted.pneumatic
    with pytest.raises(ValueError, match="bolted"):
        bolted.regulator_for_pressure(1e6)


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"cell_area_m2": 0.0, "max_force_n": 1.0}, "cell_area_m2"),
    ({"cell_area_m2": 1e-4}, "maximum force or a maximum stack pressure"),
    ({"cell_area_m2": 1e-4, "max_force_n": 1.0, "piston_area_m2": -1.0}, "piston_area_m2"),
    ({"cell_area_m2": 1e-4, "max_force_n": 1.0, "preload_n": -5.0}, "preload_n"),
])
def test_invalid_geometry(kwargs: dict[str, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        JigGeometry(**kwargs)


def test_config_with_units() -> None:
    geometry = geometry_from_config({
        "kind": "pneumatic", "cell_area": "93.28 cm^2", "piston_area": "0.1 m^2",
        "preload": "150 N", "max_force": "100 kN", "max_pressure": "10 MPa"}, HERE,
        pneumatic=True)
    expected = pouch_jig()
    assert geometry.cell_area_m2 == pytest.approx(expected.cell_area_m2)
    assert (geometry.piston_area_m2, geometry.preload_n, geometry.max_force_n,
            geometry.max_stack_pressure_pa) == (0.1, 150.0, 100e3, 10e6)


def test_bolted_config_needs_no_piston() -> None:
    geometry = geometry_from_config({"cell_area": "78.5 mm^2", "max_force": "0.2 klbf"},
                                    HERE, pneumatic=False)
    assert geometry.cell_area_m2 == pytest.approx(78.5e-6)
    assert geometry.max_force_n == pytest.approx(889.64, rel=1e-4)
    assert math.isinf(geometry.max_stack_pressure_pa) and geometry.piston_area_m2 is None


def test_config_errors_name_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        geometry_from_config({"cell_area": "93.28", "piston_area": "10 N", "preloads": "1 N"},
                             HERE, pneumatic=True)
    messages = [d.message for d in caught.value.diagnostics]
    assert any("cell_area" in m and "with a unit" in m for m in messages)
    assert any("piston_area" in m for m in messages)
    assert any("unknown jig setting 'preloads'" in m for m in messages)
    assert any("max_force or max_pressure" in m for m in messages)
    assert all(d.location == HERE and d.example for d in caught.value.diagnostics)
    assert "station.toml:12:1" in caught.value.render()


def test_config_refuses_runaway_exponents() -> None:
    with pytest.raises(ConfigError):
        geometry_from_config({"cell_area": "1 m^10^10^10", "max_force": "1 kN"}, HERE,
                             pneumatic=False)

"""Equivalent circuits and their fit: the description language, element impedances, parameter
recovery on synthetic spectra (exact and noisy), uncertainties, ASR, conductivity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellrig.daemon.eis_circuit import DEFAULT_CIRCUIT, Circuit
from cellrig.daemon.eis_fit import (
    activation_energy_ev,
    fit_spectrum,
    ionic_conductivity_s_per_m,
)
from cellrig.errors import ConfigError
from cellrig.protocols.rig import Spectrum
from cellrig.simulators.cell_model import CellModel

FREQUENCY = np.geomspace(1e6, 1e-2, 81)
#: R0, R1, CPE1_Q, CPE1_alpha, W1 of a pouch cell's high-frequency part.
TRUE = {"R0": 0.022, "R1": 0.21, "CPE1_Q": 3.3e-3, "CPE1_alpha": 0.85, "W1": 0.012}


def synthetic(circuit: str, values: dict[str, float], noise: float = 0.0,
              seed: int = 7) -> Spectrum:
    model = Circuit(circuit)
    z = model.impedance(FREQUENCY, [values[name] for name in model.parameters])
    if noise:
        rng = np.random.default_rng(seed)
        z = z + noise * np.abs(z) * (rng.standard_normal(z.size) + 1j * rng.standard_normal(
            z.size))
    return Spectrum(FREQUENCY.copy(), z.real.copy(), z.imag.copy())


def test_circuit_parameters_in_order() -> None:
    circuit = Circuit(DEFAULT_CIRCUIT)
    assert circuit.parameters == ("R0", "R1", "CPE1_Q", "CPE1_alpha", "W1")
    nested = Circuit("L0-R0-p(R1-Ws1,C1)-p(R2,CPE2,C3)")
    assert nested.parameters == ("L0", "R0", "R1", "Ws1_R", "Ws1_tau", "C1", "R2", "CPE2_Q",
                                 "CPE2_alpha", "C3")
    assert [e.in_parallel for e in nested.elements] == [False, False, True, True, True, True,
                                                        True, True]


@pytest.mark.parametrize(("text", "column", "expected"), [
    ("R0-X1", 4, "an element"),
    ("R0-", 4, "an element"),
    ("R0-p(R1)", 4, "at least two branches"),
    ("R0-p(R1,C1", 11, "',' or ')'"),
    ("R0-R0", 1, "a unique number"),
    ("R0 p(R1,C1)", 3, "'-', ',' or ')'"),
])
def test_bad_circuits_are_config_errors_with_a_position(text: str, column: int,
                                                        expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Circuit(text)
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.location.column == column
    assert diagnostic.expected is not None and expected in diagnostic.expected
    assert diagnostic.example == DEFAULT_CIRCUIT


def test_element_impedances() -> None:
    omega = 1.0 / (2.0 * 0.25)                   # R = 2, C = 0.25: ωRC = 1 at ω = 2
    f = np.array([omega / (2 * math.pi)])
    rc = Circuit("p(R1,C1)").impedance(f, [2.0, 0.25])
    assert rc[0] == pytest.approx(1.0 - 1.0j)
    cpe_as_c = Circuit("p(R1,CPE1)").impedance(f, [2.0, 0.25, 1.0])
    assert cpe_as_c[0] == pytest.approx(rc[0])
    warburg = Circuit("W1").impedance(np.array([1.0, 100.0]), [0.1])
    assert np.degrees(np.angle(warburg)) == pytest.approx([-45.0, -45.0])
    assert abs(warburg[0]) / abs(warburg[1]) == pytest.approx(10.0)
    finite = Circuit("Ws1").impedance(np.array([1e-7, 1e4]), [0.4, 100.0])
    assert finite[0] == pytest.approx(0.4, rel=1e-4)
    semi = 0.4 / np.sqrt(2j * math.pi * 1e4 * 100.0)
    assert finite[1] == pytest.approx(semi, rel=1e-6)
    with pytest.raises(ValueError, match="5 parameters"):
        Circuit(DEFAULT_CIRCUIT).impedance(f, [1.0])


def test_exact_spectrum_recovers_every_parameter() -> None:
    fit = fit_spectrum(synthetic(DEFAULT_CIRCUIT, TRUE), area_m2=93.28e-4)
    assert fit.success and fit.relative_rms < 1e-6
    for name, value in TRUE.items():
        assert fit.parameters[name].value == pytest.approx(value, rel=1e-5)
    assert fit.bulk_resistance_ohm == pytest.approx(0.022, rel=1e-6)
    assert fit.interfacial_resistance_ohm == pytest.approx(0.21, rel=1e-6)
    assert fit.bulk_asr_ohm_cm2 == pytest.approx(0.022 * 93.28, rel=1e-6)
    assert fit.interfacial_asr_ohm_cm2 == pytest.approx(0.21 * 93.28, rel=1e-6)
    assert fit.bulk_stderr_ohm < 1e-6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_spectrum_recovers_within_a_few_standard_errors(seed: int) -> None:
    fit = fit_spectrum(synthetic(DEFAULT_CIRCUIT, TRUE, noise=0.005, seed=seed))
    assert fit.relative_rms == pytest.approx(0.005, rel=0.3)
    for name in ("R0", "R1"):
        fitted = fit.parameters[name]
        assert fitted.value == pytest.approx(TRUE[name], rel=0.03)
        assert 0 < fitted.stderr < 0.02 * TRUE[name]
        assert abs(fitted.value - TRUE[name]) < 4 * fitted.stderr
    assert fit.interfacial_stderr_ohm == pytest.approx(fit.parameters["R1"].stderr)


def test_two_arc_cell_model_spectrum() -> None:
    """The cell model's own impedance (half charged, rested) against its circuit values."""
    cell = CellModel()
    cell.run_current(0.3, [3600.0])
    cell.run_rest([600.0])
    z = cell.impedance(FREQUENCY)
    circuit = cell.circuit()
    bulk = (circuit.electrolyte_ohm + circuit.contact_ohm
            + 0.5 * float(circuit.lithiation_at(cell.state.cathode_ah)))
    fit = fit_spectrum(Spectrum(FREQUENCY, z.real, z.imag), "R0-p(R1,CPE1)-p(R2,CPE2)-W3",
                       area_m2=cell.params.area_m2)
    assert fit.bulk_resistance_ohm == pytest.approx(bulk, rel=0.005)
    assert fit.interfacial_resistance_ohm == pytest.approx(circuit.interface_ohm, rel=0.005)
    assert fit.parameters["R2"].value == pytest.approx(circuit.charge_transfer_ohm, rel=0.01)
    assert fit.parameters["CPE1_alpha"].value == pytest.approx(
        circuit.interface_cpe_exponent, abs=0.01)


def test_interfacial_resistance_can_be_named() -> None:
    values = {**TRUE, "R2": 0.5, "CPE2_Q": 0.1, "CPE2_alpha": 0.95, "W3": 0.01}
    values.pop("W1")
    circuit = "R0-p(R1,CPE1)-p(R2,CPE2)-W3"
    fit = fit_spectrum(synthetic(circuit, values, noise=0.002), circuit,
                       interfacial=["R1", "R2"])
    assert fit.interfacial_resistance_ohm == pytest.approx(0.71, rel=0.02)
    one = math.hypot(fit.parameters["R1"].stderr, fit.parameters["R2"].stderr)
    assert 0 < fit.interfacial_stderr_ohm < 3 * one
    with pytest.raises(ValueError, match="R9"):
        fit_spectrum(synthetic(circuit, values), circuit, interfacial=["R9"])


def test_too_few_points_cannot_be_fitted() -> None:
    spectrum = synthetic(DEFAULT_CIRCUIT, TRUE)
    short = Spectrum(spectrum.frequency_hz[:4], spectrum.z_real_ohm[:4],
                     spectrum.z_imag_ohm[:4])
    with pytest.raises(ValueError, match="4 points"):
        fit_spectrum(short)


def test_fit_summary_names_the_resistances() -> None:
    fit = fit_spectrum(synthetic(DEFAULT_CIRCUIT, TRUE), area_m2=1e-4)
    text = fit.summary()
    assert "bulk R = 0.022" in text and "interfacial R = 0.21" in text
    assert "ASR bulk 0.022 Ohm cm2" in text


def test_conductivity_and_activation_energy() -> None:
    # a 1 mm Li6PS5Cl pellet of 1 cm² at 1.8 mS/cm has 5.56 Ohm
    sigma = ionic_conductivity_s_per_m(1e-3 / (0.18 * 1e-4), 1e-3, 1e-4)
    assert sigma == pytest.approx(0.18)
    temperatures = [-10.0, 25.0, 60.0]
    k_b = 8.617333262e-5
    values = [0.18 * math.exp(-0.35 / k_b * (1 / (t + 273.15) - 1 / 298.15))
              for t in temperatures]
    assert activation_energy_ev(temperatures, values) == pytest.approx(0.35, rel=1e-6)


def test_a_circuit_that_does_not_suit_the_spectrum_shows_it() -> None:
    """One arc fitted to the cell model's two: a large residual, a parameter on its bound."""
    cell = CellModel()
    cell.run_current(0.3, [3600.0])
    z = cell.impedance(FREQUENCY)
    fit = fit_spectrum(Spectrum(FREQUENCY, z.real, z.imag))
    assert fit.relative_rms > 0.05
    assert any(p.at_bound for p in fit.parameters.values())
    assert "(at a bound)" in fit.summary()
    good = fit_spectrum(synthetic(DEFAULT_CIRCUIT, TRUE))
    assert not any(p.at_bound for p in good.parameters.values())

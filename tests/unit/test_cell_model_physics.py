"""Physics of the cell model: temperature, pressure, impedance against DC, swell, heat, OCV,
and the consistency of the closed-form and step-by-step solutions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_cell_model import (
    CELL,
    amps,
    charge_cc,
    charge_cccv,
    discharge_cc,
    formation,
    new_model,
    rest,
)

from cellrig.simulators.cell_circuit import WARBURG_KEPT, build_circuit, contact_fraction
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import BOLTZMANN_EV_PER_K
from cellrig.simulators.ocv import NMC_VS_LI


def charged_model(temperature_c: float = 60.0, pressure_pa: float = 2.0e6) -> CellModel:
    """After formation and a CC-CV charge at 60 °C, rested, at the given conditions."""
    model = new_model()
    formation(model)
    charge_cccv(model, 0.1, 0.05)
    rest(model)
    model.set_conditions(temperature_c=temperature_c, pressure_pa=pressure_pa)
    rest(model, 3 * 3600.0)
    return model


# -- temperature ----------------------------------------------------------------------------
def test_electrolyte_resistance_derivation() -> None:
    # R = L/(σ·A): 35 µm / (0.18 S/m × 93.28 cm²) = 20.85 mΩ at 25 °C; Arrhenius 0.35 eV.
    at_25 = build_circuit(CELL, 25.0, 2e6).electrolyte_ohm
    at_60 = build_circuit(CELL, 60.0, 2e6).electrolyte_ohm
    assert at_25 == pytest.approx(35e-6 / (0.18 * 93.28e-4), rel=1e-9)
    expected_ratio = math.exp(0.35 / BOLTZMANN_EV_PER_K * (1 / 298.15 - 1 / 333.15))
    assert at_25 / at_60 == pytest.approx(expected_ratio, rel=1e-9)
    assert expected_ratio == pytest.approx(4.18, abs=0.01)


def test_lower_temperature_raises_resistance_and_lowers_capacity() -> None:
    resistances, capacities = {}, {}
    for temperature in (60.0, 25.0, 0.0):
        model = charged_model(temperature)
        resistances[temperature] = model.dc_resistance_ohm()
        capacities[temperature], _ = discharge_cc(model, 0.2)
    assert resistances[0.0] > resistances[25.0] > 3 * resistances[60.0]
    assert capacities[0.0] < capacities[25.0] < capacities[60.0]
    assert capacities[25.0] > 0.8 * capacities[60.0]


# -- pressure -------------------------------------------------------------------------------
def test_interfacial_resistance_falls_with_pressure_and_saturates() -> None:
    interface = {p: build_circuit(CELL, 60.0, p * 1e6).interface_ohm
                 for p in (0.3, 0.5, 1.0, 2.0, 4.0, 10.0)}
    assert interface[0.3] > interface[0.5] > interface[1.0] > interface[2.0] >= interface[4.0]
    assert interface[0.5] > 3 * interface[2.0]  # sharp degradation below ~1 MPa
    assert interface[2.0] == pytest.approx(interface[10.0], rel=0.03)  # saturated
    assert contact_fraction(CELL, 0.0) > 0  # never a division by zero


def test_low_pressure_fades_faster() -> None:
    retention = {}
    for pressure in (1.0e6, 2.0e6):
        model = CellModel(CELL, 60.0, pressure)
        formation(model)
        first = last = 0.0
        for _ in range(150):
            charge_cc(model, 0.5)
            last, _ = discharge_cc(model, 0.5)
            first = first or last
        retention[pressure] = last / first
    assert retention[1.0e6] < retention[2.0e6] - 0.01


# -- impedance ------------------------------------------------------------------------------
def test_impedance_low_frequency_equals_dc_resistance() -> None:
    model = charged_model()
    dc = model.dc_resistance_ohm()
    z = model.impedance(np.array([1e-7, 1e6]))
    assert z[0].real == pytest.approx(dc, rel=0.005)
    circuit = model.circuit()
    assert z[1].real == pytest.approx(circuit.electrolyte_ohm + circuit.contact_ohm, rel=0.05)
    # A long small current sees the same resistance in the time domain.
    ocv = model.ocv_v()
    current = amps(0.001)
    voltage, _ = model.run_current(current, [2.0e5])
    assert (voltage[-1] - model.ocv_v()) / current == pytest.approx(dc, rel=0.01)
    assert model.ocv_v() > ocv


def test_impedance_matches_the_time_domain_circuit() -> None:
    model = charged_model()
    circuit = model.circuit()
    frequency = np.logspace(-3, 3, 25)
    jw = 2j * math.pi * frequency
    foster = circuit.series_ohm + np.sum(
        circuit.rc_ohm / (1 + jw[:, None] * circuit.rc_tau_s), axis=1)
    exact = model.impedance(frequency)
    capacitive = exact - foster
    # What remains is the cell's capacitance (purely imaginary) and the CPE's depression
    # of the interfacial arc; the real parts agree within a few % of the DC resistance.
    assert np.max(np.abs(capacitive.real)) < 0.03 * circuit.dc_ohm
    assert 0.9 < WARBURG_KEPT < 1.0
    assert np.all(exact.imag < 0)


# -- swell, heat ----------------------------------------------------------------------------
def test_thickness_rises_about_25_um_at_full_charge() -> None:
    model = new_model()
    assert model.thickness_change_m() == 0.0
    current = amps(0.1)
    duration = model.time_to_voltage(current, 4.25, 1e6)
    assert duration is not None
    model.run_current(current, np.linspace(0.0, duration, 400))
    trace = model.last_trace
    assert trace is not None
    swell = trace.thickness_change_m
    assert np.all(np.diff(swell[40:]) > 0)  # plating: rises with charge
    assert swell[-1] * 1e6 == pytest.approx(25.0, abs=2.5)
    discharge_cc(model, 0.2)
    assert model.thickness_change_m() * 1e6 < 3.0  # stripped again


def test_heat_is_the_energy_lost_in_the_resistances() -> None:
    model = charged_model()
    heat_before = model.state.heat_j
    duration = model.time_to_voltage(-amps(1.0), 2.5, 1e6)
    assert duration is not None
    times = np.linspace(0.0, duration, 4001)
    voltage, state = model.run_current(-amps(1.0), times)
    trace = model.last_trace
    assert trace is not None
    assert np.all(trace.heat_w > 0)
    assert trace.heat_w[1] == pytest.approx(
        amps(1.0) ** 2 * model.dc_resistance_ohm(), rel=0.5)
    # Energy lost = ∫ I·(OCV − V) dt along the discharge (the RC pairs' stored energy aside).
    anode = state.anode_ah + amps(1.0) * (duration - times) / 3600
    cathode = state.cathode_ah + amps(1.0) * (duration - times) / 3600
    lost = np.trapezoid(amps(1.0) * (model.ocv.voltage_v(anode, cathode) - voltage), times)
    assert state.heat_j - heat_before == pytest.approx(lost, rel=0.03)
    assert trace.temperature_c.max() > 60.0
    rest(model, 3600.0)
    assert model.cell_temperature_c == pytest.approx(60.0, abs=0.01)


# -- OCV ------------------------------------------------------------------------------------
def test_ocv_is_monotonic_invertible_and_smooth() -> None:
    ocv = new_model().ocv
    soc = np.linspace(0.0, 1.1, 5001)
    voltage = ocv.of_soc(soc, 0.03)
    assert np.all(np.diff(voltage) > 0)
    assert ocv.soc_of(ocv.of_soc(np.array([0.02, 0.3, 0.9]), 0.03), 0.03) == pytest.approx(
        [0.02, 0.3, 0.9], abs=1e-4)
    dqdv = ocv.dqdv_ah_per_v(soc, 0.03)
    window = (voltage > 3.5) & (voltage < 4.3)
    jumps = np.abs(np.diff(dqdv[window])) / dqdv[window][:-1]
    assert jumps.max() < 0.02  # no steps: fine for dQ/dV plots
    peak_v = voltage[window][np.argmax(dqdv[window])]
    assert 3.65 < peak_v < 3.8  # the NMC's H1→M peak
    assert NMC_VS_LI(np.array([0.0]))[0] == pytest.approx(3.0)


def test_first_charge_slopes_then_knee_then_plateau() -> None:
    model = new_model()
    assert 0.0 < model.ocv_v() < 2.0  # as built: no lithium in the anode
    current = amps(0.1)
    times = np.linspace(0.0, 3600.0, 721)  # the first 10 % of the capacity
    voltage, _ = model.run_current(current, times)
    share = current * times / 3600 / CELL.capacity_ah
    sloping = np.polyfit(share[(share > 0.02) & (share < 0.045)],
                         voltage[(share > 0.02) & (share < 0.045)], 1)[0]
    plateau = np.polyfit(share[share > 0.08], voltage[share > 0.08], 1)[0]
    assert sloping > 4 * plateau > 0
    assert 3.4 < voltage[-1] < 3.75


def test_average_discharge_voltage_at_0_5c_after_a_cc_charge() -> None:
    model = new_model()
    formation(model)
    charge_cc(model, 0.5)
    _, average = discharge_cc(model, 0.5, samples=2001)
    assert average == pytest.approx(3.76, abs=0.05)
    # The OCV over the same lithium is higher by the overpotential at 0.5 C (≈ 0.1 V).
    assert model.ocv_v() < 3.6


# -- solvers --------------------------------------------------------------------------------
def test_time_to_voltage_is_exact_and_does_not_move_the_model() -> None:
    model = new_model()
    formation(model)
    before = model.state
    duration = model.time_to_voltage(amps(0.5), 4.25, 1e6)
    assert duration is not None
    assert model.state == before
    assert model.time_to_voltage(amps(0.5), 4.25, 0.5 * duration) is None
    voltage, _ = model.run_current(amps(0.5), [0.999 * duration, duration])
    assert voltage[0] < 4.25
    assert voltage[1] == pytest.approx(4.25, abs=1e-6)


def test_constant_voltage_converges_and_matches_its_cut_off() -> None:
    times = []
    for step in (5.0, 0.5):
        model = CellModel(CELL, 60.0, 2e6, max_step_s=step)
        formation(model)
        charge_cc(model, 0.1)
        duration = model.time_to_current(4.25, amps(0.05), 1e6)
        assert duration is not None
        current = model.run_voltage(4.25, [0.0, duration])
        assert current[0] == pytest.approx(amps(0.1), rel=0.01)  # continuous from CC
        assert current[-1] == pytest.approx(amps(0.05), rel=0.005)
        times.append(duration)
    assert times[0] == pytest.approx(times[1], rel=1e-3)


def test_one_segment_equals_two_halves() -> None:
    # Exact when nothing changes the circuit between the halves (no self-heating, no
    # resistance growth); otherwise the second half starts from updated resistances.
    frozen = dataclasses.replace(CELL, thermal_resistance_k_per_w=1e-9, interface_growth=0.0)
    for params, tolerance_v in ((frozen, 1e-9), (CELL, 5e-4)):
        whole, halves = CellModel(params, 60.0, 2e6), CellModel(params, 60.0, 2e6)
        formation(whole)
        formation(halves)
        times = np.linspace(0.0, 4000.0, 9)
        voltage, state = whole.run_current(amps(0.5), times)
        first, _ = halves.run_current(amps(0.5), times[:5])
        second, split_state = halves.run_current(amps(0.5), times[4:] - times[4])
        joined = np.concatenate((first, second[1:]))
        assert joined == pytest.approx(voltage, abs=tolerance_v)
        assert split_state.anode_ah == pytest.approx(state.anode_ah, rel=1e-9)


def test_restore_returns_to_a_saved_state() -> None:
    model = new_model()
    saved = model.state
    charge_cc(model, 0.5)
    assert model.state.cycle_index == 1
    model.restore(saved)
    assert model.state == saved

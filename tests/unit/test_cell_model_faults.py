"""Faults of the cell model: what a tester must catch shows in the readings."""

from __future__ import annotations

import numpy as np
import pytest
from test_cell_model import CELL, amps, charge_cc, charge_cccv, discharge_cc, formation, rest

from cellrig.simulators.cell_faults import Fault, FaultKind, MeasurementNoise
from cellrig.simulators.cell_model import CellModel


def cycle(model: CellModel, limit_s: float = 4.0e4) -> tuple[float, float]:
    """One 0.5 C / 0.5 C cycle; charge and discharge (Ah). A charge that does not reach 4.25 V
    within ``limit_s`` stops there."""
    current = amps(0.5)
    up = model.time_to_voltage(current, 4.25, limit_s)
    up = limit_s if up is None else up
    model.run_current(current, [up])
    down = model.time_to_voltage(-current, 2.5, 1e6)
    assert down is not None
    model.run_current(-current, [down])
    return current * up / 3600, current * down / 3600


def test_soft_short_from_a_cycle_lowers_coulombic_efficiency() -> None:
    short = Fault(FaultKind.SOFT_SHORT, at_cycle=4, resistance_ohm=300.0, growth_s=2.0e4)
    model = CellModel(CELL, 60.0, 2e6, faults=[short])
    formation(model)
    efficiency = []
    for _ in range(4):
        charged, discharged = cycle(model)
        efficiency.append(discharged / charged)
    assert model.state.cycle_index == 5
    assert efficiency[1] > 0.998  # cycle 3: healthy
    assert efficiency[2] < 0.95  # cycle 4: the short drains charge
    assert efficiency[3] < efficiency[2]  # and it grows
    # At rest the voltage sags.
    charge_cc(model, 0.5)
    voltage = model.run_rest(np.linspace(0.0, 3600.0, 13))
    assert voltage[-1] < voltage[1] - 0.02


def test_soft_short_makes_a_charge_pass_far_more_than_nominal() -> None:
    model = CellModel(CELL, 60.0, 2e6)
    formation(model)
    model.inject(Fault(FaultKind.SOFT_SHORT, at_s=model.time_s, resistance_ohm=20.0))
    current = amps(0.1)
    assert model.time_to_voltage(current, 4.25, 15 * 3600.0) is None  # never reaches 4.25 V
    before = model.state.charge_in_ah
    voltage, state = model.run_current(current, np.linspace(0.0, 15 * 3600.0, 301))
    assert state.charge_in_ah - before > 1.4 * CELL.capacity_ah
    assert voltage.max() < 4.25
    assert state.soc < 0.9  # the charge went through the short, not into the cell


def test_hard_short_collapses_the_voltage() -> None:
    model = CellModel(CELL, 60.0, 2e6)
    formation(model)
    charge_cccv(model, 0.1, 0.05)
    start = model.time_s
    model.inject(Fault(FaultKind.HARD_SHORT, at_s=start + 60.0, resistance_ohm=0.05))
    voltage = model.run_rest(np.array([0.0, 30.0, 120.0, 600.0, 3600.0]))
    assert voltage[1] > 4.0
    assert voltage[2] < 2.0
    assert voltage[-1] < 0.1
    trace = model.last_trace
    assert trace is not None and trace.heat_w[2] > 1.0  # the short heats the cell
    assert model.impedance(np.array([1.0]))[0].real < 0.05


def test_contact_loss_raises_resistance_and_costs_capacity() -> None:
    model = CellModel(CELL, 60.0, 2e6)
    formation(model)
    charge_cccv(model, 0.1, 0.05)
    rest(model)
    before = model.dc_resistance_ohm()
    interface = model.circuit().interface_ohm
    model.inject(Fault(FaultKind.CONTACT_LOSS, at_s=model.time_s + 10.0, factor=30.0))
    rest(model, 20.0)
    after = model.dc_resistance_ohm()
    assert after - before == pytest.approx(29 * interface, rel=0.01)
    healthy = CellModel(CELL, 60.0, 2e6)
    formation(healthy)
    charge_cccv(healthy, 0.1, 0.05)
    rest(healthy, 620.0)
    assert discharge_cc(model, 1.0)[0] < 0.95 * discharge_cc(healthy, 1.0)[0]


def test_open_circuit_passes_no_current() -> None:
    model = CellModel(CELL, 60.0, 2e6)
    formation(model)
    model.inject(Fault(FaultKind.OPEN_CIRCUIT, at_s=model.time_s + 10.0, until_s=model.time_s
                       + 100.0))
    voltage, _ = model.run_current(amps(0.5), np.array([0.0, 5.0, 20.0, 50.0]))
    trace = model.last_trace
    assert trace is not None
    assert trace.current_a.tolist() == [amps(0.5), amps(0.5), 0.0, 0.0]
    assert voltage[2] == model.open_circuit_v
    assert model.run_voltage(4.2, [0.0, 10.0]).tolist() == [0.0, 0.0]
    assert model.time_to_voltage(amps(0.5), 4.25, 10.0) == 0.0  # compliance at once
    rest(model, 100.0)  # the fault ends: current flows again
    current = model.run_voltage(4.2, [0.0, 10.0])
    assert current[-1] > 0


def test_noise_and_spikes_on_readings() -> None:
    noise = Fault(FaultKind.NOISE, at_s=0.0, noise_v=0.002, spike_probability=0.02,
                  spike_v=0.1)
    noisy = CellModel(CELL, 60.0, 2e6, faults=[noise], seed=3)
    clean = CellModel(CELL, 60.0, 2e6)
    times = np.linspace(0.0, 3600.0, 2001)
    difference = noisy.run_current(amps(0.5), times)[0] - clean.run_current(amps(0.5), times)[0]
    spikes = np.abs(difference) > 0.05
    assert 10 < spikes.sum() < 80
    assert np.std(difference[~spikes]) == pytest.approx(0.002, rel=0.15)
    assert noisy.state == clean.state  # noise is on the readings only


def test_measurement_noise_wrapper_is_seeded() -> None:
    voltage = np.full(100, 3.8)
    current = np.zeros(100)
    first = MeasurementNoise(noise_v=0.001, noise_a=1e-4, seed=7).apply(voltage, current)
    second = MeasurementNoise(noise_v=0.001, noise_a=1e-4, seed=7).apply(voltage, current)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert np.array_equal(voltage, np.full(100, 3.8))  # inputs untouched


def test_a_fault_needs_a_start() -> None:
    with pytest.raises(ValueError, match="needs a start"):
        Fault(FaultKind.HARD_SHORT)

"""Calibration: the library protocols, run by the engine on the model rig with the default cell
(the paper's 0.6 Ah pouch), reproduce the published figures of DOMAIN.md, and the physics the
bench models shows through the rig.

Each protocol runs once per module (fixtures), the way ``cellrig simulate`` runs it.
"""

from __future__ import annotations

import numpy as np
import pytest

from cellrig.daemon.simulate_run import (
    Simulation,
    load_protocol_argument,
    load_simulated_cell,
    resolve,
    simulate,
)
from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, ListSink
from cellrig.protocols.resolve import check
from cellrig.simulators.bench import Bench, bolted_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.model_rig import ModelRig

CELL = load_simulated_cell(None)
NMC_G = CELL.params.cathode_mass_kg * 1e3


def run(name: str, parameters: dict[str, str] | None = None, formed: bool = False,
        reference_cycle: int | None = None) -> Simulation:
    """A library protocol on the default cell, as ``cellrig simulate`` runs it."""
    program, diagnostics = resolve(load_protocol_argument(name), CELL, parameters or {})
    assert program is not None, [d.render() for d in diagnostics]
    simulation = simulate(program, CELL, formed=formed, reference_cycle=reference_cycle)
    assert simulation.outcome.state.value == "completed", simulation.outcome.reason
    return simulation


@pytest.fixture(scope="module")
def formation() -> Simulation:
    return run("formation")


@pytest.fixture(scope="module")
def long_cycling() -> Simulation:
    # cycle 1 is the formation cycle; the 0.5 C / 0.5 C loop starts at cycle 2
    return run("long-cycling", reference_cycle=2)


@pytest.fixture(scope="module")
def rates() -> Simulation:
    return run("rate-capability", {"rates": "[0.2C, 1C]"}, formed=True)


class TestPublishedFigures:
    def test_specific_capacity_at_0_2c(self, formation: Simulation) -> None:
        mah_per_g = formation.cycles[0].discharge_capacity_ah * 1e3 / NMC_G
        assert mah_per_g == pytest.approx(215.0, rel=0.03)

    def test_rate_ratio_1c_over_0_2c(self, rates: Simulation) -> None:
        capacity = [cycle.discharge_capacity_ah for cycle in rates.cycles]
        assert len(capacity) == 6  # three cycles at each rate
        ratio = capacity[5] / capacity[2]
        assert ratio == pytest.approx(0.93, abs=0.02)

    def test_coulombic_efficiency_in_long_cycling(self, long_cycling: Simulation) -> None:
        loop = long_cycling.cycles[2:]  # after formation and the first 0.5 C cycle
        efficiency = np.array([cycle.coulombic_efficiency for cycle in loop])
        assert len(loop) >= 999
        assert efficiency.min() >= 0.998

    @pytest.mark.parametrize(("loop_cycles", "retention", "tolerance"),
                             [(600, 0.95, 0.015), (1000, 0.89, 0.02)])
    def test_retention(self, long_cycling: Simulation, loop_cycles: int, retention: float,
                       tolerance: float) -> None:
        cycle = long_cycling.cycles[loop_cycles]  # test cycle loop_cycles + 1
        assert cycle.cycle == loop_cycles + 1
        assert cycle.reference_retention == pytest.approx(retention, abs=tolerance)

    def test_average_discharge_voltage_at_0_5c(self, long_cycling: Simulation) -> None:
        voltage = long_cycling.cycles[1].average_discharge_voltage_v
        assert voltage == pytest.approx(3.76, abs=0.05)

    def test_conditions_of_the_cycling(self, long_cycling: Simulation) -> None:
        cycle = long_cycling.cycles[500]
        assert cycle.min_temperature_c == pytest.approx(60.0, abs=0.5)
        assert cycle.max_temperature_c == pytest.approx(60.0, abs=0.5)
        assert cycle.min_pressure_pa == pytest.approx(2.0e6, rel=0.05)


def high_frequency_ohm(simulation: Simulation) -> list[float]:
    """Z' at the highest frequency of each spectrum: the ohmic resistance."""
    return [float(spectrum.z_real_ohm[0]) for _, _, spectrum in simulation.spectra]


class TestPhysicsThroughTheRig:
    def test_colder_means_more_resistance_and_less_capacity(self) -> None:
        sweep = run("temperature-sweep", formed=True)  # 60, 45, 25, 0, -10 degC
        capacity = [cycle.discharge_capacity_ah for cycle in sweep.cycles]
        resistance = high_frequency_ohm(sweep)
        assert len(capacity) == len(resistance) == 5
        assert all(np.diff(capacity) < 0)
        assert all(np.diff(resistance) > 0)
        assert capacity[-1] < 0.8 * capacity[0]

    def test_less_pressure_means_more_interfacial_resistance(self) -> None:
        sweep = run("pressure-sweep", formed=True)  # 1, 2, 4, 6, 8, 10 MPa
        # the interfacial arc (near 4 kHz) has closed by 1 kHz, before the cathode's arcs
        arcs = [float(np.interp(3.0, np.log10(spectrum.frequency_hz[::-1]),
                                spectrum.z_real_ohm[::-1]) - spectrum.z_real_ohm[0])
                for _, _, spectrum in sweep.spectra]  # Z'(1 kHz) - Z'(1 MHz)
        assert len(arcs) == 6
        assert arcs[0] > 1.2 * arcs[1]
        assert all(np.diff(arcs) <= 1e-9)

    async def test_bolted_jig_swell_and_pressure_follow_every_charge(self) -> None:
        params = load_builtin_cell()
        bench = Bench()
        bench.add_chamber("chamber-1")
        cell = bench.add_cell("cell-1", "chamber-1", CellModel(params),
                              bolted_jig(params, 2.0e6))
        text = """cellrig: 1
name: bolted
cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 60 s}
steps:
  - repeat: 4
    steps:
      - Charge at 0.5C until 4.25 V
      - Discharge at 0.5C until 2.5 V
"""
        result = check(load_protocol_text(text, "bolted.yaml"))
        assert result.program is not None
        sink = ListSink(keep_checkpoints=False)
        await Engine(result.program, ModelRig(cell), sink, VirtualClock()).run()
        steps = sink.column("Step Count / 1")
        pressure = sink.column("Applied Pressure / Pa")
        for charge in (1, 3, 5, 7):
            rising = pressure[steps == charge]
            falling = pressure[steps == charge + 1]
            assert rising[-1] > rising[0] + 0.5e6  # the plated lithium presses on the frame
            assert falling[-1] < falling[0] - 0.5e6  # and strips away again
            assert rising.max() > 2.5e6

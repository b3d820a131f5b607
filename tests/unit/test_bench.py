"""The bench: its clocks, the lazily advanced cell with an SMU-like source, the environment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellrig.simulators.bench import Bench, BenchCell, BenchClock, bolted_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.chamber import Chamber

CAPACITY_AH = 68.0 * 93.28e-4


def charged(bench: Bench, cell: BenchCell) -> None:
    """Formation charge: 0.1 C to 4.25 V, then held there for an hour."""
    cell.source_current(0.1 * CAPACITY_AH, 4.25)
    bench.clock.advance(12 * 3600.0)


class TestClock:
    def test_virtual_moves_only_when_advanced(self) -> None:
        clock = BenchClock()
        assert clock.virtual and clock.now_s() == 0.0
        clock.advance(2.5)
        assert clock.now_s() == 2.5
        with pytest.raises(ValueError, match="cannot go back"):
            clock.advance(-1.0)

    async def test_virtual_sleep_advances_at_once(self) -> None:
        clock = BenchClock()
        await clock.sleep(3600.0)
        assert clock.now_s() == 3600.0

    async def test_scaled_clock_follows_real_time(self) -> None:
        clock = BenchClock(scale=1.0e4)
        before = clock.now_s()
        await clock.sleep(20.0)  # 2 ms of real time
        assert clock.now_s() - before >= 20.0 * 0.9
        with pytest.raises(RuntimeError, match="cannot be advanced"):
            clock.advance(1.0)

    def test_scale_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            BenchClock(scale=0.0)


class TestDefaultBench:
    def test_composition(self) -> None:
        bench = Bench.default()
        assert list(bench.chambers) == ["chamber-1"]
        assert list(bench.cells) == ["cell-1"]
        cell = bench.cells["cell-1"]
        assert cell.chamber is bench.chambers["chamber-1"]
        assert cell.jig is not None and cell.jig.pneumatic
        assert cell.cell.params.capacity_ah == pytest.approx(CAPACITY_AH)

    def test_as_built_cell_at_two_megapascal(self) -> None:
        reading = Bench.default().cells["cell-1"].measure()
        assert reading.time_s == 0.0
        assert reading.voltage_v == pytest.approx(1.0, abs=0.01)  # empty anode (cell_params)
        assert reading.current_a == 0.0
        assert reading.pressure_pa == pytest.approx(2.0e6)
        assert reading.force_n == pytest.approx(2.0e6 * 93.28e-4)
        assert reading.chamber_temperature_c == pytest.approx(25.0)
        assert reading.swell_m == 0.0

    def test_names_are_unique_and_chambers_must_exist(self) -> None:
        bench = Bench.default()
        with pytest.raises(ValueError, match="already"):
            bench.add_chamber("chamber-1")
        with pytest.raises(KeyError, match="no chamber 'oven'"):
            bench.add_cell("cell-2", "oven")


class TestSource:
    def test_nothing_moves_until_someone_looks(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        cell.source_current(0.06)
        bench.clock.advance(600.0)
        assert cell.cell.time_s == 0.0
        first = cell.measure()
        assert cell.cell.time_s == 600.0
        assert cell.measure() == first

    def test_constant_current_passes_its_charge(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        cell.source_current(0.1)
        for _ in range(10):
            bench.clock.advance(360.0)
            assert cell.measure().current_a == 0.1
        assert cell.cell.state.charge_in_ah == pytest.approx(0.1)

    def test_compliance_holds_the_voltage_limit(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        charged(bench, cell)
        reading = cell.measure()
        assert cell.in_compliance
        assert reading.voltage_v == pytest.approx(4.25, abs=1e-6)
        assert 0.0 < reading.current_a < 0.1 * 0.1 * CAPACITY_AH * 10

    def test_switch_time_does_not_depend_on_polling(self) -> None:
        """The CC to CV switch is found by root finding, so polling every five minutes or once
        gives the same cell."""
        rarely, often = Bench.default(), Bench.default()
        charged(rarely, rarely.cells["cell-1"])
        cell = often.cells["cell-1"]
        cell.source_current(0.1 * CAPACITY_AH, 4.25)
        for _ in range(12 * 12):
            often.clock.advance(300.0)
            cell.measure()
        once, polled = rarely.cells["cell-1"].measure(), cell.measure()
        assert polled.current_a == pytest.approx(once.current_a, rel=1e-3)
        assert cell.cell.state.charge_in_ah == pytest.approx(
            rarely.cells["cell-1"].cell.state.charge_in_ah, rel=1e-5)

    def test_voltage_source_never_exceeds_its_current_limit(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        charged(bench, cell)
        cell.source_voltage(3.9, current_limit_a=0.2)
        bench.clock.advance(1.0)
        assert cell.in_compliance
        currents = []
        for _ in range(120):
            bench.clock.advance(60.0)
            currents.append(cell.measure().current_a)
        assert min(currents) >= -0.2 - 1e-9
        assert currents[0] == pytest.approx(-0.2)
        assert not cell.in_compliance
        assert cell.measure().voltage_v == pytest.approx(3.9, abs=1e-6)
        assert -0.2 < currents[-1] < 0.0

    def test_open_circuit_relaxes(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        charged(bench, cell)
        cell.open_circuit()
        bench.clock.advance(1.0)
        early = cell.measure()
        bench.clock.advance(3600.0)
        late = cell.measure()
        assert early.current_a == late.current_a == 0.0
        assert late.voltage_v < early.voltage_v < 4.25

    def test_impedance_of_the_cell_now(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        charged(bench, cell)
        z = cell.impedance(np.array([1.0e5, 1.0]))
        assert np.all(np.isfinite(z))
        assert z[1].real > z[0].real > 0


class TestEnvironment:
    def test_cell_follows_the_chamber(self) -> None:
        bench = Bench.default()
        cell = bench.cells["cell-1"]
        bench.chambers["chamber-1"].set(60.0, bench.clock.now_s())
        bench.clock.advance(4 * 3600.0)
        reading = cell.measure()
        assert reading.chamber_temperature_c == pytest.approx(60.0, abs=0.05)
        assert cell.cell.temperature_c == pytest.approx(60.0, abs=0.5)

    def test_cold_cell_has_a_larger_overpotential(self) -> None:
        def step_v(setpoint_c: float) -> float:
            bench = Bench.default()
            cell = bench.cells["cell-1"]
            bench.chambers["chamber-1"].set(setpoint_c, 0.0)
            bench.clock.advance(6 * 3600.0)
            charged(bench, cell)
            cell.open_circuit()
            bench.clock.advance(4 * 3600.0)
            rest = cell.measure().voltage_v
            cell.source_current(-0.5 * CAPACITY_AH)
            bench.clock.advance(10.0)
            return rest - cell.measure().voltage_v

        assert step_v(0.0) > 2 * step_v(60.0)

    def test_bolted_jig_pressure_rises_and_falls_with_each_charge(self) -> None:
        bench = Bench()
        bench.add_chamber("chamber-1", Chamber())
        params = load_builtin_cell()
        cell = bench.add_cell("cell-1", "chamber-1", CellModel(params),
                              bolted_jig(params, 2.0e6))
        start = cell.measure().pressure_pa
        charged(bench, cell)
        full = cell.measure()
        cell.source_current(-0.5 * CAPACITY_AH, 2.5)
        bench.clock.advance(3 * 3600.0)
        empty = cell.measure()
        assert start == pytest.approx(2.0e6)
        assert full.swell_m > 20e-6
        assert full.pressure_pa > start + 1.0e6
        assert empty.pressure_pa < full.pressure_pa - 1.0e6
        assert cell.cell.pressure_pa == pytest.approx(empty.pressure_pa, rel=0.05)

    def test_cells_without_a_jig_read_no_pressure(self) -> None:
        bench = Bench()
        bench.add_chamber("chamber-1")
        cell = bench.add_cell("cell-1", "chamber-1")
        reading = cell.measure()
        assert math.isnan(reading.pressure_pa) and math.isnan(reading.force_n)

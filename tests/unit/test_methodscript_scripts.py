"""The exact MethodSCRIPT text the PalmSens driver uploads for each kind of step."""

from __future__ import annotations

import textwrap

import pytest

from cellrig.drivers.methodscript_scripts import (
    Cutoff,
    Ranges,
    bandwidth_hz,
    cell_off,
    chronoamperometry,
    chronopotentiometry,
    impedance_sweep,
    open_circuit,
    sweep_points,
)
from cellrig.simulators.methodscript_parser import parse_script

NEXUS = Ranges(current_a=1.0, potential_v=10.0)


def text(script: str) -> list[str]:
    return textwrap.dedent(script).strip("\n").split("\n")


def test_discharge_at_constant_current_with_a_cutoff() -> None:
    script = chronopotentiometry(-0.3, 1.0, 600.0, NEXUS, (Cutoff(2.5, rising=False),))
    assert script == text("""
        var t
        var p
        var i
        set_pgstat_chan 0
        set_pgstat_mode 6
        set_max_bandwidth 10
        set_range ab 10
        set_autoranging ab 10 10
        set_range db 1
        set_autoranging db 1 1
        set_i 0
        cell_on
        timer_start
        meas_loop_cp p i -300m 1 600
          timer_get t
          pck_start
            pck_add t
            pck_add p
            pck_add i
          pck_end
          if p < 2500m
            breakloop
          endif
        endloop
        on_finished:
          cell_off
        """)


def test_charge_cutoffs_rise_and_each_gets_its_own_if() -> None:
    script = chronopotentiometry(0.0634, 10.0, 1e6, Ranges(0.1, 10.0),
                                 (Cutoff(4.25, rising=True), Cutoff(4.3, rising=True)))
    assert "meas_loop_cp p i 63400u 10 1M" in script
    assert "set_range db 100m" in script
    tail = script[script.index("  pck_end") + 1:]
    assert tail == ["  if p > 4250m", "    breakloop", "  endif",
                    "  if p > 4300m", "    breakloop", "  endif",
                    "endloop", "on_finished:", "  cell_off"]


def test_constant_voltage_hold() -> None:
    assert chronoamperometry(4.25, 10.0, 1e6, Ranges(0.1, 10.0)) == text("""
        var t
        var p
        var i
        set_pgstat_chan 0
        set_pgstat_mode 2
        set_max_bandwidth 1
        set_range_minmax da 4250m 4250m
        set_range ba 100m
        set_autoranging ba 1n 100m
        set_e 4250m
        cell_on
        timer_start
        meas_loop_ca p i 4250m 10 1M
          timer_get t
          pck_start
            pck_add t
            pck_add p
            pck_add i
          pck_end
        endloop
        on_finished:
          cell_off
        """)


def test_rest_is_an_open_circuit_potential_loop_with_the_cell_off() -> None:
    assert open_circuit(0.5, 1200.0, NEXUS) == text("""
        var t
        var p
        set_pgstat_chan 0
        set_pgstat_mode 3
        set_max_bandwidth 20
        set_range ab 10
        set_autoranging ab 10 10
        cell_off
        timer_start
        meas_loop_ocp p 500m 1200
          timer_get t
          pck_start
            pck_add t
            pck_add p
          pck_end
        endloop
        on_finished:
          cell_off
        """)


def test_eis_at_open_circuit_measures_the_ocp_first() -> None:
    assert impedance_sweep(1e6, 0.01, 81, 0.01, NEXUS) == text("""
        var t
        var o
        var f
        var r
        var j
        set_pgstat_chan 0
        set_pgstat_mode 3
        set_range ab 10
        set_autoranging ab 10 10
        timer_start
        set_max_bandwidth 100
        cell_off
        meas_loop_ocp o 100m 1
          pck_start
            pck_add o
          pck_end
        endloop
        set_max_bandwidth 10M
        set_range_minmax da o o
        set_range ba 1
        set_autoranging ba 1n 1
        set_e o
        cell_on
        meas_loop_eis f r j 10m 1M 10m 81i o
          timer_get t
          pck_start
            pck_add t
            pck_add f
            pck_add r
            pck_add j
          pck_end
        endloop
        on_finished:
          cell_off
        """)


def test_eis_at_a_given_dc_level_skips_the_ocp() -> None:
    script = impedance_sweep(1e5, 1.0, 51, 0.005, Ranges(0.1, 6.0), dc_voltage_v=3.7)
    assert "meas_loop_ocp o 100m 1" not in script
    assert "set_e 3700m" in script
    assert "meas_loop_eis f r j 5m 100k 1 51i 3700m" in script


@pytest.mark.parametrize(("start", "stop", "per_decade", "points"), [
    (1e6, 0.01, 10, 81), (1e5, 100.0, 10, 31), (0.01, 1e6, 10, 81), (1e3, 1e3 / 3, 5, 3),
])
def test_sweep_points(start: float, stop: float, per_decade: int, points: int) -> None:
    assert sweep_points(start, stop, per_decade) == points


def test_bandwidth_follows_the_sampling_rate() -> None:
    assert bandwidth_hz(0.1) == 100.0
    assert bandwidth_hz(60.0) == 1.0


def test_every_script_parses_in_the_emulated_device() -> None:
    """The emulator's parser accepts exactly what the driver sends (it refuses anything it
    does not know, as the device does)."""
    scripts = [
        chronopotentiometry(0.1, 1.0, 10.0, NEXUS, (Cutoff(4.2, True),)),
        chronoamperometry(4.2, 1.0, 10.0, NEXUS),
        open_circuit(1.0, 10.0, NEXUS, (Cutoff(3.0, False),)),
        impedance_sweep(1e4, 1.0, 5, 0.01, NEXUS),
        impedance_sweep(1e4, 1.0, 5, 0.01, NEXUS, dc_voltage_v=3.9),
        cell_off(),
    ]
    for script in scripts:
        parsed = parse_script(script)
        assert parsed.statements

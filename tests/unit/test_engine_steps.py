"""The step engine runs every step kind and ends steps on every kind of condition, at the
reading where the condition first holds; ``then:`` jumps, loops and ``stop`` steer it.

The rig is the linear test cell (``rigs.py``): OCV = 3.0 V + 1.2 V/Ah x charge, 0.1 Ohm,
readings 1 s apart, so a CC step's voltage is a straight line in time and every end time can
be worked out by hand. Cut-offs are chosen between two readings, never on one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from engine_helpers import BareRig, program, rig, run

from cellrig.protocols.engine import EventKind, JobState

#: The linear cell: OCV at zero charge, V per Ah, series resistance.
OCV0, SLOPE, R = 3.0, 1.2, 0.1


def cc_voltage(current_a: float, seconds: float, charge_ah: float = 0.0) -> float:
    """Terminal voltage of the linear cell after a CC step has run ``seconds``."""
    return OCV0 + SLOPE * (charge_ah + current_a * seconds / 3600) + current_a * R


def first_reading(predicate: Callable[[int], bool], limit: int = 100_000) -> int:
    """The first whole second at which ``predicate(seconds)`` holds."""
    for second in range(limit):
        if predicate(second):
            return second
    raise AssertionError("never holds")


async def test_cc_charge_ends_at_the_first_reading_at_its_voltage() -> None:
    done = await run(program("  - Charge at 0.5C until 3.60025 V"))
    step_time = done.column("Step Time / s")
    voltage = done.column("Voltage / V")
    expected = first_reading(lambda s: cc_voltage(0.5, s) >= 3.60025)
    assert expected == 3302
    assert step_time[-1] == expected
    assert voltage[-1] >= 3.60025 > voltage[-2]
    assert set(done.column("Step Type").tolist()) == {"CC_CHG"}
    assert done.steps() == [(1, "until 3.60025 V")]
    assert done.outcome.state is JobState.COMPLETED


async def test_cc_discharge_ends_at_its_voltage() -> None:
    done = await run(program("  - Discharge at 0.5C until 3.30025 V"), rig(charge_ah=0.5))
    expected = first_reading(lambda s: cc_voltage(-0.5, s, 0.5) <= 3.30025)
    assert done.column("Step Time / s")[-1] == expected
    assert np.all(done.column("Current / A") == -0.5)
    assert set(done.column("Step Type").tolist()) == {"CC_DCH"}


async def test_time_condition_ends_at_that_step_time() -> None:
    done = await run(program("  - charge: 0.5C\n    for: 10 min"))
    assert done.column("Step Time / s")[-1] == 600.0
    assert done.column("Step Charging Capacity / Ah")[-1] == pytest.approx(0.5 * 600 / 3600,
                                                                           rel=1e-12)


@pytest.mark.parametrize("condition", ["250 mAh", "25 %"])
async def test_charge_condition_in_ah_and_in_percent_of_nominal(condition: str) -> None:
    done = await run(program(f"  - Charge at 0.7C until {condition}"))
    expected = first_reading(lambda s: 0.7 * s / 3600 >= 0.25)
    assert done.column("Step Time / s")[-1] == expected == 1286
    assert done.column("Step Charging Capacity / Ah")[-1] >= 0.25


async def test_energy_condition_uses_the_energy_passed_in_the_step() -> None:
    def energy_wh(seconds: int) -> float:  # exact for the trapezoid: the power is linear
        current = 0.7
        return current / 3600 * (seconds * (OCV0 + current * R)
                                 + SLOPE * current * seconds**2 / (2 * 3600))

    done = await run(program("  - charge: 0.7 A\n    until: {energy: 0.5 Wh}"))
    expected = first_reading(lambda s: energy_wh(s) >= 0.5)
    assert abs(energy_wh(expected) - 0.5) > 1e-6 and abs(energy_wh(expected - 1) - 0.5) > 1e-6
    assert done.column("Step Time / s")[-1] == expected
    assert done.column("Step Charging Energy / Wh")[-1] == pytest.approx(
        energy_wh(expected), rel=1e-12)


@pytest.mark.parametrize(("condition", "end_s"), [
    ("'> 10 mV/h'", 60.0),   # 12 mV/h from the first whole window on
    ("'< 13 mV/h'", 60.0),
    ("'< 11 mV/h'", 300.0),  # never: the time condition ends the step
])
async def test_dvdt_condition_over_a_one_minute_window(condition: str, end_s: float) -> None:
    done = await run(program(f"  - charge: 10 mA\n    until: {{dvdt: {condition}, time: 5 min}}"))
    assert done.column("Step Time / s")[-1] == end_s


async def test_rest_until_settled_ends_once_a_whole_window_is_flat() -> None:
    done = await run(program("""
  - Charge at 1C for 5 minutes
  - rest: 1 h
    until: {dvdt: 1 mV/h}
"""))
    assert done.steps()[1] == (2, "until 1 mV/h")
    assert done.column("Step Time / s")[-1] == 60.0


async def test_temperature_condition() -> None:
    done = await run(program("""
  - set: {temperature: 30 degC}
  - rest: 1 h
    until: '> 29 degC'
"""))
    expected = first_reading(lambda s: 30 - 5 * math.exp(-s / 60) >= 29)
    assert done.column("Step Time / s")[-1] == expected == 97
    assert done.steps()[-1] == (2, "until > 29 degC")


async def test_pressure_condition() -> None:
    done = await run(program("""
  - set: {pressure: 2 MPa}
  - rest: 1 h
    until: {pressure: '> 1.9 MPa'}
"""))
    expected = first_reading(lambda s: 2e6 - 1e6 * math.exp(-s / 60) >= 1.9e6)
    assert done.column("Step Time / s")[-1] == expected == 139


async def test_cccv_switches_to_cv_at_the_voltage_and_ends_at_the_cut_off() -> None:
    done = await run(program("  - cccv: {current: 0.5C, voltage: 3.60025 V, cutoff: 0.05C}"))
    kinds = done.column("Step Type").astype(str)
    step_time, current = done.column("Step Time / s"), done.column("Current / A")
    voltage = done.column("Voltage / V")
    switch = first_reading(lambda s: cc_voltage(0.5, s) >= 3.60025)
    assert np.all(kinds[step_time <= switch] == "CC_CHG")
    assert np.all(kinds[step_time > switch] == "CV_CHG")
    assert voltage[step_time == switch][0] >= 3.60025
    assert np.allclose(voltage[step_time > switch], 3.60025)
    assert current[-1] <= 0.05 < current[-2]
    assert set(done.column("Step ID").tolist()) == {1}
    assert set(done.column("Step Count / 1").tolist()) == {1}
    assert done.steps() == [(1, "until 0.05C")]
    summary = done.sink.cycles[0]
    cv_charge = done.column("Step Charging Capacity / Ah")[-1] - 0.5 * switch / 3600
    assert summary.cv_charge_share == pytest.approx(cv_charge / summary.charge_capacity_ah)
    assert summary.cc_charge_share == pytest.approx(1 - summary.cv_charge_share)


async def test_cccv_discharge_has_cc_and_cv_discharge_phases() -> None:
    done = await run(program(
        "  - cccv: {current: 0.5C, voltage: 3.20025 V, cutoff: 0.05C, direction: discharge}"),
        rig(charge_ah=0.5))
    kinds = done.column("Step Type").astype(str).tolist()
    assert kinds[0] == "CC_DCH" and kinds[-1] == "CV_DCH"
    assert kinds == sorted(kinds, key=lambda k: k != "CC_DCH")
    assert abs(done.column("Current / A")[-1]) <= 0.05


async def test_cccv_ended_in_its_cc_phase_never_holds_the_voltage() -> None:
    done = await run(program("  - cccv: {current: 0.5C, voltage: 4.2 V, cutoff: 0.05C}\n"
                             "    for: 10 min"))
    assert set(done.column("Step Type").tolist()) == {"CC_CHG"}
    assert done.column("Step Time / s")[-1] == 600.0
    assert all(c.mode.value == "current" for c in done.rig.applied)


async def test_hold_ends_when_the_current_falls_to_its_cut_off() -> None:
    done = await run(program("  - Hold at 3.5 V until 0.05C"), rig(charge_ah=0.25))
    tau = 3600 * R / SLOPE
    expected = first_reading(lambda s: 2.0 * math.exp(-s / tau) <= 0.05)
    assert done.column("Step Time / s")[-1] == expected == 1107
    assert set(done.column("Step Type").tolist()) == {"CV_CHG"}


async def test_rest_is_open_circuit_for_its_duration() -> None:
    done = await run(program("  - Rest for 5 minutes"), rig(charge_ah=0.5))
    assert done.column("Step Time / s")[-1] == 300.0
    assert np.all(done.column("Current / A") == 0.0)
    assert np.allclose(done.column("Voltage / V"), OCV0 + SLOPE * 0.5)
    assert set(done.column("Step Type").tolist()) == {"REST"}


@pytest.mark.parametrize(("verb", "kind"), [("charge", "CP_CHG"), ("discharge", "CP_DCH")])
async def test_constant_power(verb: str, kind: str) -> None:
    done = await run(program(f"  - {verb}: {{power: 1 W}}\n    for: 10 min"), rig(charge_ah=0.5))
    power = done.column("Voltage / V") * done.column("Current / A")
    assert np.allclose(power, 1.0 if verb == "charge" else -1.0, rtol=1e-12)
    assert set(done.column("Step Type").tolist()) == {kind}


async def test_constant_resistance_discharge() -> None:
    done = await run(program("  - discharge: {resistance: 10 Ohm}\n    for: 10 min"),
                     rig(charge_ah=0.5))
    assert np.allclose(done.column("Voltage / V") / done.column("Current / A"), -10.0)
    assert set(done.column("Step Type").tolist()) == {"CR_DCH"}


async def test_pulse_train_alternates_pulses_and_rests_in_one_step() -> None:
    done = await run(program("  - pulse: {charge: C/5, duration: 10 min, rest: 5 min, count: 3}"))
    assert done.column("Step Time / s")[-1] == 3 * (600 + 300)
    assert done.column("Step Charging Capacity / Ah")[-1] == pytest.approx(3 * 0.2 * 600 / 3600,
                                                                           rel=1e-12)
    kinds = done.column("Step Type").astype(str)
    changes = [kinds[0]] + [b for a, b in itertools.pairwise(kinds) if a != b]
    assert changes == ["CC_CHG", "REST"] * 3
    assert set(done.column("Step Count / 1").tolist()) == {1}
    assert done.steps() == [(1, "3 pulses done")]


async def test_pulse_train_ends_on_its_voltage_within_a_pulse() -> None:
    done = await run(program("  - pulse: {charge: 1C, duration: 10 min, rest: 5 min}\n"
                             "    until: 3.50025 V"))
    assert done.column("Voltage / V")[-1] >= 3.50025
    assert done.column("Step Type")[-1] == "CC_CHG"
    assert done.steps() == [(1, "until 3.50025 V")]


async def test_eis_step_stores_the_spectrum() -> None:
    done = await run(program("  - eis: {start: 1 kHz, stop: 1 Hz, amplitude: 10 mV, "
                             "per_decade: 5}"))
    assert len(done.sink.spectra) == 1
    step_id, step_count, spectrum = done.sink.spectra[0]
    assert (step_id, step_count) == (1, 1)
    assert spectrum.frequency_hz.shape[0] == 16
    assert [e.message for e in done.events(EventKind.SPECTRUM)] == ["16 frequencies"]


async def test_set_and_wait_until_stable() -> None:
    done = await run(program("""
  - set: {temperature: 30 degC, pressure: 2 MPa}
    wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 5 min, timeout: 2 h}
"""))
    within = first_reading(lambda s: 5 * math.exp(-s / 60) <= 0.5
                           and 1e6 * math.exp(-s / 60) <= 1e5)
    assert done.column("Step Time / s")[-1] == within + 300
    assert done.steps() == [(1, "stable")]


async def test_set_wait_timeout_fails_the_job() -> None:
    done = await run(program("""
  - set: {temperature: 30 degC}
    wait: {within: {temperature: 0.5 K}, for: 5 min, timeout: 2 min}
  - Rest for 1 minute
"""))
    assert done.outcome.state is JobState.FAILED
    assert "not stable within 120 s" in done.outcome.reason
    assert [e.kind for e in done.events()][-2:] == [EventKind.FAULT, EventKind.JOB_END]
    assert done.column("Step Time / s")[-1] == 120.0
    assert done.rig.safe_calls >= 1


@pytest.mark.parametrize("step", [
    "  - set: {temperature: 30 degC}",
    "  - set: {pressure: 2 MPa}",
    "  - eis: {start: 1 kHz, stop: 1 Hz, amplitude: 10 mV}",
])
async def test_a_step_the_channel_cannot_run_fails_the_job(step: str) -> None:
    done = await run(program(step), BareRig())
    assert done.outcome.state is JobState.FAILED
    assert "this channel" in done.outcome.reason
    assert done.rig.safe_calls == 1


async def test_stop_step_ends_the_job_with_its_reason() -> None:
    done = await run(program("""
  - Charge at 1C for 1 minute
  - stop: open the cell
  - Rest for 1 minute
"""))
    assert done.outcome.state is JobState.COMPLETED
    assert done.outcome.reason == "stop step 2: open the cell"
    assert [e.step_id for e in done.events(EventKind.STEP_START)] == [1, 2]


async def test_then_jumps_to_a_tag() -> None:
    done = await run(program("""
  - charge: 0.5C
    until:
      - voltage: 3.5 V
        then: after
      - time: 2 h
  - Rest for 1 minute
  - tag: after
    rest: 2 min
"""))
    assert [e.step_id for e in done.events(EventKind.STEP_START)] == [1, 3]
    assert done.outcome.state is JobState.COMPLETED


async def test_then_stop_ends_the_job() -> None:
    done = await run(program("""
  - charge: 0.5C
    until:
      - time: 2 h
      - voltage: 3.5 V
        then: stop
  - Rest for 1 minute
"""))
    assert [e.step_id for e in done.events(EventKind.STEP_START)] == [1]
    assert done.outcome.state is JobState.COMPLETED
    assert "went to 'stop'" in done.outcome.reason


async def test_a_then_of_a_condition_that_did_not_end_the_step_is_ignored() -> None:
    done = await run(program("""
  - charge: 0.5C
    until:
      - time: 1 min
      - voltage: 3.9 V
        then: stop
  - Rest for 1 minute
"""))
    assert [e.step_id for e in done.events(EventKind.STEP_START)] == [1, 2]


async def test_nested_repeats() -> None:
    done = await run(program("""
  - repeat: 2
    steps:
      - Rest for 1 minute
      - repeat: 3
        steps:
          - Charge at 1C for 1 minute
          - Discharge at 1C for 1 minute
"""))
    started = [e.step_id for e in done.events(EventKind.STEP_START)]
    assert started == ([1] + [2, 3] * 3) * 2
    assert done.outcome.cycles == 6
    assert done.column("Step Count / 1")[-1] == 14


async def test_for_each_runs_its_steps_once_per_value() -> None:
    done = await run(program("""
  - for_each: {rate: [0.5C, 1C]}
    steps:
      - repeat: 2
        steps:
          - Charge at ${rate} for 1 minute
          - Discharge at ${rate} for 1 minute
"""))
    currents = [float(block.columns["Current / A"][0]) for block in done.sink.blocks
                if block.columns["Step Time / s"][0] == 0.0]
    assert currents == [0.5, -0.5, 0.5, -0.5, 1.0, -1.0, 1.0, -1.0]
    assert done.outcome.cycles == 4


async def test_repeat_zero_skips_its_steps() -> None:
    done = await run(program("""
  - repeat: 0
    steps:
      - Charge at 1C for 1 minute
  - Rest for 1 minute
"""))
    assert [e.step_id for e in done.events(EventKind.STEP_START)] == [2]


async def test_events_mark_the_job_its_cycles_and_steps() -> None:
    done = await run(program("""
  - Charge at 1C until 3.30025 V
  - Discharge at 1C until 3.10025 V
  - Charge at 1C for 1 minute
"""))
    trace = [(e.kind.value, e.cycle, e.step_id, e.message) for e in done.events()]
    assert trace == [
        ("job start", 1, None, "engine-test"),
        ("cycle start", 1, None, "cycle 1"),
        ("step start", 1, 1, "Charge at 1C until 3.30025 V [1 A]"),
        ("step end", 1, 1, "until 3.30025 V"),
        ("step start", 1, 2, "Discharge at 1C until 3.10025 V [1 A]"),
        ("step end", 1, 2, "until 3.10025 V"),
        ("cycle end", 1, None, "cycle 1"),
        ("cycle start", 2, None, "cycle 2"),
        ("step start", 2, 3, "Charge at 1C for 1 minute [1 A]"),
        ("step end", 2, 3, "until 1 min"),
        ("cycle end", 2, None, "cycle 2"),
        ("job end", 2, None, "the program ran to its end"),
    ]
    assert done.events(EventKind.JOB_END)[0].data["state"] == "completed"

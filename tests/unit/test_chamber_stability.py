"""The chamber stability rule and the chamber drivers' shared checks."""

from __future__ import annotations

import math

import pytest

from cellrig.drivers.chamber_common import (
    SetpointRefused,
    check_setpoint,
    narrow_range,
    temperatures_outside,
)
from cellrig.drivers.chamber_stability import StabilityWatch
from cellrig.protocols.program import (
    Cell,
    Limits,
    Program,
    Recording,
    Repeat,
    RestStep,
    SetStep,
)


def watch_with(readings: list[tuple[float, float]], setpoint_c: float = 60.0,
               max_gap_s: float = 60.0) -> StabilityWatch:
    watch = StabilityWatch(max_gap_s=max_gap_s)
    watch.new_setpoint(setpoint_c)
    for time_s, temperature_c in readings:
        watch.add(time_s, temperature_c)
    return watch


def test_stable_only_after_the_whole_duration_within_tolerance() -> None:
    readings = [(t, 60.3) for t in range(0, 301, 10)]
    watch = watch_with(readings)
    assert watch.stable(0.5, 300.0)
    assert not watch.stable(0.5, 301.0)
    assert not watch.stable(0.2, 10.0)          # 0.3 K off is outside a 0.2 K band


def test_one_excursion_restarts_the_run() -> None:
    readings = [(t, 60.0) for t in range(0, 200, 10)] + [(200, 61.0)]
    readings += [(t, 60.1) for t in range(210, 400, 10)]
    watch = watch_with(readings)
    assert watch.stable_since(0.5) == 210
    assert watch.stable(0.5, 180.0) and not watch.stable(0.5, 190.0)


def test_tolerance_bound_counts_as_within() -> None:
    watch = watch_with([(0.0, 60.5), (30.0, 59.5)])
    assert watch.stable(0.5, 30.0)


def test_a_gap_in_the_readings_restarts_the_run() -> None:
    readings = [(0.0, 60.0), (30.0, 60.0), (200.0, 60.0), (230.0, 60.0)]
    watch = watch_with(readings, max_gap_s=60.0)
    assert watch.stable_since(0.5) == 200.0
    assert not watch.stable(0.5, 100.0)


def test_stale_latest_reading_is_not_stable_now() -> None:
    watch = watch_with([(t, 60.0) for t in range(0, 120, 10)])
    assert watch.stable(0.5, 100.0, now_s=150.0)
    assert not watch.stable(0.5, 100.0, now_s=200.0)


def test_new_setpoint_forgets_earlier_readings() -> None:
    watch = watch_with([(t, 25.0) for t in range(0, 100, 10)], setpoint_c=25.0)
    assert watch.stable(0.5, 90.0)
    watch.new_setpoint(60.0)
    assert not watch.stable(0.5, 0.0)
    watch.add(100.0, 60.0)
    assert watch.stable(0.5, 0.0) and not watch.stable(0.5, 1.0)


def test_nan_reading_breaks_the_run_and_no_setpoint_is_never_stable() -> None:
    watch = watch_with([(0.0, 60.0), (10.0, math.nan), (20.0, 60.0)])
    assert watch.stable_since(0.5) == 20.0
    assert not StabilityWatch().stable(1.0, 0.0)


def test_readings_must_come_in_order_and_history_is_bounded() -> None:
    watch = StabilityWatch(keep_s=100.0)
    watch.new_setpoint(20.0)
    for time_s in range(0, 1000, 10):
        watch.add(float(time_s), 20.0)
    assert watch.stable(0.1, 100.0) and not watch.stable(0.1, 110.0)
    with pytest.raises(ValueError, match="time order"):
        watch.add(5.0, 20.0)
    with pytest.raises(ValueError, match="max_gap_s"):
        StabilityWatch(max_gap_s=0.0)


def test_setpoint_range_is_checked_and_narrowed() -> None:
    check_setpoint(60.0, (-40.0, 150.0), instrument="espec", address="socket://x:1",
                   command="TEMP, S60.0")
    for bad_c in (-41.0, 150.5, math.nan):
        with pytest.raises(SetpointRefused) as caught:
            check_setpoint(bad_c, (-40.0, 150.0), instrument="espec", address="/dev/pts/3",
                           command="TEMP, S200.0")
        assert "outside the chamber's range -40 to 150 °C" in str(caught.value)
        assert caught.value.address == "/dev/pts/3"
    assert narrow_range((-40.0, 150.0), (-20.0, 180.0)) == (-20.0, 150.0)
    with pytest.raises(ValueError, match="do not overlap"):
        narrow_range((0.0, 10.0), (20.0, 30.0))


def test_submission_finds_set_steps_outside_the_chamber_range() -> None:
    hot = SetStep(id=2, label="hot", temperature_c=180.0)
    cold = SetStep(id=4, label="cold", temperature_c=-10.0)
    pressure_only = SetStep(id=5, label="press", pressure_pa=2e6)
    program = Program(
        name="soak", cell=Cell(capacity_ah=0.6), limits=Limits(), record=Recording(),
        steps=(SetStep(id=1, label="warm", temperature_c=60.0), hot,
               Repeat(label="loop", count=2,
                      steps=(RestStep(id=3, label="rest", until=()), cold, pressure_only))),
    )
    assert temperatures_outside(program, (-40.0, 150.0)) == [hot]
    assert temperatures_outside(program, (0.0, 150.0)) == [hot, cold]

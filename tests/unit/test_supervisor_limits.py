"""Effective limits (job ∩ channel ∩ instruments) and the level logic: warnings with
hysteresis, critical trips after their delay and not before, dithering and recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellrig.daemon.supervisor_limits import (
    Bound,
    EffectiveLimit,
    Finding,
    Level,
    LevelMonitor,
    LimitsConflict,
    Quantity,
    effective_limits,
    instrument_limits,
)
from cellrig.protocols.program import Limit, Limits

JOB = Limits(voltage_v=Limit(2.4, 4.35, 2.45, 4.3, 2.0), current_a=Limit(None, 2.0, None, 1.8),
             temperature_c=Limit(-20.0, 70.0), pressure_pa=Limit(0.5e6, 6e6))
HARD = Limits(voltage_v=Limit(2.0, 4.4), temperature_c=Limit(0.0, 65.0, 5.0, 62.0, 10.0))
RANGES = instrument_limits(min_voltage_v=0.0, max_voltage_v=5.0, max_current_a=1.0,
                           temperature_range_c=(-40.0, 180.0), max_pressure_pa=5e6)


class TestIntersection:
    def test_tightest_level_wins_with_its_source_and_delay(self) -> None:
        limits = effective_limits([("job", JOB), ("channel", HARD), ("instrument", RANGES)])
        assert limits[Quantity.VOLTAGE] == EffectiveLimit(
            Quantity.VOLTAGE, Bound(2.4, 2.45, 2.0, "job"), Bound(4.35, 4.3, 2.0, "job"))
        # the instrument's 1 A range is below the job's 2 A; the job's warning at 1.8 A lies
        # beyond it and is dropped
        assert limits[Quantity.CURRENT] == EffectiveLimit(
            Quantity.CURRENT, None, Bound(1.0, None, 0.0, "instrument"))
        assert limits[Quantity.TEMPERATURE] == EffectiveLimit(
            Quantity.TEMPERATURE, Bound(0.0, 5.0, 10.0, "channel"),
            Bound(65.0, 62.0, 10.0, "channel"))
        assert limits[Quantity.PRESSURE] == EffectiveLimit(
            Quantity.PRESSURE, Bound(0.5e6, None, 0.0, "job"),
            Bound(5e6, None, 0.0, "instrument"))

    def test_without_a_job_the_channel_and_instruments_remain(self) -> None:
        limits = effective_limits([("channel", HARD), ("instrument", RANGES)])
        assert limits[Quantity.VOLTAGE].low == Bound(2.0, None, 0.0, "channel")
        assert limits[Quantity.VOLTAGE].high == Bound(4.4, None, 0.0, "channel")
        assert limits[Quantity.PRESSURE].low is None

    def test_equal_levels_take_the_shorter_delay(self) -> None:
        limits = effective_limits([("job", Limits(voltage_v=Limit(2.5, 4.2, delay_s=5.0))),
                                   ("channel", Limits(voltage_v=Limit(2.5, 4.3, delay_s=1.0)))])
        assert limits[Quantity.VOLTAGE].low == Bound(2.5, None, 1.0, "channel")
        assert limits[Quantity.VOLTAGE].high == Bound(4.2, None, 5.0, "job")

    def test_unbounded_ranges_limit_nothing(self) -> None:
        assert effective_limits([("instrument", instrument_limits())]) == {}

    def test_disjoint_windows_are_refused_naming_both_sources(self) -> None:
        with pytest.raises(LimitsConflict, match=r"no voltage window.*job needs at least 4\.5 V"
                                                 r".*channel at most 4\.4 V"):
            effective_limits([("job", Limits(voltage_v=Limit(4.5, 4.8))), ("channel", HARD)])

    def test_hysteresis_base_is_the_span_or_the_maximum(self) -> None:
        limits = effective_limits([("job", JOB), ("instrument", RANGES)])
        assert limits[Quantity.VOLTAGE].span == pytest.approx(1.95)
        assert limits[Quantity.CURRENT].span == 1.0


def monitor(limit: Limit, fraction: float = 0.01) -> LevelMonitor:
    return LevelMonitor(effective_limits([("job", Limits(voltage_v=limit))])[Quantity.VOLTAGE],
                        fraction)


def feed(level_monitor: LevelMonitor, values: list[float], dt_s: float = 1.0,
         start_s: float = 0.0) -> list[Finding]:
    times = start_s + dt_s * np.arange(len(values), dtype=float)
    return level_monitor.observe(times, np.array(values, dtype=float))


class TestWarnings:
    def test_one_warning_per_excursion_rearmed_by_the_band(self) -> None:
        # window 2.0..4.0 V: band 1 % of 2 V = 20 mV below the 3.9 V warning level
        watch = monitor(Limit(2.0, 4.0, 2.2, 3.9))
        found = feed(watch, [3.8, 3.91, 3.95, 3.89, 3.91, 3.885, 3.875, 3.92, 3.7, 3.93])
        assert [(f.level, f.value, f.time_s) for f in found] == [
            (Level.WARNING, 3.91, 1.0), (Level.WARNING, 3.92, 7.0), (Level.WARNING, 3.93, 9.0)]

    def test_low_side_warns_too(self) -> None:
        found = feed(monitor(Limit(2.0, 4.0, 2.2, 3.9)), [2.5, 2.19, 2.1, 2.3, 2.15])
        assert [(f.limit, f.value) for f in found] == [(2.2, 2.19), (2.2, 2.15)]
        assert "below 2.2 V" in found[0].message

    def test_nan_readings_are_skipped(self) -> None:
        assert feed(monitor(Limit(2.0, 4.0, 2.2, 3.9)), [math.nan, 3.95, math.nan])[0].time_s \
            == 1.0


class TestCritical:
    def test_trips_when_the_breach_has_lasted_the_delay_and_not_before(self) -> None:
        watch = monitor(Limit(2.0, 4.0, delay_s=2.0))
        assert feed(watch, [3.9, 4.1, 4.2], dt_s=0.5) == []  # 0.5 s of breach so far
        found = feed(watch, [4.2], start_s=1.5)
        assert found == [] and watch.breach_since_s == 0.5
        found = feed(watch, [4.3, 4.4], start_s=2.5)
        assert [(f.level, f.time_s, f.value, f.limit) for f in found] == [
            (Level.CRITICAL, 2.5, 4.3, 4.0)]
        assert "voltage trip: 4.3 V above 4 V (job)" in found[0].message

    def test_no_delay_trips_at_the_first_reading_beyond(self) -> None:
        found = feed(monitor(Limit(2.0, 4.0)), [3.0, 3.5, 1.9, 1.8])
        assert [(f.level, f.time_s) for f in found] == [(Level.CRITICAL, 2.0)]

    def test_dithering_across_the_level_still_trips(self) -> None:
        # back inside by less than the 20 mV band: the breach stays pending
        found = feed(monitor(Limit(2.0, 4.0, delay_s=3.0)), [4.01, 3.99, 4.01, 3.99, 4.01])
        assert [(f.level, f.time_s) for f in found] == [(Level.CRITICAL, 4.0)]

    def test_back_inside_by_the_band_clears_the_breach(self) -> None:
        found = feed(monitor(Limit(2.0, 4.0, delay_s=3.0)), [4.01, 3.97, 4.01, 4.01, 4.01])
        assert found == []

    def test_staying_inside_for_the_delay_clears_the_breach(self) -> None:
        watch = monitor(Limit(2.0, 4.0, delay_s=3.0))
        assert feed(watch, [4.01, 3.99, 3.99, 3.99, 3.99, 4.01, 4.01]) == []
        assert watch.breach_since_s == 5.0

    def test_a_delayed_breach_warns_first(self) -> None:
        found = feed(monitor(Limit(2.0, 4.0, 2.2, 3.9, delay_s=1.0)), [3.8, 4.1, 4.1])
        assert [(f.level, f.time_s) for f in found] == [(Level.WARNING, 1.0),
                                                        (Level.CRITICAL, 2.0)]


@given(st.lists(st.floats(3.6, 4.2), min_size=1, max_size=40),
       st.lists(st.integers(1, 7), min_size=1, max_size=10))
def test_blocks_find_what_single_readings_find(values: list[float], cuts: list[int]) -> None:
    """However the readings are split into blocks, the findings are the same."""
    limit = Limit(2.0, 4.1, 2.2, 3.9, delay_s=2.0)
    one_by_one, blocks = monitor(limit), monitor(limit)
    singles: list[Finding] = []
    for index, value in enumerate(values):
        if singles and singles[-1].level is Level.CRITICAL:
            break
        singles += feed(one_by_one, [value], start_s=float(index))
    chunked: list[Finding] = []
    start, cut = 0, 0
    while start < len(values) and not (chunked and chunked[-1].level is Level.CRITICAL):
        size = cuts[cut % len(cuts)]
        chunked += feed(blocks, values[start:start + size], start_s=float(start))
        start, cut = start + size, cut + 1
    assert chunked == singles

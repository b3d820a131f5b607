"""Safety trips on a station on the wire: a hard short, an over-voltage, an over-temperature
and a pressure loss, each on one channel of four that charge at once through the real drivers
(pyvisa-py, pyserial) and the job manager, on a bench 300 times faster than real time.

Each test shows that the supervisor trips at the first reading beyond the limit, so within one
sampling period of the breach (the potentiostat's readings as the Keithley emulator took them,
or the chamber's and the jig's polls as the station stamped them), that the job ends aborted
with the trip's reason, that the channel's potentiostat is off in high impedance, and that the
other channels' jobs run on to their end; a job queued on a latched channel waits until the
latch is reset. The figures are in docs/safety.md ("Measured").
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from fault_station import (
    CHANNELS,
    SECOND_CHAMBER,
    SPEED,
    FaultStation,
    charge,
    fault_station,
    first_crossing,
    watching,
)
from job_fixtures import request, wait_for

from cellrig.daemon.control_api import JobView
from cellrig.daemon.environment import Stamped
from cellrig.daemon.supervisor import SafetyEvent, SafetyEventKind
from cellrig.simulators.cell_faults import Fault, FaultKind
from cellrig.simulators.jig import JigFault

pytestmark = pytest.mark.integration

TEST_TIME = "Test Time / s"
UNIX_TIME = "Unix Time / s"
#: The Keithley emulator stamps a reading with the bench clock as read after the cell model
#: was brought to the clock: on a busy machine some milliseconds later, up to seconds of bench
#: time at this speed. A reading stamped just after a fault's start may show the cell before.
STAMP_SKEW_S = 3.0


async def submit_all(station: FaultStation, protocols: dict[str, str]) -> dict[str, JobView]:
    """One job per channel, every channel running before this returns."""
    jobs = {name: await station.manager.submit(request(name, text))
            for name, text in protocols.items()}
    for job in jobs.values():
        await wait_for(station.manager, job.id, lambda view: view.state != "queued", 10.0)
    return jobs


async def ended(station: FaultStation, jobs: dict[str, JobView]) -> dict[str, JobView]:
    """Every job once it has ended."""
    return {name: await wait_for(station.manager, job.id, timeout_s=40.0)
            for name, job in jobs.items()}


def the_trip(station: FaultStation, channel: str, quantity: str) -> SafetyEvent:
    """The one trip of the station: ``channel``'s, on ``quantity``."""
    trips = [event for event in station.events
             if event.kind in (SafetyEventKind.LIMIT, SafetyEventKind.WATCHDOG)]
    assert [(event.channel, event.quantity) for event in trips] == [(channel, quantity)], trips
    return trips[0]


def check_the_others_ran_on(station: FaultStation, views: dict[str, JobView], tripped: str,
                            trip: SafetyEvent, *, test_time_s: float = 600.0) -> None:
    """Every other channel's job completed, stored samples after the trip, and is safe."""
    for name, view in views.items():
        if name == tripped:
            continue
        assert view.state == "completed", (name, view.reason)
        stored = station.samples(view.id, TEST_TIME, UNIX_TIME)
        assert stored[UNIX_TIME][-1] > trip.time_s  # it went on after the trip
        # the step ends at the first reading after its time (later on a busy machine)
        assert test_time_s <= stored[TEST_TIME][-1] < test_time_s + 60.0
        assert not station.station.channels[name].supervisor.latched
        assert station.output_safe(name)


def check_tripped_channel(station: FaultStation, view: JobView, trip: SafetyEvent,
                          word: str) -> None:
    """The job aborted for the trip's quantity; the channel latched, its outputs safe."""
    assert view.state == "aborted", view.reason
    assert word in view.reason
    supervisor = station.station.channels[view.channel].supervisor
    assert supervisor.trip == trip and supervisor.unsafe_instruments == []
    assert station.output_safe(view.channel)


def potentiostat_latency(station: FaultStation, view: JobView, trip: SafetyEvent,
                         beyond: float, onset_s: float | None, *,
                         reset: bool = False) -> dict[str, float]:
    """Checks a voltage trip against the Keithley's own readings and the stored samples;
    returns the figures (in sampling periods of the readings)."""
    readings = station.readings(view.channel)
    values = np.array([reading.value for reading in readings])
    times = np.array([reading.time_s for reading in readings])
    tripping = int(np.flatnonzero(np.isclose(values, trip.value, rtol=1e-6, atol=0.0))[0])
    outside = (values < beyond) if trip.value < trip.limit else (values > beyond)
    # the supervisor tripped at the first reading beyond the limit, and none came after it
    # (until the latch was reset and another job ran)
    assert int(np.flatnonzero(outside)[0]) == tripping
    assert reset or tripping == len(readings) - 1
    period_s = float(np.median(np.diff(times[:tripping])))
    if onset_s is None:  # where the voltage crossed the limit, between the two readings
        before, after = values[tripping - 1], values[tripping]
        onset_s = times[tripping - 1] + (beyond - before) / (after - before) * (
            times[tripping] - times[tripping - 1])
    # the trip came with the first reading after the breach: within one sampling period
    assert times[tripping - 1] - STAMP_SKEW_S < onset_s <= times[tripping]
    # the first stored sample beyond the limit is the tripping reading, and the last one
    stored = station.samples(view.id, TEST_TIME, UNIX_TIME, "Voltage / V")
    breach = np.flatnonzero((stored["Voltage / V"] < beyond) if trip.value < trip.limit
                            else (stored["Voltage / V"] > beyond))
    assert breach.tolist() == [len(stored[TEST_TIME]) - 1]
    assert stored[TEST_TIME][-1] == pytest.approx(trip.reading_time_s, abs=1e-3)
    assert stored["Voltage / V"][-1] == pytest.approx(trip.value, rel=1e-6)
    real_period_s = period_s / SPEED
    return {
        "period_s": period_s,
        "breach_to_trip_periods": (times[tripping] - onset_s) / period_s,
        "breach_to_trip_of_its_period": (times[tripping] - onset_s) / (
            times[tripping] - times[tripping - 1]),
        "stored_sample_to_event_periods": (trip.time_s - stored[UNIX_TIME][-1]) / real_period_s,
        "trip_to_safe_periods": (station.delivered(trip) - trip.time_s) / real_period_s,
    }


def poll_latency(station: FaultStation, view: JobView, column: str, polls: list[Stamped],
                 trip: SafetyEvent, crossing_s: float) -> dict[str, float]:
    """Checks an environment trip against the station's polls; returns the figures in
    sampling periods (the spacing of the polls)."""
    stamps = [poll.at_s for poll in polls]
    tripping = stamps.index(trip.reading_time_s)
    previous = polls[tripping - 1]
    within = (previous.value <= trip.limit) if trip.value > trip.limit else (
        previous.value >= trip.limit)
    assert within, (previous, trip)  # the trip came with the first poll beyond the limit
    period_s = trip.reading_time_s - previous.at_s
    latency_s = trip.reading_time_s - crossing_s
    # within one sampling period of the breach; a poll is stamped when its exchange with the
    # instrument is over, so the previous one measured up to that exchange earlier (a few ms,
    # more on a busy machine)
    assert 0.0 < latency_s <= period_s + 0.25, (latency_s, period_s)
    figures = {
        "period_s": period_s,
        "breach_to_trip_periods": latency_s / period_s,
        "trip_to_safe_periods": (station.delivered(trip) - trip.time_s) / period_s,
    }
    # a block read while the trip was under way carries the polled value: the engine stores
    # it and aborts on its own limit; then it is the job's last sample
    stored = station.samples(view.id, UNIX_TIME, column)
    beyond = np.flatnonzero((stored[column] > trip.limit) if trip.value > trip.limit
                            else (stored[column] < trip.limit))
    if beyond.size:
        assert beyond.tolist() == [len(stored[column]) - 1]
        assert stored[column][-1] == pytest.approx(trip.value)
        figures["stored_sample_to_event_periods"] = (
            trip.time_s - stored[UNIX_TIME][-1]) / period_s
        assert abs(figures["stored_sample_to_event_periods"]) < 1.0
    return figures


async def test_a_hard_short_trips_its_channel_at_the_next_reading(tmp_path: Path) -> None:
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: charge(name) for name in CHANNELS})
        await asyncio.sleep(0.2)  # into the charge
        cell = station.cell("A1")
        onset_model_s = cell.clock.now_s() - cell.origin_s + 30.0
        cell.cell.inject(Fault(FaultKind.HARD_SHORT, at_s=onset_model_s, resistance_ohm=0.01))
        views = await ended(station, jobs)
    trip = the_trip(station, "A1", "voltage")
    assert trip.kind is SafetyEventKind.LIMIT and trip.value < 0.05 and trip.limit == 0.5
    check_tripped_channel(station, views["A1"], trip, "voltage")
    figures = potentiostat_latency(station, views["A1"], trip, 0.5, onset_model_s + cell.origin_s)
    print("hard short", figures)
    check_the_others_ran_on(station, views, "A1", trip)


async def test_a_charge_past_the_protocols_voltage_limit_trips_its_channel_until_reset(
        tmp_path: Path) -> None:
    # the protocol stops the charge at 3.5 V, above its own voltage limit of 3 V
    over = charge("over-voltage", limits="voltage: [0.5 V, 3.0 V]").replace(
        "for 10 minutes", "until 3.5 V")
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: over if name == "A2" else charge(name)
                                          for name in CHANNELS})
        views = await ended(station, jobs)
        # a job queued on the latched channel waits until a person resets the latch
        again = await station.manager.submit(request("A2", charge("again", minutes=2)))
        await asyncio.sleep(0.3)
        assert (await station.manager.job(again.id)).state == "queued"
        station.station.channels["A2"].supervisor.reset()
        after_reset = await wait_for(station.manager, again.id, timeout_s=20.0)
    assert after_reset.state == "completed", after_reset.reason
    trip = the_trip(station, "A2", "voltage")
    assert trip.kind is SafetyEventKind.LIMIT and trip.value > trip.limit == 3.0
    assert views["A2"].state == "aborted" and "voltage" in views["A2"].reason
    assert station.output_safe("A2")
    figures = potentiostat_latency(station, views["A2"], trip, 3.0, None, reset=True)
    print("over-voltage", figures)
    check_the_others_ran_on(station, views, "A2", trip)


async def test_a_chamber_sent_to_another_setpoint_trips_the_channel_whose_limit_it_passes(
        tmp_path: Path) -> None:
    # A3 and A4 share chamber-2: A3's job allows 30 °C at most, A4's 60 °C
    tight = charge("tight", limits="voltage: [0.5 V, 4.3 V], temperature: [10 degC, 30 degC]")
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: tight if name == "A3" else charge(name)
                                          for name in CHANNELS})
        chamber = station.station.chambers[SECOND_CHAMBER]
        async with watching(chamber) as polls:
            await asyncio.sleep(0.1)
            # someone at the controller sets 45 °C (a command from the front panel)
            assert station.chamber2.handle("TEMP, S45.0") == "OK:TEMP,S45.0"
            model = station.chamber2.chamber
            now_s = station.sim.bench.clock.now_s()
            crossing_s = first_crossing(
                lambda t: float(model.true_temperature(np.array([t]))[0]), now_s,
                now_s + 3600.0, lambda value: round(value, 1) > 30.0)
            crossing_mono_s = station.bench_to_monotonic()(crossing_s)
            views = await ended(station, jobs)
    trip = the_trip(station, "A3", "temperature")
    assert trip.kind is SafetyEventKind.LIMIT and trip.value > trip.limit == 30.0
    check_tripped_channel(station, views["A3"], trip, "temperature")
    figures = poll_latency(station, views["A3"], "Ambient Temperature / degC", polls, trip,
                           crossing_mono_s)
    print("over-temperature", figures)
    # the trip's safe state held the chamber at the setpoint the jobs had set
    assert station.chamber2.setpoint_c == 25.0
    # A4, in the same chamber, saw it pass 30 °C and went on; A1 and A2 are in the other one
    check_the_others_ran_on(station, views, "A3", trip)
    seen = station.samples(views["A4"].id, "Ambient Temperature / degC")
    assert np.nanmax(seen["Ambient Temperature / degC"]) > 30.0
    seen = station.samples(views["A1"].id, "Ambient Temperature / degC")
    assert np.nanmax(np.abs(seen["Ambient Temperature / degC"] - 25.0)) < 0.2


async def test_a_leaking_jig_trips_its_channel_on_the_stack_pressure(tmp_path: Path) -> None:
    lossy = charge("lossy", limits="voltage: [0.5 V, 4.3 V], pressure: [1.5 MPa, 4 MPa]")
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: lossy if name == "A4" else charge(name)
                                          for name in CHANNELS})
        jig = station.cell("A4").jig
        assert jig is not None
        async with watching(station.station.jigs["A4"]) as polls:
            await asyncio.sleep(0.1)
            now_s = station.sim.bench.clock.now_s()
            jig.inject(JigFault.LEAK, now_s)
            crossing_s = first_crossing(
                lambda t: float(jig.stack_pressure(np.array([t]), np.zeros(1))[0]), now_s,
                now_s + 3600.0, lambda value: value < 1.5e6)
            crossing_mono_s = station.bench_to_monotonic()(crossing_s)
            views = await ended(station, jobs)
    trip = the_trip(station, "A4", "pressure")
    assert trip.kind is SafetyEventKind.LIMIT and trip.value < trip.limit == 1.5e6
    check_tripped_channel(station, views["A4"], trip, "pressure")
    figures = poll_latency(station, views["A4"], "Applied Pressure / Pa", polls, trip,
                           crossing_mono_s)
    print("pressure loss", figures)
    check_the_others_ran_on(station, views, "A4", trip)
    assert math.isclose(station.station.jigs["A4"].setpoint_pa or 0.0, 2e6)

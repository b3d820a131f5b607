"""Instrument faults on a station on the wire: four channels charge at once through the real
drivers (pyvisa-py, pyserial) and the job manager, on a bench 300 times faster than real time,
while one instrument misbehaves on its wire.

- A potentiostat whose connection drops in the middle of a constant-current step (closed for
  half a second, a reply cut half way, a garbled reply): the driver reconnects with backoff or
  reads again, and the job completes with no trip and the charge the cell took.
- A potentiostat away until its driver gives up: the job fails with the driver's reason, and
  the engine's own output off goes through once the instrument answers again.
- A potentiostat that stays away: the watchdog trips the channel, the output off fails and is
  retried until the instrument answers; the job ends with the driver's fault stored; the
  channel stays latched.
- A chamber that stops answering: the channels in it trip on their chamber watchdog (their
  jobs aborted, the missing temperatures stored as NaN, never as a stale number); the channels
  in the other chamber charge on; the chamber is held again once it answers.
- A force gauge that stops answering: only its channel trips (on its jig's watchdog), not the
  channel beside it in the same chamber.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from fault_station import (
    CHANNELS,
    IN_SECOND_CHAMBER,
    SECOND_CHAMBER,
    SETTINGS,
    FaultStation,
    charge,
    fault_station,
)
from job_fixtures import request, wait_for

from cellrig.daemon.control_api import JobView
from cellrig.daemon.supervisor import SafetyEventKind
from cellrig.simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.integration

TEST_TIME = "Test Time / s"
TEMPERATURE = "Ambient Temperature / degC"
CHARGED = "Charging Capacity / Ah"


async def submit_all(station: FaultStation, protocols: dict[str, str]) -> dict[str, JobView]:
    """One job per channel, every channel running before this returns."""
    jobs = {name: await station.manager.submit(request(name, text))
            for name, text in protocols.items()}
    for job in jobs.values():
        await wait_for(station.manager, job.id, lambda view: view.state != "queued", 10.0)
    return jobs


async def until(condition: Callable[[], bool], within_s: float, what: str) -> float:
    """Waits for ``condition``; returns how long it took."""
    started = time.monotonic()
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what
    return time.monotonic() - started


async def until_async(condition: Callable[[], Awaitable[object]], within_s: float) -> float:
    """Waits for ``await condition()`` to be truthy; returns how long it took."""
    started = time.monotonic()
    async with asyncio.timeout(within_s):
        while not await condition():
            await asyncio.sleep(0.01)
    return time.monotonic() - started


async def closed_for_half_a_second(server: ScpiServer) -> None:
    await server.close()  # every connection dropped, new ones refused
    await asyncio.sleep(0.5)
    await server.start()  # on the same port


async def reply_cut(server: ScpiServer) -> None:
    server.faults.drop_mid_reply = 1
    await until(lambda: server.faults.drop_mid_reply == 0, 5.0, "a reply was cut")


async def reply_garbled(server: ScpiServer) -> None:
    server.faults.garble_replies = 1
    await until(lambda: server.faults.garble_replies == 0, 5.0, "a reply was garbled")


@pytest.mark.parametrize(("fault", "reconnects"), [
    (closed_for_half_a_second, True), (reply_cut, True), (reply_garbled, False)],
    ids=["closed-for-half-a-second", "reply-cut", "reply-garbled"])
async def test_a_potentiostat_that_drops_out_mid_step_comes_back_and_the_job_completes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        fault: Callable[[ScpiServer], Awaitable[None]], reconnects: bool) -> None:
    """The job rides the fault out and counts the charge of the whole step, the outage
    included: the source kept its 0.3 A while the driver could not read.

    What it counted is held against what the emulated cell took over the same span, from
    the step's first to its last reading, in the bench time those readings carry. Not against
    the cell's total: the output goes off a few real milliseconds after the last reading (the
    engine ends the step, the driver sends the output off), and at 300 times real time a CI
    runner's scheduling delays there are tens of seconds of the cell's time, 5 % of its
    charge and more. Over the readings' own span no delay of the host shows, so the
    tolerance stays tight: an outage the job did not count (0.5 s here is 150 s, a quarter of
    the step) or counted twice fails it at once."""
    caplog.set_level(logging.INFO, logger="cellrig.drivers")
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: charge(name) for name in CHANNELS})
        await asyncio.sleep(0.3)  # into the charge
        server = station.sim.scpi_servers["A1"]
        before = len(station.readings("A1"))
        await fault(server)
        views = {name: await wait_for(station.manager, job.id, timeout_s=40.0)
                 for name, job in jobs.items()}
    assert before > 5  # the fault came in the middle of the step
    assert [(view.channel, view.state) for view in views.values()] == [
        (name, "completed") for name in CHANNELS], views
    assert station.events == []  # no trip, no warning: the driver rode it out
    assert "smu-A1: reading failed" in caplog.text
    assert ("reconnected" in caplog.text) is reconnects
    assert server.connections == (2 if reconnects else 1)
    stored = station.samples(views["A1"].id, TEST_TIME, CHARGED)
    # the step ran its 10 minutes of the Keithley's time (ending at the first reading after
    # them, which may come late after a long outage) ...
    assert np.all(np.diff(stored[TEST_TIME]) > 0) and stored[TEST_TIME][-1] >= 600.0
    # ... and the job counted the charge of the whole step, the outage included (the source
    # kept its 0.3 A) ...
    assert stored[CHARGED][-1] == pytest.approx(0.3 * stored[TEST_TIME][-1] / 3600.0, rel=1e-3)
    # ... which is what the cell took from the step's first reading to its last (the job's
    # test time starts at the first; the last is the reading that far after it)
    readings = station.readings("A1")
    first_s = readings[0].time_s
    last = [reading for reading in readings
            if abs(reading.time_s - first_s - stored[TEST_TIME][-1]) < 1e-3]
    assert len(last) == 1, (stored[TEST_TIME][-1], [r.time_s - first_s for r in readings[-3:]])
    taken = station.charge_taken("A1", first_s, last[0].time_s)
    assert stored[CHARGED][-1] == pytest.approx(taken, rel=2e-3)
    # the rest of what the cell took came before the first reading and after the last (the
    # output on before the step's first reading, off after its last)
    assert station.cell("A1").cell.state.charge_in_ah >= taken
    gap_s = float(np.diff([reading.time_s for reading in station.readings("A1")]).max())
    print(f"{fault.__name__}: the longest gap between readings was {gap_s:.0f} s")
    assert all(station.output_safe(name) for name in CHANNELS)


async def faults_of(station: FaultStation, job_id: int) -> list[str]:
    """The messages of a job's stored ``fault`` events."""
    return [event.message for event in await station.manager.events(job_id)
            if event.kind == "fault"]


#: A watchdog of 15 s, longer than the driver's whole attempt (detecting the loss, five
#: reconnects with backoff, the output off tried twice): the job's fault is the driver's own.
PATIENT_WATCHDOG = dataclasses.replace(SETTINGS, watchdog_floor_s=15.0)


async def test_a_potentiostat_away_until_its_driver_gives_up_fails_the_job_and_goes_off_on_return(
        tmp_path: Path) -> None:
    async with fault_station(tmp_path, settings=PATIENT_WATCHDOG) as station:
        jobs = await submit_all(station, {name: charge(name, minutes=20) for name in CHANNELS})
        await asyncio.sleep(0.3)
        server = station.sim.scpi_servers["A1"]
        address = station.sim.address("smu-A1")
        await server.close()
        gave_up_s = await until_async(lambda: faults_of(station, jobs["A1"].id), 15.0)
        # the driver noticed the loss, reconnected with backoff (0.2 s doubling, five
        # attempts) and gave up; meanwhile the instrument kept its output on
        assert station.smu("A1").output_on
        await server.start()  # back while the engine tries to switch the output off
        failed = await wait_for(station.manager, jobs["A1"].id, timeout_s=10.0)
        assert failed.state == "failed"
        assert failed.reason.startswith(f"smu-A1 at {address}: ")
        assert "Connection refused" in failed.reason or "closed" in failed.reason
        assert await faults_of(station, failed.id) == [failed.reason]
        assert station.output_safe("A1")
        # the output went off before the watchdog was due: nothing tripped, nothing latched
        assert not station.station.channels["A1"].supervisor.latched
        print(f"away until the driver gives up: fault {gave_up_s:.2f} s after the cut")
        views = {name: await wait_for(station.manager, job.id, timeout_s=40.0)
                 for name, job in jobs.items()}
    assert 1.0 < gave_up_s < 8.0
    assert {name: view.state for name, view in views.items()} == {
        "A1": "failed", "A2": "completed", "A3": "completed", "A4": "completed"}
    assert station.events == []


#: A safe action given longer than the Keithley driver's whole attempt at the output off (two
#: tries, each reconnecting five times with jittered backoff from 0.2 s: 3 to 9 s), so that
#: the failure the supervisor reports is the driver's own, naming the instrument and address,
#: not its own time-out ("TimeoutError") whenever the jitter makes the driver slower than 5 s.
PATIENT_SAFE_ACTION = dataclasses.replace(SETTINGS, safe_timeout_s=20.0)


async def test_a_potentiostat_that_stays_away_ends_its_job_and_is_made_safe_on_return(
        tmp_path: Path) -> None:
    async with fault_station(tmp_path, settings=PATIENT_SAFE_ACTION) as station:
        jobs = await submit_all(station, {name: charge(name, minutes=40) for name in CHANNELS})
        await asyncio.sleep(0.3)
        server = station.sim.scpi_servers["A1"]
        address = station.sim.address("smu-A1")
        await server.close()
        supervisor = station.station.channels["A1"].supervisor
        # the watchdog (5 s without a reading) trips, and the output off cannot go out
        tripped_s = await until(lambda: supervisor.latched, 10.0, "the watchdog tripped")
        running = {name: (await station.manager.job(job.id)).state
                   for name, job in jobs.items() if name != "A1"}
        assert set(running.values()) == {"running"}, running
        await until(lambda: supervisor.unsafe_instruments == ["potentiostat"], 25.0,
                    "the output off failed")
        ended = await wait_for(station.manager, jobs["A1"].id, timeout_s=30.0)
        faults = await faults_of(station, ended.id)
        assert faults and faults[0].startswith(f"smu-A1 at {address}: ")  # the cause, stored
        # Which comes first, the driver giving up (1.5 to 5 s, then the engine's own output
        # off tried twice) or the watchdog (5 s), decides the job's state: failed with the
        # driver's reason, or aborted with the watchdog's (the driver's is in its fault event).
        if ended.state == "failed":
            assert ended.reason == faults[0]
        else:
            assert ended.state == "aborted"
            assert ended.reason.startswith(
                "safety supervisor: no fresh reading from potentiostat for ")
        trip = supervisor.trip
        assert trip is not None and trip.kind is SafetyEventKind.WATCHDOG
        assert trip.limit == 5.0
        failures = [event for event in station.events
                    if event.kind is SafetyEventKind.SAFE_FAILED]
        assert [(event.channel, event.quantity) for event in failures] == [("A1", "potentiostat")]
        assert address in failures[0].message
        # nobody can reach the instrument: its output is still on
        assert station.smu("A1").output_on
        await server.start()
        safe_after_s = await until(lambda: station.output_safe("A1"), 5.0,
                                   "the output went off once the instrument answered")
        await until(lambda: supervisor.unsafe_instruments == [], 5.0, "safe")
        assert supervisor.latched  # a person looks before A1 runs again
        print(f"stays away: job {ended.state}, watchdog {tripped_s:.2f} s after the cut; "
              f"output off {safe_after_s:.2f} s after the instrument came back")
        views = {name: await wait_for(station.manager, job.id, timeout_s=40.0)
                 for name, job in jobs.items()}
    assert [view.state for view in views.values()][1:] == ["completed"] * 3, views
    assert [event.channel for event in station.events] == ["A1", "A1"]


async def test_a_chamber_that_stops_answering_trips_the_channels_in_it_only(
        tmp_path: Path) -> None:
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: charge(name, minutes=40) for name in CHANNELS})
        await asyncio.sleep(0.3)
        station.chamber2_server.faults.silent = True
        silent_at = time.monotonic()
        aborted = {name: await wait_for(station.manager, jobs[name].id, timeout_s=30.0)
                   for name in IN_SECOND_CHAMBER}
        aborted_after_s = time.monotonic() - silent_at
        # the channels in the other chamber are still charging
        for name in CHANNELS:
            if name not in IN_SECOND_CHAMBER:
                assert (await station.manager.job(jobs[name].id)).state == "running"
        for name in IN_SECOND_CHAMBER:  # the chamber's hold cannot go out
            supervisor = station.station.channels[name].supervisor
            await until(lambda s=supervisor: s.unsafe_instruments == [SECOND_CHAMBER], 10.0,
                        "the hold failed")
        station.chamber2_server.faults.silent = False
        await until(lambda: all(not station.station.channels[name].supervisor.unsafe_instruments
                                for name in IN_SECOND_CHAMBER), 10.0, "the chamber held again")
        others = {name: await wait_for(station.manager, job.id, timeout_s=40.0)
                  for name, job in jobs.items() if name not in IN_SECOND_CHAMBER}
    print(f"silent chamber: jobs aborted {aborted_after_s:.2f} s after the chamber went quiet")
    assert aborted_after_s < 7.0
    for name, view in aborted.items():
        assert view.state == "aborted"
        assert view.reason.startswith(f"safety supervisor: no fresh reading from "
                                      f"{SECOND_CHAMBER} for ")
        trip = station.station.channels[name].supervisor.trip
        assert trip is not None and trip.kind is SafetyEventKind.WATCHDOG
        assert trip.limit == 5.0 and 5.0 < trip.value < 6.0  # seconds without a fresh value
        assert station.output_safe(name)
        temperature = station.samples(view.id, TEMPERATURE)[TEMPERATURE]
        # fresh values first; once the chamber was three polls late, NaN and not its last value
        assert np.isfinite(temperature[0]) and np.isnan(temperature[-1])
    assert sorted((event.channel, event.kind, event.quantity) for event in station.events
                  if event.kind is not SafetyEventKind.SAFE_FAILED) == [
        (name, SafetyEventKind.WATCHDOG, SECOND_CHAMBER) for name in IN_SECOND_CHAMBER]
    for name, view in others.items():
        assert view.state == "completed", view.reason
        temperature = station.samples(view.id, TEMPERATURE)[TEMPERATURE]
        assert np.isfinite(temperature).all()
        assert not station.station.channels[name].supervisor.latched
    assert station.chamber2.setpoint_c == 25.0


async def test_a_force_gauge_that_stops_answering_trips_its_own_channel_only(
        tmp_path: Path) -> None:
    async with fault_station(tmp_path) as station:
        jobs = await submit_all(station, {name: charge(name, minutes=40) for name in CHANNELS})
        await asyncio.sleep(0.3)
        gauge = station.sim.mark10s["A2"].server
        assert gauge is not None
        gauge.faults.silent = True
        aborted = await wait_for(station.manager, jobs["A2"].id, timeout_s=30.0)
        running = {name: (await station.manager.job(job.id)).state
                   for name, job in jobs.items() if name != "A2"}
        assert set(running.values()) == {"running"}, running  # A1 shares A2's chamber
        gauge.faults.silent = False
        views = {name: await wait_for(station.manager, job.id, timeout_s=40.0)
                 for name, job in jobs.items()}
    assert aborted.state == "aborted"
    assert aborted.reason.startswith("safety supervisor: no fresh reading from A2-jig for ")
    trips = [(event.channel, event.kind, event.quantity) for event in station.events
             if event.kind is not SafetyEventKind.ALARM]
    assert trips == [("A2", SafetyEventKind.WATCHDOG, "A2-jig")]  # its hold went out
    assert station.output_safe("A2")
    pressure = station.samples(aborted.id, "Applied Pressure / Pa")["Applied Pressure / Pa"]
    assert np.isfinite(pressure[0]) and np.isnan(pressure[-1])
    assert [view.state for name, view in views.items() if name != "A2"] == ["completed"] * 3

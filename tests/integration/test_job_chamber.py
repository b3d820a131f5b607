"""The shared-chamber rule (docs/jobs.md): a job whose set step needs another temperature than
the one other channels hold waits, running, until they release it; jobs started together line
up at every set step; a held job waits for its group."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from job_fixtures import request, running, wait_for
from model_station import GangedChamberPort, build_station

pytestmark = pytest.mark.integration

HOT = """cellrig: 1
name: hot
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 60 s}
steps:
  - set: {temperature: 60 degC}
  - Charge at 0.5C until 4.2 V
  - repeat: 3
    steps:
      - Discharge at 0.5C until 3.0 V
      - Charge at 0.5C until 4.2 V
"""
COLD = """cellrig: 1
name: cold
cell: {capacity: 600 mAh}
limits: {temperature: [10 degC, 70 degC]}
record: {every: 60 s}
steps:
  - set: {temperature: 25 degC}
  - Rest for 10 hours
"""
#: Warm charge, then a cooler discharge; ``rate`` sets how long the charge takes.
SWEEP = """cellrig: 1
name: sweep
cell: {capacity: 600 mAh}
parameters: {rate: 0.5C}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 60 s}
steps:
  - set: {temperature: 45 degC}
  - Charge at ${rate} until 4.2 V
  - set: {temperature: 30 degC}
  - Discharge at 0.5C until 3.0 V
"""


def chamber_events(events: list) -> list:  # type: ignore[type-arg]
    return [event for event in events if event.data.get("wait") == "chamber"]


async def test_a_job_needing_another_temperature_waits_until_the_holder_ends(
        tmp_path: Path) -> None:
    station = build_station(["A1", "A2"], pace_s=0.01, max_block_s=900.0)
    async with running(station, tmp_path / "station.db") as manager:
        hot = await manager.submit(request("A1", HOT))
        await wait_for(manager, hot.id, lambda view: view.state == "running")
        async with asyncio.timeout(5):
            while "A1" not in station.chamber.holders:
                await asyncio.sleep(0.01)
        cold = await manager.submit(request("A2", COLD))
        async with asyncio.timeout(5):
            while not chamber_events(await manager.events(cold.id)):
                await asyncio.sleep(0.01)
        waiting = await manager.job(cold.id)
        assert waiting.state == "running"
        status = {channel.channel: channel for channel in (await manager.status()).channels}
        assert status["A2"].job_state == "running"
        assert station.channels["A2"].model.command.mode.value == "off"  # no current meanwhile
        # not held to its own temperature window while the chamber is someone else's
        supervisor = station.channels["A2"].supervisor
        assert supervisor.job_limits is not None and supervisor.job_limits.temperature_c is None
        hot_view = await wait_for(manager, hot.id)
        # once it holds the chamber, its temperature window is watched again
        async with asyncio.timeout(5):
            while supervisor.job_limits is None or supervisor.job_limits.temperature_c is None:
                await asyncio.sleep(0.001)
        cold_view = await wait_for(manager, cold.id)
        events = chamber_events(await manager.events(cold.id))
        hot_end = (await manager.events(hot.id))[-1]
    assert hot_view.state == cold_view.state == "completed"
    assert "held by A1 at 60 °C" in events[0].message and "needs 25 °C" in events[0].message
    assert events[1].message.startswith("chamber chamber taken at 25 °C after waiting")
    assert hot_end.kind == "job end" and events[1].unix_time_s >= hot_end.unix_time_s
    port = station.chamber.port
    assert isinstance(port, GangedChamberPort) and port.sent == [60.0, 25.0]


async def test_jobs_started_together_line_up_at_every_set_step(tmp_path: Path) -> None:
    station = build_station(["A1", "A2"], pace_s=0.005, max_block_s=900.0)
    async with running(station, tmp_path / "station.db") as manager:
        blocker = await manager.submit(request("A2", COLD))
        fast = await manager.submit(request("A1", SWEEP, parameters={"rate": "0.5C"},
                                            hold_for_group=True))
        await asyncio.sleep(0.2)
        assert (await manager.job(fast.id)).state == "queued"  # held: A1 is idle, yet it waits
        slow = await manager.submit(request("A2", SWEEP, parameters={"rate": "0.2C"},
                                            start_with=(fast.id,)))
        views = [await wait_for(manager, job.id) for job in (blocker, fast, slow)]
        fast_events = chamber_events(await manager.events(fast.id))
    assert [view.state for view in views] == ["completed"] * 3
    blocker_view, fast_view, slow_view = views
    assert fast_view.started_unix_s is not None and slow_view.started_unix_s is not None
    assert blocker_view.ended_unix_s is not None
    # they started together, once A2 was free
    assert fast_view.started_unix_s >= blocker_view.ended_unix_s
    assert abs(fast_view.started_unix_s - slow_view.started_unix_s) < 0.5
    # the faster charge waited at 30 °C for the slower one: the chamber moved once
    port = station.chamber.port
    assert isinstance(port, GangedChamberPort)
    assert port.sent == [25.0, 45.0, 30.0]
    assert fast_events and "needs 30 °C" in fast_events[0].message
    assert "held by A2 at 45 °C" in fast_events[0].message


async def test_stopping_a_job_that_waits_for_the_chamber(tmp_path: Path) -> None:
    station = build_station(["A1", "A2"], pace_s=0.02, max_block_s=600.0)
    async with running(station, tmp_path / "station.db") as manager:
        hot = await manager.submit(request("A1", HOT))
        async with asyncio.timeout(5):
            while "A1" not in station.chamber.holders:
                await asyncio.sleep(0.01)
        cold = await manager.submit(request("A2", COLD))
        async with asyncio.timeout(5):
            while not chamber_events(await manager.events(cold.id)):
                await asyncio.sleep(0.01)
        stopped = await manager.stop(cold.id, "not today")
        assert (stopped.state, stopped.reason) == ("stopped", "not today")
        assert (await manager.job(hot.id)).state == "running"
        await manager.stop(hot.id)

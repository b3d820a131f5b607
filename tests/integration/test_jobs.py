"""The job manager on a station of bench-model channels: submit, queue, run, complete,
provenance, pause, resume, stop, queue order and a safety trip that aborts one channel only.

Nothing is mocked: the channels are the model rig behind the channel rig, its supervisor and
the environment poller; the store is a real SQLite file. Jobs run in the model's virtual time,
so a formation takes well under a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from pathlib import Path

import pytest
from job_fixtures import request, running, wait_for
from model_station import HARD_LIMITS, build_station

from cellrig.daemon.job_submit import library_text
from cellrig.daemon.store_read import StoreReader
from cellrig.daemon.store_records import sha256_text
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.program import Limit
from cellrig.protocols.resolve import load_cell_text, resolve
from cellrig.simulators.cell_faults import Fault, FaultKind

pytestmark = pytest.mark.integration

#: A protocol that runs many blocks: paced, it lasts long enough to pause and stop.
CYCLING = """cellrig: 1
name: short-cycling
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 60 s}
steps:
  - Charge at 0.5C until 4.2 V
  - repeat: 20
    steps:
      - Discharge at 0.5C until 3.0 V
      - Charge at 0.5C until 4.2 V
"""
#: A discharge whose own limits are wider than the channel's: only the supervisor trips.
DISCHARGE = """cellrig: 1
name: supervised-discharge
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V]}
record: {every: 10 s}
steps:
  - Discharge at 0.2C until 2.5 V
  - Rest for 10 minutes
  - Charge at 0.2C until 4.2 V
"""
TIGHT = dataclasses.replace(HARD_LIMITS, voltage_v=Limit(2.4, 4.5))


async def test_formation_runs_to_completion_on_two_channels_with_provenance(
        tmp_path: Path) -> None:
    station = build_station(["A1", "A2"])
    async with running(station, tmp_path / "station.db") as manager:
        first = await manager.submit(request("A1", cell={"id": "pouch-7", "capacity": "0.6 Ah"},
                                             parameters={"upper": "4.2 V"}))
        second = await manager.submit(request("A2"))
        assert first.state in ("queued", "running") and first.cell_id == "pouch-7"
        views = [await wait_for(manager, job.id) for job in (first, second)]
        status = await manager.status()
    assert [view.state for view in views] == ["completed", "completed"], views
    assert {view.channel for view in views} == {"A1", "A2"}
    assert all(view.started_unix_s is not None and view.ended_unix_s is not None
               for view in views)
    assert all(channel.job_id is None and channel.queued == 0 for channel in status.channels)
    with StoreReader(tmp_path / "station.db") as reader:
        record = reader.job(first.id)
        provenance = record.provenance
        text = library_text("formation")
        assert text is not None
        assert provenance.protocol_text == text
        assert provenance.protocol_sha256 == sha256_text(text)
        assert provenance.cell["id"] == "pouch-7"
        assert provenance.cell["capacity_ah"] == pytest.approx(0.6)
        assert provenance.parameters == {"upper": "4.2 V"}
        assert provenance.software_version == "9.9.9-test"
        assert provenance.station_config_sha256 == station.config.sha256
        expected = resolve(load_protocol_text(text, "library/formation.yaml"),
                           load_cell_text("id: pouch-7\ncapacity: 0.6 Ah\n"), {"upper": "4.2 V"})
        assert provenance.program().sha256 == expected.sha256
        for job in (first, second):
            cycles = reader.cycles(job.id)
            assert len(cycles) == 1
            assert cycles[0].discharge_capacity_ah > 0.5
            assert reader.sample_count(job.id) > 100
            kinds = [stored.event.kind.value for stored in reader.events(job.id)]
            assert kinds[0] == "job start" and kinds[-1] == "job end"


async def test_jobs_on_one_channel_run_in_submission_order(tmp_path: Path) -> None:
    station = build_station(["A1"])
    async with running(station, tmp_path / "station.db") as manager:
        jobs = [await manager.submit(request("A1", CYCLING,
                                             parameters={})) for _ in range(3)]
        views = [await wait_for(manager, job.id) for job in jobs]
    assert [view.state for view in views] == ["completed"] * 3
    starts = [view.started_unix_s for view in views]
    ends = [view.ended_unix_s for view in views]
    assert all(value is not None for value in (*starts, *ends))
    for earlier, later in itertools.pairwise(views):
        assert earlier.ended_unix_s is not None and later.started_unix_s is not None
        assert earlier.ended_unix_s <= later.started_unix_s


async def test_pause_resume_and_stop(tmp_path: Path) -> None:
    station = build_station(["A1"], pace_s=0.01, max_block_s=600.0)
    async with running(station, tmp_path / "station.db") as manager:
        job = await manager.submit(request("A1", CYCLING))
        queued = await manager.submit(request("A1", CYCLING))
        await wait_for(manager, job.id, lambda view: view.state == "running")
        await asyncio.sleep(0.1)
        paused = await manager.pause(job.id)
        assert paused.state == "paused"
        await asyncio.sleep(0.05)
        reads = station.channels["A1"].potentiostat.reads
        await asyncio.sleep(0.2)
        assert station.channels["A1"].potentiostat.reads == reads  # nothing read while paused
        status = await manager.status()
        assert status.channels[0].job_state == "paused" and status.channels[0].queued == 1
        resumed = await manager.resume(job.id)
        assert resumed.state == "running"
        await asyncio.sleep(0.1)
        assert station.channels["A1"].potentiostat.reads > reads
        status = await manager.status()
        live = status.channels[0]
        assert live.job_id == job.id and live.voltage_v is not None and live.cycle is not None
        cancelled = await manager.stop(queued.id)
        assert cancelled.state == "stopped"
        stopped = await manager.stop(job.id, "enough")
        assert (stopped.state, stopped.reason) == ("stopped", "enough")
        with pytest.raises(Exception, match="already stopped"):
            await manager.stop(job.id)
        events = await manager.events(job.id)
    kinds = [event.kind for event in events]
    assert "pause" in kinds and "resume" in kinds and kinds[-1] == "job end"
    with StoreReader(tmp_path / "station.db") as reader:
        assert reader.sample_count(queued.id) == 0


async def test_a_hard_short_aborts_only_its_own_channel(tmp_path: Path) -> None:
    station = build_station(["A1", "A2"])
    async with running(station, tmp_path / "station.db") as manager:
        formed = [await manager.submit(request(name)) for name in ("A1", "A2")]
        assert [(await wait_for(manager, job.id)).state for job in formed] == ["completed"] * 2
        # formed cells; now channels whose hard limits stop a discharge at 2.4 V
        for channel in station.channels.values():
            channel.supervisor.hard_limits = TIGHT
            channel.config = dataclasses.replace(channel.config, limits=TIGHT)
        cell = station.channels["A1"].model.cell
        cell.inject(Fault(FaultKind.HARD_SHORT, at_s=cell.time_s + 1805.0, resistance_ohm=0.01))
        shorted = await manager.submit(request("A1", DISCHARGE))
        healthy = await manager.submit(request("A2", DISCHARGE))
        shorted_view = await wait_for(manager, shorted.id)
        healthy_view = await wait_for(manager, healthy.id)
        status = await manager.status()
    assert shorted_view.state == "aborted", shorted_view
    assert shorted_view.reason.startswith("safety supervisor: "), shorted_view.reason
    assert "voltage" in shorted_view.reason
    assert healthy_view.state == "completed", healthy_view
    latched = {channel.channel: channel.latched for channel in status.channels}
    assert latched["A1"] is not None and latched["A2"] is None
    assert [event.channel for event in station.safety_events if event.kind.value == "limit"] == [
        "A1"]


async def test_an_instrument_fault_fails_only_its_own_job(tmp_path: Path) -> None:
    station = build_station(["A1", "A2"])
    station.channels["A1"].potentiostat.fail_at_read = 5
    async with running(station, tmp_path / "station.db") as manager:
        broken = await manager.submit(request("A1", CYCLING))
        healthy = await manager.submit(request("A2", CYCLING))
        broken_view = await wait_for(manager, broken.id)
        healthy_view = await wait_for(manager, healthy.id)
        again = await manager.submit(request("A1", CYCLING))  # the channel takes new jobs
        again_view = await wait_for(manager, again.id)
    assert broken_view.state == "failed", broken_view
    assert "the connection dropped" in broken_view.reason
    assert healthy_view.state == again_view.state == "completed"
    assert station.channels["A1"].model.command.mode.value == "off"

"""Recovery: a manager closed in the middle of a job (its store closed and opened again from
the file) continues the job from its checkpoint, and the job's cycle table and samples equal
those of a run that was never interrupted.

The channel's instrument keeps its state while the manager is away (the bench model lives in
the test, as a real potentiostat outlives the daemon), and the interruption falls between two
blocks, as a cancellation does: then nothing is lost and the comparison is exact up to
rounding (1e-8 relative), except in a constant-voltage step (1e-5, see ``CV_TOLERANCE``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from job_fixtures import FAST, request, running, wait_for
from model_station import ModelStation, build_station

from cellrig.daemon.job_station import JobSettings
from cellrig.daemon.store import Store
from cellrig.daemon.store_read import StoreReader
from cellrig.daemon.store_records import Provenance
from cellrig.daemon.store_schema import JobState
from cellrig.daemon.supervisor import SafetyEvent, SafetyEventKind
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine.output import CycleSummary
from cellrig.protocols.resolve import resolve

pytestmark = pytest.mark.integration

CYCLING = """cellrig: 1
name: cycling
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 30 s, voltage_change: 10 mV}
steps:
  - set: {temperature: 25 degC, pressure: 2 MPa}
  - Charge at 0.3C until 4.2 V
  - Hold at 4.2 V until 0.05C
  - repeat: 2
    steps:
      - Discharge at 0.5C until 3.0 V
      - Rest for 5 minutes
      - Charge at 0.5C until 4.2 V
"""
BLOCK_S = 600.0
#: The model computes the rest of a step from the state it was left in rather than continuing
#: its closed form: voltages, and so energies, round differently (a few 1e-9 relative).
TOLERANCE = 1e-8
#: A constant voltage applied again starts with the model potentiostat's regulation transient
#: (as a real one's does): the first interval after the resume passes about 1e-6 of the cycle's
#: charge less than an uninterrupted hold, and the cut-off comes a fraction of a second later.
CV_TOLERANCE = 1e-5
CYCLE_FIELDS = ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                "discharge_energy_wh", "cv_charge_share", "start_test_time_s",
                "end_test_time_s", "min_pressure_pa", "max_temperature_c")


async def uninterrupted(tmp_path: Path) -> tuple[list[CycleSummary], dict[str, np.ndarray]]:
    station = build_station(["A1"], max_block_s=BLOCK_S)
    async with running(station, tmp_path / "reference.db") as manager:
        job = await manager.submit(request("A1", CYCLING))
        assert (await wait_for(manager, job.id)).state == "completed"
    with StoreReader(tmp_path / "reference.db") as reader:
        return reader.cycles(job.id), reader.samples(job.id).columns


async def interrupt(station: ModelStation, path: Path, settings: JobSettings,
                    at_test_time_s: float) -> int:
    """Submit, then close the manager once the job has passed ``at_test_time_s``."""
    async with running(station, path, settings=settings) as manager:
        job = await manager.submit(request("A1", CYCLING))
        async with asyncio.timeout(20):
            while True:
                live = (await manager.status()).channels[0]
                if live.test_time_s is not None and live.test_time_s > at_test_time_s:
                    break
                await asyncio.sleep(0.001)
    return job.id


def assert_same(cycles: list[CycleSummary], expected: list[CycleSummary], rel: float) -> None:
    assert [c.cycle for c in cycles] == [c.cycle for c in expected]
    for got, want in zip(cycles, expected, strict=True):
        for name in CYCLE_FIELDS:
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=rel,
                                                       abs=1e-12), (got.cycle, name)


@pytest.mark.parametrize(("checkpoint_every_s", "at_test_time_s", "rel"), [
    # checkpoints at step starts only: the samples after one are folded in
    (1e9, 5_000.0, TOLERANCE),      # in the CC charge
    (1e9, 9_000.0, CV_TOLERANCE),   # in the CV hold
    (1e9, 18_000.0, TOLERANCE),     # in a discharge
    (0.0, 23_000.0, TOLERANCE),     # a checkpoint after every block: nothing to fold
])
async def test_a_resumed_job_has_the_cycle_table_of_an_uninterrupted_run(
        tmp_path: Path, checkpoint_every_s: float, at_test_time_s: float, rel: float) -> None:
    expected_cycles, expected = await uninterrupted(tmp_path)
    station = build_station(["A1"], pace_s=0.003, max_block_s=BLOCK_S)
    path = tmp_path / "station.db"
    settings = JobSettings(checkpoint_every_s=checkpoint_every_s,
                           chamber_poll_s=FAST.chamber_poll_s)
    job_id = await interrupt(station, path, settings, at_test_time_s)
    with StoreReader(path) as reader:
        assert reader.job(job_id).state.value == "running"
        checkpoint = reader.checkpoint(job_id)
        assert checkpoint is not None
        after = reader.sample_count(job_id) - checkpoint.samples
        assert after > 0 if checkpoint_every_s > 1 else after == 0
    async with running(station, path, settings=settings) as manager:
        view = await wait_for(manager, job_id)
        events = await manager.events(job_id)
    assert view.state == "completed", view
    notes = [event for event in events if event.message.startswith("resumed after restart")]
    assert len(notes) == 1 and notes[0].data["folded_samples"] == after
    assert notes[0].data["gap_s"] >= 0
    with StoreReader(path) as reader:
        assert_same(reader.cycles(job_id), expected_cycles, rel)
        samples = reader.samples(job_id).columns
    times = samples["Test Time / s"]
    # a step's last reading and the next step's first share their time; nothing goes back
    assert np.all(np.diff(times) >= 0)
    assert times.shape == expected["Test Time / s"].shape
    for name in ("Test Time / s", "Voltage / V", "Charging Capacity / Ah",
                 "Cycle Discharging Capacity / Ah", "Step Time / s"):
        np.testing.assert_allclose(samples[name], expected[name], rtol=rel, atol=rel)


async def test_a_paused_job_stays_paused_after_a_restart(tmp_path: Path) -> None:
    station = build_station(["A1"], pace_s=0.003, max_block_s=BLOCK_S)
    path = tmp_path / "station.db"
    async with running(station, path) as manager:
        job = await manager.submit(request("A1", CYCLING))
        await wait_for(manager, job.id, lambda view: view.state == "running")
        await asyncio.sleep(0.05)
        await manager.pause(job.id)
    reads = station.channels["A1"].potentiostat.reads
    station.chamber.release("A1")  # a restart forgets who holds the chamber
    async with running(station, path) as manager:
        await asyncio.sleep(0.2)
        assert (await manager.job(job.id)).state == "paused"
        assert station.chamber.holders == {"A1": 25.0}  # held again where the job had it
        assert station.channels["A1"].potentiostat.reads == reads
        live = (await manager.status()).channels[0]
        assert live.job_state == "paused" and live.job_id == job.id
        with StoreReader(path) as reader:
            checkpoint = reader.checkpoint(job.id)
        assert checkpoint is not None
        step_id = checkpoint.state["step"]["step_id"]
        labels = {step.id: step.label for step in resolve(
            load_protocol_text(CYCLING, "cycling.yaml")).iter_steps()}
        assert live.step == labels[step_id]
        assert live.step_count == checkpoint.state["step_count"]
        assert live.cycle == checkpoint.state["cycle"]["number"]
        await manager.resume(job.id)
        assert (await wait_for(manager, job.id)).state == "completed"


async def test_queued_jobs_are_queued_again_in_order(tmp_path: Path) -> None:
    station = build_station(["A1"], pace_s=0.003, max_block_s=BLOCK_S)
    path = tmp_path / "station.db"
    async with running(station, path) as manager:
        jobs = [await manager.submit(request("A1", CYCLING)) for _ in range(3)]
        await wait_for(manager, jobs[0].id, lambda view: view.state == "running")
    async with running(station, path) as manager:
        async with asyncio.timeout(5):
            while (status := (await manager.status()).channels[0]).job_id != jobs[0].id:
                await asyncio.sleep(0.005)
        assert status.queued == 2
        views = [await wait_for(manager, job.id) for job in jobs]
    assert [view.state for view in views] == ["completed"] * 3
    starts = [view.started_unix_s or 0.0 for view in views]
    assert starts == sorted(starts)


async def test_a_job_that_cannot_be_read_back_fails_and_the_others_resume(
        tmp_path: Path) -> None:
    station = build_station(["A1", "A2"])
    path = tmp_path / "station.db"
    with Store.open(path) as store:
        broken = store.add_job("A1", Provenance("garbled", "cellrig: 1", "{not json", {}, {},
                                                station.config.sha256))
        store.set_state(broken, JobState.RUNNING)
        program = resolve(load_protocol_text(CYCLING, "cycling.yaml"))
        gone = store.add_job("B9", Provenance.of(CYCLING, program,
                                                 station_config_sha256=station.config.sha256))
    async with running(station, path) as manager:
        job = await manager.submit(request("A2", CYCLING))
        views = [await wait_for(manager, job_id) for job_id in (broken, gone, job.id)]
    assert [view.state for view in views] == ["failed", "failed", "completed"]
    assert "cannot be picked up again" in views[0].reason
    assert "no longer in the station configuration" in views[1].reason


async def test_a_latched_channel_holds_its_recovered_job_until_reset(tmp_path: Path) -> None:
    station = build_station(["A1"], pace_s=0.003, max_block_s=BLOCK_S)
    path = tmp_path / "station.db"
    job_id = await interrupt(station, path, FAST, 5_000.0)
    supervisor = station.channels["A1"].supervisor
    supervisor.trip = SafetyEvent("A1", SafetyEventKind.LIMIT, "voltage", 4.6, 4.5, 0.0,
                                  "voltage 4.6 V above 4.5 V")
    reads = station.channels["A1"].potentiostat.reads
    async with running(station, path) as manager:
        await asyncio.sleep(0.2)
        assert station.channels["A1"].potentiostat.reads == reads  # nothing runs while latched
        status = (await manager.status()).channels[0]
        assert status.latched == "voltage 4.6 V above 4.5 V" and status.job_id is None
        assert (await manager.pause(job_id)).state == "paused"
        assert (await manager.resume(job_id)).state == "running"
        supervisor.reset()
        view = await wait_for(manager, job_id)
    assert view.state == "completed", view


async def test_a_resumed_job_waits_for_the_chamber_it_held_and_can_be_stopped(
        tmp_path: Path) -> None:
    station = build_station(["A1", "A2"], pace_s=0.003, max_block_s=BLOCK_S)
    path = tmp_path / "station.db"
    job_id = await interrupt(station, path, FAST, 5_000.0)
    station.chamber.release("A1")  # a restart forgets who holds the chamber
    await station.chamber.claim("A2", 40.0)  # and another channel took it meanwhile
    reads = station.channels["A1"].potentiostat.reads
    async with running(station, path) as manager:
        async with asyncio.timeout(5):
            while not any(event.data.get("wait") == "chamber"
                          for event in await manager.events(job_id)):
                await asyncio.sleep(0.01)
        assert (await manager.job(job_id)).state == "running"
        assert station.channels["A1"].potentiostat.reads == reads  # nothing sourced
        stopped = await manager.stop(job_id, "chamber taken")
    assert (stopped.state, stopped.reason) == ("stopped", "chamber taken")
    assert station.chamber.holders == {"A2": 40.0}

"""The job manager: the station's :class:`~cellrig.daemon.control_api.StationControl`.

Jobs are checked when they are submitted (``job_submit``), recorded in the store with their
provenance, queued per channel in submission order, run one at a time per channel
(``job_run``), paused, resumed and stopped on request, and continued after a crash or a power
loss (``job_recovery``). :meth:`JobManager.run` owns one worker task per channel in a task
group; a worker's failure is logged and the worker starts again, so one channel never stops
another. The daemon calls :meth:`JobManager.recover` once before :meth:`JobManager.run`.

Jobs submitted with ``start_with`` form a group: each waits at the head of its channel's queue
until every other member still queued is at the head of its own, then all start at once
(docs/jobs.md, "Starting together"). Groups live in memory: after a restart, queued members
start on their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from cellrig import __version__
from cellrig.daemon.control_api import (
    ChannelStatus,
    ControlError,
    ErrorCode,
    EventView,
    JobView,
    StationStatus,
    SubmitRequest,
)
from cellrig.daemon.job_groups import StartGroups
from cellrig.daemon.job_live import LiveChannel
from cellrig.daemon.job_reconcile import make_safe, reconcile
from cellrig.daemon.job_recovery import plan_recovery, resume_note
from cellrig.daemon.job_rig import ChamberWaits
from cellrig.daemon.job_run import ActiveJob, run_job
from cellrig.daemon.job_station import JobSettings, JobStation
from cellrig.daemon.job_submit import prepare
from cellrig.daemon.job_views import event_view, job_view
from cellrig.daemon.store import Store, StoreError
from cellrig.daemon.store_read import StoreReader
from cellrig.daemon.store_schema import FINAL_STATES, JobState
from cellrig.protocols.program import Program

log = logging.getLogger(__name__)
T = TypeVar("T")


class JobManager:
    """Submission, queues, workers, control and recovery of a station's jobs."""

    def __init__(self, station: JobStation, store: Store, *,
                 settings: JobSettings | None = None,
                 software_version: str = __version__) -> None:
        self.station = station
        self.store = store
        self.settings = settings or JobSettings()
        self.software_version = software_version
        self.waits = ChamberWaits()
        self.groups = StartGroups()
        self._queues: dict[str, list[int]] = {name: [] for name in station.channels}
        self._wake = {name: asyncio.Event() for name in station.channels}
        self._programs: dict[int, Program] = {}
        self._pending: dict[int, ActiveJob] = {}
        self._active: dict[str, ActiveJob] = {}
        self._live = {name: LiveChannel() for name in station.channels}
        self._reader: StoreReader | None = None
        self._reading = asyncio.Lock()

    @property
    def station_name(self) -> str:
        """The station's name (from station.toml)."""
        return self.station.config.name

    @property
    def reader(self) -> StoreReader:
        """The manager's own store reader (opened on first use)."""
        if self._reader is None:
            self._reader = self.store.reader()
        return self._reader

    async def _read(self, query: Callable[[StoreReader], T]) -> T:
        """``query`` on the manager's reader, in a thread (a station's whole job list takes
        tens of milliseconds), one query at a time."""
        async with self._reading:
            return await asyncio.to_thread(query, self.reader)

    def close(self) -> None:
        """Close the manager's reader (the workers end with :meth:`run`'s cancellation)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _set_state(self, job_id: int, state: JobState, reason: str = "") -> None:
        await asyncio.to_thread(self.store.set_state, job_id, state, reason,
                                timeout_s=self.settings.store_timeout_s)

    # -- recovery --------------------------------------------------------------------------

    async def recover(self) -> list[int]:
        """Queue the store's unfinished jobs again: running and paused ones first, each at
        the head of its channel's queue, continued from its checkpoint; returns their ids.
        A potentiostat that kept sourcing the job's step meanwhile has the outage accounted
        (``job_reconcile``); any other is made safe first."""
        plan = await self._read(plan_recovery)
        for record, reason in plan.broken:
            await self._set_state(record.id, JobState.FAILED, reason)
            broken = self.station.channels.get(record.channel)
            if broken is not None:  # opened without a reset: it may still be sourcing
                await make_safe(broken.rig, self.settings.safe_timeout_s)
        now = self.station.clock.unix_now()
        resumed: list[int] = []
        for job in plan.continued:
            record = job.record
            channel = self.station.channels.get(record.channel)
            if channel is None:
                await self._set_state(record.id, JobState.FAILED, f"channel {record.channel} "
                                      "is no longer in the station configuration")
                continue
            found = await reconcile(job.checkpoint, job.program, job.paused,
                                    job.last_unix_s, channel.rig, self.station.clock,
                                    self.settings.safe_timeout_s)
            active = ActiveJob(record.id, job.program, found.checkpoint, job.paused,
                               resume_note(job, now, found.data),
                               resume_at_s=found.resume_at_s)
            self._pending[record.id] = active
            self._queues[record.channel].insert(0, record.id)
            self._wake[record.channel].set()
            resumed.append(record.id)
            log.info("%s: job %d resumes (%d samples after its checkpoint folded in)",
                     record.channel, record.id, job.folded_samples)
        for record, program in plan.queued:
            if record.channel not in self._queues:
                await self._set_state(record.id, JobState.FAILED, f"channel {record.channel} "
                                      "is no longer in the station configuration")
                continue
            self._programs[record.id] = program
            self._queues[record.channel].append(record.id)
            self._wake[record.channel].set()
        return resumed

    # -- workers ---------------------------------------------------------------------------

    async def run(self) -> None:
        """One worker per channel, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for name in self.station.channels:
                group.create_task(self._keep_working(name), name=f"{name}.jobs")

    async def _keep_working(self, channel: str) -> None:
        while True:
            try:
                await self._work(channel)
            except Exception:  # one channel's bug must not stop the others
                log.exception("%s: the job worker failed; starting it again", channel)
                await asyncio.sleep(1.0)

    async def _work(self, channel: str) -> None:
        supervisor = self.station.channels[channel].supervisor
        while True:
            queue = self._queues[channel]
            if not queue:
                self._wake[channel].clear()
                await self._wake[channel].wait()
                continue
            if supervisor.latched:  # a person resets the latch; queued jobs wait for it
                await asyncio.sleep(self.settings.latched_poll_s)
                continue
            head = queue[0]
            if not await self.groups.wait_ready(head, self._queued):
                continue  # the head changed (stopped) while it waited for its group
            if not queue or queue[0] != head:
                continue
            queue.pop(0)
            await self._run(channel, head)

    def _queued(self) -> set[int]:
        return {job for queue in self._queues.values() for job in queue}

    async def _run(self, channel: str, job_id: int) -> None:
        active = self._pending.pop(job_id, None)
        if active is None:
            active = ActiveJob(job_id, self._programs.pop(job_id))
        self._programs.pop(job_id, None)
        self.groups.leave(job_id)
        live = self._live[channel]
        live.start(job_id, active.program.name,
                   (JobState.PAUSED if active.paused else JobState.RUNNING).value)
        if active.checkpoint is not None:
            live.resume_from(active.checkpoint, active.program)
        self._active[channel] = active

        async def set_state(job: int, state: JobState, reason: str = "") -> None:
            # the channel shows no job before the store says the job ended, so a client
            # that sees the end never finds the job still on its channel
            if state in FINAL_STATES:
                live.clear()
            await self._set_state(job, state, reason)

        try:
            await run_job(active, self.station.channels[channel], self.store,
                          self.station.clock, live, self.waits, self.settings, set_state)
        except Exception as exc:  # a bug around the job: record it rather than orphan it
            log.exception("%s: job %d failed outside its engine", channel, job_id)
            try:
                await self._set_state(job_id, JobState.FAILED,
                                      f"the daemon failed: {exc or type(exc).__name__}")
            except Exception:
                log.exception("%s: job %d could not be marked failed", channel, job_id)
        finally:
            del self._active[channel]
            active.ended.set()
            live.clear()

    # -- StationControl --------------------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> JobView:
        """Check, record and queue a job; returns it queued."""
        prepared = await asyncio.to_thread(prepare, request, self.station,
                                           software_version=self.software_version)
        members = self.groups.check(prepared.channel, request.start_with, self._queued(),
                                    self.station.channels, self._channel_of)
        try:
            job_id = await asyncio.to_thread(self.store.add_job, prepared.channel,
                                             prepared.provenance,
                                             timeout_s=self.settings.store_timeout_s)
        except StoreError as exc:
            log.error("submit: the store did not take the job: %s", exc)
            raise ControlError(ErrorCode.INTERNAL, f"the store did not take the job: {exc}"
                               ) from None
        self._programs[job_id] = prepared.program
        self.groups.join(job_id, members, hold=request.hold_for_group)
        self._queues[prepared.channel].append(job_id)
        self._wake[prepared.channel].set()
        return await self.job(job_id)

    def _channel_of(self, job_id: int) -> str | None:
        for name, queue in self._queues.items():
            if job_id in queue:
                return name
        return None

    async def jobs(self, states: Sequence[str] | None = None) -> list[JobView]:
        """Jobs, newest first, optionally only those in ``states``."""
        try:
            wanted = None if states is None else [JobState(state) for state in states]
        except ValueError:
            known = ", ".join(state.value for state in JobState)
            raise ControlError(ErrorCode.INVALID, f"job states are {known}") from None
        records = await self._read(lambda reader: reader.jobs(wanted))
        return [job_view(record) for record in reversed(records)]

    async def job(self, job_id: int) -> JobView:
        """One job."""
        try:
            return job_view(await self._read(lambda reader: reader.job(job_id)))
        except StoreError:
            raise ControlError(ErrorCode.NOT_FOUND, f"there is no job {job_id}") from None

    async def status(self) -> StationStatus:
        """Every channel, live (from memory: no store access)."""
        channels = []
        for name, channel in self.station.channels.items():
            live = self._live[name]
            trip = channel.supervisor.trip
            channels.append(ChannelStatus(
                channel=name, job_id=live.job_id, job_state=live.job_state,
                protocol_name=live.protocol_name, step=live.step, step_count=live.step_count,
                cycle=live.cycle, voltage_v=live.voltage_v, current_a=live.current_a,
                temperature_c=live.temperature_c, pressure_pa=live.pressure_pa,
                charge_capacity_ah=live.charge_capacity_ah,
                discharge_capacity_ah=live.discharge_capacity_ah,
                test_time_s=live.test_time_s, latched=None if trip is None else trip.message,
                queued=len(self._queues[name])))
        return StationStatus(self.station_name, self.software_version,
                             self.station.clock.unix_now(), channels)

    def _running(self, job_id: int) -> tuple[str, ActiveJob] | None:
        for name, active in self._active.items():
            if active.job_id == job_id:
                return name, active
        return None

    async def pause(self, job_id: int) -> JobView:
        """Pause a running job at its next block."""
        return await self._pause_or_resume(job_id, pause=True)

    async def resume(self, job_id: int) -> JobView:
        """Resume a paused job."""
        return await self._pause_or_resume(job_id, pause=False)

    async def _pause_or_resume(self, job_id: int, *, pause: bool) -> JobView:
        before, after = ((JobState.RUNNING, JobState.PAUSED) if pause
                         else (JobState.PAUSED, JobState.RUNNING))
        reason = "paused on request" if pause else ""
        found = self._running(job_id)
        view = await self.job(job_id)
        pending = self._pending.get(job_id)
        if pending is not None and view.state == before:  # recovered, not started yet
            pending.paused = pause
            await self._set_state(job_id, after, reason)
            return await self.job(job_id)
        if found is None or found[1].engine is None or view.state != before:
            verb = "paused" if pause else "resumed"
            raise ControlError(ErrorCode.CONFLICT, f"job {job_id} is {view.state}; only a "
                               f"{before.value} job can be {verb}")
        name, active = found
        assert active.engine is not None
        if pause:  # the engine stops sourcing before the store says paused
            active.engine.pause()
        else:  # and the store says running before the engine sources again
            await self._set_state(job_id, after, reason)
        active.paused = pause
        self._live[name].job_state = after.value
        if pause:
            await self._set_state(job_id, after, reason)
        else:
            active.engine.resume()
        return await self.job(job_id)

    async def stop(self, job_id: int, reason: str = "stopped on request") -> JobView:
        """Stop a queued, running or paused job; waits a little for a running one to end."""
        view = await self.job(job_id)
        if JobState(view.state) in FINAL_STATES:
            raise ControlError(ErrorCode.CONFLICT, f"job {job_id} is already {view.state}")
        channel = self._channel_of(job_id)
        if channel is not None:
            self._queues[channel].remove(job_id)
            self._programs.pop(job_id, None)
            pending = self._pending.pop(job_id, None)
            self.groups.leave(job_id)
            if pending is not None and pending.resume_at_s is not None:
                # recovered with its instrument left sourcing the step: stop that too
                await make_safe(self.station.channels[channel].rig,
                                self.settings.safe_timeout_s)
            await self._set_state(job_id, JobState.STOPPED, reason)
            return await self.job(job_id)
        found = self._running(job_id)
        if found is None:
            raise ControlError(ErrorCode.CONFLICT, f"job {job_id} is {view.state} but no "
                               "channel runs it yet; try again")
        active = found[1]
        active.stop_reason = reason
        if active.engine is not None:
            active.engine.stop(reason)
        try:
            async with asyncio.timeout(self.settings.stop_wait_s):
                await active.ended.wait()
        except TimeoutError:
            pass
        return await self.job(job_id)

    async def events(self, job_id: int, after_id: int = 0) -> list[EventView]:
        """A job's events after ``after_id``."""
        await self.job(job_id)
        stored = await self._read(lambda reader: reader.events(job_id, after_id=after_id))
        return [event_view(event) for event in stored]

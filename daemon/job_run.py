"""Running one job on its channel, from its first step or from a checkpoint, to a final state.

The safety supervisor watches the job's limits from before the first command
(``begin_job``) until after the rig is safe (``end_job``). The engine's outcome becomes the
job's state in the store:

| engine | store |
|---|---|
| completed, stopped | the same |
| aborted (a limit of the job) | aborted, the limit's message |
| failed because the supervisor had latched the channel | aborted, the supervisor's trip message |
| failed (an instrument fault, a chamber that never settled) | failed, the fault |

Whatever happens the channel's chamber hold is given up and the output is off at the end. A
cancelled job (the daemon shutting down, or killed) keeps its running or paused state in the
store, so the next start continues it (``job_recovery``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellrig.daemon.channel_rig import ChannelTripped
from cellrig.daemon.job_live import LiveChannel, LiveSink
from cellrig.daemon.job_rig import ChamberWaits, JobRig
from cellrig.daemon.job_station import JobChannel, JobSettings
from cellrig.daemon.store import Store
from cellrig.daemon.store_schema import JobState
from cellrig.drivers.ports import SourceReader
from cellrig.errors import CellrigError
from cellrig.protocols.clock import Clock
from cellrig.protocols.engine import Engine, Event, EventKind
from cellrig.protocols.engine import JobState as EngineJobState
from cellrig.protocols.program import Program, SetStep

log = logging.getLogger(__name__)

_FINAL = {EngineJobState.COMPLETED: JobState.COMPLETED, EngineJobState.STOPPED: JobState.STOPPED,
          EngineJobState.ABORTED: JobState.ABORTED, EngineJobState.FAILED: JobState.FAILED}


@dataclass
class ActiveJob:
    """A job its channel's worker has taken from the queue: what pause, resume and stop
    act on."""

    job_id: int
    program: Program
    checkpoint: dict[str, Any] | None = None
    paused: bool = False
    resume_note: Event | None = None
    """the "resumed after restart" event, sent before the engine starts"""
    resume_at_s: float | None = None
    """after a restart with the instrument still sourcing the step: the instrument time up
    to which the outage is accounted; the engine's first command counts from it"""
    engine: Engine | None = None
    stop_reason: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    final_state: JobState | None = None

    def stop_requested(self) -> str | None:
        """Why a stop was asked for (it may come while the job starts)."""
        return self.stop_reason


async def run_job(job: ActiveJob, channel: JobChannel, store: Store, clock: Clock,
                  live: LiveChannel, waits: ChamberWaits, settings: JobSettings,
                  set_state: Callable[[int, JobState, str], Any]) -> JobState | None:
    """Run ``job`` on ``channel`` to its end; returns the final state it was given (None if
    the job was cancelled and stays unfinished)."""
    try:
        final, reason = await _run(job, channel, store, clock, live, waits, settings,
                                   set_state)
        trip = channel.supervisor.trip
        if final is JobState.FAILED and trip is not None and _stopped_by_latch(reason, channel):
            final, reason = JobState.ABORTED, f"safety supervisor: {trip.message}"
    except asyncio.CancelledError:
        _release(channel, waits)
        raise
    except Exception as exc:  # the store failed under the engine, or a bug: fail the job
        log.exception("%s: job %d failed", channel.name, job.job_id)
        final, reason = JobState.FAILED, f"the daemon failed: {exc or type(exc).__name__}"
    _release(channel, waits)
    try:
        async with asyncio.timeout(settings.safe_timeout_s):
            await channel.rig.safe()
    except (CellrigError, TimeoutError) as exc:  # the supervisor's watchdog goes on
        log.error("%s: could not make the rig safe after job %d: %s", channel.name,
                  job.job_id, exc or "timed out")
    try:
        await set_state(job.job_id, final, reason)
    except CellrigError as exc:
        log.error("%s: job %d ended %s (%s) but the store did not take it: %s", channel.name,
                  job.job_id, final.value, reason, exc)
    job.final_state = final
    return final


def _stopped_by_latch(reason: str, channel: JobChannel) -> bool:
    """Whether the engine failed because the supervisor had latched the channel (its rig
    refused the next command), not on a fault of its own that the latch followed."""
    return str(ChannelTripped(channel.name, "")).rstrip(": ") in reason


class ChamberLimits:
    """The job's limits as the supervisor watches them. A job that sets the temperature of a
    shared chamber is not held to its own temperature window while the chamber is at other
    channels' setpoint: from its start until it first holds the chamber, and while it waits for
    the chamber at a later set step (output off). The channel's hard limits always hold, and
    so do the engine's own checks of every reading the job takes."""

    def __init__(self, channel: JobChannel, program: Program) -> None:
        self.supervisor = channel.supervisor
        self.limits = program.limits
        sets_temperature = channel.chamber is not None and any(
            isinstance(step, SetStep) and step.temperature_c is not None
            for step in program.iter_steps())
        self.relaxed = (dataclasses.replace(program.limits, temperature_c=None)
                        if sets_temperature and program.limits.temperature_c is not None
                        else program.limits)

    def begin(self) -> None:
        """Watch the job from now on (relaxed until it holds the chamber)."""
        self.supervisor.begin_job(self.relaxed)

    def chamber(self, held: bool) -> None:
        """The job holds the chamber at its setpoint (True) or waits for it (False)."""
        if self.relaxed is not self.limits:
            self.supervisor.begin_job(self.limits if held else self.relaxed)


def _release(channel: JobChannel, waits: ChamberWaits) -> None:
    channel.supervisor.end_job()
    channel.rig.release_environment()
    waits.notify()


async def _run(job: ActiveJob, channel: JobChannel, store: Store, clock: Clock,
               live: LiveChannel, waits: ChamberWaits, settings: JobSettings,
               set_state: Callable[[int, JobState, str], Any]) -> tuple[JobState, str]:
    if (reason := job.stop_requested()) is not None:
        return JobState.STOPPED, reason
    limits = ChamberLimits(channel, job.program)
    try:
        limits.begin()
    except CellrigError as exc:
        return JobState.FAILED, f"cannot start: {exc}"
    sink = LiveSink(store.sink(job.job_id), live)
    if job.resume_note is not None:
        sink.event(job.resume_note)  # committed with the state change just below
    await set_state(job.job_id, JobState.PAUSED if job.paused else JobState.RUNNING, "")
    holder: list[Engine] = []

    def report(message: str, data: dict[str, Any]) -> None:
        if holder:
            holder[0].event(EventKind.WARNING, message, **data)

    def check_stop() -> None:
        if holder:
            holder[0].check_stop()

    write_ahead = None
    if isinstance(channel.rig.potentiostat, SourceReader):
        # An instrument that goes on sourcing without the daemon gets no command the store
        # does not have: the step start (its checkpoint) is committed before the step's
        # command is sent, so after a kill the stored step is the one the instrument sources
        # and recovery can account what it did meanwhile.
        async def write_ahead() -> None:
            await asyncio.to_thread(store.flush, settings.store_timeout_s)

    rig = JobRig(channel.rig, waits, poll_s=settings.chamber_poll_s, report=report,
                 check_stop=check_stop, on_chamber=limits.chamber,
                 first_apply_at_s=job.resume_at_s, before_apply=write_ahead)
    engine = Engine(job.program, rig, sink, clock, checkpoint=job.checkpoint,
                    checkpoint_every_s=settings.checkpoint_every_s)
    holder.append(engine)
    job.engine = engine
    if job.paused:
        engine.pause()
    if (reason := job.stop_requested()) is not None:  # asked for while it started
        engine.stop(reason)
    setpoint_c = engine.state.temperature_setpoint_c
    if job.checkpoint is not None and setpoint_c is not None and engine.state.ended is None:
        # a restart forgot the chamber's holders: hold it again where the job had it
        try:
            await rig.set_environment(setpoint_c, None)
        except CellrigError as exc:
            return JobState.FAILED, f"cannot hold the chamber at {setpoint_c:g} °C again: {exc}"
        except Exception:
            if (reason := job.stop_requested()) is not None:  # stopped while it waited
                return JobState.STOPPED, reason
            raise
    outcome = await engine.run()
    return _FINAL[outcome.state], outcome.reason

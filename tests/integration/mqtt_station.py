"""A small station for the MQTT tests: a :class:`StationControl` over a real store (jobs
start running when submitted, no engine), a writer that stores samples, events and cycle
summaries for a job as an engine would, and the station configuration with its broker.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellrig.daemon.control_api import (
    ChannelStatus,
    ControlError,
    ErrorCode,
    EventView,
    JobView,
    StationStatus,
    SubmitRequest,
)
from cellrig.daemon.station_config import StationConfig, load_station_text
from cellrig.daemon.store import JobState, Provenance, Store, StoreError, StoreReader
from cellrig.daemon.store_records import JobRecord
from cellrig.daemon.store_schema import FINAL_STATES
from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, EventKind, SampleBlock


def station_config(folder: Path, name: str, broker_url: str, password_file: Path, *,
                   channels: Sequence[str] = ("A1", "A2"),
                   telemetry_interval: str = "1 s") -> StationConfig:
    """A model station with ``channels`` that publishes to ``broker_url`` as ``name``."""
    lines = [f'[station]\nname = "{name}"\ndata_folder = "{folder}"\n']
    for channel in channels:
        lines.append(f'[instruments.bench-{channel}]\ndriver = "model"\n')
        lines.append(f'[channels.{channel}]\npotentiostat = "bench-{channel}"\n'
                     'limits = { voltage = ["2.0 V", "4.4 V"], current = "1 A" }\n')
    lines.append(f'[sinks.mqtt]\nurl = "{broker_url}"\nusername = "{name}"\n'
                 f'password_file = "{password_file}"\n'
                 f'telemetry_interval = "{telemetry_interval}"\n')
    return load_station_text("\n".join(lines), folder=folder)


def view(job: JobRecord) -> JobView:
    """A stored job as the control API shows it."""
    return JobView(job.id, job.channel, job.state.value, job.reason,
                   job.provenance.protocol_name, str(job.provenance.cell.get("id", "")),
                   job.queued_unix_s, job.started_unix_s, job.ended_unix_s)


class StoreStation:
    """Jobs in a real store; a submitted job runs at once (its data come from a
    :class:`JobWriter`)."""

    def __init__(self, store: Store, name: str, channels: Sequence[str]) -> None:
        self.store = store
        self.name = name
        self.channels = list(channels)
        self.reader = StoreReader(store.path)
        self.requests: list[str] = []

    @property
    def station_name(self) -> str:
        return self.name

    def close(self) -> None:
        self.reader.close()

    def _job(self, job_id: int) -> JobRecord:
        try:
            return self.reader.job(job_id)
        except StoreError:
            raise ControlError(ErrorCode.NOT_FOUND, f"there is no job {job_id}") from None

    async def submit(self, request: SubmitRequest) -> JobView:
        self.requests.append("submit")
        if request.channel not in self.channels:
            raise ControlError(ErrorCode.NOT_FOUND, f"there is no channel {request.channel!r}")
        name = request.source.rsplit("/", 1)[-1]
        provenance = Provenance(name, request.protocol_text, "{}", dict(request.cell),
                                dict(request.parameters), "0" * 64)
        job_id = await asyncio.to_thread(self.store.add_job, request.channel, provenance)
        await asyncio.to_thread(self.store.set_state, job_id, JobState.RUNNING)
        return view(self._job(job_id))

    async def jobs(self, states: Sequence[str] | None = None) -> list[JobView]:
        self.requests.append("jobs")
        try:
            wanted = None if states is None else [JobState(state) for state in states]
        except ValueError as exc:
            raise ControlError(ErrorCode.INVALID, str(exc)) from None
        return [view(job) for job in reversed(self.reader.jobs(wanted))]

    async def job(self, job_id: int) -> JobView:
        return view(self._job(job_id))

    async def _move(self, job_id: int, state: JobState, reason: str = "") -> JobView:
        if self._job(job_id).state in FINAL_STATES:
            raise ControlError(ErrorCode.CONFLICT, f"job {job_id} has ended")
        try:
            await asyncio.to_thread(self.store.set_state, job_id, state, reason)
        except StoreError as exc:
            raise ControlError(ErrorCode.CONFLICT, exc.args[0]) from None
        return view(self._job(job_id))

    async def pause(self, job_id: int) -> JobView:
        return await self._move(job_id, JobState.PAUSED)

    async def resume(self, job_id: int) -> JobView:
        return await self._move(job_id, JobState.RUNNING)

    async def stop(self, job_id: int, reason: str = "stopped on request") -> JobView:
        self.requests.append("stop")
        return await self._move(job_id, JobState.STOPPED, reason)

    async def status(self) -> StationStatus:
        channels = []
        for channel in self.channels:
            active = self.reader.jobs([JobState.RUNNING, JobState.PAUSED], channel=channel)
            job = active[-1] if active else None
            channels.append(ChannelStatus(
                channel, None if job is None else job.id,
                None if job is None else job.state.value,
                None if job is None else job.provenance.protocol_name,
                "CC charge" if job else None, 1 if job else None, 1 if job else None,
                None, None, None, None, None, None, None))
        return StationStatus(self.name, "test", time.time(), channels)

    async def events(self, job_id: int, after_id: int = 0) -> list[EventView]:
        self._job(job_id)
        return [EventView(e.id, e.job_id, e.event.kind.value, e.event.test_time_s,
                          e.event.unix_time_s, e.event.cycle, e.event.step_count,
                          e.event.step_id, e.event.message, e.event.data)
                for e in self.reader.events(job_id, after_id=after_id)]


class JobWriter:
    """Stores a job's data as its engine would: samples (voltage rises with the sample's
    number), events and cycle summaries."""

    def __init__(self, store: Store, job_id: int) -> None:
        self.sink = store.sink(job_id)
        self.count = 0

    def samples(self, count: int = 1, *, unix_time_s: float | None = None) -> float:
        """Store ``count`` samples; returns the last one's voltage."""
        numbers = np.arange(self.count, self.count + count, dtype=np.float64)
        columns: dict[str, np.ndarray] = {}
        for name in COLUMNS:
            if name in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
                columns[name] = np.ones(count, dtype=np.int64)
            elif name == "Step Type":
                columns[name] = np.array(["CC_CHG"] * count, dtype=object)
            else:
                columns[name] = np.zeros(count)
        columns["Test Time / s"] = numbers
        columns["Unix Time / s"] = np.full(count, time.time() if unix_time_s is None
                                           else unix_time_s)
        columns["Voltage / V"] = 3.0 + numbers * 1e-4
        columns["Current / A"] = np.full(count, 0.06)
        columns["Ambient Temperature / degC"] = np.full(count, 60.0)
        columns["Applied Pressure / Pa"] = np.full(count, math.nan)
        self.sink.samples(SampleBlock(columns))
        self.count += count
        return float(columns["Voltage / V"][-1])

    def event(self, kind: EventKind = EventKind.STEP_START, message: str = "") -> None:
        self.sink.event(Event(kind, float(self.count), time.time(), 1, 1, 1, message,
                              {"why": message}))

    def cycle(self, cycle: int, discharge_capacity_ah: float) -> None:
        self.sink.cycle(CycleSummary(
            cycle, 0.0, 3600.0, 0.61, discharge_capacity_ah, 2.3, 2.2, 0.99, 0.95, 3.9,
            3.76, 0.9, 0.1, 59.5, 60.5, None, None, 1.0, None))

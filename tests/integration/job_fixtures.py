"""Running a job manager on a model station for a test, and waiting for jobs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from model_station import ModelStation

from cellrig.daemon.control_api import JobView, SubmitRequest
from cellrig.daemon.job_station import JobSettings
from cellrig.daemon.jobs import JobManager
from cellrig.daemon.store import Store

FINAL = {"completed", "stopped", "aborted", "failed"}
FAST = JobSettings(chamber_poll_s=0.05, latched_poll_s=0.05, stop_wait_s=5.0)


@contextlib.asynccontextmanager
async def running(station: ModelStation, store_path: Path, *,
                  settings: JobSettings = FAST) -> AsyncIterator[JobManager]:
    """A manager over a store at ``store_path``, recovered and running with the station's
    pollers and watchdogs; cancelled and closed on exit (jobs left as they are)."""
    store = Store.open(store_path)
    manager = JobManager(station, store, settings=settings, software_version="9.9.9-test")
    try:
        await manager.recover()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(station.run()), group.create_task(manager.run())]
            try:
                yield manager
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        manager.close()
        store.close()


async def wait_for(manager: JobManager, job_id: int, done: Callable[[JobView], bool] = (
        lambda view: view.state in FINAL), timeout_s: float = 30.0) -> JobView:
    """The job's view once ``done`` holds (by default: once it has ended)."""
    async with asyncio.timeout(timeout_s):
        while True:
            view = await manager.job(job_id)
            if done(view):
                return view
            await asyncio.sleep(0.01)


def request(channel: str, protocol: str = "formation", **fields: object) -> SubmitRequest:
    """A submission of a library protocol (or a protocol's text) to ``channel``."""
    return SubmitRequest(channel=channel, protocol_text=protocol,
                         cell=fields.pop("cell", {}),  # type: ignore[arg-type]
                         **fields)  # type: ignore[arg-type]

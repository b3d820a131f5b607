"""Store records as the control contract's views."""

from __future__ import annotations

from cellrig.daemon.control_api import EventView, JobView
from cellrig.daemon.store_records import JobRecord, StoredEvent


def job_view(record: JobRecord) -> JobView:
    """A job as a client sees it."""
    cell_id = record.provenance.cell.get("id")
    return JobView(id=record.id, channel=record.channel, state=record.state.value,
                   reason=record.reason, protocol_name=record.provenance.protocol_name,
                   cell_id="" if cell_id is None else str(cell_id),
                   queued_unix_s=record.queued_unix_s, started_unix_s=record.started_unix_s,
                   ended_unix_s=record.ended_unix_s)


def event_view(stored: StoredEvent) -> EventView:
    """A stored event as a client sees it."""
    event = stored.event
    return EventView(id=stored.id, job_id=stored.job_id, kind=event.kind.value,
                     test_time_s=event.test_time_s, unix_time_s=event.unix_time_s,
                     cycle=event.cycle, step_count=event.step_count, step_id=event.step_id,
                     message=event.message, data=dict(event.data))

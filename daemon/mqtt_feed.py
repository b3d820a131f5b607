"""What the station publishes, read from its store: decoupled from the engines, which only
write to the store.

- **Telemetry** is live only: the feed starts at the newest stored sample (on every connection
  to the broker) and keeps, for each channel, the newest sample it has read; the publisher
  sends it at most once per interval. A broker outage leaves a gap, nothing is replayed.
- **Events** and **cycle summaries** are delivered from durable cursors
  (:meth:`Store.move_cursor`, names ``mqtt.events`` and ``mqtt.cycles``), moved once the
  broker has acknowledged them: a broker outage or a daemon restart delays them, none is lost
  (one may come twice after a crash: subscribers can tell by its ``id``).

The reader's calls are blocking SQLite queries; the bridge runs them on one thread of their
own (:class:`StoreFeed` is not used from two threads at once), never on the event loop that
also runs the safety supervisor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .mqtt_payloads import cycle_payload, event_payload, telemetry_payload
from .store import Store, StoreError
from .store_read import StoreReader

EVENTS_CURSOR = "mqtt.events"
CYCLES_CURSOR = "mqtt.cycles"
#: Samples read per query; a backlog larger than this is read over several ticks' queries.
SAMPLE_CHUNK_ROWS = 20_000
BATCH_LIMIT = 500


@dataclass(slots=True)
class Batch:
    """Messages of one kind with the store id up to which they go (move the cursor there
    once they are acknowledged)."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(channel, payload) in store order"""
    last_id: int = 0


class StoreFeed:
    """Reads what is new in the store since the last call (one thread only)."""

    def __init__(self, store: Store, station: str) -> None:
        self.store = store
        self.station = station
        self._reader: StoreReader | None = None
        self._channels: dict[int, str] = {}
        self.sample_cursor = 0
        self.events_cursor = 0
        self.cycles_cursor = 0

    def open(self) -> None:
        """Open the reader; telemetry starts at the newest sample, events and cycles at the
        durable cursors."""
        self._reader = self.store.reader()
        self.sample_cursor = self._newest_sample_id()
        self.events_cursor = self._reader.cursor(EVENTS_CURSOR)
        self.cycles_cursor = self._reader.cursor(CYCLES_CURSOR)

    def close(self) -> None:
        """Close the reader."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def reader(self) -> StoreReader:
        if self._reader is None:
            raise StoreError("the MQTT feed's reader is not open", path=str(self.store.path))
        return self._reader

    def _newest_sample_id(self) -> int:
        return self.reader.newest_sample()[0]

    def skip_samples(self) -> None:
        """Start telemetry again at the newest sample (after the broker was away)."""
        self.sample_cursor = self._newest_sample_id()

    def channel_of(self, job_id: int) -> str:
        """The channel a job runs on (jobs never move)."""
        channel = self._channels.get(job_id)
        if channel is None:
            channel = self.reader.job(job_id).channel
            self._channels[job_id] = channel
        return channel

    def latest_samples(self, max_rows: int = 4 * SAMPLE_CHUNK_ROWS) -> dict[str, dict[str, Any]]:
        """The telemetry payload of each channel's newest sample stored since the last call
        (reads at most ``max_rows``; the rest on the next call)."""
        latest: dict[str, dict[str, Any]] = {}
        read = 0
        while read < max_rows:
            chunk = self.reader.samples_after(self.sample_cursor, SAMPLE_CHUNK_ROWS)
            rows = len(chunk)
            if rows == 0:
                break
            read += rows
            self.sample_cursor = int(chunk.ids[-1])
            # the last row of each job in the chunk: unique over the reversed job ids
            jobs, first_from_end = np.unique(chunk.job_ids[::-1], return_index=True)
            for job_id, offset in zip(jobs.tolist(), first_from_end.tolist(), strict=True):
                channel = self.channel_of(job_id)
                latest[channel] = telemetry_payload(self.station, channel, chunk,
                                                    rows - 1 - offset)
            if rows < SAMPLE_CHUNK_ROWS:
                break
        return latest

    def new_events(self, limit: int = BATCH_LIMIT) -> Batch:
        """Events stored after the events cursor."""
        batch = Batch(last_id=self.events_cursor)
        for stored in self.reader.events_after(self.events_cursor, limit):
            channel = self.channel_of(stored.job_id)
            batch.messages.append((channel, event_payload(self.station, channel, stored)))
            batch.last_id = stored.id
        return batch

    def new_cycles(self, limit: int = BATCH_LIMIT) -> Batch:
        """Cycle summaries stored after the cycles cursor."""
        batch = Batch(last_id=self.cycles_cursor)
        for cycle_id, job_id, summary in self.reader.cycles_after(self.cycles_cursor, limit):
            channel = self.channel_of(job_id)
            batch.messages.append(
                (channel, cycle_payload(self.station, channel, job_id, cycle_id, summary)))
            batch.last_id = cycle_id
        return batch

    def delivered(self, cursor: str, last_id: int) -> None:
        """The broker has everything up to ``last_id`` of ``cursor``: remember it durably."""
        if cursor == EVENTS_CURSOR:
            self.events_cursor = last_id
        else:
            self.cycles_cursor = last_id
        self.store.move_cursor(cursor, last_id)

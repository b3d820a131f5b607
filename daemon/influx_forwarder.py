"""The InfluxDB forwarder: streams the station store to InfluxDB, losing nothing.

It reads the store after its durable cursors (one per record kind: samples, events, cycle
summaries), writes what it read as one batch of line protocol, and moves the cursors only
after the server acknowledged the write. An outage therefore only delays data: the same
batch is retried with backoff while the store keeps everything that arrives meanwhile, and
once the server is back the backlog drains batch after batch at full speed. A restart
resumes from the cursors; points written twice (a cursor move is committed up to a second
after the write) overwrite themselves, because a point's timestamp and tags come from the
stored record alone (:mod:`~cellrig.daemon.influx_lines`).

Memory does not depend on the backlog: at most two batches (each at most ``batch_samples``
samples and ``batch_records`` events and cycles) are held, the one being written and, while a
backlog drains, the next one read ahead. Outages and refusals are logged
once when they start and once when they end, not per retry. Every ``health_interval_s`` a
``station_health`` point reports the backlog and how old the newest stored and the newest
forwarded samples are, and an ``instruments`` point per instrument whose state is known.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from cellrig.drivers.backoff import Backoff

from .influx_lines import (
    INSTRUMENTS,
    SAMPLE_COLUMNS,
    STATION_HEALTH,
    UNIX_TIME,
    JobTags,
    encode_cycle,
    encode_event,
    encode_samples,
    point,
    tag_set,
)
from .influx_writers import (
    InfluxRefused,
    InfluxRejected,
    InfluxUnavailable,
    PointWriter,
    make_writer,
)
from .service_log import fields
from .station_config_model import StationConfig
from .store import Store, StoreReader
from .store_writer import StoreError

log = logging.getLogger("cellrig.influxdb")

#: Instrument name → whether it answers now (the daemon's view; unknown ones are left out).
InstrumentStates = Callable[[], Mapping[str, bool]]


@dataclass(frozen=True, slots=True)
class ForwarderSettings:
    """How the forwarder batches, polls and retries."""

    batch_samples: int = 5000
    """at most this many samples per write (the backlog drains in writes of this size)"""
    batch_records: int = 1000
    """at most this many events, and as many cycle summaries, per write"""
    poll_interval_s: float = 0.5
    """how long to wait for more data after a write that was not full"""
    health_interval_s: float = 10.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial_s=0.5, max_s=30.0))
    cursor_prefix: str = "influxdb"
    """cursors are ``PREFIX.samples``, ``PREFIX.events``, ``PREFIX.cycles``"""


@dataclass(slots=True)
class ForwarderStats:
    """What the forwarder has done since it started."""

    forwarded_samples: int = 0
    forwarded_events: int = 0
    forwarded_cycles: int = 0
    writes: int = 0
    failed_writes: int = 0
    skipped_samples: int = 0
    """samples without a usable unix time (never written)"""
    rejected_batches: int = 0
    """batches the server refused as data (logged, not retried)"""
    outages: int = 0
    backlog_samples: int = 0
    largest_body_bytes: int = 0
    """the largest write held in memory (it does not grow with the backlog)"""
    newest_forwarded_unix_s: float = math.nan
    """unix time of the newest sample the server acknowledged"""
    ack_latencies_s: list[float] = field(default_factory=list)
    """per write: wall time from the newest sample's unix time to the acknowledgement (the
    last 10,000, for benchmarks)"""


@dataclass(slots=True)
class _Batch:
    lines: list[str]
    samples: int
    events: int
    cycles: int
    last_ids: dict[str, int]
    full: bool
    newest_unix_s: float


class InfluxForwarder:
    """Forwards one store to one InfluxDB target until cancelled (:meth:`run`)."""

    def __init__(self, writer: PointWriter, store: Store, station: str, *,
                 settings: ForwarderSettings | None = None,
                 instrument_states: InstrumentStates | None = None,
                 instrument_drivers: Mapping[str, str] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.store = store
        self.station = station
        self.settings = settings or ForwarderSettings()
        self.instrument_states = instrument_states
        self.instrument_drivers = dict(instrument_drivers or {})
        self.wall_clock = wall_clock
        self.stats = ForwarderStats()
        prefix = self.settings.cursor_prefix
        self.cursor_names = {kind: f"{prefix}.{kind}" for kind in ("samples", "events",
                                                                   "cycles")}
        self.positions: dict[str, int] = {}
        self._job_tags: dict[int, str] = {}
        self._job_offsets: dict[int, float] = {}
        self._reader: StoreReader | None = None
        self._reader_lock = threading.Lock()
        """one worker thread at a time uses the reader (a read, the health query, closing)"""
        self._station_tags = tag_set((("station", station),))
        self._trouble: str | None = None
        self._rejections = 0
        self._trouble_since = 0.0

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Forward until cancelled; the writer and the reader are closed on the way out.

        While a backlog drains, the next batch is read and encoded (in a worker thread)
        while the current one is being written: it follows the current batch's last ids,
        which stay right whether that write is retried, acknowledged or rejected."""
        log.info("forwarding the store to %s", self.writer.description,
                 extra=fields("influxdb-start"))
        prefetch: asyncio.Future[_Batch] | None = None
        try:
            await self.open()
            next_health = 0.0
            while True:
                batch = await (prefetch if prefetch is not None else self._read(self.positions))
                prefetch = None
                if batch.full:
                    prefetch = asyncio.ensure_future(self._read(batch.last_ids))
                await self._send(batch)
                if time.monotonic() >= next_health and self._trouble is None:
                    next_health = time.monotonic() + self.settings.health_interval_s
                    await self.write_health()
                if prefetch is None:
                    await asyncio.sleep(self.settings.poll_interval_s)
        finally:
            if prefetch is not None:
                prefetch.cancel()
            await self.close()

    async def open(self) -> None:
        """Open a reader on the store and load the cursors."""
        if self._reader is None:
            self._reader = await asyncio.to_thread(self.store.reader)
            self.positions = {kind: self._reader.cursor(name)
                              for kind, name in self.cursor_names.items()}

    async def close(self) -> None:
        """Close the writer's connections and the reader (once no worker thread uses it)."""
        try:
            await self.writer.close()
        finally:
            await asyncio.to_thread(self._close_reader)

    def _close_reader(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    async def forward_once(self) -> bool:
        """Read one batch after the cursors, write it (retrying until the server takes it)
        and move the cursors; True when the batch was full (more is waiting)."""
        await self.open()
        batch = await self._read(self.positions)
        await self._send(batch)
        return batch.full

    def _read(self, after: Mapping[str, int]) -> asyncio.Future[_Batch]:
        return asyncio.ensure_future(asyncio.to_thread(self._read_batch, dict(after)))

    async def _send(self, batch: _Batch) -> None:
        if batch.lines:
            await self._deliver(batch)
        else:
            self._advance(batch)

    # -- reading ---------------------------------------------------------------------------

    def _read_batch(self, after: dict[str, int]) -> _Batch:
        with self._reader_lock:
            return self._read_locked(after)

    def _read_locked(self, after: dict[str, int]) -> _Batch:
        reader = self._require_reader()
        settings = self.settings
        lines: list[str] = []
        last_ids = dict(after)
        chunk = next(reader.iter_samples(None, columns=SAMPLE_COLUMNS,
                                         after_id=after["samples"],
                                         limit=settings.batch_samples,
                                         chunk_rows=settings.batch_samples), None)
        samples = 0
        newest = math.nan
        if chunk is not None and len(chunk):
            samples = len(chunk)
            tags = {job: self._tags(reader, job) for job in set(chunk.job_ids.tolist())}
            encoded = encode_samples(chunk, tags)
            lines.extend(encoded.lines)
            self.stats.skipped_samples += encoded.skipped
            last_ids["samples"] = int(chunk.ids[-1])
            unix = chunk.columns[UNIX_TIME]
            newest = float(unix[-1]) if math.isfinite(unix[-1]) else math.nan
        events = reader.events_after(after["events"], settings.batch_records)
        for stored in events:
            line = encode_event(stored, self._tags(reader, stored.job_id))
            if line is not None:
                lines.append(line)
        if events:
            last_ids["events"] = events[-1].id
        cycles = reader.cycles_after(after["cycles"], settings.batch_records)
        for cycle_id, job_id, summary in cycles:
            end_unix_s = self._offset(reader, job_id) + summary.end_test_time_s
            line = encode_cycle(summary, self._tags(reader, job_id), end_unix_s)
            if line is not None:
                lines.append(line)
            last_ids["cycles"] = cycle_id
        full = (samples >= settings.batch_samples or len(events) >= settings.batch_records
                or len(cycles) >= settings.batch_records)
        return _Batch(lines, samples, len(events), len(cycles), last_ids, full, newest)

    def _require_reader(self) -> StoreReader:
        if self._reader is None:
            raise StoreError("the forwarder is not open", path=str(self.store.path))
        return self._reader

    def _tags(self, reader: StoreReader, job_id: int) -> str:
        tags = self._job_tags.get(job_id)
        if tags is None:
            job = reader.job(job_id)
            cell = job.provenance.cell.get("id")
            tags = JobTags(self.station, job.channel, None if cell is None else str(cell),
                           job_id).text()
            self._job_tags[job_id] = tags
        return tags

    def _offset(self, reader: StoreReader, job_id: int) -> float:
        """Unix time minus test time of a job's first sample: places a cycle summary (which
        has test times only) on the clock, the same way every time."""
        offset = self._job_offsets.get(job_id)
        if offset is None:
            first = next(reader.iter_samples(job_id, columns=("Test Time / s", UNIX_TIME),
                                             limit=1), None)
            if first is not None and len(first):
                offset = float(first.columns[UNIX_TIME][0] - first.columns["Test Time / s"][0])
            else:
                job = reader.job(job_id)
                offset = job.started_unix_s or job.queued_unix_s
            if math.isfinite(offset):
                self._job_offsets[job_id] = offset
        return offset

    # -- writing ---------------------------------------------------------------------------

    async def _deliver(self, batch: _Batch) -> None:
        body = ("\n".join(batch.lines) + "\n").encode("utf-8")
        self.stats.largest_body_bytes = max(self.stats.largest_body_bytes, len(body))
        delays = self.settings.backoff.delays()
        while True:
            try:
                await self.writer.write(body)
            except (InfluxUnavailable, InfluxRefused) as error:
                self.stats.failed_writes += 1
                self._trouble_started(error)
                await asyncio.sleep(next(delays))
                continue
            except InfluxRejected as error:
                self._trouble_ended()
                self._rejected(batch, error)
                self._advance(batch)
                return
            self._trouble_ended()
            if self._rejections:
                log.info("%s takes the data again after %d rejected batches",
                         self.writer.description, self._rejections,
                         extra=fields("influxdb-accepted"))
                self._rejections = 0
            self._acknowledged(batch)
            return

    def _rejected(self, batch: _Batch, error: InfluxRejected) -> None:
        """Logged as an error for the first batch of a run of rejected ones (a lasting
        conflict would otherwise log every batch), at debug level for the rest."""
        self.stats.rejected_batches += 1
        self._rejections += 1
        log.log(logging.ERROR if self._rejections == 1 else logging.DEBUG,
                "%s; skipped %d samples, %d events and %d cycle summaries (InfluxDB may have "
                "taken part of them; all stay in the store)", error, batch.samples,
                batch.events, batch.cycles, extra=fields("influxdb-rejected"))

    def _acknowledged(self, batch: _Batch) -> None:
        stats = self.stats
        stats.writes += 1
        stats.forwarded_samples += batch.samples
        stats.forwarded_events += batch.events
        stats.forwarded_cycles += batch.cycles
        if math.isfinite(batch.newest_unix_s):
            stats.newest_forwarded_unix_s = batch.newest_unix_s
            if len(stats.ack_latencies_s) >= 10_000:
                del stats.ack_latencies_s[:5_000]
            stats.ack_latencies_s.append(self.wall_clock() - batch.newest_unix_s)
        self._advance(batch)

    def _advance(self, batch: _Batch) -> None:
        for kind, last_id in batch.last_ids.items():
            if last_id != self.positions.get(kind):
                self.positions[kind] = last_id
                self.store.move_cursor(self.cursor_names[kind], last_id)

    def _trouble_started(self, error: Exception) -> None:
        message = str(error)
        if self._trouble is None:
            self.stats.outages += 1
            self._trouble_since = time.monotonic()
            refused = isinstance(error, InfluxRefused)
            log.log(logging.ERROR if refused else logging.WARNING,
                    "%s; retrying with backoff, the store keeps everything meanwhile", message,
                    extra=fields("influxdb-refused" if refused else "influxdb-outage"))
        elif message != self._trouble:
            log.debug("still failing: %s", message)
        self._trouble = message

    def _trouble_ended(self) -> None:
        if self._trouble is not None:
            log.info("%s takes writes again after %.1f s; forwarding the backlog",
                     self.writer.description, time.monotonic() - self._trouble_since,
                     extra=fields("influxdb-recovered"))
            self._trouble = None

    # -- health ----------------------------------------------------------------------------

    async def write_health(self) -> None:
        """One ``station_health`` point (and ``instruments`` points); not retried: a missed
        one is simply the next one's gap."""
        lines = await asyncio.to_thread(self._health_lines)
        if not lines:
            return
        try:
            await self.writer.write(("\n".join(lines) + "\n").encode("utf-8"))
        except (InfluxUnavailable, InfluxRefused, InfluxRejected) as error:
            log.debug("station health not written: %s", error)

    def _health_lines(self) -> list[str]:
        with self._reader_lock:
            return self._health_locked()

    def _health_locked(self) -> list[str]:
        reader = self._require_reader()
        now = self.wall_clock()
        newest_id, newest_time = reader.newest_sample()
        newest_unix = math.nan if newest_time is None else newest_time
        backlog = max(0, newest_id - self.positions["samples"])
        self.stats.backlog_samples = backlog
        time_ns = round(now * 1000) * 1_000_000
        fields: list[tuple[str, float | int | bool | str | None]] = [
            ("backlog_samples", backlog),
            ("backlog_events", reader.count_after("events", self.positions["events"])),
            ("backlog_cycles", reader.count_after("cycles", self.positions["cycles"])),
            ("last_sample_age_s", now - newest_unix),
            ("last_forwarded_age_s", now - self.stats.newest_forwarded_unix_s),
            ("forwarded_samples", self.stats.forwarded_samples),
            ("failed_writes", self.stats.failed_writes),
            ("outages", self.stats.outages),
        ]
        lines = [line for line in (point(STATION_HEALTH, self._station_tags, fields, time_ns),)
                 if line is not None]
        lines.extend(self._instrument_lines(time_ns))
        return lines

    def _instrument_lines(self, time_ns: int) -> Iterator[str]:
        if self.instrument_states is None:
            return
        try:
            states = dict(self.instrument_states())
        except Exception:  # the daemon's view failing must not stop the data
            log.exception("cannot read the instruments' states")
            return
        for name, up in sorted(states.items()):
            tags = tag_set((("station", self.station), ("instrument", name),
                            ("driver", self.instrument_drivers.get(name))))
            line = point(INSTRUMENTS, tags, [("up", int(bool(up)))], time_ns)
            if line is not None:
                yield line


async def run_influx_forwarder(config: StationConfig, store: Store, *,
                               instrument_states: InstrumentStates | None = None,
                               settings: ForwarderSettings | None = None) -> None:
    """Forward the station's store to the InfluxDB of ``[sinks.influxdb]`` until cancelled;
    returns at once when the station has none. ``instrument_states`` (name → answering)
    feeds the ``instruments`` points of the station-health dashboard."""
    if config.influxdb is None:
        return
    writer = make_writer(config.influxdb)
    drivers = {name: instrument.driver.value for name, instrument in config.instruments.items()}
    forwarder = InfluxForwarder(writer, store, config.name, settings=settings,
                                instrument_states=instrument_states,
                                instrument_drivers=drivers)
    await forwarder.run()

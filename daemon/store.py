"""The station store: one SQLite database (WAL) with every job, its provenance and its data.

Use::

    with Store.open(folder / "station.db") as store:
        job_id = store.add_job("A1", Provenance.of(text, program, station_config_sha256=h))
        store.set_state(job_id, JobState.RUNNING)
        engine = Engine(program, rig, store.sink(job_id), ...)

The sink a job's engine writes to (:class:`JobSink`) hands everything to the store's writer
thread (:mod:`~cellrig.daemon.store_writer`), which commits at least every
``commit_interval_s`` (0.5 s by default), so nothing older than about a second is ever only
in memory. Job changes wait until they are committed. Readers use their own connections
(:class:`~cellrig.daemon.store_read.StoreReader`), in this process or another one, and never
wait for the writer.

Opening a store after a crash or ``kill -9`` lets SQLite replay its write-ahead log: every
committed transaction is there, and the jobs that were running are found with
``reader().unfinished_jobs()``, each with its latest checkpoint. docs/store.md has the schema
and what survives a crash or a power loss.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, SampleBlock
from cellrig.protocols.rig import Spectrum

from .store_ops import (
    CheckpointRow,
    CursorMove,
    CycleRow,
    EventRow,
    SampleRows,
    SpectrumRow,
)
from .store_read import StoreReader
from .store_records import JobRecord, Provenance, canonical_json
from .store_schema import (
    FINAL_STATES,
    TRANSITIONS,
    JobState,
    Synchronous,
    configure,
    create_or_check,
)
from .store_writer import StoreError, Writer, WriterSettings, WriterStats

__all__ = ["JobRecord", "JobSink", "JobState", "Provenance", "Store", "StoreError",
           "StoreReader", "Synchronous", "WriterSettings"]

log = logging.getLogger("cellrig.store")
_COLUMN_SET = frozenset(COLUMNS)


class Store:
    """The station's store, open for writing (one per station and process)."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = Synchronous.NORMAL,
                 settings: WriterSettings | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.wall_clock = wall_clock
        self._writer = Writer(str(self.path), self._connect, settings or WriterSettings())
        self._open = False

    @classmethod
    def open(cls, path: str | Path, **options: Any) -> Store:
        """Open (creating if needed) the store at ``path`` and start its writer."""
        store = cls(path, **options)
        store.start()
        return store

    def start(self) -> None:
        """Create or check the file, then start the writer; raises :class:`StoreError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                create_or_check(connection)
            finally:
                connection.close()
        except (sqlite3.Error, ValueError, OSError) as exc:
            raise StoreError(f"cannot open: {exc}", path=str(self.path)) from exc
        self._writer.start()
        self._open = True

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        configure(connection, self.synchronous)
        return connection

    def close(self) -> None:
        """Commit everything handed over and stop the writer."""
        if self._open:
            self._open = False
            self._writer.stop()
        failure = self._writer.failure
        if failure is not None:
            raise StoreError(f"the writer stopped: {failure}", path=str(self.path)) from failure

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # -- jobs ------------------------------------------------------------------------------

    def add_job(self, channel: str, provenance: Provenance, *,
                timeout_s: float | None = 30.0) -> int:
        """Record a new queued job; returns its id once committed."""
        now = self.wall_clock()

        def insert(connection: sqlite3.Connection) -> int:
            cursor = connection.execute(
                "INSERT INTO jobs (channel, state, reason, queued_unix_s, updated_unix_s, "
                "protocol_name, protocol_text, protocol_sha256, program_json, program_sha256, "
                "cell_json, parameters_json, software_version, station_config_sha256) "
                "VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (channel, JobState.QUEUED.value, now, now, provenance.protocol_name,
                 provenance.protocol_text, provenance.protocol_sha256, provenance.program_json,
                 provenance.program_sha256, canonical_json(provenance.cell),
                 canonical_json(provenance.parameters), provenance.software_version,
                 provenance.station_config_sha256))
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        return self._writer.call(insert).result(timeout_s)

    def set_state(self, job_id: int, state: JobState, reason: str = "", *,
                  timeout_s: float | None = 30.0) -> None:
        """Move a job to ``state`` (with the reason); returns once committed. Raises
        :class:`StoreError` for a move the job's life does not allow (a final state is
        final) and for an unknown job."""
        now = self.wall_clock()
        path = str(self.path)

        def change(connection: sqlite3.Connection) -> None:
            row = connection.execute("SELECT state, started_unix_s FROM jobs WHERE id = ?",
                                     (job_id,)).fetchone()
            if row is None:
                raise StoreError(f"there is no job {job_id}", path=path)
            current = JobState(row[0])
            if state is not current and state not in TRANSITIONS[current]:
                raise StoreError(f"job {job_id} is {current.value}; it cannot become "
                                 f"{state.value}", path=path)
            started = row[1] if row[1] is not None or state is not JobState.RUNNING else now
            ended = now if state in FINAL_STATES else None
            connection.execute(
                "UPDATE jobs SET state = ?, reason = ?, started_unix_s = ?, ended_unix_s = ?, "
                "updated_unix_s = ? WHERE id = ?",
                (state.value, reason, started, ended, now, job_id))

        self._writer.call(change).result(timeout_s)

    def sink(self, job_id: int) -> JobSink:
        """The engine's sink for one job."""
        return JobSink(self, job_id)

    # -- forwarders ------------------------------------------------------------------------

    def move_cursor(self, name: str, last_id: int) -> None:
        """Remember that forwarder ``name`` has delivered everything up to ``last_id``
        (committed with the next transaction, at most a second later)."""
        self._writer.put(CursorMove(name, last_id, self.wall_clock()))

    # -- the writer ------------------------------------------------------------------------

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything handed over so far is committed."""
        self._writer.flush(timeout_s)

    @property
    def stats(self) -> WriterStats:
        """The writer's counters."""
        return self._writer.stats

    @property
    def held_bytes(self) -> int:
        """Estimated bytes waiting for the writer or in its open transaction."""
        return self._writer.held_bytes

    def reader(self) -> StoreReader:
        """A reader on its own connection (close it when done)."""
        return StoreReader(self.path)

    def _put_samples(self, job_id: int, block: SampleBlock) -> None:
        if block.columns.keys() != _COLUMN_SET:
            missing = sorted(_COLUMN_SET - block.columns.keys())
            extra = sorted(block.columns.keys() - _COLUMN_SET)
            raise StoreError(f"job {job_id}: a sample block with missing columns {missing} "
                             f"or unknown columns {extra}", path=str(self.path))
        if len(block):
            self._writer.put(SampleRows(job_id, block))


class JobSink:
    """The engine's sink for one job: hands everything to the store's writer, in order.

    Calls return at once unless the writer holds its whole memory budget (then they wait, see
    :mod:`~cellrig.daemon.store_writer`); they raise :class:`StoreError` when the store has
    failed or closed, which fails the job with the rig made safe.
    """

    def __init__(self, store: Store, job_id: int) -> None:
        self.store = store
        self.job_id = job_id

    def samples(self, block: SampleBlock) -> None:
        """Stored samples."""
        self.store._put_samples(self.job_id, block)

    def event(self, event: Event) -> None:
        """An event."""
        self.store._writer.put(EventRow(self.job_id, event))

    def cycle(self, summary: CycleSummary) -> None:
        """A finished cycle."""
        self.store._writer.put(CycleRow(self.job_id, summary))

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        """An impedance spectrum."""
        self.store._writer.put(SpectrumRow(self.job_id, step_id, step_count, spectrum,
                                           self.store.wall_clock()))

    def checkpoint(self, state: dict[str, Any]) -> None:
        """The engine's state; stored with the id of the last sample sent before it."""
        self.store._writer.put(CheckpointRow(self.job_id, state, self.store.wall_clock()))

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything of this job handed over so far is committed."""
        self.store.flush(timeout_s)

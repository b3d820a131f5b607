"""Reading the station store: jobs, samples as numpy columns or Arrow tables, events, cycle
summaries, spectra, checkpoints, and everything after a forwarder's cursor.

A reader has its own connection. In WAL mode it never waits for the writer and the writer
never waits for it; each query sees the store as of its start (committed data only). Samples
are read in chunks (``chunk_rows``), so iterating over a job of any length needs memory for
one chunk only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, EventKind
from cellrig.protocols.rig import Spectrum

from .store_ops import summary_from_row
from .store_records import (
    JobRecord,
    Provenance,
    SampleColumns,
    StoredCheckpoint,
    StoredEvent,
    StoredSpectrum,
)
from .store_schema import (
    APPLICATION_ID,
    CYCLE_FIELDS,
    JOB_FIELDS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    SQL_NAME,
    UNFINISHED_STATES,
    JobState,
    SqlType,
)
from .store_writer import StoreError

CHUNK_ROWS = 65_536
RecordTable = Literal["samples", "events", "cycles"]
RECORD_TABLES: frozenset[str] = frozenset({"samples", "events", "cycles"})
_TYPES = {column.bdf: column.type for column in SAMPLE_COLUMNS}
_ARROW_TYPES = {SqlType.REAL: pa.float64(), SqlType.INTEGER: pa.int64(),
                SqlType.TEXT: pa.string()}
_EVENT_COLUMNS = ("id, job_id, kind, test_time_s, unix_time_s, cycle, step_count, step_id, "
                  "message, data_json")


def arrow_schema(columns: Sequence[str] = COLUMNS) -> pa.Schema:
    """The Arrow schema of sample columns (Battery Data Format names)."""
    return pa.schema([pa.field(name, _ARROW_TYPES[_TYPES[name]]) for name in columns])


class StoreReader:
    """Read access to a station store (any number, in any process, beside the writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError("there is no store here", path=str(self.path))
        try:
            self.connection = sqlite3.connect(self.path, isolation_level=None,
                                              check_same_thread=False)
            self.connection.execute("PRAGMA busy_timeout=10000")
            self.connection.execute("PRAGMA query_only=ON")
            application = self.connection.execute("PRAGMA application_id").fetchone()[0]
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read: {exc}", path=str(self.path)) from exc
        if application != APPLICATION_ID or version != SCHEMA_VERSION:
            self.connection.close()
            raise StoreError(f"not a cellrig store of schema version {SCHEMA_VERSION}",
                             path=str(self.path))

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.connection.execute(sql, parameters)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read: {exc}", path=str(self.path)) from exc

    # -- jobs ------------------------------------------------------------------------------

    def jobs(self, states: Iterable[JobState] | None = None,
             channel: str | None = None) -> list[JobRecord]:
        """Jobs (oldest first), optionally only those in ``states`` or on ``channel``."""
        where: list[str] = []
        parameters: list[Any] = []
        if states is not None:
            wanted = [JobState(state).value for state in states]
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            parameters.extend(wanted)
        if channel is not None:
            where.append("channel = ?")
            parameters.append(channel)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(f"SELECT {', '.join(JOB_FIELDS)} FROM jobs{clause} ORDER BY id",
                           parameters).fetchall()
        return [_job(row) for row in rows]

    def job(self, job_id: int) -> JobRecord:
        """One job; :class:`StoreError` if there is none with that id."""
        row = self._query(f"SELECT {', '.join(JOB_FIELDS)} FROM jobs WHERE id = ?",
                          (job_id,)).fetchone()
        if row is None:
            raise StoreError(f"there is no job {job_id}", path=str(self.path))
        return _job(row)

    def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs a (re)starting daemon must pick up: queued, running or paused."""
        return self.jobs(UNFINISHED_STATES)

    # -- samples ---------------------------------------------------------------------------

    def sample_count(self, job_id: int) -> int:
        """How many samples a job has."""
        return int(self._query("SELECT count(*) FROM samples WHERE job_id = ?",
                               (job_id,)).fetchone()[0])

    def newest_sample(self) -> tuple[int, float | None]:
        """The id and unix time of the newest stored sample; ``(0, None)`` for an empty store
        (what forwarders measure their backlog and lag against)."""
        row = self._query("SELECT id, unix_time_s FROM samples ORDER BY id DESC LIMIT 1"
                          ).fetchone()
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else float(row[1])

    def count_after(self, table: RecordTable, after_id: int) -> int:
        """How many samples, events or cycle summaries are stored after ``after_id``."""
        if table not in RECORD_TABLES:
            raise ValueError(f"not a record table: {table!r}")
        return int(self._query(f"SELECT count(*) FROM {table} WHERE id > ?",
                               (after_id,)).fetchone()[0])

    def iter_samples(self, job_id: int | None, *, columns: Sequence[str] = COLUMNS,
                     after_id: int = 0, limit: int | None = None,
                     chunk_rows: int = CHUNK_ROWS) -> Iterator[SampleColumns]:
        """Samples in id order, ``chunk_rows`` at a time: one job's, or with ``job_id``
        None every job's (what a forwarder reads after its cursor)."""
        unknown = [name for name in columns if name not in SQL_NAME]
        if unknown:
            raise StoreError(f"unknown sample columns {unknown}", path=str(self.path))
        selected = ", ".join(["id", "job_id", *(SQL_NAME[name] for name in columns)])
        sql = f"SELECT {selected} FROM samples WHERE id > ?"
        parameters: list[Any] = [after_id]
        if job_id is not None:
            sql += " AND job_id = ?"
            parameters.append(job_id)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(limit)
        cursor = self._query(sql, parameters)
        while True:
            try:
                rows = cursor.fetchmany(chunk_rows)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read: {exc}", path=str(self.path)) from exc
            if not rows:
                return
            yield _columns(rows, columns)

    def samples(self, job_id: int, *, columns: Sequence[str] = COLUMNS,
                after_id: int = 0) -> SampleColumns:
        """A job's samples as numpy columns (NaN where nothing was measured)."""
        chunks = list(self.iter_samples(job_id, columns=columns, after_id=after_id))
        if not chunks:
            return _columns([], columns)
        return SampleColumns(
            np.concatenate([chunk.ids for chunk in chunks]),
            np.concatenate([chunk.job_ids for chunk in chunks]),
            {name: np.concatenate([chunk.columns[name] for chunk in chunks])
             for name in columns})

    def samples_table(self, job_id: int, *, columns: Sequence[str] = COLUMNS) -> pa.Table:
        """A job's samples as an Arrow table with Battery Data Format column names."""
        schema = arrow_schema(columns)
        batches = [record_batch(chunk, schema) for chunk in
                   self.iter_samples(job_id, columns=columns)]
        return pa.Table.from_batches(batches, schema=schema)

    def samples_after(self, after_id: int, limit: int = CHUNK_ROWS) -> SampleColumns:
        """Up to ``limit`` samples of any job after ``after_id`` (a forwarder's cursor)."""
        chunk = next(self.iter_samples(None, after_id=after_id, limit=limit,
                                       chunk_rows=limit), None)
        return chunk if chunk is not None else _columns([], COLUMNS)

    # -- events, cycles, spectra, checkpoints, cursors ------------------------------------

    def events(self, job_id: int, *, after_id: int = 0) -> list[StoredEvent]:
        """A job's events in order."""
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE job_id = ? AND id > ? "
                           "ORDER BY id", (job_id, after_id)).fetchall()
        return [_event(row) for row in rows]

    def events_after(self, after_id: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events of every job after a cursor."""
        rows = self._query(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id "
                           "LIMIT ?", (after_id, limit)).fetchall()
        return [_event(row) for row in rows]

    def cycles(self, job_id: int) -> list[CycleSummary]:
        """A job's cycle table, by cycle number."""
        rows = self._query(f"SELECT {', '.join(CYCLE_FIELDS)} FROM cycles WHERE job_id = ? "
                           "ORDER BY cycle", (job_id,)).fetchall()
        return [summary_from_row(row) for row in rows]

    def cycles_after(self, after_id: int,
                     limit: int = 10_000) -> list[tuple[int, int, CycleSummary]]:
        """(id, job id, summary) of every job's cycle summaries stored after a cursor."""
        rows = self._query(f"SELECT id, job_id, {', '.join(CYCLE_FIELDS)} FROM cycles "
                           "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
        return [(row[0], row[1], summary_from_row(row[2:])) for row in rows]

    def spectra(self, job_id: int) -> list[StoredSpectrum]:
        """A job's impedance spectra in order."""
        rows = self._query(
            "SELECT id, job_id, step_id, step_count, time_s, unix_time_s, frequency_hz, "
            "z_real_ohm, z_imag_ohm, meta_json FROM spectra WHERE job_id = ? ORDER BY id",
            (job_id,)).fetchall()
        return [StoredSpectrum(row[0], row[1], row[2], row[3], row[5], Spectrum(
            np.frombuffer(row[6], dtype="<f8").astype(np.float64),
            np.frombuffer(row[7], dtype="<f8").astype(np.float64),
            np.frombuffer(row[8], dtype="<f8").astype(np.float64),
            time_s=0.0 if row[4] is None else row[4], meta=json.loads(row[9])))
            for row in rows]

    def checkpoint(self, job_id: int) -> StoredCheckpoint | None:
        """A job's latest checkpoint, if it has one."""
        row = self._query("SELECT job_id, last_sample_id, samples, unix_time_s, state_json "
                          "FROM checkpoints WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return StoredCheckpoint(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def cursor(self, name: str) -> int:
        """The last id forwarder ``name`` delivered (0 before its first)."""
        row = self._query("SELECT last_id FROM cursors WHERE name = ?", (name,)).fetchone()
        return 0 if row is None else int(row[0])


def record_batch(chunk: SampleColumns, schema: pa.Schema) -> pa.RecordBatch:
    """Sample columns as an Arrow record batch of ``schema``."""
    arrays = []
    for field in schema:
        values = chunk.columns[field.name]
        if pa.types.is_floating(field.type):
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _columns(rows: list[Any], columns: Sequence[str]) -> SampleColumns:
    if not rows:
        empty = {name: np.zeros(0, dtype=_dtype(name)) for name in columns}
        return SampleColumns(np.zeros(0, np.int64), np.zeros(0, np.int64), empty)
    transposed = list(zip(*rows, strict=True))
    values = {name: np.array(transposed[index + 2], dtype=_dtype(name))
              for index, name in enumerate(columns)}
    return SampleColumns(np.array(transposed[0], dtype=np.int64),
                         np.array(transposed[1], dtype=np.int64), values)


def _dtype(name: str) -> type[Any]:
    kind = _TYPES[name]
    if kind is SqlType.REAL:
        return np.float64  # NULL (SQLite's NaN) becomes NaN
    return np.int64 if kind is SqlType.INTEGER else object


def _job(row: Sequence[Any]) -> JobRecord:
    data = dict(zip(JOB_FIELDS, row, strict=True))
    provenance = Provenance(
        protocol_name=data["protocol_name"], protocol_text=data["protocol_text"],
        program_json=data["program_json"], cell=json.loads(data["cell_json"]),
        parameters=json.loads(data["parameters_json"]),
        station_config_sha256=data["station_config_sha256"],
        software_version=data["software_version"])
    return JobRecord(id=data["id"], channel=data["channel"], state=JobState(data["state"]),
                     reason=data["reason"], queued_unix_s=data["queued_unix_s"],
                     started_unix_s=data["started_unix_s"], ended_unix_s=data["ended_unix_s"],
                     updated_unix_s=data["updated_unix_s"], provenance=provenance)


def _event(row: Sequence[Any]) -> StoredEvent:
    nan = float("nan")
    event = Event(kind=EventKind(row[2]), test_time_s=nan if row[3] is None else row[3],
                  unix_time_s=nan if row[4] is None else row[4], cycle=row[5],
                  step_count=row[6], step_id=row[7], message=row[8],
                  data=json.loads(row[9]))
    return StoredEvent(row[0], row[1], event)

"""What the store's writer applies: one small operation per item a job's sink hands over, and
the writer's counters (the next sample id, each job's last sample id and count).

Sample ids are assigned here, by the one writer, in the order blocks arrive: they increase by
one per sample over the whole station, so a forwarder that remembers the last id it sent
finds everything after it with one range query. The next id is kept in the ``sequences``
table (written once per transaction, cheaper than SQLite's AUTOINCREMENT, which writes it once
per row), so an id is never used twice, even after rows were deleted.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, SampleBlock
from cellrig.protocols.rig import Spectrum

from .store_schema import CYCLE_FIELDS, SAMPLE_COLUMNS

_INSERT_SAMPLES = (
    f"INSERT INTO samples (id, job_id, {', '.join(c.sql for c in SAMPLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(SAMPLE_COLUMNS) + 2))})")
_INSERT_EVENT = (
    "INSERT INTO events (job_id, kind, test_time_s, unix_time_s, cycle, step_count, step_id, "
    "message, data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_CYCLE = (
    f"INSERT OR REPLACE INTO cycles (job_id, {', '.join(CYCLE_FIELDS)}) "
    f"VALUES ({', '.join('?' * (len(CYCLE_FIELDS) + 1))})")
_INSERT_SPECTRUM = (
    "INSERT INTO spectra (job_id, step_id, step_count, time_s, unix_time_s, points, "
    "frequency_hz, z_real_ohm, z_imag_ohm, meta_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (job_id, last_sample_id, samples, unix_time_s, "
    "state_json) VALUES (?, ?, ?, ?, ?)")
_MOVE_CURSOR = (
    "INSERT INTO cursors (name, last_id, unix_time_s) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id, "
    "unix_time_s = excluded.unix_time_s")
#: Estimated bytes of Python objects around one item beside its arrays.
_ITEM_OVERHEAD = 512
_BLOCK_OVERHEAD = 112 * len(COLUMNS) + _ITEM_OVERHEAD
_SAMPLE_BYTES = 8 * len(COLUMNS)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values, anything else as text (for JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _number(value: object) -> object:
    """A summary field as SQLite takes it (numpy scalars as Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def to_json(value: Any) -> str:
    """JSON of event data, checkpoints and metadata (NaN and infinities as JSON allows them
    in Python: written, and read back by ``json.loads``)."""
    return json.dumps(value, default=_plain, separators=(",", ":"))


@dataclass(slots=True)
class _JobCounter:
    last_sample_id: int
    samples: int


class StoreState:
    """The writer's counters; reloaded from the file after a rollback."""

    def __init__(self, next_sample_id: int) -> None:
        self.next_sample_id = next_sample_id
        self._jobs: dict[int, _JobCounter] = {}
        self._pending = 0

    @classmethod
    def load(cls, connection: sqlite3.Connection) -> StoreState:
        """The counters as the file has them."""
        row = connection.execute(
            "SELECT next_id FROM sequences WHERE name = 'samples'").fetchone()
        top = connection.execute("SELECT max(id) FROM samples").fetchone()[0]
        return cls(max(row[0] if row else 1, (top or 0) + 1))

    def job(self, connection: sqlite3.Connection, job_id: int) -> _JobCounter:
        """A job's last sample id and sample count (read once, then kept)."""
        counter = self._jobs.get(job_id)
        if counter is None:
            saved = connection.execute(
                "SELECT last_sample_id, samples FROM checkpoints WHERE job_id = ?",
                (job_id,)).fetchone()
            last, count = saved if saved else (0, 0)
            more, top = connection.execute(
                "SELECT count(*), max(id) FROM samples WHERE job_id = ? AND id > ?",
                (job_id, last)).fetchone()
            counter = _JobCounter(top if top is not None else last, count + more)
            self._jobs[job_id] = counter
        return counter

    def reserve(self, connection: sqlite3.Connection, job_id: int, count: int) -> int:
        """Ids for ``count`` samples of a job; returns the first."""
        counter = self.job(connection, job_id)
        first = self.next_sample_id
        self.next_sample_id += count
        counter.last_sample_id = self.next_sample_id - 1
        counter.samples += count
        self._pending += count
        return first

    def unreserve(self, job_id: int, first: int, count: int) -> None:
        """Give back the ids of a block that was not written (the last ones reserved)."""
        self.next_sample_id = first
        self._pending -= count
        self._jobs.pop(job_id, None)  # read again from the file, which has the truth

    def committed_samples(self) -> int:
        """Samples in the transaction being committed."""
        return self._pending

    def before_commit(self, connection: sqlite3.Connection) -> None:
        """Save the next sample id with the transaction that used ids."""
        if self._pending:
            connection.execute(
                "INSERT INTO sequences (name, next_id) VALUES ('samples', ?) "
                "ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id",
                (self.next_sample_id,))

    def commit(self) -> None:
        """The transaction is committed."""
        self._pending = 0

    def rollback(self, connection: sqlite3.Connection) -> None:
        """The transaction was rolled back: read the counters again."""
        self.next_sample_id = StoreState.load(connection).next_sample_id
        self._jobs.clear()
        self._pending = 0


class Operation(ABC):
    """One item for the writer: applied in order inside the open transaction."""

    __slots__ = ()

    @property
    @abstractmethod
    def weight(self) -> int:
        """Estimated bytes held until committed."""

    @abstractmethod
    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        """Write the item (all of it or, raising, nothing)."""

    @abstractmethod
    def describe(self) -> str:
        """What the item is, for a log line."""


@dataclass(frozen=True, slots=True)
class SampleRows(Operation):
    """A block of samples of one job."""

    job_id: int
    block: SampleBlock

    @property
    def weight(self) -> int:
        return len(self.block) * _SAMPLE_BYTES + _BLOCK_OVERHEAD

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        count = len(self.block)
        if count == 0:
            return
        columns = [self.block.columns[column.bdf].tolist() for column in SAMPLE_COLUMNS]
        if any(len(values) != count for values in columns):
            raise ValueError("the block's columns differ in length")
        first = state.reserve(connection, self.job_id, count)
        if count == 1:  # one statement: all or nothing without a savepoint
            try:
                connection.execute(_INSERT_SAMPLES, (first, self.job_id,
                                                     *(values[0] for values in columns)))
            except BaseException:
                state.unreserve(self.job_id, first, count)
                raise
            return
        connection.execute("SAVEPOINT block")
        try:
            connection.executemany(
                _INSERT_SAMPLES, zip(range(first, first + count), repeat(self.job_id, count),
                                     *columns, strict=True))
        except BaseException:
            connection.execute("ROLLBACK TO block")
            connection.execute("RELEASE block")
            state.unreserve(self.job_id, first, count)
            raise
        connection.execute("RELEASE block")

    def describe(self) -> str:
        return f"a block of {len(self.block)} samples of job {self.job_id}"


@dataclass(frozen=True, slots=True)
class EventRow(Operation):
    """One event of a job."""

    job_id: int
    event: Event

    @property
    def weight(self) -> int:
        return _ITEM_OVERHEAD + len(self.event.message) + 64 * len(self.event.data)

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        event = self.event
        step_id = None if event.step_id is None else int(event.step_id)
        connection.execute(_INSERT_EVENT, (
            self.job_id, str(event.kind), float(event.test_time_s), float(event.unix_time_s),
            int(event.cycle), int(event.step_count), step_id, str(event.message),
            to_json(event.data)))

    def describe(self) -> str:
        return f"a {self.event.kind} event of job {self.job_id}"


@dataclass(frozen=True, slots=True)
class CycleRow(Operation):
    """One cycle summary; a summary sent again for the same cycle (after a resume) replaces
    the earlier one and gets a new id, so forwarders send it again."""

    job_id: int
    summary: CycleSummary

    @property
    def weight(self) -> int:
        return _ITEM_OVERHEAD

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        values = [_number(getattr(self.summary, name)) for name in CYCLE_FIELDS]
        connection.execute(_INSERT_CYCLE, (self.job_id, *values))

    def describe(self) -> str:
        return f"the summary of cycle {self.summary.cycle} of job {self.job_id}"


@dataclass(frozen=True, slots=True)
class SpectrumRow(Operation):
    """One impedance spectrum (arrays as little-endian float64 bytes)."""

    job_id: int
    step_id: int
    step_count: int
    spectrum: Spectrum
    unix_time_s: float

    @property
    def weight(self) -> int:
        return _ITEM_OVERHEAD + 3 * int(self.spectrum.frequency_hz.nbytes)

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        spectrum = self.spectrum

        def blob(values: np.ndarray) -> bytes:
            return np.ascontiguousarray(values, dtype="<f8").tobytes()

        connection.execute(_INSERT_SPECTRUM, (
            self.job_id, self.step_id, self.step_count, spectrum.time_s, self.unix_time_s,
            int(spectrum.frequency_hz.shape[0]), blob(spectrum.frequency_hz),
            blob(spectrum.z_real_ohm), blob(spectrum.z_imag_ohm), to_json(spectrum.meta)))

    def describe(self) -> str:
        return f"a spectrum of step {self.step_count} of job {self.job_id}"


@dataclass(frozen=True, slots=True)
class CheckpointRow(Operation):
    """A job's latest checkpoint, with the id of the last sample sent before it."""

    job_id: int
    state: dict[str, Any]
    unix_time_s: float

    @property
    def weight(self) -> int:
        return 8 * _ITEM_OVERHEAD

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        counter = state.job(connection, self.job_id)
        connection.execute(_INSERT_CHECKPOINT, (
            self.job_id, counter.last_sample_id, counter.samples, self.unix_time_s,
            to_json(self.state)))

    def describe(self) -> str:
        return f"a checkpoint of job {self.job_id}"


@dataclass(frozen=True, slots=True)
class CursorMove(Operation):
    """A forwarder's cursor: the last id it has delivered."""

    name: str
    last_id: int
    unix_time_s: float

    @property
    def weight(self) -> int:
        return _ITEM_OVERHEAD

    def apply(self, connection: sqlite3.Connection, state: StoreState) -> None:
        connection.execute(_MOVE_CURSOR, (self.name, self.last_id, self.unix_time_s))

    def describe(self) -> str:
        return f"cursor {self.name!r} at {self.last_id}"


def summary_from_row(values: tuple[Any, ...]) -> CycleSummary:
    """A cycle summary from its stored columns (in :data:`CYCLE_FIELDS` order)."""
    return CycleSummary(**dict(zip(CYCLE_FIELDS, values, strict=True)))

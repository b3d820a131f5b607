"""The station store's writer: one thread that owns the write connection.

Everything that changes the store goes through one bounded queue to this thread, in the order
it was handed over: sample blocks, events, cycle summaries, spectra, checkpoints, cursor moves
and job changes. The thread applies what it finds in the queue inside an open transaction and
commits when the oldest uncommitted item is ``commit_interval_s`` old, when a job change or a
flush asks for it, or when the transaction holds ``max_transaction_bytes``. Because one
thread applies everything in order and a commit is atomic, every committed state of the file
is a prefix of what was handed over: a checkpoint is never committed without the samples sent
before it.

Why a thread and not the event loop: the engine's sink calls must be quick, and a commit that
triggers a WAL checkpoint syncs the disk (tens of milliseconds on a slow one), which must not
stall the event loop that also runs the safety supervisor (docs/store.md has the figures).

Memory is bounded: the queue and the open transaction together hold at most ``max_bytes``
(estimated from the arrays and a per-item overhead). A producer that would go beyond waits
for the writer (back-pressure) and gets :class:`StoreError` if it waits longer than
``backpressure_timeout_s``. A write that fails with an operational error (a full disk, an I/O
error, a lock held by another program) is rolled back, logged and retried with backoff from
the items the transaction held; any other database error stops the writer, and every later
call raises :class:`StoreError` naming the cause.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cellrig.errors import CellrigError

from .store_ops import Operation, StoreState

log = logging.getLogger("cellrig.store")
T = TypeVar("T")
#: A transaction started for a backlog lasts at least this long (a commit per item would
#: make the backlog grow).
_MIN_TRANSACTION_S = 0.05


class StoreError(CellrigError):
    """The station store cannot take or give data; names the store's file."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        self.detail = message
        super().__init__(f"store {path}: {message}")


@dataclass(slots=True)
class Call(Generic[T]):
    """Run ``function`` on the write connection inside the transaction; its future is
    resolved once the transaction is committed (``urgent``: commit right after it)."""

    function: Callable[[sqlite3.Connection], T]
    future: Future[T] = field(default_factory=Future)
    urgent: bool = True
    result: T | None = None


@dataclass(slots=True)
class WriterStats:
    """What the writer has done, for benchmarks and ``cellrig status``."""

    commits: int = 0
    samples: int = 0
    retries: int = 0
    max_commit_s: float = 0.0
    max_latency_s: float = 0.0
    """longest time from an item's hand-over to its commit"""
    backpressure_waits: int = 0
    backpressure_wait_s: float = 0.0
    dropped: int = 0
    """items refused by the database (logged), never retried"""
    wal_syncs: int = 0
    """timed WAL checkpoints (each syncs the WAL to the disk first)"""


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """How often to commit and how much to hold (defaults: docs/store.md)."""

    commit_interval_s: float = 0.5
    max_bytes: int = 16 * 1024 * 1024
    backpressure_timeout_s: float = 30.0
    retry_delay_s: float = 0.25
    """the first wait after a failed write; doubled up to ``max_retry_delay_s``"""
    max_retry_delay_s: float = 30.0
    sync_interval_s: float | None = 30.0
    """a WAL checkpoint (which syncs the WAL to the disk) at least this often after a
    commit: with ``synchronous=NORMAL`` it bounds what a power loss can take"""


class Writer:
    """The write connection's thread and the bounded queue in front of it."""

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection],
                 settings: WriterSettings) -> None:
        self.path = path
        self.settings = settings
        self.stats = WriterStats()
        self._connect = connect
        self._condition = threading.Condition()
        self._queue: deque[tuple[float, Operation | Call[Any]]] = deque()
        self._held_bytes = 0
        self._writer_idle = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cellrig-store-writer",
                                        daemon=True)
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # -- producer side ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; raises what opening the write connection raised."""
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise StoreError(f"cannot open for writing: {self._start_error}",
                             path=self.path) from self._start_error

    def put(self, item: Operation | Call[Any]) -> None:
        """Hand an item to the writer; waits while the writer holds ``max_bytes``."""
        weight = item.weight if isinstance(item, Operation) else 256
        with self._condition:
            self._check()
            if self._held_bytes and self._held_bytes + weight > self.settings.max_bytes:
                self._wait_for_room(weight)
            self._queue.append((time.monotonic(), item))
            self._held_bytes += weight
            if self._writer_idle:
                self._condition.notify_all()

    def call(self, function: Callable[[sqlite3.Connection], T], *,
             urgent: bool = True) -> Future[T]:
        """Run ``function`` on the writer's connection in order with everything else; the
        future holds its result once committed."""
        item = Call(function, urgent=urgent)
        self.put(item)
        return item.future

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything handed over so far is committed."""
        self.call(lambda _connection: None).result(timeout_s)

    def stop(self) -> None:
        """Commit what is queued and stop the thread (idempotent)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def failure(self) -> BaseException | None:
        """Why the writer stopped, if it stopped on an error."""
        return self._failure

    @property
    def held_bytes(self) -> int:
        """Estimated bytes queued or in the open transaction."""
        return self._held_bytes

    def _check(self) -> None:
        if self._failure is not None:
            raise StoreError(f"the writer has stopped: {self._failure}",
                             path=self.path) from self._failure
        if self._stopping:
            raise StoreError("the store is closed", path=self.path)

    def _wait_for_room(self, weight: int) -> None:
        started = time.monotonic()
        deadline = started + self.settings.backpressure_timeout_s
        self.stats.backpressure_waits += 1
        try:
            while self._held_bytes and self._held_bytes + weight > self.settings.max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(
                        f"the writer is behind: {self._held_bytes} bytes have waited more than "
                        f"{self.settings.backpressure_timeout_s:g} s", path=self.path)
                self._condition.wait(remaining)
                self._check()
        finally:
            self.stats.backpressure_wait_s += time.monotonic() - started

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            connection = self._connect()
            state = StoreState.load(connection)
        except BaseException as exc:  # reported to start(), which raises it
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        transactions = _Transactions(self, connection, state)
        try:
            transactions.run()
        except BaseException as exc:
            log.exception("store %s: the writer stopped", self.path)
            with self._condition:
                self._failure = exc
                failed = [item for _, item in
                          (*transactions.open, *transactions.pending, *self._queue)]
                self._queue.clear()
                self._held_bytes = 0
                self._condition.notify_all()
            for item in failed:
                if isinstance(item, Call) and not item.future.done():
                    item.future.set_exception(StoreError(f"the writer has stopped: {exc}",
                                                         path=self.path))
        finally:
            connection.close()

    def _take(self, deadline: float | None) -> list[tuple[float, Operation | Call[Any]]] | None:
        """Wait for items until ``deadline`` (monotonic); None once stopping with nothing
        queued."""
        with self._condition:
            self._writer_idle = True
            try:
                while not self._queue and not self._stopping:
                    if deadline is None:
                        self._condition.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return []
                    self._condition.wait(remaining)
            finally:
                self._writer_idle = False
            if not self._queue:
                return None
            taken = list(self._queue)
            self._queue.clear()
            return taken

    def _release(self, weight: int) -> None:
        with self._condition:
            self._held_bytes -= weight
            self._condition.notify_all()


class _Transactions:
    """The writer thread's loop: apply, commit on time, retry on operational errors."""

    def __init__(self, writer: Writer, connection: sqlite3.Connection,
                 state: StoreState) -> None:
        self.writer = writer
        self.connection = connection
        self.state = state
        self.open: list[tuple[float, Operation | Call[Any]]] = []
        self.open_bytes = 0
        self.pending: deque[tuple[float, Operation | Call[Any]]] = deque()
        self.deadline: float | None = None
        self.urgent = False
        self.last_sync = time.monotonic()

    def run(self) -> None:
        settings = self.writer.settings
        pending = self.pending
        stopping = False
        while True:
            if not pending:
                taken = self.writer._take(self.deadline)
                stopping = taken is None
                pending.extend(taken or ())
            try:
                # One item at a time, so that a large backlog is committed in pieces and
                # nothing waits for its commit much longer than the interval.
                while pending:
                    enqueued, item = pending.popleft()
                    if not self.open:
                        self.deadline = max(enqueued + settings.commit_interval_s,
                                            time.monotonic() + _MIN_TRANSACTION_S)
                    self.open.append((enqueued, item))
                    self.open_bytes += item.weight if isinstance(item, Operation) else 256
                    self._apply(item)
                    if self._commit_due(settings):
                        self._commit()
                if self.open and (stopping or self._commit_due(settings)):
                    self._commit()
            except sqlite3.OperationalError as exc:
                self._recover(exc, stopping)
            if stopping and not self.open and not pending:
                return

    def _commit_due(self, settings: WriterSettings) -> bool:
        if self.urgent or self.open_bytes >= settings.max_bytes // 2:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _apply(self, item: Operation | Call[Any]) -> None:
        if not self.connection.in_transaction:
            self.connection.execute("BEGIN")
        if isinstance(item, Operation):
            try:
                item.apply(self.connection, self.state)
            except sqlite3.OperationalError:
                raise
            except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
                # One bad item must not stop the store for every channel: it is dropped
                # (the statement or the block's savepoint rolled it back) and logged.
                self.writer.stats.dropped += 1
                log.error("store %s: dropped %s: %s", self.writer.path, item.describe(), exc)
            return
        self.urgent = self.urgent or item.urgent
        self.connection.execute("SAVEPOINT call")
        try:
            item.result = item.function(self.connection)
        except (CellrigError, ValueError, LookupError) as exc:  # refused: only this call fails
            self.connection.execute("ROLLBACK TO call")
            self.connection.execute("RELEASE call")
            if not item.future.done():
                item.future.set_exception(exc)
            return
        self.connection.execute("RELEASE call")

    def _commit(self) -> None:
        started = time.monotonic()
        if self.connection.in_transaction:
            self.state.before_commit(self.connection)
            self.connection.execute("COMMIT")
        done = time.monotonic()
        stats = self.writer.stats
        stats.commits += 1
        stats.max_commit_s = max(stats.max_commit_s, done - started)
        stats.max_latency_s = max(stats.max_latency_s, done - self.open[0][0])
        stats.samples += self.state.committed_samples()
        self.state.commit()
        for _, item in self.open:
            if isinstance(item, Call) and not item.future.done():
                item.future.set_result(item.result)
        self.writer._release(self.open_bytes)
        self.open = []
        self.open_bytes = 0
        self.deadline = None
        self.urgent = False
        interval = self.writer.settings.sync_interval_s
        if interval is not None and done - self.last_sync >= interval:
            self.last_sync = time.monotonic()
            try:
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.OperationalError as exc:  # tried again at the next interval
                log.warning("store %s: WAL checkpoint failed: %s", self.writer.path, exc)
            else:
                stats.wal_syncs += 1

    def _recover(self, error: sqlite3.OperationalError, stopping: bool) -> None:
        """Roll back, wait, apply the open transaction's items again and commit; with
        backoff until it works (at most a few attempts once the store is closing)."""
        settings = self.writer.settings
        delay_s = settings.retry_delay_s
        attempts = 0
        while True:
            attempts += 1
            self.writer.stats.retries += 1
            log.warning("store %s: write failed (%s); retrying in %.2g s with %d items",
                        self.writer.path, error, delay_s, len(self.open))
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            self.state.rollback(self.connection)
            self.urgent = False
            time.sleep(delay_s)
            try:
                for _, item in self.open:
                    self._apply(item)
                self._commit()
            except sqlite3.OperationalError as exc:
                if stopping and attempts >= 3:
                    raise
                error = exc
                delay_s = min(settings.max_retry_delay_s, delay_s * 2)
                continue
            log.info("store %s: write recovered after %d attempt(s)", self.writer.path,
                     attempts)
            return

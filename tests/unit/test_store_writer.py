"""The store's writer thread: bounded memory with back-pressure, commits on time, retries
after an operational error, and a clean stop when the database refuses for good.

The writer is held still where a test needs it by a call that waits for an event inside the
open transaction; nothing here sleeps to wait for it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_store import block, provenance

from cellrig.daemon.store import JobState, Store, StoreError, WriterSettings
from cellrig.daemon.store_ops import SampleRows


def hold_writer(store: Store) -> tuple[threading.Event, threading.Event]:
    """Make the writer wait inside its transaction until the returned ``release`` is set;
    ``held`` is set once it waits."""
    held, release = threading.Event(), threading.Event()

    def wait(_connection: sqlite3.Connection) -> None:
        held.set()
        release.wait(10)

    store._writer.call(wait, urgent=False)
    assert held.wait(10)
    return held, release


def test_a_writer_that_falls_behind_makes_the_producer_wait(tmp_path: Path) -> None:
    settings = WriterSettings(max_bytes=64 * 1024, backpressure_timeout_s=10.0)
    with Store.open(tmp_path / "station.db", settings=settings) as store:
        job_id = store.add_job("A1", provenance())
        sink = store.sink(job_id)
        _, release = hold_writer(store)
        sent = 0
        weight = SampleRows(job_id, block(0.0, 100)).weight
        while store.held_bytes + weight <= settings.max_bytes:
            sink.samples(block(float(sent), 100))
            sent += 100

        def release_once_the_producer_waits() -> None:
            while store.stats.backpressure_waits == 0:
                time.sleep(0.001)
            release.set()

        threading.Thread(target=release_once_the_producer_waits).start()
        sink.samples(block(float(sent), 100))  # waits until the writer has committed
        sent += 100
        assert store.stats.backpressure_waits == 1
        assert store.stats.backpressure_wait_s > 0.0
        assert store.held_bytes <= settings.max_bytes
        store.flush()
        with store.reader() as reader:
            assert reader.sample_count(job_id) == sent


def test_a_producer_that_waits_too_long_gets_a_store_error(tmp_path: Path) -> None:
    settings = WriterSettings(max_bytes=32 * 1024, backpressure_timeout_s=0.05)
    with Store.open(tmp_path / "station.db", settings=settings) as store:
        job_id = store.add_job("A1", provenance())
        sink = store.sink(job_id)
        _, release = hold_writer(store)

        def send_until_refused() -> None:
            for number in range(100):
                sink.samples(block(float(number * 100), 100))

        with pytest.raises(StoreError, match="the writer is behind"):
            send_until_refused()
        held = store.held_bytes
        assert held <= settings.max_bytes
        release.set()
        store.flush()
        with store.reader() as reader:  # everything accepted before the refusal is there
            assert reader.sample_count(job_id) * (23 * 8) < held + 23 * 8 * 100
            assert reader.sample_count(job_id) > 0


def test_one_block_larger_than_the_budget_is_still_taken(tmp_path: Path) -> None:
    settings = WriterSettings(max_bytes=1024, backpressure_timeout_s=0.05)
    with Store.open(tmp_path / "station.db", settings=settings) as store:
        job_id = store.add_job("A1", provenance())
        store.sink(job_id).samples(block(0.0, 1000))
        store.flush()
        with store.reader() as reader:
            assert reader.sample_count(job_id) == 1000


def test_an_operational_error_is_rolled_back_and_retried(tmp_path: Path) -> None:
    settings = WriterSettings(retry_delay_s=0.001)
    with Store.open(tmp_path / "station.db", settings=settings) as store:
        job_id = store.add_job("A1", provenance())
        sink = store.sink(job_id)
        _, release = hold_writer(store)
        sink.samples(block(0.0, 5))
        sink.checkpoint({"n": 5})
        failures = [sqlite3.OperationalError("database or disk is full")]

        def fail_once(_connection: sqlite3.Connection) -> None:
            if failures:
                raise failures.pop()

        store._writer.call(fail_once, urgent=False)
        sink.samples(block(5.0, 3))
        release.set()
        store.flush()
        assert store.stats.retries == 1
        with store.reader() as reader:
            stored = reader.samples(job_id)
            assert stored.ids.tolist() == list(range(1, 9))  # each once, ids unbroken
            assert np.array_equal(stored.columns["Test Time / s"], np.arange(8.0))
            checkpoint = reader.checkpoint(job_id)
            assert checkpoint is not None
            assert (checkpoint.last_sample_id, checkpoint.samples) == (5, 5)


def test_a_database_that_refuses_for_good_stops_the_writer(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "station.db")
    job_id = store.add_job("A1", provenance())
    sink = store.sink(job_id)

    def corrupt(_connection: sqlite3.Connection) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    future = store._writer.call(corrupt)
    with pytest.raises(StoreError, match="malformed"):
        future.result(10)
    with pytest.raises(StoreError, match="the writer has stopped: database disk image"):
        sink.samples(block(0.0, 1))
    with pytest.raises(StoreError, match="the writer stopped"):
        store.close()


def test_a_refused_job_change_fails_only_that_call(tmp_path: Path) -> None:
    with Store.open(tmp_path / "station.db") as store:
        job_id = store.add_job("A1", provenance())
        sink = store.sink(job_id)
        sink.samples(block(0.0, 2))
        with pytest.raises(StoreError, match="there is no job 7"):
            store.set_state(7, JobState.RUNNING)
        sink.samples(block(2.0, 2))
        store.flush()
        with store.reader() as reader:
            assert reader.sample_count(job_id) == 4


def test_the_wal_is_synced_on_time(tmp_path: Path) -> None:
    settings = WriterSettings(sync_interval_s=0.0)
    with Store.open(tmp_path / "station.db", settings=settings) as store:
        job_id = store.add_job("A1", provenance())
        store.sink(job_id).samples(block(0.0, 10))
        store.flush()
    assert store.stats.wal_syncs == store.stats.commits >= 2  # counted once the writer ended
    with Store.open(tmp_path / "other.db", settings=WriterSettings(sync_interval_s=None)) as store:
        store.add_job("A1", provenance())
        store.flush()
    assert store.stats.wal_syncs == 0

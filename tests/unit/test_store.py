"""The station store: what the engine hands its sink comes back from the store unchanged; job
states and provenance; sample ids and checkpoints; reopening; refusals.

Stores are files under ``tmp_path``. The writer is a thread; tests wait for it with
``flush()``, which returns once everything handed over is committed, never with sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_helpers import program, rig, run, samples_of

from cellrig import __version__
from cellrig.daemon.store import JobState, Provenance, Store, StoreError, StoreReader
from cellrig.daemon.store_schema import SAMPLE_COLUMNS, SQL_NAME, TRANSITIONS
from cellrig.protocols.engine import ListSink
from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, EventKind, SampleBlock
from cellrig.protocols.program import Program
from cellrig.protocols.rig import Spectrum

STEPS = """
  - repeat: 2
    steps:
      - cccv: {current: 1C, voltage: 3.90025 V, cutoff: 0.1C}
      - Rest for 10 minutes
      - Discharge at 1C until 3.20025 V
  - eis: {start: 10 kHz, stop: 1 Hz, amplitude: 10 mV, per_decade: 5}
"""
PROTOCOL_TEXT = "cellrig: 1\nname: engine-test\n"


@dataclass
class TeeSink:
    """Hands everything to a list sink and to the store's sink."""

    kept: ListSink
    stored: Any

    def samples(self, block: SampleBlock) -> None:
        self.kept.samples(block)
        self.stored.samples(block)

    def event(self, event: Event) -> None:
        self.kept.event(event)
        self.stored.event(event)

    def cycle(self, summary: CycleSummary) -> None:
        self.kept.cycle(summary)
        self.stored.cycle(summary)

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        self.kept.spectrum(step_id, step_count, spectrum)
        self.stored.spectrum(step_id, step_count, spectrum)

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.kept.checkpoint(state)
        self.stored.checkpoint(state)


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_770_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cycling() -> Program:
    return program(STEPS, record="{every: 30 s, voltage_change: 10 mV}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "station.db") as opened:
        yield opened


def provenance(prog: Program | None = None, **parameters: str) -> Provenance:
    prog = prog or program("  - Rest for 1 minute")
    return Provenance.of(PROTOCOL_TEXT, prog, parameters=parameters,
                         station_config_sha256="c" * 64)


def block(start: float, count: int, *, job_step: int = 1) -> SampleBlock:
    """``count`` samples whose test times are ``start``, ``start + 1``, …"""
    times = np.arange(start, start + count, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    for column in SAMPLE_COLUMNS:
        if column.type.value == "INTEGER":
            columns[column.bdf] = np.full(count, job_step, dtype=np.int64)
        elif column.type.value == "TEXT":
            columns[column.bdf] = np.array(["REST"] * count, dtype=object)
        else:
            columns[column.bdf] = times * 0.5 + 0.125
    columns["Test Time / s"] = times
    columns["Ambient Temperature / degC"] = np.full(count, np.nan)
    return SampleBlock({name: columns[name] for name in COLUMNS})


def test_sql_names_keep_the_unit_of_every_bdf_column() -> None:
    assert [column.bdf for column in SAMPLE_COLUMNS] == list(COLUMNS)
    assert SQL_NAME["Test Time / s"] == "test_time_s"
    assert SQL_NAME["Cycle Count / 1"] == "cycle_count"
    assert SQL_NAME["Step ID"] == "step_id"
    assert SQL_NAME["Cycle Discharging Energy / Wh"] == "cycle_discharging_energy_wh"
    assert SQL_NAME["Ambient Temperature / degC"] == "ambient_temperature_c"
    assert SQL_NAME["Applied Pressure / Pa"] == "applied_pressure_pa"
    assert len(set(SQL_NAME.values())) == len(COLUMNS)


async def test_an_engine_run_comes_back_from_the_store_unchanged(store: Store,
                                                                 cycling: Program) -> None:
    job_id = store.add_job("A1", provenance(cycling))
    tee = TeeSink(ListSink(), store.sink(job_id))
    await run(cycling, rig(block_size=7), tee)
    store.flush()
    expected = samples_of(tee.kept)
    with store.reader() as reader:
        stored = reader.samples(job_id)
        assert len(stored) == len(expected["Test Time / s"]) > 50
        for name in COLUMNS:
            if name == "Step Type":
                assert stored.columns[name].tolist() == expected[name].tolist()
            else:  # exact, NaN where nothing was measured
                np.testing.assert_array_equal(stored.columns[name], expected[name])
        assert reader.cycles(job_id) == tee.kept.cycles
        assert [stored.event for stored in reader.events(job_id)] == [
            json_round_trip(event) for event in tee.kept.events]
        checkpoint = reader.checkpoint(job_id)
        assert checkpoint is not None
        assert checkpoint.state == json.loads(json.dumps(tee.kept.checkpoints[-1]))
        assert checkpoint.samples == len(stored)
        assert checkpoint.last_sample_id == stored.ids[-1]
        (spectrum,) = reader.spectra(job_id)
        step_id, step_count, sent = tee.kept.spectra[0]
        assert (spectrum.step_id, spectrum.step_count) == (step_id, step_count)
        np.testing.assert_array_equal(spectrum.spectrum.frequency_hz, sent.frequency_hz)
        np.testing.assert_array_equal(spectrum.spectrum.z_imag_ohm, sent.z_imag_ohm)
        assert spectrum.spectrum.time_s == sent.time_s
        table = reader.samples_table(job_id)
        assert table.column_names == list(COLUMNS)
        assert table.num_rows == len(stored)
        for name in ("Ambient Temperature / degC", "Applied Pressure / Pa"):
            assert table.column(name).null_count == np.isnan(expected[name]).sum()


def json_round_trip(event: Event) -> Event:
    """An event as the store gives it back (its data through JSON)."""
    return Event(event.kind, event.test_time_s, event.unix_time_s, event.cycle,
                 event.step_count, event.step_id, event.message,
                 json.loads(json.dumps(event.data)))


def test_sample_ids_rise_by_one_over_the_station_and_a_cursor_reads_after_them(
        store: Store) -> None:
    first, second = store.add_job("A1", provenance()), store.add_job("A2", provenance())
    sinks = {first: store.sink(first), second: store.sink(second)}
    sent: list[tuple[int, float]] = []
    for number in range(20):
        job_id = first if number % 3 else second
        sinks[job_id].samples(block(number * 10.0, number % 4 + 1))
        sent.extend((job_id, number * 10.0 + k) for k in range(number % 4 + 1))
    store.flush()
    with store.reader() as reader:
        everything = reader.samples_after(0, limit=10_000)
        assert everything.ids.tolist() == list(range(1, len(sent) + 1))
        assert list(zip(everything.job_ids.tolist(),
                        everything.columns["Test Time / s"].tolist(), strict=True)) == sent
        assert reader.sample_count(first) + reader.sample_count(second) == len(sent)
        after = reader.samples_after(17, limit=5)
        assert after.ids.tolist() == [18, 19, 20, 21, 22]
        ids = reader.samples(first).ids
        assert np.all(np.diff(ids) > 0)
        assert reader.cursor("influxdb.samples") == 0
        newest_id, newest_unix_s = reader.newest_sample()
        assert newest_id == len(sent)
        assert newest_unix_s == everything.columns["Unix Time / s"][-1]
        assert reader.count_after("samples", 17) == len(sent) - 17
        assert reader.count_after("events", 0) == 0
        with pytest.raises(ValueError, match="not a record table"):
            reader.count_after("jobs", 0)  # type: ignore[arg-type]
    store.move_cursor("influxdb.samples", 22)
    store.flush()
    with store.reader() as reader:
        assert reader.cursor("influxdb.samples") == 22


def test_an_empty_store_has_no_newest_sample(store: Store) -> None:
    with store.reader() as reader:
        assert reader.newest_sample() == (0, None)
        assert reader.count_after("samples", 0) == 0


def test_a_checkpoint_names_the_last_sample_sent_before_it(store: Store) -> None:
    job_id = store.add_job("A1", provenance())
    other = store.add_job("A2", provenance())
    sink, other_sink = store.sink(job_id), store.sink(other)
    sink.samples(block(0.0, 5))
    other_sink.samples(block(0.0, 3))
    sink.checkpoint({"at": 4.0, "inf": None})
    sink.samples(block(5.0, 2))
    store.flush()
    with store.reader() as reader:
        checkpoint = reader.checkpoint(job_id)
        assert checkpoint is not None
        assert (checkpoint.last_sample_id, checkpoint.samples) == (5, 5)
        assert checkpoint.state == {"at": 4.0, "inf": None}
        assert reader.checkpoint(other) is None
    sink.checkpoint({"at": 6.0})
    store.flush()
    with store.reader() as reader:
        checkpoint = reader.checkpoint(job_id)
        assert checkpoint is not None
        assert (checkpoint.last_sample_id, checkpoint.samples) == (10, 7)


def test_reopening_keeps_everything_and_continues_the_ids(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    with Store.open(path) as store:
        job_id = store.add_job("A1", provenance())
        store.set_state(job_id, JobState.RUNNING)
        sink = store.sink(job_id)
        sink.samples(block(0.0, 4))
        sink.checkpoint({"n": 4})
        sink.samples(block(4.0, 3))
    with Store.open(path) as store:
        with store.reader() as reader:
            (running,) = reader.unfinished_jobs()
        assert (running.id, running.state) == (job_id, JobState.RUNNING)
        sink = store.sink(job_id)
        sink.samples(block(7.0, 2))
        sink.checkpoint({"n": 9})
        store.flush()
        with store.reader() as reader:
            assert reader.samples(job_id).ids.tolist() == list(range(1, 10))
            checkpoint = reader.checkpoint(job_id)
            assert checkpoint is not None
            assert (checkpoint.last_sample_id, checkpoint.samples) == (9, 9)


def test_ids_are_never_used_twice_even_after_rows_were_deleted(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    with Store.open(path) as store:
        store.sink(store.add_job("A1", provenance())).samples(block(0.0, 5))
    connection = sqlite3.connect(path)
    connection.execute("DELETE FROM samples WHERE id > 2")
    connection.commit()
    connection.close()
    with Store.open(path) as store:
        job_id = store.add_job("A2", provenance())
        store.sink(job_id).samples(block(0.0, 2))
        store.flush()
        with store.reader() as reader:
            assert reader.samples(job_id).ids.tolist() == [6, 7]


def test_job_states_follow_the_life_of_a_job(tmp_path: Path) -> None:
    clock = Clock()
    with Store.open(tmp_path / "station.db", wall_clock=clock) as store:
        job_id = store.add_job("A1", provenance())
        clock.now += 10
        store.set_state(job_id, JobState.RUNNING)
        clock.now += 5
        store.set_state(job_id, JobState.PAUSED, "asked by a person")
        clock.now += 5
        store.set_state(job_id, JobState.RUNNING)
        clock.now += 100
        store.set_state(job_id, JobState.ABORTED, "voltage 4.41 V above 4.35 V")
        with pytest.raises(StoreError, match="job 1 is aborted; it cannot become running"):
            store.set_state(job_id, JobState.RUNNING)
        with pytest.raises(StoreError, match="there is no job 99"):
            store.set_state(99, JobState.RUNNING)
        with store.reader() as reader:
            job = reader.job(job_id)
            assert job.state is JobState.ABORTED
            assert job.reason == "voltage 4.41 V above 4.35 V"
            assert (job.queued_unix_s, job.started_unix_s, job.ended_unix_s) == (
                1_770_000_000.0, 1_770_000_010.0, 1_770_000_120.0)
            assert reader.unfinished_jobs() == []
            with pytest.raises(StoreError, match="there is no job 2"):
                reader.job(2)


def test_every_state_can_be_reached_and_final_states_are_final() -> None:
    reachable = {JobState.QUEUED}
    for targets in TRANSITIONS.values():
        reachable |= targets
    assert reachable == set(JobState)
    for state in (JobState.COMPLETED, JobState.STOPPED, JobState.ABORTED, JobState.FAILED):
        assert TRANSITIONS[state] == frozenset()


def test_jobs_by_state_and_channel(store: Store) -> None:
    ids = [store.add_job(channel, provenance()) for channel in ("A1", "A2", "A1", "A3")]
    store.set_state(ids[0], JobState.RUNNING)
    store.set_state(ids[1], JobState.RUNNING)
    store.set_state(ids[1], JobState.COMPLETED)
    store.set_state(ids[3], JobState.STOPPED, "cancelled before it started")
    with store.reader() as reader:
        assert [job.id for job in reader.jobs([JobState.RUNNING])] == [ids[0]]
        assert [job.id for job in reader.jobs([JobState.QUEUED])] == [ids[2]]
        assert [job.id for job in reader.jobs(channel="A1")] == [ids[0], ids[2]]
        assert [job.id for job in reader.unfinished_jobs()] == [ids[0], ids[2]]
        assert len(reader.jobs()) == 4


def test_provenance_is_stored_whole(store: Store, cycling: Program) -> None:
    prov = provenance(cycling, upper="4.3 V")
    job_id = store.add_job("B2", prov)
    with store.reader() as reader:
        stored = reader.job(job_id).provenance
    assert stored == prov
    assert stored.program_sha256 == cycling.sha256
    assert stored.program() == cycling
    assert stored.protocol_text == PROTOCOL_TEXT
    assert stored.parameters == {"upper": "4.3 V"}
    assert stored.cell["capacity_ah"] == 1.0
    assert stored.software_version == __version__
    assert stored.station_config_sha256 == "c" * 64


def test_cycle_summaries_sent_again_replace_the_earlier_ones(store: Store) -> None:
    job_id = store.add_job("A1", provenance())
    sink = store.sink(job_id)
    first = CycleSummary(1, 0.0, 10.0, 1.0, 0.9, 4.0, 3.5, 0.9, 0.875, 4.0, 3.9, 1.0, 0.0,
                         25.0, 26.0, math.nan, None, 1.0, None)
    sink.cycle(first)
    sink.cycle(dataclasses.replace(first, end_test_time_s=11.0))
    store.flush()
    with store.reader() as reader:
        (summary,) = reader.cycles(job_id)
        assert summary.end_test_time_s == 11.0
        assert summary.min_pressure_pa is None  # NaN is stored as SQL NULL
        ((row_id, row_job, _),) = reader.cycles_after(0)
        assert (row_id, row_job) == (2, job_id)


def test_events_of_every_job_after_a_cursor(store: Store) -> None:
    first, second = store.add_job("A1", provenance()), store.add_job("A2", provenance())
    for number in range(4):
        store.sink(first if number % 2 else second).event(
            Event(EventKind.WARNING, float(number), 1.0e9, 1, number, None, f"warning {number}",
                  {"value": np.float64(4.3), "count": np.int64(number)}))
    store.flush()
    with store.reader() as reader:
        assert [e.event.message for e in reader.events(first)] == ["warning 1", "warning 3"]
        later = reader.events_after(2)
        assert [(e.id, e.job_id) for e in later] == [(3, second), (4, first)]
        assert later[1].event.data == {"value": 4.3, "count": 3}


def test_a_block_with_missing_columns_is_refused_at_once(store: Store) -> None:
    sink = store.sink(store.add_job("A1", provenance()))
    columns = dict(block(0.0, 2).columns)
    del columns["Voltage / V"]
    with pytest.raises(StoreError, match=r"missing columns \['Voltage / V'\]"):
        sink.samples(SampleBlock(columns))


def test_a_block_the_database_refuses_is_dropped_and_the_rest_is_kept(store: Store) -> None:
    job_id = store.add_job("A1", provenance())
    sink = store.sink(job_id)
    sink.samples(block(0.0, 3))
    broken = dict(block(3.0, 3).columns)
    broken["Voltage / V"] = np.zeros(2)  # one value short
    sink.samples(SampleBlock(broken))
    bad_type = dict(block(3.0, 2).columns)
    bad_type["Step Type"] = np.array([{"not": "text"}, {}], dtype=object)
    sink.samples(SampleBlock(bad_type))
    sink.samples(block(3.0, 2))
    store.flush()
    assert store.stats.dropped == 2
    with store.reader() as reader:
        stored = reader.samples(job_id)
        assert stored.ids.tolist() == [1, 2, 3, 4, 5]
        assert stored.columns["Test Time / s"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_store_refuses_files_that_are_not_cellrig_stores(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some text " * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store.open(text)
    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    with pytest.raises(StoreError, match="not a cellrig store"):
        Store.open(other)
    with pytest.raises(StoreError, match="not a cellrig store"):
        StoreReader(other)
    with pytest.raises(StoreError, match="there is no store here"):
        StoreReader(tmp_path / "missing.db")
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    connection = sqlite3.connect(newer)
    connection.execute("PRAGMA user_version=99")
    connection.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store.open(newer)


def test_a_closed_store_refuses_more_data(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "station.db")
    sink = store.sink(store.add_job("A1", provenance()))
    store.close()
    with pytest.raises(StoreError, match="closed"):
        sink.samples(block(0.0, 1))

"""Exports of a job: Battery Data Format CSV and Parquet with the exact headers, values that
come back as stored, the cycle table, the provenance, the recommended file names."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from test_store import PROTOCOL_TEXT, Clock, block, provenance

from cellrig.daemon.export import CYCLE_TABLE, ExportFormat, export_job
from cellrig.daemon.store import JobState, Store
from cellrig.protocols.engine.output import COLUMNS, CycleSummary


@pytest.fixture
def exported(tmp_path: Path) -> Iterator[tuple[Store, int, list[Path]]]:
    clock = Clock()
    store = Store.open(tmp_path / "station.db", wall_clock=clock)
    prov = provenance()
    prov = dataclasses.replace(prov, cell={**prov.cell, "id": "pouch 7/B"})
    job_id = store.add_job("A1", prov)
    store.set_state(job_id, JobState.RUNNING)
    sink = store.sink(job_id)
    for number in range(7):  # several chunks of 3
        sink.samples(block(number * 5.0, 5))
    sink.cycle(CycleSummary(1, 0.0, 10.0, 0.61, 0.6, 2.3, 2.2, 0.6 / 0.61, 2.2 / 2.3, 3.8, 3.7,
                            0.9, 0.1, 59.9, 60.1, 1.9e6, 2.1e6, 1.0, None))
    store.flush()
    with store.reader() as reader:
        files = export_job(reader, job_id, tmp_path / "out", institution="Lab X",
                           chunk_rows=3)
    yield store, job_id, files
    store.close()


def test_the_files_have_the_recommended_names(exported: tuple[Store, int, list[Path]]) -> None:
    _, _, files = exported
    assert [path.name for path in files] == [
        "Lab-X__pouch-7-B__20260202_001.bdf.csv",
        "Lab-X__pouch-7-B__20260202_001.bdf.parquet",
        "Lab-X__pouch-7-B__20260202_001.cycles.csv",
        "Lab-X__pouch-7-B__20260202_001.provenance.json",
    ]


def test_the_csv_has_the_bdf_headers_and_the_stored_values(
        exported: tuple[Store, int, list[Path]]) -> None:
    store, job_id, files = exported
    lines = files[0].read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 1 + 35
    table = pa_csv.read_csv(files[0])
    with store.reader() as reader:
        stored = reader.samples(job_id)
    assert table.column_names == list(COLUMNS)
    for name in COLUMNS:
        values = table.column(name).to_pylist()
        if name == "Ambient Temperature / degC":
            assert values == [None] * 35  # not measured: an empty field
        elif name == "Step Type":
            assert values == stored.columns[name].tolist()
        else:
            np.testing.assert_array_equal(np.array(values, dtype=float),
                                          stored.columns[name].astype(float))


def test_the_parquet_file_holds_the_table_and_the_provenance(
        exported: tuple[Store, int, list[Path]]) -> None:
    store, job_id, files = exported
    table = pq.read_table(files[1])
    with store.reader() as reader:
        assert table.equals(reader.samples_table(job_id))
    metadata = json.loads(table.schema.metadata[b"cellrig"])
    assert metadata["job"] == job_id
    assert metadata["protocol_text"] == PROTOCOL_TEXT
    assert metadata["cell"]["id"] == "pouch 7/B"
    assert metadata["station_config_sha256"] == "c" * 64


def test_the_cycle_table_and_provenance(exported: tuple[Store, int, list[Path]]) -> None:
    store, job_id, files = exported
    with files[2].open(encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [header for header, _ in CYCLE_TABLE]
    assert rows[1][:5] == ["1", "0.0", "10.0", "0.61", "0.6"]
    assert rows[1][-1] == ""  # no reference cycle
    document = json.loads(files[3].read_text(encoding="utf-8"))
    assert document["state"] == "running"
    with store.reader() as reader:
        assert document["program_sha256"] == reader.job(job_id).provenance.program_sha256
    assert document["program"]["name"] == "engine-test"


def test_one_format_only(tmp_path: Path) -> None:
    with Store.open(tmp_path / "station.db") as store:
        job_id = store.add_job("A1", provenance())
        store.flush()
        with store.reader() as reader:
            files = export_job(reader, job_id, tmp_path / "out",
                               formats=[ExportFormat.BDF_PARQUET])
    assert [path.suffixes[-2:] for path in files] == [
        [".bdf", ".parquet"], [".cycles", ".csv"], [".provenance", ".json"]]
    assert pq.read_table(files[0]).num_rows == 0

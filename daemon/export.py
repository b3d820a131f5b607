"""Export a job from the station store: Battery Data Format CSV or Parquet, the cycle table,
and the job's provenance.

The sample file follows the Battery Data Format: one cell per file, the preferred labels as
headers with their fixed units (``Test Time / s``, ``Voltage / V``, ``Current / A`` positive
on charge, …), named ``INSTITUTION__CELL__YYYYMMDD_JOB`` with ``.bdf.csv`` or
``.bdf.parquet``. A value that was not measured is an empty CSV field or a Parquet null.
The Parquet file carries the provenance as key-value metadata (key ``cellrig``). Beside it go
``….cycles.csv`` (one row per cycle, names in the same style; BDF has no cycle table yet) and
``….provenance.json``.

Samples are streamed from the store chunk by chunk, so exporting a job of any length needs
memory for one chunk.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cellrig.protocols.engine.output import COLUMNS, CycleSummary

from .store_read import CHUNK_ROWS, StoreReader, arrow_schema, record_batch
from .store_records import JobRecord


class ExportFormat(StrEnum):
    """The formats a job's samples can be exported in."""

    BDF_CSV = "bdf-csv"
    BDF_PARQUET = "bdf-parquet"


#: Cycle-table columns: header and the summary field it shows.
CYCLE_TABLE: tuple[tuple[str, str], ...] = (
    ("Cycle Count / 1", "cycle"),
    ("Start Test Time / s", "start_test_time_s"),
    ("End Test Time / s", "end_test_time_s"),
    ("Charging Capacity / Ah", "charge_capacity_ah"),
    ("Discharging Capacity / Ah", "discharge_capacity_ah"),
    ("Charging Energy / Wh", "charge_energy_wh"),
    ("Discharging Energy / Wh", "discharge_energy_wh"),
    ("Coulombic Efficiency / 1", "coulombic_efficiency"),
    ("Energy Efficiency / 1", "energy_efficiency"),
    ("Average Charging Voltage / V", "average_charge_voltage_v"),
    ("Average Discharging Voltage / V", "average_discharge_voltage_v"),
    ("CC Charge Share / 1", "cc_charge_share"),
    ("CV Charge Share / 1", "cv_charge_share"),
    ("Minimum Ambient Temperature / degC", "min_temperature_c"),
    ("Maximum Ambient Temperature / degC", "max_temperature_c"),
    ("Minimum Applied Pressure / Pa", "min_pressure_pa"),
    ("Maximum Applied Pressure / Pa", "max_pressure_pa"),
    ("Capacity Retention / 1", "retention"),
    ("Reference Capacity Retention / 1", "reference_retention"),
)
_NAME_PART_RE = re.compile(r"[^A-Za-z0-9.-]+")


def file_stem(job: JobRecord, institution: str = "cellrig") -> str:
    """``INSTITUTION__CELL__YYYYMMDD_JOB``, the Battery Data Format's recommended name (the
    date the job started, or was queued; UTC)."""
    cell = str(job.provenance.cell.get("id") or "cell")
    when = job.started_unix_s if job.started_unix_s is not None else job.queued_unix_s
    day = datetime.fromtimestamp(when, tz=UTC).strftime("%Y%m%d")

    def clean(text: str) -> str:
        return _NAME_PART_RE.sub("-", text).strip("-") or "x"

    return f"{clean(institution)}__{clean(cell)}__{day}_{job.id:03d}"


def provenance_document(job: JobRecord) -> dict[str, Any]:
    """The job and its provenance as JSON-ready data."""
    provenance = job.provenance
    return {
        "job": job.id, "channel": job.channel, "state": job.state.value, "reason": job.reason,
        "queued_unix_s": job.queued_unix_s, "started_unix_s": job.started_unix_s,
        "ended_unix_s": job.ended_unix_s, "protocol_name": provenance.protocol_name,
        "protocol_sha256": provenance.protocol_sha256,
        "program_sha256": provenance.program_sha256, "cell": dict(provenance.cell),
        "parameters": dict(provenance.parameters),
        "software_version": provenance.software_version,
        "station_config_sha256": provenance.station_config_sha256,
        "protocol_text": provenance.protocol_text,
        "program": json.loads(provenance.program_json),
    }


def export_job(reader: StoreReader, job_id: int, folder: str | Path, *,
               formats: Sequence[ExportFormat] = (ExportFormat.BDF_CSV,
                                                  ExportFormat.BDF_PARQUET),
               institution: str = "cellrig", chunk_rows: int = CHUNK_ROWS) -> list[Path]:
    """Write a job's samples in ``formats``, its cycle table and provenance into ``folder``;
    returns the files written."""
    job = reader.job(job_id)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    stem = file_stem(job, institution)
    written: list[Path] = []
    schema = arrow_schema(COLUMNS)
    if ExportFormat.BDF_CSV in formats:
        path = target / f"{stem}.bdf.csv"
        _write_csv(reader, job_id, path, schema, chunk_rows)
        written.append(path)
    if ExportFormat.BDF_PARQUET in formats:
        path = target / f"{stem}.bdf.parquet"
        _write_parquet(reader, job, path, schema, chunk_rows)
        written.append(path)
    cycles_path = target / f"{stem}.cycles.csv"
    write_cycle_table(reader.cycles(job_id), cycles_path)
    provenance_path = target / f"{stem}.provenance.json"
    provenance_path.write_text(json.dumps(provenance_document(job), indent=2) + "\n",
                               encoding="utf-8")
    return [*written, cycles_path, provenance_path]


def _write_csv(reader: StoreReader, job_id: int, path: Path, schema: pa.Schema,
               chunk_rows: int) -> None:
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as stream:
        stream.write((",".join(schema.names) + "\n").encode("utf-8"))
        with pa_csv.CSVWriter(stream, schema, write_options=options) as writer:
            for chunk in reader.iter_samples(job_id, chunk_rows=chunk_rows):
                writer.write_batch(record_batch(chunk, schema))


def _write_parquet(reader: StoreReader, job: JobRecord, path: Path, schema: pa.Schema,
                   chunk_rows: int) -> None:
    document = provenance_document(job)
    with_metadata = schema.with_metadata({"cellrig": json.dumps(document)})
    with pq.ParquetWriter(path, with_metadata, compression="zstd") as writer:
        for chunk in reader.iter_samples(job.id, chunk_rows=chunk_rows):
            writer.write_batch(record_batch(chunk, with_metadata))


def write_cycle_table(cycles: Sequence[CycleSummary], path: Path) -> None:
    """One row per cycle; empty where a figure does not exist (no discharge yet, …)."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow([header for header, _ in CYCLE_TABLE])
        for summary in cycles:
            writer.writerow([_cell(getattr(summary, name)) for _, name in CYCLE_TABLE])


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)

"""The station store's schema: tables, sample columns, job states and the connection settings.

One SQLite database per station holds every job, its provenance, samples, events, cycle
summaries, spectra and latest checkpoint, and the forwarders' cursors (docs/store.md says why
one database and not one per job, with the measured figures). Samples keep the engine's Battery
Data Format columns under SQL names; :data:`SAMPLE_COLUMNS` maps one to the other.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from cellrig.protocols.engine.output import COLUMNS

#: Bumped on every change to the tables; a store with another version is refused.
SCHEMA_VERSION = 1

#: Application id in the database header (``PRAGMA application_id``), "CRIG": tells a cellrig
#: store from any other SQLite file.
APPLICATION_ID = 0x43524947


class SqlType(StrEnum):
    """How a sample column is stored."""

    REAL = "REAL"
    INTEGER = "INTEGER"
    TEXT = "TEXT"


@dataclass(frozen=True, slots=True)
class SampleColumn:
    """One sample column: its Battery Data Format name, SQL name and type."""

    bdf: str
    sql: str
    type: SqlType


def _sample_column(bdf: str) -> SampleColumn:
    if bdf in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
        kind = SqlType.INTEGER
    elif bdf == "Step Type":
        kind = SqlType.TEXT
    else:
        kind = SqlType.REAL
    name, _, unit = bdf.partition(" / ")
    sql = name.lower().replace(" ", "_")
    if unit and unit != "1":
        sql += "_" + {"degC": "c"}.get(unit, unit.lower())
    return SampleColumn(bdf, sql, kind)


#: Every sample column, in the engine's order (``Test Time / s`` → ``test_time_s``, …).
SAMPLE_COLUMNS: tuple[SampleColumn, ...] = tuple(_sample_column(name) for name in COLUMNS)
SQL_NAME = {column.bdf: column.sql for column in SAMPLE_COLUMNS}
BDF_NAME = {column.sql: column.bdf for column in SAMPLE_COLUMNS}


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    """a limit was breached (the engine's or the safety supervisor's)"""
    FAILED = "failed"
    """a fault: an instrument, the store, the daemon"""


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.STOPPED, JobState.ABORTED,
                          JobState.FAILED})
#: Jobs a daemon has to pick up again after it (re)starts.
UNFINISHED_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED})
#: Which state may follow which. A queued job can be stopped (cancelled) or fail at
#: submission-time checks; a final state is final.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.STOPPED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.PAUSED, *FINAL_STATES}),
    JobState.PAUSED: frozenset({JobState.RUNNING, *FINAL_STATES}),
    **{state: frozenset() for state in FINAL_STATES},
}


def _samples_table() -> str:
    columns = ",\n    ".join(f'{column.sql} {column.type.value}' for column in SAMPLE_COLUMNS)
    return f"""
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    {columns}
)"""


TABLES = (
    """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    queued_unix_s REAL NOT NULL,
    started_unix_s REAL,
    ended_unix_s REAL,
    updated_unix_s REAL NOT NULL,
    protocol_name TEXT NOT NULL,
    protocol_text TEXT NOT NULL,
    protocol_sha256 TEXT NOT NULL,
    program_json TEXT NOT NULL,
    program_sha256 TEXT NOT NULL,
    cell_json TEXT NOT NULL,
    parameters_json TEXT NOT NULL,
    software_version TEXT NOT NULL,
    station_config_sha256 TEXT NOT NULL
)""",
    "CREATE INDEX jobs_by_state ON jobs (state, id)",
    _samples_table(),
    "CREATE INDEX samples_by_job ON samples (job_id, id)",
    """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    test_time_s REAL,
    unix_time_s REAL,
    cycle INTEGER NOT NULL,
    step_count INTEGER NOT NULL,
    step_id INTEGER,
    message TEXT NOT NULL,
    data_json TEXT NOT NULL
)""",
    "CREATE INDEX events_by_job ON events (job_id, id)",
    """
CREATE TABLE cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    cycle INTEGER NOT NULL,
    start_test_time_s REAL,
    end_test_time_s REAL,
    charge_capacity_ah REAL,
    discharge_capacity_ah REAL,
    charge_energy_wh REAL,
    discharge_energy_wh REAL,
    coulombic_efficiency REAL,
    energy_efficiency REAL,
    average_charge_voltage_v REAL,
    average_discharge_voltage_v REAL,
    cc_charge_share REAL,
    cv_charge_share REAL,
    min_temperature_c REAL,
    max_temperature_c REAL,
    min_pressure_pa REAL,
    max_pressure_pa REAL,
    retention REAL,
    reference_retention REAL,
    UNIQUE (job_id, cycle)
)""",
    """
CREATE TABLE spectra (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    step_id INTEGER NOT NULL,
    step_count INTEGER NOT NULL,
    time_s REAL,
    unix_time_s REAL,
    points INTEGER NOT NULL,
    frequency_hz BLOB NOT NULL,
    z_real_ohm BLOB NOT NULL,
    z_imag_ohm BLOB NOT NULL,
    meta_json TEXT NOT NULL
)""",
    "CREATE INDEX spectra_by_job ON spectra (job_id, id)",
    """
CREATE TABLE checkpoints (
    job_id INTEGER PRIMARY KEY,
    last_sample_id INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    unix_time_s REAL NOT NULL,
    state_json TEXT NOT NULL
)""",
    """
CREATE TABLE sequences (
    name TEXT PRIMARY KEY,
    next_id INTEGER NOT NULL
)""",
    """
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL,
    unix_time_s REAL NOT NULL
)""",
)

#: Cycle-summary fields in storage order (the columns after ``job_id``).
CYCLE_FIELDS = (
    "cycle", "start_test_time_s", "end_test_time_s", "charge_capacity_ah",
    "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh", "coulombic_efficiency",
    "energy_efficiency", "average_charge_voltage_v", "average_discharge_voltage_v",
    "cc_charge_share", "cv_charge_share", "min_temperature_c", "max_temperature_c",
    "min_pressure_pa", "max_pressure_pa", "retention", "reference_retention",
)

#: Job columns in storage order, as read back.
JOB_FIELDS = (
    "id", "channel", "state", "reason", "queued_unix_s", "started_unix_s", "ended_unix_s",
    "updated_unix_s", "protocol_name", "protocol_text", "protocol_sha256", "program_json",
    "program_sha256", "cell_json", "parameters_json", "software_version",
    "station_config_sha256",
)


class Synchronous(StrEnum):
    """SQLite's ``synchronous`` setting in WAL mode (docs/store.md: what survives what)."""

    NORMAL = "NORMAL"
    """commits reach the OS at once (survive kill -9); the WAL is synced at checkpoints"""
    FULL = "FULL"
    """every commit is synced to the disk as well (survives power loss)"""


def configure(connection: sqlite3.Connection, synchronous: Synchronous) -> None:
    """Settings every connection of a store uses: WAL, the sync level, a busy timeout (a
    reader and the writer never wait for each other in WAL, but a checkpoint can), and
    foreign data types kept as written."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous.value}")
    connection.execute("PRAGMA busy_timeout=10000")


def create_or_check(connection: sqlite3.Connection) -> None:
    """Create the tables in an empty database, or check that an existing one is a cellrig
    store of this schema version; raises ``ValueError`` saying what is wrong."""
    application = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    if application == 0 and version == 0 and tables == 0:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in TABLES:
                connection.execute(statement)
            connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return
    if application != APPLICATION_ID:
        raise ValueError("the file is an SQLite database but not a cellrig store")
    if version != SCHEMA_VERSION:
        raise ValueError(f"the store has schema version {version}; this cellrig reads version "
                         f"{SCHEMA_VERSION}")

"""InfluxDB line protocol for the station's data: samples, cycle summaries, events and
station health (docs/influxdb.md is the schema).

Samples are encoded a chunk at a time (:class:`~cellrig.daemon.store_records.SampleColumns`
as the store reads them). The rows are grouped by job, step type and which of their float
fields are measured (NaN fields are left out), so each group has one ``%`` template whose tag
set is written once; the rows are then formatted column-wise with ``map``. That keeps the
per-sample work to the float formatting itself (see ``tests/bench/bench_influx.py``).

Every timestamp is in nanoseconds, taken from the record's own unix time rounded to the
microsecond: the same stored sample always gets the same timestamp and tags, so writing it
again overwrites the point instead of adding one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cellrig.protocols.engine.output import CycleSummary

from .store_records import SampleColumns, StoredEvent

SAMPLES = "samples"
CYCLES = "cycles"
EVENTS = "events"
STATION_HEALTH = "station_health"
INSTRUMENTS = "instruments"

#: Sample float fields: Battery Data Format column → field name (unit in the name).
SAMPLE_FLOAT_FIELDS: dict[str, str] = {
    "Voltage / V": "voltage_v",
    "Current / A": "current_a",
    "Ambient Temperature / degC": "temperature_c",
    "Applied Pressure / Pa": "pressure_pa",
    "Test Time / s": "test_time_s",
    "Step Time / s": "step_time_s",
    "Charging Capacity / Ah": "charge_capacity_ah",
    "Discharging Capacity / Ah": "discharge_capacity_ah",
    "Cycle Charging Capacity / Ah": "cycle_charge_capacity_ah",
    "Cycle Discharging Capacity / Ah": "cycle_discharge_capacity_ah",
}
#: Sample integer fields (written with the ``i`` suffix).
SAMPLE_INTEGER_FIELDS: dict[str, str] = {
    "Cycle Count / 1": "cycle",
    "Step Count / 1": "step",
    "Step ID": "step_id",
}
STEP_TYPE = "Step Type"
UNIX_TIME = "Unix Time / s"
#: The sample columns the encoder reads (what a forwarder asks the store for).
SAMPLE_COLUMNS: tuple[str, ...] = (UNIX_TIME, STEP_TYPE, *SAMPLE_FLOAT_FIELDS,
                                   *SAMPLE_INTEGER_FIELDS)

#: Cycle-summary float fields: attribute → field name (the same but for the retentions:
#: ``retention`` is an InfluxQL keyword, which every query would have to quote).
CYCLE_FLOAT_FIELDS: dict[str, str] = {
    **{name: name for name in (
        "start_test_time_s", "end_test_time_s", "duration_s", "charge_capacity_ah",
        "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh",
        "coulombic_efficiency", "energy_efficiency", "average_charge_voltage_v",
        "average_discharge_voltage_v", "cc_charge_share", "cv_charge_share",
        "min_temperature_c", "max_temperature_c", "min_pressure_pa", "max_pressure_pa")},
    "retention": "capacity_retention",
    "reference_retention": "reference_capacity_retention",
}
#: InfluxDB's timestamps are signed 64-bit nanoseconds: 1677 to 2262.
MAX_ABS_UNIX_TIME_S = 9.2e9
MAX_MESSAGE_CHARS = 4096
MAX_DATA_CHARS = 16_384

_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\\": "/", "\n": " ",
                              "\r": " ", "\t": " "})


def escape_tag(value: str) -> str:
    """A tag key or value as line protocol writes it: commas, equals signs and spaces
    escaped; line breaks and tabs become spaces and backslashes slashes (a trailing
    backslash would escape what follows it)."""
    return value.translate(_TAG_ESCAPES)


def escape_string_field(value: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A string field value in double quotes (quotes and backslashes escaped, line breaks
    as spaces, at most ``limit`` characters)."""
    text = value[:limit].replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", " ").replace("\r", " ") + '"'


def tag_set(tags: Iterable[tuple[str, str | None]]) -> str:
    """``key=value,…`` of the tags that have a value, escaped, in the order given."""
    return ",".join(f"{escape_tag(key)}={escape_tag(value)}" for key, value in tags
                    if value is not None and value != "")


@dataclass(frozen=True, slots=True)
class JobTags:
    """The tags every point of one job carries."""

    station: str
    channel: str
    cell: str | None
    job_id: int

    def text(self) -> str:
        """The escaped tag set (without the measurement)."""
        return tag_set((("station", self.station), ("channel", self.channel),
                        ("cell", self.cell), ("job", str(self.job_id))))


def timestamps_ns(unix_time_s: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Nanosecond timestamps of unix times, rounded to the microsecond: one float always
    gives the same point, and a float64 unix time holds nothing much finer (0.24 µs)."""
    return np.rint(unix_time_s * 1e6).astype(np.int64) * 1000


def timestamp_ns(unix_time_s: float) -> int:
    """One nanosecond timestamp, the same rounding as :func:`timestamps_ns`."""
    return round(unix_time_s * 1e6) * 1000  # half to even, as np.rint


@dataclass(frozen=True, slots=True)
class EncodedSamples:
    """Line protocol of a chunk of samples: the lines, and how many samples had no usable
    time (a NaN unix time, or one InfluxDB cannot hold) and were left out."""

    lines: list[str]
    skipped: int


def encode_samples(chunk: SampleColumns, job_tags: Mapping[int, str]) -> EncodedSamples:
    """The ``samples`` lines of a chunk; ``job_tags`` maps each job id in it to its escaped
    tag set (:meth:`JobTags.text`). Fields that are NaN or infinite are left out."""
    count = len(chunk)
    if count == 0:
        return EncodedSamples([], 0)
    columns = chunk.columns
    unix = np.asarray(columns[UNIX_TIME], dtype=np.float64)
    usable = np.abs(unix) < MAX_ABS_UNIX_TIME_S  # False for NaN too
    floats = [np.asarray(columns[name], dtype=np.float64) for name in SAMPLE_FLOAT_FIELDS]
    present = np.isfinite(np.vstack(floats))  # fields × rows
    pattern = (present.T.astype(np.int64) << np.arange(len(floats), dtype=np.int64)).sum(1)
    jobs, job_code = np.unique(chunk.job_ids, return_inverse=True)
    steps = np.array([kind or "" for kind in columns[STEP_TYPE].tolist()], dtype=str)
    step_names, step_code = np.unique(steps, return_inverse=True)
    key = (job_code.astype(np.int64) * len(step_names) + step_code) << len(floats) | pattern
    key = np.where(usable, key, -1)
    groups, group_of_row, group_sizes = np.unique(key, return_inverse=True,
                                                  return_counts=True)
    order = np.argsort(group_of_row, kind="stable")
    stamps = timestamps_ns(np.where(usable, unix, 0.0))
    integers = [np.asarray(columns[name], dtype=np.int64) for name in SAMPLE_INTEGER_FIELDS]
    float_names = list(SAMPLE_FLOAT_FIELDS.values())
    integer_part = ",".join(f"{name}=%di" for name in SAMPLE_INTEGER_FIELDS.values())
    lines: list[str] = []
    start = 0
    for group, size in zip(groups.tolist(), group_sizes.tolist(), strict=True):
        rows = order[start:start + size]
        start += size
        if group < 0:
            continue
        mask = group & ((1 << len(floats)) - 1)
        combination = group >> len(floats)
        job_id = int(jobs[combination // len(step_names)])
        step = str(step_names[combination % len(step_names)])
        tags = job_tags[job_id]
        if step:
            tags += ",step_type=" + escape_tag(step)
        wanted = [index for index in range(len(floats)) if mask >> index & 1]
        field_part = ",".join([*(f"{float_names[index]}=%r" for index in wanted),
                               integer_part])
        template = f"{SAMPLES},{tags.replace('%', '%%')} {field_part} %d"
        values = [floats[index][rows].tolist() for index in wanted]
        values += [column[rows].tolist() for column in integers]
        values.append(stamps[rows].tolist())
        lines.extend(map(template.__mod__, zip(*values, strict=True)))
    return EncodedSamples(lines, int(count - usable.sum()))


def _field(name: str, value: float | int | bool | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return f"{name}={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{name}={value}i"
    if isinstance(value, float):
        return f"{name}={value!r}" if math.isfinite(value) else None
    return f"{name}={escape_string_field(value, MAX_DATA_CHARS)}"


def point(measurement: str, tags: str, fields: Iterable[tuple[str, float | int | bool | str
                                                              | None]],
          time_ns: int) -> str | None:
    """One line; fields that are None, NaN or infinite are left out (None if none is left)."""
    written = [text for text in (_field(name, value) for name, value in fields)
               if text is not None]
    if not written:
        return None
    head = f"{measurement},{tags}" if tags else measurement
    return f"{head} {','.join(written)} {time_ns}"


def encode_event(stored: StoredEvent, tags: str) -> str | None:
    """The ``events`` line of a stored event (None without a usable time). Events of one
    job and kind at the same microsecond stay apart: the store id's last three digits are
    added as nanoseconds."""
    event = stored.event
    if not abs(event.unix_time_s) < MAX_ABS_UNIX_TIME_S:
        return None
    data = json.dumps(event.data, sort_keys=True, default=str) if event.data else None
    fields: list[tuple[str, float | int | bool | str | None]] = [
        ("message", event.message[:MAX_MESSAGE_CHARS]), ("cycle", int(event.cycle)),
        ("step", int(event.step_count)),
        ("step_id", None if event.step_id is None else int(event.step_id)),
        ("test_time_s", float(event.test_time_s)),
    ]
    if data is not None:
        fields.append(("data", data))
    kind = ",kind=" + escape_tag(str(event.kind.value))
    return point(EVENTS, tags + kind, fields,
                 timestamp_ns(event.unix_time_s) + stored.id % 1000)


def encode_cycle(summary: CycleSummary, tags: str, end_unix_time_s: float) -> str | None:
    """The ``cycles`` line of a cycle summary, at the unix time the cycle ended."""
    if not abs(end_unix_time_s) < MAX_ABS_UNIX_TIME_S:
        return None
    fields: list[tuple[str, float | int | bool | str | None]] = [("cycle", int(summary.cycle))]
    for attribute, name in CYCLE_FLOAT_FIELDS.items():
        value = getattr(summary, attribute)
        fields.append((name, None if value is None else float(value)))
    return point(CYCLES, tags, fields, timestamp_ns(end_unix_time_s))

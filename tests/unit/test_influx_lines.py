"""Line protocol of samples, events and cycle summaries, read back with an independent
parser: every sample gives one line with its tags, its finite floats bit for bit, its
integers with ``i``, no NaN field, and a timestamp that depends on the sample alone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cellrig.daemon.influx_lines import (
    SAMPLE_COLUMNS,
    SAMPLE_FLOAT_FIELDS,
    SAMPLE_INTEGER_FIELDS,
    JobTags,
    encode_cycle,
    encode_event,
    encode_samples,
    escape_tag,
    timestamp_ns,
    timestamps_ns,
)
from cellrig.daemon.store_records import SampleColumns, StoredEvent
from cellrig.protocols.engine.output import CycleSummary, Event, EventKind


def parse(line: str) -> tuple[str, dict[str, str], dict[str, Any], int]:
    """(measurement, tags, fields, timestamp) of one line; strings unquoted, ``i`` integers
    as int, floats as float."""
    position = 0
    parts: list[str] = []
    current = ""
    # the series key: up to the first unescaped space
    while True:
        char = line[position]
        if char == "\\":
            current += line[position:position + 2]
            position += 2
            continue
        position += 1
        if char == " ":
            parts.append(current)
            break
        if char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    measurement = parts[0]
    tags: dict[str, str] = {}
    for part in parts[1:]:
        key, _, value = _split_unescaped(part)
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, Any] = {}
    while True:
        equals = line.index("=", position)
        name = line[position:equals]
        position = equals + 1
        if line[position] == '"':
            end = position + 1
            text = ""
            while line[end] != '"':
                if line[end] == "\\":
                    text += line[end + 1]
                    end += 2
                else:
                    text += line[end]
                    end += 1
            fields[name] = text
            position = end + 1
        else:
            end = position
            while line[end] not in ", ":
                end += 1
            raw = line[position:end]
            fields[name] = int(raw[:-1]) if raw.endswith("i") else float(raw)
            position = end
        separator = line[position]
        position += 1
        if separator == " ":
            return measurement, tags, fields, int(line[position:])


def _split_unescaped(text: str) -> tuple[str, str, str]:
    index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == "=":
            return text[:index], "=", text[index + 1:]
        index += 1
    raise AssertionError(f"no '=' in {text!r}")


def _unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def chunk(values: dict[str, list[Any]], job_ids: list[int]) -> SampleColumns:
    count = len(job_ids)
    columns: dict[str, np.ndarray] = {}
    for name in SAMPLE_COLUMNS:
        if name in values:
            data = values[name]
        elif name in SAMPLE_INTEGER_FIELDS:
            data = [1] * count
        elif name == "Step Type":
            data = ["REST"] * count
        else:
            data = [float(index) for index in range(count)]
        dtype = object if name == "Step Type" else (
            np.int64 if name in SAMPLE_INTEGER_FIELDS else np.float64)
        columns[name] = np.array(data, dtype=dtype)
    return SampleColumns(np.arange(1, count + 1, dtype=np.int64),
                         np.array(job_ids, dtype=np.int64), columns)


TAGS = {1: JobTags("lab 3", "A1", "cell,1=x", 1).text(), 2: JobTags("lab 3", "B2", None, 2).text()}

finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                          st.floats(min_value=-1e7, max_value=1e7))


@given(st.lists(st.tuples(finite_or_not, finite_or_not, finite_or_not,
                          st.integers(-2**62, 2**62), st.sampled_from([1, 2]),
                          st.sampled_from(["CC_CHG", "CV_DCH", "REST", None, "odd type"])),
                min_size=1, max_size=40))
def test_samples_read_back_as_stored(rows: list[tuple[Any, ...]]) -> None:
    count = len(rows)
    unix = [1.7e9 + index * 0.25 for index in range(count)]
    values = {
        "Unix Time / s": unix,
        "Voltage / V": [row[0] for row in rows],
        "Ambient Temperature / degC": [row[1] for row in rows],
        "Applied Pressure / Pa": [row[2] for row in rows],
        "Cycle Count / 1": [row[3] for row in rows],
        "Step Type": [row[5] for row in rows],
    }
    encoded = encode_samples(chunk(values, [row[4] for row in rows]), TAGS)
    assert encoded.skipped == 0 and len(encoded.lines) == count
    parsed = sorted((parse(line) for line in encoded.lines), key=lambda item: item[3])
    for index, (measurement, tags, fields, time_ns) in enumerate(parsed):
        voltage, temperature, pressure, cycle, job, step = rows[index]
        assert measurement == "samples"
        assert time_ns == round(unix[index] * 1e6) * 1000
        expected_tags = {"station": "lab 3", "channel": "A1" if job == 1 else "B2",
                         "job": str(job)}
        if job == 1:
            expected_tags["cell"] = "cell,1=x"
        if step:
            expected_tags["step_type"] = step
        assert tags == expected_tags
        for name, value in (("voltage_v", voltage), ("temperature_c", temperature),
                            ("pressure_pa", pressure)):
            if math.isfinite(value):
                assert fields[name] == value
            else:
                assert name not in fields
        assert fields["cycle"] == cycle and isinstance(fields["cycle"], int)
        assert fields["test_time_s"] == float(index)


def test_samples_without_a_time_are_skipped_and_counted() -> None:
    times = [1.7e9, math.nan, 1.7e9 + 1, 1e300, -math.inf, -1e10]
    encoded = encode_samples(chunk({"Unix Time / s": times}, [1] * 6), TAGS)
    assert encoded.skipped == 4 and len(encoded.lines) == 2


def test_every_sample_field_is_written() -> None:
    line = encode_samples(chunk({"Unix Time / s": [1.7e9]}, [2]), TAGS).lines[0]
    _, _, fields, _ = parse(line)
    assert set(fields) == {*SAMPLE_FLOAT_FIELDS.values(), *SAMPLE_INTEGER_FIELDS.values()}


def test_timestamps_depend_on_the_time_alone() -> None:
    times = np.array([1.7e9 + 0.1234567, 1796642534.7451239, 0.0000005, 0.0000015])
    assert timestamps_ns(times).tolist() == [timestamp_ns(value) for value in times.tolist()]
    assert timestamps_ns(times)[0] == 1_700_000_000_123_457_000


def test_tag_escaping() -> None:
    assert escape_tag("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_tag("line\nbreak\\") == "line break/"
    assert JobTags("s", "A1", "", 3).text() == "station=s,channel=A1,job=3"


def test_event_line() -> None:
    event = Event(EventKind.STEP_END, 12.5, 1.7e9, 2, 7, None, 'said "hi"\nthen \\',
                  {"reason": "until"})
    line = encode_event(StoredEvent(4321, 1, event), TAGS[2])
    assert line is not None
    measurement, tags, fields, time_ns = parse(line)
    assert measurement == "events" and tags["kind"] == "step end"
    assert fields == {"message": 'said "hi" then \\', "cycle": 2, "step": 7,
                      "test_time_s": 12.5, "data": '{"reason": "until"}'}
    assert time_ns == 1_700_000_000_000_000_321  # the id's last digits keep events apart
    late = Event(EventKind.FAULT, 1.0, math.nan, 1, 1, 1)
    assert encode_event(StoredEvent(1, 1, late), TAGS[2]) is None


def test_cycle_line() -> None:
    summary = CycleSummary(3, 100.0, 7300.0, 0.064, 0.0634, 0.24, 0.23, 0.9906, None, 3.85,
                           3.76, 0.9, 0.1, None, None, 1.9e6, 2.1e6, 0.97, None)
    line = encode_cycle(summary, TAGS[2], 1.7e9 + 7200.0)
    assert line is not None
    measurement, tags, fields, time_ns = parse(line)
    assert measurement == "cycles" and tags == {"station": "lab 3", "channel": "B2",
                                                "job": "2"}
    assert fields["cycle"] == 3 and fields["discharge_capacity_ah"] == 0.0634
    assert fields["duration_s"] == 7200.0 and fields["capacity_retention"] == 0.97
    assert "energy_efficiency" not in fields and "reference_capacity_retention" not in fields
    assert time_ns == timestamp_ns(1.7e9 + 7200.0)

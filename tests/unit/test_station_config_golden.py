"""Broken station configurations and the exact diagnostics a person sees for them.

Each ``golden/station_NAME.toml`` has ``golden/station_NAME.txt`` next to it: every
diagnostic of the file, errors first, rendered as the CLI prints them, separated by blank
lines. ``CELLRIG_UPDATE_GOLDEN=1`` writes the ``.txt`` files from the current output (then
review the diff); otherwise the output must match them exactly.

Beyond the text, every error must point at the token it is about: ``LOCATIONS`` lists, per
file, the line, column and the text found there of each error, in reported order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import GOLDEN_DIR

from cellrig.daemon.station_config import load_station_text
from cellrig.errors import ConfigError, Diagnostic, Severity

UPDATE = os.environ.get("CELLRIG_UPDATE_GOLDEN") == "1"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("station_*.toml"))

LOCATIONS: dict[str, list[tuple[int, int, str]]] = {
    "station_syntax.toml": [(3, 32, "")],
    "station_empty.toml": [(1, 1, "# a station"), (1, 1, "# a station"), (1, 1, "# a station")],
    "station_unknown_keys.toml": [
        (19, 2, "sink.influxdb]"), (4, 1, "operator ="), (8, 1, "adress ="),
        (9, 29, "nplcs = 1"), (13, 1, "chmaber ="), (17, 1, "curent ="),
    ],
    "station_bad_values.toml": [
        (2, 8, '"assb lab 3"'), (7, 11, '"192.0.2.11:5025"'), (12, 33, '["150 degC"'),
        (12, 73, '"2 V"'), (17, 47, '"AB"'), (22, 24, '"fast"'), (32, 13, '"93.28 cm"'),
        (34, 11, '"150 kPa"'), (38, 12, '"2.0 A"'), (39, 11, '"0.5C"'),
        (40, 15, '["80 degC"'), (41, 51, '["0.2 MPa"'),
    ],
    "station_references.toml": [
        (25, 11, '"smu-a1"'), (30, 1, "regulator ="), (40, 16, '"smu-a1"'), (41, 7, '"eiss"'),
        (45, 9, '"gauge-a1"'), (54, 16, '{ instrument = "mes", channel = 3 }'),
        (26, 7, '"mes"'),
    ],
    "station_missing.toml": [
        (1, 2, "station]"), (4, 14, "smu-a1]"), (11, 14, "chamber]"), (19, 11, "A1]"),
        (19, 11, "A1]"), (25, 14, "jig]"), (25, 14, "jig]"), (25, 14, "jig]"),
        (28, 14, "limits]"), (28, 14, "limits]"),
    ],
    "station_keithley_limits.toml": [(13, 11, '["-5 V", "300 V"]'), (14, 11, '{ max = "2 A"')],
    "station_sinks.toml": [(13, 7, '"localhost:8086"'), (12, 8, "influxdb]"),
                           (20, 1, "password ="), (19, 16, '"cellrig/#"')],
    "station_many_errors.toml": [
        (6, 10, '"keithly2450"'), (12, 59, "baud = 9600"), (21, 16, '"pneumatc"'),
        (28, 1, "humidity ="), (25, 48, '["1.9 V"'), (26, 11, '"-0.5 A"'),
        (27, 12, '["0.5 MPa"]'), (22, 20, '"0.62 A"'),
    ],
}


def diagnostics(path: Path) -> list[Diagnostic]:
    """Every diagnostic of a broken station file, errors first."""
    try:
        load_station_text(path.read_text(encoding="utf-8"), path.name)
    except ConfigError as error:
        return [*error.diagnostics, *error.warnings]
    pytest.fail(f"{path.name} should not be a valid station configuration")


def token_at(text: str, line: int, column: int) -> str:
    """The text from a 1-based line and column to the end of that line."""
    return text.splitlines()[line - 1][column - 1:]


def test_every_golden_file_has_its_locations() -> None:
    assert len(GOLDEN_FILES) >= 8
    assert {path.name for path in GOLDEN_FILES} == set(LOCATIONS)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden_output(path: Path) -> None:
    expected_file = path.with_suffix(".txt")
    actual = "\n\n".join(d.render() for d in diagnostics(path)) + "\n"
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), (
        f"{expected_file.name} is missing: run with CELLRIG_UPDATE_GOLDEN=1 and review it")
    assert actual == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_every_error_points_at_its_token(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    errors = [d for d in diagnostics(path) if d.severity is Severity.ERROR]
    for error in errors:
        assert error.location.file == path.name
        assert error.render().startswith(f"{path.name}:{error.location.line}:"
                                         f"{error.location.column}: error: ")
    expected = LOCATIONS[path.name]
    assert [(e.location.line, e.location.column) for e in errors] == [
        (line, column) for line, column, _ in expected]
    for line, column, token in expected:
        assert token_at(text, line, column).startswith(token), (line, column, token)


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    errors = diagnostics(GOLDEN_DIR / "station_many_errors.toml")
    errors = [d for d in errors if d.severity is Severity.ERROR]
    assert len(errors) >= 8
    assert len({(e.location.line, e.location.column) for e in errors}) == len(errors)
    assert {e.location.line for e in errors} >= {6, 12, 21, 22, 25, 26, 27, 28}


def test_no_golden_output_carries_trailing_spaces() -> None:
    for path in GOLDEN_FILES:
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        assert all(line == line.rstrip() for line in text.splitlines()), path.name

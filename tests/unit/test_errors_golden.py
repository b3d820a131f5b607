"""Broken protocol files and the exact diagnostics a person sees for them.

Each ``golden/NAME.yaml`` has ``golden/NAME.txt`` next to it: every diagnostic of the file,
errors first, rendered as the CLI prints them (``Diagnostic.render()``), separated by blank
lines. Run with ``CELLRIG_UPDATE_GOLDEN=1`` to write the ``.txt`` files from the current
output (then review the diff); otherwise the output must match them exactly.

Beyond the text, every error must name the file, a line and a column, and the line and column
must point at the token the error is about: ``LOCATIONS`` lists them per file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import GOLDEN_DIR, findings, token_at

from cellrig.errors import Severity

UPDATE = os.environ.get("CELLRIG_UPDATE_GOLDEN") == "1"

#: For each file: (line, column, the text found there) of each error, in reported order.
LOCATIONS: dict[str, list[tuple[int, int, str]]] = {
    "yaml_syntax.yaml": [(5, 23, ": 4.25 V")],
    "missing_version.yaml": [(1, 1, "name: no-version")],
    "unsupported_version.yaml": [(1, 10, "2")],
    "unknown_top_key.yaml": [(4, 1, "limts:")],
    "misspelt_kind.yaml": [(5, 5, "chrage: 0.1C"), (7, 5, "Dischrage at")],
    "never_ends.yaml": [(5, 19, ""), (6, 5, "discharge: 0.1C")],
    "wrong_dimension.yaml": [(5, 13, "2.4 A"), (7, 24, "60 V"), (8, 11, "100 mA"),
                             (10, 11, "10 V"), (11, 24, "2 V")],
    "unknown_parameter.yaml": [(6, 26, "${uper}")],
    "crate_no_capacity.yaml": [(5, 5, "Charge at 0.1C"), (6, 16, "C/5")],
    "bad_loop_condition.yaml": [(6, 12, "discharge capacty"), (11, 12, "discharge capacity below")],
    "duplicate_key.yaml": [(5, 44, "current: 0.2C")],
    "duplicate_tag.yaml": [(8, 10, "check-up")],
    "unknown_then.yaml": [(10, 15, "checkup")],
    "charge_at_voltage.yaml": [(5, 15, "4.2 V until"), (6, 25, "-0.5C")],
    "bad_cell.yaml": [(3, 38, "capcity: 634 mAh"), (3, 7, "{areal_capacity"),
                      (5, 5, "Charge at 0.1C")],
    "or_conditions.yaml": [(5, 38, "2 parsecs"), (6, 36, "3 furlongs"), (7, 16, "10 parsecs")],
    "empty_values.yaml": [(5, 12, ""), (7, 31, ", amplitude")],
    "not_a_mapping.yaml": [(1, 1, "- Charge")],
    "yaml_tag.yaml": [(4, 5, "!shell")],
    "empty_file.yaml": [(1, 1, "# a protocol")],
    "many_errors.yaml": [
        (7, 3, "curent: 2C"),
        (6, 12, "[4.35 V, 2.4 V]"),
        (10, 5, "Chrage at"),
        (12, 11, "10 parsecs"),
        (13, 29, "${lowr}"),
        (16, 18, "2.5 A"),
        (20, 10, "{start: 1 MHz, stop: 10 mHz}"),
        (18, 15, "chekup"),
    ],
}

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.yaml"))


def render(path: Path) -> str:
    """Every diagnostic of a protocol file, as the person sees them."""
    text = path.read_text(encoding="utf-8")
    found = findings(text, filename=path.name)
    return "\n\n".join(diagnostic.render() for diagnostic in found) + "\n"


def test_there_are_enough_golden_files() -> None:
    assert len(GOLDEN_FILES) >= 12
    assert {path.name for path in GOLDEN_FILES} == set(LOCATIONS)


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden_output(path: Path) -> None:
    expected_file = path.with_suffix(".txt")
    actual = render(path)
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), (
        f"{expected_file.name} is missing: run with CELLRIG_UPDATE_GOLDEN=1 and review it")
    assert actual == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_every_error_points_at_its_token(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    errors = [d for d in findings(source, filename=path.name) if d.severity is Severity.ERROR]
    assert errors, "a golden file must be broken"
    for error in errors:
        assert error.location.file == path.name
        assert error.location.line >= 1
        assert error.location.column >= 1
        assert error.render().startswith(f"{path.name}:{error.location.line}:"
                                         f"{error.location.column}: error: ")
    located = [(e.location.line, e.location.column) for e in errors]
    expected = LOCATIONS[path.name]
    assert located == [(line, column) for line, column, _token in expected]
    lines = source.splitlines() or [""]
    for line, column, token in expected:
        if line <= len(lines):
            assert token_at(source or "\n", line, column).startswith(token), (line, column)


def test_multiple_errors_are_all_reported_at_once() -> None:
    source = (GOLDEN_DIR / "many_errors.yaml").read_text(encoding="utf-8")
    errors = [d for d in findings(source) if d.severity is Severity.ERROR]
    assert len(errors) == len(LOCATIONS["many_errors.yaml"]) >= 8
    assert len({(e.location.line, e.location.column) for e in errors}) == len(errors)

"""The JSON Schema of protocol files (``cellrig schema``): valid, complete, and in step with
the checker: what ``cellrig check`` accepts the schema accepts, and the mistakes an editor
should flag while a researcher types are rejected by both."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import errors_of, program_of

from cellrig.daemon.cli import main
from cellrig.protocols.builder import COMMON_KEYS, FLOW_KINDS, RECORD_KEYS, STEP_KINDS
from cellrig.protocols.cells import CELL_KEYS
from cellrig.protocols.conditions import parse_condition, parse_cycle_condition
from cellrig.protocols.document import TOP_KEYS
from cellrig.protocols.library import library_files
from cellrig.protocols.limits import LIMIT_KEYS
from cellrig.protocols.quantities import Kind, parse_charge, parse_current, parse_quantity
from cellrig.protocols.schema import protocol_schema
from cellrig.protocols.stepkinds_env import EIS_KEYS, WAIT_KEYS
from cellrig.protocols.strings import STRING_EXAMPLES, parse_step_string
from cellrig.protocols.until import CONDITION_KEYS
from cellrig.protocols.yamlsource import SourceText, YMap, YNode, YScalar, load_yaml

#: The example of the design notes (DESIGN.md, "The protocol language").
DESIGN_EXAMPLE = """\
cellrig: 1
name: formation-and-cycling
cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}   # or capacity: 634 mAh
parameters: {upper: 4.25 V, lower: 2.5 V, cycles: 1000}  # overridable at submission
limits:                                                    # breach = abort + safe state
  voltage: [2.4 V, 4.35 V]
  current: 2.5 C
  temperature: [-20 degC, 70 degC]
  pressure: [0.5 MPa, 6 MPa]
record: {every: 10 s, voltage_change: 5 mV}
steps:
  - set: {temperature: 60 degC, pressure: 2 MPa}
    wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 30 min}
  - eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}
  - Charge at 0.1C until ${upper}
  - Hold at ${upper} until 0.05C
  - Rest for 10 minutes
  - Discharge at 0.2C until ${lower}
  - repeat: ${cycles}
    until: discharge capacity < 80 % of first
    steps:
      - Charge at 0.5C until ${upper}
      - Discharge at 0.5C until ${lower}
"""

#: Every form of the language at least once; valid for ``cellrig check`` as well.
EVERY_FORM = """\
cellrig: 1
name: every-form
description: every key and step form of the language
metadata: {project: schema test, tags: [a, b], nested: {deep: 1}}
cell:
  id: B17-03
  capacity: 634 mAh
  areal_capacity: 6.8 mAh/cm^2
  area: 93.28 cm^2
  mass: 2.95 g
  specific_capacity: 215 mAh/g
  chemistry: NMC | LPSCl | Li
  format: pouch
  reference_offset: -0.62 V
  volume: 0.66 cm^3
  fabrication: {pressed: 490 MPa, steps: [mix, cast]}
  notes: spare cell
parameters:
  upper: 4.25 V
  lower: {default: 2.5 V, description: discharge cut-off}
  cycles: 3
  rates: [0.2C, 1C]
  settled: 1 mV/h
  relax: {default: 1 h}
limits:
  voltage: {range: [2.4 V, 4.35 V], warn: [2.45 V, 4.3 V], delay: 2 s}
  current: {max: 2.5C, warn: 2C, delay: 1 s}
  temperature: [-20 degC, 70 degC]
  pressure: {range: [0.5 MPa, 6 MPa]}
  charge_per_step: 150 %
record: {every: 10 s, voltage_change: 5 mV, current_change: 10 mA}
steps:
  - set: {temperature: 60 degC, pressure: 2 MPa}
    wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 30 min, timeout: 6 h}
    name: warm up
  - eis: {mode: galvanostatic, start: 10 kHz, stop: 100 mHz, amplitude: 1 mA, dc: ocv}
  - eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10, dc: 3.7 V}
  - Charge at 0.1C until ${upper}
  - Hold at ${upper} until 0.05C
  - Rest for 10 minutes
  - Discharge at C/3 for 2 hours or until ${lower} (10 seconds period)
  - step: Charge at 1.36 mA/cm^2 until 4.2 V or 300 mAh
    tag: first-charge
    record: {every: 1 s}
  - charge: {power: 1.5 W}
    until: {voltage: 4.2 V, time: 2 h}
  - charge: 100 mA
    for: 30 min
  - discharge: {resistance: 10 Ohm}
    until: [{voltage: 2.0 V, then: check-up}, {voltage: 2.5 V}, 10 h]
  - discharge: 2 W
    until: 2.5 V or 1 Wh
  - hold: {voltage: 4.2 V, current_limit: 0.5C}
    until: {current: 0.05C, time: 3 h}
  - cccv: {current: 0.5C, voltage: 4.2 V, cutoff: C/20}
  - cccv: {current: 0.5C, voltage: 3 V, direction: discharge}
    until: 5 h
  - rest: ${relax}
    until: {dvdt: "${settled}"}
  - rest:
    until: '> 59.5 degC'
  - rest: 1 h
    until: {temperature: '< 61 degC', pressure: '> 1.8 MPa', charge: 50 %}
  - pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 3}
    until: 2.5 V
  - pulse: {charge: C/20, duration: 10 min, rest: 1 h}
    until: ${upper}
  - repeat: ${cycles}
    name: cycling
    until: [discharge capacity < 80 % of first, coulombic efficiency < 99 %]
    steps:
      - Charge at 0.5C until ${upper}
      - Discharge at 0.5C until ${lower}
  - repeat: 2
    steps:
      - Rest for 1 min
  - for_each: {rate: "${rates}"}
    name: rates
    steps:
      - Discharge at ${rate} until ${lower}
      - Charge at 0.1C until ${upper}
  - for_each: {temperature: [25 degC, 45 degC]}
    steps:
      - set: {temperature: "${temperature}"}
  - tag: check-up
    stop: done
"""


def plain(node: YNode) -> Any:
    """A located YAML node as plain JSON-like data, typed as cellrig reads it (YAML 1.2)."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YMap):
        return {str(key.value): plain(value) for key, value in node.entries}
    return [plain(item) for item in node.items]


def data_of(text: str) -> Any:
    node = load_yaml(SourceText("test.yaml", text), [])
    assert node is not None
    return plain(node)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return protocol_schema()


@pytest.fixture(scope="module")
def jsonschema() -> Any:
    """The jsonschema package: a declared test dependency, so its absence fails in CI and
    skips, with the reason, elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        import jsonschema

        return jsonschema
    return pytest.importorskip("jsonschema", reason="jsonschema is not installed")


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any], jsonschema: Any) -> Any:
    return jsonschema.Draft202012Validator(schema)


def problems(validator: Any, text: str) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}"
            for e in validator.iter_errors(data_of(text))]


def test_the_schema_is_valid_draft_2020_12(schema: dict[str, Any], jsonschema: Any) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_library_is_there() -> None:
    assert len(library_files()) >= 5


@pytest.mark.parametrize("entry", library_files(), ids=lambda entry: entry.name)
def test_every_library_protocol_validates(validator: Any, entry: Any) -> None:
    assert problems(validator, entry.read_text(encoding="utf-8")) == []


def test_the_design_example_validates(validator: Any) -> None:
    program_of(DESIGN_EXAMPLE)
    assert problems(validator, DESIGN_EXAMPLE) == []


def test_every_form_validates_and_checks(validator: Any) -> None:
    program_of(EVERY_FORM)  # the checker accepts it, so the schema must too
    assert problems(validator, EVERY_FORM) == []


@pytest.mark.parametrize("text", STRING_EXAMPLES)
def test_the_checker_s_string_examples_validate(validator: Any, text: str) -> None:
    assert problems(validator, f"cellrig: 1\ncell: {{capacity: 1 Ah}}\nsteps:\n  - {text}") == []


HEADER = "cellrig: 1\ncell: {capacity: 1 Ah}\n"

MISTAKES = {
    "unknown top-level key": HEADER + "step:\n  - Rest for 1 h\n",
    "misspelt top-level key": HEADER + "limit: {current: 1C}\nsteps:\n  - Rest for 1 h\n",
    "wrong format version": "cellrig: 2\nsteps:\n  - Rest for 1 h\n",
    "no version": "steps:\n  - Rest for 1 h\n",
    "misspelt step kind": HEADER + "steps:\n  - chrage: 0.1C\n    until: 4.2 V\n",
    "two kinds in a step": HEADER + "steps:\n  - charge: 0.1C\n    rest: 1 h\n    until: 4 V\n",
    "misspelt verb": HEADER + "steps:\n  - Chrage at 0.1C until 4.25 V\n",
    "misspelt keyword": HEADER + "steps:\n  - Charge at 0.1C untl 4.25 V\n",
    "step that never ends": HEADER + "steps:\n  - Charge at 0.1C\n",
    "charge without until": HEADER + "steps:\n  - charge: 0.1C\n",
    "unknown common key": HEADER + "steps:\n  - charge: 0.1C\n    untill: 4.2 V\n",
    "number without unit": HEADER + "steps:\n  - hold: 4.25\n    until: 0.05C\n",
    "wrong kind of unit": HEADER + "steps:\n  - hold: 4.25 A\n    until: 0.05C\n",
    "unknown cccv key": HEADER + "steps:\n  - cccv: {current: 1C, voltage: 4.2 V, cutof: C/20}\n",
    "misspelt condition key": HEADER + "steps:\n  - charge: 1C\n    until: {voltag: 4.2 V}\n",
    "temperature without < or >": HEADER + "steps:\n  - rest: 1 h\n    until: 59 degC\n",
    "limit window of one value": HEADER + "limits: {voltage: 4.35 V}\nsteps:\n  - Rest for 1 h\n",
    "unknown limit": HEADER + "limits: {power: 5 W}\nsteps:\n  - Rest for 1 h\n",
    "unknown cell key": "cellrig: 1\ncell: {capcity: 1 Ah}\nsteps:\n  - Rest for 1 h\n",
    "unknown record key": HEADER + "record: {evry: 1 s}\nsteps:\n  - Rest for 1 h\n",
    "reserved tag": HEADER + "steps:\n  - tag: next\n    rest: 1 h\n",
    "unknown set key": HEADER + "steps:\n  - set: {temprature: 25 degC}\n",
    "galvanostatic EIS with a voltage amplitude": HEADER + "steps:\n  - eis: {mode: "
    "galvanostatic, start: 1 kHz, stop: 1 Hz, amplitude: 10 mV}\n",
    "pulse with both directions": HEADER + "steps:\n  - pulse: {charge: 1C, discharge: 1C, "
    "duration: 1 s, rest: 1 s, count: 2}\n",
    "bad loop condition": HEADER + "steps:\n  - repeat: 2\n    until: capacity < 80 %\n"
    "    steps:\n      - Rest for 1 h\n",
    "repeat without steps": HEADER + "steps:\n  - repeat: 2\n",
    "empty steps": HEADER + "steps: []\n",
    "bad parameter name": HEADER + "parameters: {2nd: 1 V}\nsteps:\n  - Rest for 1 h\n",
    "parameter default referring to another": HEADER + "parameters: {a: 1 V, b: '${a}'}\n"
    "steps:\n  - Rest for 1 h\n",
}


@pytest.mark.parametrize("text", MISTAKES.values(), ids=MISTAKES.keys())
def test_mistakes_are_rejected_by_the_schema_and_the_checker(validator: Any, text: str) -> None:
    assert problems(validator, text), "the schema should reject this"
    assert errors_of(text), "cellrig check should reject this too"


def _mapping(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The closed mapping form of a definition (the alternative with properties)."""
    node = schema["$defs"][name]
    for alternative in [node, *node.get("anyOf", [])]:
        if "properties" in alternative:
            return alternative
    raise AssertionError(f"{name} has no mapping form")


def test_the_keys_match_the_checker(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert set(schema["properties"]) == set(TOP_KEYS)
    assert set(_mapping(schema, "cell")["properties"]) == set(CELL_KEYS)
    assert set(_mapping(schema, "limits")["properties"]) == set(LIMIT_KEYS)
    assert set(_mapping(schema, "record")["properties"]) == set(RECORD_KEYS)
    assert set(_mapping(schema, "condition_map")["properties"]) == {*CONDITION_KEYS, "then"}
    kinds = {ref["$ref"].rsplit("/step_", 1)[1] for ref in defs["step"]["anyOf"]
             if "/step_" in ref["$ref"]} - {"string"}
    assert kinds == {*STEP_KINDS, *FLOW_KINDS}
    for kind in STEP_KINDS:
        extra = {"wait"} if kind == "set" else set()
        assert set(defs[f"step_{kind}"]["properties"]) == {kind, *COMMON_KEYS, *extra}
    assert set(_mapping(schema, "step_eis")["properties"]["eis"]["anyOf"][0]["properties"]) \
        == set(EIS_KEYS)
    wait = defs["step_set"]["properties"]["wait"]
    assert set(wait["properties"]) == set(WAIT_KEYS)


def _properties(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":  # a mapping's keys, not a constraint on some of them
            yield from node.get("properties", {}).items()
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item)


def test_every_property_has_hover_help(schema: dict[str, Any]) -> None:
    for key, value in _properties(schema):
        target = value
        if "$ref" in value and "description" not in value:
            target = schema["$defs"][value["$ref"].rsplit("/", 1)[1]]
        assert isinstance(target, dict)
        assert target.get("description"), f"{key!r} has no description"
    assert schema["$defs"]["step"]["markdownDescription"]
    assert schema["$defs"]["steps"]["examples"]


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern":
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_patterns_are_portable_to_javascript(schema: dict[str, Any]) -> None:
    """The YAML language server runs the patterns as JavaScript regular expressions."""
    found = list(_patterns(schema))
    assert len(found) > 20
    for pattern in found:
        re.compile(pattern)
        assert pattern.startswith("^"), pattern[:60]
        for construct in ("(?i", "(?P", "(?#", "\\Z", "\\A", "(?<", "\\-"):
            assert construct not in pattern, f"{construct} in {pattern[:60]}"
        unescaped = re.sub(r"\\.", "", pattern)
        assert "{" not in re.sub(r"\{\d+(,\d*)?\}", "", unescaped), "lone brace"


STEP_STRINGS = {
    "Charge at 0.1C until 4.25 V": True,
    "Discharge at C/3 for 2 hours or until 2.5 V": True,
    "Charge at 200mW for 45 minutes": True,
    "Hold at 4.1 V until 50mA": True,
    "charge at 1 C until 4.1V": True,
    "Charge at 1.36 mA/cm^2 until 4.25 V or 50 %": True,
    "Rest until < 1 mV/min": True,
    "Discharge at 10 Ohm for 1 h": True,
    "Discharge at 0.5C or until 2.5 V": True,
    "Charge at 0.0634304 A until 4.25 V (10 seconds period)": True,
    "Rest for 30 m": True,
    "Charge at 0.1C": False,
    "Charge at 0.1C until 4.2 V for 2 h": False,
    "Charge 0.1C until 4.25 V": False,
    "Charge at 4.2 V until 1 A": False,
    "Rest at 1 A for 1 h": False,
    "Charge at -1 A until 4 V": False,
    "Discharge at 1 A until 2.5": False,
}


@pytest.mark.parametrize(("text", "valid"), STEP_STRINGS.items())
def test_the_step_string_pattern_agrees_with_the_parser(
    schema: dict[str, Any], text: str, valid: bool
) -> None:
    try:
        parse_step_string(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is valid
    assert (re.search(schema["$defs"]["step_string"]["pattern"], text) is not None) is valid


QUANTITIES = [
    ("voltage", "4250 mV", True), ("voltage", "4.25 volts", True), ("voltage", "4.25", False),
    ("voltage", "4.25 A", False), ("current", "C/20", True), ("current", "0.5 C", True),
    ("current", "200 uA", True), ("current", "1 mA/cm^2", True), ("current", "1 mA/cm2", False),
    ("current_absolute", "10 mA", True), ("power", "200 mW", True), ("resistance", "10 Ω", True),
    ("resistance", "10 kOhm", True), ("time", "10 min", True), ("time", "2 days", True),
    ("time", "10 m", True), ("duration", "10 m", True), ("temperature", "60 degC", True),
    ("temperature", "-10 °C", True), ("temperature", "298 K", True), ("temperature", "60 C", False),
    ("temperature_difference", "0.5 K", True), ("pressure", "2 MPa", True),
    ("pressure", "300 psi", True), ("pressure", "2 MPa/s", False), ("charge", "634 mAh", True),
    ("charge", "0.6 A*h", True), ("charge", "50 %", False), ("charge_or_share", "50 %", True),
    ("energy", "2.2 Wh", True), ("frequency", "10 mHz", True), ("voltage_rate", "1 mV/h", True),
    ("area", "93.28 cm^2", True), ("area", "93.28 cm", False), ("mass", "2.95 g", True),
    ("volume", "1 mL", True), ("areal_capacity", "6.8 mAh/cm^2", True),
    ("specific_capacity", "215 mAh/g", True),
]


def _parses(kind: str, text: str) -> bool:
    parsers = {
        "current": parse_current, "charge_or_share": parse_charge,
        "current_absolute": lambda value: parse_quantity(value, Kind.CURRENT),
        "duration": lambda value: parse_condition(value).quantity.value == "time" or 1 / 0,
    }
    parse = parsers.get(kind, lambda value: parse_quantity(value, Kind(kind.replace("_", " "))))
    try:
        parse(text)
    except (ValueError, ZeroDivisionError):
        return False
    return True


@pytest.mark.parametrize(("kind", "text", "valid"), QUANTITIES)
def test_quantity_patterns_agree_with_the_parser(
    schema: dict[str, Any], kind: str, text: str, valid: bool
) -> None:
    assert _parses(kind, text) is valid
    assert (re.search(schema["$defs"][kind]["pattern"], text) is not None) is valid
    assert re.search(schema["$defs"][kind]["pattern"], "${value}") is not None


@pytest.mark.parametrize(("text", "valid"), [
    ("discharge capacity < 80 % of first", True), ("Coulombic efficiency < 99.5 %", True),
    ("discharge_energy < 2 Wh", True), ("charge capacity < 500 mAh", True),
    ("discharge capacity < 90 % of cycle 3", True), ("capacity < 80 %", False),
    ("discharge capacity < 80 % of last", False),
])
def test_the_loop_condition_pattern_agrees_with_the_parser(
    schema: dict[str, Any], text: str, valid: bool
) -> None:
    try:
        parse_cycle_condition(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is valid
    pattern = schema["$defs"]["loop_until"]["anyOf"][0]["pattern"]
    assert (re.search(pattern, text) is not None) is valid


def test_cellrig_schema_prints_the_schema(
    capsys: pytest.CaptureFixture[str], jsonschema: Any
) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == protocol_schema()
    jsonschema.Draft202012Validator.check_schema(printed)


def test_cellrig_schema_writes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "cellrig.schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == protocol_schema()

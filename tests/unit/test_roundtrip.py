"""A resolved Program round-trips through JSON, and its sha256 is stable and sensitive."""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import cell_node, load, program_of
from test_steps import DESIGN_EXAMPLE

from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.library import library_files
from cellrig.protocols.program import PROGRAM_FORMAT, Program
from cellrig.protocols.resolve import check, resolve

EVERY_KIND = textwrap.dedent("""\
    cellrig: 1
    name: every-kind
    description: one step of every kind, and the flow blocks
    cell:
      id: AF-07
      capacity: 634 mAh
      area: 93.28 cm^2
      mass: 2.95 g
      chemistry: NMC811
      reference_offset: -5 mV
      fabrication: {coated: 2024-05-02, passes: [1, 2], pressed: {force: 2 MPa, hot: true}}
    parameters: {upper: 4.25 V, lower: 2.5 V, rates: [0.2C, 1C]}
    limits:
      voltage: {range: [2.4 V, 4.35 V], warn: [2.45 V, 4.3 V], delay: 2 s}
      current: {max: 2.5C, warn: 2C}
      temperature: [-20 degC, 70 degC]
      pressure: [0.5 MPa, 6 MPa]
      charge_per_step: 120 %
    record: {every: 10 s, voltage_change: 5 mV, current_change: 10 mA}
    steps:
      - set: {temperature: 60 degC, pressure: 2 MPa}
        wait: {within: {temperature: 0.5 K}, for: 30 min, timeout: 2 h}
      - tag: check-up
        eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, dc: 3.7 V}
      - eis: {mode: galvanostatic, start: 10 kHz, stop: 1 Hz, amplitude: C/100, dc: 0.1C}
      - step: Charge at 0.1C until ${upper} (30 seconds period)
        name: first charge
      - Hold at ${upper} until 0.05C or 5 h
      - hold: {voltage: 4.2 V, current_limit: 1C}
        until: 10 mA
      - cccv: {current: 0.5C, voltage: 4.2 V, cutoff: C/20}
      - cccv: {current: 0.5C, voltage: 2.5 V, cutoff: C/20, direction: discharge}
      - Charge at 100 mW until 4.1 V
      - Discharge at 10 Ohm for 10 min
      - rest: 10 min
        until: '< 0.1 mV/min'
        record: {every: 1 s}
      - pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 20}
        until: ${lower}
      - discharge: 1 mA/cm^2
        until:
          - {voltage: 2.0 V, then: check-up}
          - {time: 10 h, then: stop}
          - voltage: ${lower}
      - for_each: {rate: "${rates}"}
        steps:
          - Discharge at ${rate} until ${lower}
      - repeat: 100
        until: [discharge capacity < 80 % of first, coulombic efficiency < 95 %]
        steps:
          - repeat: 2
            steps:
              - Charge at 0.5C until 50 %
              - Discharge at 0.5C until 300 mAh or ${lower}
      - repeat:
        until: discharge energy < 70 % of cycle 3
        steps:
          - Charge at 1C until ${upper}
          - Discharge at 1C until ${lower}
      - stop: open the cell
""")

BUILT_IN = {"every-kind": EVERY_KIND, "design-example": DESIGN_EXAMPLE}


def _library() -> list[tuple[str, str]]:
    return [(f"library/{entry.name}", entry.read_text(encoding="utf-8"))
            for entry in library_files()]


PROTOCOLS = [*BUILT_IN.items(), *_library()]


def _program(name: str, text: str) -> Program:
    result = check(load_protocol_text(text, name))
    assert result.program is not None, "\n".join(d.render() for d in result.errors)
    return result.program


@pytest.mark.parametrize(("name", "text"), PROTOCOLS, ids=[p[0] for p in PROTOCOLS])
def test_json_round_trip(name: str, text: str) -> None:
    program = _program(name, text)
    encoded = program.to_json()
    decoded = Program.from_json(encoded)
    assert decoded == program
    assert decoded.to_json() == encoded
    assert decoded.sha256 == program.sha256


@pytest.mark.parametrize(("name", "text"), PROTOCOLS, ids=[p[0] for p in PROTOCOLS])
def test_json_is_canonical(name: str, text: str) -> None:
    encoded = _program(name, text).to_json()
    data = json.loads(encoded)
    assert data["format"] == PROGRAM_FORMAT
    assert encoded == json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize(("name", "text"), PROTOCOLS, ids=[p[0] for p in PROTOCOLS])
def test_hash_is_stable(name: str, text: str) -> None:
    first = _program(name, text)
    second = _program(name, text)
    assert first is not second
    assert first.sha256 == second.sha256
    assert len(first.sha256) == 64
    assert int(first.sha256, 16) >= 0


def test_library_is_not_empty() -> None:
    # the library protocols above are part of this suite only if the library has files
    assert _library(), "protocols/library/ has no protocol files"


def test_every_node_type_is_covered() -> None:
    encoded = _program("every-kind", EVERY_KIND).to_json()
    types = set(_types(json.loads(encoded)["steps"]))
    assert types == {"CurrentStep", "PowerStep", "ResistanceStep", "VoltageStep", "CccvStep",
                     "RestStep", "PulseStep", "EisStep", "SetStep", "StopStep", "Repeat",
                     "Sequence"}


def _types(nodes: list[dict[str, object]]) -> list[str]:
    found: list[str] = []
    for node in nodes:
        found.append(str(node["type"]))
        steps = node.get("steps")
        if isinstance(steps, list):
            found.extend(_types(steps))
    return found


def test_parameter_order_does_not_change_the_hash() -> None:
    protocol = load(DESIGN_EXAMPLE)
    one = resolve(protocol, None, {"upper": "4.3 V", "lower": "2.6 V"})
    other = resolve(protocol, None, {"lower": "2.6 V", "upper": "4.3 V"})
    assert one.sha256 == other.sha256


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("upper: 4.25 V", "upper: 4.26 V"),
        ("cycles: 1000", "cycles: 999"),
        ("Rest for 10 minutes", "Rest for 11 minutes"),
        ("Charge at 0.1C", "Charge at 0.11C"),
        ("area: 93.28 cm^2", "area: 93.29 cm^2"),
        ("amplitude: 10 mV", "amplitude: 5 mV"),
        ("80 % of first", "70 % of first"),
        ("every: 10 s", "every: 20 s"),
        ("[-20 degC, 70 degC]", "[-20 degC, 60 degC]"),
        ("name: formation-and-cycling", "name: formation-and-cycling-2"),
    ],
)
def test_hash_changes_when_a_value_changes(old: str, new: str) -> None:
    assert DESIGN_EXAMPLE.count(old) == 1
    changed = DESIGN_EXAMPLE.replace(old, new)
    before, after = program_of(DESIGN_EXAMPLE), program_of(changed)
    assert before.sha256 != after.sha256
    assert before.to_json() != after.to_json()


def test_hash_changes_with_the_cell_and_the_parameters() -> None:
    protocol = load(DESIGN_EXAMPLE)
    base = resolve(protocol).sha256
    assert resolve(protocol, cell_node("capacity: 600 mAh")).sha256 != base
    assert resolve(protocol, None, {"cycles": 500}).sha256 != base
    assert resolve(protocol, None, {"cycles": 1000}).sha256 == base


def test_the_hash_is_of_the_canonical_json() -> None:
    import hashlib

    program = program_of(EVERY_KIND)
    assert program.sha256 == hashlib.sha256(program.to_json().encode()).hexdigest()


def test_unknown_format_is_refused() -> None:
    data = json.loads(program_of(EVERY_KIND).to_json())
    data["format"] = PROGRAM_FORMAT + 1
    with pytest.raises(ValueError, match="unsupported program format"):
        Program.from_json(json.dumps(data))

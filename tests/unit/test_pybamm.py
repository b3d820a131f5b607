"""``cellrig convert --to pybamm``: resolved programs as PyBaMM experiments.

PyBaMM is not installed for the tests: its grammar is checked by ``pybamm_parse``, which
follows how PyBaMM's ``pybamm.step.string`` splits a string (" (", " until ", " for ",
" at ") and reads its values (time units, the milli prefix, A/V/W/Ohm/C), and the snippet is
run against a stand-in ``pybamm`` module that records what it is given.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROUND_CELL, leaf_steps, program_of

from cellrig.daemon.cli import main
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.library import library_files
from cellrig.protocols.program import (
    CurrentStep,
    PowerStep,
    Program,
    ResistanceStep,
    Step,
    VoltageStep,
)
from cellrig.protocols.pybamm import Conversion, format_duration, format_number, to_pybamm
from cellrig.protocols.resolve import check
from cellrig.protocols.strings import parse_step_string

_TIME_UNITS = {"second": 1, "seconds": 1, "s": 1, "sec": 1, "minute": 60, "minutes": 60,
               "m": 60, "min": 60, "hour": 3600, "hours": 3600, "h": 3600, "hr": 3600}
#: What the stand-in's Experiment returns: the operating conditions and the keywords.
Experiment = tuple[list[Any], dict[str, Any]]
_ELECTRIC = {"C": "C-rate", "A": "current", "V": "voltage", "W": "power", "Ohm": "resistance"}


def _unit(text: str) -> str:
    return text.lstrip("0123456789.-eE ")


def _pybamm_time(text: str) -> float:
    unit = _unit(text)
    assert unit in _TIME_UNITS, f"PyBaMM knows no time unit {unit!r}"
    return float(text[: -len(unit)]) * _TIME_UNITS[unit]


def _pybamm_electric(text: str) -> tuple[str, float]:
    if text[0] == "C":
        return "C-rate", 1 / float(text[2:])
    unit = _unit(text)
    value = float(text[: -len(unit)])
    if unit.startswith("m"):
        unit, value = unit[1:], value / 1000
    assert unit in _ELECTRIC, f"PyBaMM knows no unit {unit!r}"
    return _ELECTRIC[unit], value


def pybamm_parse(text: str) -> dict[str, Any]:
    """What PyBaMM's ``step.string`` makes of ``text``; fails where PyBaMM would raise."""
    assert "oC" not in text, "PyBaMM takes temperatures as a keyword only"
    found: dict[str, Any] = {"period": None, "duration": None, "termination": None}
    if "period)" in text:
        text, period_full = text.split(" (")
        period, rest = period_full.split(" period)")
        assert rest == ""
        found["period"] = _pybamm_time(period)
    if "until" in text:
        text, termination = text.split(" until ")
        text = text.replace(" or", "")
        operator = termination[0] if termination[0] in "<>" else None
        kind, value = _pybamm_electric(termination.lstrip("<> ").replace(" ", ""))
        assert kind in ("current", "voltage", "C-rate"), f"PyBaMM cannot end on a {kind}"
        found["termination"] = (operator, kind, value)
    if "for" in text:
        text, duration = text.split(" for ")
        found["duration"] = _pybamm_time(duration)
    assert found["termination"] or found["duration"], "PyBaMM needs 'for' or 'until'"
    if text.startswith("Rest"):
        assert text == "Rest"
        found["instruction"], found["kind"], found["value"] = "Rest", "current", 0.0
        return found
    instruction, value_text = text.split(" at ")
    assert instruction in ("Charge", "Discharge", "Hold"), instruction
    found["instruction"] = instruction
    found["kind"], found["value"] = _pybamm_electric(value_text)
    assert (found["kind"] == "voltage") is (instruction == "Hold")
    return found


class _Recorder(types.ModuleType):
    """A stand-in ``pybamm``: Experiment and step.string return what they were given."""

    def __init__(self) -> None:
        super().__init__("pybamm")
        self.step = types.SimpleNamespace(string=self._string)

    @staticmethod
    def _string(text: str, **keywords: Any) -> tuple[str, dict[str, Any]]:
        return text, keywords

    @staticmethod
    def Experiment(conditions: list[Any], **keywords: Any) -> tuple[list[Any], dict[str, Any]]:  # noqa: N802
        return conditions, keywords


@pytest.fixture
def run_snippet(monkeypatch: pytest.MonkeyPatch) -> Callable[[Conversion], Experiment]:
    """Run a conversion's Python against the stand-in and return the experiment's arguments."""
    monkeypatch.setitem(sys.modules, "pybamm", _Recorder())

    def run(conversion: Conversion) -> Experiment:
        namespace: dict[str, Any] = {}
        exec(compile(conversion.python, "<pybamm snippet>", "exec"), namespace)
        experiment: Experiment = namespace["experiment"]
        return experiment

    return run


def convert(text: str) -> Conversion:
    conversion = to_pybamm(program_of(text))
    for string in conversion.strings:
        pybamm_parse(string)
        parse_step_string(string)
    return conversion


def subjects(conversion: Conversion) -> list[str]:
    """What each unsupported message is about: ``step 3`` or ``loop 'label'``."""
    return [message.split(" '")[0] if message.startswith("step") else message.split(" (")[0]
            for message in conversion.unsupported]


CYCLING = ROUND_CELL + """\
cellrig: 1
record: {every: 10 s}
steps:
  - Charge at 0.1C until 4.2 V
  - Hold at 4.2 V until 0.05C
  - Rest for 10 minutes
  - Discharge at 0.5C for 2 h or until 2.5 V
  - repeat: 3
    steps:
      - cccv: {current: 1C, voltage: 4.2 V, cutoff: C/20}
      - discharge: {power: 2 W}
        until: 2.5 V
      - rest: 30 s
"""


def test_a_cycling_protocol_converts_exactly(run_snippet: Any) -> None:
    conversion = convert(CYCLING)
    assert conversion.strings == [
        "Charge at 0.1 A until 4.2 V",
        "Hold at 4.2 V until 0.05 A",
        "Rest for 10 minutes",
        "Discharge at 0.5 A for 2 hours or until 2.5 V",
        "Charge at 1 A until 4.2 V",
        "Hold at 4.2 V until 0.05 A",
        "Discharge at 2 W until 2.5 V",
        "Rest for 30 seconds",
    ]
    assert conversion.unsupported == []
    conditions, keywords = run_snippet(conversion)
    assert conditions == [*conversion.strings[:4], tuple(conversion.strings[4:])] + [
        tuple(conversion.strings[4:])] * 2
    assert keywords == {"period": "10 seconds"}
    assert "[\n    (\n" in conversion.python and "] * 3" in conversion.python
    assert conversion.python.startswith("# PyBaMM experiment for the cellrig protocol")


def test_strings_follow_pybamm_grammar_and_meaning() -> None:
    conversion = convert(CYCLING)
    parsed = [pybamm_parse(s) for s in conversion.strings]
    assert parsed[0] == {"instruction": "Charge", "kind": "current", "value": 0.1,
                         "duration": None, "period": None, "termination": (None, "voltage", 4.2)}
    assert parsed[1]["termination"] == (None, "current", 0.05)
    assert parsed[3]["duration"] == 7200 and parsed[3]["termination"] == (None, "voltage", 2.5)
    assert parsed[6]["kind"] == "power"


def _essentials(step: Step) -> tuple[Any, ...]:
    setpoint = {CurrentStep: "current_a", PowerStep: "power_w", VoltageStep: "voltage_v",
                ResistanceStep: "resistance_ohm"}.get(type(step))
    conditions = sorted((c.quantity.value, c.operator.value, c.value) for c in step.until)
    every_s = step.record.every_s if step.record is not None else None
    return (type(step), step.direction, setpoint and getattr(step, setpoint), conditions, every_s)


def _assert_same(actual: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert actual[:2] == expected[:2]
    assert (actual[2] is None) is (expected[2] is None)
    if expected[2] is not None:
        assert math.isclose(actual[2], expected[2], rel_tol=1e-9)
    assert [c[:2] for c in actual[3]] == [c[:2] for c in expected[3]]
    for got, want in zip(actual[3], expected[3], strict=True):
        assert math.isclose(got[2], want[2], rel_tol=1e-9)
    assert actual[4] == expected[4]


SIMPLE_STEPS = """\
cellrig: 1
cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}
record: {every: 10 s}
steps:
  - Charge at 0.1C until 4.25 V
  - Hold at 4.25 V until 0.05C
  - rest: 10 min
  - Discharge at 1.36 mA/cm^2 for 2 h or until 2.5 V
  - discharge: 0.2C
    until: {voltage: 3 V, time: 90 min}
  - charge: {power: 1.5 W}
    for: 1 h
  - discharge: {resistance: 10 Ohm}
    until: 2.5 V
  - rest: 2 h
    until: '> 3.6 V'
  - Discharge at 5 uA for 1.5 s (1 second period)
  - hold: 3.7 V
    until: '< 0.01C'
"""


def test_strings_round_trip_through_cellrig_s_parser() -> None:
    """Each string, read back by cellrig for the same cell, gives the step it came from."""
    program = program_of(SIMPLE_STEPS)
    conversion = to_pybamm(program)
    assert conversion.unsupported == []
    listing = "\n".join(f"  - {s}" for s in conversion.strings)
    cell = "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}\n"
    again = program_of(f"cellrig: 1\n{cell}record: {{every: 10 s}}\nsteps:\n{listing}\n")
    original, read_back = leaf_steps(program.steps), leaf_steps(again.steps)
    assert len(original) == len(read_back) == len(conversion.strings)
    for before, after in zip(original, read_back, strict=True):
        _assert_same(_essentials(after), _essentials(before))
    assert conversion.strings[7] == "Rest for 2 hours or until > 3.6 V"
    assert conversion.strings[8] == "Discharge at 0.000005 A for 1.5 seconds (1 second period)"
    assert conversion.strings[9] == "Hold at 3.7 V until 0.00634304 A"
    assert pybamm_parse(conversion.strings[7])["termination"] == (">", "voltage", 3.6)


def test_for_each_is_unrolled_and_nested_repeats_are_starred(run_snippet: Any) -> None:
    conversion = convert(ROUND_CELL + """\
cellrig: 1
steps:
  - for_each: {rate: [0.5C, 1C]}
    steps:
      - Discharge at ${rate} until 2.5 V
  - repeat: 2
    steps:
      - Rest for 1 h
      - repeat: 3
        steps:
          - Discharge at 1C for 1 min
          - Rest for 1 min
""")
    assert conversion.strings == [
        "Discharge at 0.5 A until 2.5 V", "Discharge at 1 A until 2.5 V", "Rest for 1 hour",
        "Discharge at 1 A for 1 minute", "Rest for 1 minute",
    ]
    conditions, _ = run_snippet(conversion)
    pulse = ("Discharge at 1 A for 1 minute", "Rest for 1 minute")
    cycle = ("Rest for 1 hour", *pulse * 3)
    assert conditions == ["Discharge at 0.5 A until 2.5 V", "Discharge at 1 A until 2.5 V",
                          cycle, cycle]
    assert conversion.unsupported == []


def test_a_counted_pulse_train_is_unrolled_into_cycles(run_snippet: Any) -> None:
    conversion = convert(ROUND_CELL + """\
cellrig: 1
steps:
  - pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 20}
""")
    assert conversion.strings == ["Discharge at 0.05 A for 10 minutes", "Rest for 1 hour"]
    assert conversion.unsupported == []
    conditions, _ = run_snippet(conversion)
    assert conditions == [tuple(conversion.strings)] * 20


def test_a_set_temperature_goes_to_the_following_steps(run_snippet: Any) -> None:
    conversion = convert(ROUND_CELL + """\
cellrig: 1
steps:
  - Charge at 1C until 4.2 V
  - set: {temperature: 60 degC}
    wait: {within: {temperature: 0.5 K}, for: 30 min}
  - Discharge at 1C until 2.5 V
  - set: {temperature: -10 degC}
  - Rest for 1 h
""")
    assert conversion.unsupported == []
    assert conversion.strings == ["Charge at 1 A until 4.2 V", "Rest for 30 minutes",
                                  "Discharge at 1 A until 2.5 V", "Rest for 1 hour"]
    conditions, _ = run_snippet(conversion)
    assert conditions == [
        "Charge at 1 A until 4.2 V",
        ("Rest for 30 minutes", {"temperature": "60oC"}),
        ("Discharge at 1 A until 2.5 V", {"temperature": "60oC"}),
        ("Rest for 1 hour", {"temperature": "-10oC"}),
    ]
    assert "temperature=" in conversion.python.split("import pybamm")[0]


UNSUPPORTED = ROUND_CELL + """\
cellrig: 1
steps:
  - set: {temperature: 25 degC, pressure: 2 MPa}
  - eis: {start: 10 kHz, stop: 1 Hz, amplitude: 5 mV}
  - charge: 0.5C
    until:
      - voltage: 4.2 V
      - {charge: 110 %, then: end}
  - rest: 2 h
    until: {dvdt: 1 mV/h}
  - hold: {voltage: 4.2 V, current_limit: 1C}
    until: 0.05C
  - stop: checked
  - repeat: 5
    until: discharge capacity < 80 % of first
    steps:
      - Discharge at 1C until 2.5 V or 0.5 A
      - rest:
        until: {dvdt: 1 mV/min}
  - pulse: {discharge: C/10, duration: 10 min, rest: 1 h}
    until: 3 V
  - pulse: {discharge: C/10, duration: 10 min, rest: 1 h, count: 4}
    until: 3 V
  - tag: end
    stop: done
"""


def test_unsupported_steps_are_named(run_snippet: Any) -> None:
    conversion = convert(UNSUPPORTED)
    assert subjects(conversion) == [
        "step 1", "step 2", "step 3", "step 4", "step 5", "step 6",
        "loop 'repeat 5x until discharge capacity < 80 % of first'", "step 7", "step 8",
        "step 9", "step 10",
    ]
    messages = dict(zip(subjects(conversion), conversion.unsupported, strict=True))
    assert "pressure" in messages["step 1"]
    assert "impedance" in messages["step 2"]
    assert "'then: end'" in messages["step 3"] and "'until 110 %'" in messages["step 3"]
    assert "'until 1 mV/h'" in messages["step 4"]
    assert "current limit" in messages["step 5"]
    assert "part-way" in messages["step 6"]
    assert "(steps 7-8)" in conversion.unsupported[6]
    assert "one 'until' condition" in messages["step 7"]
    assert "left out" in messages["step 8"]
    assert "without a count" in messages["step 9"]
    assert "each pulse" in messages["step 10"]
    assert "step 11" not in messages  # the final stop is where the experiment ends anyway
    assert conversion.strings == [
        "Charge at 0.5 A until 4.2 V", "Rest for 2 hours", "Hold at 4.2 V until 0.05 A",
        "Discharge at 1 A until 2.5 V", "Discharge at 0.1 A for 10 minutes or until 3 V",
        "Rest for 1 hour",
    ]
    for subject in subjects(conversion):
        assert subject.split(" (")[0] in conversion.python
    conditions, _ = run_snippet(conversion)
    rested = ("Rest for 2 hours", {"temperature": "25oC"})
    assert conditions[1] == rested


def test_a_cycle_whose_temperature_changes_is_named(run_snippet: Any) -> None:
    conversion = convert(ROUND_CELL + """\
cellrig: 1
steps:
  - repeat: 2
    steps:
      - Charge at 1C until 4.2 V
      - set: {temperature: 45 degC}
      - Discharge at 1C until 3 V
""")
    assert subjects(conversion) == ["loop 'repeat 2x'"]
    assert "first cycle" in conversion.unsupported[0]
    run_snippet(conversion)


def test_a_loop_without_a_count_is_one_cycle() -> None:
    conversion = convert(ROUND_CELL + """\
cellrig: 1
steps:
  - repeat:
    until: coulombic efficiency < 99 %
    steps:
      - Charge at 1C until 4.2 V
      - Discharge at 1C until 3 V
""")
    assert len(conversion.unsupported) == 1
    assert "no count" in conversion.unsupported[0]
    assert "cycle figure" in conversion.unsupported[0]
    assert "] * 1\n" in conversion.python


@pytest.mark.parametrize(("value", "text"), [
    (0.06343040000000001, "0.0634304"), (1e-5, "0.00001"), (2.0, "2"), (1e6, "1000000"),
    (4.25, "4.25"), (-0.62, "-0.62"), (1 / 3, "0.3333333333"),
])
def test_numbers_are_plain_decimals(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (3600, "1 hour"), (7200, "2 hours"), (5400, "90 minutes"), (60, "1 minute"),
    (1.5, "1.5 seconds"), (1, "1 second"), (172800, "48 hours"), (0.25, "0.25 seconds"),
])
def test_durations_are_in_pybamm_s_units(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert _pybamm_time(text) == pytest.approx(seconds)


def _library_program(entry: Any) -> Program:
    result = check(load_protocol_text(entry.read_text(encoding="utf-8"), entry.name),
                   lints=False)
    assert result.program is not None, [d.render() for d in result.errors]
    return result.program


@pytest.mark.parametrize("entry", library_files(), ids=lambda entry: entry.name)
def test_every_library_protocol_converts_to_valid_code_and_strings(
    entry: Any, run_snippet: Any
) -> None:
    program = _library_program(entry)
    conversion = to_pybamm(program)
    for string in conversion.strings:
        pybamm_parse(string)
        parse_step_string(string)
    conditions, _ = run_snippet(conversion)
    assert isinstance(conditions, list)
    ids = {str(step.id) for step in leaf_steps(program.steps)}
    for message in conversion.unsupported:
        named = message.split(" ")[1] if message.startswith("step ") else None
        assert named is None or named in ids, message


def test_convert_exits_0_when_everything_converts(
    tmp_protocol: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_protocol(CYCLING)
    assert main(["convert", str(path), "--to", "pybamm"]) == 0
    out, err = capsys.readouterr()
    assert "experiment = pybamm.Experiment(operating_conditions" in out
    assert '"Charge at 0.1 A until 4.2 V",' in out
    assert err == ""


def test_convert_exits_1_and_names_what_cannot_convert(
    tmp_protocol: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_protocol(ROUND_CELL + "cellrig: 1\nsteps:\n  - Charge at 1C until 4.2 V\n"
                        "  - eis: {start: 10 kHz, stop: 1 Hz, amplitude: 5 mV}\n")
    assert main(["convert", str(path), "--to", "pybamm"]) == 1
    out, err = capsys.readouterr()
    assert '"Charge at 1 A until 4.2 V",' in out
    assert f"{path}: cannot convert to PyBaMM: step 2 'EIS" in err


def test_convert_takes_the_cell_and_parameters(
    tmp_protocol: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_protocol("cellrig: 1\nparameters: {upper: 4.2 V}\n"
                        "steps:\n  - Charge at 0.5C until ${upper}\n")
    cell = tmp_protocol("capacity: 2 Ah\n", "cell.yaml")
    assert main(["convert", str(path), "--to", "pybamm", "--cell", str(cell),
                 "-p", "upper=4.3V"]) == 0
    assert '"Charge at 1 A until 4.3 V",' in capsys.readouterr().out

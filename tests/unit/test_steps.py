"""Every step kind, in mapping and string form, resolved to the Program nodes the engine runs.

Currents in a program are absolute and signed: positive charges the cell. The cell of most
tests has a round capacity (1 Ah) and area (10 cm^2), so 1C is 1 A and 1 mA/cm^2 is 10 mA.
"""

from __future__ import annotations

import textwrap
from unittest.mock import ANY

import pytest
from conftest import (
    ROUND_CELL,
    assert_close,
    cell_node,
    checked,
    errors_of,
    leaf_steps,
    load,
    messages,
    program_of,
    warnings_of,
)

from cellrig.errors import ProtocolError, Severity
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.program import (
    CccvStep,
    Cell,
    Condition,
    CurrentStep,
    CycleCondition,
    CycleMetric,
    Direction,
    EisMode,
    EisStep,
    Limit,
    Limits,
    Node,
    Operator,
    PowerStep,
    PulseStep,
    Quantity,
    Recording,
    Repeat,
    ResistanceStep,
    RestStep,
    Sequence,
    SetStep,
    StopStep,
    VoltageStep,
)
from cellrig.protocols.resolve import check, resolve

HEAD = "cellrig: 1\nname: steps\n" + ROUND_CELL
AT_LEAST, AT_MOST = Operator.AT_LEAST, Operator.AT_MOST
CHARGE, DISCHARGE, NONE = Direction.CHARGE, Direction.DISCHARGE, Direction.NONE


def protocol(steps: str, head: str = HEAD) -> str:
    """A protocol text: ``head`` then ``steps:`` with the (dedented) list under it."""
    return head + "steps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ") + "\n"


def steps_of(steps: str, head: str = HEAD, **kwargs: object) -> tuple[Node, ...]:
    return program_of(protocol(steps, head), **kwargs).steps  # type: ignore[arg-type]


def v(value: float, operator: Operator, text: str, then: str | None = None) -> Condition:
    return Condition(Quantity.VOLTAGE, operator, value, then, text)


def i(value: float, text: str, then: str | None = None) -> Condition:
    return Condition(Quantity.CURRENT, AT_MOST, value, then, text)


def t(seconds: float, text: str, then: str | None = None) -> Condition:
    return Condition(Quantity.TIME, AT_LEAST, seconds, then, text)


def q(ampere_hours: float, text: str) -> Condition:
    return Condition(Quantity.CHARGE, AT_LEAST, ampere_hours, None, text)


# -- the sourcing kinds, each in mapping form and string form -----------------------------------

FORMS = [
    (
        "charge current",
        "- charge: 200 mA\n  until: 4.2 V",
        "- Charge at 200 mA until 4.2 V",
        CurrentStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                    current_a=0.2, voltage_limit_v=4.2),
    ),
    (
        "discharge current",
        "- discharge: {current: 1.5 A}\n  until: 2.5 V",
        "- Discharge at 1.5 A until 2.5 V",
        CurrentStep(id=1, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                    current_a=-1.5, voltage_limit_v=2.5),
    ),
    (
        "charge C-rate",
        "- charge: 0.5C\n  until: 4.2 V",
        "- Charge at 0.5C until 4.2 V",
        CurrentStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                    current_a=0.5, voltage_limit_v=4.2),
    ),
    (
        "discharge C-rate",
        "- discharge: C/20\n  until: 2.5 V",
        "- Discharge at C/20 until 2.5 V",
        CurrentStep(id=1, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                    current_a=-0.05, voltage_limit_v=2.5),
    ),
    (
        "charge density",
        "- charge: {current: 1 mA/cm^2}\n  until: 4.2 V",
        "- Charge at 1 mA/cm^2 until 4.2 V",
        CurrentStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                    current_a=0.01, voltage_limit_v=4.2),
    ),
    (
        "discharge density",
        "- discharge: 2.5 mA/cm^2\n  until: 2.5 V",
        "- Discharge at 2.5 mA/cm^2 until 2.5 V",
        CurrentStep(id=1, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                    current_a=-0.025, voltage_limit_v=2.5),
    ),
    (
        "charge power",
        "- charge: {power: 500 mW}\n  until: 4.2 V",
        "- Charge at 500 mW until 4.2 V",
        PowerStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                  power_w=0.5),
    ),
    (
        "discharge power",
        "- discharge: 2 W\n  for: 1 h",
        "- Discharge at 2 W for 1 hour",
        PowerStep(id=1, label=ANY, direction=DISCHARGE, until=(t(3600.0, "1 h"),),
                  power_w=-2.0),
    ),
    (
        "discharge resistance",
        "- discharge: {resistance: 10 Ohm}\n  for: 1 h",
        "- Discharge at 10 Ohm for 1 hour",
        ResistanceStep(id=1, label=ANY, direction=DISCHARGE, until=(t(3600.0, "1 h"),),
                       resistance_ohm=10.0),
    ),
    (
        "hold",
        "- hold: 4.2 V\n  until: 50 mA",
        "- Hold at 4.2 V until 50 mA",
        VoltageStep(id=1, label=ANY, until=(i(0.05, "50 mA"),), voltage_v=4.2),
    ),
    (
        "hold C-rate cut-off",
        "- hold: {voltage: 4.2 V}\n  until: C/20",
        "- Hold at 4.2 V until C/20",
        VoltageStep(id=1, label=ANY, until=(i(0.05, "C/20"),), voltage_v=4.2),
    ),
    (
        "rest",
        "- rest: 10 min",
        "- Rest for 10 minutes",
        RestStep(id=1, label=ANY, until=(t(600.0, "10 min"),)),
    ),
    (
        "rest until",
        "- rest:\n  until: 1 mV/min",
        "- Rest until 1 mV/min",
        RestStep(id=1, label=ANY,
                 until=(Condition(Quantity.VOLTAGE_RATE, AT_MOST, 1e-3 / 60, None, "1 mV/min"),)),
    ),
]


@pytest.mark.parametrize(("mapping", "string", "expected"), [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
def test_mapping_form_resolves(mapping: str, string: str, expected: Node) -> None:
    (node,) = steps_of(mapping)
    assert_close(node, expected)


@pytest.mark.parametrize(("mapping", "string", "expected"), [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
def test_string_form_resolves(mapping: str, string: str, expected: Node) -> None:
    (node,) = steps_of(string)
    assert_close(node, expected)


@pytest.mark.parametrize(("mapping", "string", "expected"), [f[1:] for f in FORMS],
                         ids=[f[0] for f in FORMS])
def test_string_under_step_key_resolves_the_same(mapping: str, string: str,
                                                 expected: Node) -> None:
    (node,) = steps_of(string.replace("- ", "- step: ", 1))
    assert_close(node, expected)


def test_positive_current_charges() -> None:
    steps = leaf_steps(steps_of("""
        - Charge at 1C until 4.2 V
        - Discharge at 1C until 2.5 V
        - charge: 300 mA
          until: 4.2 V
        - discharge: {current: 300 mA}
          until: 2.5 V
        - cccv: {current: 0.5C, voltage: 4.2 V, cutoff: C/20}
        - cccv: {current: 0.5C, voltage: 2.5 V, cutoff: C/20, direction: discharge}
        - pulse: {charge: 0.1C, duration: 1 min, rest: 1 min, count: 2}
        - pulse: {discharge: 0.1C, duration: 1 min, rest: 1 min, count: 2}
    """))
    signs = [(step.direction, getattr(step, "current_a", 0.0) > 0) for step in steps]
    assert signs == [(CHARGE, True), (DISCHARGE, False)] * 4


def test_labels_show_the_absolute_current() -> None:
    string, mapping = steps_of("""
        - Charge at 0.5C until 4.2 V
        - discharge: 2.5 mA/cm^2
          until: 2.5 V
    """)
    assert string.label == "Charge at 0.5C until 4.2 V [500 mA]"  # type: ignore[union-attr]
    assert mapping.label == "Discharge at 2.5 mA/cm^2 [25 mA] until 2.5 V"  # type: ignore[union-attr]


def test_name_replaces_the_label() -> None:
    (node,) = steps_of("- step: Rest for 1 h\n  name: settle")
    assert node.label == "settle"


def test_mapping_until_forms() -> None:
    (text, mapping, listing) = steps_of("""
        - discharge: 1C
          until: 2.5 V
        - discharge: 1C
          until: {voltage: 2.5 V, time: 2 h, charge: 80 %}
        - discharge: 1C
          until: [2.5 V, 2 h, 500 mAh, '< 0.5 W h', '> 45 degC']
    """)
    assert_close(text.until, (v(2.5, AT_MOST, "2.5 V"),))  # type: ignore[union-attr]
    assert_close(mapping.until, (v(2.5, AT_MOST, "2.5 V"), t(7200.0, "2 h"),  # type: ignore[union-attr]
                                 q(0.8, "80 %")))
    assert_close(listing.until, (  # type: ignore[union-attr]
        v(2.5, AT_MOST, "2.5 V"), t(7200.0, "2 h"), q(0.5, "500 mAh"),
        Condition(Quantity.ENERGY, AT_MOST, 0.5, None, "< 0.5 W h"),
        Condition(Quantity.TEMPERATURE, AT_LEAST, 45.0, None, "> 45 degC"),
    ))


def test_string_with_extra_until_and_period() -> None:
    first, second = steps_of("""
        - step: Charge at 1C until 4.2 V
          until: {time: 2 h, then: stop}
        - Rest for 1 h (1 minute period)
    """)
    assert_close(first.until, (v(4.2, AT_LEAST, "4.2 V"), t(7200.0, "2 h", "stop")))  # type: ignore[union-attr]
    assert second.record == Recording(every_s=60.0)  # type: ignore[union-attr]


def test_condition_on_temperature_needs_an_operator() -> None:
    errors = errors_of(protocol("- rest: 1 h\n  until: 30 degC"))
    assert "say whether the step ends when the temperature rises" in messages(errors)
    assert errors[0].example == "until: '> 30 degC'"


# -- cccv, pulse, eis, set, stop ----------------------------------------------------------------

OTHER_KINDS = [
    (
        "cccv charge",
        "- cccv: {current: 0.5C, voltage: 4.2 V, cutoff: C/20}",
        CccvStep(id=1, label=ANY, direction=CHARGE, until=(i(0.05, "0.05C"),), current_a=0.5,
                 voltage_v=4.2),
    ),
    (
        "cccv discharge",
        "- cccv: {current: 1C, voltage: 2.5 V, cutoff: 50 mA, direction: discharge}",
        CccvStep(id=1, label=ANY, direction=DISCHARGE, until=(i(0.05, "50 mA"),),
                 current_a=-1.0, voltage_v=2.5),
    ),
    (
        "cccv with until",
        "- cccv: {current: 200 mA, voltage: 4.2 V}\n  until: 2 h",
        CccvStep(id=1, label=ANY, direction=CHARGE, until=(t(7200.0, "2 h"),), current_a=0.2,
                 voltage_v=4.2),
    ),
    (
        "pulse discharge (GITT)",
        "- pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 20}\n  until: 2.5 V",
        PulseStep(id=1, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                  current_a=-0.05, pulse_s=600.0, rest_s=3600.0, count=20),
    ),
    (
        "pulse charge without count",
        "- pulse: {charge: 100 mA, duration: 10 s, rest: 40 s}\n  until: 4.2 V",
        PulseStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                  current_a=0.1, pulse_s=10.0, rest_s=40.0, count=None),
    ),
    (
        "eis potentiostatic",
        "- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}",
        EisStep(id=1, label="EIS 1 MHz to 10 mHz, 10 mV, 10/decade at open circuit",
                mode=EisMode.POTENTIOSTATIC, start_hz=1e6, stop_hz=0.01, points_per_decade=10,
                amplitude=0.01),
    ),
    (
        "eis galvanostatic",
        "- eis: {mode: galvanostatic, start: 100 kHz, stop: 100 mHz, amplitude: 5 mA,"
        " per_decade: 5}",
        EisStep(id=1, label=ANY, mode=EisMode.GALVANOSTATIC, start_hz=1e5, stop_hz=0.1,
                points_per_decade=5, amplitude=0.005),
    ),
    (
        "eis galvanostatic amplitude as C-rate",
        "- eis: {mode: galvanostatic, start: 10 kHz, stop: 1 Hz, amplitude: C/100}",
        EisStep(id=1, label=ANY, mode=EisMode.GALVANOSTATIC, start_hz=1e4, stop_hz=1.0,
                points_per_decade=10, amplitude=0.01),
    ),
    (
        "eis at a dc voltage",
        "- eis: {start: 1 MHz, stop: 1 Hz, amplitude: 10 mV, dc: 3.7 V}",
        EisStep(id=1, label="EIS 1 MHz to 1 Hz, 10 mV, 10/decade", mode=EisMode.POTENTIOSTATIC,
                start_hz=1e6, stop_hz=1.0, points_per_decade=10, amplitude=0.01,
                dc_voltage_v=3.7),
    ),
    (
        "eis at a dc current",
        "- eis: {mode: galvanostatic, start: 1 MHz, stop: 1 Hz, amplitude: 10 mA, dc: 0.1C}",
        EisStep(id=1, label=ANY, mode=EisMode.GALVANOSTATIC, start_hz=1e6, stop_hz=1.0,
                points_per_decade=10, amplitude=0.01, dc_current_a=0.1),
    ),
    (
        "eis at open circuit, said",
        "- eis: {start: 1 MHz, stop: 1 Hz, amplitude: 10 mV, dc: open_circuit}",
        EisStep(id=1, label=ANY, mode=EisMode.POTENTIOSTATIC, start_hz=1e6, stop_hz=1.0,
                points_per_decade=10, amplitude=0.01),
    ),
    (
        "set temperature",
        "- set: {temperature: 25 degC}",
        SetStep(id=1, label="Set temperature 25 degC", temperature_c=25.0),
    ),
    (
        "set and wait",
        "- set: {temperature: 60 degC, pressure: 2 MPa}\n"
        "  wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 30 min, timeout: 3 h}",
        SetStep(id=1, label="Set temperature 60 degC and pressure 2 MPa, "
                            "wait until stable for 30 min",
                temperature_c=60.0, pressure_pa=2e6, wait_temperature_k=0.5,
                wait_pressure_pa=1e5, wait_for_s=1800.0, wait_timeout_s=10800.0),
    ),
    (
        "set and wait with default tolerances",
        "- set: {temperature: 298.15 K, pressure: 50 bar}\n  wait: {for: 10 min}",
        SetStep(id=1, label=ANY, temperature_c=25.0, pressure_pa=5e6, wait_temperature_k=1.0,
                wait_pressure_pa=1e5, wait_for_s=600.0),
    ),
    (
        "stop with a reason",
        "- stop: open the cell for post-mortem",
        StopStep(id=1, label="Stop: open the cell for post-mortem",
                 reason="open the cell for post-mortem"),
    ),
    (
        "stop without a reason",
        "- stop:",
        StopStep(id=1, label="Stop", reason=""),
    ),
    (
        "step string with a tag",
        "- step: Charge at 0.1C until 4.2 V\n  tag: first-charge",
        CurrentStep(id=1, label="Charge at 0.1C until 4.2 V [100 mA]", direction=CHARGE,
                    tag="first-charge", until=(v(4.2, AT_LEAST, "4.2 V"),), current_a=0.1,
                    voltage_limit_v=4.2),
    ),
    (
        "record on a step",
        "- rest: 1 h\n  record: {every: 1 s, voltage_change: 1 mV, current_change: 1 mA}",
        RestStep(id=1, label=ANY, until=(t(3600.0, "1 h"),),
                 record=Recording(every_s=1.0, voltage_change_v=1e-3, current_change_a=1e-3)),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [k[1:] for k in OTHER_KINDS],
                         ids=[k[0] for k in OTHER_KINDS])
def test_step_kind_resolves(body: str, expected: Node) -> None:
    (node,) = steps_of(body)
    assert_close(node, expected)


def test_hold_with_current_limit() -> None:
    (node,) = steps_of("- hold: {voltage: 4.2 V, current_limit: 1C}\n  until: 50 mA")
    assert_close(node, VoltageStep(id=1, label=ANY, until=(i(0.05, "50 mA"),), voltage_v=4.2,
                                   current_limit_a=1.0))


# -- flow: repeat and for_each ------------------------------------------------------------------


def test_repeat_with_a_count() -> None:
    (loop,) = steps_of("""
        - repeat: 3
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
    """)
    assert_close(loop, Repeat(label="repeat 3x", count=3, steps=(
        CurrentStep(id=1, label=ANY, direction=CHARGE, until=(v(4.2, AT_LEAST, "4.2 V"),),
                    current_a=1.0, voltage_limit_v=4.2),
        CurrentStep(id=2, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                    current_a=-1.0, voltage_limit_v=2.5),
    )))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("discharge capacity < 80 % of first",
         CycleCondition(CycleMetric.DISCHARGE_CAPACITY, AT_MOST, 0.8, "first",
                        "discharge capacity < 80 % of first")),
        ("discharge capacity < 500 mAh",
         CycleCondition(CycleMetric.DISCHARGE_CAPACITY, AT_MOST, 0.5, None,
                        "discharge capacity < 500 mAh")),
        ("charge capacity <= 90 % of max",
         CycleCondition(CycleMetric.CHARGE_CAPACITY, AT_MOST, 0.9, "max",
                        "charge capacity <= 90 % of max")),
        ("discharge energy < 70 % of cycle 3",
         CycleCondition(CycleMetric.DISCHARGE_ENERGY, AT_MOST, 0.7, 3,
                        "discharge energy < 70 % of cycle 3")),
        ("discharge energy < 2 Wh",
         CycleCondition(CycleMetric.DISCHARGE_ENERGY, AT_MOST, 2.0, None,
                        "discharge energy < 2 Wh")),
        ("coulombic efficiency < 99 %",
         CycleCondition(CycleMetric.COULOMBIC_EFFICIENCY, AT_MOST, 0.99, None,
                        "coulombic efficiency < 99 %")),
        ("energy_efficiency > 0.95",
         CycleCondition(CycleMetric.ENERGY_EFFICIENCY, AT_LEAST, 0.95, None,
                        "energy_efficiency > 0.95")),
    ],
)
def test_repeat_until(condition: str, expected: CycleCondition) -> None:
    (loop,) = steps_of(f"""
        - repeat: 1000
          until: {condition}
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
    """)
    assert isinstance(loop, Repeat)
    assert loop.count == 1000
    assert_close(loop.until, (expected,))
    assert loop.label == f"repeat 1000x until {condition}"


def test_repeat_until_without_count() -> None:
    (loop,) = steps_of("""
        - repeat:
          until: [discharge capacity < 80 % of first, coulombic efficiency < 95 %]
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
    """)
    assert isinstance(loop, Repeat)
    assert loop.count is None
    assert [c.metric for c in loop.until] == [CycleMetric.DISCHARGE_CAPACITY,
                                              CycleMetric.COULOMBIC_EFFICIENCY]


def test_nested_repeats() -> None:
    (outer,) = steps_of("""
        - repeat: 10
          tag: ageing
          steps:
            - repeat: 50
              steps:
                - Charge at 1C until 4.2 V
                - Discharge at 1C until 2.5 V
            - eis: {start: 100 kHz, stop: 1 Hz, amplitude: 10 mV}
    """)
    assert isinstance(outer, Repeat)
    assert (outer.count, outer.tag) == (10, "ageing")
    inner, eis = outer.steps
    assert isinstance(inner, Repeat) and inner.count == 50
    assert [s.id for s in leaf_steps(inner.steps)] == [1, 2]
    assert isinstance(eis, EisStep) and eis.id == 3


def test_for_each_substitutes_each_value() -> None:
    (block,) = steps_of("""
        - for_each: {rate: [0.2C, 0.5C, 1C]}
          steps:
            - Discharge at ${rate} until 2.5 V
            - charge: ${rate}
              until: 4.2 V
    """)
    assert isinstance(block, Sequence)
    assert block.label == "for each rate in [0.2C, 0.5C, 1C]"
    assert [s.label for s in block.steps] == ["rate = 0.2C", "rate = 0.5C", "rate = 1C"]
    currents = [s.current_a for s in leaf_steps(block.steps)]  # type: ignore[union-attr]
    assert currents == pytest.approx([-0.2, 0.2, -0.5, 0.5, -1.0, 1.0])
    assert [s.id for s in leaf_steps(block.steps)] == [1, 2, 3, 4, 5, 6]


def test_for_each_values_from_a_list_parameter() -> None:
    head = HEAD + "parameters:\n  rates: [0.5C, 1C]\n"
    text = protocol("""
        - for_each:
            rate: ${rates}
          steps:
            - Discharge at ${rate} until 2.5 V
    """, head)
    (block,) = program_of(text).steps
    assert [s.current_a for s in leaf_steps((block,))] == pytest.approx([-0.5, -1.0])  # type: ignore[union-attr]
    overridden = program_of(text, parameters={"rates": ["0.1C", "2C", "3C"]})
    assert [s.current_a for s in overridden.iter_steps()] == pytest.approx([-0.1, -2.0, -3.0])  # type: ignore[union-attr]


def test_for_each_quoted_reference_in_flow_mapping() -> None:
    head = HEAD + "parameters: {rates: [0.5C, 1C]}\n"
    (block,) = steps_of("""
        - for_each: {rate: "${rates}"}
          steps:
            - Discharge at ${rate} until 2.5 V
    """, head)
    assert [s.current_a for s in leaf_steps((block,))] == pytest.approx([-0.5, -1.0])  # type: ignore[union-attr]


def test_for_each_restores_an_outer_parameter() -> None:
    head = HEAD + "parameters: {rate: 0.1C}\n"
    steps = steps_of("""
        - for_each: {rate: [1C, 2C]}
          steps:
            - Discharge at ${rate} until 2.5 V
        - Charge at ${rate} until 4.2 V
    """, head)
    assert [s.current_a for s in leaf_steps(steps)] == pytest.approx([-1.0, -2.0, 0.1])  # type: ignore[union-attr]


# -- parameters ---------------------------------------------------------------------------------

PARAMETRISED = HEAD + textwrap.dedent("""\
    parameters:
      upper: 4.2 V
      rate: {default: 0.5C, description: charge and discharge rate}
      rest: 10 min
      cycles: 3
    steps:
      - repeat: ${cycles}
        steps:
          - Charge at ${rate} until ${upper}
          - rest: ${rest}
          - discharge: ${rate}
            until: 2.5 V
""")


def _summary(program_steps: tuple[Node, ...]) -> tuple[int | None, list[float], float, float]:
    (loop,) = program_steps
    assert isinstance(loop, Repeat)
    charge, rest, discharge = loop.steps
    assert isinstance(charge, CurrentStep) and isinstance(discharge, CurrentStep)
    assert isinstance(rest, RestStep)
    return (loop.count, [charge.current_a, discharge.current_a], charge.until[0].value,
            rest.until[0].value)


def test_parameter_defaults() -> None:
    program = program_of(PARAMETRISED)
    assert_close(_summary(program.steps), (3, [0.5, -0.5], 4.2, 600.0))
    assert program.parameters == {"cycles": "3", "rate": "0.5C", "rest": "10 min",
                                  "upper": "4.2 V"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"upper": "4.3 V"}, (3, [0.5, -0.5], 4.3, 600.0)),
        ({"upper": "4300 mV", "cycles": "5"}, (5, [0.5, -0.5], 4.3, 600.0)),
        ({"cycles": 7, "rate": "C/5"}, (7, [0.2, -0.2], 4.2, 600.0)),
        ({"rate": "200 mA", "rest": "1 h"}, (3, [0.2, -0.2], 4.2, 3600.0)),
        ({"rate": "1 mA/cm^2"}, (3, [0.01, -0.01], 4.2, 600.0)),
    ],
)
def test_parameter_overrides(overrides: dict[str, object],
                             expected: tuple[int, list[float], float, float]) -> None:
    program = program_of(PARAMETRISED, parameters=overrides)
    assert_close(_summary(program.steps), expected)
    for name, value in overrides.items():
        assert program.parameters[name] == str(value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upper": "100 mA"},
         "parameter 'upper' is a voltage (default 4.2 V), but 100 mA is a current"),
        ({"rate": "4.2 V"},
         "parameter 'rate' is a current (default 0.5C), but 4.2 V is a voltage"),
        ({"rest": "5"}, "parameter 'rest' is a time (default 10 min), but 5 is a whole number"),
        ({"cycles": "many"},
         "parameter 'cycles' is a whole number (default 3), but many is a text"),
        ({"cycles": "2.5"},
         "parameter 'cycles' is a whole number (default 3), but 2.5 is a number"),
        ({"uper": "4.3 V"}, "the protocol has no parameter 'uper' (did you mean 'upper'?)"),
        ({"cycle": "4"}, "the protocol has no parameter 'cycle' (did you mean 'cycles'?)"),
    ],
)
def test_bad_overrides_are_errors(overrides: dict[str, object], message: str) -> None:
    result = checked(PARAMETRISED, parameters=overrides)
    assert result.program is None
    assert message in messages(result.errors)
    with pytest.raises(ProtocolError):
        resolve(load(PARAMETRISED), None, overrides)


def test_unknown_override_lists_the_parameters() -> None:
    (error,) = checked(PARAMETRISED, parameters={"uper": "4.3 V"}).errors
    assert error.expected == "a parameter of the protocol (upper, rate, rest, cycles)"


def test_unknown_reference_suggests() -> None:
    text = protocol("- Charge at 1C until ${uper}", HEAD + "parameters: {upper: 4.2 V}\n")
    errors = errors_of(text)
    assert [e.message for e in errors] == ["unknown parameter 'uper' (did you mean 'upper'?)"]
    assert errors[0].expected == "a parameter of this protocol (upper)"


def test_parameter_with_a_bad_default_shape() -> None:
    errors = errors_of(HEAD + "parameters:\n  upper: {description: no default}\n  2x: 3\n"
                       "steps:\n  - Rest for 1 h\n")
    assert messages(errors) == ("parameter 'upper' needs a default\n"
                                "'2x' is not a parameter name (letters, digits, _)")


# -- the cell -----------------------------------------------------------------------------------

CELLS = [
    ("capacity", "cell: {capacity: 634 mAh}\n", None, 0.634),
    ("areal capacity x area", "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}\n",
     None, 6.8e-3 * 93.28),
    ("specific capacity x mass", "cell: {specific_capacity: 215 mAh/g, mass: 2.95 g}\n",
     None, 0.215 * 2.95),
    ("submitted capacity overrides", "cell: {capacity: 634 mAh}\n", "capacity: 1 Ah\n", 1.0),
    ("submitted cell file with cell key", "cell: {capacity: 634 mAh}\n",
     "cell: {capacity: 2 Ah, id: A17}\n", 2.0),
    ("submitted loading replaces the capacity", "cell: {capacity: 634 mAh}\n",
     "areal_capacity: 1 mAh/cm^2\narea: 100 cm^2\n", 0.1),
    ("submitted capacity replaces the loading",
     "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}\n", "capacity: 500 mAh\n", 0.5),
    ("capacity only submitted", "", "capacity: 3 Ah\n", 3.0),
]


@pytest.mark.parametrize(("cell", "submitted", "capacity_ah"), [c[1:] for c in CELLS],
                         ids=[c[0] for c in CELLS])
def test_cell_capacity(cell: str, submitted: str | None, capacity_ah: float) -> None:
    text = protocol("- Charge at 1C until 4.2 V", "cellrig: 1\n" + cell)
    program = program_of(text, cell=submitted)
    assert program.cell.capacity_ah == pytest.approx(capacity_ah, rel=1e-12)
    (step,) = program.steps
    assert isinstance(step, CurrentStep)
    assert step.current_a == pytest.approx(capacity_ah, rel=1e-12)


def test_submitted_cell_overrides_field_by_field() -> None:
    text = protocol("- Charge at 1 mA/cm^2 until 4.2 V",
                    "cellrig: 1\ncell: {capacity: 634 mAh, area: 93.28 cm^2, chemistry: NMC811}\n")
    program = program_of(text, cell="area: 10 cm^2\nid: cell-42\n")
    assert_close(program.cell, Cell(id="cell-42", capacity_ah=0.634, area_m2=1e-3,
                                    chemistry="NMC811"))
    (step,) = program.steps
    assert step.current_a == pytest.approx(0.01)  # type: ignore[union-attr]


def test_cell_fields() -> None:
    cell = program_of(protocol("- Rest for 1 h", "cellrig: 1\ncell:\n"
                               "  id: AF-07\n  capacity: 634 mAh\n  area: 93.28 cm^2\n"
                               "  mass: 2.95 g\n  chemistry: NMC811|Li-free\n  format: pouch\n"
                               "  reference_offset: -10 mV\n  volume: 0.66 cm^3\n"
                               "  fabrication: {coated: 2024-05-02, calendered: yes}\n"
                               "  notes: from batch 7\n")).cell
    assert_close(cell, Cell(id="AF-07", capacity_ah=0.634, area_m2=93.28e-4, mass_kg=2.95e-3,
                            chemistry="NMC811|Li-free", format="pouch", reference_offset_v=-0.01,
                            volume_m3=0.66e-6,
                            fabrication={"coated": "2024-05-02", "calendered": "yes"},
                            notes="from batch 7"))


@pytest.mark.parametrize(
    ("cell", "body", "message"),
    [
        ("", "- Charge at 1C until 4.2 V",
         "a C-rate needs the cell's nominal capacity, and the cell has none"),
        ("cell: {capacity: 1 Ah}\n", "- Charge at 1 mA/cm^2 until 4.2 V",
         "a current density needs the cell's electrode area, and the cell has none"),
        ("", "- Charge at 100 mA until 50 %",
         "a share of the nominal capacity needs the cell's capacity, and the cell has none"),
        ("cell: {areal_capacity: 6.8 mAh/cm^2}\n", "- Rest for 1 h",
         "an areal capacity needs the electrode area"),
        ("cell: {specific_capacity: 215 mAh/g}\n", "- Rest for 1 h",
         "a specific capacity needs the active mass"),
        ("cell: {capacity: -1 Ah}\n", "- Rest for 1 h", "cell capacity must be positive"),
        ("cell: {capacity: 1 V}\n", "- Rest for 1 h", "cell capacity: '1 V' is not a charge"),
        ("cell: {capacty: 1 Ah}\n", "- Rest for 1 h",
         "unknown key 'capacty' in the cell (did you mean 'capacity'?)"),
        ("cell: 634 mAh\n", "- Rest for 1 h", "cell must be a mapping, not '634 mAh'"),
    ],
)
def test_cell_errors(cell: str, body: str, message: str) -> None:
    assert message in messages(errors_of(protocol(body, "cellrig: 1\n" + cell)))


def test_cell_capacity_and_loading_that_disagree_warn() -> None:
    text = protocol("- Rest for 1 h", "cellrig: 1\ncell: {capacity: 1 Ah, "
                    "areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}\n")
    assert "differs from what its loading gives" in messages(warnings_of(text))
    assert program_of(text).cell.capacity_ah == 1.0


# -- limits and recording -----------------------------------------------------------------------


def test_limits_short_form() -> None:
    program = program_of(protocol("- Rest for 1 h", HEAD + textwrap.dedent("""\
        limits:
          voltage: [2.4 V, 4.35 V]
          current: 2.5C
          temperature: [-20 degC, 70 degC]
          pressure: [0.5 MPa, 6 MPa]
          charge_per_step: 120 %
    """)))
    assert_close(program.limits, Limits(
        voltage_v=Limit(2.4, 4.35), current_a=Limit(None, 2.5),
        temperature_c=Limit(-20.0, 70.0), pressure_pa=Limit(5e5, 6e6),
        charge_per_step_ah=Limit(None, 1.2),
    ))


def test_limits_long_form() -> None:
    program = program_of(protocol("- Rest for 1 h", HEAD + textwrap.dedent("""\
        limits:
          voltage: {range: [2.4 V, 4.35 V], warn: [2.45 V, 4.3 V], delay: 2 s}
          current: {max: 2.5C, warn: 2C, delay: 1 s}
          temperature: {range: [-20 degC, 70 degC], warn: [-10 degC, 60 degC]}
          pressure: {range: [0.5 MPa, 6 MPa], delay: 500 ms}
          charge_per_step: {max: 1.5 Ah, warn: 120 %}
    """)))
    assert_close(program.limits, Limits(
        voltage_v=Limit(2.4, 4.35, 2.45, 4.3, 2.0),
        current_a=Limit(None, 2.5, None, 2.0, 1.0),
        temperature_c=Limit(-20.0, 70.0, -10.0, 60.0),
        pressure_pa=Limit(5e5, 6e6, None, None, 0.5),
        charge_per_step_ah=Limit(None, 1.5, None, 1.2),
    ))


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ("{voltage: [4.35 V, 2.4 V]}", "voltage limit: the low end must be below the high end"),
        ("{voltage: 4.35 V}", "voltage limit must be a [low, high] pair, not '4.35 V'"),
        ("{current: -1 A}", "the current limit must be positive"),
        ("{current: 4.2 V}", "current limit: '4.2 V' is not a current"),
        ("{voltage: {range: [2 V, 4 V], warn: [1 V, 4 V]}}",
         "voltage warning levels must lie inside the range"),
        ("{current: {max: 1 A, warn: 2 A}}",
         "the current warning level must not exceed the maximum"),
        ("{current: {warn: 2 A}}", "the current limit needs 'max'"),
        ("{voltage: {warn: [2 V, 4 V]}}", "the voltage limit needs a range"),
        ("{voltage: {range: [2 V, 4 V], delay: -1 s}}", "a delay cannot be negative"),
        ("{volts: [2 V, 4 V]}", "unknown key 'volts' in limits (did you mean 'voltage'?)"),
    ],
)
def test_limit_errors(limits: str, message: str) -> None:
    text = protocol("- Rest for 1 h", HEAD + f"limits: {limits}\n")
    assert message in messages(errors_of(text))


def test_record_default_and_top_level() -> None:
    assert program_of(protocol("- Rest for 1 h")).record == Recording(every_s=10.0)
    top = program_of(protocol("- Rest for 1 h", HEAD + "record: {every: 1 min, "
                              "voltage_change: 5 mV, current_change: 10 mA}\n")).record
    assert_close(top, Recording(60.0, 0.005, 0.01))


# -- tags and then-targets ----------------------------------------------------------------------


def test_then_targets() -> None:
    first, loop, discharge = steps_of("""
        - tag: check-up
          eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV}
        - repeat: 100
          tag: cycling
          steps:
            - Rest for 1 min
        - discharge: 1C
          until:
            - voltage: 2.0 V
              then: check-up
            - {voltage: 2.2 V, then: cycling}
            - {time: 10 h, then: stop}
            - {charge: 90 %, then: next}
            - voltage: 2.5 V
    """)
    assert first.tag == "check-up"  # type: ignore[union-attr]
    assert loop.tag == "cycling"  # type: ignore[union-attr]
    assert [(c.value, c.then) for c in discharge.until] == [  # type: ignore[union-attr]
        (2.0, "check-up"), (2.2, "cycling"), (36000.0, "stop"), (0.9, "next"), (2.5, None)]


def test_unknown_then_target_suggests() -> None:
    text = protocol("""
        - tag: check-up
          rest: 1 min
        - discharge: 1C
          until: {voltage: 2.0 V, then: chek-up}
    """)
    (error,) = errors_of(text)
    assert error.message == "'then: chek-up' names no tagged step (did you mean 'check-up'?)"
    assert error.expected == "a tag of a step (check-up), 'next' or 'stop'"


def test_then_without_any_tag() -> None:
    (error,) = errors_of(protocol("- discharge: 1C\n  until: {voltage: 2 V, then: somewhere}"))
    assert error.expected == "a tag of a step (no step has a tag), 'next' or 'stop'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- tag: a\n  rest: 1 h\n- tag: a\n  rest: 1 h", "the tag 'a' is already used at line 5"),
        ("- tag: next\n  rest: 1 h", "'next' is reserved for 'then:'; choose another tag"),
        ("- tag: stop\n  rest: 1 h", "'stop' is reserved for 'then:'; choose another tag"),
        ("- for_each: {r: [1C, 2C]}\n  steps:\n    - tag: x\n      rest: 1 h",
         "the tag 'x' is inside for_each, so it would name several steps"),
    ],
)
def test_tag_errors(body: str, message: str) -> None:
    assert [e.message for e in errors_of(protocol(body))] == [message]


# -- errors of the step kinds -------------------------------------------------------------------

STEP_ERRORS = [
    ("- charge: 0.5C", "this charge step can never end: give it 'until' or 'for'"),
    ("- hold: 4.2 V", "this hold step can never end: give it 'until' or 'for'"),
    ("- rest:", "this rest step can never end: give it 'until' or 'for'"),
    ("- cccv: {current: 1C, voltage: 4.2 V}",
     "this cccv step can never end: give it 'until' or 'for'"),
    ("- pulse: {discharge: 1C, duration: 1 min, rest: 1 min}",
     "this pulse train can never end: give it a count or 'until'"),
    ("- charge: {resistance: 10 Ohm}\n  for: 1 h", "a resistance can only discharge the cell"),
    ("- Charge at 10 Ohm for 1 h", "a resistance can only discharge the cell"),
    ("- charge: -1 A\n  until: 4.2 V",
     "charge current must be positive: the step's verb gives the direction"),
    ("- charge: {current: 1 A, power: 1 W}\n  until: 4.2 V",
     "charge needs exactly one of current, power or resistance"),
    ("- hold: 100 mA\n  until: 50 mA", "hold voltage: '100 mA' is not a voltage"),
    ("- hold: {current_limit: 1 A}\n  until: 50 mA", "hold needs a voltage"),
    ("- cccv: {current: 1C}", "cccv needs voltage"),
    ("- cccv: {current: 1C, voltage: 4.2 V, cutoff: 50 mA, direction: sideways}",
     "direction must be 'charge' or 'discharge'"),
    ("- rest: 10 V", "rest: '10 V' is not a duration"),
    ("- rest: -5 min", "a rest must last a positive time"),
    ("- pulse: {charge: 1C, discharge: 1C, duration: 1 s, rest: 1 s, count: 1}",
     "pulse needs exactly one of 'charge: <current>' or 'discharge: <current>'"),
    ("- pulse: {discharge: 1C, rest: 1 min, count: 3}", "pulse needs 'duration'"),
    ("- pulse: {discharge: 1C, duration: 1 min, rest: 1 min, count: 0}",
     "pulse count must be a whole number of at least 1, not '0'"),
    ("- eis: {start: 1 MHz, stop: 10 mHz}", "eis needs amplitude"),
    ("- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, mode: sweep}",
     "mode must be 'potentiostatic' or 'galvanostatic'"),
    ("- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mA}",
     "eis amplitude: '10 mA' is not a voltage"),
    ("- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 5000}",
     "per_decade is at most 1000"),
    ("- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, step: 1}",
     "unknown key 'step' in eis (did you mean 'stop'?)"),
    ("- set: {}", "set needs a temperature and/or a pressure"),
    ("- set: {temperature: 60 V}", "set temperature: '60 V' is not a temperature"),
    ("- set: {pressure: -1 MPa}", "a stack pressure cannot be negative"),
    ("- set: {temperature: 25 degC}\n  wait: {within: {temperature: 1 V}}",
     "within temperature: '1 V' is not a temperature difference"),
    ("- set: {temperature: 25 degC}\n  wait: {until: 1 h}",
     "unknown key 'until' in wait"),
    ("- stop: [a, b]", "stop takes a reason (text)"),
    ("- charge: 1C\n  until: 4.2 V\n  untill: 2 h",
     "unknown key 'untill' in a charge step (did you mean 'until'?)"),
    ("- chrage: 1C\n  until: 4.2 V", "this step has no kind (did you mean 'charge'?)"),
    ("- {charge: 1C, discharge: 1C, until: 4.2 V}",
     "a step has exactly one kind, but this one has 'charge' and 'discharge'"),
    ("- [Rest for 1 h]", "a step must be a text or a mapping, not a list"),
    ("- Dischrage at 1C until 2.5 V",
     "'Dischrage at 1C until 2.5 V' is not a step (did you mean 'discharge'?)"),
    ("- charge:\n  until: 4.2 V", "charge current has no value"),
    ("- charge: 1C\n  until:", "a condition has no value"),
    ("- repeat: 2", "a repeat block needs 'steps:'"),
    ("- repeat: -1\n  steps: [Rest for 1 h]",
     "repeat must be a whole number of at least 0, not '-1'"),
    ("- repeat: 2\n  until: capacity fade > 20 %\n  steps: [Rest for 1 h]",
     "until: 'capacity fade' is not a per-cycle figure"),
    ("- repeat: 2\n  steps: []", "the steps of a repeat block is empty"),
    ("- for_each: {rate: []}\n  steps: [Rest for 1 h]",
     "the values of 'rate' must be a non-empty list"),
    ("- for_each: {a: [1, 2], b: [3, 4]}\n  steps: [Rest for 1 h]",
     "for_each takes one name and its list of values"),
]


@pytest.mark.parametrize(("body", "message"), STEP_ERRORS, ids=[e[1] for e in STEP_ERRORS])
def test_step_errors(body: str, message: str) -> None:
    text = protocol(body)
    errors = errors_of(text)
    assert message in messages(errors)
    assert checked(text).program is None
    for error in errors:
        assert error.location.file == "test.yaml"
        assert error.location.line >= 1 and error.location.column >= 1


def test_an_empty_value_is_never_dropped_silently() -> None:
    # before the fix, 'charge:' without a value resolved to a program with no step at all
    for body in ("- charge:\n  until: 4.2 V", "- hold:\n  until: 50 mA",
                 "- eis: {start: , stop: 1 Hz, amplitude: 10 mV}", "- set: {temperature: }",
                 "- cccv: {current: , voltage: 4.2 V, cutoff: 50 mA}",
                 "- pulse: {discharge: 1C, duration: , rest: 1 h, count: 2}"):
        result = checked(protocol(body))
        assert result.program is None, body
        assert any("has no value" in e.message for e in result.errors), body


def test_an_error_is_reported_once_not_once_per_for_each_value() -> None:
    errors = errors_of(protocol("""
        - for_each: {rate: [1C, 2C, 3C]}
          steps:
            - discharge: ${rate}
              until: 2 parsecs
    """))
    assert [e.message for e in errors] == [
        "until: '2 parsecs' is not something a step can end on"]


@pytest.mark.parametrize(
    "body",
    ["- rest: 10 parsecs", "- discharge: 1C\n  until: 2 parsecs", "- charge: 1C\n  for: 1 V",
     "- rest: ${nothing}", "- hold: 4.2 V\n  until: ${nothing}",
     "- pulse: {discharge: 1C, duration: 1 s, rest: 1 s}\n  until: 2 parsecs"],
)
def test_a_wrong_ending_is_not_also_called_missing(body: str) -> None:
    (error,) = errors_of(protocol(body))
    assert "can never end" not in error.message


@pytest.mark.parametrize(
    ("head", "body"),
    [
        ("cellrig: 1\ncell: {capacity: 1e308 Ah}\n", "- Charge at 10C until 4.2 V"),
        ("cellrig: 1\ncell: {capacity: 1e308 Ah}\n", "- Charge at 1 A until 1000 %"),
        ("cellrig: 1\ncell: {areal_capacity: 1e300 mAh/cm^2, area: 1e300 cm^2}\n",
         "- Rest for 1 h"),
        ("cellrig: 1\ncell: {capacity: 1e308 Ah}\nlimits: {current: 100C}\n", "- Rest for 1 h"),
    ],
)
def test_overflowing_values_are_errors_not_crashes(head: str, body: str) -> None:
    errors = errors_of(protocol(body, head))
    assert errors
    assert "too large" in messages(errors)


# -- lints --------------------------------------------------------------------------------------

LINTS = [
    (
        "loop ends on a discharge figure but never discharges",
        """
        - repeat:
          until: discharge capacity < 80 % of first
          steps:
            - Charge at 1C until 4.2 V
            - Rest for 1 h
        """,
        """
        - repeat:
          until: discharge capacity < 80 % of first
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
        """,
        "this loop ends on a discharge figure but never discharges, and has no count: "
        "it can never end",
    ),
    (
        "loop with neither count nor until (builder)",
        """
        - repeat:
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
        """,
        """
        - repeat: 10
          steps:
            - Charge at 1C until 4.2 V
            - Discharge at 1C until 2.5 V
        """,
        "this loop has neither a count nor an 'until': it never ends unless a step condition "
        "jumps out of it",
    ),
    (
        "constant voltage without current or time cut-off",
        "- hold: 4.2 V\n  until: 100 mAh",
        "- hold: 4.2 V\n  until: [100 mAh, 2 h]",
        "this constant-voltage step has neither a current nor a time cut-off",
    ),
    (
        "cccv without current or time cut-off",
        "- cccv: {current: 1C, voltage: 4.2 V}\n  until: 100 mAh",
        "- cccv: {current: 1C, voltage: 4.2 V, cutoff: C/20}\n  until: 100 mAh",
        "this constant-voltage step has neither a current nor a time cut-off",
    ),
    (
        "charge ended by time only",
        "- charge: 1C\n  for: 1 h",
        "- charge: 1C\n  for: 1 h\n  until: 4.2 V",
        "this charge step has neither a voltage nor a charge cut-off: only time ends it",
    ),
    (
        "charge at power ended by time only",
        "- Charge at 1 W for 1 h",
        "- Charge at 1 W for 1 h or until 300 mAh",
        "this charge step has neither a voltage nor a charge cut-off: only time ends it",
    ),
    (
        "hold at another voltage than the charge before",
        "- Charge at 1C until 4.2 V\n- Hold at 4.1 V until C/20",
        "- Charge at 1C until 4.2 V\n- Hold at 4.2 V until C/20",
        "this hold is at 4.1 V but the step before it ends at 4.2 V",
    ),
    (
        "current above the current limit",
        "- Discharge at 2C until 2.5 V",
        "- Discharge at 1C until 2.5 V",
        "this step's current (2 A) exceeds the current limit (1.5 A)",
    ),
    (
        "cut-off outside the voltage limits",
        "- Charge at 1C until 4.4 V",
        "- Charge at 1C until 4.25 V",
        "4.4 V lies outside the voltage limits [2.5 V, 4.3 V]",
    ),
    (
        "hold outside the voltage limits",
        "- Hold at 2.4 V until C/20",
        "- Hold at 2.6 V until C/20",
        "2.4 V lies outside the voltage limits [2.5 V, 4.3 V]",
    ),
    (
        "set pressure outside the pressure limits",
        "- set: {pressure: 10 MPa}",
        "- set: {pressure: 2 MPa}",
        "the set pressure 10 MPa lies outside the pressure limits [1 MPa, 5 MPa]",
    ),
    (
        "set temperature outside the temperature limits",
        "- set: {temperature: 80 degC}",
        "- set: {temperature: 45 degC}",
        "the set temperature 80 degC lies outside the temperature limits [0 degC, 60 degC]",
    ),
]

LINT_HEAD = HEAD + ("limits: {voltage: [2.5 V, 4.3 V], current: 1.5C, "
                    "temperature: [0 degC, 60 degC], pressure: [1 MPa, 5 MPa]}\n")


@pytest.mark.parametrize(("wrong", "right", "message"), [lint[1:] for lint in LINTS],
                         ids=[lint[0] for lint in LINTS])
def test_lint_fires_on_the_wrong_file(wrong: str, right: str, message: str) -> None:
    result = checked(protocol(wrong, LINT_HEAD))
    assert result.program is not None, messages(result.errors)
    assert [w.message for w in result.warnings] == [message]
    assert result.warnings[0].severity is Severity.WARNING
    assert result.warnings[0].location.line >= 1


@pytest.mark.parametrize(("wrong", "right", "message"), [lint[1:] for lint in LINTS],
                         ids=[lint[0] for lint in LINTS])
def test_lint_is_quiet_on_the_right_file(wrong: str, right: str, message: str) -> None:
    result = checked(protocol(right, LINT_HEAD))
    assert result.program is not None, messages(result.errors)
    assert result.diagnostics == []


def test_unused_parameter_warns() -> None:
    text = protocol("- Charge at 1C until 4.2 V", HEAD + "parameters: {upper: 4.2 V}\n")
    (warning,) = warnings_of(text)
    assert warning.message == "the parameter 'upper' is never used"
    assert (warning.location.line, warning.location.column) == (4, 14)


def test_lints_can_be_turned_off_and_warnings_do_not_stop_a_program() -> None:
    text = protocol("- charge: 1C\n  for: 1 h")
    assert check(load(text), lints=False).diagnostics == []
    assert check(load(text)).program is not None


# -- the example of DESIGN.md, exactly as written there -----------------------------------------

DESIGN_EXAMPLE = """\
cellrig: 1
name: formation-and-cycling
cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}   # or capacity: 634 mAh; job metadata overrides
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
"""  # noqa: E501 - verbatim


def test_design_example_is_accepted_as_written() -> None:
    protocol_ = load_protocol_text(DESIGN_EXAMPLE, "formation-and-cycling.yaml")
    result = check(protocol_)
    assert result.diagnostics == []
    program = result.program
    assert program is not None
    capacity = 6.8e-3 * 93.28
    assert program.name == "formation-and-cycling"
    assert program.cell.capacity_ah == pytest.approx(capacity)
    assert program.cell.area_m2 == pytest.approx(93.28e-4)
    assert_close(program.limits, Limits(
        voltage_v=Limit(2.4, 4.35), current_a=Limit(None, 2.5 * capacity),
        temperature_c=Limit(-20.0, 70.0), pressure_pa=Limit(0.5e6, 6e6)))
    assert_close(program.record, Recording(every_s=10.0, voltage_change_v=0.005))
    assert program.parameters == {"cycles": "1000", "lower": "2.5 V", "upper": "4.25 V"}
    assert_close(program.steps, (
        SetStep(id=1, label=ANY, temperature_c=60.0, pressure_pa=2e6, wait_temperature_k=0.5,
                wait_pressure_pa=0.1e6, wait_for_s=1800.0),
        EisStep(id=2, label=ANY, mode=EisMode.POTENTIOSTATIC, start_hz=1e6, stop_hz=0.01,
                points_per_decade=10, amplitude=0.01),
        CurrentStep(id=3, label=ANY, direction=CHARGE, until=(v(4.25, AT_LEAST, "4.25 V"),),
                    current_a=0.1 * capacity, voltage_limit_v=4.25),
        VoltageStep(id=4, label=ANY, until=(i(0.05 * capacity, "0.05C"),), voltage_v=4.25),
        RestStep(id=5, label=ANY, until=(t(600.0, "10 min"),)),
        CurrentStep(id=6, label=ANY, direction=DISCHARGE, until=(v(2.5, AT_MOST, "2.5 V"),),
                    current_a=-0.2 * capacity, voltage_limit_v=2.5),
        Repeat(label="repeat 1000x until discharge capacity < 80 % of first", count=1000,
               until=(CycleCondition(CycleMetric.DISCHARGE_CAPACITY, AT_MOST, 0.8, "first",
                                     "discharge capacity < 80 % of first"),),
               steps=(
                   CurrentStep(id=7, label=ANY, direction=CHARGE,
                               until=(v(4.25, AT_LEAST, "4.25 V"),), current_a=0.5 * capacity,
                               voltage_limit_v=4.25),
                   CurrentStep(id=8, label=ANY, direction=DISCHARGE,
                               until=(v(2.5, AT_MOST, "2.5 V"),), current_a=-0.5 * capacity,
                               voltage_limit_v=2.5),
               )),
    ))


def test_design_example_with_submitted_cell_and_parameters() -> None:
    program = resolve(load_protocol_text(DESIGN_EXAMPLE), cell=cell_node("capacity: 1 Ah"),
                      parameters={"upper": "4.3 V", "cycles": "10"})
    assert program.cell.capacity_ah == 1.0
    assert program.cell.area_m2 == pytest.approx(93.28e-4)
    steps = program.iter_steps()
    assert steps[2].until[0].value == 4.3
    assert steps[2].current_a == pytest.approx(0.1)  # type: ignore[attr-defined]
    assert program.steps[-1].count == 10  # type: ignore[union-attr]

"""The JSON Schema's patterns (units, conditions, the step-string grammar) and its steps.

The patterns here mirror what ``quantities.py``, ``conditions.py`` and ``strings.py`` accept,
so that an editor marks a mistake while it is typed; the checker stays the authority (a value
the schema passes can still fail ``cellrig check``, e.g. a C-rate on a cell with no capacity).
Every pattern is written for both Python's ``re`` (jsonschema) and JavaScript's ``RegExp``
with the ``u`` flag (the YAML language server of VS Code): no inline flags, no named groups,
no lone braces, so case-insensitive words are spelt out as character classes.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_DIGITS = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
MAGNITUDE = rf"\+?{_DIGITS}"
NUMBER = rf"[+-]?{_DIGITS}"
REFERENCE = r"\$\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}"
VALUE = rf"(?:{MAGNITUDE}|{REFERENCE})"
SIGNED_VALUE = rf"(?:{NUMBER}|{REFERENCE})"
#: Kinds whose values may be negative; the checker rejects negative values of the others.
SIGNED_KINDS = ("voltage", "temperature", "temperature_difference")
OPERATOR = r"(?:<=|>=|=<|=>|<|>|≤|≥)"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

_AREA = r"(?:[cmuµμ]?m(?:\^|\*\*)2)"
_VOLT = r"(?:[kmnuµμ]?V|(?:kilo|milli|micro)?volts?)"
_AMP = r"(?:[kmnpuµμ]?A|(?:milli|micro|nano)?amp(?:ere)?s?)"
_AMP_HOUR = r"(?:[kmuµμ]?A\s*(?:[*·]\s*)?h)"
_TIME = r"(?:[mµμu]?s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|d|days?|weeks?)"
_CELSIUS = r"(?:degC|°C|celsius|degree_Celsius|degreeC)"

#: The unit part of each kind of quantity: (unit pattern, description, examples).
UNITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "voltage": (_VOLT, "a voltage (V, mV)", ("4.25 V", "2500 mV")),
    "current_absolute": (_AMP, "an absolute current (A, mA, µA)", ("100 mA", "1.2 A")),
    "power": (r"(?:[kmuµμ]?W|(?:kilo|milli|micro)?watts?)", "a power (W, mW)", ("1.5 W",)),
    "resistance": (r"(?:[kmMuµμ]?(?:[Oo]hms?|Ω))", "a resistance (Ohm, mOhm, kOhm)",
                   ("10 Ohm",)),
    "time": (rf"(?:{_TIME}|m)", "a duration (s, min, h, day)", ("10 min", "2 h", "30 s")),
    "duration": (rf"(?:{_TIME}|m)", "a duration (s, min, minutes, h, hours, day)",
                 ("10 minutes", "2 h")),
    "temperature": (rf"(?:{_CELSIUS}|K)", "a temperature (degC, K)", ("60 degC", "298.15 K")),
    "temperature_difference": (rf"(?:{_CELSIUS}|m?K|delta_degC)",
                               "a temperature difference (K, degC)", ("0.5 K",)),
    "pressure": (r"(?:[kMGh]?Pa|m?bar|psi|atm|[kM]?N\s*/\s*(?:mm|cm|m)(?:\^|\*\*)2)",
                 "a pressure (MPa, kPa, bar, psi)", ("2 MPa", "500 kPa")),
    "charge": (_AMP_HOUR, "a charge (Ah, mAh)", ("634 mAh", "1.2 Ah")),
    "charge_or_share": (rf"(?:{_AMP_HOUR}|%|percent)",
                        "a charge (Ah, mAh) or a share of the nominal capacity (%)",
                        ("300 mAh", "120 %")),
    "energy": (r"(?:[kmuµμ]?W\s*(?:[*·]\s*)?h|[kM]?J)", "an energy (Wh, mWh)", ("2.2 Wh",)),
    "frequency": (r"(?:[kMGmuµμ]?Hz)", "a frequency (Hz, kHz, MHz, mHz)", ("1 MHz", "10 mHz")),
    "voltage_rate": (rf"(?:{_VOLT}\s*/\s*(?:ms|s|min|h|hr))",
                     "a rate of voltage change (mV/s, mV/min, V/h)", ("1 mV/min",)),
    "area": (_AREA, "an area (cm^2, mm^2)", ("93.28 cm^2",)),
    "mass": (r"(?:[kmuµμ]?g)", "a mass (g, mg)", ("2.95 g",)),
    "volume": (r"(?:[cmuµμ]?m(?:\^|\*\*)3|[muµμ]?[lL])", "a volume (cm^3, mL)", ("0.66 cm^3",)),
    "areal_capacity": (rf"(?:{_AMP_HOUR}\s*/\s*{_AREA})", "an areal capacity (mAh/cm^2)",
                       ("6.8 mAh/cm^2",)),
    "specific_capacity": (rf"(?:{_AMP_HOUR}\s*/\s*[km]?g)", "a specific capacity (mAh/g)",
                          ("215 mAh/g",)),
}
_C_RATE = rf"(?:{VALUE}\s*)?C(?:\s*/\s*{VALUE})?"
_CURRENT_ANY = (rf"(?:{VALUE}\s*{_AMP}(?:\s*/\s*{_AREA})?|{_C_RATE}|{REFERENCE})")
CURRENT_DESCRIPTION = "a current (mA, A), a C-rate (0.5C, C/20) or a current density (mA/cm^2)"


def ci(word: str) -> str:
    """``word`` matched in any letter case, without an inline flag (JavaScript has none)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def value_pattern(kind: str) -> str:
    """The unanchored pattern of one quantity of ``kind`` (a number and its unit, or ${ref})."""
    if kind == "current":
        return _CURRENT_ANY
    number = SIGNED_VALUE if kind in SIGNED_KINDS else VALUE
    return rf"(?:{number}\s*{UNITS[kind][0]}|{REFERENCE})"


def anchored(pattern: str) -> str:
    """A pattern matching a whole value, surrounding blanks allowed."""
    return rf"^\s*(?:{pattern})\s*$"


def ref(name: str, **extra: Any) -> Schema:
    """A reference to a definition, with sibling keywords (descriptions) if given."""
    return {"$ref": f"#/$defs/{name}", **extra}


def doc(schema: Schema, description: str, *examples: Any, markdown: str | None = None) -> Schema:
    """``schema`` with hover help (``description``, ``markdownDescription``) and examples."""
    documented = {**schema, "description": description}
    if markdown is not None:
        documented["markdownDescription"] = markdown
    if examples:
        documented["examples"] = list(examples)
    return documented


def closed(properties: dict[str, Schema], *required: str, **extra: Any) -> Schema:
    """A mapping with exactly these keys allowed (the checker rejects unknown keys)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}


def either(*schemas: Schema, **extra: Any) -> Schema:
    """Any of ``schemas`` (``anyOf``: editors report the closest alternative's problems)."""
    return {"anyOf": list(schemas), **extra}


# -- conditions -------------------------------------------------------------------------------

_OPTIONAL_OPERATOR = ("voltage", "current", "duration", "charge_or_share", "energy",
                      "voltage_rate")
#: The key of each condition in the mapping form of ``until``, and the kind it holds.
CONDITION_KINDS = {
    "voltage": "voltage", "current": "current", "time": "duration",
    "charge": "charge_or_share", "energy": "energy", "dvdt": "voltage_rate",
    "temperature": "temperature", "pressure": "pressure",
}
def condition_pattern(kind: str) -> str:
    """One step condition of ``kind`` (temperature and pressure need an operator)."""
    value = value_pattern(kind)
    if kind in _OPTIONAL_OPERATOR:
        return rf"(?:{OPERATOR}\s*)?{value}"
    if kind == "temperature":
        value = rf"(?:{value}|{value_pattern('temperature_difference')})"
    return rf"{OPERATOR}\s*{value}"


ANY_CONDITION = "(?:" + "|".join(
    condition_pattern(kind) for kind in dict.fromkeys(CONDITION_KINDS.values())) + ")"
CONDITIONS = rf"{ANY_CONDITION}(?:\s+or\s+{ANY_CONDITION})*"

_DURATION = value_pattern("duration")
# A step needs 'for' or 'until' (the look-ahead), 'for' coming first: "for 2 h or until 2.5 V".
_ENDING = (rf"(?=.*\s(?:{ci('for')}|{ci('until')})\s)(?:\s+{ci('for')}\s+{_DURATION})?"
           rf"(?:\s+{ci('or')})?(?:\s+{ci('until')}\s+{ANY_CONDITION}"
           rf"(?:\s+{ci('or')}\s+{ANY_CONDITION})*)?")
_SOURCE = rf"(?:{_CURRENT_ANY}|{value_pattern('power')})"
STEP_STRING = anchored(
    rf"(?:{ci('charge')}\s+{ci('at')}\s+{_SOURCE}"
    rf"|{ci('discharge')}\s+{ci('at')}\s+(?:{_SOURCE}|{value_pattern('resistance')})"
    rf"|{ci('hold')}\s+{ci('at')}\s+{value_pattern('voltage')}|{ci('rest')})"
    rf"{_ENDING}(?:\s*\(\s*{_DURATION}\s+{ci('period')}\s*\))?"
)
_METRIC = (rf"(?:(?:{ci('discharge')}|{ci('charge')})[\s_]+{ci('capacity')}"
           rf"|{ci('discharge')}[\s_]+{ci('energy')}"
           rf"|(?:{ci('coulombic')}|{ci('energy')})[\s_]+{ci('efficiency')})")
CYCLE_CONDITION = anchored(
    rf"{_METRIC}\s*(?:<=|>=|<|>|≤|≥)\s*(?:{VALUE}\s*(?:%|percent|{_AMP_HOUR}|"
    rf"{UNITS['energy'][0]})?)(?:\s+{ci('of')}\s+(?:{ci('first')}|{ci('max')}|"
    rf"{ci('cycle')}\s+\d+))?"
)


STEP_HELP = {
    "charge": ("Constant-current (or power) charge.", "0.1C", "- charge: 0.1C\n  until: 4.25 V"),
    "discharge": ("Constant-current (or power, or load resistance) discharge.", "0.2C",
                  "- discharge: 0.2C\n  until: 2.5 V"),
    "hold": ("Constant voltage, with an optional current limit.", "4.25 V",
             "- hold: 4.25 V\n  until: 0.05C"),
    "cccv": ("Constant current to a voltage, then constant voltage to a cut-off.", None,
             "- cccv: {current: 0.1C, voltage: 4.25 V, cutoff: 0.05C}"),
    "rest": ("Open circuit for a duration and/or until a condition.", "10 min", "- rest: 10 min"),
    "pulse": ("A train of current pulses with rests between (GITT).", None,
              "- pulse: {discharge: C/20, duration: 10 min, rest: 1 h, count: 20}"),
    "eis": ("An impedance sweep, potentiostatic or galvanostatic.", None,
            "- eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}"),
    "set": ("New chamber temperature and/or stack pressure; 'wait' until they are stable.",
            None, "- set: {temperature: 60 degC}\n  wait: {within: {temperature: 0.5 K}, "
            "for: 30 min}"),
    "stop": ("End the job here, with a reason.", "open the cell", "- stop: post-mortem"),
    "step": ("A step string, with the common keys (tag, record, until...).",
             "Charge at 0.1C until 4.25 V", "- step: Charge at 0.1C until 4.25 V\n  tag: first"),
}
_SNIPPETS = {
    "charge": {"charge": "${1:0.1C}", "until": "${2:4.25 V}"},
    "discharge": {"discharge": "${1:0.2C}", "until": "${2:2.5 V}"},
    "hold": {"hold": "${1:4.25 V}", "until": "${2:0.05C}"},
    "cccv": {"cccv": {"current": "${1:0.1C}", "voltage": "${2:4.25 V}", "cutoff": "${3:0.05C}"}},
    "rest": {"rest": "${1:10 min}"},
    "eis": {"eis": {"start": "${1:1 MHz}", "stop": "${2:10 mHz}", "amplitude": "${3:10 mV}"}},
    "repeat": {"repeat": 100, "steps": ["${1:Charge at 0.5C until 4.25 V}"]},
}


def _common() -> dict[str, Schema]:
    return {
        "tag": doc({"type": ["string", "number"], "not": {"enum": ["next", "stop"]}},
                   "A unique name for this step, for 'then:' jumps and for the data.",
                   "check-up"),
        "name": doc({"type": ["string", "number"]}, "A label for this step in displays.",
                    "formation charge"),
        "record": ref("record", description="When to store a sample during this step."),
        "until": ref("until"),
        "for": ref("duration", description="End the step after this time.", examples=["2 h"]),
    }


def _step(kind: str, value: Schema, *ends: Schema, extra: dict[str, Schema] | None = None
          ) -> Schema:
    """A step mapping: its kind key, the common keys, and what else ends it (``anyOf``)."""
    words, example, yaml = STEP_HELP[kind]
    value = doc(value, words, *([example] if example else []))
    title = "step text with keys" if kind == "step" else f"{kind} step"
    schema = closed({kind: value, **(extra or {}), **_common()}, kind, title=title)
    if ends:
        schema["anyOf"] = list(ends)
    return doc(schema, words, markdown=f"{words}\n\n```yaml\n{yaml}\n```")


def _until_or_for(*alternatives: Schema) -> tuple[Schema, ...]:
    """A step must end: 'until', 'for', or one of ``alternatives`` (a cut-off, a count)."""
    return ({"required": ["until"]}, {"required": ["for"]}, *alternatives)


def _or_reference(mapping: Schema) -> Schema:
    return either(mapping, ref("parameter_ref"))


def _sourcing() -> dict[str, Schema]:
    one = {"minProperties": 1, "maxProperties": 1}
    source = {"current": ref("current"), "power": ref("power")}
    load = {**source, "resistance": ref("resistance")}
    return {
        "charge": _step("charge", either(ref("current"), ref("power"), closed(source, **one)),
                        *_until_or_for()),
        "discharge": _step("discharge", either(ref("current"), ref("power"), ref("resistance"),
                                               closed(load, **one)), *_until_or_for()),
        "hold": _step("hold", either(ref("voltage"), closed({
            "voltage": ref("voltage"),
            "current_limit": ref("current", description="The most current the hold may draw."),
        }, "voltage")), *_until_or_for()),
        "cccv": _step("cccv", _or_reference(closed({
            "current": ref("current", description="The constant current."),
            "voltage": ref("voltage", description="The voltage to reach, then hold."),
            "cutoff": ref("current", description="End the hold when |I| falls to this."),
            "direction": doc({"enum": ["charge", "discharge"]}, "charge (default) or discharge"),
        }, "current", "voltage")), *_until_or_for({"properties": {"cccv": {"required": [
            "cutoff"]}}})),
        "rest": _step("rest", either(ref("time"), {"type": "null"},
                                     {"type": "object", "maxProperties": 0}),
                      *_until_or_for({"properties": {"rest": {"type": "string"}}})),
        "pulse": _step("pulse", _or_reference(closed({
            "charge": ref("current", description="Charging pulses of this current."),
            "discharge": ref("current", description="Discharging pulses of this current."),
            "duration": ref("time", description="How long each pulse lasts."),
            "rest": ref("time", description="The rest after each pulse."),
            "count": ref("count", description="How many pulses (or end on 'until')."),
        }, "duration", "rest", oneOf=[{"required": ["charge"]}, {"required": ["discharge"]}])),
            *_until_or_for({"properties": {"pulse": {"required": ["count"]}}})),
    }


def _eis() -> Schema:
    galvanostatic = {"required": ["mode"], "properties": {"mode": {"const": "galvanostatic"}}}
    return _step("eis", _or_reference(closed({
        "mode": doc({"enum": ["potentiostatic", "galvanostatic"]},
                    "The excitation: a voltage (potentiostatic, default) or a current."),
        "start": ref("frequency", description="The first frequency of the sweep."),
        "stop": ref("frequency", description="The last frequency of the sweep."),
        "per_decade": doc(either({"type": "integer", "minimum": 1, "maximum": 1000},
                                 ref("parameter_ref")), "Points per decade (default 10)."),
        "amplitude": doc(either(ref("voltage"), ref("current")), "The excitation amplitude: a "
                         "voltage (potentiostatic) or a current (galvanostatic)."),
        "dc": doc(either({"enum": ["open_circuit", "ocv", "OCV"]}, ref("voltage"),
                         ref("current")),
                  "The DC level: open_circuit (default), a voltage or a current."),
    }, "start", "stop", "amplitude", **{
        "if": galvanostatic, "then": {"properties": {"amplitude": ref("current")}},
        "else": {"properties": {"amplitude": ref("voltage")}}})))


def _set() -> Schema:
    wait = doc(closed({
        "within": doc(closed({"temperature": ref("temperature_difference"),
                              "pressure": ref("pressure")}),
                      "How close to the setpoints counts as stable (1 K, 0.1 MPa)."),
        "for": ref("time", description="How long the readings must stay stable."),
        "timeout": ref("time", description="Give up (fail the job) after this long."),
    }), "Wait until the temperature and pressure are stable before the next step.",
        {"within": {"temperature": "0.5 K"}, "for": "30 min"})
    return _step("set", _or_reference(closed({
        "temperature": ref("temperature", description="The chamber setpoint."),
        "pressure": ref("pressure", description="The stack pressure setpoint."),
    }, minProperties=1)), extra={"wait": wait})


def _repeat() -> Schema:
    common = _common()
    return doc(closed({
        "repeat": doc(either(ref("count"), {"type": "null"}),
                      "How many times to run the steps (empty: until 'until' holds).", 1000),
        "until": ref("loop_until"), "steps": ref("steps"),
        "tag": common["tag"], "name": common["name"],
    }, "repeat", "steps", title="repeat loop"),
        "Run the steps a number of times, or until a cycle figure passes a value.",
        markdown="Run the steps in a loop.\n\n```yaml\n- repeat: 1000\n  until: discharge "
                 "capacity < 80 % of first\n  steps:\n    - Charge at 0.5C until 4.25 V\n"
                 "    - Discharge at 0.5C until 2.5 V\n```")


def _for_each() -> Schema:
    values = either({"type": "array", "minItems": 1,
                     "items": {"type": ["string", "number", "boolean"]}}, ref("parameter_ref"))
    spec = {"type": "object", "minProperties": 1, "maxProperties": 1,
            "propertyNames": {"pattern": IDENTIFIER}, "additionalProperties": values}
    return doc(closed({
        "for_each": doc(_or_reference(spec), "A name and its list of values; ${name} in the "
                        "steps takes each value in turn.", {"rate": ["0.2C", "0.5C", "1C"]}),
        "steps": ref("steps"), "name": _common()["name"],
    }, "for_each", "steps", title="for_each block"), "Run the steps once per value.",
        markdown="Run the steps once per value.\n\n```yaml\n- for_each: {rate: [0.2C, 1C]}\n"
                 "  steps:\n    - Discharge at ${rate} until 2.5 V\n```")


def step_defs() -> dict[str, Schema]:
    """Every step kind, the step itself and the list of steps."""
    steps = {
        **_sourcing(), "eis": _eis(), "set": _set(),
        "stop": _step("stop", either({"type": "string"}, {"type": "null"}, {"const": True})),
        "step": _step("step", ref("step_string")), "repeat": _repeat(), "for_each": _for_each(),
    }
    defs = {f"step_{kind}": schema for kind, schema in steps.items()}
    defs["step_string"] = doc(
        {"type": "string", "pattern": STEP_STRING,
         "patternErrorMessage": "expected 'Charge|Discharge at <current> for|until ...', "
                                "'Hold at <voltage> until ...' or 'Rest for <duration>'"},
        "A step in PyBaMM's experiment grammar.", "Charge at 0.1C until 4.25 V",
        "Discharge at C/3 for 2 hours or until 2.5 V", "Rest for 10 minutes")
    defs["step"] = doc(
        either(ref("step_string"), ref("parameter_ref"), *(ref(f"step_{k}") for k in steps)),
        "A step: a step string (PyBaMM's grammar) or a mapping with one kind key (charge, "
        "discharge, hold, cccv, rest, pulse, eis, set, stop, step, repeat, for_each).",
        markdown="A step string such as `Charge at 0.1C until 4.25 V`, or a mapping with "
                 "exactly one kind: `charge`, `discharge`, `hold`, `cccv`, `rest`, `pulse`, "
                 "`eis`, `set`, `stop`, `step`, `repeat`, `for_each`.",
    )
    # Completion snippets of the VS Code YAML extension (other validators ignore the keyword).
    defs["step"]["defaultSnippets"] = [{"label": f"{kind} (template)", "body": body}
                                       for kind, body in _SNIPPETS.items()]
    defs["steps"] = doc({"type": "array", "minItems": 1, "items": ref("step")},
                        "The steps, run in order.", ["Charge at 0.1C until 4.25 V"])
    return defs

"""The JSON Schema (draft 2020-12) of protocol files, for editors: ``cellrig schema``.

With the YAML extension of VS Code, a protocol file that starts with
``# yaml-language-server: $schema=cellrig.schema.json`` is validated and completed as it is
typed, with every key's description shown on hover. This module builds the definitions of
quantities and conditions, the sections (cell, limits, record, parameters) and the top level;
``schema_steps.py`` holds the patterns (units, the step-string grammar) and the steps. The
schema is a typing aid, and ``cellrig check`` stays the authority: it resolves parameters
and the cell, which a schema cannot.
"""

from __future__ import annotations

from typing import Any

from .document import FORMAT_VERSION
from .schema_steps import (
    CONDITION_KINDS,
    CONDITIONS,
    CURRENT_DESCRIPTION,
    CYCLE_CONDITION,
    IDENTIFIER,
    REFERENCE,
    UNITS,
    Schema,
    anchored,
    closed,
    condition_pattern,
    doc,
    either,
    ref,
    step_defs,
    value_pattern,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_CELL_FIELDS: dict[str, Schema] = {
    "id": doc(ref("text"), "The cell's identifier (a barcode, a batch and number).", "B17-03"),
    "capacity": ref("charge", description="The nominal capacity: C-rates and % of capacity "
                    "are resolved against it.", examples=["634 mAh"]),
    "areal_capacity": ref("areal_capacity", description="Areal capacity; with 'area' it gives "
                          "the nominal capacity.", examples=["6.8 mAh/cm^2"]),
    "area": ref("area", description="Electrode area; current densities are resolved against "
                "it.", examples=["93.28 cm^2"]),
    "mass": ref("mass", description="Active mass; with 'specific_capacity' it gives the "
                "nominal capacity.", examples=["2.95 g"]),
    "specific_capacity": ref("specific_capacity", description="Specific capacity of the active "
                             "material; needs 'mass'.", examples=["215 mAh/g"]),
    "chemistry": doc(ref("text"), "The chemistry, in words.", "NMC811 | LPSCl | Li (anode-free)"),
    "format": doc(ref("text"), "The cell format.", "pouch", "coin CR2032"),
    "reference_offset": ref("voltage", description="Potential of the counter electrode vs "
                            "Li+/Li (Li-In: 0.62 V), so voltages can be shown vs Li+/Li; "
                            "cut-offs stay terminal voltages.", examples=["0.62 V"]),
    "volume": ref("volume", description="The cell's volume (for energy density).",
                  examples=["0.66 cm^3"]),
    "fabrication": {"description": "How the cell was made: free-form, stored with the data."},
    "notes": doc(ref("text"), "Free notes, stored with the data."),
}
_LIMIT_HELP = {
    "voltage": ("voltage", "The voltage window; outside it the job aborts.", ["2.4 V", "4.35 V"]),
    "current": ("current", "The largest current magnitude allowed.", "2.5C"),
    "temperature": ("temperature", "The temperature window.", ["-20 degC", "70 degC"]),
    "pressure": ("pressure", "The stack pressure window.", ["0.5 MPa", "6 MPa"]),
    "charge_per_step": ("charge_or_share", "The most charge one step may pass (mAh or % of "
                        "nominal): catches a cut-off that never comes.", "120 %"),
}
_WINDOWS = ("voltage", "temperature", "pressure")


def quantity_defs() -> dict[str, Schema]:
    """One definition per kind of quantity, and the parameter reference."""
    defs: dict[str, Schema] = {}
    for kind, (_unit, words, examples) in {
        **UNITS, "current": ("", CURRENT_DESCRIPTION, ("0.5C", "C/20", "100 mA", "1 mA/cm^2")),
    }.items():
        defs[kind] = doc(
            {"type": "string", "pattern": anchored(value_pattern(kind)),
             "patternErrorMessage": f"expected {words}, or a ${{parameter}}",
             "errorMessage": f"expected {words} with its unit, e.g. {examples[0]}"},
            f"{words[0].upper()}{words[1:]}; the unit is required. A ${{name}} reference to a "
            "parameter may stand for the value or the number.", *examples,
        )
    defs["parameter_ref"] = doc(
        {"type": "string", "pattern": anchored(REFERENCE)},
        "A reference to a parameter of the protocol (${name}), replaced by its value.",
    )
    defs["count"] = either(
        {"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+\s*$"},
        ref("parameter_ref"), description="A whole number, or a ${parameter}.",
    )
    defs["text"] = doc({"type": ["string", "number"]}, "Free text.")
    return defs


#: Hover help and an example of each condition key.
_CONDITION_HELP = {
    "voltage": ("Ends the step when the voltage reaches this value (rising on a charge, falling "
                "on a discharge; write < or > on steps without a direction).", "4.25 V"),
    "current": ("Ends the step when the current magnitude falls to this value (a CV taper).",
                "0.05C"),
    "time": ("Ends the step after this time.", "10 h"),
    "charge": ("Ends the step after this charge has passed in the step (mAh, or % of nominal).",
               "50 %"),
    "energy": ("Ends the step after this energy has passed in the step.", "1 Wh"),
    "dvdt": ("Ends the step when |dV/dt| falls to this value (a relaxing rest).", "1 mV/h"),
    "temperature": ("Ends the step when the cell temperature passes this value; needs < or >.",
                    "> 59.5 degC"),
    "pressure": ("Ends the step when the stack pressure passes this value; needs < or >.",
                 "< 1.8 MPa"),
}


def condition_defs() -> dict[str, Schema]:
    """``until`` of steps (text, mapping, list) and of loops, and ``then``."""
    keyed = {
        key: doc({"type": "string", "pattern": anchored(
            rf"{condition_pattern(kind)}(?:\s+or\s+{condition_pattern(kind)})*")},
            *_CONDITION_HELP[key])
        for key, kind in CONDITION_KINDS.items()
    }
    keyed["then"] = doc({"type": ["string", "number"]},
                        "Where to go when this condition ends the step: the tag of a step, "
                        "'next' (the default) or 'stop' (end the job).", "check-up", "stop")
    conditions_help = ("When the step ends: a voltage, a current or C-rate, a charge (mAh, %), an "
                       "energy, a duration, a dV/dt, or a temperature or pressure after < or >; "
                       "several joined by 'or'.")
    return {
        "condition_text": doc(
            {"type": "string", "pattern": anchored(CONDITIONS),
             "patternErrorMessage": "expected a condition such as 4.25 V, 0.05C, 2 h, 50 %, "
                                    "'> 59.5 degC', joined by 'or'"},
            conditions_help, "4.25 V", "0.05C or 5 h", "< 2.5 V"),
        "condition_map": doc(closed(keyed, minProperties=1),
                             "Conditions by what they watch; 'then' says where to go next.",
                             {"voltage": "2.5 V", "time": "10 h"}),
        "until": doc(
            # The mapping first: the YAML extension reports the first of equally bad matches.
            either(ref("condition_map"), ref("condition_text"),
                   {"type": "array", "minItems": 1,
                    "items": either(ref("condition_map"), ref("condition_text"))}),
            "Conditions that end the step (any one suffices): text, a mapping, or a list "
            "of those when conditions lead to different next steps.",
            "4.25 V", {"current": "0.05C", "time": "3 h"},
            markdown="Conditions that end the step; any one suffices.\n\n"
                     "```yaml\nuntil: 4.25 V\nuntil: {voltage: 2.5 V, time: 10 h}\nuntil:\n"
                     "  - {voltage: 2.0 V, then: check-up}\n  - voltage: 2.5 V\n```",
        ),
        "loop_until": doc(
            either({"type": "string", "pattern": CYCLE_CONDITION,
                    "patternErrorMessage": "expected e.g. 'discharge capacity < 80 % of first'"},
                   {"type": "array", "minItems": 1, "items": {"type": "string",
                                                              "pattern": CYCLE_CONDITION}},
                   ref("parameter_ref")),
            "Ends the loop after a cycle whose figure passes the value: discharge capacity, "
            "charge capacity, discharge energy, coulombic efficiency or energy efficiency, "
            "absolute or as a share 'of first', 'of max' or 'of cycle N'.",
            "discharge capacity < 80 % of first", "coulombic efficiency < 99 %"),
    }


def _pair(kind: str) -> Schema:
    return {"type": "array", "minItems": 2, "maxItems": 2, "items": ref(kind)}


def _limit(name: str) -> Schema:
    kind, words, example = _LIMIT_HELP[name]
    delay = ref("time", description="How long a breach must last before the job aborts.")
    if name in _WINDOWS:
        long = closed({"range": doc(_pair(kind), "[low, high]: a breach aborts the job."),
                       "warn": doc(_pair(kind), "[low, high]: a breach raises a warning."),
                       "delay": delay}, "range")
        short = doc(_pair(kind), "[low, high]")
    else:
        long = closed({"max": ref(kind, description="A breach aborts the job."),
                       "warn": ref(kind, description="A breach raises a warning."),
                       "delay": delay}, "max")
        short = ref(kind)
    return doc(either(short, long, ref("parameter_ref")), words, example,
               markdown=f"{words} Short form `{name}: {example}` (a list is `[low, high]`); "
                        "long form with `range`/`max`, `warn` and `delay`.")


def _section_defs() -> dict[str, Schema]:
    """``cell``, ``limits``, ``record`` and ``parameters``."""
    plain = either({"type": "string", "not": {"pattern": r"^[\s\S]*\$\{"}},
                   {"type": ["number", "boolean"]},
                   {"type": "array", "items": {"type": ["string", "number", "boolean"]}})
    return {
        "cell": doc(
            either(closed(_CELL_FIELDS), ref("parameter_ref")),
            "The cell: its nominal capacity (directly, areal capacity and area, or specific "
            "capacity and mass) and what describes it. A submitted cell overrides it.",
            {"capacity": "634 mAh"}, {"areal_capacity": "6.8 mAh/cm^2", "area": "93.28 cm^2"},
            markdown="The cell the protocol is written for; the cell given at submission "
                     "overrides it field by field.\n\n```yaml\ncell: {areal_capacity: "
                     "6.8 mAh/cm^2, area: 93.28 cm^2}\n# or: cell: {capacity: 634 mAh}\n```",
        ),
        "limits": doc(
            either(closed({name: _limit(name) for name in _LIMIT_HELP}), ref("parameter_ref")),
            "Safety limits: a breach aborts the job and puts the rig in its safe state "
            "(limits are not step terminations).",
            {"voltage": ["2.4 V", "4.35 V"], "current": "2.5C"},
        ),
        "record": doc(
            either(closed({
                "every": ref("time", description="Store a sample at least this often.",
                             examples=["10 s"]),
                "voltage_change": ref("voltage", description="...and whenever the voltage "
                                      "changed by this much.", examples=["5 mV"]),
                "current_change": ref("current_absolute", description="...and whenever the "
                                      "current changed by this much.", examples=["10 mA"]),
            }), ref("parameter_ref")),
            "When to store a sample (default: every 10 s).",
            {"every": "10 s", "voltage_change": "5 mV"},
        ),
        "parameter": doc(
            either(plain, closed({
                "default": doc(plain, "The value used unless the submission overrides it."),
                "description": doc(ref("text"), "What the parameter means."),
            }, "default")),
            "A parameter's default value (with its unit), or {default, description}.",
            "4.25 V", 1000, {"default": 1000, "description": "cycles before end of life"},
        ),
    }


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema of protocol files (draft 2020-12), with hover help and examples."""
    defs = {**quantity_defs(), **condition_defs(), **step_defs(), **_section_defs()}
    for name, definition in defs.items():  # the heading of hover help in the editor
        definition.setdefault("title", name.replace("_", " "))
    properties: dict[str, Schema] = {
        "cellrig": doc({"const": FORMAT_VERSION}, "The format version of the file: 1.",
                       FORMAT_VERSION),
        "name": doc(ref("text"), "The protocol's name (default: the file name).",
                    "formation-and-cycling"),
        "description": doc(ref("text"), "What the protocol does, for people.",
                           "Formation, then cycling to 80 % of first discharge capacity"),
        "metadata": doc({"type": "object"}, "Free-form information for the lab (project, "
                        "author, references); stored with every job, not interpreted.",
                        {"project": "anode-free ASSB", "author": "j.doe"}),
        "cell": ref("cell"),
        "parameters": doc(
            {"type": "object", "propertyNames": {"pattern": IDENTIFIER},
             "additionalProperties": ref("parameter")},
            "Values a submission may override, used in the file as ${name}.",
            {"upper": "4.25 V", "cycles": 1000},
            markdown="Values a submission may override (`-p upper=4.3V`), used in the file "
                     "as `${name}`.\n\n```yaml\nparameters: {upper: 4.25 V, cycles: 1000}\n```",
        ),
        "limits": ref("limits"),
        "record": ref("record"),
        "steps": ref("steps"),
    }
    return {
        "$schema": DIALECT,
        "title": "cellrig protocol",
        "description": "A battery test protocol for cellrig: the cell, safety limits, "
                       "recording rule and steps. Every quantity carries its unit.",
        "type": "object",
        "required": ["cellrig", "steps"],
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }

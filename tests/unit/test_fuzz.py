"""Property tests: whatever a person writes, cellrig answers with located diagnostics.

Valid protocol files are mutated (keys dropped or renamed, values replaced by wrong types,
wrong units, garbage and unicode text, deep nesting, huge numbers), cut and spliced as text,
or replaced by random YAML. Loading and resolving must then either succeed, giving a program
that serialises, or raise :class:`InputError` (``ProtocolError``) with at least one error that
names the file, a line and a column. Any other exception is a bug.

The number of examples comes from the hypothesis profile in ``conftest.py``.
"""

from __future__ import annotations

import copy
import string
from typing import Any

import pytest
import yaml
from conftest import GOLDEN_DIR
from hypothesis import event, given
from hypothesis import strategies as st
from test_roundtrip import EVERY_KIND
from test_steps import DESIGN_EXAMPLE

from cellrig.errors import Diagnostic, InputError, ProtocolError
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.library import library_files
from cellrig.protocols.program import Program
from cellrig.protocols.quantities import (
    Kind,
    QuantityError,
    classify,
    parse_charge,
    parse_current,
    parse_quantity,
)
from cellrig.protocols.render import render_program
from cellrig.protocols.resolve import check
from cellrig.protocols.strings import StepStringError, parse_step_string

FILE = "fuzz.yaml"

SOURCES: list[str] = [
    DESIGN_EXAMPLE,
    EVERY_KIND,
    *(entry.read_text(encoding="utf-8") for entry in library_files()),
]
TREES: list[Any] = [yaml.safe_load(text) for text in SOURCES]


def _assert_located(diagnostic: Diagnostic, files: tuple[str, ...] = (FILE,)) -> None:
    location = diagnostic.location
    assert location.file, diagnostic
    assert location.file in files or location.file.startswith("parameter "), diagnostic
    assert location.line >= 1, diagnostic
    assert location.column >= 1, diagnostic
    rendered = diagnostic.render()
    assert rendered.startswith(f"{location.file}:{location.line}:{location.column}: ")


def exercise(text: str, parameters: dict[str, object] | None = None,
             observe: bool = True) -> None:
    """Load and resolve ``text``: success, or located diagnostics; nothing else."""

    def outcome(name: str) -> None:
        if observe:  # shown by pytest --hypothesis-show-statistics
            event(f"outcome: {name}")

    files = (FILE, "-p")
    refused: ProtocolError | None = None
    try:
        protocol = load_protocol_text(text, FILE)
    except ProtocolError as exc:
        refused = exc
    if refused is not None:
        assert refused.diagnostics, "a ProtocolError must carry an error"
        for diagnostic in [*refused.diagnostics, *refused.warnings]:
            _assert_located(diagnostic, files)
        assert refused.render()
        outcome("the file is refused when loaded")
        return
    result = check(protocol, None, parameters)
    for diagnostic in result.diagnostics:
        _assert_located(diagnostic, files)
    if result.program is None:
        assert result.errors, "no program, but no error either"
        outcome("the file is refused when resolved")
        return
    outcome("a program")
    assert not result.errors
    program = result.program
    encoded = program.to_json()
    assert Program.from_json(encoded) == program
    assert render_program(program)


# -- what replaces a value ----------------------------------------------------------------------

QUANTITY_TEXTS = [
    "4.25 V", "2.5 V", "0.5C", "C/20", "200 mA", "1 mA/cm^2", "10 min", "2 h", "60 degC",
    "0.5 K", "2 MPa", "300 mAh", "50 %", "1 Wh", "1 W", "10 Ohm", "1 MHz", "10 mHz",
    "1 mV/min", "93.28 cm^2", "6.8 mAh/cm^2", "215 mAh/g", "2.95 g", "4.2 A", "10 V",
    "-1 A", "0 s", "-5 min", "1e308 Ah", "1e400 V", "1e308 kV", "C/0", "0C", "-0.5C",
    "< 4.2 V", "> 30 degC", "discharge capacity < 80 % of first", "coulombic efficiency < 9",
    "Charge at 1C until 4.2 V", "Rest for 10 minutes", "Hold at 4.2 V until C/20",
    "Discharge at C/3 for 2 hours or until 2.5 V", "Chrage at 1C", "Charge at 4.2 V",
    "${upper}", "${lower}", "${cycles}", "${nope}", "${", "$upper", "${rates}",
    "open_circuit", "galvanostatic", "discharge", "next", "stop", "check-up",
    "1 10^10^10", "1 V**", "1 (V", "1 degF", "Charge at 1 V^9^9^9 until 4 V",
]

huge_numbers = st.one_of(
    st.integers(min_value=10**9, max_value=10**30),
    st.integers(max_value=-(10**9), min_value=-(10**30)),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, 1e-300]),
    st.builds(lambda n, u: f"{n} {u}", st.sampled_from(["1e308", "9" * 400, "1e-400", "-1e308"]),
              st.sampled_from(["V", "A", "C", "s", "Ah", "MPa", "degC", "Hz", "%"])),
)
garbage_text = st.text(max_size=40)
unicode_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                       max_size=30)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(QUANTITY_TEXTS), garbage_text, unicode_text, huge_numbers,
)
keys = st.one_of(
    st.sampled_from(["cellrig", "name", "cell", "parameters", "limits", "record", "steps",
                     "charge", "discharge", "hold", "cccv", "rest", "pulse", "eis", "set",
                     "stop", "step", "repeat", "for_each", "until", "for", "tag", "then",
                     "current", "voltage", "time", "wait", "within", "capacity", "area",
                     "default", "max", "range", "warn", "delay", "mode", "dc", "count"]),
    st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)


def deep(depth: int, leaf: object) -> object:
    """``leaf`` inside ``depth`` levels of alternating lists and mappings."""
    node = leaf
    for level in range(depth):
        node = [node] if level % 2 else {"steps": node}
    return node


# -- mutating a tree ----------------------------------------------------------------------------


def _mutate(draw: st.DrawFn, node: Any, depth: int = 0) -> Any:
    containers = isinstance(node, dict | list) and len(node) > 0
    # the root is mutated inside, mostly in its steps; deeper, one time in four right here
    if containers and depth < 12 and (depth == 0 or draw(st.integers(0, 3)) > 0):
        index = draw(st.integers(0, len(node) - 1))
        if isinstance(node, dict):
            key = list(node)[index]
            if depth == 0 and "steps" in node and draw(st.integers(0, 3)) > 0:
                key = "steps"
            node[key] = _mutate(draw, node[key], depth + 1)
        else:
            node[index] = _mutate(draw, node[index], depth + 1)
        return node
    action = draw(st.sampled_from(["replace", "drop", "rename", "duplicate", "wrap", "deepen",
                                   "nested", "empty"]))
    if action == "drop" and containers:
        index = draw(st.integers(0, len(node) - 1))
        if isinstance(node, dict):
            del node[list(node)[index]]
        else:
            del node[index]
        return node
    if action == "rename" and isinstance(node, dict) and node:
        old = draw(st.sampled_from(list(node)))
        new = draw(keys)
        return {(new if key == old else key): value for key, value in node.items()}
    if action == "duplicate" and isinstance(node, list) and node:
        return node + node[: draw(st.integers(1, len(node)))]
    if action == "wrap":
        return draw(st.sampled_from([[node], {"step": node}, {"repeat": 2, "steps": [node]},
                                     {"for_each": {"x": [node]}, "steps": ["Rest for 1 h"]}]))
    if action == "deepen":
        return deep(draw(st.integers(10, 80)), node)
    if action == "nested":
        return draw(nested)
    if action == "empty":
        return draw(st.sampled_from([None, "", [], {}]))
    return draw(scalars)


@st.composite
def mutated_files(draw: st.DrawFn) -> str:
    tree = copy.deepcopy(draw(st.sampled_from(TREES)))
    for _ in range(draw(st.integers(1, 4))):
        tree = _mutate(draw, tree)
    return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False, width=10**6)


@st.composite
def spliced_texts(draw: st.DrawFn) -> str:
    """A valid file cut, spliced and sprinkled with characters at the text level."""
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 5))):
        lines = text.splitlines(keepends=True) or [""]
        action = draw(st.sampled_from(["delete line", "duplicate line", "insert", "truncate",
                                       "swap lines", "dedent", "replace token"]))
        at = draw(st.integers(0, len(lines) - 1))
        if action == "delete line":
            del lines[at]
        elif action == "duplicate line":
            lines.insert(at, lines[at])
        elif action == "swap lines":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif action == "dedent":
            lines[at] = lines[at].lstrip(" ")
        elif action == "replace token":
            words = lines[at].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(
                st.one_of(st.sampled_from(QUANTITY_TEXTS), garbage_text, unicode_text))
            lines[at] = " ".join(words)
        text = "".join(lines)
        if action == "insert":
            position = draw(st.integers(0, len(text)))
            text = text[:position] + draw(st.one_of(
                st.sampled_from([":", "- ", "{", "}", "[", "]", "'", '"', "\t", "\n", "&a ", "*a",
                                 "!!str ", "!tag ", "%YAML 1.2\n", "---\n", "...\n", "#", "\\",
                                 "${", "\x00", "\ufeff"]),
                garbage_text)) + text[position:]
        elif action == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
    return text


yaml_tokens = st.sampled_from([
    "cellrig: 1\n", "name: x\n", "steps:\n", "  - ", "- ", "Rest for 1 h\n", "charge: 1C\n",
    "until: 4.2 V\n", "cell: {capacity: 1 Ah}\n", "{", "}", "[", "]", ": ", ", ", "\n", "  ",
    "&anchor ", "*anchor", "<<: *anchor\n", "? ", "|\n", ">\n", "'", '"', "!!binary ", "~",
    "repeat: 3\n", "for_each: {x: [1, 2]}\n", "${x}", "parameters: {x: 1 h}\n", "%TAG ! x\n",
    "---\n", "...\n",
])


@st.composite
def random_yaml(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(st.one_of(yaml_tokens, garbage_text), max_size=40)))


@st.composite
def random_documents(draw: st.DrawFn) -> str:
    header = draw(st.sampled_from(["cellrig: 1\n", "", "cellrig: 1\ncell: {capacity: 1 Ah}\n"]))
    body = draw(nested)
    try:
        dumped = yaml.safe_dump({"steps": body} if draw(st.booleans()) else body,
                                allow_unicode=True, width=10**6)
    except yaml.YAMLError:  # pragma: no cover - safe_dump accepts all of these
        dumped = ""
    return header + dumped


# -- the properties -----------------------------------------------------------------------------


@given(mutated_files())
def test_mutated_files_give_located_errors_or_a_program(text: str) -> None:
    exercise(text)


@given(spliced_texts())
def test_spliced_text_gives_located_errors_or_a_program(text: str) -> None:
    exercise(text)


@given(st.one_of(random_yaml(), random_documents(), st.text(max_size=200)))
def test_random_yaml_gives_located_errors_or_a_program(text: str) -> None:
    exercise(text)


step_words = st.one_of(
    st.sampled_from(["Charge", "Discharge", "Hold", "Rest", "charge", "REST", "at", "for",
                     "until", "or", "(", ")", "period", "1 minute period", "<", ">", "C/20",
                     "0.5C", "0.5 C", "200 mA", "1W", "10 Ohm", "4.2 V", "4.2V", "50 %",
                     "300 mAh", "2 hours", "10 m", "-1C", "1e400C", "C/0", "1 mA/cm^2",
                     "1 mV/min", "59.5 degC", "1 10^10^10", "${upper}"]),
    garbage_text,
)


@given(st.lists(step_words, min_size=1, max_size=10).map(" ".join))
def test_step_strings_give_located_errors_or_a_program(step: str) -> None:
    head = "cellrig: 1\ncell: {capacity: 1 Ah, area: 10 cm^2}\nparameters: {upper: 4.2 V}\n"
    quoted = yaml.safe_dump([step], allow_unicode=True, width=10**6)
    exercise(head + "steps:\n" + "".join(f"  {line}\n" for line in quoted.splitlines()))
    error: StepStringError | None = None
    try:
        parse_step_string(step)
    except StepStringError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.offset <= len(step)
        assert error.message and error.expected and error.example


override_values = st.one_of(
    st.sampled_from(QUANTITY_TEXTS), garbage_text, unicode_text, st.integers(), st.booleans(),
    st.floats(allow_nan=True), st.lists(st.sampled_from(QUANTITY_TEXTS), max_size=3),
)


@given(
    st.sampled_from(SOURCES),
    st.dictionaries(st.sampled_from(["upper", "lower", "cycles", "rates", "rate", "uper",
                                     "voltage", "temperature", ""]),
                    override_values, max_size=4),
)
def test_parameter_overrides_give_located_errors_or_a_program(
    text: str, parameters: dict[str, object]
) -> None:
    exercise(text, parameters)


quantity_text = st.one_of(
    st.builds(lambda number, unit: f"{number}{unit}",
              st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str),
                        st.integers().map(str), st.sampled_from(["", "-", ".", "1e", "C/"])),
              st.one_of(st.sampled_from(["", " ", " V", "mA", " C", "C", " /20", " mA/cm^2",
                                         " degC", " K", " %", " MPa", " h", " m", " Ohm",
                                         " 10^10^10", " V**", " (V", " degF", " V/0"]),
                        garbage_text)),
    garbage_text,
    unicode_text,
)


@given(quantity_text, st.sampled_from(list(Kind)))
def test_quantities_raise_only_quantity_errors(text: str, kind: Kind) -> None:
    for parse in (lambda: parse_quantity(text, kind), lambda: parse_current(text),
                  lambda: parse_charge(text)):
        error: QuantityError | None = None
        try:
            parse()
        except QuantityError as exc:
            error = exc
        if error is not None:
            assert error.message and error.expected and error.example
    classify(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "[" * 5_000 + "]" * 5_000,
        "{a: " * 50_000,
        "- " * 50_000 + "x",
        "cellrig: 1\nsteps:\n" + "".join("  " * level + "- repeat: 2\n" + "  " * level
                                          + "  steps:\n" for level in range(300)),
    ],
    ids=["open brackets", "closed brackets", "flow mappings", "block sequences", "repeats"],
)
def test_deep_nesting_is_refused_not_a_crash(text: str) -> None:
    # libyaml's composer recursed once per level in C: this used to kill the process
    exercise(text, observe=False)
    with pytest.raises(ProtocolError, match="nested more than 64 levels deep"):
        load_protocol_text(text, FILE)


def test_golden_files_pass_the_property() -> None:
    # the hand-written broken files meet the same contract
    for path in sorted(GOLDEN_DIR.glob("*.yaml")):
        exercise(path.read_text(encoding="utf-8"), observe=False)


def test_input_error_is_the_only_escape() -> None:
    assert issubclass(ProtocolError, InputError)

"""Shared helpers of the protocol-language unit tests, and the hypothesis profiles.

Profiles: ``ci`` (chosen when the environment has ``CI=true``) runs enough examples that the
fuzz tests together try thousands of protocol files; ``dev`` (the default elsewhere) runs a
few hundred so that a local run stays quick. ``HYPOTHESIS_PROFILE`` picks one explicitly.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cellrig.errors import Diagnostic, InputError, ProtocolError, Severity
from cellrig.protocols.document import Protocol, load_protocol_text
from cellrig.protocols.program import Node, Program, Repeat, Sequence, Step
from cellrig.protocols.resolve import Resolution, check, load_cell_text, resolve
from cellrig.protocols.yamlsource import YMap

#: Examples per fuzz test; the fuzz module has six property tests.
CI_EXAMPLES = 1500
DEV_EXAMPLES = 60

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=DEV_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)

UNIT_DIR = Path(__file__).resolve().parent
GOLDEN_DIR = UNIT_DIR / "golden"

#: A cell with a round capacity and area, so expected currents are easy to read.
ROUND_CELL = "cell: {capacity: 1 Ah, area: 10 cm^2}\n"


def load(text: str, filename: str = "test.yaml") -> Protocol:
    """A protocol from text (raises ProtocolError for header errors)."""
    return load_protocol_text(text, filename)


def cell_node(text: str | None) -> YMap | None:
    """A submitted cell from YAML text, or None."""
    return None if text is None else load_cell_text(text, "cell.yaml")


def program_of(
    text: str, cell: str | None = None, parameters: Mapping[str, object] | None = None
) -> Program:
    """The resolved program of a protocol text; fails the test with the rendered errors."""
    try:
        return resolve(load(text), cell_node(cell), parameters)
    except InputError as exc:  # pragma: no cover - a failing test shows why
        pytest.fail("the protocol should be valid, but:\n" + exc.render())


def checked(
    text: str, cell: str | None = None, parameters: Mapping[str, object] | None = None
) -> Resolution:
    """``check`` of a protocol text whose header is valid."""
    return check(load(text), cell_node(cell), parameters)


def findings(
    text: str,
    filename: str = "test.yaml",
    cell: str | None = None,
    parameters: Mapping[str, object] | None = None,
) -> list[Diagnostic]:
    """Every error and warning a protocol text produces, loading and resolving it."""
    try:
        protocol = load_protocol_text(text, filename)
    except ProtocolError as exc:
        return [*exc.diagnostics, *exc.warnings]
    result = check(protocol, cell_node(cell), parameters)
    return [*result.errors, *result.warnings]


def errors_of(
    text: str, cell: str | None = None, parameters: Mapping[str, object] | None = None
) -> list[Diagnostic]:
    """The errors only."""
    found = findings(text, cell=cell, parameters=parameters)
    return [d for d in found if d.severity is Severity.ERROR]


def warnings_of(
    text: str, cell: str | None = None, parameters: Mapping[str, object] | None = None
) -> list[Diagnostic]:
    """The warnings only."""
    found = findings(text, cell=cell, parameters=parameters)
    return [d for d in found if d.severity is Severity.WARNING]


def messages(diagnostics: list[Diagnostic]) -> str:
    """All messages, one a line (for ``in`` assertions with a readable failure)."""
    return "\n".join(d.message for d in diagnostics)


def leaf_steps(nodes: tuple[Node, ...]) -> list[Step]:
    """Every step of a tree in order (loop bodies once)."""
    found: list[Step] = []
    for node in nodes:
        if isinstance(node, Repeat | Sequence):
            found.extend(leaf_steps(node.steps))
        else:
            found.append(node)
    return found


def token_at(source: str, line: int, column: int) -> str:
    """The text from a 1-based line and column to the end of that line."""
    return source.splitlines()[line - 1][column - 1:]


@pytest.fixture
def tmp_protocol(tmp_path: Path) -> Callable[..., Path]:
    """Write a protocol (or any) file into a temporary folder and return its path."""

    def write(text: str, name: str = "protocol.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def assert_close(actual: object, expected: object, path: str = "value") -> None:
    """Deep equality of dataclasses, tuples and dicts, with floats compared to 1e-9."""
    if isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(actual, int | float), f"{path}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), (
            f"{path}: {actual!r} != {expected!r}")
        return
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        assert type(actual) is type(expected), f"{path}: {type(actual).__name__} is not " \
            f"{type(expected).__name__}"
        for item in dataclasses.fields(expected):
            assert_close(getattr(actual, item.name), getattr(expected, item.name),
                         f"{path}.{item.name}")
        return
    if isinstance(expected, tuple | list):
        assert isinstance(actual, tuple | list), f"{path}: {actual!r} is not a sequence"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, not {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_close(got, want, f"{path}[{index}]")
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), f"{path}: keys"
        for key in expected:
            assert_close(actual[key], expected[key], f"{path}[{key!r}]")
        return
    assert actual == expected, f"{path}: {actual!r} != {expected!r}"

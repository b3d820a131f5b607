"""Safe YAML with a position on every node.

Protocol files are data, never code: the text is *composed* into a node graph (no object is
ever constructed from a tag) and turned into three small node types that remember the line and
column each value came from, so every later error can point at it. Aliases are allowed but
counted, so a file cannot expand into millions of nodes; custom tags are refused.

Composing uses PyYAML's libyaml binding where it is available (about five times faster than
the pure-Python composer, which is the fallback). Plain scalars are typed here by the YAML 1.2
core schema, not by PyYAML's YAML 1.1 rules, so ``yes``, ``on`` or ``1:20`` stay text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import yaml
from yaml.error import Mark, MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cellrig.errors import Diagnostic, SourceLocation

MAX_NODES = 200_000
MAX_DEPTH = 64
_STANDARD_TAG_PREFIX = "tag:yaml.org,2002:"
_CORE_TAGS = frozenset(
    _STANDARD_TAG_PREFIX + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
)
_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ComposeOnlyLoader(_BASE_LOADER):  # type: ignore[misc]
    """Composes without PyYAML's YAML 1.1 implicit typing (scalars are typed here)."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012


_LOADER = _ComposeOnlyLoader
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}

Scalar = str | int | float | bool | None


@dataclass(slots=True)
class YScalar:
    """A scalar with its typed value (YAML 1.2 core schema) and its source text."""

    value: Scalar
    text: str
    loc: SourceLocation
    quoted: bool = False


@dataclass(slots=True)
class YSeq:
    """A sequence of nodes."""

    items: tuple[YNode, ...]
    loc: SourceLocation


@dataclass(slots=True)
class YMap:
    """A mapping with string keys, in file order."""

    entries: tuple[tuple[YScalar, YNode], ...]
    loc: SourceLocation
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for position, (key, _value) in enumerate(self.entries):
            self._index.setdefault(str(key.value), position)

    def get(self, key: str) -> YNode | None:
        """The value under ``key``, or None."""
        position = self._index.get(key)
        return None if position is None else self.entries[position][1]

    def key_node(self, key: str) -> YScalar | None:
        """The key node of ``key`` (for locations), or None."""
        position = self._index.get(key)
        return None if position is None else self.entries[position][0]

    def keys(self) -> Iterator[str]:
        """The keys in file order."""
        return (str(key.value) for key, _ in self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return self.keys()


YNode = YScalar | YSeq | YMap


class SourceText:
    """A file's name and text, to build locations and quote lines in diagnostics."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.lines = text.splitlines()

    def loc(self, line0: int, column0: int) -> SourceLocation:
        """A location from the parser's 0-based line and column."""
        return SourceLocation(self.name, line0 + 1, column0 + 1)

    def line(self, line1: int) -> str | None:
        """The text of a 1-based line, if it exists."""
        if 1 <= line1 <= len(self.lines):
            return self.lines[line1 - 1]
        return None


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _scalar_value(node: ScalarNode) -> Scalar:
    """The YAML 1.2 core-schema value of a scalar: quoted scalars are always text."""
    text = str(node.value)
    if node.style not in (None, ""):
        return text
    if _NULL_RE.match(text):
        return None
    if _BOOL_RE.match(text):
        return text.lower() == "true"
    if _INT_RE.match(text):
        return int(text, 0) if text.startswith("0") and len(text) > 1 and text[1] in "ox" else int(
            text)
    if _FLOAT_RE.match(text):
        return float(text)
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    return text


class _Converter:
    def __init__(self, source: SourceText, diagnostics: list[Diagnostic]) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self.budget = _Budget()

    def error(self, loc: SourceLocation, message: str, example: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(loc, message, example=example, source_line=self.source.line(loc.line))
        )

    def convert(self, node: Node, depth: int) -> YNode:
        loc = self.source.loc(node.start_mark.line, node.start_mark.column)
        self.budget.nodes += 1
        if self.budget.nodes > MAX_NODES:
            raise _TooLargeError(loc, f"the file expands to more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise _TooLargeError(loc, f"values are nested more than {MAX_DEPTH} levels deep")
        tag = str(node.tag)
        if tag not in _CORE_TAGS:
            self.error(loc, f"YAML tags such as {tag!r} are not allowed in protocol files")
            return YScalar(None, "", loc)
        if isinstance(node, ScalarNode):
            return YScalar(_scalar_value(node), str(node.value), loc, node.style not in (None, ""))
        if isinstance(node, SequenceNode):
            return YSeq(tuple(self.convert(item, depth + 1) for item in node.value), loc)
        if isinstance(node, MappingNode):
            return self._mapping(node, loc, depth)
        raise _TooLargeError(loc, "unsupported YAML node")  # pragma: no cover

    def _mapping(self, node: MappingNode, loc: SourceLocation, depth: int) -> YMap:
        entries: list[tuple[YScalar, YNode]] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self.convert(key_node, depth + 1)
            if not isinstance(key, YScalar) or isinstance(key.value, bool) or key.value is None:
                self.error(key.loc, "a key must be a plain name such as 'steps' or 'voltage'")
                continue
            name = str(key.value)
            if name in seen:
                self.error(key.loc, f"the key {name!r} appears twice in the same mapping")
                continue
            seen.add(name)
            entries.append((YScalar(name, key.text, key.loc), self.convert(value_node, depth + 1)))
        return YMap(tuple(entries), loc)


#: Below this many characters that can open a collection, the composer cannot recurse deep
#: enough to matter; above it, the nesting is measured first.
_SAFE_COMPOSE_DEPTH = 500


def _too_deep(text: str) -> Mark | None:
    """Where the nesting first passes MAX_DEPTH, or None.

    libyaml's composer recurses in C once per level: tens of thousands of ``[`` crash the
    process instead of raising. The parser's events are not recursive, so they are counted
    first when the text could nest that deep (every level needs one of ``[{-:?``).
    """
    if sum(text.count(char) for char in "[{-:?") <= _SAFE_COMPOSE_DEPTH:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except MarkedYAMLError as exc:
        # libyaml 0.2.5+ refuses deep flow nesting in its scanner, which reads ahead of the
        # events: that is the same finding, reported where libyaml gave up.
        if "nesting depth" in str(exc.problem) and exc.problem_mark is not None:
            return exc.problem_mark
        raise
    return None


class _TooLargeError(Exception):
    def __init__(self, loc: SourceLocation, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def load_yaml(source: SourceText, diagnostics: list[Diagnostic]) -> YNode | None:
    """Compose ``source`` into located nodes; syntax errors go to ``diagnostics``.

    Returns None when the text is not usable YAML (the reason is in ``diagnostics``).
    """
    try:
        deep = _too_deep(source.text)
        if deep is not None:
            loc = source.loc(deep.line, deep.column)
            diagnostics.append(Diagnostic(loc, f"values are nested more than {MAX_DEPTH} levels "
                                          "deep", source_line=source.line(loc.line)))
            return None
        node = yaml.compose(source.text, Loader=_LOADER)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line0 = mark.line if mark is not None else 0
        column0 = mark.column if mark is not None else 0
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        loc = source.loc(line0, column0)
        expected = "YAML: 'key: value' mappings and '- item' lists, indented with spaces"
        example = "steps:\n  - Charge at 0.1C until 4.25 V"
        line_text = source.line(loc.line) or ""
        if "${" in line_text:
            expected = "a parameter reference inside { } or [ ] written in quotes"
            example = 'until: {voltage: "${lower}", time: 10 h}'
        diagnostics.append(
            Diagnostic(
                loc,
                f"this is not valid YAML: {problem or 'syntax error'}",
                expected=expected,
                example=example,
                source_line=source.line(loc.line),
            )
        )
        return None
    except (YAMLError, ValueError, RecursionError) as exc:
        loc = source.loc(0, 0)
        diagnostics.append(Diagnostic(loc, f"this is not valid YAML: {exc}"))
        return None
    if node is None:
        return None
    converter = _Converter(source, diagnostics)
    try:
        return converter.convert(node, 0)
    except _TooLargeError as exc:
        diagnostics.append(Diagnostic(exc.loc, exc.message, source_line=source.line(exc.loc.line)))
        return None
    except RecursionError:
        diagnostics.append(Diagnostic(source.loc(0, 0), "values are nested too deeply"))
        return None

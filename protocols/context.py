"""Shared state while a protocol file is checked: diagnostics, parameters, typed look-ups.

Every check goes through a :class:`Context`, which records errors and warnings with the
location of the node they are about, substitutes ``${name}`` parameter references, and turns
located YAML nodes into typed values, so that all the errors of a file are found in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from cellrig.errors import Diagnostic, Severity, SourceLocation

from .quantities import (
    ChargeValue,
    CurrentValue,
    Kind,
    QuantityError,
    parse_charge,
    parse_current,
    parse_quantity,
)
from .suggest import did_you_mean
from .yamlsource import SourceText, YMap, YNode, YScalar, YSeq

T = TypeVar("T")

_REFERENCE_RE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_BAD_REFERENCE_RE = re.compile(r"\$\{[^}]*\}?|\$[A-Za-z_]")

_NODE_NAMES = {YMap: "a mapping", YSeq: "a list", YScalar: "a single value"}


def describe(node: YNode) -> str:
    """What kind of YAML value a node is, in words."""
    if isinstance(node, YScalar):
        return "nothing" if node.value is None else repr(node.text)
    return _NODE_NAMES[type(node)]


class Context:
    """Diagnostics and parameter scope for one protocol file."""

    def __init__(self, source: SourceText, scope: Mapping[str, YNode] | None = None) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        self.scope: dict[str, YNode] = dict(scope or {})
        self.used_parameters: set[str] = set()
        self._unresolved: set[SourceLocation] = set()
        self._reported: set[Diagnostic] = set()
        self._error_reports = 0

    # -- reporting -------------------------------------------------------------------------

    def report(
        self,
        at: YNode | SourceLocation,
        message: str,
        *,
        expected: str | None = None,
        example: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        """Record a finding about the node (or location) ``at``, once (a for_each body is
        checked once per value, and would otherwise repeat every finding)."""
        loc = at if isinstance(at, SourceLocation) else at.loc
        line = self.source.line(loc.line) if loc.file == self.source.name else None
        diagnostic = Diagnostic(loc, message, severity, expected, example, source_line=line)
        if severity is Severity.ERROR:
            self._error_reports += 1
        if diagnostic not in self._reported:
            self._reported.add(diagnostic)
            self.diagnostics.append(diagnostic)

    def warn(self, at: YNode | SourceLocation, message: str, example: str | None = None) -> None:
        """Record a warning: legal, but probably not what the author meant."""
        self.report(at, message, example=example, severity=Severity.WARNING)

    @property
    def has_errors(self) -> bool:
        """Whether any error (not warning) was recorded."""
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    @property
    def error_count(self) -> int:
        """How many errors (not warnings) were reported so far, repeats included."""
        return self._error_reports

    def unresolved(self, node: YNode) -> bool:
        """Whether ``node`` stands for a parameter reference that failed (already reported)."""
        return (isinstance(node, YScalar) and node.value is None
                and node.loc in self._unresolved)

    # -- structure -------------------------------------------------------------------------

    def mapping(self, node: YNode, what: str, example: str) -> YMap | None:
        """``node`` as a mapping, or report that ``what`` must be one."""
        if isinstance(node, YMap):
            return node
        self.report(node, f"{what} must be a mapping, not {describe(node)}", example=example)
        return None

    def check_keys(
        self, node: YMap, allowed: Iterable[str], what: str, example: str
    ) -> None:
        """Report every key of ``node`` not in ``allowed``, with a suggestion."""
        allowed_list = list(allowed)
        for key, _value in node.entries:
            name = str(key.value)
            if name not in allowed_list:
                hint = did_you_mean(name, allowed_list)
                self.report(
                    key,
                    f"unknown key {name!r} in {what}{hint}",
                    expected="one of " + ", ".join(allowed_list),
                    example=example,
                )

    # -- parameters ------------------------------------------------------------------------

    def substitute(self, node: YNode) -> YNode:
        """Replace ``${name}`` references in a scalar; a whole-value reference keeps type."""
        if not isinstance(node, YScalar) or not isinstance(node.value, str) or "$" not in node.text:
            return node
        text = node.text
        whole = _REFERENCE_RE.fullmatch(text.strip())
        if whole is not None:
            value = self._lookup(whole.group(1), node)
            if value is None:
                return self._failed(node)
            if isinstance(value, YScalar):
                return YScalar(value.value, value.text, node.loc, value.quoted)
            return _relocate(value, node.loc)

        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            value = self._lookup(match.group(1), self.location_in(node, match.start()))
            if value is None:
                failed = True
                return ""
            if not isinstance(value, YScalar):
                self.report(node, f"parameter {match.group(1)!r} is a list: use it on its own")
                failed = True
                return ""
            return value.text
        replaced = _REFERENCE_RE.sub(replace, text)
        if failed:
            return self._failed(node)
        leftover = _BAD_REFERENCE_RE.search(replaced)
        if leftover is not None:
            self.report(
                node,
                f"{leftover.group(0)!r} is not a parameter reference",
                expected="a reference written as ${name}",
                example="Charge at 0.1C until ${upper}",
            )
            return self._failed(node)
        return YScalar(replaced, replaced, node.loc, node.quoted)

    def _failed(self, node: YScalar) -> YScalar:
        """An empty stand-in for a reference that could not be substituted (reported)."""
        self._unresolved.add(node.loc)
        return YScalar(None, "", node.loc)

    def location_in(self, node: YScalar, offset: int) -> SourceLocation:
        """Where character ``offset`` of a scalar's text is in the file, if the text up to it
        stands on the scalar's line as written; else the scalar's own location (a plain
        scalar folded over lines, escapes, a substituted parameter)."""
        start = node.loc
        line = self.source.line(start.line) if start.file == self.source.name else None
        first = start.column - 1 + (1 if node.quoted else 0)
        if line is None or line[first:first + offset] != node.text[:offset]:
            return start
        return SourceLocation(start.file, start.line, first + offset + 1)

    def _lookup(self, name: str, at: YNode | SourceLocation) -> YNode | None:
        value = self.scope.get(name)
        if value is None:
            hint = did_you_mean(name, list(self.scope))
            known = ", ".join(sorted(self.scope)) or "none are defined"
            self.report(
                at,
                f"unknown parameter {name!r}{hint}",
                expected=f"a parameter of this protocol ({known})",
                example="parameters: {upper: 4.25 V}\nsteps:\n  - Charge at 0.1C until ${upper}",
            )
            return None
        self.used_parameters.add(name)
        return value

    # -- typed values ----------------------------------------------------------------------

    def scalar(self, node: YNode, what: str, example: str) -> YScalar | None:
        """``node`` (parameters substituted) as a scalar, or report it."""
        node = self.substitute(node)
        if isinstance(node, YScalar):
            if node.value is not None or node.text:
                return node
            if not self.unresolved(node):
                self.report(node, f"{what} has no value", example=example)
            return None
        self.report(node, f"{what} must be a single value, not {describe(node)}", example=example)
        return None

    def _typed(
        self, node: YNode, what: str, kind: Kind, parse: Callable[[object], T]
    ) -> T | None:
        from .quantities import KIND_INFO

        scalar = self.scalar(node, what, KIND_INFO[kind].example)
        if scalar is None:
            return None
        try:
            return parse(scalar.value)
        except QuantityError as exc:
            self.report(
                scalar,
                f"{what}: {exc.message}",
                expected=exc.expected,
                example=f"{what.split(' of ')[0]}: {exc.example}",
            )
            return None

    def quantity(self, node: YNode, kind: Kind, what: str) -> float | None:
        """A quantity of ``kind`` in cellrig's inside unit, or None after reporting."""
        return self._typed(node, what, kind, lambda value: parse_quantity(value, kind))

    def current(self, node: YNode, what: str) -> CurrentValue | None:
        """A current as written (A, C-rate, density), or None after reporting."""
        return self._typed(node, what, Kind.CURRENT, parse_current)

    def charge(self, node: YNode, what: str) -> ChargeValue | None:
        """A charge as written (Ah or % of nominal), or None after reporting."""
        return self._typed(node, what, Kind.CHARGE, parse_charge)

    def text(self, node: YNode, what: str, example: str) -> str | None:
        """A free-text value (numbers are accepted and turned into text)."""
        scalar = self.scalar(node, what, example)
        if scalar is None:
            return None
        if isinstance(scalar.value, bool):
            self.report(scalar, f"{what} must be text, not {scalar.text!r}", example=example)
            return None
        return str(scalar.value)

    def integer(self, node: YNode, what: str, example: str, minimum: int = 0) -> int | None:
        """A whole number of at least ``minimum``."""
        scalar = self.scalar(node, what, example)
        if scalar is None:
            return None
        value = scalar.value
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                value = None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.report(
                scalar,
                f"{what} must be a whole number of at least {minimum}, not {scalar.text!r}",
                example=example,
            )
            return None
        if value > 10**9:
            self.report(scalar, f"{what} is too large ({value}); at most 1000000000")
            return None
        return value


def _relocate(node: YNode, loc: SourceLocation) -> YNode:
    if isinstance(node, YScalar):
        return YScalar(node.value, node.text, loc, node.quoted)
    if isinstance(node, YSeq):
        return YSeq(tuple(_relocate(item, loc) for item in node.items), loc)
    return YMap(tuple((key, _relocate(value, loc)) for key, value in node.entries), loc)

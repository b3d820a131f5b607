"""Reading the tables of ``station.toml``: keys, texts, numbers and quantities, each problem
a :class:`~cellrig.errors.Diagnostic` at the key or value it is about.

Every reader returns None for a value it could not use and goes on, so one pass finds every
problem of a file. Quantities are parsed with the protocols' parser
(:mod:`cellrig.protocols.quantities`), so units are written the same way in both files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cellrig.drivers.jig_geometry import unit_factor
from cellrig.errors import Diagnostic, Severity, SourceLocation
from cellrig.protocols.quantities import KIND_INFO, Kind, QuantityError, parse_quantity
from cellrig.protocols.suggest import closest, did_you_mean

from .station_config_locate import KeyPath, TomlPlaces

_NUMBER_UNIT_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")
FORCE_EXPECTED = "a force (N, kN, lbf)"


def _toml(value: object) -> str:
    """A value as TOML writes it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class Findings:
    """The diagnostics of one file, located with its key places."""

    def __init__(self, filename: str, text: str, places: TomlPlaces | None) -> None:
        self.filename = filename
        self.lines = text.splitlines()
        self.places = places
        self.diagnostics: list[Diagnostic] = []

    def location(self, path: KeyPath, *, key: bool) -> SourceLocation:
        """Where a key (or its value) is written."""
        if self.places is None:
            return SourceLocation(self.filename, 1, 1)
        line, column = self.places.key(path) if key else self.places.value(path)
        return SourceLocation(self.filename, line, column)

    def add(self, location: SourceLocation, message: str, *, severity: Severity = Severity.ERROR,
            expected: str | None = None, example: str | None = None) -> None:
        """A finding at ``location``."""
        line = self.lines[location.line - 1] if 0 < location.line <= len(self.lines) else None
        self.diagnostics.append(Diagnostic(location, message, severity, expected, example,
                                           line))

    def error(self, path: KeyPath, message: str, *, key: bool = False,
              expected: str | None = None, example: str | None = None) -> None:
        """An error about the value at ``path`` (or its key)."""
        self.add(self.location(path, key=key), message, expected=expected, example=example)

    def warning(self, path: KeyPath, message: str, *, key: bool = False,
                example: str | None = None) -> None:
        """A warning about the value at ``path`` (or its key)."""
        self.add(self.location(path, key=key), message, severity=Severity.WARNING,
                 example=example)


class Section:
    """One table of the file being read."""

    def __init__(self, findings: Findings, path: KeyPath, mapping: Mapping[str, Any],
                 name: str, example: str) -> None:
        self.findings = findings
        self.path = path
        self.mapping = mapping
        self.name = name
        self.example = example
        self.suggested: set[str] = set()

    def at(self, key: str | int) -> KeyPath:
        """The key path of one of this table's keys."""
        return (*self.path, key)

    def check_keys(self, allowed: Iterable[str]) -> None:
        """Report every key that is not ``allowed``."""
        known = list(allowed)
        for key in self.mapping:
            if key not in known:
                match = closest(key, known)
                if match is not None:
                    self.suggested.add(match)
                self.findings.error(
                    self.at(key), f"unknown key {key!r} in {self.name}{did_you_mean(key, known)}",
                    key=True, expected=f"one of {', '.join(known)}", example=self.example)

    def missing(self, key: str, what: str, example: str | None = None) -> None:
        """Report a key that the table needs, at the table (unless a misspelling of it was
        reported already)."""
        if key in self.suggested:
            return
        self.findings.error(self.path, f"{self.name} needs {key} ({what})", key=True,
                            example=example or self.example)

    def wrong(self, key: str | int, message: str, expected: str, example: str) -> None:
        """Report a value that cannot be used."""
        self.findings.error(self.at(key), message, expected=expected, example=example)

    def table(self, key: str, *, required: bool = False, what: str = "",
              example: str | None = None) -> Mapping[str, Any] | None:
        """A key whose value must be a table."""
        value = self.mapping.get(key)
        if value is None:
            if required:
                self.missing(key, what, example)
            return None
        if not isinstance(value, dict):
            self.wrong(key, f"{key} in {self.name} must be a table, not {_toml(value)}",
                       "a table", example or self.example)
            return None
        return value

    def text(self, key: str, *, required: bool, what: str, example: str,
             pattern: re.Pattern[str] | None = None, expected: str = "") -> str | None:
        """A string (matching ``pattern``, if given)."""
        value = self.mapping.get(key)
        if value is None:
            if required:
                self.missing(key, what, example)
            return None
        if not isinstance(value, str) or not value.strip():
            self.wrong(key, f"{key} = {_toml(value)} is not {what}",
                       expected or "a text in quotes", example)
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.wrong(key, f"{key} = {_toml(value)} is not {what}", expected or what, example)
            return None
        return value

    def integer(self, key: str, low: int, high: int, *, what: str, example: str) -> int | None:
        """A whole number in ``low..high``."""
        value = self.mapping.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.wrong(key, f"{key} = {_toml(value)} is not {what}",
                       f"a whole number from {low} to {high}", example)
            return None
        return value

    def number(self, key: str, low: float, high: float, *, what: str,
               example: str) -> float | None:
        """A plain number in ``low..high``."""
        value = self.mapping.get(key)
        if value is None:
            return None
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not low <= value <= high):
            self.wrong(key, f"{key} = {_toml(value)} is not {what}",
                       f"a number from {low:g} to {high:g}", example)
            return None
        return float(value)

    def boolean(self, key: str, *, what: str, example: str) -> bool | None:
        """true or false."""
        value = self.mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.wrong(key, f"{key} = {_toml(value)} is not {what}", "true or false", example)
            return None
        return value

    def choice(self, key: str, choices: Sequence[str], *, what: str,
               example: str) -> str | None:
        """One of ``choices``."""
        value = self.mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            self.wrong(key, f"{key} = {_toml(value)} is not {what}{hint}",
                       f"one of {', '.join(choices)}", example)
            return None
        return value

    def quantity(self, key: str | int, kind: Kind, *, what: str, required: bool = False,
                 positive: bool = False, value: object = None,
                 example: str | None = None, meaning: str | None = None) -> float | None:
        """A quantity with its unit, in cellrig's unit for ``kind`` (``value``: an array
        element, ``key`` its index; ``meaning``: what a missing one is for)."""
        raw = self.mapping.get(key) if value is None and isinstance(key, str) else value
        example = example or f"{key} = \"{KIND_INFO[kind].example}\""
        if raw is None:
            if required:
                self.missing(str(key), meaning or what, example)
            return None
        if isinstance(raw, dict | list):
            self.wrong(key, f"{what}: {_toml(raw)} is not {KIND_INFO[kind].expected}",
                       KIND_INFO[kind].expected, example)
            return None
        try:
            parsed = parse_quantity(raw if isinstance(raw, str) else str(raw), kind)
        except QuantityError as exc:
            self.wrong(key, f"{what}: {exc.message}", exc.expected, example)
            return None
        if positive and not parsed > 0:
            self.wrong(key, f"{what} must be more than zero", f"a positive {kind.value}",
                       example)
            return None
        return parsed

    def pair(self, key: str, kind: Kind, *, label: str,
             example: str) -> tuple[float, float] | None:
        """``[low, high]``: two quantities of ``kind``, the first below the second."""
        raw = self.mapping.get(key)
        if not isinstance(raw, list) or len(raw) != 2:
            self.wrong(key, f"the {label} must be [low, high]", f"two {kind.value}s", example)
            return None
        items = Section(self.findings, self.at(key), {}, self.name, example)
        low, high = (items.quantity(index, kind, what=label, value=value, example=example)
                     for index, value in enumerate(raw))
        if low is None or high is None:
            return None
        if not low < high:
            self.wrong(key, f"{label}: the low end must be below the high end", "[low, high]",
                       example)
            return None
        return (low, high)

    def force(self, key: str, *, what: str, required: bool = False) -> float | None:
        """A force in newtons (the protocol language has no forces, the jig has)."""
        raw = self.mapping.get(key)
        example = f'{key} = "100 kN"'
        if raw is None:
            if required:
                self.missing(key, what, example)
            return None
        match = _NUMBER_UNIT_RE.match(raw) if isinstance(raw, str) else None
        factor = unit_factor(match.group(2), "N") if match and match.group(2) else None
        if match is None or factor is None:
            self.wrong(key, f"{what}: {_toml(raw)} is not a force with its unit",
                       FORCE_EXPECTED, example)
            return None
        newtons = float(match.group(1)) * factor
        if not math.isfinite(newtons) or newtons < 0:
            self.wrong(key, f"{what} must not be negative", FORCE_EXPECTED, example)
            return None
        return newtons

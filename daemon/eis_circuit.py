"""Equivalent circuits for impedance spectra: a small description language and their impedance.

A circuit is written as elements in series joined by ``-``, and parallel groups ``p(a,b,…)``
whose branches are themselves series (``p(R2-W2,C2)``)::

    R0-p(R1,CPE1)-W1          series R, interfacial R‖CPE, semi-infinite Warburg (default)
    L0-R0-p(R1,CPE1)-p(R2,CPE2)-Ws3-C4

Elements (the name is the kind followed by a number that makes it unique):

=======  ==============================  ==========================================
kind     impedance                       parameters
=======  ==============================  ==========================================
``R``    ``R``                           ``R`` (Ω)
``C``    ``1/(jωC)``                     ``C`` (F)
``L``    ``jωL``                         ``L`` (H)
``CPE``  ``1/(Q·(jω)^α)``                ``Q`` (F·s^(α−1)), ``alpha`` (0–1)
``W``    ``σ·(1 − j)/√ω``                ``sigma`` (Ω·s^−½), semi-infinite
``Ws``   ``R·tanh(√(jωτ))/√(jωτ)``       ``R`` (Ω), ``tau`` (s): finite, transmissive
``Wo``   ``R·coth(√(jωτ))/√(jωτ)``       ``R`` (Ω), ``tau`` (s): finite, reflective
=======  ==============================  ==========================================

Parameter names are the element's name for one-parameter elements (``R0``) and
``<element>_<parameter>`` otherwise (``CPE1_Q``, ``CPE1_alpha``, ``Ws3_tau``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from cellrig.errors import ConfigError, Diagnostic, SourceLocation

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

DEFAULT_CIRCUIT = "R0-p(R1,CPE1)-W1"

_Impedance = Callable[[ComplexArray, Sequence[float]], ComplexArray]


def _sqrt_ratio(jw: ComplexArray, tau: float, reflective: bool) -> ComplexArray:
    root = np.sqrt(jw * tau)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = 1.0 / np.tanh(root) if reflective else np.tanh(root)
    return np.asarray(ratio / root, dtype=np.complex128)


#: kind -> (parameter names and units, impedance of the element at jω).
KINDS: dict[str, tuple[tuple[tuple[str, str], ...], _Impedance]] = {
    "R": ((("R", "Ohm"),), lambda jw, p: np.full_like(jw, p[0])),
    "C": ((("C", "F"),), lambda jw, p: 1.0 / (jw * p[0])),
    "L": ((("L", "H"),), lambda jw, p: jw * p[0]),
    "CPE": ((("Q", "F s^(alpha-1)"), ("alpha", "1")),
            lambda jw, p: 1.0 / (p[0] * jw ** p[1])),
    "W": ((("sigma", "Ohm s^-1/2"),),
          lambda jw, p: p[0] * (1 - 1j) / np.sqrt(jw.imag)),
    "Ws": ((("R", "Ohm"), ("tau", "s")),
           lambda jw, p: p[0] * _sqrt_ratio(jw, p[1], reflective=False)),
    "Wo": ((("R", "Ohm"), ("tau", "s")),
           lambda jw, p: p[0] * _sqrt_ratio(jw, p[1], reflective=True)),
}
_ELEMENT = re.compile(r"(CPE|Ws|Wo|R|C|L|W)(\d+)")


@dataclass(frozen=True, slots=True)
class Element:
    """One element: its name (``CPE1``), kind (``CPE``) and where it sits."""

    name: str
    kind: str
    in_parallel: bool

    @property
    def parameters(self) -> tuple[str, ...]:
        """Its parameter names (``R0``; ``CPE1_Q``, ``CPE1_alpha``)."""
        names = [name for name, _ in KINDS[self.kind][0]]
        if len(names) == 1:
            return (self.name,)
        return tuple(f"{self.name}_{name}" for name in names)

    @property
    def units(self) -> tuple[str, ...]:
        """The units of its parameters."""
        return tuple(unit for _, unit in KINDS[self.kind][0])


@dataclass(frozen=True, slots=True)
class Series:
    """Parts whose impedances add."""

    parts: tuple[Element | Parallel, ...]


@dataclass(frozen=True, slots=True)
class Parallel:
    """Branches whose admittances add."""

    branches: tuple[Series, ...]


class Circuit:
    """A parsed circuit description; call :meth:`impedance` with its parameter values."""

    def __init__(self, text: str) -> None:
        self.text = text.replace(" ", "")
        parser = _Parser(self.text)
        self.root = parser.series(in_parallel=False)
        if parser.at < len(self.text):
            parser.fail("'-', ',' or ')' or the end")
        self.elements = tuple(elements_in(self.root))
        names = [element.name for element in self.elements]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise _error(self.text, self.text.find(duplicate),
                         f"element {duplicate} appears twice", "a unique number per element")
        self.parameters = tuple(p for element in self.elements for p in element.parameters)
        self.units = tuple(u for element in self.elements for u in element.units)

    def __str__(self) -> str:
        return self.text

    def impedance(self, frequency_hz: npt.ArrayLike, values: Sequence[float]) -> ComplexArray:
        """The circuit's impedance (Ω) at each frequency for parameter ``values`` (in the order
        of :attr:`parameters`)."""
        if len(values) != len(self.parameters):
            raise ValueError(f"{self.text} has {len(self.parameters)} parameters, "
                             f"not {len(values)}")
        jw = 2j * np.pi * np.asarray(frequency_hz, dtype=float).astype(np.complex128)
        by_element: dict[str, list[float]] = {}
        index = 0
        for element in self.elements:
            count = len(element.parameters)
            by_element[element.name] = list(values[index:index + count])
            index += count
        return _series(self.root, jw, by_element)


def _series(series: Series, jw: ComplexArray, values: dict[str, list[float]]) -> ComplexArray:
    total = np.zeros_like(jw)
    for part in series.parts:
        if isinstance(part, Element):
            total = total + KINDS[part.kind][1](jw, values[part.name])
        else:
            admittance = sum((1.0 / _series(branch, jw, values) for branch in part.branches),
                             np.zeros_like(jw))
            total = total + 1.0 / admittance
    return np.asarray(total, dtype=np.complex128)


def elements_in(series: Series) -> list[Element]:
    """The elements of a series and of every group in it, in the order written."""
    found: list[Element] = []
    for part in series.parts:
        if isinstance(part, Element):
            found.append(part)
        else:
            for branch in part.branches:
                found.extend(elements_in(branch))
    return found


def _error(text: str, at: int, message: str, expected: str) -> ConfigError:
    return ConfigError([Diagnostic(
        SourceLocation("<circuit>", 1, at + 1), message, expected=expected,
        example=DEFAULT_CIRCUIT, source_line=text)])


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, expected: str) -> NoReturn:
        found = self.text[self.at:self.at + 8] or "the end"
        raise _error(self.text, self.at, f"unexpected {found!r} in circuit {self.text!r}",
                     expected)

    def series(self, in_parallel: bool) -> Series:
        parts = [self.part(in_parallel)]
        while self.text.startswith("-", self.at):
            self.at += 1
            parts.append(self.part(in_parallel))
        return Series(tuple(parts))

    def part(self, in_parallel: bool) -> Element | Parallel:
        if self.text.startswith("p(", self.at):
            opened = self.at
            self.at += 2
            branches = [self.series(in_parallel=True)]
            while self.text.startswith(",", self.at):
                self.at += 1
                branches.append(self.series(in_parallel=True))
            if not self.text.startswith(")", self.at):
                self.fail("',' or ')'")
            self.at += 1
            if len(branches) < 2:
                self.at = opened
                self.fail("at least two branches in p(…)")
            return Parallel(tuple(branches))
        match = _ELEMENT.match(self.text, self.at)
        if match is None:
            self.fail("an element (R, C, L, CPE, W, Ws, Wo with a number) or p(…)")
        self.at = match.end()
        return Element(match.group(), match[1], in_parallel)

"""A resolved program as a PyBaMM experiment: ``cellrig convert --to pybamm``.

The conversion writes PyBaMM's experiment strings (``Charge at 0.0634304 A until 4.25 V``)
from the resolved program, so every C-rate, current density and share of capacity is already
an absolute value for the cell. Values are written in base units (A, V, W, Ohm) in plain
decimal notation, which both PyBaMM's string parser and cellrig's own accept; the verb gives
the direction and PyBaMM's sign convention (positive discharges) is never written.

What PyBaMM's grammar can say: ``Charge|Discharge at <A|W|Ohm>``, ``Hold at <V>``, ``Rest``,
then ``for <duration>`` and/or one ``until <V|A>`` condition, and ``(<duration> period)``.
Everything else is named in ``Conversion.unsupported`` (one message per step or loop) and in
a comment of the snippet, and is either left out or approximated as the message says:

- ``repeat`` becomes ``[(...)] * N`` cycles (nested loops become starred tuples); a loop's
  ``until`` on cycle figures, and a loop without a count, cannot be expressed.
- ``for_each`` is unrolled; ``pulse`` with a count is a cycle of pulse and rest, repeated.
- ``cccv`` is a ``Charge``/``Discharge`` to the voltage and a ``Hold`` to the cut-off.
- ``set``: a chamber temperature is passed on to every following step as PyBaMM's step
  keyword ``temperature="60oC"`` (the model's ambient temperature, which PyBaMM changes at
  once, without the chamber's lag), and ``wait: {for: ...}`` becomes a rest at the new
  temperature. Stack pressure has no counterpart in PyBaMM.
- ``eis`` has no counterpart; a ``stop`` cannot be expressed unless only stops follow it
  (then it is where the experiment ends anyway).
- Conditions on charge, energy, dV/dt, temperature or pressure, a rising current, a second
  ``until`` condition, and ``then:`` jumps cannot be expressed; the step is kept with the
  conditions PyBaMM has (or left out if none is left to end it).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from .program import (
    CccvStep,
    Condition,
    CurrentStep,
    Direction,
    EisStep,
    Node,
    Operator,
    PowerStep,
    Program,
    PulseStep,
    Quantity,
    Repeat,
    ResistanceStep,
    RestStep,
    Sequence,
    SetStep,
    Step,
    StopStep,
    VoltageStep,
)

SIGNIFICANT_DIGITS = 10
INDENT = "    "


@dataclass(frozen=True)
class Conversion:
    """A program as PyBaMM code, its step strings, and what PyBaMM cannot express."""

    python: str
    strings: list[str]
    unsupported: list[str]


@dataclass(frozen=True, slots=True)
class _Op:
    """One PyBaMM operating condition: a step string, at an ambient temperature if set."""

    text: str
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class _Comment:
    text: str


@dataclass(frozen=True, slots=True)
class _Cycle:
    """Identical cycles: ``[(...)] * count`` at the top, ``*((...) * count)`` inside one."""

    items: tuple[_Item, ...]
    count: int
    comment: str


_Item = _Op | _Comment | _Cycle


def format_number(value: float) -> str:
    """A float in plain decimal notation (PyBaMM cannot read ``1e+06``), 10 digits at most."""
    text = f"{value:.{SIGNIFICANT_DIGITS}g}"
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def format_duration(seconds: float) -> str:
    """A duration in PyBaMM's units: whole hours or minutes if it is one, else seconds."""
    size, unit = next(((size, unit) for size, unit in ((3600.0, "hour"), (60.0, "minute"))
                       if seconds >= size and seconds % size == 0), (1.0, "second"))
    count = seconds / size
    return f"{format_number(count)} {unit}{'' if count == 1 else 's'}"


def _label(step: Step) -> str:
    return f"step {step.id} {' '.join(step.label.split())!r}"


def _ids(nodes: Iterable[Node]) -> list[int]:
    found: list[int] = []
    for node in nodes:
        found.extend(_ids(node.steps) if isinstance(node, Repeat | Sequence) else [node.id])
    return found


class _Converter:
    """Walks the program once, keeping the chamber temperature the steps run at."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.temperature_c: float | None = None
        self.problems: list[tuple[str, str]] = []
        # The stops the program ends with are where the experiment ends anyway.
        self.final_stops: set[int] = set()
        for node in reversed(program.steps):
            if not isinstance(node, StopStep):
                break
            self.final_stops.add(node.id)

    def problem(self, subject: str, reason: str) -> None:
        self.problems.append((subject, reason))

    def nodes(self, nodes: Iterable[Node]) -> list[_Item]:
        items: list[_Item] = []
        for node in nodes:
            if isinstance(node, Repeat):
                items.extend(self.repeat(node))
            elif isinstance(node, Sequence):
                items.append(_Comment(node.label))
                items.extend(self.nodes(node.steps))
            else:
                items.extend(self.step(node))
        return items

    def repeat(self, loop: Repeat) -> list[_Item]:
        ids = _ids(loop.steps)
        subject = f"loop {loop.label!r}" + (f" (steps {ids[0]}-{ids[-1]})" if ids else "")
        count = 1 if loop.count is None else loop.count
        if loop.count is None:
            self.problem(subject, "it has no count, so it is written as one cycle")
        if loop.until:
            self.problem(subject, "PyBaMM cannot end a loop on a cycle figure; all "
                         f"{count} cycles are written (PyBaMM's nearest is "
                         "Experiment(termination=[\"80% capacity\"]) on the model's capacity)")
        start_c = self.temperature_c
        body = self.nodes(loop.steps)
        if count > 1 and self.temperature_c != start_c:
            # Later cycles start at the temperature the first one ended at.
            kept = len(self.problems)
            later = self.nodes(loop.steps)
            del self.problems[kept:]
            if later != body:
                self.problem(subject, "the chamber temperature of its first cycle differs from "
                             "that of the later ones; every cycle is written like the first")
        if not any(not isinstance(item, _Comment) for item in body):
            return [_Comment(f"{loop.label}: nothing PyBaMM can run"), *body]
        return [_Cycle(tuple(body), count, loop.label)]

    def step(self, step: Step) -> list[_Item]:
        if isinstance(step, SetStep):
            return self.set_step(step)
        if isinstance(step, EisStep):
            return self.omit(step, "PyBaMM has no impedance step")
        if isinstance(step, StopStep):
            if step.id in self.final_stops:
                return [_Comment(f"{_label(step)}: the experiment ends here")]
            return self.omit(step, "PyBaMM cannot end an experiment part-way")
        if isinstance(step, PulseStep):
            return self.pulse(step)
        if isinstance(step, CccvStep):
            return self.cccv(step)
        head = self.head(step)
        return self.op(step, head, step.until, _default_voltage_operator(step))

    def head(self, step: Step) -> str:
        """``Charge at 0.1 A``, ``Hold at 4.2 V``, ``Rest``: the step before its ending."""
        if isinstance(step, CurrentStep):
            return _source(step.direction, step.current_a, "A")
        if isinstance(step, PowerStep):
            return _source(step.direction, step.power_w, "W")
        if isinstance(step, ResistanceStep):
            return f"Discharge at {format_number(step.resistance_ohm)} Ohm"
        if isinstance(step, VoltageStep):
            if step.current_limit_a is not None:
                self.problem(_label(step), "PyBaMM's Hold has no current limit; it is dropped")
            return f"Hold at {format_number(step.voltage_v)} V"
        assert isinstance(step, RestStep), type(step)
        return "Rest"

    def op(self, step: Step, head: str, conditions: Iterable[Condition],
           voltage_default: Operator | None) -> list[_Item]:
        ending = self.ending(step, tuple(conditions), voltage_default)
        if ending is None:
            return self.omit(step, "none of its conditions can end a PyBaMM step")
        text = head + ending + self.period(step)
        return [_Op(text, self.temperature_c)]

    def ending(self, step: Step, conditions: tuple[Condition, ...],
               voltage_default: Operator | None) -> str | None:
        """`` for 1 hour or until 4.2 V``, or None when no condition PyBaMM knows is left."""
        seconds = [c.value for c in conditions if c.quantity is Quantity.TIME]
        terms: list[str] = []
        for condition in conditions:
            if condition.then not in (None, "next"):
                self.problem(_label(step), f"'then: {condition.then}' cannot jump in PyBaMM; "
                             "the condition only ends the step")
            if condition.quantity is Quantity.VOLTAGE:
                symbol = "" if condition.operator is voltage_default else (
                    "> " if condition.operator is Operator.AT_LEAST else "< ")
                terms.append(f"{symbol}{format_number(condition.value)} V")
            elif condition.quantity is Quantity.CURRENT and condition.operator is Operator.AT_MOST:
                terms.append(f"{format_number(condition.value)} A")
            elif condition.quantity is not Quantity.TIME:
                self.problem(_label(step), f"'until {condition.text}' cannot end a PyBaMM step "
                             "(only a time, a voltage or a falling current can)")
        if len(terms) > 1:
            self.problem(_label(step), "a PyBaMM step string takes one 'until' condition; "
                         f"'until {' or '.join(terms[1:])}' is left out")
        text = f" for {format_duration(min(seconds))}" if seconds else ""
        if terms:
            text += (" or" if text else "") + f" until {terms[0]}"
        return text or None

    def period(self, step: Step) -> str:
        every_s = step.record.every_s if step.record is not None else None
        if every_s is None or every_s == self.program.record.every_s:
            return ""
        return f" ({format_duration(every_s)} period)"

    def omit(self, step: Step, reason: str) -> list[_Item]:
        self.problem(_label(step), f"{reason}; left out")
        return [_Comment(f"{_label(step)}: left out ({reason})")]

    def cccv(self, step: CccvStep) -> list[_Item]:
        volts = format_number(step.voltage_v)
        cc = f"{_source(step.direction, step.current_a, 'A')} until {volts} V"
        if any(c.quantity is Quantity.TIME for c in step.until):
            self.problem(_label(step), "its time limit covers the whole CC-CV step, but PyBaMM "
                         "applies it to the Hold only")
        hold = self.op(step, f"Hold at {volts} V", step.until, None)
        return [_Comment(f"{_label(step)} as CC then CV"), _Op(cc + self.period(step),
                                                                self.temperature_c), *hold]

    def pulse(self, step: PulseStep) -> list[_Item]:
        if step.count is None:
            return self.omit(step, "a pulse train without a count cannot be unrolled")
        head = _source(step.direction, step.current_a, "A")
        conditions = (Condition(Quantity.TIME, Operator.AT_LEAST, step.pulse_s), *step.until)
        if step.until:
            self.problem(_label(step), "its conditions end each pulse in PyBaMM, not the train")
        items: list[_Item] = self.op(step, head, conditions, _default_voltage_operator(step))
        if step.rest_s > 0:
            items.append(_Op(f"Rest for {format_duration(step.rest_s)}" + self.period(step),
                             self.temperature_c))
        return [_Cycle(tuple(items), step.count, _label(step))]

    def set_step(self, step: SetStep) -> list[_Item]:
        items: list[_Item] = [_Comment(_label(step))]
        if step.pressure_pa is not None:
            self.problem(_label(step), "PyBaMM has no stack pressure; the pressure is left out")
        if step.until:
            self.problem(_label(step), "its conditions are left out")
        if step.temperature_c is not None:
            self.temperature_c = step.temperature_c
        if step.wait_for_s > 0:
            items.append(_Op(f"Rest for {format_duration(step.wait_for_s)}", self.temperature_c))
        return items


def _default_voltage_operator(step: Step) -> Operator | None:
    """The comparison PyBaMM uses for a voltage cut-off written without ``<`` or ``>``."""
    if isinstance(step, CurrentStep | PowerStep | ResistanceStep | PulseStep):
        return {Direction.CHARGE: Operator.AT_LEAST,
                Direction.DISCHARGE: Operator.AT_MOST}.get(step.direction)
    return None


def _source(direction: Direction, signed: float, unit: str) -> str:
    """``Charge at 0.5 A``: the verb from the direction (or the sign), the magnitude."""
    charges = signed > 0 if direction is Direction.NONE else direction is Direction.CHARGE
    return f"{'Charge' if charges else 'Discharge'} at {format_number(abs(signed))} {unit}"


# -- writing the snippet --------------------------------------------------------------------


def _op_code(op: _Op) -> str:
    literal = json.dumps(op.text, ensure_ascii=False)
    if op.temperature_c is None:
        return literal
    return f'pybamm.step.string({literal}, temperature="{format_number(op.temperature_c)}oC")'


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(" ".join(text.split()), 96)]


def _lines(items: Iterable[_Item], indent: str) -> list[str]:
    """The items as elements of a list or tuple display, one per line, commas after each."""
    lines: list[str] = []
    for item in items:
        if isinstance(item, _Comment):
            lines.extend(_comment(item.text, indent))
        elif isinstance(item, _Op):
            lines.append(f"{indent}{_op_code(item)},")
        else:
            lines.extend(_comment(f"{item.comment}: {item.count} x", indent))
            lines.append(f"{indent}*(")
            lines.append(f"{indent}{INDENT}(")
            lines.extend(_lines(item.items, indent + INDENT * 2))
            lines.append(f"{indent}{INDENT})")
            lines.append(f"{indent}{INDENT}* {item.count}")
            lines.append(f"{indent}),")
    return lines


def _strings(items: Iterable[_Item]) -> list[str]:
    found: list[str] = []
    for item in items:
        if isinstance(item, _Op):
            found.append(item.text)
        elif isinstance(item, _Cycle):
            found.extend(_strings(item.items))
    return found


@dataclass
class _Blocks:
    """Top-level items grouped: runs of single steps, and repeated cycles."""

    lines: list[str] = field(default_factory=list)
    run: list[_Item] = field(default_factory=list)

    def flush(self) -> None:
        last = max((n for n, item in enumerate(self.run) if not isinstance(item, _Comment)),
                   default=-1)
        if last >= 0:
            self.lines += ["operating_conditions += [", *_lines(self.run[:last + 1], INDENT), "]"]
        # Comments after the last step are about what follows: written outside the list.
        self.lines += _lines(self.run[last + 1:], "")
        self.run = []

    def add(self, item: _Item) -> None:
        if not isinstance(item, _Cycle):
            self.run.append(item)
            return
        self.flush()
        self.lines += [*_comment(f"{item.comment}: {item.count} identical cycles", ""),
                       "operating_conditions += [", f"{INDENT}(",
                       *_lines(item.items, INDENT * 2), f"{INDENT})", f"] * {item.count}"]


def _header(program: Program, problems: list[str], uses_temperature: bool) -> list[str]:
    cell = program.cell
    capacity = (f"a cell of {format_number(cell.capacity_ah)} Ah" if cell.capacity_ah
                else "a cell without a nominal capacity")
    text = [
        f"PyBaMM experiment for the cellrig protocol {program.name!r} (program sha256 "
        f"{program.sha256[:12]}), resolved for {capacity}; written by 'cellrig convert --to "
        "pybamm'.",
        "Currents are absolute values in A and the verb gives the direction (PyBaMM's sign "
        "convention is not used). Repeats are lists of identical cycles; for_each blocks are "
        "unrolled; a CC-CV step is a Charge or Discharge then a Hold.",
    ]
    if uses_temperature:
        text.append("Chamber temperatures set by the protocol are each step's temperature= "
                    "(PyBaMM's ambient temperature changes at once, without the chamber's lag).")
    lines = [line for paragraph in text for line in _comment(paragraph, "")]
    if problems:
        lines.append("# Not converted exactly:")
        for problem in problems:
            wrapped = textwrap.wrap(" ".join(problem.split()), 90)
            lines.extend(("#     " if n else "#   - ") + line for n, line in enumerate(wrapped))
    return lines


def to_pybamm(program: Program) -> Conversion:
    """The program as a ``pybamm.Experiment`` snippet, its strings, and what is not converted."""
    converter = _Converter(program)
    items = converter.nodes(program.steps)
    grouped: dict[str, list[str]] = {}
    for subject, reason in converter.problems:
        grouped.setdefault(subject, []).append(reason)
    unsupported = [f"{subject}: {'; '.join(reasons)}" for subject, reasons in grouped.items()]
    blocks = _Blocks()
    for item in items:
        blocks.add(item)
    blocks.flush()
    uses_temperature = "temperature=" in "\n".join(blocks.lines)
    period = program.record.every_s
    arguments = "operating_conditions" + (
        f', period="{format_duration(period)}"' if period is not None else "")
    python = "\n".join([
        *_header(program, unsupported, uses_temperature), "import pybamm", "",
        "operating_conditions = []", *blocks.lines,
        f"experiment = pybamm.Experiment({arguments})", "",
    ])
    return Conversion(python=python, strings=_strings(items), unsupported=unsupported)

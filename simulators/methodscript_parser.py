"""Parse an uploaded MethodSCRIPT into statements, as the emulated device does before it runs
one, with the device's error codes and positions for what it cannot take.

The emulator knows the commands of the MethodSCRIPT manual v1.8 (ch. 14) that cellrig's scripts
and PalmSens' measurement-loop examples use: variables (``var``, ``store_var``), pgstat set-up
(``set_pgstat_chan``, ``set_pgstat_mode``, ``set_max_bandwidth``, ``set_range``,
``set_autoranging``, ``set_range_minmax``, ``set_e``, ``set_i``), the cell (``cell_on``,
``cell_off``), the timer (``timer_start``, ``timer_get``), ``wait``, packets (``pck_start``,
``pck_add``, ``pck_end``), control flow (``if``/``else``/``endif``, ``breakloop``) and the
``meas_loop_cp``, ``meas_loop_ca``, ``meas_loop_ocp`` and ``meas_loop_eis`` loops, then
``on_finished:``. Any other command is refused as the device refuses an unknown one
(``e!4001: Line L, Col C``), so a driver that sends something else learns it in the tests.
Lines count from the first line after ``e``; columns from 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cellrig.drivers.methodscript_codec import parse_literal

#: What each command takes: ``new`` declares a variable, ``var`` names a declared one,
#: ``value`` is a literal or a declared variable, ``type`` a two-letter variable type.
COMMANDS: dict[str, tuple[str, ...]] = {
    "var": ("new",),
    "store_var": ("var", "value", "type"),
    "set_pgstat_chan": ("value",),
    "set_pgstat_mode": ("value",),
    "set_max_bandwidth": ("value",),
    "set_range": ("type", "value"),
    "set_autoranging": ("type", "value", "value"),
    "set_range_minmax": ("type", "value", "value"),
    "set_e": ("value",),
    "set_i": ("value",),
    "cell_on": (),
    "cell_off": (),
    "timer_start": (),
    "timer_get": ("var",),
    "wait": ("value",),
    "pck_start": (),
    "pck_add": ("var",),
    "pck_end": (),
    "breakloop": (),
    "meas_loop_cp": ("var", "var", "value", "value", "value"),
    "meas_loop_ca": ("var", "var", "value", "value", "value"),
    "meas_loop_ocp": ("var", "value", "value"),
    "meas_loop_eis": ("var", "var", "var", "value", "value", "value", "value", "value"),
}
COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE_CODE = re.compile(r"[a-z]{2}")

UNKNOWN_COMMAND = 0x4001
UNEXPECTED_CHARACTER = 0x4004
NESTED_LOOP = 0x400B
ENDED_UNEXPECTEDLY = 0x4018
ALREADY_DECLARED = 0x4026
BAD_LITERAL = 0x4039
UNDECLARED = 0x420B
BAD_TYPE = 0x0002


class ScriptError(Exception):
    """The script cannot run: the device's error code and where it found the problem."""

    def __init__(self, code: int, line: int, column: int) -> None:
        self.code, self.line, self.column = code, line, column
        super().__init__(f"0x{code:04X} at line {line}, column {column}")


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its text, column, and its value if it is a literal."""

    text: str
    column: int
    literal: float | None


@dataclass(frozen=True, slots=True)
class Statement:
    """One command with its arguments; loops and ``if`` hold their bodies."""

    line: int
    column: int
    command: str
    args: tuple[Arg, ...] = ()
    body: tuple[Statement, ...] = ()
    orelse: tuple[Statement, ...] = ()


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script: its statements and its ``on_finished:`` part."""

    statements: tuple[Statement, ...]
    on_finished: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    column: int
    command: str
    args: tuple[Arg, ...]


def _tokens(text: str, number: int) -> _Line | None:
    code = text.split("#", 1)[0]
    found = [(match.group(), match.start() + 1) for match in re.finditer(r"\S+", code)]
    if not found:
        return None
    (command, column), rest = found[0], found[1:]
    return _Line(number, column, command,
                 tuple(Arg(token, at, parse_literal(token)) for token, at in rest))


class _Parser:
    def __init__(self, lines: list[str]) -> None:
        parsed = (_tokens(text, number) for number, text in enumerate(lines, start=1))
        self.lines = [line for line in parsed if line is not None]
        self.index = 0
        self.declared: set[str] = set()
        self.last_line = len(lines)

    def block(self, ends: tuple[str, ...], in_loop: bool) -> tuple[list[Statement], str]:
        statements: list[Statement] = []
        while self.index < len(self.lines):
            line = self.lines[self.index]
            self.index += 1
            if line.command in ends:
                self._no_args(line)
                return statements, line.command
            statements.append(self.statement(line, in_loop))
        if ends:
            raise ScriptError(ENDED_UNEXPECTEDLY, self.last_line, 1)
        return statements, ""

    def statement(self, line: _Line, in_loop: bool) -> Statement:
        if line.command == "if":
            return self._if(line, in_loop)
        if line.command in ("endloop", "endif", "else", "on_finished:"):
            raise ScriptError(UNEXPECTED_CHARACTER, line.number, line.column)
        kinds = COMMANDS.get(line.command)
        if kinds is None:
            raise ScriptError(UNKNOWN_COMMAND, line.number, line.column)
        if line.command == "breakloop" and not in_loop:
            raise ScriptError(UNEXPECTED_CHARACTER, line.number, line.column)
        self._arguments(line.number, line.column, line.args, kinds)
        if not line.command.startswith("meas_loop_"):
            return Statement(line.number, line.column, line.command, line.args)
        if in_loop:
            raise ScriptError(NESTED_LOOP, line.number, line.column)
        body, _ = self.block(("endloop",), in_loop=True)
        return Statement(line.number, line.column, line.command, line.args, tuple(body))

    def _if(self, line: _Line, in_loop: bool) -> Statement:
        if len(line.args) != 3 or line.args[1].text not in COMPARISONS:
            raise ScriptError(UNEXPECTED_CHARACTER, line.number, line.column)
        self._arguments(line.number, line.column, (line.args[0], line.args[2]),
                        ("value", "value"))
        body, end = self.block(("else", "endif"), in_loop)
        orelse: list[Statement] = []
        if end == "else":
            orelse, _ = self.block(("endif",), in_loop)
        return Statement(line.number, line.column, "if", line.args, tuple(body), tuple(orelse))

    def _no_args(self, line: _Line) -> None:
        if line.args:
            raise ScriptError(UNEXPECTED_CHARACTER, line.number, line.args[0].column)

    def _arguments(self, number: int, column: int, args: tuple[Arg, ...],
                   kinds: tuple[str, ...]) -> None:
        if len(args) > len(kinds):
            raise ScriptError(UNEXPECTED_CHARACTER, number, args[len(kinds)].column)
        if len(args) < len(kinds):
            raise ScriptError(ENDED_UNEXPECTEDLY, number, column)
        for arg, kind in zip(args, kinds, strict=True):
            self._check(arg, kind, number)

    def _check(self, arg: Arg, kind: str, number: int) -> None:
        if kind == "type":
            if not _TYPE_CODE.fullmatch(arg.text):
                raise ScriptError(BAD_TYPE, number, arg.column)
            return
        if kind == "value" and arg.literal is not None:
            return
        if not _IDENTIFIER.fullmatch(arg.text):
            raise ScriptError(BAD_LITERAL, number, arg.column)
        if kind == "new":
            if arg.text in self.declared:
                raise ScriptError(ALREADY_DECLARED, number, arg.column)
            self.declared.add(arg.text)
        elif arg.text not in self.declared:
            raise ScriptError(UNDECLARED, number, arg.column)


def parse_script(lines: list[str]) -> Script:
    """Parse the lines between ``e`` and the empty line; raises :class:`ScriptError`."""
    parser = _Parser(lines)
    has_finish = any(line.command == "on_finished:" for line in parser.lines)
    statements, end = parser.block(("on_finished:",) if has_finish else (), in_loop=False)
    finished: list[Statement] = []
    if end == "on_finished:":
        finished, _ = parser.block((), in_loop=False)
    return Script(tuple(statements), tuple(finished))

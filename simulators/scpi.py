"""SCPI as instruments parse it, for the wire emulators: headers, program messages, parameters
and the error queue.

What is implemented, after IEEE 488.2 and the SCPI 1999 standard as instrument manuals restate
them (e.g. the Keithley 2450 reference manual, section "Introduction to SCPI commands"):

- **Headers** are written in the manuals' notation, ``:SOURce[1]:CURRent[:LEVel]:VLIMit``:
  the upper-case letters are the short form, the whole word the long form, either is accepted
  in any letter case (but nothing in between); bracketed nodes are optional; ``[1]`` after a
  mnemonic allows the numeric suffix 1. Common commands start with ``*``.
- **Program messages** hold several commands separated by ``;``. A command without a leading
  colon is relative to the path of the previous one (``:TRAC:ACT:STAR? ; END?``); a leading
  colon starts from the root; common commands leave the path alone. The responses of all
  queries in a message come back in one line, separated by ``;``.
- **Parameters** are separated by commas; strings are quoted with ``"`` or ``'`` (a doubled
  quote inside stands for one); numbers are NRf or ``MINimum``/``MAXimum``/``DEFault``;
  booleans are ``ON``/``OFF``/``1``/``0``; character data match short or long forms.
- **Errors** go to the :class:`ErrorQueue` with the standard's codes (-102 syntax error, -108
  parameter not allowed, -109 missing parameter, -113 undefined header, -222 data out of
  range, -224 illegal parameter value, -350 queue overflow, …). A command error (-1xx) ends
  the message: the commands after it are not executed; an execution error (-2xx) skips only
  its own command. A query that fails returns nothing, so a message whose queries all failed
  gets no reply at all (the client times out, as with a real instrument).
"""

from __future__ import annotations

import inspect
import math
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

COMMAND_ERROR = (-100, "Command error")
SYNTAX_ERROR = (-102, "Syntax error")
DATA_TYPE_ERROR = (-104, "Data type error")
PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
MISSING_PARAMETER = (-109, "Missing parameter")
UNDEFINED_HEADER = (-113, "Undefined header")
EXECUTION_ERROR = (-200, "Execution error")
SETTINGS_CONFLICT = (-221, "Settings conflict")
DATA_OUT_OF_RANGE = (-222, "Parameter data out of range")
ILLEGAL_PARAMETER_VALUE = (-224, "Illegal parameter value")
QUEUE_OVERFLOW = (-350, "Queue overflow")


class ScpiError(Exception):
    """A command the instrument refuses: its error code and the standard's message (what goes
    to the error queue), and a detail for the emulator's log."""

    def __init__(self, error: tuple[int, str], detail: str = "") -> None:
        self.code, self.message = error
        self.detail = detail
        super().__init__(f"{self.code},{self.message}" + (f" ({detail})" if detail else ""))

    @property
    def is_command_error(self) -> bool:
        """A parser error (-100 … -199): the rest of the message is not executed."""
        return -199 <= self.code <= -100


@dataclass(frozen=True, slots=True)
class QueuedError:
    """One entry of the error queue, with the instrument time it happened at."""

    code: int
    message: str
    time_s: float


class ErrorQueue:
    """A first-in first-out error queue; when full, the newest entry becomes -350."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._entries: deque[QueuedError] = deque()

    def push(self, code: int, message: str, time_s: float) -> None:
        """Add an error (or mark the overflow)."""
        if len(self._entries) >= self.capacity:
            self._entries[-1] = QueuedError(*QUEUE_OVERFLOW, time_s)
            return
        self._entries.append(QueuedError(code, message, time_s))

    def next(self) -> QueuedError | None:
        """Take the oldest error out, or None when the queue is empty."""
        return self._entries.popleft() if self._entries else None

    def clear(self) -> None:
        """Empty the queue (``*CLS``)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# -- headers --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Mnemonic:
    """One node of a header pattern."""

    short: str
    long: str
    optional: bool
    suffix: bool

    def matches(self, token: str) -> bool:
        """Whether a typed header token (any case, maybe with a numeric suffix) is this node."""
        word = token.upper()
        digits = len(word) - len(word.rstrip("0123456789"))
        if digits:
            if not self.suffix or word[-digits:] != "1":
                return word in (self.short, self.long)
            word = word[:-digits]
        return word in (self.short, self.long)


_NODE = re.compile(r"\[:(?P<optional>[A-Za-z*]+)(?P<osuffix>\[1\])?\]"
                   r"|:(?P<required>[A-Za-z]+)(?P<rsuffix>\[1\])?")


def short_form(word: str) -> str:
    """The short form of a mnemonic as manuals write it: its upper-case letters and digits."""
    return "".join(c for c in word if c.isupper() or c.isdigit())


def compile_header(pattern: str) -> tuple[Mnemonic, ...]:
    """Nodes of a header in the manuals' notation (``:SOURce[1]:CURRent[:LEVel]``)."""
    if pattern.startswith("*"):
        return (Mnemonic(pattern.upper(), pattern.upper(), False, False),)
    nodes: list[Mnemonic] = []
    position = 0
    for found in _NODE.finditer(pattern):
        if found.start() != position:
            break
        word = found.group("optional") or found.group("required")
        suffix = bool(found.group("osuffix") or found.group("rsuffix"))
        nodes.append(Mnemonic(short_form(word), word.upper(), found.group("optional") is not
                              None, suffix))
        position = found.end()
    if position != len(pattern) or not nodes:
        raise ValueError(f"not a header pattern: {pattern!r}")
    return tuple(nodes)


def header_matches(nodes: tuple[Mnemonic, ...], tokens: list[str]) -> bool:
    """Whether typed tokens spell the header, optional nodes left out or not."""
    if not nodes:
        return not tokens
    node = nodes[0]
    if tokens and node.matches(tokens[0]) and header_matches(nodes[1:], tokens[1:]):
        return True
    return node.optional and header_matches(nodes[1:], tokens)


# -- parameters -----------------------------------------------------------------------------

def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split at ``separator`` where it is not inside a quoted string."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    for char in text:
        if quote is not None:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote is not None:
        raise ScpiError(SYNTAX_ERROR, "unterminated string")
    parts.append("".join(current))
    return parts


def _choice_matches(text: str, word: str) -> bool:
    upper = text.upper()
    return upper in (short_form(word), word.upper())


class Arguments:
    """The parameters of one command, converted on demand with the standard's errors."""

    def __init__(self, text: str) -> None:
        stripped = text.strip()
        self.raw = [] if not stripped else [p.strip() for p in split_outside_quotes(stripped, ",")]
        if any(not p for p in self.raw):
            raise ScpiError(SYNTAX_ERROR, "empty parameter")

    def __len__(self) -> int:
        return len(self.raw)

    def expect(self, minimum: int, maximum: int | None = None) -> None:
        """Refuse too few (-109) or too many (-108) parameters."""
        if len(self.raw) < minimum:
            raise ScpiError(MISSING_PARAMETER)
        if len(self.raw) > (minimum if maximum is None else maximum):
            raise ScpiError(PARAMETER_NOT_ALLOWED)

    def number(self, index: int, *, low: float = -math.inf, high: float = math.inf,
               default: float | None = None) -> float:
        """An NRf number within ``[low, high]``; ``MIN``/``MAX``/``DEF`` name the bounds and
        the default."""
        text = self._get(index)
        named: Mapping[str, float | None] = {"MINimum": low, "MAXimum": high,
                                             "DEFault": default}
        for word, value in named.items():
            if _choice_matches(text, word):
                if value is None or not math.isfinite(value):
                    raise ScpiError(ILLEGAL_PARAMETER_VALUE, text)
                return value
        try:
            value = float(text)
        except ValueError:
            raise ScpiError(DATA_TYPE_ERROR, f"expected a number, not {text}") from None
        if not math.isfinite(value):
            raise ScpiError(DATA_TYPE_ERROR, text)
        if not low <= value <= high:
            raise ScpiError(DATA_OUT_OF_RANGE, f"{text} (allowed {low:g} to {high:g})")
        return value

    def integer(self, index: int, *, low: int, high: int) -> int:
        """A whole number within ``[low, high]``."""
        value = self.number(index, low=low, high=high)
        if value != int(value):
            raise ScpiError(DATA_TYPE_ERROR, f"expected a whole number, not {value:g}")
        return int(value)

    def boolean(self, index: int) -> bool:
        """``ON``/``1`` or ``OFF``/``0``."""
        text = self._get(index).upper()
        if text in ("ON", "1"):
            return True
        if text in ("OFF", "0"):
            return False
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"expected ON or OFF, not {text}")

    def choice(self, index: int, words: Sequence[str]) -> str:
        """Character data: one of ``words`` (manual notation, ``HIMPedance``), returned as
        written there."""
        text = self._get(index)
        for word in words:
            if _choice_matches(text, word):
                return word
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, text)

    def string(self, index: int) -> str:
        """A quoted string, unquoted."""
        text = self._get(index)
        if len(text) < 2 or text[0] not in "\"'" or text[-1] != text[0]:
            raise ScpiError(DATA_TYPE_ERROR, f"expected a quoted string, not {text}")
        quote = text[0]
        return text[1:-1].replace(quote * 2, quote)

    def _get(self, index: int) -> str:
        if index >= len(self.raw):
            raise ScpiError(MISSING_PARAMETER)
        return self.raw[index]


# -- the command table and the message parser ----------------------------------------------

Reply = str | None
Handler = Callable[[Arguments], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Command:
    """One header with what it does as a command and as a query (None: that form is not
    defined)."""

    pattern: str
    nodes: tuple[Mnemonic, ...]
    setter: Handler | None
    getter: Handler | None


class CommandTable:
    """The headers an instrument knows, and the program-message parser over them."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._common: dict[str, Command] = {}

    def add(self, pattern: str, setter: Handler | None = None,
            getter: Handler | None = None) -> None:
        """Define a header (manual notation) as a command, a query, or both."""
        command = Command(pattern, compile_header(pattern), setter, getter)
        if pattern.startswith("*"):
            self._common[pattern.upper()] = command
        else:
            self._commands.append(command)

    def find(self, tokens: list[str]) -> Command | None:
        """The command a list of typed header tokens names, if any."""
        for command in self._commands:
            if header_matches(command.nodes, tokens):
                return command
        return None

    async def execute(self, message: str, on_error: Callable[[ScpiError], None]) -> Reply:
        """Run one program message; errors go to ``on_error``; returns the joined responses
        of its queries, or None when it has none."""
        responses: list[str] = []
        path: list[str] = []
        try:
            units = split_outside_quotes(message.strip(), ";")
        except ScpiError as error:
            on_error(error)
            return None
        for unit in units:
            unit = unit.strip()
            if not unit:
                continue
            try:
                command, query, arguments, path = self._resolve(unit, path)
                handler = command.getter if query else command.setter
                if handler is None:
                    form = "query" if query else "command"
                    raise ScpiError(UNDEFINED_HEADER, f"{command.pattern} has no {form} form")
                result = handler(arguments)
                if inspect.isawaitable(result):
                    result = await result
            except ScpiError as error:
                on_error(error)
                if error.is_command_error:
                    break
                continue
            if query and result is not None:
                responses.append(result)
        return ";".join(responses) if responses else None

    def _resolve(self, unit: str, path: list[str]) -> tuple[Command, bool, Arguments, list[str]]:
        parts = unit.split(None, 1)
        header = parts[0]
        arguments = Arguments(parts[1] if len(parts) > 1 else "")
        query = header.endswith("?")
        if query:
            header = header[:-1]
        if header.startswith("*"):
            common = self._common.get(header.upper())
            if common is None:
                raise ScpiError(UNDEFINED_HEADER, header)
            return common, query, arguments, path
        absolute = header.startswith(":")
        tokens = header[1:].split(":") if absolute else header.split(":")
        if not all(token.isalnum() for token in tokens):
            raise ScpiError(SYNTAX_ERROR, header)
        attempts = [tokens] if absolute or not path else [path + tokens, tokens]
        for typed in attempts:
            command = self.find(typed)
            if command is not None:
                return command, query, arguments, typed[:-1]
        raise ScpiError(UNDEFINED_HEADER, header)

"""The MethodSCRIPT wire format: SI literals, data packets and the device's reply lines.

Pure functions (no I/O), shared by the PalmSens driver and its emulator. The facts come from the
MethodSCRIPT manual v1.8 (www.palmsens.com/msmanual: literals ch. 4, data packages ch. 5, loop
markers ch. 6, error codes appendix A), the communication protocol documents of the EmStat4
(v1.3) and EmStat Pico (v1.6), and PalmSens' public examples (github.com/PalmSens/
MethodSCRIPT_Examples, ``palmsens/mscript.py`` and ``palmsens/instrument.py``):

* a script literal is an integer with an optional SI prefix: ``4250m`` is 4.25, ``10i`` the
  integer 10;
* a data packet is ``P`` then variables separated by ``;``; a variable is a two-letter type
  (``ab`` measured potential, ``ba`` current, ``eb`` time, ``dc`` frequency, ``cc``/``cd`` the
  real and imaginary impedance, …), seven hex digits holding the value plus 2²⁷ and one SI-prefix
  character (``"     nan"`` for NaN), then optional metadata after commas (``1X`` status bits,
  ``2XX`` the range);
* ``M<4 hex>`` opens a measurement loop (the digits name the technique) and ``*`` closes it;
  ``L``/``+`` bracket a plain loop and ``C<digits>``/``-`` a scan; an empty line ends a script;
* an error is ``!XXXX`` (four hex digits), prefixed by the command letter when a command failed
  (``Z!0006``: nothing to abort; ``e!4001: Line 3, Col 1``: the uploaded script did not parse)
  and followed by where in the script it happened.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum

#: SI prefix characters and their factors (``i`` marks an integer).
SI_PREFIXES: dict[str, float] = {
    "a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, " ": 1.0,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "i": 1.0,
}

#: The offset added to a packet value before it is written as seven hex digits.
PACKET_OFFSET = 1 << 27
_PACKET_LIMIT = PACKET_OFFSET - 1
_NAN_FIELD = "     nan"

#: Prefixes for literals and packet values, coarsest first.
_ORDERED_PREFIXES = ("E", "P", "T", "G", "M", "k", "", "m", "u", "n", "p", "f", "a")
_FACTOR = {"": 1.0, **{p: SI_PREFIXES[p] for p in _ORDERED_PREFIXES if p}}

#: Technique numbers of the ``M`` marker that the driver's scripts use (manual table 5).
TECHNIQUE_CODES: dict[str, str] = {
    "meas_loop_ca": "0007",
    "meas_loop_cp": "000A",
    "meas_loop_ocp": "000B",
    "meas_loop_eis": "000D",
}

#: Error codes (manual appendix A) the driver and emulator name; others print as numbers.
ERROR_CODES: dict[int, str] = {
    0x0001: "an unspecified error has occurred",
    0x0002: "an invalid variable type has been used",
    0x0003: "the command was not recognised",
    0x0006: "invalid in this communication mode (no script is running)",
    0x0007: "an argument has an unexpected value",
    0x0008: "the command exceeds the maximum length",
    0x0009: "the command has timed out",
    0x000F: "the given potential is not valid",
    0x0010: "a variable has become NaN or infinite",
    0x0014: "cannot measure the open-circuit potential with the cell on",
    0x001B: "not supported by this device",
    0x0032: "critical cell overload: measurement aborted to prevent damage",
    0x0080: "the counter electrode is oscillating",
    0x4001: "the script command is unknown",
    0x4004: "an unexpected character was encountered",
    0x4005: "the script is too large for the script memory",
    0x400B: "measurement loops cannot be nested",
    0x4018: "the script has ended unexpectedly",
    0x401B: "the pck sequence is called wrong",
    0x4026: "the variable already exists",
    0x4039: "the literal argument is not correctly formed",
    0x4027: "this command needs the cell on (cell_on)",
    0x4028: "this command needs the cell off (cell_off)",
    0x4205: "an argument is outside the allowed bounds",
    0x420B: "an argument variable is not declared",
    0x7FFF: "a fatal error has occurred, the device must be reset",
}

_ERROR_LINE = re.compile(
    r"^(?P<command>[A-Za-z]?)!(?P<code>[0-9A-Fa-f]{4})"
    r"(?::\s*Line\s+(?P<line>\d+)(?:,\s*Col\s+(?P<column>\d+))?)?\s*$")
_LOOP_START = re.compile(r"^M[0-9A-Fa-f]{4}$")
_SCAN_START = re.compile(r"^C[0-9A-Fa-f]{4}$")


class PacketError(ValueError):
    """A line that should be a data packet does not parse as one."""


def error_text(code: int) -> str:
    """What an error code means, as the manual puts it (or its number if not listed here)."""
    return ERROR_CODES.get(code, f"error 0x{code:04X} (see appendix A of the MethodSCRIPT manual)")


# -- literals in scripts --------------------------------------------------------------------

def si_literal(value: float) -> str:
    """A MethodSCRIPT literal for ``value``: an integer with the coarsest SI prefix that holds
    it exactly, or else the finest that keeps the integer within 2²⁷ (six significant digits
    at worst, 7.5e-6 relative). ``si_literal(4.25) == "4250m"``, ``si_literal(0.0) == "0"``."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written as a MethodSCRIPT literal")
    if value == 0:
        return "0"
    for prefix in _ORDERED_PREFIXES:
        scaled = value / _FACTOR[prefix]
        nearest = round(scaled)
        if nearest and abs(nearest) <= _PACKET_LIMIT and abs(scaled - nearest) <= 1e-9 * abs(
                scaled):
            return f"{nearest}{prefix}"
    for prefix in reversed(_ORDERED_PREFIXES):
        nearest = round(value / _FACTOR[prefix])
        if abs(nearest) <= _PACKET_LIMIT:
            return f"{nearest}{prefix}"
    raise ValueError(f"{value!r} is too large for a MethodSCRIPT literal")


def integer_literal(value: int) -> str:
    """A MethodSCRIPT integer literal (``71i``)."""
    return f"{int(value)}i"


def parse_literal(token: str) -> float | None:
    """The value of a literal (``4250m``, ``-2``, ``71i``), or None if ``token`` is not one."""
    match = re.fullmatch(r"([-+]?\d+)([afpnumkMGTPEi]?)", token)
    if match is None:
        return None
    return int(match[1]) * SI_PREFIXES.get(match[2] or " ", 1.0)


# -- data packets ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Variable:
    """One variable of a data packet: its type code, value (SI) and metadata."""

    type: str
    value: float
    status: int = 0
    range_index: int | None = None


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded data packet: its variables in the order the script added them."""

    variables: tuple[Variable, ...] = field(default_factory=tuple)

    def types(self) -> tuple[str, ...]:
        """The variables' type codes."""
        return tuple(variable.type for variable in self.variables)


def encode_value(value: float) -> str:
    """A packet value field: seven hex digits (value + 2²⁷ in the finest prefix that fits) and
    the prefix character; NaN is ``"     nan"``. The resolution is 7.5e-6 relative at worst
    (just past a prefix step), as on the device."""
    if math.isnan(value):
        return _NAN_FIELD
    if math.isinf(value):
        raise ValueError("an infinite value cannot be sent in a packet")
    for prefix in reversed(_ORDERED_PREFIXES):
        nearest = round(value / _FACTOR[prefix])
        if abs(nearest) <= _PACKET_LIMIT:
            return f"{nearest + PACKET_OFFSET:07X}{prefix or ' '}"
    raise ValueError(f"{value!r} is too large for a packet")


def encode_packet(variables: list[tuple[str, float]]) -> str:
    """A packet line (without terminator) from (type, value) pairs."""
    return "P" + ";".join(f"{kind}{encode_value(value)}" for kind, value in variables)


def decode_value(text: str) -> float:
    """The value of an eight-character packet field (hex digits and prefix, or NaN)."""
    if text == _NAN_FIELD:
        return math.nan
    if len(text) != 8 or text[7] not in SI_PREFIXES:
        raise PacketError(f"value field {text!r} is not 7 hex digits and an SI prefix")
    try:
        raw = int(text[:7], 16)
    except ValueError as error:
        raise PacketError(f"value field {text!r} is not hexadecimal") from error
    return (raw - PACKET_OFFSET) * SI_PREFIXES[text[7]]


def decode_packet(line: str) -> Packet:
    """Decode a ``P`` line into its variables; raises :class:`PacketError` if malformed."""
    if not line.startswith("P") or len(line) < 11:
        raise PacketError(f"not a data packet: {line!r}")
    variables = []
    for part in line[1:].split(";"):
        head, *metadata = part.split(",")
        if len(head) != 10 or not head[:2].isalpha() or not head[:2].islower():
            raise PacketError(f"variable {part!r} is not a type code and a value field")
        status, range_index = 0, None
        for item in metadata:
            try:
                if len(item) == 2 and item[0] == "1":
                    status = int(item[1], 16)
                elif len(item) == 3 and item[0] == "2":
                    range_index = int(item[1:], 16)
            except ValueError as error:
                raise PacketError(f"metadata {item!r} of {part!r} is not hexadecimal") from error
        variables.append(Variable(head[:2], decode_value(head[2:]), status, range_index))
    return Packet(tuple(variables))


# -- reply lines ----------------------------------------------------------------------------

class LineKind(StrEnum):
    """What a line from the device is."""

    PACKET = "packet"
    LOOP_START = "measurement loop start"
    LOOP_END = "measurement loop end"
    BLOCK_START = "loop start"
    BLOCK_END = "loop end"
    SCAN_START = "scan start"
    SCAN_END = "scan end"
    TEXT = "text"
    ERROR = "error"
    END = "end of script"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ErrorLine:
    """A decoded error line: the failed command's letter (empty for a running script's
    error), the code and where in the script."""

    command: str
    code: int
    script_line: int | None = None
    script_column: int | None = None

    @property
    def message(self) -> str:
        """The error as a sentence, with its place in the script when the device gave it."""
        where = ""
        if self.script_line is not None:
            where = f" at script line {self.script_line}"
            if self.script_column is not None:
                where += f", column {self.script_column}"
        return f"MethodSCRIPT error 0x{self.code:04X}: {error_text(self.code)}{where}"


def parse_error_line(line: str) -> ErrorLine | None:
    """The error a line reports, or None if it is not an error line."""
    match = _ERROR_LINE.match(line)
    if match is None:
        return None
    line_no, column = match["line"], match["column"]
    return ErrorLine(match["command"], int(match["code"], 16),
                     None if line_no is None else int(line_no),
                     None if column is None else int(column))


def classify(line: str) -> LineKind:
    """What kind of line the device sent (a script's output or a command's reply)."""
    if line == "":
        return LineKind.END
    if "!" in line and _ERROR_LINE.match(line):
        return LineKind.ERROR
    head = line[0]
    if head == "P":
        return LineKind.PACKET
    if _LOOP_START.match(line):
        return LineKind.LOOP_START
    if line == "*":
        return LineKind.LOOP_END
    if line == "L":
        return LineKind.BLOCK_START
    if line == "+":
        return LineKind.BLOCK_END
    if _SCAN_START.match(line):
        return LineKind.SCAN_START
    if line == "-":
        return LineKind.SCAN_END
    if head == "T":
        return LineKind.TEXT
    return LineKind.OTHER


def format_error(code: int, command: str = "", script_line: int | None = None,
                 script_column: int | None = None) -> str:
    """An error line as the device writes it (``e!4001: Line 3, Col 1``)."""
    text = f"{command}!{code:04X}"
    if script_line is not None:
        text += f": Line {script_line}"
        if script_column is not None:
            text += f", Col {script_column}"
    return text

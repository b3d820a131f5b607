"""The one exception tree of cellrig.

Every error cellrig raises on purpose derives from :class:`CellrigError`. Errors about files a
person wrote (protocols, cell definitions, station configuration) carry one or more
:class:`Diagnostic` records that name the file, line and column, say what was expected and
show a correct example, so the CLI can print them without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class Severity(StrEnum):
    """How bad a diagnostic is: errors stop a file from being used, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


class SourceLocation(NamedTuple):
    """A place in a file, 1-based line and column as editors show them (a tuple: cheap to
    make for every node of a large file)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a file: where, what is wrong, what was expected, an example."""

    location: SourceLocation
    message: str
    severity: Severity = Severity.ERROR
    expected: str | None = None
    example: str | None = None
    source_line: str | None = field(default=None, compare=False)

    def render(self) -> str:
        """The diagnostic as a person reads it: location, message, the line, a caret."""
        lines = [f"{self.location}: {self.severity.value}: {self.message}"]
        if self.source_line is not None:
            text = self.source_line.rstrip("\n")
            lines.append(f"    {text}")
            caret_at = max(0, min(self.location.column - 1, len(text)))
            lines.append("    " + " " * caret_at + "^")
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.example:
            example_lines = self.example.splitlines()
            lines.append(f"  example:  {example_lines[0]}")
            lines.extend(f"            {line}" for line in example_lines[1:])
        return "\n".join(lines)


class CellrigError(Exception):
    """Root of every error cellrig raises on purpose."""


class InputError(CellrigError):
    """A file or value a person supplied is wrong; carries every diagnostic found at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = [d for d in diagnostics if d.severity is Severity.ERROR]
        self.warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
        count = len(self.diagnostics)
        head = self.diagnostics[0].render() if self.diagnostics else "invalid input"
        more = f"\n(and {count - 1} more error(s))" if count > 1 else ""
        super().__init__(head + more)

    def render(self) -> str:
        """Every error, then every warning, each with its location."""
        return "\n".join(d.render() for d in [*self.diagnostics, *self.warnings])


class ProtocolError(InputError):
    """A protocol file (or a submission's cell or parameters) is not valid."""


class ConfigError(InputError):
    """A station configuration or cell definition file is not valid."""


class InstrumentError(CellrigError):
    """Something went wrong talking to an instrument.

    Names the instrument (a short label such as ``keithley-2450``), its address (a VISA
    resource string, a serial device or ``socket://`` URL) and the command that was being sent
    when it happened, so a log line says which wire, which box and which exchange.
    """

    def __init__(self, message: str, *, instrument: str, address: str,
                 command: str | None = None) -> None:
        self.instrument = instrument
        self.address = address
        self.command = command
        self.detail = message
        where = f"{instrument} at {address}"
        during = f" (command {command!r})" if command is not None else ""
        super().__init__(f"{where}: {message}{during}")


class ConnectionLost(InstrumentError):
    """The transport to the instrument is closed, refused or broke mid-exchange."""


class InstrumentTimeout(InstrumentError):
    """The instrument did not answer within the timeout."""


class MalformedReply(InstrumentError):
    """The instrument answered something that does not parse as the reply the command expects."""


class InstrumentReported(InstrumentError):
    """The instrument itself reported an error (an SCPI error-queue entry, a ``NA:`` reply,
    a MethodSCRIPT error line); ``code`` is the instrument's own error number when it has one."""

    def __init__(self, message: str, *, instrument: str, address: str,
                 command: str | None = None, code: int | None = None) -> None:
        self.code = code
        super().__init__(message, instrument=instrument, address=address, command=command)


class UnsupportedInstrument(InstrumentError):
    """The instrument at the address is not one the driver can drive (wrong identity or
    command set)."""

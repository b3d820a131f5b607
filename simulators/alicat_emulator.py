"""An Alicat pressure controller on the wire, backed by the bench's pneumatic jig.

It speaks the ASCII protocol of Alicat's PC series (Serial Communications Primer, Rev. 2):
commands start with the unit ID and end with CR, replies are one CR-terminated line. The
regulator it controls is the :class:`cellrig.simulators.jig.Jig`'s: a setpoint sets the jig's
regulator (which follows with its first-order lag), the data frame reports the regulator's
pressure at the bench's present time, and jig faults show through it (a leak makes the
pressure fall whatever the setpoint).

Served through :class:`cellrig.simulators.line_server.LineServer` on a pseudo-terminal or
TCP (``socket://``), with the line server's wire faults plus two of the instrument's own:
``?`` answers (the unit refusing a command) and replies cut off half way with the connection
dropped.

Commands: ``A`` (poll), ``AS<value>`` / ``AS <value>`` (setpoint, engineering units),
``AHP`` / ``AHC`` (hold valves in place / closed), ``AC`` (cancel hold), ``AVE``
(firmware). Anything else, and a setpoint outside 0 to 102 % of full scale, is answered
``?``; lines for other unit IDs get no answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cellrig.simulators.bench import BenchCell
from cellrig.simulators.jig import Jig
from cellrig.simulators.line_server import LineServer, LineSession, WireFaults

#: Pascals per engineering unit the emulator can be configured with.
PASCALS_PER_UNIT = {"psi": 6894.757293168361, "kPa": 1.0e3, "bar": 1.0e5, "mbar": 100.0,
                    "Pa": 1.0}


@dataclass
class AlicatFaults:
    """The instrument's own faults; counters count down as commands are answered."""

    refuse: int = 0
    """the next N commands are answered ``?``"""
    drop_mid_reply: int = 0
    """the next N replies stop half way and the connection drops (a pseudo-terminal, which
    cannot drop, sends the half line and then goes on)"""


class AlicatEmulator:
    """One emulated Alicat PC on a jig; a :class:`LineHandler` for the line server."""

    def __init__(self, jig: Jig, now_s: Callable[[], float], *, unit_id: str = "A",
                 pressure_unit: str = "psi", full_scale_pa: float = 1.0e6,
                 firmware: str = "10v05.0-R24") -> None:
        if pressure_unit not in PASCALS_PER_UNIT:
            raise ValueError(f"unit {pressure_unit!r} not one of {', '.join(PASCALS_PER_UNIT)}")
        self.jig = jig
        self.now_s = now_s
        self.unit_id = unit_id.upper()
        self.pa_per_unit = PASCALS_PER_UNIT[pressure_unit]
        self.full_scale_pa = full_scale_pa
        self.firmware = firmware
        self.setpoint_pa = jig.regulator_setpoint_pa
        self.hold: str | None = None
        self.faults = AlicatFaults()
        self.received: list[str] = []
        self.server: LineServer | None = None

    @classmethod
    def for_bench_cell(cls, cell: BenchCell, *, unit_id: str = "A", pressure_unit: str = "psi",
                       full_scale_pa: float = 1.0e6) -> AlicatEmulator:
        """The controller of a bench cell's pneumatic jig, on the bench's clock."""
        if cell.jig is None or not cell.jig.pneumatic:
            raise ValueError("an Alicat drives a pneumatic jig; this cell has none")
        return cls(cell.jig, cell.clock.now_s, unit_id=unit_id, pressure_unit=pressure_unit,
                   full_scale_pa=full_scale_pa)

    def line_server(self, faults: WireFaults | None = None) -> LineServer:
        """A line server for this emulator with Alicat's framing (CR both ways)."""
        self.server = LineServer(self, read_terminator=b"\r", write_terminator=b"\r",
                                 faults=faults)
        return self.server

    # -- the protocol -------------------------------------------------------------------------

    async def on_line(self, line: str, session: LineSession) -> None:
        """Answer one command line."""
        text = line.strip()
        if not text or text[0].upper() != self.unit_id:
            return
        self.received.append(text)
        if self.faults.refuse > 0:
            self.faults.refuse -= 1
            await send_reply(session, self.server, self.faults, "?")
            return
        await send_reply(session, self.server, self.faults, self._answer(text[1:].strip().upper()))

    def _answer(self, command: str) -> str:
        if command == "":
            return self.frame()
        if command == "VE":
            return f"{self.unit_id} {self.firmware}"
        if command in ("HP", "HC"):
            self._hold(command)
            return self.frame()
        if command == "C":
            self.hold = None
            self.jig.set_regulator(self.setpoint_pa, self.now_s())
            return self.frame()
        if command.startswith("S"):
            return self._setpoint(command[1:].strip())
        return "?"

    def _setpoint(self, argument: str) -> str:
        try:
            value_pa = float(argument) * self.pa_per_unit
        except ValueError:
            return "?"
        if not 0.0 <= value_pa <= self.full_scale_pa * 1.02:
            return "?"
        self.setpoint_pa = value_pa
        if self.hold is None:
            self.jig.set_regulator(value_pa, self.now_s())
        return self.frame()

    def _hold(self, kind: str) -> None:
        """Valves held in place or closed: the volume is sealed, the pressure stays."""
        self.hold = kind
        self.jig.set_regulator(self.pressure_pa(), self.now_s())

    def pressure_pa(self) -> float:
        """The regulator's pressure at the bench's present time."""
        return float(self.jig.regulator_pressure(np.array([self.now_s()]))[0])

    def frame(self) -> str:
        """The data frame: unit ID, pressure, setpoint, status codes."""
        pressure = self.pressure_pa()
        columns = [self.unit_id, _number(pressure / self.pa_per_unit),
                   _number(self.setpoint_pa / self.pa_per_unit)]
        if self.hold is not None:
            columns.append("HLD")
        if pressure > self.full_scale_pa:
            columns.append("POV")
        return " ".join(columns)

class DropFaults(Protocol):
    """Faults that can cut a reply half way."""

    drop_mid_reply: int


async def send_reply(session: LineSession, server: LineServer | None, faults: DropFaults,
                     reply: str) -> None:
    """Send a reply line, or cut it half way while ``faults.drop_mid_reply`` counts down."""
    if faults.drop_mid_reply > 0:
        faults.drop_mid_reply -= 1
        await drop_mid_reply(session, server, reply)
        return
    await session.send_line(reply)


async def drop_mid_reply(session: LineSession, server: LineServer | None, reply: str) -> None:
    """Send the first half of ``reply`` as a line, then drop a TCP connection (the line
    server's disconnect fault, applied to this one reply and cleared again)."""
    await session.send_line(reply[: max(1, len(reply) // 2)])
    if server is None:
        return
    was = server.faults.disconnect
    server.faults.disconnect = True
    try:
        await session.send_line("")
    finally:
        server.faults.disconnect = was


def _number(value: float) -> str:
    """A signed fixed-width column as Alicat writes them: ``+014.70``."""
    return f"{value:+07.2f}"

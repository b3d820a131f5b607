"""A Mark-10 force gauge (or 7i indicator with a load cell) on the wire, reading the bench.

It speaks the gauge's ASCII commands (Series 5 User's Guide, GCL2): ``?`` the displayed
reading, ``?C`` the current reading, ``?PC`` / ``?PT`` the peaks, ``RM`` / ``RS`` / ``RV``
model, serial number and firmware; replies end with CR LF and readings carry their unit
(``18656.0 N``), compression positive. Unknown commands get ``*10`` (illegal command).

The force comes from a callable evaluated at the bench's present time: a bench cell's
``measure().force_n`` (the jig's force with the cell's swell), or a jig model with a swell
given directly. A force of NaN — the jig's ``SENSOR_LOST`` fault — is answered ``*11``
(not applicable): the manual documents no reply for a gauge without its sensor, and an error
code is what a driver must handle either way. Wire faults come from the line server, plus
``*`` error answers and replies dropped half way, as on the Alicat emulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cellrig.simulators.alicat_emulator import send_reply
from cellrig.simulators.bench import BenchCell
from cellrig.simulators.jig import Jig
from cellrig.simulators.line_server import LineServer, LineSession, WireFaults

#: Newtons per display unit the emulator can be configured with.
NEWTONS_PER_UNIT = {"N": 1.0, "kN": 1.0e3, "kgF": 9.80665, "lbF": 4.4482216152605}


@dataclass
class Mark10Faults:
    """The instrument's own faults; counters count down as commands are answered."""

    error_code: int = 10
    """the code sent by ``errors`` (10 illegal command, 11 not applicable, ...)"""
    errors: int = 0
    """the next N commands are answered with ``*<error_code>``"""
    drop_mid_reply: int = 0
    """the next N replies stop half way and the connection drops"""


class Mark10Emulator:
    """One emulated gauge; a :class:`LineHandler` for the line server."""

    def __init__(self, force_n: Callable[[], float], *, unit: str = "N", decimals: int = 1,
                 compression_positive: bool = True, model: str = "M7I",
                 serial_number: str = "7I-000123", firmware: str = "1.10") -> None:
        if unit not in NEWTONS_PER_UNIT:
            raise ValueError(f"unit {unit!r} not one of {', '.join(NEWTONS_PER_UNIT)}")
        self.force_n = force_n
        self.unit = unit
        self.decimals = decimals
        self.polarity = 1.0 if compression_positive else -1.0
        self.identity = {"RM": model, "RS": serial_number, "RV": firmware}
        self.peak_compression_n = 0.0
        self.peak_tension_n = 0.0
        self.faults = Mark10Faults()
        self.received: list[str] = []
        self.server: LineServer | None = None

    @classmethod
    def for_bench_cell(cls, cell: BenchCell, *, unit: str = "N") -> Mark10Emulator:
        """The gauge of a bench cell's jig: the force with the cell's swell, at bench time."""
        if cell.jig is None:
            raise ValueError("this bench cell has no jig to measure")
        return cls(lambda: cell.measure().force_n, unit=unit)

    @classmethod
    def for_jig(cls, jig: Jig, now_s: Callable[[], float], swell_m: Callable[[float], float],
                *, unit: str = "N") -> Mark10Emulator:
        """The gauge of a jig model whose swell is given as a function of bench time."""
        def force_n() -> float:
            at_s = now_s()
            swell = np.array([swell_m(at_s)])
            return float(jig.measure_force(np.array([at_s]), swell)[0])
        return cls(force_n, unit=unit)

    def line_server(self, faults: WireFaults | None = None) -> LineServer:
        """A line server with the gauge's framing (commands end in CR, an LF after it is
        ignored; replies end in CR LF)."""
        self.server = LineServer(self, read_terminator=b"\r", write_terminator=b"\r\n",
                                 faults=faults)
        return self.server

    # -- the protocol -------------------------------------------------------------------------

    async def on_line(self, line: str, session: LineSession) -> None:
        """Answer one command line."""
        command = line.strip().upper()
        if not command:
            return
        self.received.append(command)
        if self.faults.errors > 0:
            self.faults.errors -= 1
            await send_reply(session, self.server, self.faults, f"*{self.faults.error_code}")
            return
        await send_reply(session, self.server, self.faults, self._answer(command))

    def _answer(self, command: str) -> str:
        if command in self.identity:
            return self.identity[command]
        if command in ("?", "?C"):
            force_n = self.force_n()
            if not math.isfinite(force_n):
                return "*11"
            self.peak_compression_n = max(self.peak_compression_n, force_n)
            self.peak_tension_n = max(self.peak_tension_n, -force_n)
            return self._reading(force_n)
        if command == "?PC":
            return self._reading(self.peak_compression_n)
        if command == "?PT":
            return self._reading(-self.peak_tension_n)
        return "*10"

    def _reading(self, force_n: float) -> str:
        value = self.polarity * force_n / NEWTONS_PER_UNIT[self.unit]
        return f"{value:.{self.decimals}f} {self.unit}"

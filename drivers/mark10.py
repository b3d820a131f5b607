"""Mark-10 force gauge (Series 5 and 7 gauges, Model 7i indicator), over its ASCII protocol.

Source: Mark-10 Series 5 Digital Force Gauges User's Guide, "Command Set / Gauge Control
Language 2 (GCL2)" and the Series 4 guide's "Command Responses". What this driver relies on:

- Commands end with CR or CR LF (a LF after the CR is ignored); replies end with CR LF.
- ``?`` requests the displayed reading, ``?C`` the current (real-time) reading, ``?PT`` and
  ``?PC`` the peak tension and peak compression. The reply is the value, then (when the
  gauge's data format includes units) a space and the unit: ``4.285 N``, ``-18.78 lbF``.
  By default compression reads positive and tension negative; the polarity can be inverted
  or omitted in the gauge's settings, which ``compression_positive`` follows.
- ``RM``, ``RV`` and ``RS`` read model, firmware version and serial number.
- Errors come back as codes: ``*10`` illegal command, ``*11`` not applicable, ``*12``
  invalid specifier, ``*22`` value too large.

The driver converts every unit the gauge can show (N, kN, gF, kgF, ozF, lbF, klbF) to
newtons; it never changes the gauge's settings. A gauge set to "numeric only" output sends
bare numbers: give ``bare_unit`` (the unit shown on its display) for those.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable

from cellrig.drivers.jig_link import LineDriver, LineLink
from cellrig.drivers.ports import Identity
from cellrig.drivers.serial_link import SerialLink
from cellrig.errors import InstrumentReported, MalformedReply

log = logging.getLogger(__name__)

_GRAVITY_M_PER_S2 = 9.80665
_POUND_FORCE_N = 0.45359237 * _GRAVITY_M_PER_S2
#: Newtons per unit, keyed by the unit as the gauge writes it (compared case-insensitively).
NEWTONS_PER_UNIT = {
    "n": 1.0,
    "kn": 1.0e3,
    "gf": 1.0e-3 * _GRAVITY_M_PER_S2,
    "kgf": _GRAVITY_M_PER_S2,
    "ozf": _POUND_FORCE_N / 16.0,
    "lbf": _POUND_FORCE_N,
    "klbf": 1.0e3 * _POUND_FORCE_N,
}
ERROR_CODES = {10: "illegal command", 11: "not applicable", 12: "invalid specifier",
               22: "value too large"}
_ERROR_RE = re.compile(r"^\*(\d+)$")
_READING_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:\s+([A-Za-z]+))?$")


def parse_reading(line: str, bare_unit: str | None = None) -> float:
    """A reading line in newtons, with the gauge's sign; raises ValueError otherwise."""
    match = _READING_RE.match(line.strip())
    if match is None:
        raise ValueError("expected a number, then optionally a space and a unit")
    unit = match.group(2) or bare_unit
    if unit is None:
        raise ValueError("the reading has no unit and no bare_unit is configured")
    factor = NEWTONS_PER_UNIT.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown force unit {unit!r}")
    return float(match.group(1)) * factor


class Mark10ForceGauge(LineDriver):
    """One Mark-10 gauge or indicator; readings in newtons, compression positive."""

    def __init__(self, link: LineLink, *, compression_positive: bool = True,
                 bare_unit: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if bare_unit is not None and bare_unit.lower() not in NEWTONS_PER_UNIT:
            raise ValueError(f"{bare_unit!r} is not a Mark-10 force unit "
                             f"({', '.join(sorted(NEWTONS_PER_UNIT))})")
        super().__init__(link, clock=clock)
        self.compression_sign = 1.0 if compression_positive else -1.0
        self.bare_unit = bare_unit

    @classmethod
    def serial(cls, url: str, *, name: str = "mark10", baudrate: int = 115200,
               timeout_s: float = 0.5, compression_positive: bool = True,
               bare_unit: str | None = None,
               clock: Callable[[], float] = time.monotonic) -> Mark10ForceGauge:
        """A gauge on a serial device path or ``socket://`` URL (8N1; Series 5 defaults to
        115200 baud)."""
        link = SerialLink(url, instrument=name, baudrate=baudrate, write_terminator=b"\r\n",
                          read_terminator=b"\r\n", timeout_s=timeout_s)
        return cls(link, compression_positive=compression_positive, bare_unit=bare_unit,
                   clock=clock)

    # -- readings -----------------------------------------------------------------------------

    async def read_force_n(self) -> float:
        """The displayed reading (``?``): compression force in newtons."""
        return await self._reading("?")

    async def read_current_force_n(self) -> float:
        """The real-time reading (``?C``), whatever the display shows."""
        return await self._reading("?C")

    async def peak_compression_n(self) -> float:
        """The peak compression since the peaks were last zeroed (``?PC``)."""
        return abs(await self._reading("?PC"))

    async def identify(self) -> Identity:
        """Model (``RM``), serial number (``RS``) and firmware (``RV``)."""
        model = await self._query("RM")
        serial_number = await self._query("RS")
        firmware = await self._query("RV")
        return Identity("Mark-10", model, serial_number, firmware)

    # -- internals ----------------------------------------------------------------------------

    async def _query(self, command: str) -> str:
        reply = await self._exchange(command)
        error = _ERROR_RE.match(reply)
        if error is not None:
            code = int(error.group(1))
            meaning = ERROR_CODES.get(code, "unknown error")
            raise InstrumentReported(f"gauge error *{code} ({meaning})", code=code,
                                     instrument=self.link.instrument, address=self.link.url,
                                     command=command)
        return reply

    async def _reading(self, command: str) -> float:
        reply = await self._query(command)
        try:
            value_n = parse_reading(reply, self.bare_unit)
        except ValueError as error:
            log.warning("%s at %s: bad reading %r: %s", self.link.instrument, self.link.url,
                        reply, error)
            raise self._error(MalformedReply, f"not a force reading: {reply!r} ({error})",
                              command) from error
        if not math.isfinite(value_n):
            raise self._error(MalformedReply, f"not a finite reading: {reply!r}", command)
        return self.compression_sign * value_n

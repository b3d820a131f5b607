"""Alicat PC-series pressure controller, over its ASCII serial protocol.

Source: Alicat's Serial Communications Primer (Rev. 2, February 2023) and the serial chapter
of the PC/PCD operating manuals. What this driver relies on:

- Every command starts with the unit ID (``A``–``Z``; default ``A``) and ends with a carriage
  return; every reply is one line ending with a carriage return. Commands are not case
  sensitive. Up to 26 units share one RS-485 line, told apart by their IDs.
- ``A`` polls the live data frame. For a pressure controller it is the unit ID, the pressure
  and the setpoint (in the engineering units the unit was configured with), optionally more
  numeric columns, then zero or more status codes: ``HLD`` valves held, ``OPL`` over the
  pressure limit, ``POV`` pressure over range, ``ADC`` converter error, ``EXH`` exhaust,
  ``LCK`` front display locked, ``OVR``/``TOV``/``MOV``/``VOV``/``TMF``.
- ``AS<value>`` sets a new setpoint as a floating point number in engineering units; the
  reply is the data frame, whose setpoint column shows the new value once accepted.
- ``AHP`` holds the valves where they are, ``AHC`` holds them closed, ``AC`` cancels a hold;
  each answers with the data frame. ``AVE`` returns the firmware version.
- A command the unit does not accept is answered with ``?``.

The controller regulates the gas pressure behind a jig's piston on its own; cellrig closes
the outer loop on the measured force (:mod:`cellrig.drivers.pressure_loop`). If the PC dies
the Alicat keeps holding its last setpoint, which keeps the stack pressed: the safe state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cellrig.drivers.jig_errors import JigRefused
from cellrig.drivers.jig_geometry import unit_factor
from cellrig.drivers.jig_link import LineDriver, LineLink
from cellrig.drivers.serial_link import SerialLink
from cellrig.errors import InstrumentReported, MalformedReply

log = logging.getLogger(__name__)

#: Status codes an Alicat appends to its data frame.
STATUS_CODES = frozenset({"ADC", "EXH", "HLD", "LCK", "MOV", "OPL", "OVR", "POV", "TMF",
                          "TOV", "VOV"})
UNIT_IDS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class AlicatFrame:
    """One data frame of a pressure controller, pressures in pascals (gauge, as configured)."""

    unit_id: str
    pressure_pa: float
    setpoint_pa: float
    extra: tuple[float, ...] = ()
    status: frozenset[str] = frozenset()

    @property
    def held(self) -> bool:
        """Whether the valves are held (``HLD``): the unit is not regulating."""
        return "HLD" in self.status


def pascals_per_unit(unit: str) -> float:
    """The size of one engineering unit (``psi``, ``kPa``, ``bar``, ``mbar``, ``Pa``) in Pa;
    read once from the station configuration, never in the loop."""
    factor = unit_factor(unit, "Pa")
    if factor is None:
        raise ValueError(f"{unit!r} is not a pressure unit (for example psi, kPa, bar)")
    return factor


def parse_frame(line: str, unit_id: str, pa_per_unit: float) -> AlicatFrame:
    """Parse a pressure controller's data frame; raises ValueError when it is not one."""
    fields = line.split()
    if len(fields) < 3:
        raise ValueError("a data frame has a unit ID, a pressure and a setpoint")
    if fields[0].upper() != unit_id:
        raise ValueError(f"frame from unit {fields[0]!r}, expected {unit_id!r}")
    numbers: list[float] = []
    status: set[str] = set()
    for field in fields[1:]:
        if field.upper() in STATUS_CODES:
            status.add(field.upper())
            continue
        if status:
            raise ValueError(f"column {field!r} after the status codes")
        try:
            value = float(field)
        except ValueError:
            raise ValueError(f"column {field!r} is neither a number nor a status code") from None
        if not math.isfinite(value):
            raise ValueError(f"column {field!r} is not a finite number")
        numbers.append(value)
    if len(numbers) < 2:
        raise ValueError("a data frame has a pressure and a setpoint")
    return AlicatFrame(unit_id, numbers[0] * pa_per_unit, numbers[1] * pa_per_unit,
                       tuple(numbers[2:]), frozenset(status))


class AlicatPressureController(LineDriver):
    """One Alicat pressure controller (PC, PCD, PCR) on a serial line or terminal server.

    ``pressure_unit`` is the engineering unit the controller reports and takes setpoints in
    (set when it was ordered or from its front panel); ``full_scale_pa`` its range, above
    which setpoints are refused before anything is sent. Use as ``async with``.
    """

    def __init__(self, link: LineLink, *, unit_id: str = "A", pressure_unit: str = "psi",
                 full_scale_pa: float = 1.0e6, setpoint_decimals: int = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        unit_id = unit_id.upper()
        if unit_id not in UNIT_IDS:
            raise ValueError(f"an Alicat unit ID is one letter A-Z, not {unit_id!r}")
        if not full_scale_pa > 0:
            raise ValueError("full_scale_pa must be positive")
        super().__init__(link, clock=clock)
        self.unit_id = unit_id
        self.pa_per_unit = pascals_per_unit(pressure_unit)
        self.full_scale_pa = full_scale_pa
        self.setpoint_decimals = setpoint_decimals

    @classmethod
    def serial(cls, url: str, *, name: str = "alicat", baudrate: int = 19200,
               timeout_s: float = 0.5, unit_id: str = "A", pressure_unit: str = "psi",
               full_scale_pa: float = 1.0e6,
               clock: Callable[[], float] = time.monotonic) -> AlicatPressureController:
        """A controller on a serial device path or ``socket://`` URL (8N1, CR framing)."""
        link = SerialLink(url, instrument=name, baudrate=baudrate, write_terminator=b"\r",
                          read_terminator=b"\r", timeout_s=timeout_s)
        return cls(link, unit_id=unit_id, pressure_unit=pressure_unit,
                   full_scale_pa=full_scale_pa, clock=clock)

    # -- commands -----------------------------------------------------------------------------

    async def poll(self) -> AlicatFrame:
        """The live data frame (``A``)."""
        return await self._frame(self.unit_id)

    async def set_pressure(self, pressure_pa: float) -> AlicatFrame:
        """A new setpoint (``AS<value>``); checks that the frame echoes it."""
        if not 0.0 <= pressure_pa <= self.full_scale_pa:
            raise JigRefused(f"setpoint {pressure_pa:.0f} Pa outside 0..{self.full_scale_pa:.0f}"
                             " Pa of the controller")
        value = round(pressure_pa / self.pa_per_unit, self.setpoint_decimals)
        command = f"{self.unit_id}S{value:.{self.setpoint_decimals}f}"
        frame = await self._frame(command)
        resolution = 0.5 * 10.0 ** -self.setpoint_decimals + 1e-9
        if abs(frame.setpoint_pa / self.pa_per_unit - value) > resolution:
            raise self._error(
                InstrumentReported, f"setpoint not accepted: the frame shows "
                f"{frame.setpoint_pa:.0f} Pa (is the setpoint source set to serial?)", command)
        return frame

    async def hold_valves(self) -> AlicatFrame:
        """Hold the valves at their present position (``AHP``): the pressure stays put
        without regulation."""
        return await self._frame(f"{self.unit_id}HP")

    async def close_valves(self) -> AlicatFrame:
        """Hold the valves closed (``AHC``)."""
        return await self._frame(f"{self.unit_id}HC")

    async def cancel_hold(self) -> AlicatFrame:
        """Resume regulating after a hold (``AC``)."""
        return await self._frame(f"{self.unit_id}C")

    async def firmware(self) -> str:
        """The firmware version as the unit reports it (``AVE``), without the unit ID."""
        reply = await self._query(f"{self.unit_id}VE")
        fields = reply.split(maxsplit=1)
        if len(fields) == 2 and fields[0].upper() == self.unit_id:
            return fields[1].strip()
        return reply.strip()

    # -- internals ----------------------------------------------------------------------------

    async def _query(self, command: str) -> str:
        reply = await self._exchange(command)
        if reply == "?" or reply.upper() == f"{self.unit_id} ?":
            raise self._error(InstrumentReported, "the controller refused the command ('?')",
                              command)
        return reply

    async def _frame(self, command: str) -> AlicatFrame:
        reply = await self._query(command)
        try:
            return parse_frame(reply, self.unit_id, self.pa_per_unit)
        except ValueError as error:
            log.warning("%s at %s: bad data frame %r: %s", self.link.instrument, self.link.url,
                        reply, error)
            raise self._error(MalformedReply, f"not a data frame: {reply!r} ({error})",
                              command) from error

"""An ESPEC chamber controller on the wire, backed by a bench chamber.

Speaks the P-300 / SCP-220 family's CR LF-framed ASCII command set (the commands, reply layouts
and ``NA:`` reasons of ESPEC North America's ChamberConnectLibrary and ESPEC's communication
manuals; see :mod:`cellrig.drivers.espec_protocol` for the sources) over
:class:`~cellrig.simulators.line_server.LineServer`, so a driver reaches it through pyserial on
a pseudo-terminal or a ``socket://`` URL exactly as it reaches a chamber. Time is the bench
clock's: on an accelerated or virtual clock a one-hour soak passes in seconds.

What the emulated controller does:

- ``MODE,CONSTANT`` drives the chamber model to the constant setpoint; ``MODE,STANDBY`` and
  ``MODE,OFF`` stop conditioning, so the air drifts to room temperature.
- ``TEMP, S<sp> H<upper> L<lower>`` (any of the three) sets the setpoint and the absolute
  alarm limits; a setpoint outside the limits, or limits outside the rating, is refused with
  ``NA:DATA OUT OF RANGE``.
- Alarms (``ALARM?``, and the count in ``MON?``) follow the chamber: an open door raises the
  door alarm at once; air above the upper limit (a runaway heater) or below the lower limit
  raises the limit alarms. They stay active while their condition holds. ESPEC numbers alarms
  per controller model; the codes here are this emulator's (:data:`ALARM_TEXTS`).

Wire faults come from the line server (:class:`~cellrig.simulators.line_server.WireFaults`);
instrument errors from :attr:`EspecEmulator.na_replies` (the next commands are refused with
those ``NA:`` reasons).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .chamber import Chamber, ChamberFault, FloatArray
from .line_server import LineServer, LineSession

ALARM_UPPER_LIMIT = 1
ALARM_LOWER_LIMIT = 2
ALARM_DOOR_OPEN = 3

#: The emulator's alarm codes and what they mean (a driver's ``alarm_names``).
ALARM_TEXTS: dict[int, str] = {
    ALARM_UPPER_LIMIT: "temperature upper limit",
    ALARM_LOWER_LIMIT: "temperature lower limit",
    ALARM_DOOR_OPEN: "door open",
}

_SETTING = re.compile(r"^([SHL])(-?\d+(?:\.\d*)?)$")


class BenchTime(Protocol):
    """The bench clock as emulators read it."""

    def now_s(self) -> float:
        """Seconds on the bench's clock."""
        ...


class EspecEmulator:
    """One ESPEC controller; a :class:`~cellrig.simulators.line_server.LineHandler`."""

    def __init__(self, chamber: Chamber, clock: BenchTime, *,
                 rated_range_c: tuple[float, float] = (-40.0, 150.0),
                 rs485_address: int | None = None) -> None:
        self.chamber = chamber
        self.clock = clock
        self.rated_range_c = rated_range_c
        self.rs485_address = rs485_address
        self.mode = "CONSTANT"
        self.setpoint_c = round(chamber.setpoint_c, 1)
        self.lower_limit_c, self.upper_limit_c = rated_range_c
        self.na_replies: list[str] = []
        """``NA:`` reasons the next commands are refused with (an instrument error)."""
        self.received: deque[str] = deque(maxlen=1000)
        """The latest commands received (addressed to this controller), oldest first."""

    def server(self) -> LineServer:
        """A line server for this controller (start it on TCP and/or a pseudo-terminal)."""
        return LineServer(self, read_terminator=b"\n", write_terminator=b"\r\n")

    async def on_line(self, line: str, session: LineSession) -> None:
        """Answer one command line."""
        reply = self.handle(line)
        if reply is not None:
            await session.send_line(reply)

    # -- the controller ---------------------------------------------------------------------

    def handle(self, line: str) -> str | None:
        """The reply to one command (None: not addressed to this controller)."""
        text = re.sub(r",\s+", ",", line.strip())
        if self.rs485_address is not None:
            address, _, text = text.partition(",")
            if address != str(self.rs485_address):
                return None
        self.received.append(text)
        if self.na_replies:
            return "NA:" + self.na_replies.pop(0)
        try:
            return self._answer(text)
        except _Refused as refusal:
            return f"NA:{refusal}"

    def _answer(self, text: str) -> str:
        now_s = self.clock.now_s()
        queries: dict[str, Callable[[], str]] = {
            "TYPE?": lambda: f"T,S2,{self.rated_range_c[1]:.1f}",
            "ROM?": lambda: "EMULATOR 1.00",
            "TEMP?": lambda: (f"{self.measured_c(now_s):.1f},{self.setpoint_c:.1f},"
                              f"{self.upper_limit_c:.1f},{self.lower_limit_c:.1f}"),
            "MON?": lambda: (f"{self.measured_c(now_s):.1f},,{self.mode},"
                             f"{len(self.active_alarms(now_s))}"),
            "MODE?": lambda: self.mode,
            "ALARM?": lambda: self._alarm_reply(now_s),
            "CONSTANT SET?,TEMP": lambda: f"{self.setpoint_c:.1f},ON",
        }
        if text in queries:
            return queries[text]()
        head, _, argument = text.partition(",")
        if head == "TEMP" and argument:
            self._set_temperature(argument, now_s)
        elif head == "MODE" and argument in ("CONSTANT", "STANDBY", "OFF"):
            self._set_mode(argument, now_s)
        elif head == "POWER" and argument in ("ON", "OFF"):
            self._set_mode("CONSTANT" if argument == "ON" else "OFF", now_s)
        elif head in ("HUMI?", "HUMI"):
            raise _Refused("CONT NOT READY-1")
        elif head in ("TEMP", "MODE", "POWER"):
            raise _Refused("PARA ERR")
        else:
            raise _Refused("CMD ERR")
        return f"OK:{text}"

    def _alarm_reply(self, now_s: float) -> str:
        codes = self.active_alarms(now_s)
        return ",".join(str(number) for number in [len(codes), *codes])

    def _set_temperature(self, argument: str, now_s: float) -> None:
        values: dict[str, float] = {}
        for token in argument.split():
            match = _SETTING.match(token)
            if match is None:
                raise _Refused("PARA ERR")
            values[match.group(1)] = round(float(match.group(2)), 1)
        upper_c = values.get("H", self.upper_limit_c)
        lower_c = values.get("L", self.lower_limit_c)
        setpoint_c = values.get("S", self.setpoint_c)
        rated_low_c, rated_high_c = self.rated_range_c
        if not rated_low_c <= lower_c < upper_c <= rated_high_c:
            raise _Refused("DATA OUT OF RANGE")
        if "S" in values and not lower_c <= setpoint_c <= upper_c:
            raise _Refused("DATA OUT OF RANGE")
        self.upper_limit_c, self.lower_limit_c, self.setpoint_c = upper_c, lower_c, setpoint_c
        if self.mode == "CONSTANT":
            self.chamber.set(setpoint_c, now_s)

    def _set_mode(self, mode: str, now_s: float) -> None:
        self.mode = mode
        target_c = self.setpoint_c if mode == "CONSTANT" else self.chamber.room_c
        self.chamber.set(target_c, now_s)

    # -- what the sensors and the alarm logic see --------------------------------------------

    def measured_c(self, now_s: float) -> float:
        """The chamber's sensor now."""
        return self._air_c(now_s, self.chamber.measure)

    def _air_c(self, now_s: float, model: Callable[[FloatArray], FloatArray]) -> float:
        """The model at ``now_s``; at the very instant of a change without a ramp limit (an
        opened door) the model yields NaN, where the air still has its temperature of that
        instant."""
        with np.errstate(invalid="ignore"):
            value = float(model(np.array([now_s]))[0])
        return value if math.isfinite(value) else self.chamber.temperature_c

    def active_alarms(self, now_s: float) -> list[int]:
        """Alarm codes active now, in code order."""
        true_c = self._air_c(now_s, self.chamber.true_temperature)
        active = []
        if true_c > self.upper_limit_c:
            active.append(ALARM_UPPER_LIMIT)
        if true_c < self.lower_limit_c:
            active.append(ALARM_LOWER_LIMIT)
        if self.chamber.fault is ChamberFault.DOOR_OPEN:
            active.append(ALARM_DOOR_OPEN)
        return active


class _Refused(Exception):
    """The controller answers ``NA:<reason>``."""

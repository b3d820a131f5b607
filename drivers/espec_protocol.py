"""The ESPEC chamber controllers' ASCII command set: command strings and reply parsing (pure).

Covers the P-300 / SCP-220 family (SH-, SU-, PR-, PL- series) and the communication option of
other ESPEC controllers, which share the command set. Sources:

- ESPEC North America's ChamberConnectLibrary (MIT), ``chamberconnectlibrary/p300.py`` and
  ``especinteract.py``: the commands and reply layouts (``TEMP?`` → ``PV,SP,upper,lower``;
  ``MON?`` → ``temp,humi,mode,alarms``; ``ALARM?`` → ``count,code,code…``; ``MODE?``), the
  ``NA:<reason>`` error replies and their table, CR LF framing, 9600 baud default, and the
  setpoint format ``TEMP, S%0.1f`` (one decimal).
- The communication manual of ESPEC's EHS series, section 3.2 "Monitor commands": the RS-485
  form ``<address>,<command>`` (addresses 1 to 16) and the ``MON?`` reply
  (``"24.1,100,CONSTANT,0"``: monitored temperature, humidity, operating mode, alarm count).
- akaeba/ATWG's SH-641 driver: a setting command is acknowledged by ``OK:`` followed by the
  command (``OK:TEMP,S25``).

Setting commands are sent as the vendor library sends them (``TEMP, S25.0``, ``MODE,CONSTANT``);
the controller ignores the blank after a comma, so ``MODE, CONSTANT`` means the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .chamber_common import ChamberMode

#: What the controller's ``NA:`` reasons mean (ChamberConnectLibrary's table, reworded).
NA_REASONS: dict[str, str] = {
    "CMD ERR": "unrecognised command",
    "ADDR ERR": "bad address",
    "CONT NOT READY-1": "the chamber has no such loop (humidity or product temperature)",
    "CONT NOT READY-2": "the chamber is not running a program",
    "CONT NOT READY-3": "command not supported by this controller",
    "CONT NOT READY-4": "keys cannot be locked while the controller is off",
    "CONT NOT READY-5": "the time signal is not enabled",
    "DATA NOT READY": "the program does not exist",
    "PARA ERR": "parameter missing or not recognised",
    "DATA OUT OF RANGE": "value outside the valid range",
    "PROTECT ON": "data protection is enabled on the panel",
    "INVALID REQ": "unsupported function",
    "CHB NOT READY": "the chamber cannot act on the command now",
}

#: Operating modes as ``MODE?`` and ``MON?`` report them (``,DETAIL`` adds words after these).
_MODES: dict[str, ChamberMode] = {
    "OFF": ChamberMode.OFF,
    "STANDBY": ChamberMode.STANDBY,
    "CONSTANT": ChamberMode.CONSTANT,
    "RUN": ChamberMode.PROGRAM,
}

TEMPERATURE_QUERY = "TEMP?"
MONITOR_QUERY = "MON?"
MODE_QUERY = "MODE?"
ALARM_QUERY = "ALARM?"
TYPE_QUERY = "TYPE?"
CONSTANT_MODE = "MODE,CONSTANT"
STANDBY_MODE = "MODE,STANDBY"


class ReplyError(ValueError):
    """A reply that does not have the layout its command expects."""


@dataclass(frozen=True, slots=True)
class TemperatureStatus:
    """``TEMP?``: measured value, setpoint and the controller's upper and lower limits."""

    temperature_c: float
    setpoint_c: float
    upper_limit_c: float
    lower_limit_c: float


@dataclass(frozen=True, slots=True)
class Monitor:
    """``MON?``: measured temperature, humidity (None without a humidity loop), mode, alarms."""

    temperature_c: float
    humidity_pct: float | None
    mode: ChamberMode
    alarm_count: int


def addressed(command: str, rs485_address: int | None) -> str:
    """The command as sent on the wire: RS-485 multi-drop prefixes ``<address>,``."""
    if rs485_address is None:
        return command
    if not 1 <= rs485_address <= 16:
        raise ValueError("ESPEC RS-485 addresses run from 1 to 16")
    return f"{rs485_address},{command}"


def setpoint_command(setpoint_c: float) -> str:
    """The constant temperature setpoint, one decimal as the controller takes it."""
    return f"TEMP, S{setpoint_c:.1f}"


def na_reason(reply: str) -> str | None:
    """The reason of an ``NA:`` error reply (None if the reply is not an error)."""
    if not reply.startswith("NA:"):
        return None
    return reply[3:].strip()


def describe_na(reason: str) -> str:
    """A person's reading of an ``NA:`` reason."""
    meaning = NA_REASONS.get(reason)
    return f"chamber refused: NA:{reason}" + (f" ({meaning})" if meaning else "")


def check_acknowledged(reply: str) -> None:
    """A setting command's reply must be its ``OK`` acknowledgement."""
    if not reply.startswith("OK"):
        raise ReplyError(f"expected an OK acknowledgement, got {reply!r}")


def _number(text: str, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ReplyError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ReplyError(f"{what} {text!r} is not a finite number")
    return value


def _fields(reply: str, count: int, what: str) -> list[str]:
    fields = reply.split(",")
    if len(fields) < count:
        raise ReplyError(f"{what} reply {reply!r} has {len(fields)} fields, expected {count}")
    return fields


def parse_mode(text: str) -> ChamberMode:
    """``OFF``, ``STANDBY``, ``CONSTANT``, ``RUN`` (``RUN PAUSE`` etc. with ``,DETAIL``)."""
    words = text.strip().split()
    if words and words[0] in _MODES:
        return _MODES[words[0]]
    if len(words) > 1 and words[0] == "RMT" and words[1] == "RUN":
        return ChamberMode.PROGRAM
    raise ReplyError(f"unknown operating mode {text!r}")


def parse_temperature(reply: str) -> TemperatureStatus:
    """``TEMP?`` → ``PV,SP,upper limit,lower limit``."""
    fields = _fields(reply, 4, "TEMP?")
    return TemperatureStatus(
        temperature_c=_number(fields[0], "temperature"),
        setpoint_c=_number(fields[1], "setpoint"),
        upper_limit_c=_number(fields[2], "upper limit"),
        lower_limit_c=_number(fields[3], "lower limit"),
    )


def parse_monitor(reply: str) -> Monitor:
    """``MON?`` → ``temperature,humidity,mode,alarm count`` (humidity empty without a loop)."""
    fields = _fields(reply, 4, "MON?")
    humidity = fields[1].strip()
    count = _number(fields[3], "alarm count")
    if count < 0 or count != int(count):
        raise ReplyError(f"alarm count {fields[3]!r} is not a count")
    return Monitor(
        temperature_c=_number(fields[0], "temperature"),
        humidity_pct=_number(humidity, "humidity") if humidity else None,
        mode=parse_mode(fields[2]),
        alarm_count=int(count),
    )


def parse_alarms(reply: str) -> list[int]:
    """``ALARM?`` → ``count[,code…]``: the active alarm codes (the count must match)."""
    fields = [field.strip() for field in reply.split(",")]
    if not fields[0].isdigit():
        raise ReplyError(f"ALARM? reply {reply!r} does not start with a count")
    codes = fields[1:]
    if not all(code.isdigit() for code in codes) or int(fields[0]) != len(codes):
        raise ReplyError(f"ALARM? reply {reply!r} does not list {fields[0]} alarm code(s)")
    return [int(code) for code in codes]

"""The Watlow F4T's Modbus register map as cellrig uses it, and its 32-bit float layout.

Addresses are the F4T's "relative" addresses, sent as they are in the Modbus PDU (data map 1,
the F4T's own map). Sources: the Watlow F4T Setup and Operations User's Guide, appendix
"Modbus" tables (display units 1328; alarm *n* type 1330, high and low set points 1334 and
1336, each +100 per alarm; control loop *n* registers +160 per loop), ESPEC North America's
ChamberConnectLibrary ``watlowf4t.py`` (loop 1: control mode 2730, set point range 2774/2776,
closed-loop set point 2782, working set point 2810, active control mode 2814, process value
2820; alarm state 1356 + 100·(n−1), whose values 88, 61 and 12 mean inactive), and the
TestEquity F4T manual's communications chapter ("Modbus Word Order: Low High (default),
High Low").

======================  =========================  ======  ===========================
register (loop/alarm 1)  meaning                    type    access
======================  =========================  ======  ===========================
1328                    display units              enum    RW: F (30), C (15)
1330 + 100·(n−1)        alarm n type               enum    RW: off (62), process (76),
                                                            deviation (24)
1334 / 1336 + 100·(n−1) alarm n high / low point   float   RW
1356 + 100·(n−1)        alarm n state              enum    R
2730 + 160·(k−1)        loop k control mode        enum    RW: off (62), auto (10),
                                                            manual (54)
2774 / 2776 + 160·(k−1) loop k set point min / max float   RW
2782 + 160·(k−1)        loop k closed-loop set pt  float   RW
2810 + 160·(k−1)        loop k working set point   float   R
2814 + 160·(k−1)        loop k active control mode enum    R
2820 + 160·(k−1)        loop k process value       float   R
======================  =========================  ======  ===========================

Temperatures travel in the display units: a driver reads register 1328 and converts.
A float spans two registers; with the factory word order (low-high) the register at the lower
address holds the low 16 bits.
"""

from __future__ import annotations

import struct
from enum import IntEnum, StrEnum

DISPLAY_UNITS = 1328
ALARM_STRIDE = 100
ALARM_TYPE = 1330
ALARM_HIGH_SET_POINT = 1334
ALARM_LOW_SET_POINT = 1336
ALARM_STATE = 1356
LOOP_STRIDE = 160
CONTROL_MODE = 2730
SET_POINT_MIN = 2774
SET_POINT_MAX = 2776
CLOSED_LOOP_SET_POINT = 2782
WORKING_SET_POINT = 2810
CONTROL_MODE_ACTIVE = 2814
PROCESS_VALUE = 2820


class F4tValue(IntEnum):
    """The F4T's enumerated values used here (its parameter tables list them in brackets)."""

    ALARM_HIGH = 7
    ALARM_LOW = 8
    AUTO = 10
    BLOCKED = 12
    CELSIUS = 15
    DEVIATION_ALARM = 24
    ERROR = 28
    FAHRENHEIT = 30
    MANUAL = 54
    NONE = 61
    OFF = 62
    PROCESS_ALARM = 76
    STARTUP = 88


#: Alarm states that mean "no alarm" (ChamberConnectLibrary's test).
INACTIVE_ALARM_STATES = frozenset({F4tValue.STARTUP, F4tValue.NONE, F4tValue.BLOCKED})

#: What the active alarm states are called.
ALARM_STATE_NAMES: dict[int, str] = {
    F4tValue.ALARM_HIGH: "high",
    F4tValue.ALARM_LOW: "low",
    F4tValue.ERROR: "error",
}


class WordOrder(StrEnum):
    """The F4T's "Modbus Word Order" setting for 32-bit values."""

    LOW_HIGH = "low-high"
    """factory default: the lower address holds the low word"""
    HIGH_LOW = "high-low"


def loop_register(base: int, loop: int) -> int:
    """The register of control loop ``loop`` (1-based)."""
    if loop < 1:
        raise ValueError("F4T control loops are numbered from 1")
    return base + LOOP_STRIDE * (loop - 1)


def alarm_register(base: int, alarm: int) -> int:
    """The register of alarm ``alarm`` (1-based)."""
    if alarm < 1:
        raise ValueError("F4T alarms are numbered from 1")
    return base + ALARM_STRIDE * (alarm - 1)


def encode_float(value: float, order: WordOrder) -> list[int]:
    """An IEEE 754 single as two registers in ``order``."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [low, high] if order is WordOrder.LOW_HIGH else [high, low]


def decode_float(registers: list[int], order: WordOrder) -> float:
    """Two registers in ``order`` as an IEEE 754 single."""
    if len(registers) != 2 or not all(0 <= r <= 0xFFFF for r in registers):
        raise ValueError(f"a float needs two 16-bit registers, not {registers!r}")
    low, high = registers if order is WordOrder.LOW_HIGH else reversed(registers)
    value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
    return value


def to_celsius(value: float, units: int) -> float:
    """A temperature in the F4T's display units as °C."""
    return (value - 32.0) / 1.8 if units == F4tValue.FAHRENHEIT else value


def from_celsius(temperature_c: float, units: int) -> float:
    """A °C temperature in the F4T's display units."""
    return temperature_c * 1.8 + 32.0 if units == F4tValue.FAHRENHEIT else temperature_c

"""What the temperature-chamber drivers share: modes, the setpoint range, readings.

A chamber usually serves several channels (every cell on its shelves): each driver carries a
``channels`` tuple naming them, so an alarm of the chamber can be raised on every channel
that shares it, and a setpoint is refused before it is sent when it lies outside the range
the chamber accepts (``temperature_range_c``), both when a job is submitted
(:func:`temperatures_outside`) and at the driver (:func:`check_setpoint`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cellrig.errors import InstrumentError, UnsupportedInstrument
from cellrig.protocols.program import Program, SetStep

#: A clock in seconds; the chamber drivers time their readings with it (stability rule).
Clock = Callable[[], float]


class ChamberMode(StrEnum):
    """What the chamber is doing, in the words chamber controllers use."""

    OFF = "off"
    """controller or conditioning switched off"""
    STANDBY = "standby"
    """powered, not heating or cooling (the safe state)"""
    CONSTANT = "constant"
    """holding the constant setpoint"""
    PROGRAM = "program"
    """running a program stored in the controller"""
    MANUAL = "manual"
    """fixed output power, no temperature control"""


class SetpointRefused(InstrumentError):
    """A setpoint outside the chamber's range; refused before anything is sent."""


@dataclass(frozen=True, slots=True)
class ChamberReading:
    """One look at the chamber: measured and set temperature, mode and alarm count."""

    temperature_c: float
    setpoint_c: float
    mode: ChamberMode
    alarm_count: int


def narrow_range(range_c: tuple[float, float],
                 limits_c: tuple[float, float]) -> tuple[float, float]:
    """The part of ``range_c`` inside ``limits_c`` (the controller's own limits may be
    narrower than the chamber's rating); raises ``ValueError`` if they do not overlap."""
    low_c, high_c = max(range_c[0], limits_c[0]), min(range_c[1], limits_c[1])
    if not low_c <= high_c:
        raise ValueError(f"temperature ranges {range_c} and {limits_c} do not overlap")
    return low_c, high_c


def controller_range(rated_c: tuple[float, float], controller_c: tuple[float, float], *,
                     instrument: str, address: str, command: str) -> tuple[float, float]:
    """The setpoint range of a chamber: its rating narrowed to the controller's own range;
    raises :class:`UnsupportedInstrument` if the two do not overlap (a chamber other than the
    one the station describes)."""
    try:
        return narrow_range(rated_c, controller_c)
    except ValueError as error:
        raise UnsupportedInstrument(
            f"the controller's range {controller_c[0]:g} to {controller_c[1]:g} °C does not "
            f"overlap the chamber's rated range {rated_c[0]:g} to {rated_c[1]:g} °C",
            instrument=instrument, address=address, command=command) from error


def check_setpoint(setpoint_c: float, range_c: tuple[float, float], *, instrument: str,
                   address: str, command: str) -> None:
    """Raise :class:`SetpointRefused` unless ``setpoint_c`` is a number within ``range_c``."""
    low_c, high_c = range_c
    if not math.isfinite(setpoint_c) or not low_c <= setpoint_c <= high_c:
        raise SetpointRefused(
            f"setpoint {setpoint_c:g} °C is outside the chamber's range "
            f"{low_c:g} to {high_c:g} °C", instrument=instrument, address=address,
            command=command)


def temperatures_outside(program: Program, range_c: tuple[float, float]) -> list[SetStep]:
    """The program's ``set`` steps whose temperature a chamber with ``range_c`` cannot reach:
    what submission refuses for a channel in that chamber."""
    low_c, high_c = range_c
    return [step for step in program.iter_steps()
            if isinstance(step, SetStep) and step.temperature_c is not None
            and not low_c <= step.temperature_c <= high_c]

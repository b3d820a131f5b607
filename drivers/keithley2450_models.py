"""The Keithley 2450 family: models and ratings, the channel's hard limits, reply parsing.

Ratings and overvoltage-protection settings from the reference manuals: 2450 (2450-901-01,
``:SOURce[1]:<function>:PROTection[:LEVel]`` PROT2 … PROT180 or NONE; source ±1.05 A at up
to 21 V, ±210 V at up to 105 mA) and 2461 (2461-901-01: PROT2 … PROT80 or NONE; ±7.35 A DC,
±105 V), which the 2460 shares. Identity strings (``*IDN?``) read
``KEITHLEY INSTRUMENTS[ INC.],MODEL 2450,<serial>,<firmware>``; the error queue
(``:SYSTem:ERRor?``) answers ``<code>,"<message>;<severity>;<time>"`` and
``0,"No error;0,0,0"`` when empty.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cellrig.drivers.ports import Identity
from cellrig.protocols.rig import Capabilities

#: What the instrument returns for a value it could not measure (SCPI's "not a number").
NOT_A_NUMBER = 9.91e37


@dataclass(frozen=True, slots=True)
class SmuModel:
    """One model of the family: its source ranges and overvoltage-protection settings."""

    model: str
    max_current_a: float
    max_voltage_v: float
    protection_levels_v: tuple[int, ...]

    def capabilities(self, min_sample_interval_s: float) -> Capabilities:
        """The source part of a channel's capabilities: four quadrants up to the ratings, no
        constant power or resistance, steps ended by the host."""
        return Capabilities(max_current_a=self.max_current_a,
                            min_voltage_v=-self.max_voltage_v, max_voltage_v=self.max_voltage_v,
                            constant_power=False, constant_resistance=False,
                            device_cutoffs=False, min_sample_interval_s=min_sample_interval_s)

    def protection(self, max_voltage_v: float) -> str:
        """The lowest overvoltage-protection setting that lets ``max_voltage_v`` through
        (``NONE`` above the highest level)."""
        for level in self.protection_levels_v:
            if abs(max_voltage_v) <= level:
                return f"PROT{level}"
        return "NONE"


MODELS: dict[str, SmuModel] = {
    "2450": SmuModel("2450", 1.05, 210.0, (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)),
    "2460": SmuModel("2460", 7.35, 105.0, (2, 5, 10, 20, 40, 60, 80)),
    "2461": SmuModel("2461", 7.35, 105.0, (2, 5, 10, 20, 40, 60, 80)),
}


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """The hard limits of a channel, from the station configuration: set in the instrument
    (voltage and current limits, overvoltage protection) so the cell stays protected when the
    PC dies, and the bounds of every command.

    ``min_voltage_v`` is the lowest voltage a discharge may take the cell to: a discharge is
    sourced as a voltage at that bound with the discharge current as its limit, so even an
    instrument left alone stops there (0 disables this and discharges at constant current).
    """

    max_voltage_v: float
    max_current_a: float
    min_voltage_v: float = 0.0

    def __post_init__(self) -> None:
        if not self.max_voltage_v > 0 or not self.max_current_a > 0:
            raise ValueError("channel limits need a positive maximum voltage and current")
        if not 0 <= self.min_voltage_v < self.max_voltage_v:
            raise ValueError("channel limits need 0 <= min_voltage_v < max_voltage_v")

    def within(self, model: SmuModel) -> list[str]:
        """Why these limits do not fit the model (empty when they do)."""
        problems = []
        if self.max_current_a > model.max_current_a:
            problems.append(f"max current {self.max_current_a:g} A exceeds the "
                            f"{model.max_current_a:g} A of a {model.model}")
        if self.max_voltage_v > model.max_voltage_v:
            problems.append(f"max voltage {self.max_voltage_v:g} V exceeds the "
                            f"{model.max_voltage_v:g} V of a {model.model}")
        return problems


def parse_identity(reply: str) -> Identity | None:
    """The four fields of ``*IDN?``, or None if the reply has not four."""
    fields = [field.strip() for field in reply.split(",")]
    if len(fields) != 4:
        return None
    model = fields[1]
    if model.upper().startswith("MODEL "):
        model = model[6:].strip()
    return Identity(fields[0], model, fields[2], fields[3])


_ERROR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')


def parse_error(reply: str) -> tuple[int, str] | None:
    """Code and message of a ``:SYSTem:ERRor?`` reply (the message without the severity and
    time the 2450 appends after ``;``), or None if it does not parse."""
    found = _ERROR.match(reply)
    if found is None:
        return None
    return int(found.group(1)), found.group(2).split(";")[0]


def parse_numbers(reply: str) -> list[float] | None:
    """Comma-separated numbers (9.91E37 becomes NaN), or None if any field is not one."""
    values: list[float] = []
    for field in reply.split(","):
        try:
            value = float(field)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        values.append(math.nan if abs(value) >= NOT_A_NUMBER * 0.999 else value)
    return values

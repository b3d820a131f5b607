"""The SCPI commands the Keithley 2450 driver sends, as pure functions of what it is asked.

Every command is the reference manual's (2450-901-01, section 6; short forms): reset, output-off
state, protection, source and measure setup, and the source setting for each kind of step.

How each engine command is sourced (:func:`source_setting`):

- **charge / constant current** ``I ≥ 0``: current source ``I`` with the voltage limit
  (``:SOURce:CURRent:VLIMit``) at the command's limit, capped by the channel's maximum. At the
  limit the instrument clamps, holding the voltage: a CC-CV charge even if the host stops
  talking.
- **discharge** ``I < 0``: the 2450's limits are magnitudes, so a voltage limit cannot stop a
  discharge at a lower voltage. The driver sources a *voltage* at the lower bound (the
  command's voltage limit, never below the channel's ``min_voltage_v``) with ``|I|`` as its
  current limit: the instrument sinks ``|I|`` while the cell is above the bound — a constant-
  current discharge — and holds the bound once there. With no lower bound at all, or when
  the cell was last measured at or below the bound (a voltage source would charge it up to
  the bound; the host ends such a step at its first reading), it sources ``I`` with the
  channel's maximum voltage as limit.
- **constant voltage** ``V``: voltage source with the current limit (``:SOURce:VOLTage:ILIMit``)
  at the command's, capped by the channel's maximum current.
- **rest**: current source 0 A with the channel's maximum voltage as limit (above the cell's
  voltage, so the source never clamps and the cell floats); the output stays on so the voltage
  can be measured (with the output off in the high-impedance state the relay is open and
  nothing can be measured).
- **off**: ``:OUTPut OFF`` in the high-impedance output-off state.

A new setting with the same source function while the output is on changes only the limit and
the level; a change of source function turns the output off first (high impedance: the cell
floats for the few milliseconds of the change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellrig.drivers.keithley2450_models import ChannelLimits, SmuModel
from cellrig.protocols.rig import Command, Mode

CURRENT = "CURR"
VOLTAGE = "VOLT"

#: The reset: in one message, so the instrument spends no time in the NORMal output-off state
#: that ``*RST`` selects (a 0 V source, which would discharge the cell).
RESET = "*RST;:OUTP:SMOD HIMP"
#: One reading with the instrument's relative timestamp, and the error count.
READ_QUERY = ':READ? "defbuffer1", READ, SOUR, REL;:SYST:ERR:COUN?'
#: Checks that the settings that protect the cell were taken.
VERIFY_QUERY = ":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?;:SOUR:VOLT:PROT?"
#: Output off, high impedance (the trigger model stopped first), and the output state read.
SWITCH_OFF = ":ABOR;:OUTP:SMOD HIMP;:OUTP OFF;:OUTP?"


class SettingRefused(ValueError):
    """A command the channel cannot source (beyond its limits, or a mode it lacks)."""


@dataclass(frozen=True, slots=True)
class SourceSetting:
    """What the source does: its function, level and the limit of the other quantity."""

    function: str
    level: float
    limit: float

    @property
    def sense(self) -> str:
        """The measure function: the quantity not sourced."""
        return VOLTAGE if self.function == CURRENT else CURRENT


def number(value: float) -> str:
    """A value as sent: seven significant digits, no exponent for ordinary values."""
    return f"{value:.7g}"


def configuration_commands(model: SmuModel, limits: ChannelLimits, *, nplc: float,
                           four_wire: bool) -> list[str]:
    """Everything after the reset: protection, both source functions' limits and readback,
    both measure functions' range, NPLC and sense, the buffer cleared."""
    sense = "ON" if four_wire else "OFF"
    return [
        f":SOUR:VOLT:PROT {model.protection(limits.max_voltage_v)}",
        ":SOUR:FUNC CURR",
        ":SOUR:CURR:RANG:AUTO ON",
        f":SOUR:CURR:VLIM {number(limits.max_voltage_v)}",
        ":SOUR:CURR 0",
        ":SOUR:CURR:READ:BACK ON",
        ":SOUR:VOLT:RANG:AUTO ON",
        f":SOUR:VOLT:ILIM {number(limits.max_current_a)}",
        ":SOUR:VOLT:READ:BACK ON",
        ':SENS:FUNC "VOLT"',
        ":SENS:VOLT:RANG:AUTO ON",
        f":SENS:VOLT:NPLC {number(nplc)}",
        f":SENS:VOLT:RSEN {sense}",
        ":SENS:CURR:RANG:AUTO ON",
        f":SENS:CURR:NPLC {number(nplc)}",
        f":SENS:CURR:RSEN {sense}",
        ':TRAC:CLE "defbuffer1"',
    ]


def source_setting(command: Command, limits: ChannelLimits,
                   present_voltage_v: float | None = None) -> SourceSetting | None:
    """How to source ``command`` within the channel's limits (None: output off);
    ``present_voltage_v`` is the cell's last measured voltage, if known."""
    mode = command.mode
    if mode is Mode.OFF:
        return None
    if mode is Mode.REST:
        return SourceSetting(CURRENT, 0.0, limits.max_voltage_v)
    if mode is Mode.CURRENT:
        current = command.current_a
        if not math.isfinite(current) or abs(current) > limits.max_current_a * (1 + 1e-9):
            raise SettingRefused(f"{current:g} A exceeds the channel's "
                                 f"{limits.max_current_a:g} A")
        requested = command.voltage_limit_v
        if current < 0:
            bound = max(requested if requested is not None and requested > 0 else 0.0,
                        limits.min_voltage_v)
            already_below = present_voltage_v is not None and present_voltage_v <= bound
            if bound > 0 and not already_below:
                return SourceSetting(VOLTAGE, min(bound, limits.max_voltage_v), abs(current))
            return SourceSetting(CURRENT, current, limits.max_voltage_v)
        limit = limits.max_voltage_v
        if requested is not None and 0 < requested < limit:
            limit = requested
        return SourceSetting(CURRENT, current, limit)
    if mode is Mode.VOLTAGE:
        voltage = command.voltage_v
        if not limits.min_voltage_v <= voltage <= limits.max_voltage_v:
            raise SettingRefused(f"{voltage:g} V is outside the channel's "
                                 f"{limits.min_voltage_v:g} to {limits.max_voltage_v:g} V")
        limit = limits.max_current_a
        if command.current_limit_a is not None and 0 < abs(command.current_limit_a) < limit:
            limit = abs(command.current_limit_a)
        return SourceSetting(VOLTAGE, voltage, limit)
    raise SettingRefused(f"the Keithley 2450 has no constant-{mode.value} mode")


def setting_commands(new: SourceSetting, old: SourceSetting | None,
                     output_on: bool) -> list[str]:
    """The commands that take the instrument from ``old`` (output on or off) to ``new`` with
    the output on; the limit always before the level."""
    limit = (f":SOUR:CURR:VLIM {number(new.limit)}" if new.function == CURRENT
             else f":SOUR:VOLT:ILIM {number(new.limit)}")
    level = f":SOUR:{new.function} {number(new.level)}"
    if output_on and old is not None and old.function == new.function:
        changed = []
        if old.limit != new.limit:
            changed.append(limit)
        if old.level != new.level:
            changed.append(level)
        return changed
    commands = [":OUTP OFF"] if output_on else []
    commands += [f":SOUR:FUNC {new.function}", f':SENS:FUNC "{new.sense}"', limit, level,
                 ":OUTP ON"]
    return commands

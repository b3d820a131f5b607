"""What a Keithley 2450 is doing now, read by queries only: for a restart that must not reset
an instrument still sourcing a job's step.

The commands are the reference manual's (2450-901-01, section 6): ``:OUTPut[:STATe]?``,
``:SOURce:FUNCtion?``, the levels (``:SOURce:CURRent?``, ``:SOURce:VOLTage?``) and limits
(``:SOURce:CURRent:VLIMit?``, ``:SOURce:VOLTage:ILIMit?``), whether a limit holds the source
(``...:VLIMit:TRIPped?``, ``...:ILIMit:TRIPped?``), and the last index of ``defbuffer1``
(``:TRACe:ACTual:END?``) with that reading's relative time (``:TRACe:DATA?``), so the time
since the previous connection's last reading is the instrument's own. None of them changes the
source; the reading that follows (``:READ?``) only adds to the buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellrig.drivers.keithley2450_models import parse_numbers
from cellrig.drivers.keithley2450_setup import CURRENT, VOLTAGE, SourceSetting

#: Output state, source function, both levels and both limits, the buffer's last index.
STATE_QUERY = (':OUTP?;:SOUR:FUNC?;:SOUR:CURR?;:SOUR:CURR:VLIM?;:SOUR:VOLT?;'
               ':SOUR:VOLT:ILIM?;:TRAC:ACT:END? "defbuffer1"')
#: Whether the current source's voltage limit, or the voltage source's current limit, holds.
TRIPPED_QUERY = ":SOUR:CURR:VLIM:TRIP?;:SOUR:VOLT:ILIM:TRIP?"
#: Two settings are the same if they agree to this (the instrument echoes seven digits).
SAME_RELATIVE = 1e-6


@dataclass(frozen=True, slots=True)
class FoundSource:
    """The parsed reply to :data:`STATE_QUERY`."""

    output_on: bool
    setting: SourceSetting
    buffer_end: int


def parse_state(reply: str) -> FoundSource | None:
    """The reply to :data:`STATE_QUERY`, or None if it is not one."""
    fields = [field.strip() for field in reply.split(";")]
    if len(fields) != 7 or fields[0] not in ("0", "1") or fields[1] not in (CURRENT, VOLTAGE):
        return None
    numbers = parse_numbers(",".join(fields[2:]))
    if numbers is None or any(math.isnan(value) for value in numbers):
        return None
    current_a, voltage_limit_v, voltage_v, current_limit_a, end = numbers
    setting = (SourceSetting(CURRENT, current_a, voltage_limit_v) if fields[1] == CURRENT
               else SourceSetting(VOLTAGE, voltage_v, current_limit_a))
    return FoundSource(fields[0] == "1", setting, int(end))


def parse_tripped(reply: str, function: str) -> bool | None:
    """Whether the limit of ``function``'s source holds, from :data:`TRIPPED_QUERY`."""
    fields = [field.strip() for field in reply.split(";")]
    if len(fields) != 2 or any(field not in ("0", "1") for field in fields):
        return None
    return fields[0 if function == CURRENT else 1] == "1"


def same_setting(found: SourceSetting, wanted: SourceSetting | None) -> bool:
    """Whether the instrument's setting is ``wanted`` (to the digits it echoes)."""
    if wanted is None or found.function != wanted.function:
        return False
    return all(math.isclose(a, b, rel_tol=SAME_RELATIVE, abs_tol=1e-12)
               for a, b in ((found.level, wanted.level), (found.limit, wanted.limit)))

"""Reading buffers and trigger-model templates of the emulated Keithley 2450.

After the Keithley 2450 reference manual (2450-901-01; the 2461's 2461-901-01 for the newer
``:TRIGger:LOAD "<template>"`` forms): ``:READ?``, ``:TRACe:DATA?`` and the trigger model store
readings in named buffers (``defbuffer1`` and ``defbuffer2`` always exist, ``:TRACe:MAKE``
adds more); a reading is returned as the buffer elements asked for (``READing``, ``SOURce``,
``RELative``, ``SEConds``, ``FRACtional``, ``UNIT``, ``SOURUNIT``), in the order asked.

Relative timestamps count from the first reading stored since the buffer was last cleared. A
buffer fills continuously: once full, the oldest readings are overwritten and the indices
``1 … n`` always name what is stored, oldest first; the relative times keep their origin.

Templates (``:TRIGger:LOAD``): ``"SimpleLoop", <count>, <delay>, "<buffer>"`` clears the buffer,
then ``count`` times waits ``delay`` and measures (the output is left as it is);
``"DurationLoop", <duration>, <delay>, "<buffer>"`` clears the buffer, turns the output on and
measures after each ``delay`` until ``duration`` has passed; ``"Empty"`` removes the model.
The deprecated forms ``:TRIGger:LOAD:LOOP:SIMPle`` and ``:TRIGger:LOAD:LOOP:DURation`` take
the same parameters.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .scpi import DATA_OUT_OF_RANGE, ILLEGAL_PARAMETER_VALUE, Arguments, ScpiError

#: What the instrument returns for a value it cannot measure (SCPI's "not a number").
NOT_A_NUMBER = 9.91e37

#: Buffer elements the emulator answers, in manual notation.
ELEMENTS = ("READing", "SOURce", "RELative", "SEConds", "FRACtional", "UNIT", "SOURUNIT")


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored reading: bench time, the measured value and the source value."""

    time_s: float
    value: float
    source: float
    unit: str
    source_unit: str


class ReadingBuffer:
    """A named reading buffer that fills continuously."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.readings: deque[Reading] = deque(maxlen=capacity)
        self.origin_s: float | None = None

    def clear(self) -> None:
        """Drop every reading; relative times start again at the next one."""
        self.readings.clear()
        self.origin_s = None

    def resize(self, capacity: int) -> None:
        """A new capacity (clears the buffer, as the instrument does)."""
        self.capacity = capacity
        self.readings = deque(maxlen=capacity)
        self.origin_s = None

    def append(self, reading: Reading) -> None:
        """Store a reading (overwriting the oldest when full)."""
        if self.origin_s is None:
            self.origin_s = reading.time_s
        self.readings.append(reading)

    def __len__(self) -> int:
        return len(self.readings)

    def between(self, start: int, end: int) -> list[Reading]:
        """Readings ``start`` to ``end`` (1-based, inclusive)."""
        if not 1 <= start <= end <= len(self.readings):
            raise ScpiError(DATA_OUT_OF_RANGE, f"indices {start} to {end} of {self.name!r}, "
                            f"which holds {len(self.readings)}")
        return [self.readings[index] for index in range(start - 1, end)]

    def format(self, readings: list[Reading], elements: list[str], epoch_unix_s: float) -> str:
        """The readings as the instrument prints them: each reading's elements in order,
        everything comma-separated."""
        fields: list[str] = []
        origin = self.origin_s if self.origin_s is not None else 0.0
        for reading in readings:
            for element in elements:
                fields.append(_element(reading, element, origin, epoch_unix_s))
        return ",".join(fields)


def _number(value: float) -> str:
    return f"{NOT_A_NUMBER if not math.isfinite(value) else value:.6E}"


def _element(reading: Reading, element: str, origin_s: float, epoch_unix_s: float) -> str:
    unix_s = epoch_unix_s + reading.time_s
    if element == "READing":
        return _number(reading.value)
    if element == "SOURce":
        return _number(reading.source)
    if element == "RELative":
        return f"{reading.time_s - origin_s:.6f}"
    if element == "SEConds":
        return f"{math.floor(unix_s)}"
    if element == "FRACtional":
        return f"{unix_s - math.floor(unix_s):.6f}"
    if element == "UNIT":
        return reading.unit
    return reading.source_unit


def parse_elements(arguments: Arguments, first: int) -> list[str]:
    """The buffer elements from parameter ``first`` on (``READing`` when none are given)."""
    if len(arguments) <= first:
        return ["READing"]
    if len(arguments) - first > 14:
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, "at most 14 buffer elements")
    return [arguments.choice(index, ELEMENTS) for index in range(first, len(arguments))]


@dataclass
class TriggerModel:
    """A loaded trigger-model template and where it is."""

    template: str = "Empty"
    count: int = 0
    duration_s: float = 0.0
    delay_s: float = 0.0
    buffer: str = "defbuffer1"
    state: str = "EMPTY"
    block: int = 0

    @property
    def status(self) -> str:
        """``:TRIGger:STATe?``: the state twice (overall and of the block) and the block."""
        return f"{self.state};{self.state};{self.block}"

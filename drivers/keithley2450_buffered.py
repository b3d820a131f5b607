"""Instrument-timed readings of the Keithley 2450: a trigger-model loop fills ``defbuffer1``.

For readings faster than the host can poll, the driver loads the ``SimpleLoop`` template
(2461 reference manual, ``:TRIGger:LOAD "SimpleLoop", <count>, <delay>, "<bufferName>"``: a
delay, a measurement, ``count`` times) and starts it with ``:INITiate``; the instrument takes
the readings at its own pace, one integration plus the delay apart, and stores them with their
relative timestamps. The driver polls the buffer's last index (``:TRACe:ACTual:END?``, with the
error count in the same message) and fetches what is new with ``:TRACe:DATA?``. A loop that has
taken all its readings is loaded again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cellrig.drivers.keithley2450_models import parse_numbers
from cellrig.drivers.keithley2450_setup import number
from cellrig.drivers.visa_link import MessageTransport
from cellrig.errors import InstrumentError, MalformedReply

#: Readings a loop takes before the driver loads the next one.
BUFFERED_CHUNK = 50_000
#: The buffer's last index and the number of errors in the event log.
COUNT_QUERY = ':TRAC:ACT:END? "defbuffer1";:SYST:ERR:COUN?'

ErrorFactory = Callable[[type[InstrumentError], str, str | None], InstrumentError]


@dataclass
class BufferedRun:
    """One running loop: its size, its delay, and how many readings were fetched."""

    interval_s: float
    delay_s: float
    count: int = BUFFERED_CHUNK
    fetched: int = 0

    @classmethod
    def every(cls, interval_s: float, measure_time_s: float) -> BufferedRun:
        """A loop whose readings are ``interval_s`` apart (at least one integration)."""
        return cls(interval_s, max(0.0, interval_s - measure_time_s))

    @property
    def start_message(self) -> str:
        """Load the template and start it. The buffer is cleared here too: the template's own
        clear runs once the model has started, and a count read before it would name
        readings about to vanish."""
        return (f':TRIG:LOAD "SimpleLoop", {self.count}, {number(self.delay_s)}, '
                f'"defbuffer1";:TRAC:CLE "defbuffer1";:INIT')

    @property
    def complete(self) -> bool:
        """Whether the loop has taken all its readings."""
        return self.fetched >= self.count

    def poll_host_s(self, time_scale: float) -> float:
        """How long the host waits between two looks at the buffer: about twenty readings,
        between 20 ms and 0.5 s of instrument time, at least a millisecond."""
        return max(min(max(self.interval_s * 20, 0.02), 0.5) / time_scale, 0.001)

    async def fetch(self, transport: MessageTransport,
                    check_errors: Callable[[list[str]], Awaitable[None]],
                    error: ErrorFactory) -> npt.NDArray[np.float64] | None:
        """The new readings as rows of (reading, source, relative time), or None when there
        are none yet. Call with the transport's lock held."""
        reply = await transport.query(COUNT_QUERY)
        counts = parse_numbers(reply.replace(";", ","))
        if counts is None or len(counts) != 2:
            raise error(MalformedReply, f"not a buffer count: {reply!r}", COUNT_QUERY)
        end, errors = int(counts[0]), int(counts[1])
        if errors:
            await check_errors([COUNT_QUERY])
        if end <= self.fetched:
            return None
        query = f':TRAC:DATA? {self.fetched + 1}, {end}, "defbuffer1", READ, SOUR, REL'
        numbers = parse_numbers(await transport.query(query))
        if numbers is None or len(numbers) != 3 * (end - self.fetched):
            raise error(MalformedReply, "not the buffered readings", query)
        self.fetched = end
        return np.array(numbers).reshape(-1, 3)

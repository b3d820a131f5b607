"""The Keithley 2450's clock as the driver sees it: relative timestamps made continuous.

Readings carry ``REL``: seconds since the first reading stored in the buffer since it was last
cleared (2450 reference manual, ``:READ?`` and ``:TRACe:DATA?`` buffer elements). The driver's
instrument time is ``REL`` plus an offset that changes only when the buffer restarts — after
the driver clears it, or a trigger-model template clears it before filling it. Across a
restart the time goes on by the host's measure of the gap (times ``time_scale``, the speed of
an emulator's accelerated clock; 1 on hardware) plus the lead the driver knows the restart has
(the first delay and integration of a trigger-model loop): exact to the exchange latency, about
a millisecond on hardware. A relative time that goes backwards without a restart (someone else
cleared the buffer) is treated the same way, and logged.

Pacing uses the same clock: the next host-polled reading is due ``interval_s`` of instrument
time after the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


class RelativeTimebase:
    """Instrument time from relative timestamps, continuous across buffer restarts."""

    def __init__(self, time_scale: float = 1.0,
                 host_clock: Callable[[], float] = time.monotonic) -> None:
        if not time_scale > 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.host_clock = host_clock
        self.offset_s = 0.0
        self.last_s: float | None = None
        self._last_host_s = 0.0
        self._restart: tuple[float, float] | None = None

    def restart(self, lead_s: float = 0.0) -> None:
        """The buffer was cleared now: its next relative time 0 falls ``lead_s`` of instrument
        time from now."""
        self._restart = (self.host_clock(), lead_s)

    def place(self, relative_s: FloatArray) -> FloatArray:
        """Instrument times of readings with these relative times (in order, the last one
        just taken)."""
        if relative_s.size == 0:
            return relative_s.astype(float)
        first = float(relative_s[0])
        if self._restart is not None:
            at_host_s, lead_s = self._restart
            self._restart = None
            self._rebase(first, at_host_s, lead_s)
        elif self.last_s is not None and first + self.offset_s < self.last_s - 1e-9:
            log.warning("the instrument's relative time went back from %.6f s to %.6f s "
                        "(its buffer was cleared); carrying on from the host's clock",
                        self.last_s - self.offset_s, first)
            self._rebase(first, self.host_clock(), 0.0)
        times = relative_s + self.offset_s
        self.last_s = float(times[-1])
        self._last_host_s = self.host_clock()
        return times

    def place_one(self, relative_s: float) -> float:
        """:meth:`place` for one reading."""
        return float(self.place(np.array([relative_s]))[0])

    def _rebase(self, first_relative_s: float, at_host_s: float, lead_s: float) -> None:
        if self.last_s is None:
            self.offset_s = -first_relative_s
            return
        gap_s = max(0.0, at_host_s - self._last_host_s) * self.time_scale + lead_s
        self.offset_s = self.last_s + gap_s - first_relative_s

    def now_s(self) -> float:
        """The instrument time now, from the last reading and the host's clock since."""
        if self.last_s is None:
            return 0.0
        return self.last_s + (self.host_clock() - self._last_host_s) * self.time_scale

    def wait_host_s(self, interval_s: float) -> float:
        """Host seconds until a reading ``interval_s`` after the last one is due."""
        if self.last_s is None:
            return 0.0
        elapsed_s = self.host_clock() - self._last_host_s
        return max(0.0, interval_s / self.time_scale - elapsed_s)

"""The stability rule of temperature chambers: when does a chamber count as "stable"?

A chamber is **stable within ``within_k`` for ``for_s``** at the time of its latest reading when

1. every reading taken since the setpoint was last changed, over the last ``for_s`` seconds,
   lies within ``±within_k`` of the setpoint (the bounds count as within);
2. the readings cover that span: the oldest reading of the current run of in-tolerance readings
   is at least ``for_s`` older than the latest one, so a single good reading right after a
   setpoint change does not count as ``for_s`` of stability;
3. no two consecutive readings of that run are more than ``max_gap_s`` apart: a temperature
   nobody looked at for a while is not known to have stayed in the band, so a gap starts the
   run afresh;
4. when the question is asked at a given time (``now_s``), the latest reading is not older than
   ``max_gap_s`` either.

A reading outside the band, or a new setpoint, starts the run again. Time is whatever clock
the driver is given (the bench clock of an emulator, the monotonic clock on hardware), so an
accelerated or virtual bench makes a 30-minute soak take seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TemperatureSample:
    """One measured chamber temperature and when it was taken (seconds on the driver's clock)."""

    time_s: float
    temperature_c: float


class StabilityWatch:
    """Remembers the readings since the last setpoint change and applies the stability rule.

    ``keep_s`` bounds the memory: readings older than that (relative to the newest) are
    forgotten, so a chamber polled for months holds a bounded history; ``stable`` can then
    answer for durations up to ``keep_s``.
    """

    def __init__(self, *, max_gap_s: float = 60.0, keep_s: float = 48 * 3600.0) -> None:
        if max_gap_s <= 0 or keep_s <= 0:
            raise ValueError("stability watch needs max_gap_s > 0 and keep_s > 0")
        self.max_gap_s = max_gap_s
        self.keep_s = keep_s
        self.setpoint_c: float | None = None
        self._samples: deque[TemperatureSample] = deque()

    def new_setpoint(self, setpoint_c: float) -> None:
        """A new setpoint: readings taken before it no longer count."""
        self.setpoint_c = setpoint_c
        self._samples.clear()

    def add(self, time_s: float, temperature_c: float) -> None:
        """Record one reading (readings must come in time order; NaN readings break the run)."""
        if self._samples and time_s < self._samples[-1].time_s:
            raise ValueError("stability readings must come in time order")
        self._samples.append(TemperatureSample(time_s, temperature_c))
        horizon_s = time_s - self.keep_s
        while self._samples and self._samples[0].time_s < horizon_s:
            self._samples.popleft()

    @property
    def latest(self) -> TemperatureSample | None:
        """The newest reading, if any."""
        return self._samples[-1] if self._samples else None

    def stable_since(self, within_k: float) -> float | None:
        """Start time of the current run of in-tolerance readings (None: no such run, or no
        setpoint known)."""
        if self.setpoint_c is None or not self._samples or within_k < 0:
            return None
        start: float | None = None
        later: TemperatureSample | None = None
        for sample in reversed(self._samples):
            deviation_k = abs(sample.temperature_c - self.setpoint_c)
            if math.isnan(deviation_k) or deviation_k > within_k:
                break
            if later is not None and later.time_s - sample.time_s > self.max_gap_s:
                break
            start = sample.time_s
            later = sample
        return start

    def stable(self, within_k: float, for_s: float, *, now_s: float | None = None) -> bool:
        """Whether the rule above holds at the latest reading (and at ``now_s`` if given)."""
        latest = self.latest
        since = self.stable_since(within_k)
        if latest is None or since is None:
            return False
        if now_s is not None and now_s - latest.time_s > self.max_gap_s:
            return False
        return latest.time_s - since >= for_s

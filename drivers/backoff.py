"""Bounded, jittered exponential backoff for reconnecting to instruments and servers.

A lab PC runs for months: an instrument that is switched off, a USB adapter that re-enumerates
or a server that restarts must be retried without hammering it and without a herd of channels
retrying in lock step, hence the jitter.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays ``initial_s``, ``initial_s × factor``, … capped at ``max_s``; each delay is drawn
    uniformly from ``[delay × (1 − jitter), delay]`` so retries of many channels spread out."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 < self.initial_s <= self.max_s):
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        if self.factor < 1.0 or not (0.0 <= self.jitter < 1.0):
            raise ValueError("backoff needs factor >= 1 and 0 <= jitter < 1")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """An endless series of delays in seconds."""
        draw = rng if rng is not None else random.Random()
        delay_s = self.initial_s
        while True:
            yield delay_s * (1.0 - self.jitter * draw.random())
            delay_s = min(self.max_s, delay_s * self.factor)

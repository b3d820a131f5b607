"""Time for the engine: injected, so tests and simulations run in virtual time.

A step's time is always the instrument's time (the readings carry it); the clock only gives
the wall-clock UTC timestamps stored with samples and events.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in UTC seconds since the epoch."""

    def unix_now(self) -> float:
        """The current UTC time."""
        ...


class SystemClock:
    """The machine's clock."""

    def unix_now(self) -> float:
        """The current UTC time."""
        return time.time()


class VirtualClock:
    """A clock that moves only when told: ``start_unix`` plus the time advanced so far."""

    def __init__(self, start_unix: float = 1_767_225_600.0) -> None:
        self.now_unix = start_unix

    def unix_now(self) -> float:
        """The virtual current time."""
        return self.now_unix

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now_unix += seconds

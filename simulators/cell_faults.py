"""Faults a simulated cell can be given, and measurement noise on its readings.

A fault starts at a time on the model's clock (``at_s``) or at the start of a cycle
(``at_cycle``: a cycle begins with each charge that follows a discharge, the first charge of an
as-built cell begins cycle 1) and may end at ``until_s``. Kinds:

* ``SOFT_SHORT``: a lithium filament through the electrolyte, an internal resistance across the
  cell that starts at ``resistance_ohm`` and falls by a factor e every ``growth_s`` (the filament
  thickens) down to ``floor_ohm``. Charge then passes far more than the nominal capacity, the
  Coulombic efficiency falls, the voltage sags at rest.
* ``HARD_SHORT``: a low internal resistance (``resistance_ohm``, e.g. 10 mΩ): the voltage collapses.
* ``CONTACT_LOSS``: the interface loses contact; its resistance is multiplied by ``factor`` and
  lithium is lost faster (as at low stack pressure).
* ``OPEN_CIRCUIT``: a tab or lead breaks: no current flows; the instrument reads its compliance
  voltage while it tries to drive a current, 0 V at rest.
* ``NOISE``: the readings get Gaussian noise (``noise_v``, ``noise_a``) and spikes
  (``spike_probability`` per reading, ``spike_v`` high), as a dendrite or a loose contact gives.

Noise can also be applied on its own with :class:`MeasurementNoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class FaultKind(StrEnum):
    """The faults a cell model can be given."""

    SOFT_SHORT = "soft short"
    HARD_SHORT = "hard short"
    CONTACT_LOSS = "contact loss"
    OPEN_CIRCUIT = "open circuit"
    NOISE = "noise"


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault (see the module docstring for the kinds and their values)."""

    kind: FaultKind
    at_s: float | None = None
    at_cycle: int | None = None
    until_s: float | None = None
    resistance_ohm: float = 1000.0
    growth_s: float = math.inf
    floor_ohm: float = 0.01
    factor: float = 10.0
    noise_v: float = 0.002
    noise_a: float = 0.0
    spike_probability: float = 0.01
    spike_v: float = 0.05

    def __post_init__(self) -> None:
        if self.at_s is None and self.at_cycle is None:
            raise ValueError("a fault needs a start: at_s (model time) or at_cycle")
        if self.resistance_ohm <= 0 or self.floor_ohm <= 0 or self.factor <= 0:
            raise ValueError("a fault's resistance, floor and factor must be positive")

    def shunt_siemens(self, since_s: float) -> float:
        """Conductance of a short ``since_s`` after it started (0 for other kinds)."""
        if self.kind is FaultKind.HARD_SHORT:
            return 1.0 / self.resistance_ohm
        if self.kind is not FaultKind.SOFT_SHORT:
            return 0.0
        grown = self.resistance_ohm * math.exp(-max(since_s, 0.0) / self.growth_s)
        return 1.0 / max(grown, self.floor_ohm)


@dataclass
class MeasurementNoise:
    """Gaussian noise and occasional spikes on voltage and current readings (seeded)."""

    noise_v: float = 0.0
    noise_a: float = 0.0
    spike_probability: float = 0.0
    spike_v: float = 0.05
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def apply(self, voltage_v: FloatArray, current_a: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Noisy copies of the readings."""
        voltage = np.array(voltage_v, dtype=float, copy=True)
        current = np.array(current_a, dtype=float, copy=True)
        if self.noise_v > 0:
            voltage += self.rng.normal(0.0, self.noise_v, voltage.shape)
        if self.noise_a > 0:
            current += self.rng.normal(0.0, self.noise_a, current.shape)
        if self.spike_probability > 0:
            spikes = self.rng.random(voltage.shape) < self.spike_probability
            signs = np.where(self.rng.random(voltage.shape) < 0.5, -1.0, 1.0)
            voltage += spikes * signs * self.spike_v
        return voltage, current

    @classmethod
    def from_fault(cls, fault: Fault, seed: int) -> MeasurementNoise:
        """The noise a NOISE fault describes."""
        return cls(fault.noise_v, fault.noise_a, fault.spike_probability, fault.spike_v, seed)


@dataclass
class FaultSchedule:
    """The faults of one cell and when each started (cycle-scheduled ones start when their
    cycle begins)."""

    faults: list[Fault] = field(default_factory=list)
    started_s: dict[int, float] = field(default_factory=dict)

    def add(self, fault: Fault) -> None:
        """Schedule another fault."""
        self.faults.append(fault)

    def begin_cycle(self, cycle_index: int, now_s: float) -> None:
        """Start the cycle-scheduled faults whose cycle has come."""
        for index, fault in enumerate(self.faults):
            if (fault.at_cycle is not None and index not in self.started_s
                    and cycle_index >= fault.at_cycle):
                self.started_s[index] = now_s

    def active(self, now_s: float) -> list[tuple[Fault, float]]:
        """The faults active at ``now_s``, each with its start time."""
        found: list[tuple[Fault, float]] = []
        for index, fault in enumerate(self.faults):
            start = self.started_s.get(index)
            if start is None and fault.at_s is not None and now_s >= fault.at_s - 1e-9:
                start = fault.at_s
            if start is None or (fault.until_s is not None and now_s >= fault.until_s - 1e-9):
                continue
            found.append((fault, start))
        return found

    def boundaries(self, start_s: float, end_s: float) -> list[float]:
        """Times strictly inside (start, end) at which a fault starts or ends."""
        times = {t for fault in self.faults for t in (fault.at_s, fault.until_s)
                 if t is not None and start_s + 1e-9 < t < end_s - 1e-9}
        return sorted(times)

    def snapshot(self) -> dict[int, float]:
        """The start times, to restore after a look-ahead."""
        return dict(self.started_s)


class ShortCircuits:
    """Conductance of the active shorts at an absolute time (a callable for the stepper)."""

    def __init__(self, shorts: list[tuple[Fault, float]]) -> None:
        self.shorts = shorts

    def __call__(self, time_s: float) -> float:
        return sum(fault.shunt_siemens(time_s - start) for fault, start in self.shorts)

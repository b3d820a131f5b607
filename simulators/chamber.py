"""A temperature chamber: first-order thermal response with a ramp limit, sensor noise and
faults, evaluated in closed form over arrays of times.

From a temperature ``T0`` towards a setpoint ``Ts`` the air follows
``T(t) = Ts + (T0 - Ts)·exp(-t/τ)``, whose slope is largest at the start. Where that slope
would exceed the chamber's ramp limit, the temperature first ramps linearly at the limit until
the remaining gap is ``ramp·τ``, then continues exponentially: the two pieces join with the
same slope, so the response is smooth and never faster than the chamber can go.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def settling_s(gap: float, target: float, tau_s: float) -> float:
    """How long ``target − gap·exp(−t/τ)`` takes to round to ``target`` itself: until the
    decaying part is below an eighth of a unit in the last place of ``target`` (so that it is
    lost in the subtraction whatever the rounding), ``τ·ln(8·|gap|/ulp(target))``. A settled
    chamber or regulator then costs one array fill instead of an exponential per time."""
    if gap == 0.0:
        return 0.0
    if not (math.isfinite(gap) and math.isfinite(target) and math.isfinite(tau_s)):
        return math.inf
    return max(tau_s * math.log(8.0 * abs(gap) / math.ulp(target)), 0.0)


class ChamberFault(StrEnum):
    """Faults a chamber can be given."""

    DOOR_OPEN = "door open"
    RUNAWAY = "runaway"


@dataclass
class Chamber:
    """A chamber shared by any number of cells; time is the bench's clock in seconds.

    ``tau_s`` is the air's time constant, ``ramp_k_per_s`` the fastest change the chamber can
    make; ``noise_k`` the standard deviation of its sensor. ``DOOR_OPEN`` pulls the air towards
    room temperature with a short time constant; ``RUNAWAY`` heats at the ramp limit whatever
    the setpoint.
    """

    temperature_c: float = 25.0
    setpoint_c: float = 25.0
    tau_s: float = 600.0
    ramp_k_per_s: float = 3.0 / 60.0
    noise_k: float = 0.0
    room_c: float = 23.0
    door_tau_s: float = 120.0
    time_s: float = 0.0
    fault: ChamberFault | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(1))
    _start_c: float = 25.0
    _start_s: float = 0.0

    def set(self, setpoint_c: float, at_s: float) -> None:
        """A new setpoint from time ``at_s`` on."""
        self.advance(at_s)
        self.setpoint_c = setpoint_c
        self._start_c, self._start_s = self.temperature_c, at_s

    def inject(self, fault: ChamberFault | None, at_s: float) -> None:
        """Start (or clear, with None) a fault at ``at_s``."""
        self.advance(at_s)
        self.fault = fault
        self._start_c, self._start_s = self.temperature_c, at_s

    def _target(self) -> tuple[float, float, float]:
        """Where the air is heading, its time constant and ramp limit under the fault."""
        if self.fault is ChamberFault.DOOR_OPEN:
            return self.room_c, self.door_tau_s, math.inf
        if self.fault is ChamberFault.RUNAWAY:
            return 1000.0, 1e-9, self.ramp_k_per_s
        return self.setpoint_c, self.tau_s, self.ramp_k_per_s

    def true_temperature(self, times_s: FloatArray) -> FloatArray:
        """The air temperature at each time (times at or after the last change)."""
        target, tau, ramp = self._target()
        times = np.asarray(times_s, dtype=float)
        gap = target - self._start_c
        direction = 1.0 if gap >= 0 else -1.0
        linear_span = max(abs(gap) - ramp * tau, 0.0)
        ramp_time = linear_span / ramp if math.isfinite(ramp) and ramp > 0 else 0.0
        remaining = target - (self._start_c + direction * linear_span)
        settled_s = self._start_s + ramp_time + settling_s(remaining, target, tau)
        if times.size and float(times.min()) > settled_s:
            return np.full(times.shape, target)  # what the expression below gives there
        elapsed = np.maximum(times - self._start_s, 0.0)
        # an unlimited ramp (door open) has no linear piece; inf·0 would give NaN
        rate = ramp if math.isfinite(ramp) else 0.0
        linear = self._start_c + direction * rate * np.minimum(elapsed, ramp_time)
        after = np.maximum(elapsed - ramp_time, 0.0)
        exponential = target - remaining * np.exp(-after / tau)
        return np.where(elapsed <= ramp_time, linear, exponential)

    def measure(self, times_s: FloatArray) -> FloatArray:
        """What the chamber's sensor reads at each time."""
        values = self.true_temperature(times_s)
        if self.noise_k > 0:
            values = values + self.rng.normal(0.0, self.noise_k, values.shape)
        return values

    def advance(self, to_s: float) -> None:
        """Move the chamber's state to time ``to_s``."""
        if to_s <= self.time_s:
            return
        self.temperature_c = float(self.true_temperature(np.array([to_s]))[0])
        self.time_s = to_s

"""Stack-pressure jigs: pneumatic (force follows the regulator) and bolted (force follows the
cell's swell), with load-cell noise and faults, evaluated over arrays of times.

Stack pressure is force over the cell's area. In a **pneumatic** jig a regulator sets the gas
pressure behind a piston: force = regulator pressure × piston area (+ preload), so the force
holds while the cell swells and shrinks; the regulator reaches a new setpoint with a first-order
lag. In a **bolted** jig nothing is set: the stack sits between plates clamped by bolts of a
given stiffness, so the force rises as the cell thickens, by stiffness × swell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from cellrig.simulators.chamber import settling_s

FloatArray = npt.NDArray[np.float64]


class JigFault(StrEnum):
    """Faults a jig can be given."""

    LEAK = "leak"
    SENSOR_LOST = "sensor lost"


@dataclass
class Jig:
    """One cell's jig. ``pneumatic`` selects the kind; geometry in SI units.

    ``piston_area_m2`` and ``cell_area_m2`` convert regulator pressure to force to stack
    pressure; ``stiffness_n_per_m`` is the bolted frame's; ``preload_n`` the force at assembly.
    A ``LEAK`` lets the regulator pressure decay with ``leak_tau_s``; ``SENSOR_LOST`` makes the
    load cell read NaN.
    """

    pneumatic: bool = True
    cell_area_m2: float = 93.28e-4
    piston_area_m2: float = 0.1
    stiffness_n_per_m: float = 5e8
    preload_n: float = 0.0
    regulator_tau_s: float = 5.0
    regulator_max_pa: float = 1.0e6
    noise_n: float = 0.0
    leak_tau_s: float = 600.0
    fault: JigFault | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(2))
    regulator_setpoint_pa: float = 0.0
    _regulator_start_pa: float = 0.0
    _start_s: float = 0.0

    def regulator_for(self, stack_pressure_pa: float) -> float:
        """The regulator pressure that gives ``stack_pressure_pa`` on the cell."""
        force_n = stack_pressure_pa * self.cell_area_m2 - self.preload_n
        return max(force_n, 0.0) / self.piston_area_m2

    def set_pressure(self, stack_pressure_pa: float, at_s: float) -> None:
        """A new stack-pressure setpoint (pneumatic only: a bolted jig cannot be set)."""
        if not self.pneumatic:
            raise ValueError("a bolted jig cannot set a pressure")
        self._regulator_start_pa = float(self.regulator_pressure(np.array([at_s]))[0])
        self._start_s = at_s
        self.regulator_setpoint_pa = min(self.regulator_for(stack_pressure_pa),
                                         self.regulator_max_pa)

    def set_regulator(self, regulator_pa: float, at_s: float) -> None:
        """Set the regulator itself (what a closed loop in cellrig does)."""
        self._regulator_start_pa = float(self.regulator_pressure(np.array([at_s]))[0])
        self._start_s = at_s
        self.regulator_setpoint_pa = min(max(regulator_pa, 0.0), self.regulator_max_pa)

    def inject(self, fault: JigFault | None, at_s: float) -> None:
        """Start (or clear) a fault at ``at_s``."""
        self._regulator_start_pa = float(self.regulator_pressure(np.array([at_s]))[0])
        self._start_s = at_s
        self.fault = fault

    def regulator_pressure(self, times_s: FloatArray) -> FloatArray:
        """The regulator's output pressure at each time."""
        times = np.asarray(times_s, dtype=float)
        target = self.regulator_setpoint_pa
        if self.fault is not JigFault.LEAK and times.size and float(times.min()) > (
                self._start_s + settling_s(self._regulator_start_pa - target, target,
                                           self.regulator_tau_s)):
            return np.full(times.shape, target)  # what the expression below gives there
        elapsed = np.maximum(times - self._start_s, 0.0)
        if self.fault is JigFault.LEAK:
            return self._regulator_start_pa * np.exp(-elapsed / self.leak_tau_s)
        return target + (self._regulator_start_pa - target) * np.exp(
            -elapsed / self.regulator_tau_s)

    def force(self, times_s: FloatArray, swell_m: FloatArray) -> FloatArray:
        """The true force on the stack, given the cell's thickness change at each time."""
        if self.pneumatic:
            return self.preload_n + self.regulator_pressure(times_s) * self.piston_area_m2
        return np.maximum(self.preload_n + self.stiffness_n_per_m * np.asarray(swell_m), 0.0)

    def stack_pressure(self, times_s: FloatArray, swell_m: FloatArray) -> FloatArray:
        """The true stack pressure."""
        return self.force(times_s, swell_m) / self.cell_area_m2

    def measure_force(self, times_s: FloatArray, swell_m: FloatArray) -> FloatArray:
        """What the load cell reads (NaN once its sensor is lost)."""
        force = self.force(times_s, swell_m)
        if self.fault is JigFault.SENSOR_LOST:
            return np.full(force.shape, math.nan)
        if self.noise_n > 0:
            force = force + self.rng.normal(0.0, self.noise_n, force.shape)
        return force

    def measure_pressure(self, times_s: FloatArray, swell_m: FloatArray) -> FloatArray:
        """The measured stack pressure (load cell over cell area)."""
        return self.measure_force(times_s, swell_m) / self.cell_area_m2

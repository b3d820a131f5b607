"""Closed-loop stack pressure: a PI controller on the measured force, output to a regulator.

A pneumatic jig's regulator holds the gas pressure behind the piston, but the force on the
stack is not the regulator's alone: seal friction, return springs and the frame's compliance
add to it, and they change as the anode-free cell swells and shrinks by tens of µm every
cycle. cellrig therefore closes an outer loop on the force the gauge measures.

Everything here is in stack-pressure terms (Pa on the cell) and converted to a regulator
pressure only at the output, through the jig's geometry. On each tick:

1. **Reference ramp.** The reference moves towards the setpoint at no more than
   ``ramp_pa_per_s``, so a step from 1 to 10 MPa is a ramp, not a jump.
2. **Feedforward.** The output starts from the regulator pressure that would give the
   reference on an ideal jig (``F = preload + p·A_piston``); the PI terms only correct what
   the geometry does not know.
3. **PI with deadband.** The error ``reference − measured`` shrinks by the deadband
   (continuous: no jump at its edge); inside it the output does not move.
4. **Limits.** The output is clamped to ``[0, ceiling]`` (the ceiling is the protocol's
   pressure limit or the jig's maximum, whichever is lower, so the feedforward alone can never
   ask for more) and to a slew of ``slew_pa_per_s``.
5. **Anti-windup.** The integral does not grow while the output is held at a limit in the
   direction the error pushes, nor while the regulator itself cannot follow its setpoint that
   way (supply too low, a leak), nor while the reference is still ramping (the regulator's
   lag during a ramp is not an error to integrate: integrating it is what overshoots).

``hold`` (gauge lost) freezes the output; ``allow_raise=False`` (over force or pressure) lets
it only go down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellrig.drivers.jig_errors import JigRefused
from cellrig.drivers.jig_geometry import JigGeometry


@dataclass(frozen=True, slots=True)
class LoopTuning:
    """Gains and limits of the pressure loop (see docs/instruments/jigs.md for the tuning).

    ``kp`` is dimensionless and ``ki_per_s`` per second, both in stack-pressure terms.
    """

    kp: float = 0.5
    ki_per_s: float = 0.1
    deadband_fraction: float = 0.005
    deadband_min_pa: float = 2.0e3
    ramp_pa_per_s: float = 0.5e6
    slew_pa_per_s: float = 1.0e6
    integral_limit_fraction: float = 0.3
    period_s: float = 1.0

    def __post_init__(self) -> None:
        if self.kp < 0 or self.ki_per_s < 0:
            raise ValueError("the loop's gains cannot be negative")
        if not (self.ramp_pa_per_s > 0 and self.slew_pa_per_s > 0 and self.period_s > 0):
            raise ValueError("ramp, slew and period must be positive")
        if self.deadband_fraction < 0 or self.deadband_min_pa < 0:
            raise ValueError("the deadband cannot be negative")


class PressureController:
    """The PI loop's state and arithmetic; no I/O, time passed in (bench or real seconds)."""

    def __init__(self, geometry: JigGeometry, tuning: LoopTuning | None = None, *,
                 regulator_max_pa: float = math.inf, ceiling_pa: float | None = None) -> None:
        if not geometry.pneumatic:
            raise ValueError("a pressure loop needs a pneumatic jig")
        self.geometry = geometry
        self.tuning = tuning if tuning is not None else LoopTuning()
        self.regulator_max_pa = regulator_max_pa
        self.ceiling_pa = geometry.max_pressure_pa
        if ceiling_pa is not None:
            self.set_ceiling(ceiling_pa)
        self.target_pa: float | None = None
        self.reference_pa = 0.0
        self.integral_pa = 0.0
        self.output_pa = 0.0
        """the output in stack-pressure terms (what an ideal jig would give)"""
        self._last_s: float | None = None

    # -- settings -----------------------------------------------------------------------------

    def set_ceiling(self, ceiling_pa: float) -> None:
        """The highest stack pressure the loop may ask for: the protocol's pressure limit,
        never above the jig's own maximum."""
        if not ceiling_pa > 0:
            raise JigRefused(f"a pressure ceiling must be positive, not {ceiling_pa} Pa")
        self.ceiling_pa = min(ceiling_pa, self.geometry.max_pressure_pa)

    def set_target(self, pressure_pa: float) -> None:
        """A new stack-pressure setpoint; the reference ramps to it from where it is."""
        if not 0.0 <= pressure_pa <= self.ceiling_pa:
            raise JigRefused(f"stack pressure setpoint {pressure_pa / 1e6:.3f} MPa outside "
                             f"0..{self.ceiling_pa / 1e6:.3f} MPa (the ceiling of this jig)")
        self.target_pa = pressure_pa

    def start(self, now_s: float, regulator_setpoint_pa: float,
              measured_pa: float | None) -> None:
        """Take over bumplessly from whatever the regulator is doing: the output starts at
        its present setpoint, the reference at the measured pressure, and the integral holds
        the difference (what the geometry does not explain)."""
        self.output_pa = self.geometry.pressure_for_regulator(regulator_setpoint_pa)
        self.reference_pa = measured_pa if measured_pa is not None else self.output_pa
        limit_pa = self.tuning.integral_limit_fraction * self.ceiling_pa
        self.integral_pa = max(-limit_pa, min(limit_pa, self.output_pa - self.reference_pa))
        self._last_s = now_s

    @property
    def command_pa(self) -> float:
        """The regulator pressure the output stands for."""
        return min(self.geometry.regulator_for_pressure(self.output_pa), self.regulator_max_pa)

    @property
    def ramping(self) -> bool:
        """Whether the reference is still on its way to the setpoint."""
        return self.target_pa is not None and self.reference_pa != self.target_pa

    # -- one tick -----------------------------------------------------------------------------

    def update(self, now_s: float, measured_pa: float | None, *, hold: bool = False,
               allow_raise: bool = True, regulator_behind: bool = False,
               regulator_ahead: bool = False) -> float:
        """Advance to ``now_s`` with the pressure measured now; returns the regulator
        pressure to command. ``hold`` freezes everything; a missing measurement holds too.
        ``regulator_behind`` / ``regulator_ahead``: the regulator's own pressure is well
        below / above its setpoint (no supply, a leak, no exhaust), so asking it for more /
        less achieves nothing and the integral must not grow that way."""
        last_s = self._last_s if self._last_s is not None else now_s
        dt_s = min(max(now_s - last_s, 0.0), 5.0 * self.tuning.period_s)
        self._last_s = now_s
        if hold or measured_pa is None or self.target_pa is None:
            return self.command_pa
        tuning = self.tuning
        step_pa = tuning.ramp_pa_per_s * dt_s
        self.reference_pa += max(-step_pa, min(step_pa, self.target_pa - self.reference_pa))
        error_pa = self.reference_pa - measured_pa
        band_pa = max(tuning.deadband_fraction * self.target_pa, tuning.deadband_min_pa)
        error_pa -= max(-band_pa, min(band_pa, error_pa))
        integral_pa = self.integral_pa + tuning.ki_per_s * error_pa * dt_s
        limit_pa = tuning.integral_limit_fraction * self.ceiling_pa
        integral_pa = max(-limit_pa, min(limit_pa, integral_pa))
        wanted_pa = self.reference_pa + tuning.kp * error_pa + integral_pa
        floor_pa = self.geometry.pressure_for_regulator(0.0)
        top_pa = min(self.ceiling_pa,
                     self.geometry.pressure_for_regulator(self.regulator_max_pa))
        if not allow_raise:
            top_pa = min(top_pa, self.output_pa)
        slew_pa = tuning.slew_pa_per_s * dt_s
        output_pa = max(floor_pa, min(top_pa, wanted_pa))
        output_pa = max(self.output_pa - slew_pa, min(self.output_pa + slew_pa, output_pa))
        pushing_up = error_pa > 0 and (wanted_pa > output_pa or regulator_behind)
        pushing_down = error_pa < 0 and (wanted_pa < output_pa or regulator_ahead)
        if not (self.ramping or pushing_up or pushing_down):
            self.integral_pa = integral_pa
        self.output_pa = output_pa
        return self.command_pa

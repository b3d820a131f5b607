"""Step-by-step integration of the cell for what has no closed form: a held voltage (CV), and
any drive while an internal short is present (its current depends on the voltage).

Each step of length ``h`` takes the branch current as linear in time between its values at the
two ends (a second-order scheme). With that input every RC pair has an exact solution,
``v(h) = v·e + R·I_n·(1 − e) + R·(I_{n+1} − I_n)·g`` with ``e = exp(−h/τ)`` and
``g = 1 − τ(1 − e)/h``; the charge moves by the trapezoid ``(I_n + I_{n+1})·h/2``, and the OCV is
linearised over the step with its analytic slope. The terminal condition (voltage held, or
current given with a shunt conductance ``G`` across the cell) is then linear in ``I_{n+1}`` and is
solved exactly each step, so the scheme is stable for the fastest RC pairs (τ of microseconds)
at steps of seconds. Steps start at 10 ms and grow by 30 % up to ``max_step_s``, and land on
every sample time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cellrig.simulators.cell_circuit import Circuit, lithium_losses
from cellrig.simulators.cell_params import CellParameters
from cellrig.simulators.ocv import CellOcv

FloatArray = npt.NDArray[np.float64]
FIRST_STEP_S = 0.01
GROWTH = 1.3


@dataclass
class StepState:
    """The integrator's state (mutable; the model copies its own state in and out)."""

    anode_ah: float
    cathode_ah: float
    dead_ah: float
    trap_left_ah: float
    rc_v: FloatArray
    rise_k: float
    heat_j: float
    charge_in_ah: float = 0.0
    charge_out_ah: float = 0.0


@dataclass(frozen=True, slots=True)
class Drive:
    """What the source does: hold ``value`` volts (``voltage``) or amperes (``current``).

    ``open_circuit`` cuts the external path (no external current flows, whatever is asked);
    ``shunt`` gives the conductance of an internal short at an absolute time.
    """

    voltage: bool
    value: float
    open_circuit: bool = False
    shunt: Callable[[float], float] = field(default=lambda _t: 0.0)


@dataclass(frozen=True, slots=True)
class Stop:
    """End the integration early: when the external current's magnitude falls to
    ``current_a`` (if set), or when the voltage reaches ``voltage_v`` moving in ``direction``."""

    current_a: float | None = None
    voltage_v: float | None = None
    direction: float = 1.0


@dataclass
class Context:
    """Everything fixed during one integration."""

    params: CellParameters
    ocv: CellOcv
    circuit: Circuit
    fade: float
    thermal_tau_s: float
    max_step_s: float = 5.0


@dataclass
class Samples:
    """Readings at the sample times, and when a stop condition held (offset from the start)."""

    voltage_v: FloatArray
    current_a: FloatArray
    heat_w: FloatArray
    rise_k: FloatArray
    anode_ah: FloatArray
    cathode_ah: FloatArray
    dead_ah: FloatArray
    final_current_a: float = 0.0
    stopped_at_s: float | None = None


def integrate(ctx: Context, state: StepState, start_s: float, offsets_s: FloatArray,
              end_s: float, drive: Drive, stop: Stop | None = None) -> Samples:
    """Advance ``state`` (in place) from absolute time ``start_s`` by ``end_s`` seconds,
    recording at ``offsets_s`` (sorted, within [0, end_s]); stops early if ``stop`` holds."""
    circuit = ctx.circuit
    r_s = circuit.series_ohm
    rc_r = circuit.rc_ohm
    rc_tau = circuit.rc_tau_s
    thermal_r = ctx.params.thermal_resistance_k_per_w
    count = len(offsets_s)
    out = {name: np.full(count, math.nan) for name in
           ("voltage", "current", "heat", "rise", "anode", "cathode", "dead")}

    def lithiation(current: float) -> float:
        return float(circuit.lithiation_at(state.cathode_ah)) if current < 0 else 0.0

    def solve(a0: float, a1: float, shunt: float) -> tuple[float, float, float, float]:
        """Branch current, terminal voltage, external current and lithiation resistance
        (which acts only when the branch current discharges)."""
        result = _terminal(drive, a0, a1, shunt)
        resistance = float(circuit.lithiation_at(state.cathode_ah))
        if result[0] < 0 and resistance > 0:
            result = _terminal(drive, a0, a1 + resistance, shunt)
            return (*result, resistance)
        return (*result, 0.0)

    def power(branch: float, r_l: float, voltage: float, shunt: float) -> float:
        return float(branch * branch * (r_s + r_l) + np.sum(state.rc_v ** 2 / rc_r)
                     + shunt * voltage * voltage)

    def record(index: int, voltage: float, external: float, heat_w: float) -> None:
        out["voltage"][index], out["current"][index] = voltage, external
        out["heat"][index], out["rise"][index] = heat_w, state.rise_k
        out["anode"][index], out["cathode"][index] = state.anode_ah, state.cathode_ah
        out["dead"][index] = state.dead_ah

    ocv, slope = ctx.ocv.evaluate_scalar(state.anode_ah, state.cathode_ah)
    shunt = drive.shunt(start_s)
    branch, voltage, external, r_l = solve(ocv + float(np.sum(state.rc_v)), r_s, shunt)
    heat_w = power(branch, r_l, voltage, shunt)
    elapsed, step, sample = 0.0, FIRST_STEP_S, 0
    while sample < count and offsets_s[sample] <= 0.0:
        record(sample, voltage, external, heat_w)
        sample += 1
    if stop is not None and _stopped(stop, voltage, external):
        return _samples(out, external, 0.0)
    while elapsed < end_s - 1e-12:
        h = min(step, end_s - elapsed)
        if sample < count:
            h = min(h, offsets_s[sample] - elapsed)
        h = max(h, 1e-9)
        decay = np.exp(-h / rc_tau)
        settled = -np.expm1(-h / rc_tau)
        ramp = 1.0 - rc_tau * settled / h
        constant = state.rc_v * decay + rc_r * branch * (settled - ramp)
        gain = rc_r * ramp
        shunt = drive.shunt(start_s + elapsed + h)
        half_ah = h / 2 / 3600.0
        a0 = ocv + slope * branch * half_ah + float(np.sum(constant))
        a1 = slope * half_ah + r_s + float(np.sum(gain))
        previous = (branch, voltage, external)
        branch, voltage, external, r_l = solve(a0, a1, shunt)
        moved = (previous[0] + branch) * half_ah
        charged = max(moved, 0.0)
        if charged > 0:
            trap, dead = lithium_losses(ctx.params, ctx.fade, state.trap_left_ah, state.dead_ah,
                                        charged)
            state.anode_ah += moved - float(trap) - (float(dead) - state.dead_ah)
            state.trap_left_ah -= float(trap)
            state.dead_ah = float(dead)
        else:
            state.anode_ah += moved
        state.cathode_ah += moved
        state.rc_v = constant + gain * branch
        mean_external = (previous[2] + external) / 2 * h / 3600.0
        state.charge_in_ah += max(mean_external, 0.0)
        state.charge_out_ah += max(-mean_external, 0.0)
        new_heat_w = power(branch, r_l, voltage, shunt)
        state.heat_j += (heat_w + new_heat_w) / 2 * h
        heat_w = new_heat_w
        cooling = math.exp(-h / ctx.thermal_tau_s)
        state.rise_k = state.rise_k * cooling + heat_w * thermal_r * (1 - cooling)
        elapsed += h
        ocv, slope = ctx.ocv.evaluate_scalar(state.anode_ah, state.cathode_ah)
        if stop is not None and _stopped(stop, voltage, external):
            at = elapsed - h + h * _fraction(stop, previous[1:], voltage, external)
            return _samples(out, external, at)
        while sample < count and offsets_s[sample] <= elapsed + 1e-9:
            record(sample, voltage, external, heat_w)
            sample += 1
        step = min(step * GROWTH, ctx.max_step_s)
    return _samples(out, external, None)


def _terminal(drive: Drive, a0: float, a1: float, shunt: float) -> tuple[float, float, float]:
    """Solve ``V = a0 + a1·I_branch`` with the source's condition: branch current, terminal
    voltage, external current."""
    if drive.voltage and not drive.open_circuit:
        branch = (drive.value - a0) / a1
        return branch, drive.value, branch + shunt * drive.value
    external = 0.0 if drive.open_circuit else drive.value
    branch = (external - shunt * a0) / (1.0 + shunt * a1)
    return branch, a0 + a1 * branch, external


def _stopped(stop: Stop, voltage: float, external: float) -> bool:
    if stop.current_a is not None:
        return abs(external) <= stop.current_a
    assert stop.voltage_v is not None
    return stop.direction * (voltage - stop.voltage_v) >= 0


def _fraction(stop: Stop, before: tuple[float, float], voltage: float, external: float) -> float:
    """Where in the last step the stop condition was met (0..1), by interpolation: in log
    current for a current cut-off (currents decay exponentially), linear for a voltage."""
    if stop.current_a is not None:
        start, end, target = abs(before[1]), abs(external), stop.current_a
        if start <= target:
            return 0.0
        if end > 0 and target > 0:
            return (math.log(start) - math.log(target)) / (math.log(start) - math.log(end))
        return (start - target) / (start - end)
    assert stop.voltage_v is not None
    start_v = before[0]
    if voltage == start_v:
        return 1.0
    return min(max((stop.voltage_v - start_v) / (voltage - start_v), 0.0), 1.0)


def _samples(out: dict[str, FloatArray], final_a: float, stopped: float | None) -> Samples:
    return Samples(out["voltage"], out["current"], out["heat"], out["rise"], out["anode"],
                   out["cathode"], out["dead"], final_a, stopped)

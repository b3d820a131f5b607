"""The cell's state, and constant-current (or rest) segments in closed form.

Under a constant current ``I`` (positive charges) for ``t`` seconds, with ``Q = I·t/3600`` Ah:

* the NMC gives up ``Q`` of lithium: ``cathode(t) = cathode_0 + Q``;
* on charge, part of it never reaches the anode's active lithium: the first-charge loss
  ``min(share·Q, left)`` and new dead lithium ``D(Q) − D_0`` (exact, see
  :func:`~cellrig.simulators.cell_circuit.lithium_losses`): ``anode(t) = anode_0 + Q − losses``;
* each RC pair relaxes exactly: ``v_k(t) = I·R_k + (v_k0 − I·R_k)·exp(−t/τ_k)``;
* the terminal voltage is ``OCV(anode, cathode) + I·(R_s + R_l) + Σ v_k`` (``R_l``, the
  lithiation resistance, only on discharge);
* heat is ``I²·(R_s + R_l) + Σ v_k²/R_k``; its integral over the segment is exact (the
  lithiation term too, since ``R_l`` is exponential in the charge), and the temperature rise
  follows ``ΔT(t) = ΔT_0·e^(−t/τ_th) + P·R_th·(1 − e^(−t/τ_th))`` with ``τ_th = C_th·R_th`` (at
  the segment's mean power for the end state; at the instantaneous power for readings, which
  is accurate when the power changes slowly against τ_th).

Every function takes arrays of times and evaluates them in one numpy expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cellrig.simulators.cell_circuit import Circuit, lithium_losses
from cellrig.simulators.cell_params import CellParameters
from cellrig.simulators.ocv import CellOcv

FloatArray = npt.NDArray[np.float64]

#: Time constants after which an RC pair has relaxed: exp(−50) ≈ 2e-22.
RELAXED = 50.0


@dataclass(frozen=True, slots=True)
class CellState:
    """A snapshot of the model (SI; charges in Ah). ``anode_ah`` is the active lithium in the
    anode, ``cathode_ah`` the lithium out of the NMC, ``dead_ah`` the lithium lost to dead Li and
    SEI while cycling, ``trap_left_ah`` the first-charge loss still to come. ``soc`` is the
    anode's lithium over the nominal capacity; ``direction`` the sign of the last non-zero
    current; a cycle begins with each charge that follows a discharge."""

    time_s: float
    anode_ah: float
    cathode_ah: float
    dead_ah: float
    trap_left_ah: float
    rc_v: tuple[float, ...]
    charge_in_ah: float = 0.0
    charge_out_ah: float = 0.0
    cycle_index: int = 0
    direction: int = -1
    current_a: float = 0.0
    temperature_rise_k: float = 0.0
    heat_j: float = 0.0
    soc: float = 0.0

    @property
    def lost_ah(self) -> float:
        """Lithium the cell has lost (first-charge loss and dead lithium)."""
        return self.cathode_ah - self.anode_ah

    @property
    def throughput_ah(self) -> float:
        """Charge passed in both directions."""
        return self.charge_in_ah + self.charge_out_ah


@dataclass(frozen=True, slots=True)
class Trace:
    """The readings of the last segment at its sample times (absolute model time)."""

    time_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    heat_w: FloatArray
    temperature_c: FloatArray
    thickness_change_m: FloatArray


@dataclass
class Readings:
    """Readings and internal state at sample times, within one model piece."""

    voltage: FloatArray
    current: FloatArray
    heat: FloatArray
    rise: FloatArray
    anode: FloatArray
    cathode: FloatArray
    dead: FloatArray


def thermal_tau_s(params: CellParameters) -> float:
    """The cell's thermal time constant, heat capacity × thermal resistance."""
    return params.heat_capacity_j_per_k * params.thermal_resistance_k_per_w


def lithium_after(params: CellParameters, state: CellState, current_a: float, dt_s: FloatArray,
                  fade: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Anode, cathode and dead lithium, and first-charge loss left, after ``dt_s`` seconds."""
    moved = current_a * dt_s / 3600.0
    cathode = state.cathode_ah + moved
    if current_a > 0:
        trap, dead = lithium_losses(params, fade, state.trap_left_ah, state.dead_ah, moved)
        anode = state.anode_ah + moved - trap - (dead - state.dead_ah)
        return anode, cathode, dead, state.trap_left_ah - trap
    # no losses on discharge or at rest
    return (state.anode_ah + moved, cathode, np.full_like(dt_s, state.dead_ah),
            np.full_like(dt_s, state.trap_left_ah))


def rc_voltage_v(circuit: Circuit, start_v: tuple[float, ...], current_a: float,
                 dt_s: FloatArray) -> FloatArray:
    """The RC pairs' voltages summed, ``Σ I·R_k + (v_k0 − I·R_k)·exp(−t/τ_k)``, at ``dt_s``.

    Where the times ascend, a pair's relaxing term is evaluated only up to :data:`RELAXED` time
    constants, beyond which it is below 1e-21 of its start: the pairs of the interface and of
    charge transfer relax within milliseconds, most Warburg pairs within minutes. The slowest
    pair is evaluated alone over its span, the others together (one matrix) over theirs, so a
    long step costs little more than its slowest pair, and exp() never works on underflowing
    arguments (its slow path).
    """
    # the eight pairs' bookkeeping in plain Python: numpy's per-call cost would dominate it
    taus = circuit.rc_tau_s.tolist()
    resistances = circuit.rc_ohm.tolist()
    offsets = [start - current_a * resistance
               for start, resistance in zip(start_v, resistances, strict=True)]
    total = np.full(dt_s.shape, sum(current_a * resistance for resistance in resistances))
    count = dt_s.shape[0]
    if count > 1 and bool((dt_s[1:] >= dt_s[:-1]).all()):
        ends = np.searchsorted(dt_s, RELAXED * circuit.rc_tau_s).tolist()
    else:
        ends = [count] * len(taus)
    ends = [end if offset != 0.0 else 0 for end, offset in zip(ends, offsets, strict=True)]
    slowest = max(range(len(ends)), key=ends.__getitem__)
    span = ends[slowest]
    if span == 0:
        return total
    term = np.divide(dt_s[:span], -taus[slowest])
    np.exp(term, out=term)
    term *= offsets[slowest]
    total[:span] += term
    others = [k for k, end in enumerate(ends) if end > 0 and k != slowest]
    if others:
        span = max(ends[k] for k in others)
        decay = np.divide(dt_s[:span, None], np.array([-taus[k] for k in others]))
        np.exp(decay, out=decay)
        total[:span] += decay @ np.array([offsets[k] for k in others])
    return total


@dataclass(frozen=True, slots=True)
class Voltages:
    """Terminal voltage and the lithium at sample times, within one model piece."""

    voltage: FloatArray
    anode: FloatArray
    cathode: FloatArray
    dead: FloatArray


def voltages(params: CellParameters, ocv: CellOcv, state: CellState, current_a: float,
             dt_s: FloatArray, circuit: Circuit, fade: float) -> Voltages:
    """The voltage of :func:`readings` (and the lithium behind it), without the heat: what a
    search for a voltage and the readings of a model rig need."""
    anode, cathode, dead, _ = lithium_after(params, state, current_a, dt_s, fade)
    voltage = ocv.voltage_v(anode, cathode)
    voltage += rc_voltage_v(circuit, state.rc_v, current_a, dt_s)
    if current_a < 0:
        resistance = circuit.lithiation_at(cathode)
        resistance += circuit.series_ohm
        resistance *= current_a
        voltage += resistance
    elif current_a > 0:
        voltage += current_a * circuit.series_ohm
    return Voltages(voltage, anode, cathode, dead)


def readings(params: CellParameters, ocv: CellOcv, state: CellState, current_a: float,
             dt_s: FloatArray, circuit: Circuit, fade: float) -> Readings:
    """Readings ``dt_s`` seconds into a constant-current (or rest, ``current_a = 0``) piece."""
    at = voltages(params, ocv, state, current_a, dt_s, circuit, fade)
    decay = np.exp(-dt_s[:, None] / circuit.rc_tau_s)
    steady = current_a * circuit.rc_ohm
    rc = steady + (np.asarray(state.rc_v) - steady) * decay
    lith = circuit.lithiation_at(at.cathode) if current_a < 0 else np.zeros_like(dt_s)
    heat = current_a ** 2 * (circuit.series_ohm + lith) + np.sum(rc ** 2 / circuit.rc_ohm, axis=1)
    cooling = np.exp(-dt_s / thermal_tau_s(params))
    rise = (state.temperature_rise_k * cooling
            + heat * params.thermal_resistance_k_per_w * (1 - cooling))
    return Readings(at.voltage, np.full_like(dt_s, current_a), heat, rise, at.anode, at.cathode,
                    at.dead)


def state_after(params: CellParameters, state: CellState, current_a: float, length_s: float,
                circuit: Circuit, fade: float) -> CellState:
    """The state after ``length_s`` seconds of constant current (or rest): the arithmetic of
    :func:`lithium_after`, the RC relaxation and :func:`~cellrig.simulators.cell_circuit.rc_heat_j`
    on plain floats (one state, where numpy's per-call cost would dominate)."""
    moved = current_a * length_s / 3600.0
    anode, dead, trap_left = state.anode_ah + moved, state.dead_ah, state.trap_left_ah
    if current_a > 0:
        trap = min(params.first_charge_loss_share * moved, trap_left)
        scale = params.fade_acceleration_fraction * params.capacity_ah
        rate = params.coulombic_loss_fraction * fade
        dead = (state.dead_ah + scale) * math.exp(rate * moved / scale) - scale
        anode = state.anode_ah + moved - trap - (dead - state.dead_ah)
        trap_left -= trap
    rc = []
    heat = current_a ** 2 * circuit.series_ohm * length_s
    for resistance, tau, start_v in zip(circuit.rc_ohm.tolist(), circuit.rc_tau_s.tolist(),
                                        state.rc_v, strict=True):
        steady = current_a * resistance
        offset = start_v - steady
        rc.append(steady + offset * math.exp(-length_s / tau))
        fade_once = -math.expm1(-length_s / tau)
        fade_twice = -math.expm1(-2.0 * length_s / tau)
        heat += (steady ** 2 * length_s + 2 * steady * offset * tau * fade_once
                 + offset ** 2 * tau / 2 * fade_twice) / resistance
    if current_a < 0 and length_s > 0:
        rate = -current_a / 3600.0 / circuit.lithiation_width_ah
        growth = math.expm1(min(rate * length_s, 700.0)) / rate
        lithiation_ohm = circuit.lithiation_ohm * math.exp(
            -max(state.cathode_ah, 0.0) / circuit.lithiation_width_ah)
        heat += current_a ** 2 * lithiation_ohm * growth
    cooling = math.exp(-length_s / thermal_tau_s(params))
    mean_w = heat / length_s if length_s > 0 else 0.0
    rise = (state.temperature_rise_k * cooling
            + mean_w * params.thermal_resistance_k_per_w * (1 - cooling))
    return CellState(
        state.time_s + length_s, anode, state.cathode_ah + moved, dead, trap_left, tuple(rc),
        state.charge_in_ah + max(moved, 0.0), state.charge_out_ah + max(-moved, 0.0),
        state.cycle_index, state.direction, current_a, rise, state.heat_j + heat,
        anode / params.capacity_ah)

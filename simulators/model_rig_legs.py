"""One leg of a step on the cell model: the readings of one source setting over a stretch of
time, computed at once, ending exactly where a condition or the source's compliance is met.

A leg runs one source (constant current, constant voltage, open circuit, constant power or
load) from the model's present state over given offsets (seconds from the leg's start, sorted;
the last one is where the leg ends if nothing is met before). What ends it early:

* a voltage target (a step's voltage condition, or the compliance voltage of a current source)
  under constant current or open circuit: the closed form is evaluated on the offsets at once;
  the first interval where a target is met is refined by one evaluation of 128 points inside
  it, and the crossing interpolated between the two that bracket it (the reading there carries
  the target voltage, the other fields interpolated; the time is within microseconds for a
  10 s grid);
* a current floor under constant voltage (a CV step's cut-off), found by the model's
  integrator (:meth:`CellModel.time_to_current`).

Cells with faults scheduled, and constant voltage, go through the model's public segment
methods; a cell without faults under constant current or open circuit takes a direct path over
the closed-form functions of :mod:`~cellrig.simulators.cell_segments` (the same arithmetic,
without recomputing the segment the model would otherwise redo). Constant power and load are
host-regulated: the current is set anew at every reading from the last reading's voltage, as a
source-measure unit regulating power from the host does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from cellrig.protocols.program import Condition
from cellrig.simulators.cell_circuit import fade_factor
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_segments import CellState, Voltages, state_after, voltages

FloatArray = npt.NDArray[np.float64]

#: Points of the evaluation that refines the interval where a voltage target is crossed.
REFINE_POINTS = 128
_REFINE_SHARES = np.arange(1, REFINE_POINTS + 1) / REFINE_POINTS
#: Longest a host-regulated source (constant power, load) keeps one current.
REGULATION_S = 5.0


class Phase(StrEnum):
    """What the source holds during a leg."""

    CURRENT = "constant current"
    VOLTAGE = "constant voltage"
    REST = "open circuit"
    POWER = "constant power"
    LOAD = "constant load"


@dataclass(frozen=True, slots=True)
class Source:
    """A source setting: ``value`` in A, V, W or Ω by phase; ``compliance_v`` is the voltage a
    current (or power) source holds once it gets there (above for a charge, below for a
    discharge), as a cycler's CC-CV and an SMU in compliance do."""

    phase: Phase
    value: float = 0.0
    compliance_v: float | None = None


@dataclass(frozen=True, slots=True)
class VoltageTarget:
    """End the leg once ``direction·(V − voltage_v) ≥ 0``; ``condition`` None means the source's
    compliance."""

    voltage_v: float
    direction: float
    condition: Condition | None


@dataclass(slots=True)
class Leg:
    """The readings of a leg; ``ended_by`` the target met at its last reading (None: the leg
    ran to its last offset), ``states`` the model state at each reading where the leg keeps
    them (host-regulated sources), for rewinding."""

    offsets_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    swell_m: FloatArray
    ended_by: VoltageTarget | None = None
    states: list[CellState] | None = None


def swell_m(model: CellModel, anode_ah: FloatArray, cathode_ah: FloatArray,
            dead_ah: FloatArray) -> FloatArray:
    """Stack thickness change at each reading, by the model's law (plated and dead lithium
    grow the stack, the delithiated NMC shrinks it; see ``CellModel.thickness_change_m``)."""
    p = model.params
    lithium = model.anode.plated_ah_m2(anode_ah / p.area_m2) + dead_ah / p.area_m2
    return (p.lithium_swell_m_per_ah_m2 * lithium
            - p.cathode_contraction_m_per_ah_m2 * cathode_ah / p.area_m2)


def begin_current(model: CellModel, current_a: float) -> None:
    """What the model does when a segment starts (cycle count, direction), for the direct
    path: a charge after a discharge begins a new cycle of the model."""
    state = model.state
    if current_a == 0:
        return
    cycle = state.cycle_index + (1 if current_a > 0 and state.direction < 0 else 0)
    model.restore(dataclasses.replace(state, cycle_index=cycle,
                                      direction=1 if current_a > 0 else -1))


def _first_met(voltage: FloatArray, targets: list[VoltageTarget]
               ) -> tuple[int, VoltageTarget | None]:
    """Index of the first reading that meets a target (the first listed wins a tie)."""
    best, found = voltage.shape[0], None
    for target in targets:
        met = target.direction * (voltage - target.voltage_v) >= 0
        if met.any():
            index = int(np.argmax(met))
            if index < best:
                best, found = index, target
    return (best, found) if found is not None else (-1, None)


def _refine_times(low: float, high: float) -> FloatArray:
    """``np.linspace(low, high, REFINE_POINTS + 1)[1:]`` (the same numbers), without its
    overhead."""
    times = low + (high - low) * _REFINE_SHARES
    times[-1] = high
    return times


def _direct_current(model: CellModel, current_a: float, offsets: FloatArray,
                    targets: list[VoltageTarget], expected_s: float | None = None) -> Leg:
    """Constant current (or rest) on a cell without faults, straight on the closed form.

    ``expected_s`` is where a target is expected to be met (the same current to the same
    target took that long before): the refining points of the grid interval holding it are
    evaluated with the grid, in one evaluation, and a second one is needed only if the target
    is met in another interval.
    """
    begin_current(model, current_a)
    params, start = model.params, model.state
    circuit = model.circuit()
    fade = fade_factor(params, model.pressure_pa)

    def at(times: FloatArray) -> Voltages:
        return voltages(params, model.ocv, start, current_a, times, circuit, fade)

    guess = (int(np.searchsorted(offsets, expected_s))
             if expected_s is not None and targets else 0)
    if 0 < guess < offsets.shape[0]:
        guess_times = _refine_times(float(offsets[guess - 1]), float(offsets[guess]))
        merged = at(np.concatenate((offsets[:guess], guess_times, offsets[guess + 1:])))
        grid = np.arange(offsets.shape[0])
        grid[guess:] += REFINE_POINTS - 1  # the grid's readings among the merged ones
        guess_v = merged.voltage[guess:guess + REFINE_POINTS]
        voltage = merged.voltage[grid]
        swell = swell_m(model, merged.anode, merged.cathode, merged.dead)[grid]
    else:
        guess = 0
        coarse = at(offsets)
        voltage = coarse.voltage
        swell = swell_m(model, coarse.anode, coarse.cathode, coarse.dead)
    index, target = _first_met(voltage, targets)
    if target is not None and index == 0:
        offsets, voltage, swell = offsets[:1], voltage[:1], swell[:1]
    elif target is not None:
        low, high = float(offsets[index - 1]), float(offsets[index])
        if index == guess:
            fine_times, fine = guess_times, guess_v
        else:
            fine_times = _refine_times(low, high)
            fine = at(fine_times).voltage
        j = int(np.argmax(target.direction * (fine - target.voltage_v) >= 0))
        before_t = low if j == 0 else float(fine_times[j - 1])
        before_v = float(voltage[index - 1] if j == 0 else fine[j - 1])
        after_v = float(fine[j])
        gap_before = target.direction * (before_v - target.voltage_v)
        gap_after = target.direction * (after_v - target.voltage_v)
        share = 1.0 if gap_after == gap_before else -gap_before / (gap_after - gap_before)
        share = min(max(share, 0.0), 1.0)
        end = before_t + share * (float(fine_times[j]) - before_t)
        # the linear interpolation meets the target exactly, unless the share was clipped
        cut_v = (target.voltage_v if 0.0 < share < 1.0
                 else before_v + share * (after_v - before_v))
        # the swell moves by nanometres within a grid interval: linear in time
        cut_swell = float(swell[index - 1] + (swell[index] - swell[index - 1])
                          * (end - low) / (high - low))
        offsets = np.concatenate((offsets[:index], (end,)))
        voltage = np.concatenate((voltage[:index], (cut_v,)))
        swell = np.concatenate((swell[:index], (cut_swell,)))
    model.restore(state_after(params, start, current_a, float(offsets[-1]), circuit, fade))
    return Leg(offsets, voltage, np.full(offsets.shape, current_a), swell, target)


def _model_current(model: CellModel, current_a: float, offsets: FloatArray,
                   targets: list[VoltageTarget]) -> Leg:
    """Constant current (or rest) through the model's own segments (faults and all).

    The model searches in the direction the voltage moves (with the current; at rest towards
    the target from the relaxed voltage); a target the other way is met at once if at all,
    and the engine sees that on the leg's first reading.
    """
    end = float(offsets[-1])
    found: VoltageTarget | None = None
    resting_v = model.ocv_v() + sum(model.state.rc_v)
    for target in targets:
        moving = current_a if current_a != 0 else target.voltage_v - resting_v
        if math.copysign(1.0, moving) != target.direction:
            continue
        reach = model.time_to_voltage(current_a, target.voltage_v, end)
        if reach is not None and (found is None or reach < end):
            end, found = reach, target
    if found is not None:
        offsets = np.append(offsets[offsets < end], end)
    if current_a != 0:
        model.run_current(current_a, offsets)
    else:
        model.run_rest(offsets)
    trace = model.last_trace
    assert trace is not None
    return Leg(offsets, trace.voltage_v, trace.current_a, trace.thickness_change_m, found)


def current_leg(model: CellModel, current_a: float, offsets: FloatArray,
                targets: list[VoltageTarget], expected_s: float | None = None) -> Leg:
    """Constant current (0: open circuit) over ``offsets``, ending at the first target met
    (``expected_s``: where one is expected to be, a hint that saves an evaluation)."""
    if not model.schedule.faults:
        return _direct_current(model, current_a, offsets, targets, expected_s)
    return _model_current(model, current_a, offsets, targets)


def voltage_leg(model: CellModel, voltage_v: float, offsets: FloatArray,
                floor: tuple[float, Condition] | None) -> tuple[Leg, Condition | None]:
    """Constant voltage over ``offsets``, ending where the current's magnitude falls to the
    floor (a CV step's cut-off) if it does."""
    ended: Condition | None = None
    if floor is not None:
        reach = model.time_to_current(voltage_v, floor[0], float(offsets[-1]))
        if reach is not None:
            offsets = np.append(offsets[offsets < reach], reach)
            ended = floor[1]
    model.run_voltage(voltage_v, offsets)
    trace = model.last_trace
    assert trace is not None
    return Leg(offsets, trace.voltage_v, trace.current_a, trace.thickness_change_m), ended


def regulation_times(offsets: FloatArray, fresh: bool
                     ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """When a host-regulated source re-sets its current: at every reading, at least every
    :data:`REGULATION_S`, and (after a change of setting) at 10 ms, 20 ms, 40 ms, ... while the
    cell's fast RC pairs settle. Returns the times and which of them are readings."""
    end = float(offsets[-1])
    extra = [np.arange(REGULATION_S, end, REGULATION_S)]
    if fresh:
        extra.append(0.01 * 2.0 ** np.arange(0, max(1, math.ceil(math.log2(
            max(min(end, REGULATION_S), 0.01) / 0.01)))))
    times = np.union1d(offsets, np.concatenate(extra))
    return times, np.isin(times, offsets)


def regulated_leg(model: CellModel, source: Source, offsets: FloatArray, fresh: bool,
                  last_voltage_v: float, last_current_a: float) -> Leg:
    """Constant power or load, host-regulated: the current is re-set at each regulation time
    (:func:`regulation_times`) from the last measurement (voltage and current) and the cell's
    series resistance, so the power (or the load's current) is right at each re-set and drifts
    only with the cell's relaxation until the next; the leg stops at the first reading past
    the compliance voltage."""
    voltages, currents, swells, states, kept = [], [], [], [], []
    previous_t, voltage, current = 0.0, last_voltage_v, last_current_a
    compliance = source.compliance_v
    series_ohm = model.circuit().series_ohm
    times, recorded = regulation_times(offsets, fresh)
    for offset, is_reading in zip(times.tolist(), recorded.tolist(), strict=True):
        inner_v = voltage - current * series_ohm  # the voltage behind the series resistance
        if source.phase is Phase.POWER:
            root = inner_v * inner_v + 4.0 * series_ohm * source.value
            current = (2.0 * source.value / (inner_v + math.sqrt(root))
                       if root >= 0 and inner_v > 0 else 0.0)
        else:
            current = -max(inner_v, 0.0) / (source.value + series_ohm)
        model.run_current(current, [offset - previous_t])
        trace = model.last_trace
        assert trace is not None
        voltage = float(trace.voltage_v[-1])
        previous_t = offset
        if not is_reading:
            continue
        kept.append(offset)
        voltages.append(voltage)
        currents.append(float(trace.current_a[-1]))
        swells.append(float(trace.thickness_change_m[-1]))
        states.append(model.state)
        if compliance is not None and math.copysign(1.0, current or 1.0) * (
                voltage - compliance) >= 0:
            break
    target = None
    if compliance is not None and kept:
        direction = math.copysign(1.0, currents[-1] or 1.0)
        if direction * (voltages[-1] - compliance) >= 0:
            target = VoltageTarget(compliance, direction, None)
    return Leg(np.array(kept), np.array(voltages), np.array(currents), np.array(swells),
               target, states)

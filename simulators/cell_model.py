"""The physical model of an anode-free all-solid-state cell, segment by segment.

State: lithium in the anode and lithium out of the cathode (their difference is the lithium the
cell has lost), dead lithium, the first-charge loss still to come, the RC voltages, charge
counters, the cycle count and the cell's temperature rise. The OCV comes from
:mod:`~cellrig.simulators.ocv`, the circuit from :mod:`~cellrig.simulators.cell_circuit`.

How each segment is solved:

* constant current and rest, in **closed form**: the charge is linear in time, the lithium losses
  have an exact solution in the charge passed, and every RC voltage follows
  ``v(t) = v_0·e^(−t/τ) + I·R·(1 − e^(−t/τ))``; any array of times is one numpy evaluation;
* the time a constant current reaches a voltage: a vectorised scan of the closed form on a grid,
  then two vectorised 64-way bisections of the bracketing interval and a final interpolation
  (about 1e-6 of the grid spacing);
* constant voltage, and any segment while an internal short is present, with the
  second-order semi-implicit integrator of :mod:`~cellrig.simulators.cell_stepper`; the time
  the current falls to a cut-off is interpolated inside the step that crosses it.

Times passed to ``run_*`` are seconds since the segment's start (sorted, ≥ 0); the model ends at
the last one. Faults (:mod:`~cellrig.simulators.cell_faults`) that start or end inside a segment
split it there. Positive current charges the cell.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from cellrig.simulators.cell_circuit import (
    Circuit,
    ComplexArray,
    build_circuit,
    fade_factor,
    impedance,
)
from cellrig.simulators.cell_faults import (
    Fault,
    FaultKind,
    FaultSchedule,
    MeasurementNoise,
    ShortCircuits,
)
from cellrig.simulators.cell_params import CellParameters
from cellrig.simulators.cell_search import first_crossing
from cellrig.simulators.cell_segments import (
    CellState,
    Readings,
    Trace,
    readings,
    state_after,
    thermal_tau_s,
    voltages,
)
from cellrig.simulators.cell_stepper import Context, Drive, StepState, Stop, integrate
from cellrig.simulators.ocv import NMC_VS_LI, AnodeCurve, CellOcv

FloatArray = npt.NDArray[np.float64]


class CellModel:
    """One cell at an ambient (chamber) temperature and a stack pressure."""

    #: What an instrument reads while it drives a current into an open circuit (its compliance).
    open_circuit_v: float = 5.0

    def __init__(self, params: CellParameters | None = None, temperature_c: float = 25.0,
                 pressure_pa: float = 2.0e6, faults: Iterable[Fault] = (), seed: int = 0,
                 max_step_s: float = 5.0) -> None:
        self.params = params if params is not None else CellParameters()
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.max_step_s = max_step_s
        self.schedule = FaultSchedule(list(faults))
        self.seed = seed
        self._noise: MeasurementNoise | None = None
        p = self.params
        self.anode = AnodeCurve(p.agc_capacity_ah_m2, p.agc_potential_v, p.agc_knee_width_ah_m2,
                                p.bare_anode_potential_v, p.bare_anode_width_ah_m2)
        self.ocv = CellOcv(p.capacity_ah, p.area_m2, p.cathode_mass_kg, self.anode)
        rc_count = len(build_circuit(p, temperature_c, pressure_pa).rc_ohm)
        self._state = CellState(0.0, 0.0, 0.0, 0.0, p.first_charge_loss_fraction * p.capacity_ah,
                                (0.0,) * rc_count)
        self.last_trace: Trace | None = None
        self._stopped_at: float | None = None

    # -- state and conditions ---------------------------------------------------------------
    @property
    def state(self) -> CellState:
        """The model's state now."""
        return self._state

    def restore(self, state: CellState) -> None:
        """Go back to a saved state (faults keep their schedule)."""
        self._state = state

    @property
    def cell_temperature_c(self) -> float:
        """Ambient temperature plus the cell's own heating."""
        return self.temperature_c + self._state.temperature_rise_k

    def set_conditions(self, temperature_c: float | None = None,
                       pressure_pa: float | None = None) -> None:
        """New ambient temperature and/or stack pressure from now on."""
        if temperature_c is not None:
            self.temperature_c = temperature_c
        if pressure_pa is not None:
            self.pressure_pa = pressure_pa

    def inject(self, fault: Fault) -> None:
        """Schedule a fault."""
        self.schedule.add(fault)

    def circuit(self) -> Circuit:
        """The circuit now (at the cell's temperature, the stack pressure, the faults)."""
        return self._circuit(self.schedule.active(self._state.time_s))

    def ocv_v(self) -> float:
        """The open-circuit voltage the cell would relax to now."""
        return float(self.ocv.voltage_v(self._state.anode_ah, self._state.cathode_ah))

    def thickness_change_m(self, state: CellState | None = None) -> float:
        """Stack thickness change from the as-built cell: plated and dead lithium grow it
        (4.85 µm per mAh/cm² of dense Li), the delithiated NMC shrinks it."""
        s = state if state is not None else self._state
        return float(self._swell(np.array([s.anode_ah]), np.array([s.cathode_ah]),
                                 np.array([s.dead_ah]))[0])

    def heat_power_w(self) -> float:
        """Heat released now by the last current (I²R in every resistor)."""
        s = self._state
        circuit = self.circuit()
        lith = float(circuit.lithiation_at(s.cathode_ah)) if s.current_a < 0 else 0.0
        rc = np.asarray(s.rc_v)
        return float(s.current_a ** 2 * (circuit.series_ohm + lith)
                     + np.sum(rc ** 2 / circuit.rc_ohm))

    def impedance(self, frequency_hz: npt.ArrayLike) -> ComplexArray:
        """Small-signal impedance at open circuit in the present state (ohms)."""
        active = self.schedule.active(self._state.time_s)
        if any(fault.kind is FaultKind.OPEN_CIRCUIT for fault, _ in active):
            return np.full(np.shape(frequency_hz), complex(math.inf, 0.0), dtype=np.complex128)
        circuit = self._circuit(active)
        _, slope = self.ocv.evaluate_scalar(self._state.anode_ah, self._state.cathode_ah)
        lith = float(circuit.lithiation_at(self._state.cathode_ah))
        return impedance(circuit, frequency_hz, slope, lith, self._shunt(active)(self.time_s))

    def dc_resistance_ohm(self) -> float:
        """Resistance to a long small charging current: the low-frequency limit of the
        impedance without the cell's capacitance."""
        return self.circuit().dc_ohm

    @property
    def time_s(self) -> float:
        """The model's clock."""
        return self._state.time_s

    # -- segments ---------------------------------------------------------------------------
    def run_current(self, current_a: float, times_s: npt.ArrayLike) -> tuple[FloatArray, CellState]:
        """Constant current; the terminal voltage at each time, and the state at the last."""
        trace = self._run(False, current_a, times_s)
        return trace.voltage_v, self._state

    def run_rest(self, times_s: npt.ArrayLike) -> FloatArray:
        """Open circuit (no current); the voltage at each time."""
        return self._run(False, 0.0, times_s).voltage_v

    def run_voltage(self, voltage_v: float, times_s: npt.ArrayLike) -> FloatArray:
        """Constant terminal voltage; the current at each time."""
        return self._run(True, voltage_v, times_s).current_a

    def time_to_voltage(self, current_a: float, target_v: float, max_s: float) -> float | None:
        """Seconds until a constant current brings the voltage to ``target_v`` (rising for a
        charge, falling for a discharge; either way from the start at rest), or None if not
        within ``max_s``. The model does not move."""
        return self._look_ahead(False, current_a, target_v, max_s)

    def time_to_current(self, voltage_v: float, target_a: float, max_s: float) -> float | None:
        """Seconds until, at constant voltage, the current's magnitude falls to ``target_a``,
        or None if not within ``max_s``. The model does not move."""
        return self._look_ahead(True, voltage_v, abs(target_a), max_s)

    # -- machinery --------------------------------------------------------------------------
    def _circuit(self, active: list[tuple[Fault, float]]) -> Circuit:
        contact = math.prod(f.factor for f, _ in active if f.kind is FaultKind.CONTACT_LOSS)
        dead = self._state.dead_ah / self.params.capacity_ah
        return build_circuit(self.params, self.cell_temperature_c, self.pressure_pa, dead,
                             contact)

    def _fade(self, active: list[tuple[Fault, float]]) -> float:
        contact = math.prod(f.factor for f, _ in active if f.kind is FaultKind.CONTACT_LOSS)
        return fade_factor(self.params, self.pressure_pa, contact)

    @staticmethod
    def _shunt(active: list[tuple[Fault, float]]) -> ShortCircuits:
        shorts = [(f, start) for f, start in active
                  if f.kind in (FaultKind.SOFT_SHORT, FaultKind.HARD_SHORT)]
        return ShortCircuits(shorts)

    def _swell(self, anode: FloatArray, cathode: FloatArray, dead: FloatArray) -> FloatArray:
        p = self.params
        lithium = self.anode.plated_ah_m2(anode / p.area_m2) + dead / p.area_m2
        return (p.lithium_swell_m_per_ah_m2 * lithium
                - p.cathode_contraction_m_per_ah_m2 * cathode / p.area_m2)

    def _begin(self, direction: float) -> None:
        """Count a cycle when a charge follows a discharge; start cycle-scheduled faults."""
        s = self._state
        if direction > 0 and s.direction < 0:
            s = dataclasses.replace(s, cycle_index=s.cycle_index + 1)
        if direction != 0:
            s = dataclasses.replace(s, direction=1 if direction > 0 else -1)
        self._state = s
        self.schedule.begin_cycle(s.cycle_index, s.time_s)

    def _direction(self, voltage_mode: bool, value: float) -> float:
        if not voltage_mode:
            return value
        s = self._state
        return value - self.ocv_v() - sum(s.rc_v)

    def _pieces(self, length_s: float) -> list[tuple[float, float]]:
        now = self._state.time_s
        cuts = [0.0, *(t - now for t in self.schedule.boundaries(now, now + length_s)), length_s]
        return list(itertools.pairwise(cuts))

    def _run(self, voltage_mode: bool, value: float, times_s: npt.ArrayLike) -> Trace:
        times = np.atleast_1d(np.asarray(times_s, dtype=float))
        if times.ndim != 1 or np.any(np.diff(times) < 0) or (times.size and times[0] < 0):
            raise ValueError("times must be sorted seconds since the segment's start, ≥ 0")
        start = self._state.time_s
        self._begin(self._direction(voltage_mode, value))
        end = float(times[-1]) if times.size else 0.0
        parts: list[Readings] = []
        noise: Fault | None = None
        for low, high in self._pieces(end):
            first = int(np.searchsorted(times, low, side="left" if low == 0 else "right"))
            last = int(np.searchsorted(times, high, side="right"))
            active = self.schedule.active(self._state.time_s)
            noise = noise or next((f for f, _ in active if f.kind is FaultKind.NOISE), None)
            parts.append(self._advance(voltage_mode, value, times[first:last] - low,
                                       high - low, active))
        merged = Readings(*(np.concatenate([getattr(p, f.name) for p in parts])
                          for f in dataclasses.fields(Readings)))
        voltage, current = merged.voltage, merged.current
        if noise is not None:
            if self._noise is None:
                self._noise = MeasurementNoise.from_fault(noise, self.seed)
            voltage, current = self._noise.apply(voltage, current)
        self.last_trace = Trace(start + times, voltage, current, merged.heat,
                                self.temperature_c + merged.rise,
                                self._swell(merged.anode, merged.cathode, merged.dead))
        return self.last_trace

    def _advance(self, voltage_mode: bool, value: float, offsets: FloatArray, length: float,
                 active: list[tuple[Fault, float]]) -> Readings:
        """One piece with fixed faults: readings at ``offsets``, state moved by ``length``."""
        circuit = self._circuit(active)
        fade = self._fade(active)
        shunt = self._shunt(active)
        open_circuit = any(f.kind is FaultKind.OPEN_CIRCUIT for f, _ in active)
        if voltage_mode or shunt.shorts:
            return self._step(voltage_mode, value, offsets, length, circuit, fade, shunt,
                              open_circuit)
        current = 0.0 if open_circuit else value
        piece = readings(self.params, self.ocv, self._state, current, offsets, circuit, fade)
        self._state = state_after(self.params, self._state, current, length, circuit, fade)
        if open_circuit:
            piece.voltage = np.full(offsets.shape, self._open_reading(False, value))
            piece.current = np.zeros(offsets.shape)
        return piece

    def _step(self, voltage_mode: bool, value: float, offsets: FloatArray, length: float,
              circuit: Circuit, fade: float, shunt: ShortCircuits, open_circuit: bool,
              stop: Stop | None = None) -> Readings:
        s = self._state
        work = StepState(s.anode_ah, s.cathode_ah, s.dead_ah, s.trap_left_ah,
                         np.asarray(s.rc_v, dtype=float), s.temperature_rise_k, s.heat_j,
                         s.charge_in_ah, s.charge_out_ah)
        ctx = Context(self.params, self.ocv, circuit, fade, thermal_tau_s(self.params),
                      self.max_step_s)
        drive = Drive(voltage_mode, value, open_circuit, shunt)
        out = integrate(ctx, work, s.time_s, offsets, length, drive, stop)
        self._stopped_at = out.stopped_at_s
        moved = length if out.stopped_at_s is None else out.stopped_at_s
        last_current = out.final_current_a
        self._state = CellState(
            s.time_s + moved, work.anode_ah, work.cathode_ah, work.dead_ah, work.trap_left_ah,
            tuple(float(v) for v in work.rc_v), work.charge_in_ah, work.charge_out_ah,
            s.cycle_index, s.direction, 0.0 if open_circuit else last_current, work.rise_k,
            work.heat_j, work.anode_ah / self.params.capacity_ah)
        voltage = out.voltage_v
        if open_circuit:
            voltage = np.full(offsets.shape, self._open_reading(voltage_mode, value))
        return Readings(voltage, out.current_a, out.heat_w, out.rise_k, out.anode_ah,
                      out.cathode_ah, out.dead_ah)

    def _open_reading(self, voltage_mode: bool, value: float) -> float:
        """What the instrument reads on an open circuit: its setpoint when it holds a voltage,
        its compliance while it tries to drive a current, 0 V at rest."""
        if voltage_mode:
            return value
        return math.copysign(self.open_circuit_v, value) if value else 0.0

    def _look_ahead(self, voltage_mode: bool, value: float, target: float,
                    max_s: float) -> float | None:
        saved_state, saved_faults = self._state, self.schedule.snapshot()
        try:
            self._begin(self._direction(voltage_mode, value))
            resting_v = self.ocv_v() + sum(self._state.rc_v)
            direction = 1.0 if voltage_mode else math.copysign(1.0, value or target - resting_v)
            elapsed = 0.0
            for low, high in self._pieces(max_s):
                active = self.schedule.active(self._state.time_s)
                length = high - low
                found = self._search_piece(voltage_mode, value, target, direction, length, active)
                if found is not None:
                    return elapsed + found
                elapsed += length
            return None
        finally:
            self._state, self.schedule.started_s = saved_state, saved_faults

    def _search_piece(self, voltage_mode: bool, value: float, target: float, direction: float,
                      length: float, active: list[tuple[Fault, float]]) -> float | None:
        """Time into this piece at which the condition holds, or None (state moved to its end)."""
        circuit, fade, shunt = self._circuit(active), self._fade(active), self._shunt(active)
        open_circuit = any(f.kind is FaultKind.OPEN_CIRCUIT for f, _ in active)
        if open_circuit and not voltage_mode and value != 0:
            reading = self._open_reading(False, value)
            return 0.0 if direction * (reading - target) >= 0 else None
        if voltage_mode or shunt.shorts:
            if not math.isfinite(length):
                length = self._stepper_horizon(voltage_mode, value, target)
            stop = Stop(current_a=target) if voltage_mode else Stop(voltage_v=target,
                                                                   direction=direction)
            self._step(voltage_mode, value, np.zeros(0), length, circuit, fade, shunt,
                       open_circuit, stop)
            return self._stopped_at
        current = 0.0 if open_circuit else value
        state = self._state

        def voltage(dt: FloatArray) -> FloatArray:
            return voltages(self.params, self.ocv, state, current, dt, circuit, fade).voltage

        found = first_crossing(voltage, target, direction, length, self._horizon(current, circuit))
        if found is None and math.isfinite(length):
            self._state = state_after(self.params, self._state, current, length, circuit, fade)
        return found

    def _stepper_horizon(self, voltage_mode: bool, value: float, target: float) -> float:
        """A finite bound for an open-ended integration: the time to pass 100 nominal
        capacities at the cut-off current (CV) or at the drive current (a short)."""
        capacity = self.params.capacity_ah
        current = max(abs(target if voltage_mode else value), 1e-3 * capacity)
        return 100.0 * capacity * 3600.0 / current

    def _horizon(self, current: float, circuit: Circuit) -> float:
        """A time by which a constant current has surely driven the cell to an extreme: the
        anode emptied (discharge), the NMC past its last knot (charge), relaxation over."""
        s, p = self._state, self.params
        if current < 0:
            return (s.anode_ah + 0.05 * p.capacity_ah) * 3600.0 / -current
        if current > 0:
            full = float(NMC_VS_LI.x[-1]) * p.cathode_mass_kg
            return max(full - s.cathode_ah, 0.05 * p.capacity_ah) * 3600.0 / current
        return 20.0 * float(np.max(circuit.rc_tau_s))


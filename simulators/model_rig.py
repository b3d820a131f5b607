"""The model rig: the engine's rig port implemented directly on a bench cell (cell model,
chamber, jig), computing each step as a whole block.

What a read returns. A command's readings are taken on its recording grid — step times that
are multiples of ``Command.sample_interval_s``, plus the moment the command was applied — and
computed at once for the whole step (:mod:`~cellrig.simulators.model_rig_legs`). The step
ends where its first condition is met, exactly: voltage cut-offs under constant current and
current cut-offs under constant voltage are found by root finding, time and charge limits in
closed form, and the reading at the cut is added to the grid. The rig says so with
``Block.done`` (``device_cutoffs``: it ends steps itself, as a cycler does). Conditions it does
not locate (dV/dt, energy, temperature, pressure) the engine finds on the readings; it then
calls :meth:`ModelRig.end_step` and the rig rewinds the model to that reading.

A block is also cut where the source's compliance is reached (the source then holds that
voltage, as an SMU or a cycler's CC-CV does), where a fixed span ends (``max_block_s`` and
``max_block_readings``, so a step that never ends stays bounded; constant voltage, power and
load, which the model integrates step by step, every ``max_voltage_block_s`` unless a current
cut-off can be located), and while the chamber or a
pneumatic jig is still moving, every ``max_piece_s``, so the cell follows them; a bolted jig,
whose force follows the cell's own swell, updates the cell's stack pressure every
``bolted_piece_s``. Temperature and pressure columns are what the chamber's sensor and the
jig's load cell read at each reading.

The rig owns a virtual bench clock and moves it with the model: the clock shows the time of
the last reading the engine has kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cellrig.errors import InstrumentReported
from cellrig.protocols.program import Condition, EisStep, Operator, Quantity
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode, Spectrum
from cellrig.simulators.bench import BenchCell
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_segments import CellState
from cellrig.simulators.model_rig_legs import (
    Leg,
    Phase,
    Source,
    VoltageTarget,
    current_leg,
    regulated_leg,
    voltage_leg,
)
from cellrig.simulators.model_rig_steps import (
    charge_end_s,
    eis_frequencies,
    grid_offsets,
    move_model,
    sweep_duration_s,
    time_end_s,
)

FloatArray = npt.NDArray[np.float64]


@dataclass
class _Pending:
    """The last block, kept until the next command or read, so a condition the engine found
    inside it can rewind the model to that reading."""

    start: CellState
    source: Source
    step_time_s: float
    start_bench_s: float
    leg: Leg


@dataclass
class ModelRig:
    """The rig port on one bench cell (see the module docstring)."""

    bench_cell: BenchCell
    max_block_s: float = 2.0 * 86400.0
    max_block_readings: int = 50_000
    max_piece_s: float = 120.0
    bolted_piece_s: float = 600.0
    max_voltage_block_s: float = 3600.0
    command: Command = field(default_factory=lambda: Command(Mode.OFF))
    _source: Source = field(default_factory=lambda: Source(Phase.REST))
    _step_time_s: float = 0.0
    _charge_base_ah: float = 0.0
    _fresh: bool = False
    _last_voltage_v: float = math.nan
    _pending: _Pending | None = None
    #: How long a constant current took to its voltage cut-off (by current and cut-offs).
    _habits: dict[tuple[float, tuple[tuple[float, float], ...]], float] = field(
        default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bench_cell.clock.virtual:
            raise ValueError("the model rig runs on a virtual clock (it computes whole steps)")
        self.bench_cell.measure()  # the cell, chamber and jig at the clock's time

    # -- the port -------------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """Everything a cycler with a chamber, a jig and an EIS unit has; no range limits."""
        jig = self.bench_cell.jig
        kind = (JigKind.NONE if jig is None
                else JigKind.CONTROLLED if jig.pneumatic else JigKind.MEASURE_ONLY)
        return Capabilities(eis=True, eis_frequency_hz=(1e-5, 1e7), chamber=True, jig=kind,
                            device_cutoffs=True)

    @property
    def cell(self) -> CellModel:
        """The cell model the rig drives."""
        return self.bench_cell.cell

    def now_s(self) -> float:
        """Instrument (bench) time at the model's present state."""
        return self.bench_cell.origin_s + self.cell.time_s

    async def apply(self, command: Command) -> float:
        """Set the source; its readings start now."""
        self._commit()
        self.command = command
        self._source = self._source_for(command)
        self._step_time_s = command.elapsed_s
        self._charge_base_ah = command.charge_ah - self._net_ah()
        self._fresh = True
        return self.now_s()

    async def read(self) -> Block:
        """The next block: the rest of the step, or up to the next cut (see the module)."""
        self._commit()
        start_bench = self.now_s()
        step_time = self._step_time_s
        interval = self.command.sample_interval_s if self.command.sample_interval_s > 0 else 1.0
        span = min(self.max_block_s, self.max_block_readings * interval,
                   self._environment(start_bench))
        if self._stepped_without_cut_off():
            span = min(span, self.max_voltage_block_s)
        if not math.isfinite(self._last_voltage_v):
            self._last_voltage_v = self.cell.ocv_v() + sum(self.cell.state.rc_v)
        event_s, event = self._closed_form_event(step_time)
        end = min(span, self._expected_s(), event_s)
        habit = self._habit_key() if self._fresh else None
        if habit is not None and habit in self._habits:
            # the same current to the same cut-off took this long last time: look a little
            # further ahead than that, not to the generous bound (a miss just continues)
            end = min(end, 1.02 * self._habits[habit] + 3.0 * interval)
        offsets = grid_offsets(step_time, interval, end, self._fresh)
        source, start = self._source, self.cell.state
        leg, ended = self._run_leg(offsets, None if habit is None else self._habits.get(habit))
        if habit is not None and leg.ended_by is not None:
            self._habits[habit] = float(leg.offsets_s[-1])
        if ended is None and leg.ended_by is None and event is not None and math.isclose(
                float(leg.offsets_s[-1]), event_s, rel_tol=0.0, abs_tol=1e-9):
            ended = event
        self._pending = _Pending(start, source, step_time, start_bench, leg)
        self._fresh = False
        self._step_time_s = step_time + float(leg.offsets_s[-1])
        self._last_voltage_v = float(leg.voltage_v[-1])
        complied = leg.ended_by is not None and leg.ended_by.condition is None
        if complied:
            assert source.compliance_v is not None
            self._source = Source(Phase.VOLTAGE, source.compliance_v)
        done = ended is not None or (leg.ended_by is not None and not complied)
        return self._block(start_bench, leg, done)

    async def end_step(self, at_time_s: float) -> None:
        """Rewind the model to the reading at ``at_time_s`` of the last block."""
        pending = self._pending
        if pending is None:
            return
        times = pending.start_bench_s + pending.leg.offsets_s
        index = int(np.argmin(np.abs(times - at_time_s)))
        if index == times.shape[0] - 1 and pending.leg.states is None and (
                self._source.phase is pending.source.phase):
            self._pending = None
            return  # the model is already there
        offset = float(pending.leg.offsets_s[index])
        self.cell.restore(pending.start)
        self._source = pending.source
        if pending.leg.states is not None:
            self.cell.restore(pending.leg.states[index])
        else:
            move_model(self.cell, pending.source, offset)
        self._step_time_s = pending.step_time_s + offset
        self._last_voltage_v = float(pending.leg.voltage_v[index])
        self._pending = None

    async def safe(self) -> None:
        """Output off: the cell rests at open circuit."""
        self._commit()
        self.command = Command(Mode.OFF)
        self._source = Source(Phase.REST)

    async def set_environment(self, temperature_c: float | None, pressure_pa: float | None
                              ) -> None:
        """New chamber temperature and/or stack pressure (a pneumatic jig only)."""
        self._commit()
        now = self.now_s()
        if temperature_c is not None:
            self.bench_cell.chamber.set(temperature_c, now)
        jig = self.bench_cell.jig
        if pressure_pa is not None:
            if jig is None or not jig.pneumatic:
                raise InstrumentReported("this bench cell's jig cannot set a pressure",
                                         instrument="model-rig", address="in-process",
                                         command=f"set pressure {pressure_pa:g} Pa")
            jig.set_pressure(pressure_pa, now)

    async def eis(self, step: EisStep) -> Spectrum:
        """The model's impedance on the step's frequencies, as it is at the sweep's start; the
        cell goes on (at open circuit, or at the step's DC level) for the sweep's duration."""
        self._commit()
        frequency = eis_frequencies(step)
        z = self.cell.impedance(frequency)
        duration = sweep_duration_s(frequency)
        if step.dc_voltage_v is not None:
            source = Source(Phase.VOLTAGE, step.dc_voltage_v)
        else:
            source = Source(Phase.CURRENT if step.dc_current_a else Phase.REST,
                            step.dc_current_a or 0.0)
        self.bench_cell.apply_environment(self.now_s())
        move_model(self.cell, source, duration)
        self._commit()
        self._last_voltage_v = math.nan
        return Spectrum(frequency, z.real.astype(float), z.imag.astype(float), self.now_s(),
                        {"duration_s": duration, "amplitude": step.amplitude})

    # -- machinery ------------------------------------------------------------------------------
    def _commit(self) -> None:
        """Keep the last block: move the bench clock to the model."""
        self._pending = None
        clock = self.bench_cell.clock
        gap = self.now_s() - clock.now_s()
        if gap > 0:
            clock.advance(gap)
        elif gap < 0:  # the clock moved on without the rig: the cell rested meanwhile
            self.bench_cell.apply_environment(self.now_s())
            move_model(self.cell, Source(Phase.REST), -gap)

    def _net_ah(self) -> float:
        state = self.cell.state
        return state.charge_in_ah - state.charge_out_ah

    def _source_for(self, command: Command) -> Source:
        mode = command.mode
        if mode is Mode.CURRENT:
            return Source(Phase.CURRENT, command.current_a, command.voltage_limit_v)
        if mode is Mode.VOLTAGE:
            return self._voltage_source(command.voltage_v, command.current_limit_a)
        if mode is Mode.POWER:
            return Source(Phase.POWER, command.power_w, command.voltage_limit_v)
        if mode is Mode.RESISTANCE:
            return Source(Phase.LOAD, command.resistance_ohm)
        return Source(Phase.REST)

    def _voltage_source(self, voltage_v: float, limit_a: float | None) -> Source:
        """Constant voltage; with a current limit that the first instant would exceed, the
        limit current first, holding the voltage once it gets there."""
        if limit_a is None:
            return Source(Phase.VOLTAGE, voltage_v)
        model = self.cell
        inner_v = model.ocv_v() + sum(model.state.rc_v)
        wanted_a = (voltage_v - inner_v) / model.circuit().series_ohm
        if abs(wanted_a) <= abs(limit_a):
            return Source(Phase.VOLTAGE, voltage_v)
        return Source(Phase.CURRENT, math.copysign(abs(limit_a), wanted_a), voltage_v)

    def _environment(self, now_s: float) -> float:
        """Give the cell its environment now; the longest block it stays valid for."""
        bench = self.bench_cell
        if bench.apply_environment(now_s, now_s + self.max_piece_s, swell=False):
            return self.max_piece_s
        if bench.jig is not None and not bench.jig.pneumatic:
            return self.bolted_piece_s
        return math.inf

    def _stepped_without_cut_off(self) -> bool:
        """Whether the source is one the model integrates step by step (not in closed form)
        and no condition of the step can be located ahead (a CV step's current cut-off can)."""
        phase = self._source.phase
        if phase in (Phase.CURRENT, Phase.REST):
            return False
        return not (phase is Phase.VOLTAGE and any(
            c.quantity is Quantity.CURRENT and c.operator is Operator.AT_MOST
            for c in self.command.until))

    def _habit_key(self) -> tuple[float, tuple[tuple[float, float], ...]] | None:
        if self._source.phase is not Phase.CURRENT or self._source.value == 0:
            return None
        return self._source.value, tuple((t.voltage_v, t.direction) for t in self._targets())

    def _expected_s(self) -> float:
        """A generous bound on how long a constant current can run before the cell reaches
        an extreme (so the grid does not reach far past the cut-off); a leg that ends there
        without a cut simply continues in the next block."""
        source = self._source
        if source.phase is not Phase.CURRENT or source.value == 0:
            return math.inf
        state, capacity = self.cell.state, self.cell.params.capacity_ah
        if source.value < 0:
            charge = state.anode_ah + 0.02 * capacity
        else:
            charge = max(1.25 * capacity - state.anode_ah, 0.05 * capacity)
        return 1.05 * charge * 3600.0 / abs(source.value) + 600.0

    def _closed_form_event(self, step_time_s: float) -> tuple[float, Condition | None]:
        """The first time or charge condition, in closed form (offset from now)."""
        best, found = math.inf, None
        charge_now = self._charge_base_ah + self._net_ah()
        current = self._source.value if self._source.phase is Phase.CURRENT else 0.0
        for condition in self.command.until:
            if condition.quantity is Quantity.TIME:
                offset = time_end_s(condition, step_time_s)
            elif condition.quantity is Quantity.CHARGE:
                offset = charge_end_s(condition, charge_now, current)
            else:
                continue
            if offset < best:
                best, found = offset, condition
        return best, found

    def _targets(self) -> list[VoltageTarget]:
        source = self._source
        targets = [VoltageTarget(c.value, 1.0 if c.operator is Operator.AT_LEAST else -1.0, c)
                   for c in self.command.until if c.quantity is Quantity.VOLTAGE]
        if source.compliance_v is not None and source.value != 0:
            targets.append(VoltageTarget(source.compliance_v,
                                         math.copysign(1.0, source.value), None))
        return targets

    def _run_leg(self, offsets: FloatArray, expected_s: float | None
                 ) -> tuple[Leg, Condition | None]:
        source, model = self._source, self.cell
        if source.phase is Phase.VOLTAGE:
            floors = [(c.value, c) for c in self.command.until
                      if c.quantity is Quantity.CURRENT and c.operator is Operator.AT_MOST]
            floor = min(floors, key=lambda item: -item[0]) if floors else None
            return voltage_leg(model, source.value, offsets, floor)
        if source.phase in (Phase.POWER, Phase.LOAD):
            return regulated_leg(model, source, offsets, self._fresh,
                                 self._last_voltage_v, self.cell.state.current_a), None
        current = source.value if source.phase is Phase.CURRENT else 0.0
        return current_leg(model, current, offsets, self._targets(), expected_s), None

    def _block(self, start_bench_s: float, leg: Leg, done: bool) -> Block:
        times = start_bench_s + leg.offsets_s
        bench = self.bench_cell
        temperature = bench.chamber.measure(times)
        pressure = None
        if bench.jig is not None:
            pressure = bench.jig.measure_pressure(times, leg.swell_m)
        return Block(times, leg.voltage_v, leg.current_a, temperature, pressure, done=done)


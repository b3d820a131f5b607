"""The bench: cells in jigs inside chambers, on one clock that wire emulators read time from.

A :class:`BenchCell` is one cell model with its jig (or none) in a chamber, driven by a source
that behaves like a source-measure unit: constant current with a voltage limit, constant voltage
with a current limit, or open circuit. It is advanced lazily: nothing moves until someone looks
(:meth:`BenchCell.measure`, :meth:`BenchCell.impedance`) or changes the source, and then the cell
model, chamber and jig are brought to ``clock.now_s()`` in one go, in closed form where the model
allows it.

Compliance. A current source with a voltage limit drives its current until the terminal voltage
reaches the limit (rising for a charge, falling for a discharge) and from then on holds the
limit, the current falling as the cell follows: a source-measure unit in compliance, and a
cycler's CC-CV step. A voltage source with a current limit drives at most the limit current,
towards its setpoint, until the voltage gets there, then holds it. The crossing is found by the
model's root finding, so the switch happens at the exact time whatever the polling rate.

Environment. The cell sees the chamber's true air temperature and the jig's true stack pressure
(a pneumatic jig's force follows its regulator; a bolted jig's follows the cell's swell). While
either is moving the advance is cut into pieces of at most :attr:`BenchCell.max_piece_s`, the
cell's conditions updated between them; a steady environment is one piece.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from cellrig.simulators.cell_circuit import ComplexArray
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import CellParameters, load_builtin_cell
from cellrig.simulators.chamber import Chamber
from cellrig.simulators.jig import Jig

FloatArray = npt.NDArray[np.float64]

#: Environment changes below these are "steady" (one piece per advance).
STEADY_TEMPERATURE_K = 0.01
STEADY_PRESSURE_PA = 1.0e3


class BenchClock:
    """The bench's time in seconds: virtual (moves only when advanced, as fast as the code
    runs) or scaled (``scale`` × real time since the clock was made)."""

    def __init__(self, scale: float | None = None) -> None:
        if scale is not None and not scale > 0:
            raise ValueError(f"a scaled clock needs a positive scale, not {scale}")
        self.scale = scale
        self._virtual_s = 0.0
        self._origin = time.monotonic()

    @property
    def virtual(self) -> bool:
        """Whether time moves only when advanced."""
        return self.scale is None

    def now_s(self) -> float:
        """Seconds of bench time."""
        if self.scale is None:
            return self._virtual_s
        return (time.monotonic() - self._origin) * self.scale

    def advance(self, duration_s: float) -> None:
        """Move a virtual clock forward (a scaled clock follows real time and refuses)."""
        if self.scale is not None:
            raise RuntimeError("a scaled clock follows real time and cannot be advanced")
        if duration_s < 0:
            raise ValueError(f"time cannot go back ({duration_s} s)")
        self._virtual_s += duration_s

    async def sleep(self, duration_s: float) -> None:
        """Let ``duration_s`` of bench time pass: at once on a virtual clock (yielding to the
        event loop), by a real sleep of ``duration_s / scale`` on a scaled one."""
        if self.scale is None:
            self.advance(max(duration_s, 0.0))
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(max(duration_s, 0.0) / self.scale)


@dataclass(frozen=True)
class BenchReading:
    """What the sensors around a cell read at one time (NaN where there is no sensor)."""

    time_s: float
    voltage_v: float
    current_a: float
    cell_temperature_c: float
    chamber_temperature_c: float
    pressure_pa: float
    force_n: float
    swell_m: float


class _Phase(Enum):
    """What the source is doing right now."""

    OPEN = "open circuit"
    CURRENT = "constant current"
    VOLTAGE = "constant voltage"


@dataclass
class BenchCell:
    """One cell with its jig (or none) in a chamber, advanced lazily to ``clock.now_s()``.

    The cell model's own clock starts at the bench time the cell was put on the bench
    (``origin_s``) and runs with it.
    """

    cell: CellModel
    chamber: Chamber
    jig: Jig | None
    clock: BenchClock
    max_piece_s: float = 60.0
    origin_s: float = field(init=False)
    _phase: _Phase = field(default=_Phase.OPEN, init=False)
    _current_a: float = field(default=0.0, init=False)
    _voltage_v: float | None = field(default=None, init=False)
    _holding_voltage: bool = field(default=False, init=False)
    _last: BenchReading | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.origin_s = self.clock.now_s() - self.cell.time_s
        self.apply_environment(self.clock.now_s())

    # -- the source ---------------------------------------------------------------------------
    def source_current(self, current_a: float, voltage_limit_v: float | None = None) -> None:
        """Drive a constant current (positive charges); with a limit, hold the limit once the
        voltage reaches it."""
        self._catch_up()
        self._phase, self._current_a, self._voltage_v = _Phase.CURRENT, current_a, voltage_limit_v
        self._holding_voltage = False
        self._last = None

    def source_voltage(self, voltage_v: float, current_limit_a: float | None = None) -> None:
        """Hold a terminal voltage; with a limit, drive at most that current towards it."""
        self._catch_up()
        self._last = None
        self._voltage_v = voltage_v
        self._holding_voltage = True
        if current_limit_a is None:
            self._phase = _Phase.VOLTAGE
            return
        state = self.cell.state
        resting_v = self.cell.ocv_v() + sum(state.rc_v)
        self._phase = _Phase.CURRENT
        self._current_a = math.copysign(abs(current_limit_a), voltage_v - resting_v)

    def open_circuit(self) -> None:
        """Output off, high impedance: the cell rests."""
        self._catch_up()
        self._phase, self._current_a, self._voltage_v = _Phase.OPEN, 0.0, None
        self._holding_voltage = False
        self._last = None

    @property
    def in_compliance(self) -> bool:
        """Whether the source is held by its limit: a current source at its voltage limit, or
        a voltage source driving its limit current. Brings the model to now first."""
        self._catch_up()
        if self._holding_voltage:
            return self._phase is _Phase.CURRENT
        return self._phase is _Phase.VOLTAGE

    # -- looking ------------------------------------------------------------------------------
    def measure(self) -> BenchReading:
        """Advance cell, chamber and jig to now and return what the sensors see."""
        self._catch_up()
        if self._last is None or self._last.time_s != self.clock.now_s():
            self._last = self._read()
        return self._last

    def impedance(self, frequency_hz: FloatArray) -> ComplexArray:
        """The cell's small-signal impedance (ohms) as it is now."""
        self._catch_up()
        return self.cell.impedance(frequency_hz)

    # -- machinery ----------------------------------------------------------------------------
    def apply_environment(self, bench_s: float, until_s: float | None = None,
                          swell: bool = True) -> bool:
        """Give the cell the chamber's air temperature and the jig's stack pressure at
        ``bench_s`` (until the next call); returns whether either changes by ``until_s`` by
        more than the steady thresholds (``swell``: a bolted jig, whose force follows the
        cell's thickness, always counts as moving)."""
        times = np.array([bench_s, bench_s if until_s is None else until_s])
        temperatures = self.chamber.true_temperature(times)
        moving = abs(float(temperatures[1] - temperatures[0])) > STEADY_TEMPERATURE_K
        pressure = None
        if self.jig is not None:
            thickness = self.cell.thickness_change_m() if not self.jig.pneumatic else 0.0
            pressures = self.jig.stack_pressure(times, np.full(2, thickness))
            pressure = float(pressures[0])
            moving = moving or (swell if not self.jig.pneumatic
                                else abs(float(pressures[1] - pressures[0])) > STEADY_PRESSURE_PA)
        self.cell.set_conditions(temperature_c=float(temperatures[0]), pressure_pa=pressure)
        return moving

    def _catch_up(self) -> None:
        """Bring the model to the clock."""
        now = self.clock.now_s()
        start = self.cell.time_s + self.origin_s
        if now <= start:
            return
        low = start
        while low < now:
            high = now
            if self.apply_environment(low, now):
                high = min(now, low + self.max_piece_s)
            self._run(high - low)
            low = high
        self.chamber.advance(now)

    def _run(self, duration_s: float) -> None:
        """Run the source for ``duration_s``, switching to the voltage limit where reached."""
        if self._phase is _Phase.OPEN:
            self.cell.run_rest([duration_s])
            return
        if self._phase is _Phase.CURRENT:
            limit = self._voltage_v
            reach = (None if limit is None
                     else self.cell.time_to_voltage(self._current_a, limit, duration_s))
            if reach is None:
                self.cell.run_current(self._current_a, [duration_s])
                return
            if reach > 0:
                self.cell.run_current(self._current_a, [reach])
            self._phase = _Phase.VOLTAGE
            duration_s -= reach
        assert self._voltage_v is not None
        self.cell.run_voltage(self._voltage_v, [max(duration_s, 0.0)])

    def _read(self) -> BenchReading:
        """The sensors at the model's present time (a zero-length segment, nothing moves)."""
        if self._phase is _Phase.OPEN:
            self.cell.run_rest([0.0])
        elif self._phase is _Phase.CURRENT:
            self.cell.run_current(self._current_a, [0.0])
        else:
            assert self._voltage_v is not None
            self.cell.run_voltage(self._voltage_v, [0.0])
        trace = self.cell.last_trace
        assert trace is not None
        now = self.clock.now_s()
        at = np.array([now])
        swell = float(trace.thickness_change_m[-1])
        pressure = force = math.nan
        if self.jig is not None:
            force = float(self.jig.measure_force(at, np.array([swell]))[0])
            pressure = force / self.jig.cell_area_m2
        return BenchReading(
            time_s=now, voltage_v=float(trace.voltage_v[-1]), current_a=float(trace.current_a[-1]),
            cell_temperature_c=float(trace.temperature_c[-1]),
            chamber_temperature_c=float(self.chamber.measure(at)[0]),
            pressure_pa=pressure, force_n=force, swell_m=swell)


def pneumatic_jig(params: CellParameters, stack_pressure_pa: float, at_s: float = 0.0) -> Jig:
    """A pneumatic jig for a cell, its regulator already settled at ``stack_pressure_pa``."""
    regulator_pa = Jig(cell_area_m2=params.area_m2).regulator_for(stack_pressure_pa)
    return Jig(pneumatic=True, cell_area_m2=params.area_m2, regulator_setpoint_pa=regulator_pa,
               _regulator_start_pa=regulator_pa, _start_s=at_s)


def bolted_jig(params: CellParameters, preload_pa: float,
               stiffness_n_per_m: float = 5e8) -> Jig:
    """A bolted jig for a cell, tightened to ``preload_pa`` on the as-built stack."""
    return Jig(pneumatic=False, cell_area_m2=params.area_m2, stiffness_n_per_m=stiffness_n_per_m,
               preload_n=preload_pa * params.area_m2)


@dataclass
class Bench:
    """Chambers and cells (each in a chamber, with its jig) on one clock."""

    clock: BenchClock = field(default_factory=BenchClock)
    chambers: dict[str, Chamber] = field(default_factory=dict)
    cells: dict[str, BenchCell] = field(default_factory=dict)

    def add_chamber(self, name: str, chamber: Chamber | None = None) -> Chamber:
        """Put a chamber on the bench (a new one at room temperature by default)."""
        if name in self.chambers:
            raise ValueError(f"the bench already has a chamber {name!r}")
        made = chamber if chamber is not None else Chamber(time_s=self.clock.now_s())
        self.chambers[name] = made
        return made

    def add_cell(self, name: str, chamber: str, cell: CellModel | None = None,
                 jig: Jig | None = None) -> BenchCell:
        """Put a cell (the default cell by default) with its jig into a chamber."""
        if name in self.cells:
            raise ValueError(f"the bench already has a cell {name!r}")
        if chamber not in self.chambers:
            raise KeyError(f"no chamber {chamber!r} on the bench; there are "
                           f"{', '.join(self.chambers) or 'none'}")
        room = self.chambers[chamber]
        model = cell if cell is not None else CellModel(
            load_builtin_cell(), temperature_c=room.temperature_c)
        placed = BenchCell(model, room, jig, self.clock)
        self.cells[name] = placed
        return placed

    @classmethod
    def default(cls, clock: BenchClock | None = None) -> Bench:
        """One chamber ``chamber-1`` at room temperature, one cell ``cell-1`` (the default
        0.6 Ah pouch) in a pneumatic jig holding 2 MPa."""
        bench = cls(clock if clock is not None else BenchClock())
        bench.add_chamber("chamber-1")
        params = load_builtin_cell()
        jig = pneumatic_jig(params, 2.0e6, bench.clock.now_s())
        bench.add_cell("cell-1", "chamber-1", CellModel(params, temperature_c=25.0), jig)
        return bench

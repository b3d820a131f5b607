"""One block of readings through the engine: terminations, limits, accounting, recording.

Everything here is vectorised over the block. The block is cut at the first reading where a
condition or a limit holds (a limit wins a tie); readings after it are discarded. Integrated
charge and energy, cycle figures, samples, warnings and the limits' running state are then
computed on what is kept. A block of one reading (a host-polled instrument) takes the same
path with Python floats instead (``single.py``): same arithmetic, same results, less overhead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from cellrig.protocols.clock import Clock
from cellrig.protocols.program import Condition, Limit, Limits, Quantity, Recording
from cellrig.protocols.rig import Block, FloatArray

from .blocks import (
    DVDT_WINDOW_S,
    Signals,
    added_up,
    first_condition,
    grid_sizes,
    hysteresis,
    integrate,
    record_mask,
    run_trip,
    running,
)
from .output import Event, EventKind, Sink, StepType
from .samples import emit_block
from .state import EngineState, StepProgress

#: A warning re-arms once the reading is back inside its warning level by this share of the
#: limit's span (the span of the window, or the maximum itself).
WARNING_HYSTERESIS = 0.01


class EndKind(StrEnum):
    """Why processing stopped inside a block."""

    CONDITION = "condition"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class BlockResult:
    """How a block ended: not at all (``kind`` None), at a condition, or at a limit."""

    kind: EndKind | None
    index: int
    time_s: float
    condition: Condition | None = None
    limit: str = ""
    value: float = math.nan


@dataclass
class Command:
    """The running command of a step, as the processor needs it."""

    applied_at_s: float
    elapsed_before_s: float
    conditions: tuple[Condition, ...]
    step_type: StepType | None
    cv: bool
    record: Recording
    fresh: bool = True
    #: Instrument time of the last reading processed under this command.
    last_time_s: float = 0.0
    #: Instrument time of the last reading of the block as the rig handed it over (before a
    #: wait for stability cut it): the readings' ages, for their Unix times, count from there.
    block_end_s: float | None = None
    watches_dvdt: bool = field(init=False)
    grid: tuple[float | None, float | None, float | None] = field(init=False)

    def __post_init__(self) -> None:
        self.watches_dvdt = any(c.quantity is Quantity.VOLTAGE_RATE for c in self.conditions)
        self.grid = grid_sizes(self.record)


@dataclass
class Timebase:
    """Instrument time to test time: ``test_base_s + (t - origin_s)``."""

    test_base_s: float
    origin_s: float | None = None

    def test_time(self, time_s: FloatArray) -> FloatArray:
        """Test time of readings."""
        origin = self.origin_s if self.origin_s is not None else float(time_s[0])
        return self.test_base_s + (time_s - origin)

    def at(self, time_s: float) -> float:
        """Test time of one instrument time (the base itself before the origin is known)."""
        return self.test_base_s + (time_s - (self.origin_s if self.origin_s is not None
                                             else time_s))


@dataclass(frozen=True, slots=True)
class Guard:
    """One safety limit: what it watches (a condition quantity, as a magnitude where the
    limit is on one) and where its warning re-arms."""

    name: str
    limit: Limit
    quantity: Quantity
    rearm_low: float | None
    rearm_high: float | None

    @property
    def warns(self) -> bool:
        """Whether the limit has warning levels."""
        return self.limit.warn_low is not None or self.limit.warn_high is not None


def guards_of(limits: Limits) -> tuple[Guard, ...]:
    """The limits of a program in checking order (the first listed wins a tie)."""
    found = []
    for name, limit, quantity in (
        ("voltage", limits.voltage_v, Quantity.VOLTAGE),
        ("current", limits.current_a, Quantity.CURRENT),
        ("temperature", limits.temperature_c, Quantity.TEMPERATURE),
        ("pressure", limits.pressure_pa, Quantity.PRESSURE),
        ("charge per step", limits.charge_per_step_ah, Quantity.CHARGE),
    ):
        if limit is None:
            continue
        span = ((limit.high if limit.high is not None else 0.0)
                - (limit.low if limit.low is not None else 0.0))
        margin = abs(span) * WARNING_HYSTERESIS
        found.append(Guard(
            name, limit, quantity,
            None if limit.warn_low is None else limit.warn_low + margin,
            None if limit.warn_high is None else limit.warn_high - margin,
        ))
    return tuple(found)


def outside(values: FloatArray, low: float | None, high: float | None) -> np.ndarray:
    """Where values lie below ``low`` or above ``high`` (NaN never does)."""
    if low is not None and high is not None:
        return (values < low) | (values > high)
    if low is not None:
        return values < low
    if high is not None:
        return values > high
    return np.zeros(values.shape[0], dtype=bool)


def within(extremes: tuple[float, float], low: float | None, high: float | None) -> bool:
    """Whether a block whose least and greatest values are ``extremes`` lies entirely in the
    window (False if it holds NaN: the reading-by-reading check decides then)."""
    least, most = extremes
    return (low is None or least >= low) and (high is None or most <= high)


class BlockProcessor:
    """Processes blocks for one engine; holds references, keeps no state of its own."""

    def __init__(self, state: EngineState, limits: Limits, sink: Sink, clock: Clock,
                 timebase: Timebase) -> None:
        self.state = state
        self.limits = limits
        self.guards = guards_of(limits)
        self.sink = sink
        self.clock = clock
        self.timebase = timebase

    def previous(self, progress: StepProgress, command: Command, current_a: float,
                 voltage_v: float) -> tuple[float, float, float]:
        """Where the first segment of a block starts: the last reading, or for the first
        readings after a command, the moment it was applied (the new setting has held since
        then, so the gap before the first reading integrates at its values)."""
        if command.fresh or progress.last_current_a is None or progress.last_voltage_v is None:
            command.fresh = False
            return command.applied_at_s, current_a, voltage_v
        return command.last_time_s, progress.last_current_a, progress.last_voltage_v

    def process(self, block: Block, step_id: int, progress: StepProgress, command: Command,
                force_record_end: bool) -> BlockResult:
        """Process ``block``; returns where (and why) it ended, if it did."""
        if len(block) == 1:
            from .single import process_one

            return process_one(self, block, step_id, progress, command, force_record_end)
        t = block.time_s
        voltage, current = block.voltage_v, block.current_a
        step_time = command.elapsed_before_s + (t - command.applied_at_s)
        test_time = self.timebase.test_time(t)
        previous = self.previous(progress, command, float(current[0]), float(voltage[0]))
        amounts = integrate(t, current, voltage, previous)
        totals = progress.totals
        step_sums = running((totals.charge_ah, totals.discharge_ah, totals.charge_wh,
                             totals.discharge_wh), amounts)
        history = None
        if command.watches_dvdt:
            history = (np.asarray(progress.history_time_s), np.asarray(progress.history_voltage_v))
        signals = Signals(step_time, voltage, current, step_sums[0] - step_sums[1],
                          step_sums[2] - step_sums[3], block.temperature_c, block.pressure_pa,
                          history)
        cond_index, condition = first_condition(command.conditions, signals)
        extremes = {}
        for guard in self.guards:
            values = signals.values(guard.quantity)
            if values is not None:
                extremes[guard.name] = (float(values.min()), float(values.max()))
        limit_index, limit_name, limit_value, runs = self._limits(test_time, signals, extremes)
        result = BlockResult(None, len(block) - 1, float(t[-1]))
        if limit_index >= 0 and (cond_index < 0 or limit_index <= cond_index):
            result = BlockResult(EndKind.LIMIT, limit_index, float(t[limit_index]),
                                 limit=limit_name, value=limit_value)
        elif cond_index >= 0:
            result = BlockResult(EndKind.CONDITION, cond_index, float(t[cond_index]), condition)
        last = result.index
        keep = slice(0, last + 1)
        for name, run in runs.items():
            self.state.limit_since[name] = (
                float(run[1][last]) if run is not None and bool(run[0][last]) else None)
        cells = None if progress.record_cells is None else (
            tuple(math.nan if c is None else c for c in progress.record_cells))
        mask, new_cells = record_mask(step_time[keep], voltage[keep], current[keep],
                                      command.grid, cells)  # type: ignore[arg-type]
        progress.record_cells = list(new_cells)
        if result.kind is not None or force_record_end:
            mask[-1] = True
        at = np.flatnonzero(mask)  # the stored readings (the kept readings are a prefix)
        if at.shape[0] == last + 1:
            # every kept reading is stored (a block on the recording grid): slices, not
            # index arrays, and the running sums are the plain cumulative sums
            added = np.cumsum(amounts[:, : last + 1], axis=1)
            sums = added[:, -1]
            emit_block(self, step_id, command, block, step_time, test_time,
                       slice(0, last + 1), added, step_sums)
        else:
            added, sums = added_up(amounts, last + 1, at)
            if at.shape[0]:
                emit_block(self, step_id, command, block, step_time, test_time, at, added,
                           step_sums)
        self._account(progress, command, block, sums, step_sums[:, last], last)
        self._warnings(test_time[keep], signals, extremes, last, step_id)
        progress.elapsed_s = float(step_time[last])
        progress.last_current_a = float(current[last])
        progress.last_voltage_v = float(voltage[last])
        command.last_time_s = float(t[last])
        if command.watches_dvdt:
            keep_history(progress, step_time[keep].tolist(), voltage[keep].tolist())
        self.state.test_time_s = float(test_time[last])
        return result

    def _limits(self, test_time: FloatArray, signals: Signals,
                extremes: dict[str, tuple[float, float]]
                ) -> tuple[int, str, float, dict[str, tuple[np.ndarray, FloatArray] | None]]:
        first, name_found, value_found = -1, "", math.nan
        runs: dict[str, tuple[np.ndarray, FloatArray] | None] = {}
        for guard in self.guards:
            values = signals.values(guard.quantity)
            if values is None:
                continue
            limit = guard.limit
            if within(extremes[guard.name], limit.low, limit.high):
                runs[guard.name] = None  # no reading outside: no breach, none going on
                continue
            mask = outside(values, limit.low, limit.high)
            index, run_start = run_trip(mask, test_time, self.state.limit_since.get(guard.name),
                                        limit.delay_s)
            runs[guard.name] = (mask, run_start)
            if index >= 0 and (first < 0 or index < first):
                first, name_found, value_found = index, guard.name, float(values[index])
        return first, name_found, value_found, runs

    def _account(self, progress: StepProgress, command: Command, block: Block,
                 added: FloatArray, step_totals: FloatArray, last: int) -> None:
        totals = progress.totals
        (totals.charge_ah, totals.discharge_ah, totals.charge_wh,
         totals.discharge_wh) = step_totals.tolist()
        sums = added.tolist()
        self.state.test.add(*sums)
        cycle = self.state.cycle
        cycle.totals.add(*sums)
        if command.cv:
            cycle.cv_charge_ah += sums[0]
        for values, low, high in ((block.temperature_c, "min_temperature_c",
                                   "max_temperature_c"),
                                  (block.pressure_pa, "min_pressure_pa", "max_pressure_pa")):
            if values is None:
                continue
            kept = values[: last + 1]
            least, most = float(kept.min()), float(kept.max())
            if not (math.isfinite(least) and math.isfinite(most)):
                kept = kept[np.isfinite(kept)]
                if not kept.shape[0]:
                    continue
                least, most = float(kept.min()), float(kept.max())
            setattr(cycle, low, min(getattr(cycle, low), least))
            setattr(cycle, high, max(getattr(cycle, high), most))

    def _warnings(self, test_time: FloatArray, signals: Signals,
                  extremes: dict[str, tuple[float, float]], last: int, step_id: int) -> None:
        found: list[tuple[int, int, str, float]] = []  # in time order, then limit order
        for order, guard in enumerate(self.guards):
            if not guard.warns:
                continue
            values = signals.values(guard.quantity)
            if values is None:
                continue
            limit = guard.limit
            warned = self.state.warned.get(guard.name, False)
            if within(extremes[guard.name], limit.warn_low, limit.warn_high) and (
                    not warned or within(extremes[guard.name], guard.rearm_low,
                                         guard.rearm_high)):
                self.state.warned[guard.name] = False  # nothing past the level; re-armed
                continue
            values = values[: last + 1]
            rising, on = hysteresis(outside(values, limit.warn_low, limit.warn_high),
                                    ~outside(values, guard.rearm_low, guard.rearm_high),
                                    self.state.warned.get(guard.name, False))
            self.state.warned[guard.name] = on
            found.extend((index, order, guard.name, float(values[index]))
                         for index in np.flatnonzero(rising).tolist())
        for index, _, name, value in sorted(found):
            self.warning_event(name, value, float(test_time[index]), step_id)

    def warning_event(self, name: str, value: float, test_time_s: float, step_id: int) -> None:
        """A limit's warning level was reached."""
        self.sink.event(Event(
            EventKind.WARNING, test_time_s, self.clock.unix_now(), self.state.cycle.number,
            self.state.step_count, step_id, f"{name} reached its warning level ({value:.6g})",
            {"limit": name, "value": value},
        ))


def keep_history(progress: StepProgress, step_time: list[float], voltage: list[float]) -> None:
    """Keep the readings a ``dvdt`` condition needs: the last two windows of the step."""
    times = progress.history_time_s + step_time
    volts = progress.history_voltage_v + voltage
    cutoff = times[-1] - 2 * DVDT_WINDOW_S
    start = 0
    if times[0] < cutoff:
        start = max(0, int(np.searchsorted(np.asarray(times), cutoff)) - 1)
    progress.history_time_s = times[start:]
    progress.history_voltage_v = volts[start:]

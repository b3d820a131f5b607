"""One block of readings through the engine: terminations, limits, accounting, recording.

Everything here is vectorised over the block. The block is cut at the first reading where a
condition or a limit holds (a limit wins a tie); readings after it are discarded. Integrated
charge and energy, cycle figures, samples and warnings are then computed on what is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from cellrig.protocols.clock import Clock
from cellrig.protocols.program import Condition, Limit, Limits, Recording
from cellrig.protocols.rig import Block, FloatArray

from .blocks import Signals, first_condition, integrate, record_mask, run_trip
from .output import COLUMNS, Event, EventKind, SampleBlock, Sink, StepType
from .state import EngineState, StepProgress

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


@dataclass
class Timebase:
    """Instrument time to test time: ``test_base_s + (t - origin_s)``."""

    test_base_s: float
    origin_s: float | None = None

    def test_time(self, time_s: FloatArray) -> FloatArray:
        """Test time of readings."""
        origin = self.origin_s if self.origin_s is not None else float(time_s[0])
        return self.test_base_s + (time_s - origin)


def _limit_arrays(limits: Limits, voltage: FloatArray, current: FloatArray,
                  temperature: FloatArray | None, pressure: FloatArray | None,
                  step_charge: FloatArray) -> list[tuple[str, Limit, FloatArray]]:
    found: list[tuple[str, Limit, FloatArray]] = []
    for name, limit, values in (
        ("voltage", limits.voltage_v, voltage), ("current", limits.current_a, np.abs(current)),
        ("temperature", limits.temperature_c, temperature),
        ("pressure", limits.pressure_pa, pressure),
        ("charge per step", limits.charge_per_step_ah, np.abs(step_charge)),
    ):
        if limit is not None and values is not None:
            found.append((name, limit, values))
    return found


def _outside(values: FloatArray, low: float | None, high: float | None) -> np.ndarray:
    mask = np.zeros(values.shape[0], dtype=bool)
    if low is not None:
        mask |= values < low
    if high is not None:
        mask |= values > high
    return mask


class BlockProcessor:
    """Processes blocks for one engine; holds references, keeps no state of its own."""

    def __init__(self, state: EngineState, limits: Limits, sink: Sink, clock: Clock,
                 timebase: Timebase) -> None:
        self.state = state
        self.limits = limits
        self.sink = sink
        self.clock = clock
        self.timebase = timebase

    def process(self, block: Block, step_id: int, progress: StepProgress, command: Command,
                force_record_end: bool) -> BlockResult:
        """Process ``block``; returns where (and why) it ended, if it did."""
        t = block.time_s
        voltage, current = block.voltage_v, block.current_a
        temperature, pressure = block.temperature_c, block.pressure_pa
        step_time = command.elapsed_before_s + (t - command.applied_at_s)
        if command.fresh or progress.last_current_a is None or progress.last_voltage_v is None:
            # The first readings after a command: the new setting has held since it was
            # applied, so the gap before the first reading integrates at its values.
            previous = (command.applied_at_s, float(current[0]), float(voltage[0]))
            command.fresh = False
        else:
            last_time = command.applied_at_s + (progress.elapsed_s - command.elapsed_before_s)
            previous = (last_time, progress.last_current_a, progress.last_voltage_v)
        q_chg, q_dis, e_chg, e_dis = integrate(t, current, voltage, previous)
        step_charge = progress.totals.net_ah + np.cumsum(q_chg - q_dis)
        step_energy = progress.totals.net_wh + np.cumsum(e_chg - e_dis)
        history = (np.asarray(progress.history_time_s), np.asarray(progress.history_voltage_v))
        signals = Signals(step_time, step_time, voltage, current, step_charge, step_energy,
                          temperature, pressure, history)
        cond_index, condition = first_condition(command.conditions, signals)
        limit_index, limit_name, limit_value = self._limits(
            t, voltage, current, temperature, pressure, step_charge)
        result = BlockResult(None, len(block) - 1, float(t[-1]))
        if limit_index >= 0 and (cond_index < 0 or limit_index <= cond_index):
            result = BlockResult(EndKind.LIMIT, limit_index, float(t[limit_index]),
                                 limit=limit_name, value=limit_value)
        elif cond_index >= 0:
            result = BlockResult(EndKind.CONDITION, cond_index, float(t[cond_index]), condition)
        keep = slice(0, result.index + 1)
        amounts = (q_chg[keep], q_dis[keep], e_chg[keep], e_dis[keep])
        self._account(progress, command, amounts, temperature, pressure, result.index)
        self._record(step_id, progress, command, block, step_time, keep, amounts,
                     result.kind is not None or force_record_end)
        self._warnings(t[keep], voltage[keep], current[keep],
                       None if temperature is None else temperature[keep],
                       None if pressure is None else pressure[keep], step_charge[keep], step_id)
        progress.elapsed_s = float(step_time[result.index])
        progress.last_current_a = float(current[result.index])
        progress.last_voltage_v = float(voltage[result.index])
        self._keep_history(progress, step_time[keep], voltage[keep])
        self.state.test_time_s = float(self.timebase.test_time(t[keep])[-1])
        return result

    def _limits(self, t: FloatArray, voltage: FloatArray, current: FloatArray,
                temperature: FloatArray | None, pressure: FloatArray | None,
                step_charge: FloatArray) -> tuple[int, str, float]:
        first, name_found, value_found = -1, "", math.nan
        for name, limit, values in _limit_arrays(self.limits, voltage, current, temperature,
                                                 pressure, step_charge):
            mask = _outside(values, limit.low, limit.high)
            index, since = run_trip(mask, t, self.state.limit_since.get(name), limit.delay_s)
            self.state.limit_since[name] = since
            if index >= 0 and (first < 0 or index < first):
                first, name_found, value_found = index, name, float(values[index])
        return first, name_found, value_found

    def _account(self, progress: StepProgress, command: Command,
                 amounts: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
                 temperature: FloatArray | None, pressure: FloatArray | None,
                 last: int) -> None:
        q_chg, q_dis, e_chg, e_dis = amounts
        sums = (float(q_chg.sum()), float(q_dis.sum()), float(e_chg.sum()), float(e_dis.sum()))
        progress.totals.add(*sums)
        self.state.test.add(*sums)
        cycle = self.state.cycle
        cycle.totals.add(*sums)
        if command.cv:
            cycle.cv_charge_ah += sums[0]
        if sums[1] > 0.0:
            cycle.discharged = True
        if temperature is not None:
            values = temperature[: last + 1]
            if np.isfinite(values).any():
                cycle.min_temperature_c = min(cycle.min_temperature_c, float(np.nanmin(values)))
                cycle.max_temperature_c = max(cycle.max_temperature_c, float(np.nanmax(values)))
        if pressure is not None:
            values = pressure[: last + 1]
            if np.isfinite(values).any():
                cycle.min_pressure_pa = min(cycle.min_pressure_pa, float(np.nanmin(values)))
                cycle.max_pressure_pa = max(cycle.max_pressure_pa, float(np.nanmax(values)))

    def _record(self, step_id: int, progress: StepProgress, command: Command, block: Block,
                step_time: FloatArray, keep: slice,
                amounts: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
                force_last: bool) -> None:
        block.time_s[keep]
        voltage, current = block.voltage_v[keep], block.current_a[keep]
        cells = None if progress.record_cells is None else (
            tuple(math.nan if c is None else c for c in progress.record_cells))
        mask, new_cells = record_mask(step_time[keep], voltage, current, command.record,
                                      cells)  # type: ignore[arg-type]
        progress.record_cells = list(new_cells)
        if force_last and mask.shape[0]:
            mask[-1] = True
        if not mask.any():
            return
        self._emit(step_id, progress, command, block, step_time[keep], keep, mask, amounts)

    def _emit(self, step_id: int, progress: StepProgress, command: Command, block: Block,
              step_time: FloatArray, keep: slice, mask: np.ndarray,
              amounts: tuple[FloatArray, FloatArray, FloatArray, FloatArray]) -> None:
        t = block.time_s[keep]
        voltage, current = block.voltage_v[keep], block.current_a[keep]
        count = int(mask.sum())
        test_time = self.timebase.test_time(t[mask])
        unix_now = self.clock.unix_now()
        unix = unix_now - (float(block.time_s[-1]) - t[mask])
        state = self.state
        # Running totals at each stored reading: the totals after the block, minus what the
        # readings after it in the block added.
        after = {name: np.concatenate((np.cumsum(values[::-1])[::-1][1:], [0.0]))[mask]
                 for name, values in zip(("qc", "qd", "ec", "ed"), amounts, strict=True)}
        columns: dict[str, np.ndarray] = {
            "Test Time / s": test_time,
            "Unix Time / s": unix,
            "Voltage / V": voltage[mask],
            "Current / A": current[mask],
            "Cycle Count / 1": np.full(count, state.cycle.number, dtype=np.int64),
            "Step Count / 1": np.full(count, state.step_count, dtype=np.int64),
            "Step ID": np.full(count, step_id, dtype=np.int64),
            "Step Type": self._step_types(command, current[mask]),
            "Step Time / s": step_time[mask],
        }
        for prefix, totals in (("", state.test), ("Cycle ", state.cycle.totals),
                               ("Step ", progress.totals)):
            columns[f"{prefix}Charging Capacity / Ah"] = totals.charge_ah - after["qc"]
            columns[f"{prefix}Discharging Capacity / Ah"] = totals.discharge_ah - after["qd"]
            columns[f"{prefix}Charging Energy / Wh"] = totals.charge_wh - after["ec"]
            columns[f"{prefix}Discharging Energy / Wh"] = totals.discharge_wh - after["ed"]
        nan = np.full(count, np.nan)
        columns["Ambient Temperature / degC"] = (
            nan if block.temperature_c is None else block.temperature_c[keep][mask])
        columns["Applied Pressure / Pa"] = (
            nan if block.pressure_pa is None else block.pressure_pa[keep][mask])
        self.sink.samples(SampleBlock({name: columns[name] for name in COLUMNS}))

    @staticmethod
    def _step_types(command: Command, current: FloatArray) -> np.ndarray:
        if command.step_type is not None:
            return np.full(current.shape[0], command.step_type.value, dtype=object)
        charging = current >= 0.0
        return np.where(charging, StepType.CV_CHG.value, StepType.CV_DCH.value).astype(object)

    def _warnings(self, t: FloatArray, voltage: FloatArray, current: FloatArray,
                  temperature: FloatArray | None, pressure: FloatArray | None,
                  step_charge: FloatArray, step_id: int) -> None:
        for name, limit, values in _limit_arrays(self.limits, voltage, current, temperature,
                                                 pressure, step_charge):
            if limit.warn_low is None and limit.warn_high is None:
                continue
            outside = _outside(values, limit.warn_low, limit.warn_high)
            warned = self.state.warned.get(name, False)
            if not warned and outside.any():
                index = int(outside.argmax())
                self.state.warned[name] = True
                self._warning_event(name, float(values[index]), float(t[index]), step_id)
                warned = True
                values, outside = values[index:], outside[index:]
            if warned:
                span = ((limit.high if limit.high is not None else 0.0)
                        - (limit.low if limit.low is not None else 0.0))
                margin = abs(span) * WARNING_HYSTERESIS
                low = None if limit.warn_low is None else limit.warn_low + margin
                high = None if limit.warn_high is None else limit.warn_high - margin
                back = ~_outside(values, low, high)
                if back.shape[0] and bool(back[-1]):
                    self.state.warned[name] = False

    def _warning_event(self, name: str, value: float, time_s: float, step_id: int) -> None:
        test_time = float(self.timebase.test_time(np.array([time_s]))[0])
        self.sink.event(Event(
            EventKind.WARNING, test_time, self.clock.unix_now(), self.state.cycle.number,
            self.state.step_count, step_id, f"{name} reached its warning level ({value:.6g})",
            {"limit": name, "value": value},
        ))

    @staticmethod
    def _keep_history(progress: StepProgress, step_time: FloatArray, voltage: FloatArray
                      ) -> None:
        from .blocks import DVDT_WINDOW_S

        times = progress.history_time_s + step_time.tolist()
        volts = progress.history_voltage_v + voltage.tolist()
        cutoff = times[-1] - 2 * DVDT_WINDOW_S if times else 0.0
        start = int(np.searchsorted(np.asarray(times), cutoff)) if times else 0
        start = max(0, start - 1)
        progress.history_time_s = times[start:]
        progress.history_voltage_v = volts[start:]

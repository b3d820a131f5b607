"""One reading through the engine, with Python floats: the host-polled case.

The same steps as ``BlockProcessor.process`` and the same arithmetic, operation for
operation, so a rig that hands over one reading at a time gets the same results as one that
hands over blocks (see ``blocks.py``); it skips numpy's per-call overhead, which dominates for
one reading.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cellrig.protocols.program import Operator, Quantity
from cellrig.protocols.rig import Block

from .blocks import SECONDS_PER_HOUR, dvdt
from .process import BlockResult, EndKind, keep_history
from .samples import AMOUNT_NAMES, emit_one

if TYPE_CHECKING:
    from .process import BlockProcessor, Command
    from .state import StepProgress


def split(y0: float, y1: float, dt: float) -> tuple[float, float]:
    """``blocks.split_trapezoid`` for one segment."""
    area = 0.5 * (y0 + y1) * dt
    if y0 * y1 >= 0.0:
        return max(area, 0.0), max(-area, 0.0)
    fraction = y0 / (y0 - y1)
    first = 0.5 * y0 * fraction * dt
    second = 0.5 * y1 * (1.0 - fraction) * dt
    if y0 > 0.0:
        return first, -second
    return second, -first


def _outside(value: float, low: float | None, high: float | None) -> bool:
    return (low is not None and value < low) or (high is not None and value > high)


def _cell(value: float, size: float) -> float:
    scaled = value / size
    return float(math.floor(scaled)) if math.isfinite(scaled) else scaled


def process_one(processor: BlockProcessor, block: Block, step_id: int,
                progress: StepProgress, command: Command, force_record_end: bool
                ) -> BlockResult:
    """Process a block of one reading; returns where (and why) it ended, if it did."""
    state = processor.state
    t = float(block.time_s[0])
    voltage, current = float(block.voltage_v[0]), float(block.current_a[0])
    temperature = None if block.temperature_c is None else float(block.temperature_c[0])
    pressure = None if block.pressure_pa is None else float(block.pressure_pa[0])
    step_time = command.elapsed_before_s + (t - command.applied_at_s)
    timebase = processor.timebase
    origin = timebase.origin_s if timebase.origin_s is not None else t
    test_time = timebase.test_base_s + (t - origin)
    t0, i0, v0 = processor.previous(progress, command, current, voltage)
    dt = t - t0
    q_chg, q_dis = split(i0, current, dt)
    e_chg, e_dis = split(i0 * v0, current * voltage, dt)
    amounts = (q_chg / SECONDS_PER_HOUR, q_dis / SECONDS_PER_HOUR, e_chg / SECONDS_PER_HOUR,
               e_dis / SECONDS_PER_HOUR)
    totals = progress.totals
    step_sums = (totals.charge_ah + amounts[0], totals.discharge_ah + amounts[1],
                 totals.charge_wh + amounts[2], totals.discharge_wh + amounts[3])
    values: dict[Quantity, float | None] = {
        Quantity.VOLTAGE: voltage, Quantity.CURRENT: abs(current), Quantity.TIME: step_time,
        Quantity.CHARGE: abs(step_sums[0] - step_sums[1]),
        Quantity.ENERGY: abs(step_sums[2] - step_sums[3]),
        Quantity.TEMPERATURE: temperature, Quantity.PRESSURE: pressure,
        Quantity.VOLTAGE_RATE: None,
    }
    if command.watches_dvdt:
        values[Quantity.VOLTAGE_RATE] = float(dvdt(
            (np.asarray(progress.history_time_s), np.asarray(progress.history_voltage_v)),
            np.array([step_time]), np.array([voltage]))[0])

    result = BlockResult(None, 0, t)
    for condition in command.conditions:
        value = values[condition.quantity]
        if value is None:
            continue
        if (value >= condition.value if condition.operator is Operator.AT_LEAST
                else value <= condition.value):
            result = BlockResult(EndKind.CONDITION, 0, t, condition)
            break
    tripped: BlockResult | None = None
    for guard in processor.guards:
        value = values[guard.quantity]
        if value is None:
            continue
        limit = guard.limit
        if _outside(value, limit.low, limit.high):
            since = state.limit_since.get(guard.name)
            start = since if since is not None else test_time
            state.limit_since[guard.name] = start
            if tripped is None and test_time - start >= limit.delay_s:
                tripped = BlockResult(EndKind.LIMIT, 0, t, limit=guard.name, value=value)
        else:
            state.limit_since[guard.name] = None
    if tripped is not None:
        result = tripped

    cells = progress.record_cells
    keep = cells is None or result.kind is not None or force_record_end
    new_cells = []
    for index, (value, size) in enumerate(zip((step_time, voltage, current), command.grid,
                                              strict=True)):
        if size is None:
            new_cells.append(0.0)
            continue
        cell = _cell(value, size)
        before = math.nan if cells is None or cells[index] is None else cells[index]
        keep = keep or cell != before
        new_cells.append(cell)
    progress.record_cells = new_cells

    cycle = state.cycle
    if keep:
        floats = {
            "Test Time / s": test_time, "Unix Time / s": processor.clock.unix_now(),
            "Voltage / V": voltage, "Current / A": current, "Step Time / s": step_time,
            "Ambient Temperature / degC": math.nan if temperature is None else temperature,
            "Applied Pressure / Pa": math.nan if pressure is None else pressure,
        }
        test_before = (state.test.charge_ah, state.test.discharge_ah, state.test.charge_wh,
                       state.test.discharge_wh)
        cycle_before = (cycle.totals.charge_ah, cycle.totals.discharge_ah,
                        cycle.totals.charge_wh, cycle.totals.discharge_wh)
        for index, name in enumerate(AMOUNT_NAMES):
            floats[name] = test_before[index] + amounts[index]
            floats[f"Cycle {name}"] = cycle_before[index] + amounts[index]
            floats[f"Step {name}"] = step_sums[index]
        emit_one(processor, step_id, command, floats)

    (totals.charge_ah, totals.discharge_ah, totals.charge_wh, totals.discharge_wh) = step_sums
    state.test.add(*amounts)
    cycle.totals.add(*amounts)
    if command.cv:
        cycle.cv_charge_ah += amounts[0]
    if temperature is not None and math.isfinite(temperature):
        cycle.min_temperature_c = min(cycle.min_temperature_c, temperature)
        cycle.max_temperature_c = max(cycle.max_temperature_c, temperature)
    if pressure is not None and math.isfinite(pressure):
        cycle.min_pressure_pa = min(cycle.min_pressure_pa, pressure)
        cycle.max_pressure_pa = max(cycle.max_pressure_pa, pressure)

    for guard in processor.guards:
        if not guard.warns:
            continue
        value = values[guard.quantity]
        if value is None:
            continue
        limit = guard.limit
        was = state.warned.get(guard.name, False)
        if _outside(value, limit.warn_low, limit.warn_high):
            state.warned[guard.name] = True
            if not was:
                processor.warning_event(guard.name, value, test_time, step_id)
        elif not _outside(value, guard.rearm_low, guard.rearm_high):
            state.warned[guard.name] = False

    progress.elapsed_s = step_time
    progress.last_current_a = current
    progress.last_voltage_v = voltage
    command.last_time_s = t
    if command.watches_dvdt:
        keep_history(progress, [step_time], [voltage])
    state.test_time_s = test_time
    return result

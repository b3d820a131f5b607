"""Vectorised operations on blocks of readings: integration, first crossings, decimation,
limit runs. Each works on a whole block at once and carries what it needs from the block
before, so a block of 1,000 readings costs about as much as a few blocks of one.
"""

from __future__ import annotations

import numpy as np

from cellrig.protocols.program import Condition, Operator, Quantity, Recording
from cellrig.protocols.rig import FloatArray

SECONDS_PER_HOUR = 3600.0
#: Window over which dV/dt is measured for ``dvdt`` conditions.
DVDT_WINDOW_S = 60.0


def first_true(mask: np.ndarray) -> int:
    """Index of the first True, or -1."""
    if mask.shape[0] == 0:
        return -1
    index = int(mask.argmax())
    return index if bool(mask[index]) else -1


def split_trapezoid(y0: FloatArray, y1: FloatArray, dt: FloatArray) -> tuple[FloatArray,
                                                                            FloatArray]:
    """Positive and negative (as magnitude) areas of linear segments from y0 to y1 over dt.

    A segment whose sign changes is split where the line crosses zero, so charge and
    discharge are attributed exactly for piecewise-linear current.
    """
    same_sign = y0 * y1 >= 0.0
    area = 0.5 * (y0 + y1) * dt
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(same_sign, 0.0, y0 / (y0 - y1))
    first = 0.5 * y0 * fraction * dt
    second = 0.5 * y1 * (1.0 - fraction) * dt
    positive = np.where(same_sign, np.maximum(area, 0.0),
                        np.where(y0 > 0.0, first, second))
    negative = np.where(same_sign, np.maximum(-area, 0.0),
                        np.where(y0 > 0.0, -second, -first))
    return positive, negative


def integrate(
    time_s: FloatArray, current_a: FloatArray, voltage_v: FloatArray,
    previous: tuple[float, float, float],
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Charge (Ah) and energy (Wh) per reading, split into charging and discharging.

    Segment ``k`` runs from reading ``k-1`` (or ``previous``: time, current, voltage) to
    reading ``k``; the trapezoid rule, with sign changes split at the zero crossing.
    """
    t_prev, i_prev, v_prev = previous
    t_all = np.concatenate(([t_prev], time_s))
    i_all = np.concatenate(([i_prev], current_a))
    p_all = np.concatenate(([i_prev * v_prev], current_a * voltage_v))
    dt = np.diff(t_all)
    q_chg, q_dis = split_trapezoid(i_all[:-1], i_all[1:], dt)
    e_chg, e_dis = split_trapezoid(p_all[:-1], p_all[1:], dt)
    return (q_chg / SECONDS_PER_HOUR, q_dis / SECONDS_PER_HOUR, e_chg / SECONDS_PER_HOUR,
            e_dis / SECONDS_PER_HOUR)


def compare(values: FloatArray, operator: Operator, threshold: float) -> np.ndarray:
    """``values >= threshold`` or ``values <= threshold``; NaN never satisfies."""
    if operator is Operator.AT_LEAST:
        return values >= threshold
    return values <= threshold


class Signals:
    """What conditions look at, for one block: built lazily, once per block."""

    def __init__(self, time_s: FloatArray, step_time_s: FloatArray, voltage_v: FloatArray,
                 current_a: FloatArray, step_charge_ah: FloatArray, step_energy_wh: FloatArray,
                 temperature_c: FloatArray | None, pressure_pa: FloatArray | None,
                 history: tuple[FloatArray, FloatArray]) -> None:
        self.time_s = time_s
        self.step_time_s = step_time_s
        self.voltage_v = voltage_v
        self.current_a = current_a
        self.step_charge_ah = step_charge_ah
        self.step_energy_wh = step_energy_wh
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.history = history
        self._dvdt: FloatArray | None = None

    def values(self, quantity: Quantity) -> FloatArray | None:
        """The array a condition on ``quantity`` compares (magnitudes where the rule says)."""
        if quantity is Quantity.VOLTAGE:
            return self.voltage_v
        if quantity is Quantity.CURRENT:
            return np.abs(self.current_a)
        if quantity is Quantity.TIME:
            return self.step_time_s
        if quantity is Quantity.CHARGE:
            return np.abs(self.step_charge_ah)
        if quantity is Quantity.ENERGY:
            return np.abs(self.step_energy_wh)
        if quantity is Quantity.TEMPERATURE:
            return self.temperature_c
        if quantity is Quantity.PRESSURE:
            return self.pressure_pa
        return self.dvdt()

    def dvdt(self) -> FloatArray:
        """|dV/dt| over the trailing window, NaN until the step has run a whole window."""
        if self._dvdt is None:
            hist_t, hist_v = self.history
            t_all = np.concatenate((hist_t, self.time_s))
            v_all = np.concatenate((hist_v, self.voltage_v))
            start = np.searchsorted(t_all, t_all - DVDT_WINDOW_S, side="right") - 1
            valid = start >= 0
            start = np.maximum(start, 0)
            span = t_all - t_all[start]
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.abs(v_all - v_all[start]) / span
            rate = np.where(valid & (span >= DVDT_WINDOW_S * 0.999), rate, np.nan)
            self._dvdt = rate[hist_t.shape[0]:]
        return self._dvdt


def first_condition(conditions: tuple[Condition, ...], signals: Signals
                    ) -> tuple[int, Condition | None]:
    """The first reading at which any condition holds, and which (the first listed wins)."""
    best_index, best = -1, None
    for condition in conditions:
        values = signals.values(condition.quantity)
        if values is None:
            continue
        index = first_true(compare(values, condition.operator, condition.value))
        if index >= 0 and (best_index < 0 or index < best_index):
            best_index, best = index, condition
    return best_index, best


def record_mask(
    step_time_s: FloatArray, voltage_v: FloatArray, current_a: FloatArray, rule: Recording,
    last: tuple[float, float, float] | None,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Which readings to store: whenever the step time passes the next multiple of
    ``every_s``, or the voltage (current) moves to another multiple of ``voltage_change_v``
    (``current_change_a``). ``last`` carries the grid cells of the block before (None at the
    start of a step: the first reading is always stored)."""
    count = step_time_s.shape[0]
    keep = np.zeros(count, dtype=bool)
    cells: list[FloatArray] = []
    for values, size in ((step_time_s, rule.every_s), (voltage_v, rule.voltage_change_v),
                         (current_a, rule.current_change_a)):
        if size is None or size <= 0:
            cells.append(np.zeros(count))
            continue
        cells.append(np.floor(values / size))
    carried = (np.nan, np.nan, np.nan) if last is None else last
    for cell, before in zip(cells, carried, strict=True):
        previous = np.concatenate(([before], cell[:-1]))
        keep |= cell != previous
    if last is None and count:
        keep[0] = True
    new_last = (float(cells[0][-1]), float(cells[1][-1]), float(cells[2][-1])) if count else (
        carried)
    return keep, new_last


def run_trip(mask: np.ndarray, time_s: FloatArray, since: float | None, delay_s: float
             ) -> tuple[int, float | None]:
    """First reading where ``mask`` has held for ``delay_s``; carries when the run began."""
    if mask.shape[0] == 0:
        return -1, since
    previous = np.concatenate(([since is not None], mask[:-1]))
    starts = np.where(mask & ~previous, time_s, -np.inf)
    if since is not None and bool(mask[0]):
        starts[0] = since
    run_start = np.maximum.accumulate(starts)
    tripped = mask & (time_s - run_start >= delay_s)
    index = first_true(tripped)
    new_since = float(run_start[-1]) if bool(mask[-1]) else None
    return index, new_since

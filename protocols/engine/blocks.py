"""Vectorised operations on blocks of readings: integration, first crossings, recording grids,
limit runs and warning hysteresis. Each works on a whole block at once and carries what it
needs from the block before, so a block of 1,000 readings costs about as much as a few blocks
of one. ``single.py`` does the same arithmetic on one reading with Python floats. Every
decision (which reading ends a step, trips a limit, raises a warning, is stored) and the
step's running totals come out bit for bit the same however the readings are split into
blocks; the cycle and test totals to rounding (they add a block's amounts up first).
"""

from __future__ import annotations

import numpy as np

from cellrig.protocols.program import Condition, Operator, Quantity, Recording
from cellrig.protocols.rig import FloatArray

SECONDS_PER_HOUR = 3600.0
#: Window over which dV/dt is measured for ``dvdt`` conditions.
DVDT_WINDOW_S = 60.0

BoolArray = np.ndarray


def first_true(mask: BoolArray) -> int:
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
    area = 0.5 * (y0 + y1) * dt
    same_sign = y0 * y1 >= 0.0
    if bool(same_sign.all()):
        return np.maximum(area, 0.0), np.maximum(-area, 0.0)
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
) -> FloatArray:
    """Charge (Ah) and energy (Wh) per reading: rows charging and discharging charge,
    charging and discharging energy (magnitudes).

    Segment ``k`` runs from reading ``k-1`` (or ``previous``: time, current, voltage) to
    reading ``k``; the trapezoid rule, with sign changes split at the zero crossing.
    """
    t_prev, i_prev, v_prev = previous
    count = time_s.shape[0]
    dt = np.empty(count)
    dt[0] = time_s[0] - t_prev
    np.subtract(time_s[1:], time_s[:-1], out=dt[1:])
    flows = np.empty((2, count + 1))  # current and power, from the reading before
    flows[0, 0] = i_prev
    flows[0, 1:] = current_a
    flows[1, 0] = i_prev * v_prev
    np.multiply(current_a, voltage_v, out=flows[1, 1:])
    positive, negative = split_trapezoid(flows[:, :-1], flows[:, 1:], dt)
    amounts = np.empty((4, count))
    amounts[0::2] = positive
    amounts[1::2] = negative
    amounts /= SECONDS_PER_HOUR
    return amounts


def running(starts: tuple[float, ...], amounts: FloatArray) -> FloatArray:
    """Each row of ``amounts`` added one by one to its start (the running totals after each
    reading). Added in order, so the totals are the same to the last bit whether the
    readings come in one block or one by one. Rows of zeros (the discharge of a charge, a
    rest) are not summed."""
    rows, count = amounts.shape
    totals = np.empty((rows, count))
    values = np.empty(count + 1)
    for row in range(rows):
        if amounts[row].any():
            values[0] = starts[row]
            values[1:] = amounts[row]
            totals[row] = np.cumsum(values)[1:]
        else:
            totals[row] = starts[row]
    return totals


def added_up(amounts: FloatArray, count: int, at: np.ndarray) -> tuple[FloatArray,
                                                                      FloatArray]:
    """The first ``count`` amounts of each row added up: the sums up to (and including)
    each index of ``at`` (increasing, below ``count``), and the sums of all ``count``."""
    starts = np.empty(at.shape[0] + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = at + 1
    if starts[-1] == count:
        starts = starts[:-1]  # the last stored reading is the last one added up
    partial = np.cumsum(np.add.reduceat(amounts[:, :count], starts, axis=1), axis=1)
    return partial[:, : at.shape[0]], partial[:, -1]


def compare(values: FloatArray, operator: Operator, threshold: float) -> BoolArray:
    """``values >= threshold`` or ``values <= threshold``; NaN never satisfies."""
    if operator is Operator.AT_LEAST:
        return values >= threshold
    return values <= threshold


def dvdt(history: tuple[FloatArray, FloatArray], step_time_s: FloatArray,
         voltage_v: FloatArray) -> FloatArray:
    """|dV/dt| at each reading over the trailing window: from the last reading at least
    ``DVDT_WINDOW_S`` earlier (NaN until the step has run a whole window)."""
    hist_t, hist_v = history
    t_all = np.concatenate((hist_t, step_time_s))
    v_all = np.concatenate((hist_v, voltage_v))
    t_now, v_now = t_all[hist_t.shape[0]:], v_all[hist_t.shape[0]:]
    start = np.searchsorted(t_all, t_now - DVDT_WINDOW_S, side="right") - 1
    valid = start >= 0
    start = np.maximum(start, 0)
    span = t_now - t_all[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.abs(v_now - v_all[start]) / span
    return np.where(valid & (span > 0.0), rate, np.nan)


class Signals:
    """What conditions and limits look at, for one block: built lazily, once per block."""

    def __init__(self, step_time_s: FloatArray, voltage_v: FloatArray, current_a: FloatArray,
                 step_charge_ah: FloatArray, step_energy_wh: FloatArray,
                 temperature_c: FloatArray | None, pressure_pa: FloatArray | None,
                 history: tuple[FloatArray, FloatArray] | None) -> None:
        self.step_time_s = step_time_s
        self.voltage_v = voltage_v
        self.current_a = current_a
        self.step_charge_ah = step_charge_ah
        self.step_energy_wh = step_energy_wh
        self.temperature_c = temperature_c
        self.pressure_pa = pressure_pa
        self.history = history
        self._cache: dict[Quantity, FloatArray | None] = {}

    def values(self, quantity: Quantity) -> FloatArray | None:
        """The array a condition on ``quantity`` compares (magnitudes where the rule says)."""
        found = self._cache.get(quantity, self)
        if found is not self:
            return found  # type: ignore[return-value]
        value: FloatArray | None
        if quantity is Quantity.VOLTAGE:
            value = self.voltage_v
        elif quantity is Quantity.CURRENT:
            value = np.abs(self.current_a)
        elif quantity is Quantity.TIME:
            value = self.step_time_s
        elif quantity is Quantity.CHARGE:
            value = np.abs(self.step_charge_ah)
        elif quantity is Quantity.ENERGY:
            value = np.abs(self.step_energy_wh)
        elif quantity is Quantity.TEMPERATURE:
            value = self.temperature_c
        elif quantity is Quantity.PRESSURE:
            value = self.pressure_pa
        elif self.history is None:
            value = None
        else:
            value = dvdt(self.history, self.step_time_s, self.voltage_v)
        self._cache[quantity] = value
        return value


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


def grid_sizes(rule: Recording) -> tuple[float | None, float | None, float | None]:
    """The recording grid of a rule: step time, voltage and current cell sizes (None: off)."""
    return tuple(  # type: ignore[return-value]
        size if size is not None and size > 0 else None
        for size in (rule.every_s, rule.voltage_change_v, rule.current_change_a))


def record_mask(
    step_time_s: FloatArray, voltage_v: FloatArray, current_a: FloatArray,
    sizes: tuple[float | None, float | None, float | None],
    last: tuple[float, float, float] | None,
) -> tuple[BoolArray, tuple[float, float, float]]:
    """Which readings to store: whenever the step time passes the next multiple of
    ``every_s``, or the voltage (current) moves to another multiple of ``voltage_change_v``
    (``current_change_a``). ``last`` carries the grid cells of the reading before (None at
    the start of a step: the first reading is always stored)."""
    count = step_time_s.shape[0]
    keep = np.zeros(count, dtype=bool)
    carried = (np.nan, np.nan, np.nan) if last is None else last
    new_last = []
    for values, size, before in zip((step_time_s, voltage_v, current_a), sizes, carried,
                                    strict=True):
        if size is None:
            new_last.append(0.0)
            continue
        cell = np.floor(values / size)
        keep[0] |= bool(cell[0] != before)
        keep[1:] |= cell[1:] != cell[:-1]
        new_last.append(float(cell[-1]))
    if last is None:
        keep[0] = True
    return keep, (new_last[0], new_last[1], new_last[2])


def run_trip(mask: BoolArray, time_s: FloatArray, since: float | None, delay_s: float
             ) -> tuple[int, FloatArray]:
    """First reading where ``mask`` has held for ``delay_s`` (-1 if none), and when the run
    each reading belongs to began (meaningful where ``mask`` holds). ``since`` is when the
    run still going at the end of the block before began (None: no run)."""
    if not mask.any():
        return -1, time_s
    starts = np.where(mask, time_s, -np.inf)
    starts[1:][mask[:-1]] = -np.inf
    if since is not None and bool(mask[0]):
        starts[0] = since
    run_start = np.maximum.accumulate(starts)
    index = first_true(mask & (time_s - run_start >= delay_s))
    return index, run_start


def hysteresis(set_mask: BoolArray, reset_mask: BoolArray, state: bool
               ) -> tuple[BoolArray, bool]:
    """A two-level switch over a block: on where ``set_mask``, off where ``reset_mask``,
    otherwise as it was. Returns where it switches on, and its state after the block."""
    count = set_mask.shape[0]
    if not set_mask.any():
        return set_mask, state and not bool(reset_mask.any())
    code = np.where(set_mask, 1, np.where(reset_mask, 0, -1))
    where = np.where(code >= 0, np.arange(count), -1)
    where = np.maximum.accumulate(where)
    on = np.where(where >= 0, code[np.maximum(where, 0)] == 1, state)
    before = np.empty(count, dtype=bool)
    before[0] = state
    before[1:] = on[:-1]
    return on & ~before, bool(on[-1])

"""Small pieces of the model rig: the recording grid, conditions in closed form, the EIS
sweep's frequencies and duration, and moving the model without readings."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cellrig.protocols.program import Condition, EisStep, Operator
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.model_rig_legs import Phase, Source, current_leg

FloatArray = npt.NDArray[np.float64]

#: Shortest time an EIS unit spends on one frequency (settling and integration).
MIN_FREQUENCY_S = 0.2
#: Tolerance on step times when placing grid points (well below any sample interval).
GRID_TOLERANCE = 1e-9


def grid_offsets(step_time_s: float, interval_s: float, end_s: float, fresh: bool) -> FloatArray:
    """Offsets (seconds from now) of the readings up to ``end_s``: the step times that are
    multiples of ``interval_s`` after ``step_time_s``, then ``end_s`` itself; with ``fresh``
    (a command just applied) the present moment first."""
    first = math.floor(step_time_s / interval_s + GRID_TOLERANCE) + 1
    last = math.floor((step_time_s + end_s) / interval_s - GRID_TOLERANCE)
    grid = np.arange(first, last + 1, dtype=float) * interval_s - step_time_s
    grid = grid[grid < end_s]
    if fresh:
        if end_s <= 0:
            return np.zeros(1)
        return np.concatenate(([0.0], grid, [end_s]))
    return np.append(grid, max(end_s, GRID_TOLERANCE))


def time_end_s(condition: Condition, step_time_s: float) -> float:
    """Offset from now at which a step-time condition is met (inf: never by itself)."""
    if condition.operator is Operator.AT_LEAST:
        return max(condition.value - step_time_s, 0.0)
    return 0.0 if step_time_s <= condition.value else math.inf


def charge_end_s(condition: Condition, charge_ah: float, current_a: float) -> float:
    """Offset from now at which the step's net charge (magnitude) meets a condition under a
    constant current (0 for any other source: then only a condition met already counts)."""
    magnitude = abs(charge_ah)
    if condition.operator is Operator.AT_LEAST:
        if magnitude >= condition.value:
            return 0.0
        if current_a == 0:
            return math.inf
        return (math.copysign(condition.value, current_a) - charge_ah) * 3600.0 / current_a
    if magnitude <= condition.value:
        return 0.0
    if current_a == 0 or math.copysign(1.0, current_a) == math.copysign(1.0, charge_ah):
        return math.inf
    return (magnitude - condition.value) * 3600.0 / abs(current_a)


def eis_frequencies(step: EisStep) -> FloatArray:
    """The sweep's frequencies, from ``start_hz`` to ``stop_hz``, evenly spaced in log."""
    decades = abs(math.log10(step.start_hz / step.stop_hz))
    count = max(2, round(decades * step.points_per_decade) + 1)
    return np.logspace(math.log10(step.start_hz), math.log10(step.stop_hz), count)


def sweep_duration_s(frequency_hz: FloatArray) -> float:
    """How long a frequency-response analyser takes: a period to settle and one to measure
    at each frequency, at least :data:`MIN_FREQUENCY_S` (about 16 min from 1 MHz to 10 mHz
    at 10 per decade, dominated by the lowest decades)."""
    return float(np.sum(np.maximum(2.0 / frequency_hz, MIN_FREQUENCY_S)))


def move_model(model: CellModel, source: Source, duration_s: float) -> None:
    """Run the model under a source for ``duration_s`` without readings (no compliance: used
    to replay a leg up to a reading, and for the time an EIS sweep takes)."""
    if duration_s <= 0:
        return
    if source.phase is Phase.VOLTAGE:
        model.run_voltage(source.value, [duration_s])
    elif source.phase in (Phase.CURRENT, Phase.REST):
        current = source.value if source.phase is Phase.CURRENT else 0.0
        current_leg(model, current, np.array([duration_s]), [])
    else:
        raise ValueError(f"{source.phase} is replayed from the leg's own states")

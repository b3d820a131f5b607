"""Stored samples in Battery Data Format columns, for a block or for one reading.

Running totals are those after each stored reading: the step's (added reading by reading, as
the step's conditions see them), the cycle's and the test's (the totals before the block plus
what the block added up to the reading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cellrig.protocols.rig import Block, FloatArray

from .output import COLUMNS, SampleBlock, StepType

if TYPE_CHECKING:
    from .process import BlockProcessor, Command

AMOUNT_NAMES = ("Charging Capacity / Ah", "Discharging Capacity / Ah", "Charging Energy / Wh",
                "Discharging Energy / Wh")
_FLOAT_COLUMNS = (
    "Test Time / s", "Unix Time / s", "Voltage / V", "Current / A", "Step Time / s",
    *AMOUNT_NAMES, *(f"Cycle {name}" for name in AMOUNT_NAMES),
    *(f"Step {name}" for name in AMOUNT_NAMES),
    "Ambient Temperature / degC", "Applied Pressure / Pa",
)
_INT_COLUMNS = ("Cycle Count / 1", "Step Count / 1", "Step ID")


def step_type(command: Command, current_a: float) -> str:
    """The Step Type of a reading: the step's, or for CV by the sign of the current."""
    if command.step_type is not None:
        return command.step_type.value
    return StepType.CV_CHG.value if current_a >= 0.0 else StepType.CV_DCH.value


def emit_block(processor: BlockProcessor, step_id: int, command: Command, block: Block,
               step_time: FloatArray, test_time: FloatArray, at: np.ndarray | slice,
               added: FloatArray, step_sums: FloatArray) -> None:
    """Send the readings of the block at indices ``at`` (or a slice of them) to the sink.
    ``added`` holds the
    rows of ``blocks.integrate`` added up over the block to each of them, ``step_sums`` the
    step's running totals at every reading."""
    state = processor.state
    t = block.time_s[at]
    current = block.current_a[at]
    arrived_end_s = (command.block_end_s if command.block_end_s is not None
                     else float(block.time_s[-1]))
    count = t.shape[0]
    columns: dict[str, np.ndarray] = {
        "Test Time / s": test_time[at],
        "Unix Time / s": processor.clock.unix_now() - (arrived_end_s - t),
        "Voltage / V": block.voltage_v[at],
        "Current / A": current,
        "Step Time / s": step_time[at],
    }
    integers = np.empty((3, count), dtype=np.int64)
    integers[:] = ((state.cycle.number,), (state.step_count,), (step_id,))
    for index, name in enumerate(_INT_COLUMNS):
        columns[name] = integers[index]
    if command.step_type is not None:
        kinds = np.empty(count, dtype=object)
        kinds[:] = command.step_type.value
        columns["Step Type"] = kinds
    else:
        columns["Step Type"] = np.where(current >= 0.0, StepType.CV_CHG.value,
                                        StepType.CV_DCH.value).astype(object)
    before = np.array([[state.test.charge_ah, state.test.discharge_ah, state.test.charge_wh,
                        state.test.discharge_wh],
                       [state.cycle.totals.charge_ah, state.cycle.totals.discharge_ah,
                        state.cycle.totals.charge_wh, state.cycle.totals.discharge_wh]])
    test_totals = before[0][:, None] + added
    cycle_totals = before[1][:, None] + added
    step_totals = step_sums[:, at]
    for index, name in enumerate(AMOUNT_NAMES):
        columns[name] = test_totals[index]
        columns[f"Cycle {name}"] = cycle_totals[index]
        columns[f"Step {name}"] = step_totals[index]
    for name, values in (("Ambient Temperature / degC", block.temperature_c),
                         ("Applied Pressure / Pa", block.pressure_pa)):
        columns[name] = np.full(count, np.nan) if values is None else values[at]
    processor.sink.samples(SampleBlock({name: columns[name] for name in COLUMNS}))


def emit_one(processor: BlockProcessor, step_id: int, command: Command,
             floats: dict[str, float]) -> None:
    """Send one reading (``floats``: the float columns) to the sink."""
    state = processor.state
    values = np.array([floats[name] for name in _FLOAT_COLUMNS])
    integers = np.array([state.cycle.number, state.step_count, step_id], dtype=np.int64)
    columns: dict[str, np.ndarray] = {
        name: values[index:index + 1] for index, name in enumerate(_FLOAT_COLUMNS)}
    for index, name in enumerate(_INT_COLUMNS):
        columns[name] = integers[index:index + 1]
    kind = np.empty(1, dtype=object)
    kind[0] = step_type(command, floats["Current / A"])
    columns["Step Type"] = kind
    processor.sink.samples(SampleBlock({name: columns[name] for name in COLUMNS}))

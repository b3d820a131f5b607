"""The live channel values status() answers from: the last stored sample of every block and
the step from the events, passed through to the store's sink unchanged."""

from __future__ import annotations

import math

import numpy as np

from cellrig.daemon.job_live import LiveChannel, LiveSink
from cellrig.protocols.engine import Event, EventKind, ListSink, SampleBlock
from cellrig.protocols.engine.output import COLUMNS


def block(rows: int, **values: float) -> SampleBlock:
    columns = {name: np.linspace(0.0, 1.0, rows) for name in COLUMNS}
    columns["Step Type"] = np.array(["CC_CHG"] * rows, dtype=object)
    for name in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
        columns[name] = np.full(rows, 3, dtype=np.int64)
    for name, value in values.items():
        columns[name] = np.full(rows, value)
    return SampleBlock(columns)


def test_the_last_sample_of_a_block_is_the_live_value() -> None:
    inner = ListSink()
    live = LiveChannel()
    live.start(7, "formation", "running")
    sink = LiveSink(inner, live)
    sink.event(Event(EventKind.STEP_START, 12.0, 0.0, 2, 5, 4, "Charge at 0.1C until 4.2 V"))
    sink.samples(block(4, **{"Voltage / V": 3.9, "Ambient Temperature / degC": math.nan,
                             "Cycle Charging Capacity / Ah": 0.25}))
    assert len(inner.blocks) == 1 and len(inner.events) == 1  # passed on unchanged
    assert (live.job_id, live.protocol_name, live.job_state) == (7, "formation", "running")
    assert live.step == "Charge at 0.1C until 4.2 V"
    assert live.voltage_v == 3.9 and live.charge_capacity_ah == 0.25
    assert live.temperature_c is None  # not measured: unknown, not NaN
    assert (live.cycle, live.step_count, live.test_time_s) == (3, 3, 1.0)
    sink.samples(block(0))  # an empty block changes nothing
    assert live.voltage_v == 3.9
    live.clear()
    assert live.job_id is None and live.step is None and live.voltage_v is None

"""Folding the samples stored after a checkpoint back into it gives the checkpoint the engine
itself took at the last of them (the job manager's recovery, ``daemon/job_recovery.py``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from cellrig.daemon.job_recovery import fold_samples
from cellrig.daemon.store_records import SampleColumns
from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, Event, SampleBlock
from cellrig.protocols.engine.output import COLUMNS, CycleSummary
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Spectrum
from cellrig.simulators.bench import Bench
from cellrig.simulators.model_rig import ModelRig

PROTOCOL = """cellrig: 1
name: fold
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 30 s, voltage_change: 10 mV}
steps:
  - Charge at 0.3C until 4.2 V
  - Hold at 4.2 V until 0.05C
  - Discharge at 0.5C until 3.0 V
"""


@dataclass
class OrderedSink:
    """Everything the engine sends, in order."""

    items: list[tuple[str, Any]] = field(default_factory=list)

    def samples(self, block: SampleBlock) -> None:
        self.items.append(("samples", block))

    def event(self, event: Event) -> None:
        pass

    def cycle(self, summary: CycleSummary) -> None:
        pass

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        pass

    def checkpoint(self, state: dict[str, Any]) -> None:
        self.items.append(("checkpoint", state))


def columns(blocks: list[SampleBlock]) -> SampleColumns:
    joined = {name: np.concatenate([block.columns[name] for block in blocks])
              for name in COLUMNS}
    count = joined["Test Time / s"].shape[0]
    return SampleColumns(np.arange(count, dtype=np.int64), np.ones(count, np.int64), joined)


def run() -> tuple[list[tuple[str, Any]], Any]:
    program = resolve(load_protocol_text(PROTOCOL, "fold.yaml"))
    sink = OrderedSink()
    rig = ModelRig(Bench.default().cells["cell-1"], max_block_s=900.0)
    asyncio.run(Engine(program, rig, sink, VirtualClock(), checkpoint_every_s=0.0).run())
    return sink.items, program


ITEMS, PROGRAM = run()
CHECKPOINTS = [index for index, (kind, _) in enumerate(ITEMS) if kind == "checkpoint"]


def cases() -> list[tuple[int, int]]:
    """(step-start checkpoint, a later checkpoint of the same step) pairs."""
    found = []
    for start in CHECKPOINTS:
        state = ITEMS[start][1]
        if state["step"] is None or state["step"]["elapsed_s"] != 0.0:
            continue
        later = [index for index in CHECKPOINTS if index > start
                 and ITEMS[index][1]["step_count"] == state["step_count"]
                 and ITEMS[index][1]["step"] is not None]
        found += [(start, index) for index in later[1:4]]
    return found


@pytest.mark.parametrize(("start", "end"), cases())
def test_folding_the_samples_after_a_checkpoint_gives_the_later_checkpoint(
        start: int, end: int) -> None:
    blocks = [item for kind, item in ITEMS[start:end] if kind == "samples"]
    assert blocks
    folded, count = fold_samples(ITEMS[start][1], columns(blocks), PROGRAM)
    assert count == sum(len(block) for block in blocks)
    want = ITEMS[end][1]
    assert folded["test_time_s"] == pytest.approx(want["test_time_s"], rel=1e-12)
    for group in ("test",):
        for key, value in want[group].items():
            assert folded[group][key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    for key, value in want["cycle"]["totals"].items():
        assert folded["cycle"]["totals"][key] == pytest.approx(value, rel=1e-12, abs=1e-15)
    assert folded["cycle"]["cv_charge_ah"] == pytest.approx(want["cycle"]["cv_charge_ah"],
                                                            rel=1e-9, abs=1e-15)
    step, want_step = folded["step"], want["step"]
    for key in ("elapsed_s", "last_current_a", "last_voltage_v"):
        assert step[key] == pytest.approx(want_step[key], rel=1e-12), key
    for key, value in want_step["totals"].items():
        assert step["totals"][key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert step["record_cells"] == want_step["record_cells"]


def test_samples_of_another_step_are_not_folded() -> None:
    start = CHECKPOINTS[1]
    blocks = [item for kind, item in ITEMS[start:] if kind == "samples"]
    state = ITEMS[start][1]
    folded, count = fold_samples(state, columns(blocks), PROGRAM)
    assert (folded, count) == (state, 0)

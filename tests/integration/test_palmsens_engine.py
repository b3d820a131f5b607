"""A protocol run by the step engine on the PalmSens driver against its emulator (socket://,
accelerated bench): rest, a charge ended by the device-side voltage cut-off, a CV hold ended on
time, an EIS sweep; the samples, steps and spectrum the engine records."""

from __future__ import annotations

import numpy as np
import pytest

from cellrig.drivers.palmsens import PalmSens
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, EventKind, ListSink
from cellrig.protocols.program import EisStep, Program
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Block, Capabilities, Command, Spectrum
from cellrig.simulators.bench import Bench, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.palmsens_emulator import PalmSensEmulator

pytestmark = pytest.mark.integration

SPEED = 500.0

PROTOCOL = """\
cellrig: 1
name: palmsens-check
cell: {capacity: 634 mAh}
limits: {voltage: [2.5 V, 4.4 V], current: 0.5 A}
record: {every: 10 s}
steps:
  - Rest for 30 seconds
  - Charge at 100 mA until 3.95 V
  - Hold at 3.95 V for 5 minutes
  - eis: {start: 100 kHz, stop: 1 Hz, amplitude: 10 mV, per_decade: 5}
"""


class PalmSensRig:
    """The rig port of a channel that has only a PalmSens potentiostat (no chamber, no jig)."""

    def __init__(self, channel: PalmSens) -> None:
        self.channel = channel

    @property
    def capabilities(self) -> Capabilities:
        return self.channel.capabilities

    async def apply(self, command: Command) -> float:
        return await self.channel.apply(command)

    async def read(self) -> Block:
        return await self.channel.read()

    async def end_step(self, at_time_s: float) -> None:
        await self.channel.end_step(at_time_s)

    async def safe(self) -> None:
        await self.channel.safe()

    async def set_environment(self, temperature_c: float | None,
                              pressure_pa: float | None) -> None:
        raise AssertionError("this program sets no temperature or pressure")

    async def eis(self, step: EisStep) -> Spectrum:
        return await self.channel.eis(step)


def program(text: str = PROTOCOL) -> Program:
    return resolve(load_protocol_text(text, "palmsens-check.yaml"))


async def test_engine_runs_a_protocol_through_the_emulator() -> None:
    bench = Bench(BenchClock(SPEED))
    bench.add_chamber("chamber-1")
    params = load_builtin_cell()
    model = CellModel(params, temperature_c=25.0)
    model.run_current(0.3, [3600.0])
    model.run_rest([1800.0])
    cell = bench.add_cell("cell-1", "chamber-1", model,
                          pneumatic_jig(params, 2.0e6, bench.clock.now_s()))
    emulator = PalmSensEmulator(cell)
    url = await emulator.start_tcp()
    sink = ListSink()
    try:
        async with PalmSens(url, time_scale=SPEED, timeout_s=1.0) as channel:
            resolved = program()
            assert channel.refusals(resolved) == []
            outcome = await Engine(resolved, PalmSensRig(channel), sink).run()
    finally:
        await emulator.close()
    assert outcome.state.value == "completed", outcome.reason
    rows = [row for block in sink.blocks for row in block.rows()]
    by_step: dict[int, list[dict[str, float]]] = {}
    for row in rows:
        by_step.setdefault(int(row["Step ID"]), []).append(row)
    rest, charge, hold = (by_step[step] for step in sorted(by_step))
    assert all(row["Current / A"] == 0.0 for row in rest)
    charge_v = np.array([row["Voltage / V"] for row in charge])
    assert charge_v[-1] >= 3.95 > charge_v[-2]
    assert np.array([row["Current / A"] for row in charge]) == pytest.approx(0.1, rel=1e-3)
    hold_v = np.array([row["Voltage / V"] for row in hold])
    assert hold_v == pytest.approx(3.95, abs=1e-3)
    hold_time = np.array([row["Step Time / s"] for row in hold])
    assert 300.0 <= hold_time[-1] < 310.0       # the loop's run time, plus event-loop lag
    assert len(sink.spectra) == 1
    spectrum = sink.spectra[0][2]
    assert len(spectrum.frequency_hz) == 26
    ends = [e for e in sink.events if e.kind is EventKind.STEP_END]
    assert len(ends) == 4
    assert not emulator.cell_on

"""Benchmark: the step engine's own cost per reading (prints figures).

Run: ``.venv/bin/python tests/bench/bench_engine.py``. The program cycles a cell with constant
current and rests (record every 10 s). Its readings are produced once by the unit tests'
linear cell (``tests/unit/rigs.py``) and recorded block by block; the timed runs replay them
from a rig that hands over the precomputed blocks instantly, so what is measured is the
engine: terminations, limits, warnings, integration, recording, sample columns and the sink
calls (to a sink that drops everything). Blocks of 1 reading are a host-polled instrument,
blocks of 1,000 a cycler's buffer or the model computing ahead.

Aims: < 20 µs per reading with single-reading blocks, < 0.2 µs per reading in blocks of 1,000.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))

from rigs import LinearCell, LinearRig

from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, SampleBlock
from cellrig.protocols.engine.output import CycleSummary, Event
from cellrig.protocols.program import EisStep, Program
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Block, Capabilities, Command, Spectrum

RUNS = 7

PROTOCOL = """
cellrig: 1
name: bench-cycling
cell: {capacity: 1 Ah}
limits:
  voltage: {range: [2.5 V, 4.5 V], warn: [2.8 V, 4.3 V]}
  current: 2C
  charge_per_step: 150 %
record: {every: 10 s}
steps:
  - repeat: CYCLES
    until: discharge capacity < 80 % of first
    steps:
      - Charge at 1C until 4.1 V
      - Rest for 10 minutes
      - Discharge at 1C until 3.1 V
      - Rest for 10 minutes
"""


class RecordingRig(LinearRig):
    """The linear test rig, keeping every apply time and block it hands over."""

    def __init__(self, block_size: int) -> None:
        super().__init__(cell=LinearCell(charge_ah=0.1), block_size=block_size)
        self.script: list[tuple[str, Any]] = []

    async def apply(self, command: Command) -> float:
        """Record the apply time."""
        applied = await super().apply(command)
        self.script.append(("apply", applied))
        return applied

    async def read(self) -> Block:
        """Record the block."""
        block = await super().read()
        self.script.append(("read", block))
        return block


class ReplayRig:
    """Hands over recorded apply times and blocks, in order, at no cost."""

    def __init__(self, script: list[tuple[str, Any]]) -> None:
        self.applies = [value for kind, value in script if kind == "apply"]
        self.blocks = [value for kind, value in script if kind == "read"]
        self.next_apply = 0
        self.next_block = 0

    @property
    def capabilities(self) -> Capabilities:
        """Nothing special."""
        return Capabilities()

    async def apply(self, command: Command) -> float:
        """The recorded time of this apply."""
        self.next_apply += 1
        return float(self.applies[self.next_apply - 1])

    async def read(self) -> Block:
        """The recorded block."""
        self.next_block += 1
        return self.blocks[self.next_block - 1]  # type: ignore[no-any-return]

    async def end_step(self, at_time_s: float) -> None:
        """Nothing to do: the next block was recorded after the rewind."""

    async def safe(self) -> None:
        """Nothing to do."""

    async def set_environment(self, temperature_c: float | None, pressure_pa: float | None
                              ) -> None:
        """Not used."""

    async def eis(self, step: EisStep) -> Spectrum:
        """Not used."""
        raise NotImplementedError


class NullSink:
    """Drops everything, counting samples."""

    def __init__(self) -> None:
        self.samples_stored = 0

    def samples(self, block: SampleBlock) -> None:
        """Count."""
        self.samples_stored += len(block)

    def event(self, event: Event) -> None:
        """Drop."""

    def cycle(self, summary: CycleSummary) -> None:
        """Drop."""

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        """Drop."""

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Drop."""


def program(cycles: int) -> Program:
    """The benchmark program."""
    return resolve(load_protocol_text(PROTOCOL.replace("CYCLES", str(cycles)), "bench.yaml"))


def measure(prog: Program, block_size: int) -> tuple[float, float, int, int, int]:
    """Fastest and median µs per reading of replayed runs; readings, blocks, stored samples."""
    recorder = RecordingRig(block_size)
    asyncio.run(Engine(prog, recorder, NullSink(), VirtualClock()).run())
    blocks = [value for kind, value in recorder.script if kind == "read"]
    readings = sum(len(block) for block in blocks)
    timings = []
    stored = 0
    for _ in range(RUNS):
        sink = NullSink()
        engine = Engine(prog, ReplayRig(recorder.script), sink, VirtualClock(),
                        checkpoint_every_s=3600.0)
        start = time.perf_counter()
        asyncio.run(engine.run())
        timings.append(time.perf_counter() - start)
        stored = sink.samples_stored
    return (min(timings) * 1e6 / readings, statistics.median(timings) * 1e6 / readings,
            readings, len(blocks), stored)


def main() -> None:
    print(f"engine cost per reading (fastest and median of {RUNS} replayed runs; CC/rest "
          "cycling, record every 10 s, checkpoints at every step)")
    for block_size, cycles, aim in ((1, 3, 20.0), (1000, 30, 0.2)):
        fastest, median, readings, blocks, stored = measure(program(cycles), block_size)
        verdict = "ok" if median < aim else "MISSES the aim"
        print(f"  blocks of {block_size:>5}: {fastest:8.3f} µs/reading fastest, {median:8.3f} "
              f"median (aim < {aim:g}: {verdict}); {readings} readings in {blocks} blocks, "
              f"{stored} samples stored")


if __name__ == "__main__":
    main()

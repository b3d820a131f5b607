"""Helpers of the step engine's tests: programs from YAML, running the engine in virtual time,
sinks that crash or steer the engine, and comparisons of whole runs.

Every run is in virtual time: the rig's instrument clock moves only when the rig reads, and
the wall clock is a ``VirtualClock``. Nothing sleeps and nothing opens a socket.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from conftest import assert_close
from rigs import LinearCell, LinearRig

from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, Event, EventKind, JobOutcome, ListSink, SampleBlock
from cellrig.protocols.engine.output import COLUMNS
from cellrig.protocols.program import Program
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Block, Capabilities, Command, Mode

#: The float columns whose values are running totals: compared to a relative 1e-9.
TOTAL_COLUMNS = tuple(name for name in COLUMNS if "Capacity" in name or "Energy" in name)


def program(steps: str, *, limits: str | None = None, record: str | None = "{every: 1 s}",
            cell: str = "{capacity: 1 Ah}", name: str = "engine-test") -> Program:
    """A resolved program from the YAML of its steps (indented as a top-level list)."""
    lines = ["cellrig: 1", f"name: {name}", f"cell: {cell}"]
    if limits is not None:
        lines.append(f"limits: {limits}")
    if record is not None:
        lines.append(f"record: {record}")
    lines.append("steps:")
    text = "\n".join(lines) + "\n" + steps.strip("\n") + "\n"
    return resolve(load_protocol_text(text, "engine-test.yaml"))


def rig(block_size: int = 1, device_cutoffs: bool = False, charge_ah: float = 0.0,
        **cell: float) -> LinearRig:
    """A linear test rig (1 Ah, OCV 3.0 V + 1.2 V/Ah, 0.1 Ohm unless told)."""
    return LinearRig(cell=LinearCell(charge_ah=charge_ah, **cell), block_size=block_size,
                     device_cutoffs=device_cutoffs)


class Crash(Exception):
    """What a crashing sink raises (not part of the project's exception tree)."""


@dataclass
class CrashSink(ListSink):
    """A list sink that raises right after it received checkpoint number ``crash_at``
    (counting from 1), as a daemon whose process dies just after storing it."""

    crash_at: int = 0
    seen: int = 0

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Store it (as JSON, as a store would), then crash if it is the chosen one."""
        super().checkpoint(json.loads(json.dumps(state, allow_nan=False)))
        self.seen += 1
        if self.seen == self.crash_at:
            raise Crash(f"crashed after checkpoint {self.seen}")


@dataclass
class HookSink(ListSink):
    """A list sink that calls ``on_samples`` / ``on_event`` after storing what it received."""

    on_samples: Callable[[SampleBlock], None] | None = None
    on_event: Callable[[Event], None] | None = None

    def samples(self, block: SampleBlock) -> None:
        """Store, then call the hook."""
        super().samples(block)
        if self.on_samples is not None:
            self.on_samples(block)

    def event(self, event: Event) -> None:
        """Store, then call the hook."""
        super().event(event)
        if self.on_event is not None:
            self.on_event(event)


@dataclass
class YieldingRig(LinearRig):
    """A linear rig that lets other tasks run at every read (as real I/O would)."""

    async def read(self) -> Block:
        """Yield to the event loop, then read."""
        await asyncio.sleep(0)
        return await super().read()


@dataclass
class WobblyRig(LinearRig):
    """A linear rig whose voltage readings carry a sine wobble (``wobble_v``, ``period_s``)."""

    wobble_v: float = 0.05
    period_s: float = 100.0

    def _reading(self) -> tuple[float, float, float]:
        t, v, i = super()._reading()
        return t, v + self.wobble_v * math.sin(2 * math.pi * (t - 1000.0) / self.period_s), i


@dataclass
class FadingRig(LinearRig):
    """A linear rig whose resistance grows by ``growth_ohm`` at the start of every discharge
    step (not on a resume or a re-apply within the step), so each cycle delivers less."""

    growth_ohm: float = 0.01

    async def apply(self, command: Command) -> float:
        """Age the cell when a new discharge starts."""
        if command.mode is Mode.CURRENT and command.current_a < 0 and command.elapsed_s == 0:
            self.cell.r_ohm += self.growth_ohm
        return await super().apply(command)


@dataclass
class BareRig(LinearRig):
    """A linear rig on a channel with no chamber, no jig and no EIS unit."""

    @property
    def capabilities(self) -> Capabilities:
        """A potentiostat channel only."""
        return Capabilities(device_cutoffs=self.device_cutoffs)


@dataclass
class Run:
    """The outcome of a run and everything its sink received."""

    outcome: JobOutcome
    sink: ListSink
    rig: LinearRig
    engine: Engine

    def column(self, name: str) -> np.ndarray:
        """One sample column over the whole run."""
        return self.sink.column(name)

    def events(self, kind: EventKind | None = None) -> list[Event]:
        """The events (of one kind)."""
        return [e for e in self.sink.events if kind is None or e.kind is kind]

    def steps(self) -> list[tuple[int | None, str]]:
        """(step id, reason) of every step end event of a step (not of a loop)."""
        return [(e.step_id, e.message) for e in self.events(EventKind.STEP_END)
                if e.step_id is not None]


async def run(prog: Program, test_rig: LinearRig | None = None, sink: ListSink | None = None,
              **options: Any) -> Run:
    """Run ``prog`` to its end on ``test_rig`` (a fresh linear rig if None)."""
    used_rig = rig() if test_rig is None else test_rig
    used_sink = ListSink() if sink is None else sink
    engine = Engine(prog, used_rig, used_sink, VirtualClock(), **options)
    outcome = await engine.run()
    return Run(outcome, used_sink, used_rig, engine)


async def crash_and_resume(prog: Program, test_rig: LinearRig, crash_at: int,
                           **options: Any) -> tuple[Run, CrashSink, bool]:
    """Run until just after checkpoint ``crash_at``, then start a new engine from that
    checkpoint on the same rig (which kept its physical state) and run it to the end.
    Returns the resumed run, the crashed run's sink, and whether the crash happened."""
    crashed = CrashSink(crash_at=crash_at)
    engine = Engine(prog, test_rig, crashed, VirtualClock(), **options)
    try:
        outcome = await engine.run()
    except Crash:
        resumed = await run(prog, test_rig, checkpoint=crashed.checkpoints[-1], **options)
        return resumed, crashed, True
    return Run(outcome, crashed, test_rig, engine), crashed, False


def samples_of(*sinks: ListSink) -> dict[str, np.ndarray]:
    """Every sample column over several sinks, in order."""
    blocks = [block for sink in sinks for block in sink.blocks]
    if not blocks:
        return {name: np.zeros(0) for name in COLUMNS}
    return {name: np.concatenate([b.columns[name] for b in blocks]) for name in COLUMNS}


def assert_samples_equal(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]
                         ) -> None:
    """The same samples: exact for readings and positions, to 1e-9 for running totals. The
    wall-clock column is left out: it says when a reading reached the host (with a clock that
    stands still, "now" minus the reading's age in its block), not what was measured."""
    for name in COLUMNS:
        if name == "Unix Time / s":
            continue
        got, want = actual[name], expected[name]
        assert got.shape == want.shape, f"{name}: {got.shape[0]} samples, not {want.shape[0]}"
        if name in TOTAL_COLUMNS:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)
        elif got.dtype == object:
            assert got.tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def assert_summaries_equal(actual: ListSink | list[Any], expected: ListSink | list[Any]
                           ) -> None:
    """The same cycle summaries, floats to a relative 1e-9."""
    got = actual.cycles if isinstance(actual, ListSink) else actual
    want = expected.cycles if isinstance(expected, ListSink) else expected
    assert_close(list(got), list(want), "cycles")


def event_trace(*sinks: ListSink) -> list[tuple[str, int, int, int | None, str]]:
    """The events of several sinks without timestamps or numbers in their data, for
    comparing runs (resume events left out)."""
    return [(e.kind.value, e.cycle, e.step_count, e.step_id, e.message)
            for sink in sinks for e in sink.events if e.kind is not EventKind.JOB_RESUME]


def first_index(values: np.ndarray, predicate: Callable[[np.ndarray], np.ndarray]) -> int:
    """The index of the first value meeting ``predicate``."""
    found = np.flatnonzero(predicate(values))
    assert found.shape[0], "no value meets the predicate"
    return int(found[0])


def ceil_time(seconds: float) -> float:
    """The first whole-second reading at or after ``seconds`` (readings are 1 s apart)."""
    return float(math.ceil(seconds - 1e-9))

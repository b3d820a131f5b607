"""Checkpoints: the complete state as JSON at every step boundary and periodically; an engine
started from one continues the same step and gives the same results as a run that never
stopped.

A crash is a sink that raises right after storing a chosen checkpoint (the daemon's process
dying). The rig object keeps its physical state across the restart, as a real cell would, and
the new engine starts from the stored (JSON round-tripped) checkpoint.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from engine_helpers import (
    Crash,
    CrashSink,
    assert_samples_equal,
    assert_summaries_equal,
    crash_and_resume,
    event_trace,
    program,
    rig,
    run,
    samples_of,
)

from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.engine import Engine, EventKind, JobState, ListSink
from cellrig.protocols.engine.runner import EngineError
from cellrig.protocols.engine.state import EngineState
from cellrig.protocols.program import Program

STEPS = """
  - repeat: 2
    steps:
      - cccv: {current: 1C, voltage: 3.90025 V, cutoff: 0.1C}
      - Rest for 10 minutes
      - Discharge at 1C until 3.20025 V
      - pulse: {discharge: C/5, duration: 5 min, rest: 2 min, count: 2}
"""
LIMITS = "{voltage: {range: [2.5 V, 4.5 V], warn: [3.1 V, 3.88 V]}}"
RECORD = "{every: 30 s, voltage_change: 10 mV}"


@pytest.fixture(scope="module")
def cycling() -> Program:
    """Two cycles of CC-CV, rest, CC discharge and a pulse train."""
    return program(STEPS, limits=LIMITS, record=RECORD)


def where(state: dict[str, Any], prog: Program) -> str:
    """What kind of point in the program a checkpoint is at."""
    step = state["step"]
    if step is None:
        return "between steps"
    if step["elapsed_s"] == 0.0:
        return "step start"
    kind = {s.id: type(s).__name__ for s in prog.iter_steps()}[step["step_id"]]
    if kind == "CccvStep":
        return f"cccv phase {step['phase']}"
    if kind == "PulseStep":
        return f"pulse phase {step['phase']}"
    return kind


async def all_checkpoints(prog: Program, **options: Any) -> tuple[ListSink, list[str]]:
    """An uninterrupted run's sink (checkpoints as JSON) and where each checkpoint was."""
    sink = CrashSink()
    await run(prog, rig(), sink, **options)
    return sink, [where(c, prog) for c in sink.checkpoints]


async def test_checkpoints_are_json_and_round_trip(cycling: Program) -> None:
    sink, _ = await all_checkpoints(cycling, checkpoint_every_s=300.0)
    assert len(sink.checkpoints) > 20
    for data in sink.checkpoints:
        text = json.dumps(data, allow_nan=False)
        assert EngineState.from_checkpoint(json.loads(text)).to_checkpoint() == data


async def test_a_checkpoint_at_every_step_boundary_and_periodically(cycling: Program) -> None:
    sequence: list[tuple[str, float]] = []

    class Recorder(ListSink):
        def event(self, event: Any) -> None:
            sequence.append((event.kind.value, event.test_time_s))

        def checkpoint(self, state: dict[str, Any]) -> None:
            sequence.append(("checkpoint", state["test_time_s"]))

    await run(cycling, rig(), Recorder(), checkpoint_every_s=120.0)
    starts = [i for i, (kind, _) in enumerate(sequence) if kind == "step start"]
    assert len(starts) == 8
    assert all(sequence[i + 1][0] == "checkpoint" for i in starts)
    times = [t for kind, t in sequence if kind == "checkpoint"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 240.0  # periodic ones within long steps


async def test_resume_at_every_kind_of_point_gives_the_uninterrupted_results(
        cycling: Program) -> None:
    whole, kinds = await all_checkpoints(cycling, checkpoint_every_s=120.0)
    wanted = ["step start", "between steps", "cccv phase 0", "cccv phase 1", "RestStep",
              "CurrentStep", "pulse phase 0", "pulse phase 1"]
    assert set(wanted) <= set(kinds)
    for kind in wanted:
        # the second checkpoint of each kind (the first may be in the first cycle's first step)
        index = [i for i, k in enumerate(kinds) if k == kind][1]
        resumed, crashed, did_crash = await crash_and_resume(cycling, rig(), index + 1,
                                                             checkpoint_every_s=120.0)
        assert did_crash and resumed.outcome.state is JobState.COMPLETED, kind
        assert_summaries_equal(crashed.cycles + resumed.sink.cycles, whole.cycles)
        assert_samples_equal(samples_of(crashed, resumed.sink), samples_of(whole))
        assert event_trace(crashed, resumed.sink) == event_trace(whole), kind


async def test_the_resumed_engine_continues_the_same_step(cycling: Program) -> None:
    _, kinds = await all_checkpoints(cycling, checkpoint_every_s=120.0)
    index = kinds.index("cccv phase 0") + 2
    test_rig = rig()
    resumed, crashed, _ = await crash_and_resume(cycling, test_rig, index + 1,
                                                 checkpoint_every_s=120.0)
    state = crashed.checkpoints[-1]
    assert state["step"]["step_id"] == 1 and state["step"]["phase"] == 0
    events = resumed.sink.events
    assert events[0].kind is EventKind.JOB_RESUME
    assert events[1].kind is not EventKind.STEP_START
    assert resumed.column("Step Count / 1")[0] == state["step_count"]
    first = [c for c in test_rig.applied if c.elapsed_s == state["step"]["elapsed_s"]][-1]
    assert first.mode.value == "current" and first.elapsed_s > 0
    totals = state["step"]["totals"]
    assert first.charge_ah == pytest.approx(totals["charge_ah"] - totals["discharge_ah"])


async def test_a_resume_after_the_last_checkpoint_repeats_nothing(cycling: Program) -> None:
    whole, kinds = await all_checkpoints(cycling)
    resumed, crashed, _ = await crash_and_resume(cycling, rig(), len(kinds))
    assert resumed.outcome.state is JobState.COMPLETED
    assert resumed.sink.cycles == [] and resumed.sink.blocks == []
    assert resumed.sink.events == []
    assert_summaries_equal(crashed.cycles, whole.cycles)


async def test_a_restart_from_an_aborted_jobs_last_checkpoint_does_not_run_again() -> None:
    prog = program("  - Charge at 1C until 4.2 V\n  - Rest for 1 minute",
                   limits="{voltage: [2.5 V, 4.05005 V]}")
    whole, _ = await all_checkpoints(prog)
    test_rig = rig()
    resumed, crashed, did_crash = await crash_and_resume(prog, test_rig,
                                                         len(whole.checkpoints))
    assert did_crash and crashed.checkpoints[-1]["ended"] == "aborted"
    applied = len(test_rig.applied)
    assert resumed.outcome.state is JobState.ABORTED
    assert resumed.outcome.reason == crashed.checkpoints[-1]["ended_reason"]
    assert resumed.sink.blocks == [] and resumed.sink.events == []
    assert len(test_rig.applied) == applied and test_rig.command.mode.value == "off"


async def test_a_checkpoint_of_another_program_is_refused(cycling: Program) -> None:
    sink, _ = await all_checkpoints(cycling)
    other = program("  - Rest for 1 minute")
    with pytest.raises(EngineError, match="another program"):
        Engine(other, rig(), ListSink(), VirtualClock(), checkpoint=sink.checkpoints[3])


def test_a_checkpoint_of_another_format_is_refused() -> None:
    data = EngineState().to_checkpoint()
    data["format"] = 99
    with pytest.raises(ValueError, match="checkpoint format"):
        EngineState.from_checkpoint(data)


async def test_limit_delay_and_warning_state_survive_a_restart() -> None:
    prog = program("""
  - Charge at 1C until 4.2 V
""", limits="{voltage: {range: [2.5 V, 4.05005 V], warn: [2.6 V, 3.9 V], delay: 20 s}}",
                   record="{every: 1 s}")
    whole = await run(prog, rig())
    assert whole.outcome.state is JobState.ABORTED
    # crash 10 s into the breach (a periodic checkpoint every 10 s of test time)
    crashed_at = int(whole.outcome.test_time_s - 10) // 10
    resumed, crashed, did_crash = await crash_and_resume(prog, rig(), crashed_at + 1,
                                                         checkpoint_every_s=10.0)
    assert did_crash
    state = crashed.checkpoints[-1]
    assert state["limit_since"]["voltage"] is not None and state["warned"]["voltage"]
    assert resumed.outcome.state is JobState.ABORTED
    assert resumed.outcome.test_time_s == whole.outcome.test_time_s
    assert len(resumed.events(EventKind.WARNING)) == 0


async def test_a_breach_keeps_its_delay_across_a_restart_on_a_rebooted_instrument() -> None:
    # The breach delay runs in test time: an instrument whose clock restarted with the
    # daemon must not stretch it.
    prog = program("  - Charge at 1C until 4.2 V",
                   limits="{voltage: {range: [2.5 V, 4.05005 V], delay: 20 s}}",
                   record="{every: 1 s}")
    whole = await run(prog, rig())
    test_rig = rig()
    crashed = CrashSink(crash_at=int(whole.outcome.test_time_s - 10) // 10 + 1)
    engine = Engine(prog, test_rig, crashed, VirtualClock(), checkpoint_every_s=10.0)
    with pytest.raises(Crash):
        await engine.run()
    assert crashed.checkpoints[-1]["limit_since"]["voltage"] is not None
    test_rig.time_s = 0.0  # the instrument rebooted: its clock starts again
    resumed = await run(prog, test_rig, checkpoint=crashed.checkpoints[-1])
    assert resumed.outcome.state is JobState.ABORTED
    assert resumed.outcome.test_time_s == whole.outcome.test_time_s


@pytest.mark.parametrize("first", ["", "  - Charge at 1C for 10 minutes\n"])
async def test_a_resume_at_an_eis_step_keeps_the_sweeps_time(first: str) -> None:
    prog = program(first + """
  - eis: {start: 1 kHz, stop: 1 Hz, amplitude: 10 mV}
  - Discharge at 1C for 10 minutes
""")
    whole, _kinds = await all_checkpoints(prog)
    at_eis = next(i for i, c in enumerate(whole.checkpoints) if c["step"] is not None
              and c["step"]["step_id"] == (2 if first else 1))
    resumed, crashed, _ = await crash_and_resume(prog, rig(), at_eis + 1)
    assert_summaries_equal(crashed.cycles + resumed.sink.cycles, whole.cycles)
    assert_samples_equal(samples_of(crashed, resumed.sink), samples_of(whole))
    assert resumed.outcome.test_time_s == whole.column("Test Time / s")[-1] == 60.0 + (
        1200.0 if first else 600.0)

"""Safety limits (breach after its delay aborts the job and makes the rig safe), warnings with
hysteresis, and control from outside: pause, resume, stop, cancellation, a failing sink.

Control is driven in virtual time: from a sink callback (the engine calls it synchronously,
at a known reading), or from another task when the rig yields at every read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import numpy as np
import pytest
from engine_helpers import HookSink, Run, WobblyRig, YieldingRig, program, rig, run
from rigs import LinearCell

from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.engine import Engine, Event, EventKind, JobState, ListSink, SampleBlock
from cellrig.protocols.rig import Mode

BLOCKINGS = [(1, False), (1000, False), (1000, True)]


async def assert_aborted_at(done: Run, limit: str, breach_time: float) -> None:
    """The job aborted on ``limit`` at ``breach_time``: event, safe rig, no later samples."""
    outcome, sink, test_rig = done.outcome, done.sink, done.rig
    assert outcome.state is JobState.ABORTED
    assert limit in outcome.reason
    limits = [e for e in sink.events if e.kind is EventKind.LIMIT]
    assert len(limits) == 1 and limits[0].data["limit"] == limit
    assert limits[0].test_time_s == breach_time
    assert sink.column("Test Time / s")[-1] == breach_time
    after = [e.kind for e in sink.events][[e.kind for e in sink.events].index(EventKind.LIMIT):]
    assert after in ([EventKind.LIMIT, EventKind.CYCLE_END, EventKind.JOB_END],
                     [EventKind.LIMIT, EventKind.JOB_END])
    assert test_rig.safe_calls == 1 and test_rig.command.mode is Mode.OFF


@pytest.mark.parametrize(("block_size", "device"), BLOCKINGS)
async def test_voltage_limit_breach_aborts_at_the_first_reading_outside(
        block_size: int, device: bool) -> None:
    prog = program("  - Charge at 1C until 4.2 V", limits="{voltage: [2.5 V, 4.05005 V]}")
    done = await run(prog, rig(block_size, device))
    breach = math.ceil((4.05005 - 3.1) * 3000)
    await assert_aborted_at(done, "voltage", float(breach))
    voltage = done.column("Voltage / V")
    assert voltage[-1] > 4.05005 >= voltage[-2]
    assert not done.events(EventKind.STEP_END)


@pytest.mark.parametrize(("block_size", "device"), BLOCKINGS)
async def test_a_breach_must_last_its_delay(block_size: int, device: bool) -> None:
    prog = program("  - Charge at 1C until 4.2 V",
                   limits="{voltage: {range: [2.5 V, 4.05005 V], delay: 5 s}}")
    done = await run(prog, rig(block_size, device))
    await assert_aborted_at(done, "voltage", float(math.ceil((4.05005 - 3.1) * 3000) + 5))


async def test_a_breach_shorter_than_its_delay_does_not_abort() -> None:
    prog = program("""
  - Charge at 1C until 4.0501 V
  - Rest for 1 minute
  - Charge at 1C until 4.0501 V
""", limits="{voltage: {range: [2.5 V, 4.05 V], delay: 5 s}}")
    done = await run(prog, rig(charge_ah=0.7))
    assert done.outcome.state is JobState.COMPLETED
    above = done.column("Test Time / s")[done.column("Voltage / V") > 4.05]
    runs = np.split(above, np.flatnonzero(np.diff(above) > 1.0) + 1)
    assert len(runs) == 2 and all(r[-1] - r[0] < 5.0 for r in runs)


async def test_a_limit_wins_a_tie_with_a_condition() -> None:
    prog = program("  - Charge at 1C until 4.05005 V", limits="{voltage: [2.5 V, 4.05005 V]}")
    done = await run(prog)
    assert done.outcome.state is JobState.ABORTED


@pytest.mark.parametrize(("steps", "limits", "name", "breach", "charge"), [
    ("  - Hold at 3.5 V for 10 minutes", "{current: 1.5C}", "current", 0.0, 0.25),
    ("  - set: {temperature: 30 degC}\n  - Rest for 10 minutes",
     "{temperature: [0 degC, 28 degC]}", "temperature", 55.0, 0.0),
    ("  - set: {pressure: 2 MPa}\n  - Rest for 10 minutes",
     "{pressure: [0.5 MPa, 1.6 MPa]}", "pressure", 55.0, 0.0),
    ("  - charge: 0.7 A\n    for: 20 minutes", "{charge_per_step: 100 mAh}",
     "charge per step", 515.0, 0.0),
])
async def test_every_kind_of_limit(steps: str, limits: str, name: str, breach: float,
                                   charge: float) -> None:
    done = await run(program(steps, limits=limits), rig(charge_ah=charge))
    await assert_aborted_at(done, name, breach)


async def test_the_charge_per_step_limit_restarts_with_every_step() -> None:
    prog = program("""
  - charge: 0.7 A
    for: 8 minutes
  - charge: 0.7 A
    for: 8 minutes
""", limits="{charge_per_step: 100 mAh}")
    done = await run(prog)
    assert done.outcome.state is JobState.COMPLETED


WARNING_STEPS = """
  - Charge at 1C until 3.95 V
  - Rest for 1 minute
  - Charge at 1C until 3.95 V
  - Rest for 1 minute
  - Charge at 0.1C until 3.92 V
  - Rest for 1 minute
  - Discharge at 0.1C for 1 minute
  - Charge at 0.1C until 3.93 V
"""


@pytest.mark.parametrize(("block_size", "device"), BLOCKINGS)
async def test_warnings_with_hysteresis(block_size: int, device: bool) -> None:
    # warn above 3.9 V; re-armed below 3.9 V - 1 % of the 2 V window = 3.88 V
    prog = program(WARNING_STEPS,
                   limits="{voltage: {range: [2.5 V, 4.5 V], warn: [2.6 V, 3.9 V]}}")
    done = await run(prog, rig(block_size, device, charge_ah=0.6))
    warnings = done.events(EventKind.WARNING)
    assert [w.step_id for w in warnings] == [1, 3, 5]
    assert all(w.data["limit"] == "voltage" and w.data["value"] > 3.9 for w in warnings)
    assert done.outcome.state is JobState.COMPLETED
    voltage, test_time = done.column("Voltage / V"), done.column("Test Time / s")
    first_above = test_time[np.flatnonzero(voltage > 3.9)[0]]
    assert warnings[0].test_time_s == first_above


@pytest.mark.parametrize(("block_size", "device"), BLOCKINGS)
async def test_every_excursion_warns_once_whatever_the_block_size(block_size: int,
                                                                  device: bool) -> None:
    # a rest at 3.88 V with a 50 mV, 100 s wobble: above 3.9 V and back below the re-arm
    # level 3.88 V six times, all within one block of 1,000 readings
    prog = program("  - Rest for 10 minutes",
                   limits="{voltage: {range: [2.5 V, 4.5 V], warn: [2.6 V, 3.9 V]}}")
    test_rig = WobblyRig(cell=LinearCell(charge_ah=0.88 / 1.2), block_size=block_size,
                         device_cutoffs=device)
    done = await run(prog, test_rig)
    warnings = [w.test_time_s for w in done.events(EventKind.WARNING)]
    voltage, test_time = done.column("Voltage / V"), done.column("Test Time / s")
    above = voltage > 3.9
    rising = test_time[1:][above[1:] & ~above[:-1]]
    assert warnings == rising.tolist() and len(warnings) == 6


async def test_a_current_warning() -> None:
    prog = program("  - Hold at 3.4 V until 0.05C",
                   limits="{current: {max: 2C, warn: 0.5C}}")
    done = await run(prog, rig(charge_ah=0.25))
    warnings = done.events(EventKind.WARNING)
    assert len(warnings) == 1 and warnings[0].data["value"] == pytest.approx(1.0)


# -- pause, resume, stop ---------------------------------------------------------------------


def control_sink(at_test_time: float, action: Callable[[], None]) -> HookSink:
    """A sink that calls ``action()`` once, on the sample at ``at_test_time``."""
    fired = []

    def on_samples(block: SampleBlock) -> None:
        if not fired and block.columns["Test Time / s"][-1] >= at_test_time:
            fired.append(True)
            action()

    return HookSink(on_samples=on_samples)


async def test_pause_turns_the_output_off_and_resume_continues_the_step() -> None:
    test_rig = rig()
    sink = HookSink()
    engine = Engine(program("  - Charge at 1C for 10 minutes\n  - Rest for 1 minute"), test_rig,
                    sink, VirtualClock())
    paused = asyncio.Event()
    sink.on_samples = lambda block: (engine.pause() if block.columns["Test Time / s"][-1] == 100
                                     else None)
    sink.on_event = lambda event: paused.set() if event.kind is EventKind.PAUSE else None
    job = asyncio.create_task(engine.run())
    await paused.wait()
    assert test_rig.command.mode is Mode.OFF and test_rig.safe_calls == 1
    charge_before = test_rig.cell.charge_ah
    test_rig.time_s += 500.0  # the instrument's clock runs on while the output is off
    engine.resume()
    outcome = await job
    assert outcome.state is JobState.COMPLETED
    assert test_rig.cell.charge_ah > charge_before
    resumed = [c for c in test_rig.applied if c.elapsed_s == 100.0]
    assert len(resumed) == 1 and resumed[0].charge_ah == pytest.approx(100 / 3600)
    charge_step = sink.column("Step ID") == 1
    step_time = sink.column("Step Time / s")[charge_step]
    assert step_time.tolist() == [float(s) for s in range(601)]
    assert sink.column("Step Charging Capacity / Ah")[charge_step][-1] == pytest.approx(
        600 / 3600, rel=1e-12)
    test_time = sink.column("Test Time / s")[charge_step]
    assert test_time[-1] == 1100.0 and np.diff(test_time).max() == 501.0
    kinds = [e.kind for e in sink.events]
    assert kinds.index(EventKind.PAUSE) < kinds.index(EventKind.RESUME)


async def test_a_pause_between_steps_applies_nothing_until_resumed() -> None:
    test_rig = rig()
    sink = HookSink()
    engine = Engine(program("  - Charge at 1C for 1 minute\n  - Discharge at 1C for 1 minute"),
                    test_rig, sink, VirtualClock())
    seen: list[list[float]] = []

    def on_event(event: Event) -> None:
        if event.kind is EventKind.STEP_END and event.step_id == 1:
            engine.pause()
        if event.kind is EventKind.PAUSE:
            seen.append([c.current_a for c in test_rig.applied])
            engine.resume()

    sink.on_event = on_event
    assert (await engine.run()).state is JobState.COMPLETED
    assert seen == [[1.0]]
    assert [c.current_a for c in test_rig.applied] == [1.0, -1.0]


async def test_stop_ends_the_job_at_the_next_block_in_the_safe_state() -> None:
    test_rig = rig()
    engine_box: list[Engine] = []
    sink = control_sink(100.0, lambda: engine_box[0].stop("operator stop"))
    engine = Engine(program("  - Charge at 1C for 10 minutes"), test_rig, sink, VirtualClock())
    engine_box.append(engine)
    outcome = await engine.run()
    assert outcome.state is JobState.STOPPED and outcome.reason == "operator stop"
    assert sink.column("Test Time / s")[-1] == 100.0
    assert test_rig.safe_calls == 1 and test_rig.command.mode is Mode.OFF
    assert sink.events[-1].kind is EventKind.JOB_END
    assert sink.events[-1].data["state"] == "stopped"


async def test_stop_while_paused() -> None:
    test_rig = rig()
    sink = HookSink()
    engine = Engine(program("  - Charge at 1C for 10 minutes"), test_rig, sink, VirtualClock())
    sink.on_samples = lambda block: (engine.pause() if block.columns["Test Time / s"][-1] == 50
                                     else None)
    sink.on_event = lambda event: engine.stop() if event.kind is EventKind.PAUSE else None
    outcome = await engine.run()
    assert outcome.state is JobState.STOPPED
    assert EventKind.RESUME not in [e.kind for e in sink.events]
    assert test_rig.safe_calls == 2  # at the pause, and at the end


async def test_pause_and_stop_from_another_task() -> None:
    test_rig = YieldingRig(block_size=10)
    sink = ListSink()
    engine = Engine(program("  - Charge at 1C for 1 h"), test_rig, sink, VirtualClock())
    job = asyncio.create_task(engine.run())
    while test_rig.time_s < 1300.0:
        await asyncio.sleep(0)
    engine.pause()
    while EventKind.PAUSE not in [e.kind for e in sink.events]:
        await asyncio.sleep(0)
    assert test_rig.command.mode is Mode.OFF
    time_at_pause = test_rig.time_s
    engine.stop()
    outcome = await job
    assert outcome.state is JobState.STOPPED
    assert test_rig.time_s == time_at_pause
    assert 300.0 <= sink.column("Test Time / s")[-1] <= 320.0


async def test_cancelling_the_engine_task_leaves_the_rig_safe() -> None:
    test_rig = YieldingRig()
    engine = Engine(program("  - Charge at 1C for 1 h"), test_rig, ListSink(), VirtualClock())
    job = asyncio.create_task(engine.run())
    while test_rig.time_s < 1100.0:
        await asyncio.sleep(0)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert test_rig.safe_calls == 1 and test_rig.command.mode is Mode.OFF


async def test_a_failing_sink_leaves_the_rig_safe() -> None:
    class Broken(Exception):
        pass

    def fail(block: SampleBlock) -> None:
        if block.columns["Test Time / s"][-1] >= 30:
            raise Broken("disk full")

    test_rig = rig()
    engine = Engine(program("  - Charge at 1C for 1 h"), test_rig, HookSink(on_samples=fail),
                    VirtualClock())
    with pytest.raises(Broken):
        await engine.run()
    assert test_rig.safe_calls == 1 and test_rig.command.mode is Mode.OFF

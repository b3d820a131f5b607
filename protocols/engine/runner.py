"""The engine: runs a program on a rig, block by block, from the start or from a checkpoint.

One engine runs one job. It walks the compiled program (``compile.py``), runs each step
through ``steps.py``, counts cycles by the rule in ``cycles.py``, and hands everything it
produces to its sink. A limit breach aborts the job; a fault (an instrument error, a chamber
that never settles) fails it; a stop request stops it; in every case the rig ends in its safe
state, also when the engine's task is cancelled.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cellrig.errors import CellrigError
from cellrig.protocols.clock import Clock, SystemClock
from cellrig.protocols.program import Direction, Program
from cellrig.protocols.rig import Rig

from .compile import Exec, LoopEnter, compile_program
from .cycles import RETENTION_THRESHOLDS, condition_holds, figures, starts_new_cycle, summarise
from .output import Event, EventKind, Sink
from .process import BlockProcessor, Timebase
from .state import CycleProgress, EngineState, StepProgress
from .steps import Finished, LimitTripped, StepRunner


class JobState(StrEnum):
    """How a job ended."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """The end of a job, with the per-test figures."""

    state: JobState
    reason: str
    cycles: int
    test_time_s: float
    initial_coulombic_efficiency: float | None
    cycles_to_retention: dict[str, int] = field(default_factory=dict)


class EngineError(CellrigError):
    """The engine cannot run this program or checkpoint."""


class Engine:
    """Runs ``program`` on ``rig``, sending output to ``sink``.

    ``checkpoint`` (from a sink's ``checkpoint`` calls) continues a job where it stopped: the
    same step, with its elapsed time and charge. ``checkpoints=False`` sends none at all, for a
    run that nothing resumes (a simulation), which then saves building the state at every
    step. ``reference_cycle`` is the cycle that ``reference_retention`` in cycle summaries is
    measured against.
    """

    def __init__(self, program: Program, rig: Rig, sink: Sink, clock: Clock | None = None, *,
                 checkpoint: dict[str, Any] | None = None, checkpoint_every_s: float = 60.0,
                 reference_cycle: int | None = None, checkpoints: bool = True) -> None:
        self.program = program
        self.rig = rig
        self.sink = sink
        self.clock = clock or SystemClock()
        self.compiled = compile_program(program)
        self.resumed = checkpoint is not None
        if checkpoint is not None:
            self.state = EngineState.from_checkpoint(checkpoint)
            if self.state.program_sha256 != program.sha256:
                raise EngineError("the checkpoint belongs to another program")
        else:
            self.state = EngineState(program_sha256=program.sha256)
        self.timebase = Timebase(self.state.test_time_s)
        self.processor = BlockProcessor(self.state, program.limits, sink, self.clock,
                                        self.timebase)
        self.checkpoint_every_s = checkpoint_every_s
        self.checkpoints = checkpoints
        self.reference_cycle = reference_cycle
        self._running = asyncio.Event()
        self._running.set()
        self._stop_reason: str | None = None
        self._last_checkpoint_s = self.state.test_time_s
        self._kept_cycles = {1} | ({reference_cycle} if reference_cycle else set()) | {
            c.reference for loop in self.compiled.loops for c in loop.until
            if isinstance(c.reference, int)
        }
        self.steps = StepRunner(self)

    # -- control from outside ----------------------------------------------------------------

    def pause(self) -> None:
        """Pause at the next block: output off until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        """Continue a paused job: the step goes on where it was."""
        self._running.set()

    def stop(self, reason: str = "stopped on request") -> None:
        """Stop the job at the next block, in the safe state."""
        self._stop_reason = reason
        self._running.set()

    @property
    def paused(self) -> bool:
        """Whether a pause has been asked for."""
        return not self._running.is_set()

    @property
    def stop_reason(self) -> str | None:
        """Why a stop was asked for, if it was."""
        return self._stop_reason

    async def wait_running(self) -> None:
        """Wait until the job is not paused."""
        await self._running.wait()

    # -- output helpers ----------------------------------------------------------------------

    def event(self, kind: EventKind, message: str = "", step_id: int | None = None,
              **data: Any) -> None:
        """Send an event stamped with the current position in the test."""
        state = self.state
        self.sink.event(Event(kind, state.test_time_s, self.clock.unix_now(),
                              state.cycle.number, state.step_count, step_id, message, data))

    def checkpoint(self) -> None:
        """Send the complete state now (unless the engine sends no checkpoints)."""
        self._last_checkpoint_s = self.state.test_time_s
        if self.checkpoints:
            self.sink.checkpoint(self.state.to_checkpoint())

    def maybe_checkpoint(self) -> None:
        """Send the state if ``checkpoint_every_s`` of test time passed since the last one."""
        if self.state.test_time_s - self._last_checkpoint_s >= self.checkpoint_every_s:
            self.checkpoint()

    # -- the job -----------------------------------------------------------------------------

    async def run(self) -> JobOutcome:
        """Run the job to its end; the rig is safe afterwards, whatever happened."""
        if self.resumed and self.state.ended is not None:
            # The checkpoint is the job's last: it ended (and said so) before the restart.
            await self._make_safe()
            return self._outcome(JobState(self.state.ended), self.state.ended_reason)
        if self.resumed:
            self.event(EventKind.JOB_RESUME, f"resumed at test time {self.state.test_time_s:g} s")
        else:
            self.event(EventKind.JOB_START, self.program.name,
                       program_sha256=self.program.sha256)
            self.event(EventKind.CYCLE_START, "cycle 1")
        state, reason = JobState.COMPLETED, "the program ran to its end"
        try:
            await self._execute()
        except Finished as finished:
            reason = finished.reason
        except LimitTripped as trip:
            state, reason = JobState.ABORTED, trip.message
            self.event(EventKind.LIMIT, trip.message, trip.step_id, limit=trip.limit,
                       value=trip.value)
        except _Stopped:
            state, reason = JobState.STOPPED, self._stop_reason or "stopped"
        except CellrigError as exc:
            state, reason = JobState.FAILED, str(exc)
            self.event(EventKind.FAULT, reason)
        except BaseException:
            # Cancelled, or something outside the engine failed (the sink, a rig raising
            # outside the exception tree): the job cannot be recorded further, but the cell
            # must not stay under current.
            await self._make_safe()
            raise
        await self._make_safe()
        return self._finish(state, reason)

    async def _make_safe(self) -> None:
        try:
            await self.rig.safe()
        except CellrigError as exc:  # the store keeps the record; the daemon escalates
            self.event(EventKind.FAULT, f"could not make the rig safe: {exc}")

    def _finish(self, state: JobState, reason: str) -> JobOutcome:
        cycle = self.state.cycle
        if cycle.totals.charge_ah > 0 or cycle.totals.discharge_ah > 0:
            # A cycle cut short by a stop, an abort or a fault is summarised, but its
            # retention says nothing about the cell's fade.
            self.close_cycle(open_next=False, complete=state is JobState.COMPLETED)
            # Summarised once: a restart from the final checkpoint must not repeat it.
            self.state.cycle = CycleProgress(number=cycle.number,
                                             start_test_time_s=self.state.test_time_s)
        outcome = self._outcome(state, reason)
        self.event(EventKind.JOB_END, reason, state=state.value,
                   initial_coulombic_efficiency=outcome.initial_coulombic_efficiency,
                   cycles_to_retention=outcome.cycles_to_retention)
        self.state.ended, self.state.ended_reason = state.value, reason
        self.checkpoint()
        return outcome

    def _outcome(self, state: JobState, reason: str) -> JobOutcome:
        first = self.state.cycle_figures.get("1", {})
        return JobOutcome(
            state, reason, self.state.cycle.number, self.state.test_time_s,
            first.get("coulombic efficiency"), dict(self.state.retention_reached),
        )

    async def _execute(self) -> None:
        instructions = self.compiled.instructions
        state = self.state
        while state.pc < len(instructions):
            self.check_stop()
            instruction = instructions[state.pc]
            if isinstance(instruction, Exec):
                state.pc = await self._run_step(instruction)
            elif isinstance(instruction, LoopEnter):
                key = str(instruction.loop)
                state.loop_counters[key] = 0
                state.loop_first.pop(key, None)
                state.loop_max.pop(key, None)
                count = self.compiled.loops[instruction.loop].count
                state.pc = instruction.exit_pc if count == 0 else state.pc + 1
            else:
                state.pc = self._loop_next(instruction.loop, instruction.body_pc)
                self.checkpoint()

    def check_stop(self) -> None:
        """Raise if a stop was asked for."""
        if self._stop_reason is not None:
            raise _Stopped

    def _loop_next(self, loop_index: int, body_pc: int) -> int:
        state = self.state
        key = str(loop_index)
        loop = self.compiled.loops[loop_index]
        state.loop_counters[key] = state.loop_counters.get(key, 0) + 1
        # A loop whose steps discharge before they charge has just opened a new cycle: its
        # figures are those of the cycle that ended.
        current = figures(state.cycle) if state.cycle.discharged else dict(
            state.last_cycle_figures)
        first = state.loop_first.setdefault(key, dict(current))
        best = state.loop_max.setdefault(key, {})
        for metric, value in current.items():
            best[metric] = max(best.get(metric, -math.inf), value)
        for condition in loop.until:
            if condition_holds(condition, current, first, best, state.cycle_figures):
                self.event(EventKind.STEP_END, f"loop ended: {condition.text}",
                           loop=loop.label, iterations=state.loop_counters[key])
                return state.pc + 1
        if loop.count is not None and state.loop_counters[key] >= loop.count:
            return state.pc + 1
        return body_pc

    async def _run_step(self, instruction: Exec) -> int:
        step = instruction.step
        state = self.state
        resuming = state.step is not None and state.step.step_id == step.id
        if not resuming:
            if starts_new_cycle(step.direction, state.cycle):
                self.close_cycle(open_next=True)
            if step.direction is Direction.DISCHARGE:
                state.cycle.discharged = True
            state.step_count += 1
            state.step = StepProgress(step_id=step.id)
            state.limit_since.pop("charge per step", None)
            self.event(EventKind.STEP_START, step.label, step.id)
            self.checkpoint()
        target, reason = await self.steps.run(step)
        self.event(EventKind.STEP_END, reason, step.id)
        state.step = None
        if target == "stop":
            raise Finished(f"step {step.id} ended ({reason}) and went to 'stop'")
        return state.pc + 1 if target in (None, "next") else self.compiled.tags[target]

    def close_cycle(self, open_next: bool, complete: bool = True) -> None:
        """End the current cycle: summary, kept figures, retention; open the next one."""
        state = self.state
        cycle = state.cycle
        first = state.cycle_figures.get("1", {}).get("discharge capacity")
        reference = None
        if self.reference_cycle is not None:
            reference = state.cycle_figures.get(str(self.reference_cycle), {}).get(
                "discharge capacity")
        if cycle.number == 1:
            first = cycle.totals.discharge_ah
        if cycle.number == self.reference_cycle:
            reference = cycle.totals.discharge_ah
        summary = summarise(cycle, state.test_time_s, first, reference)
        state.last_cycle_figures = figures(cycle)
        if cycle.number in self._kept_cycles:
            state.cycle_figures[str(cycle.number)] = figures(cycle)
        if summary.retention is not None and complete:
            for threshold in RETENTION_THRESHOLDS:
                key = f"{threshold:.0%}"
                if summary.retention <= threshold and key not in state.retention_reached:
                    state.retention_reached[key] = cycle.number
        self.sink.cycle(summary)
        self.event(EventKind.CYCLE_END, f"cycle {cycle.number}",
                   discharge_capacity_ah=summary.discharge_capacity_ah,
                   coulombic_efficiency=summary.coulombic_efficiency)
        if open_next:
            state.cycle = CycleProgress(number=cycle.number + 1,
                                        start_test_time_s=state.test_time_s)
            self.event(EventKind.CYCLE_START, f"cycle {cycle.number + 1}")


class _Stopped(Exception):
    """A stop was asked for."""

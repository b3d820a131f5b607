"""Running each kind of step on the rig: what command to apply, which conditions end it.

Sourcing steps share one loop (``_source``): apply a command, read blocks, process each, and
stop at the first condition. CC-CV switches from CC to CV inside the step at the voltage;
pulse trains alternate pulse and rest phases; ``set`` waits on the block's temperature and
pressure readings until they are stable. All of them continue from the step's saved progress
after a resume.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cellrig.errors import CellrigError
from cellrig.protocols.program import (
    CccvStep,
    Condition,
    CurrentStep,
    Direction,
    EisStep,
    Operator,
    PowerStep,
    PulseStep,
    Quantity,
    ResistanceStep,
    RestStep,
    SetStep,
    Step,
    StopStep,
    VoltageStep,
)
from cellrig.protocols.rig import Block, Command, Mode

from .blocks import compare, run_trip
from .output import EventKind, StepType
from .process import BlockResult, EndKind
from .process import Command as Running
from .state import StepProgress

if TYPE_CHECKING:
    from .runner import Engine

PHASE_END = "\x00phase"


class Finished(Exception):
    """The program ended early on purpose (a ``stop`` step, or ``then: stop``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LimitTripped(Exception):
    """A safety limit was breached for longer than its delay."""

    def __init__(self, limit: str, value: float, step_id: int) -> None:
        self.limit, self.value, self.step_id = limit, value, step_id
        self.message = f"{limit} limit breached ({value:.6g}) in step {step_id}"
        super().__init__(self.message)


class StepFault(CellrigError):
    """A step cannot go on: the rig lacks what it needs, or the environment never settled."""


def _direction_type(direction: Direction, charge: StepType, discharge: StepType) -> StepType:
    return charge if direction is Direction.CHARGE else discharge


def _describe(result: BlockResult) -> str:
    if result.condition is None:
        return "the instrument ended the step"
    return f"until {result.condition.text or result.condition.quantity.value}"


class StepRunner:
    """Runs steps for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(self, step: Step) -> tuple[str | None, str]:
        """Run (or continue) ``step``; returns the ``then`` target and why it ended."""
        if isinstance(step, StopStep):
            raise Finished(f"stop step {step.id}: {step.reason}".rstrip(": "))
        if isinstance(step, EisStep):
            return await self._eis(step)
        if isinstance(step, SetStep):
            return await self._set(step)
        if isinstance(step, CccvStep):
            return await self._cccv(step)
        if isinstance(step, PulseStep):
            return await self._pulse(step)
        command, step_type, cv = self._simple_command(step)
        result = await self._source(step, command, step.until, step_type, cv)
        return self._ending(result)

    def _ending(self, result: BlockResult) -> tuple[str | None, str]:
        return (None if result.condition is None else result.condition.then), _describe(result)

    def _compliance(self, direction: Direction) -> float | None:
        limit = self.engine.program.limits.voltage_v
        if limit is None:
            return None
        return limit.high if direction is Direction.CHARGE else limit.low

    def _simple_command(self, step: Step) -> tuple[Command, StepType | None, bool]:
        max_current = self.engine.program.limits.current_a
        current_limit = None if max_current is None else max_current.high
        if isinstance(step, CurrentStep):
            limit = (step.voltage_limit_v if step.voltage_limit_v is not None
                     else self._compliance(step.direction))
            return (Command(Mode.CURRENT, current_a=step.current_a, voltage_limit_v=limit),
                    _direction_type(step.direction, StepType.CC_CHG, StepType.CC_DCH), False)
        if isinstance(step, PowerStep):
            return (Command(Mode.POWER, power_w=step.power_w,
                            voltage_limit_v=self._compliance(step.direction)),
                    _direction_type(step.direction, StepType.CP_CHG, StepType.CP_DCH), False)
        if isinstance(step, ResistanceStep):
            return (Command(Mode.RESISTANCE, resistance_ohm=step.resistance_ohm),
                    StepType.CR_DCH, False)
        if isinstance(step, VoltageStep):
            limit_a = step.current_limit_a if step.current_limit_a is not None else current_limit
            return (Command(Mode.VOLTAGE, voltage_v=step.voltage_v, current_limit_a=limit_a),
                    None, True)
        if isinstance(step, RestStep):
            return Command(Mode.REST), StepType.REST, False
        raise StepFault(f"step {step.id} ({type(step).__name__}) cannot run here")

    async def _source(self, step: Step, command: Command, conditions: tuple[Condition, ...],
                      step_type: StepType | None, cv: bool,
                      stable: SetStep | None = None) -> BlockResult:
        """Apply ``command`` and read blocks until a condition (or a limit) ends it."""
        engine, rig = self.engine, self.engine.rig
        progress = engine.state.step
        assert progress is not None
        record = step.record or engine.program.record
        running = Running(0.0, progress.elapsed_s, conditions, step_type, cv, record)

        async def apply() -> None:
            full = Command(
                command.mode, command.current_a, command.voltage_v, command.power_w,
                command.resistance_ohm, command.voltage_limit_v, command.current_limit_a,
                conditions, record.every_s or 1.0, progress.elapsed_s, progress.totals.net_ah,
                progress.totals.net_wh,
            )
            running.applied_at_s = await rig.apply(full)
            running.elapsed_before_s = progress.elapsed_s
            running.fresh = True
            if engine.timebase.origin_s is None:
                engine.timebase.origin_s = running.applied_at_s

        applied = False
        while True:
            engine.check_stop()
            if engine.paused:
                await rig.safe()
                engine.event(EventKind.PAUSE, "paused", step.id)
                await engine.wait_running()
                engine.check_stop()
                engine.event(EventKind.RESUME, "resumed", step.id)
                applied = False
            if not applied:
                await apply()
                applied = True
            block = await rig.read()
            running.block_end_s = float(block.time_s[-1]) if len(block) else None
            if len(block) == 0:
                if block.done:
                    return BlockResult(EndKind.CONDITION, -1, running.last_time_s,
                                       self._nearest(conditions, progress, block))
                continue
            settled = False
            if stable is not None:
                block, settled = self._until_stable(stable, block, running, progress)
            result = engine.processor.process(block, step.id, progress, running,
                                              force_record_end=block.done or settled)
            if result.kind is EndKind.LIMIT:
                raise LimitTripped(result.limit, result.value, step.id)
            if result.kind is EndKind.CONDITION or settled:
                await rig.end_step(result.time_s)
                return BlockResult(EndKind.CONDITION, result.index, result.time_s,
                                   result.condition)
            if block.done:
                return BlockResult(EndKind.CONDITION, result.index, result.time_s,
                                   self._nearest(conditions, progress, block))
            engine.maybe_checkpoint()

    @staticmethod
    def _nearest(conditions: tuple[Condition, ...], progress: StepProgress, block: Block
                 ) -> Condition | None:
        """The condition the rig most likely ended the step on, when the host saw none hold
        (a device computes its cut-offs in its own arithmetic): the one closest to holding
        at the last reading, relative to its value."""
        last = {
            Quantity.VOLTAGE: progress.last_voltage_v,
            Quantity.CURRENT: None if progress.last_current_a is None else abs(
                progress.last_current_a),
            Quantity.TIME: progress.elapsed_s,
            Quantity.CHARGE: abs(progress.totals.net_ah),
            Quantity.ENERGY: abs(progress.totals.net_wh),
            Quantity.TEMPERATURE: None if block.temperature_c is None or not len(block) else (
                float(block.temperature_c[-1])),
            Quantity.PRESSURE: None if block.pressure_pa is None or not len(block) else (
                float(block.pressure_pa[-1])),
        }
        best, best_distance = None, math.inf
        for condition in conditions:
            value = last.get(condition.quantity)
            if value is None or not math.isfinite(value):
                continue
            distance = abs(value - condition.value) / max(abs(condition.value), 1e-12)
            if distance < best_distance:
                best, best_distance = condition, distance
        return best

    async def _cccv(self, step: CccvStep) -> tuple[str | None, str]:
        progress = self.engine.state.step
        assert progress is not None
        charge = step.direction is Direction.CHARGE
        cc_type = StepType.CC_CHG if charge else StepType.CC_DCH
        if progress.phase == 0:
            switch = Condition(Quantity.VOLTAGE, Operator.AT_LEAST if charge else Operator.AT_MOST,
                               step.voltage_v, PHASE_END, f"{step.voltage_v:g} V")
            cc_conditions = tuple(c for c in step.until if c.quantity is not Quantity.CURRENT)
            command = Command(Mode.CURRENT, current_a=step.current_a,
                              voltage_limit_v=self._compliance(step.direction))
            result = await self._source(step, command, (*cc_conditions, switch), cc_type, False)
            if result.condition is not switch:
                return self._ending(result)
            progress.phase = 1
            self.engine.checkpoint()
        command = Command(Mode.VOLTAGE, voltage_v=step.voltage_v,
                          current_limit_a=abs(step.current_a))
        result = await self._source(step, command, step.until, None, True)
        return self._ending(result)

    async def _pulse(self, step: PulseStep) -> tuple[str | None, str]:
        progress = self.engine.state.step
        assert progress is not None
        pulse_type = _direction_type(step.direction, StepType.CC_CHG, StepType.CC_DCH)
        while step.count is None or progress.pulse_index < step.count:
            if progress.phase == 0:
                duration, command, kind = step.pulse_s, Command(
                    Mode.CURRENT, current_a=step.current_a,
                    voltage_limit_v=self._compliance(step.direction)), pulse_type
            else:
                duration, command, kind = step.rest_s, Command(Mode.REST), StepType.REST
            if duration > 0:
                end = Condition(Quantity.TIME, Operator.AT_LEAST,
                                progress.phase_start_s + duration, PHASE_END, "phase")
                result = await self._source(step, command, (*step.until, end), kind, False)
                if result.condition is not end:
                    return self._ending(result)
            progress.phase_start_s = progress.elapsed_s
            if progress.phase == 1:
                progress.pulse_index += 1
            progress.phase = 1 - progress.phase
            self.engine.checkpoint()
        return None, f"{progress.pulse_index} pulses done"

    def _until_stable(self, step: SetStep, block: Block, running: Running,
                      progress: StepProgress) -> tuple[Block, bool]:
        """Cut the block where temperature and pressure have been stable long enough."""
        mask = np.ones(len(block), dtype=bool)
        for target, tolerance, values, what in (
            (step.temperature_c, step.wait_temperature_k, block.temperature_c, "temperature"),
            (step.pressure_pa, step.wait_pressure_pa, block.pressure_pa, "pressure"),
        ):
            if target is None or tolerance is None:
                continue
            if values is None:
                raise StepFault(f"step {step.id} waits for a stable {what}, but this channel "
                                f"does not measure it")
            mask &= compare(np.abs(values - target), Operator.AT_MOST, tolerance)
        step_time = running.elapsed_before_s + (block.time_s - running.applied_at_s)
        index, run_start = run_trip(mask, step_time, progress.stable_since_s, step.wait_for_s)
        last = len(block) - 1 if index < 0 else index
        progress.stable_since_s = float(run_start[last]) if bool(mask[last]) else None
        if index < 0:
            return block, False
        cut = slice(0, index + 1)
        return Block(block.time_s[cut], block.voltage_v[cut], block.current_a[cut],
                     None if block.temperature_c is None else block.temperature_c[cut],
                     None if block.pressure_pa is None else block.pressure_pa[cut]), True

    async def _set(self, step: SetStep) -> tuple[str | None, str]:
        engine = self.engine
        capabilities = engine.rig.capabilities
        if step.temperature_c is not None and not capabilities.chamber:
            raise StepFault(f"step {step.id} sets a temperature, but this channel has no chamber")
        if step.pressure_pa is not None and capabilities.jig.value != "controlled":
            raise StepFault(f"step {step.id} sets a pressure, but this channel's jig cannot")
        await engine.rig.set_environment(step.temperature_c, step.pressure_pa)
        engine.state.temperature_setpoint_c = step.temperature_c
        engine.state.pressure_setpoint_pa = step.pressure_pa
        waits = step.wait_temperature_k is not None or step.wait_pressure_pa is not None
        if not waits and not step.until:
            return None, "setpoints sent"
        conditions = step.until
        if step.wait_timeout_s is not None:
            conditions = (*conditions, Condition(Quantity.TIME, Operator.AT_LEAST,
                                                 step.wait_timeout_s, PHASE_END, "timeout"))
        result = await self._source(step, Command(Mode.REST), conditions, StepType.REST, False,
                                    stable=step if waits else None)
        if result.condition is not None and result.condition.then == PHASE_END:
            raise StepFault(f"step {step.id}: temperature/pressure not stable within "
                            f"{step.wait_timeout_s:g} s")
        if result.condition is None and waits:
            return None, "stable"
        return self._ending(result)

    async def _eis(self, step: EisStep) -> tuple[str | None, str]:
        engine = self.engine
        if not engine.rig.capabilities.eis:
            raise StepFault(f"step {step.id} measures EIS, but this channel has no EIS unit")
        if engine.timebase.origin_s is None:
            # Nothing applied yet by this engine (a job, or a resume, that starts with a
            # sweep): take the rig's clock now, or the sweep's time would be missing from the
            # test time.
            engine.timebase.origin_s = await engine.rig.apply(Command(Mode.OFF))
        spectrum = await engine.rig.eis(step)
        # The sweep took time: the test time goes on from its end (a rig that cannot say
        # when the sweep ended leaves time_s at 0 and the test time where it was).
        engine.state.test_time_s = max(engine.state.test_time_s,
                                       engine.timebase.at(spectrum.time_s))
        engine.sink.spectrum(step.id, engine.state.step_count, spectrum)
        engine.event(EventKind.SPECTRUM, f"{spectrum.frequency_hz.shape[0]} frequencies", step.id)
        return None, "sweep done"

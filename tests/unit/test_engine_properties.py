"""Results do not depend on how the readings arrive or on interruptions.

- One reading per block (a host-polled instrument), blocks of a few, blocks of 1,000 and a rig
  that ends its steps itself (device-side cut-offs) give the same samples, events and cycle
  summaries.
- Property tests: random small programs (CC, CV, rest, CC-CV and pulse steps with random
  currents and cut-offs, EIS and set steps, random and nested repeats) with a crash at a
  random checkpoint, resumed on the same cell, give the cycle summaries and samples of the
  uninterrupted run.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import numpy as np
from engine_helpers import (
    YieldingRig,
    assert_samples_equal,
    assert_summaries_equal,
    crash_and_resume,
    event_trace,
    program,
    run,
    samples_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rigs import LinearCell, LinearRig

from cellrig.protocols.engine import JobState
from cellrig.protocols.program import Condition, Program, Quantity
from cellrig.protocols.rig import Block, Command

#: Engine runs are much slower than parsing: fewer examples than the protocol fuzz tests.
EXAMPLES = 100 if os.environ.get("CI", "").lower() == "true" else 30

EVERYTHING = """
  - set: {temperature: 30 degC, pressure: 2 MPa}
    wait: {within: {temperature: 0.5 K, pressure: 0.1 MPa}, for: 2 min, timeout: 1 h}
  - repeat: 2
    until: discharge capacity < 90 % of first
    steps:
      - cccv: {current: 1C, voltage: 3.90025 V, cutoff: 0.1C}
      - rest: 30 min
        until: {dvdt: 1 mV/h}
      - Discharge at 1C until 3.20025 V or 35 %
      - pulse: {discharge: C/5, duration: 5 min, rest: 2 min, count: 2}
      - Hold at 3.3 V until 0.05C or 20 min
      - charge: {power: 1 W}
        until: {energy: 0.4 Wh, time: 30 min}
      - discharge: {resistance: 10 Ohm}
        until: {voltage: 3.4 V, time: 10 min}
      - eis: {start: 1 kHz, stop: 1 Hz, amplitude: 10 mV}
  - rest: 10 min
    until: '> 29.5 degC'
"""
EVERYTHING_LIMITS = ("{voltage: {range: [2.5 V, 4.5 V], warn: [3.05 V, 3.85 V], delay: 3 s}, "
                     "current: {max: 3C, warn: 0.9C}, temperature: [0 degC, 60 degC], "
                     "pressure: [0.5 MPa, 3 MPa], charge_per_step: 150 %}")
EVERYTHING_RECORD = "{every: 30 s, voltage_change: 10 mV, current_change: 0.1C}"


async def test_block_size_and_device_cut_offs_do_not_change_any_result() -> None:
    prog = program(EVERYTHING, limits=EVERYTHING_LIMITS, record=EVERYTHING_RECORD)
    runs = []
    for block_size, device in ((1, False), (7, False), (1000, False), (1, True), (1000, True)):
        runs.append(await run(prog, LinearRig(cell=LinearCell(charge_ah=0.3),
                                              block_size=block_size, device_cutoffs=device)))
    reference = runs[0]
    assert reference.outcome.state is JobState.COMPLETED
    assert len(reference.sink.cycles) >= 3 and reference.events()
    for other in runs[1:]:
        assert_samples_equal(samples_of(other.sink), samples_of(reference.sink))
        assert_summaries_equal(other.sink, reference.sink)
        assert event_trace(other.sink) == event_trace(reference.sink)
        assert other.outcome.test_time_s == reference.outcome.test_time_s


@dataclass
class SloppyRig(LinearRig):
    """A device that ends charge cut-offs in its own arithmetic, a hair before the host would."""

    def _meets(self, condition: Condition, voltage: float, current: float) -> bool:
        if condition.quantity is Quantity.CHARGE:
            return abs(self._step_charge_ah) * (1 + 1e-3) >= condition.value
        return super()._meets(condition, voltage, current)


async def test_a_device_cut_off_the_host_did_not_see_still_takes_its_then() -> None:
    prog = program("""
  - charge: 0.7 A
    until:
      - time: 1 h
      - charge: 250 mAh
        then: stop
  - Rest for 1 minute
""")
    done = await run(prog, SloppyRig(device_cutoffs=True))
    assert done.column("Step Charging Capacity / Ah")[-1] < 0.25  # the host saw it not hold
    assert done.steps() == [(1, "until 250 mAh")]
    assert "went to 'stop'" in done.outcome.reason


@dataclass
class EmptyEndRig(YieldingRig):
    """A device that signals the end of a command with an empty block after 30 readings."""

    reads: int = 0

    async def apply(self, command: Command) -> float:
        self.reads = 0
        return await super().apply(command)

    async def read(self) -> Block:
        self.reads += 1
        if self.reads > 30:
            return Block(np.zeros(0), np.zeros(0), np.zeros(0), done=True)
        return await super().read()


async def test_an_empty_block_that_ends_a_command_ends_the_step() -> None:
    prog = program("  - charge: 1C\n    until: {voltage: 4.2 V, time: 35 s}\n"
                   "  - Rest for 1 min")
    done = await asyncio.wait_for(run(prog, EmptyEndRig(device_cutoffs=True)), timeout=10)
    assert done.outcome.state is JobState.COMPLETED
    assert done.steps()[0] == (1, "until 35 s")  # the nearest to holding after 29 s


# -- random programs -------------------------------------------------------------------------


def _volts(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(low, high).map(lambda v: f"{v:.4f} V")


def _amps(low: float, high: float) -> st.SearchStrategy[str]:
    return st.floats(low, high).map(lambda a: f"{a:.3f} A")


_minutes = st.integers(1, 25).map(lambda m: f"{m} min")

STEP = st.one_of(
    st.builds(lambda a, v, t: f"- charge: {a}\n  until: {{voltage: {v}, time: {t}}}",
              _amps(0.1, 2.0), _volts(3.3, 4.1), _minutes),
    st.builds(lambda a, v, t: f"- discharge: {a}\n  until: {{voltage: {v}, time: {t}}}",
              _amps(0.1, 2.0), _volts(3.0, 3.8), _minutes),
    st.builds(lambda v, a, t: f"- hold: {v}\n  until: {{current: {a}, time: {t}}}",
              _volts(3.2, 4.0), _amps(0.02, 0.3), _minutes),
    st.builds(lambda t: f"- rest: {t}", _minutes),
    st.builds(lambda a, v, c, t: f"- cccv: {{current: {a}, voltage: {v}, cutoff: {c}}}\n"
              f"  for: {t}", _amps(0.2, 2.0), _volts(3.4, 4.1), _amps(0.02, 0.3), _minutes),
    st.builds(lambda d, a, p, r, n: f"- pulse: {{{d}: {a}, duration: {p}, rest: {r}, "
              f"count: {n}}}", st.sampled_from(["charge", "discharge"]), _amps(0.1, 1.0),
              _minutes, _minutes, st.integers(1, 3)),
    st.just("- eis: {start: 1 kHz, stop: 1 Hz, amplitude: 10 mV}"),
    st.integers(20, 40).map(lambda t: f"- set: {{temperature: {t} degC}}"),
)


def _indent(lines: list[str], spaces: int) -> list[str]:
    return [" " * spaces + line for line in lines]


@st.composite
def programs(draw: st.DrawFn) -> Program:
    """A random small program: a few steps, some in (possibly nested) repeats."""
    def block(depth: int) -> list[str]:
        lines: list[str] = []
        for _ in range(draw(st.integers(1, 3))):
            if depth < 2 and draw(st.integers(0, 3)) == 0:
                count = draw(st.integers(1, 3))
                lines += [f"- repeat: {count}", "  steps:", *_indent(block(depth + 1), 4)]
            else:
                lines += draw(STEP).splitlines()
        return lines

    text = "\n".join(_indent(block(0), 2))
    return program(text, limits="{voltage: {range: [0 V, 6 V], warn: [3.1 V, 3.9 V]}}",
                   record="{every: 2 min, voltage_change: 20 mV}")


def _rig(block_size: int, device: bool, charge_ah: float) -> LinearRig:
    return LinearRig(cell=LinearCell(charge_ah=charge_ah), dt_s=5.0, block_size=block_size,
                     device_cutoffs=device)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(), block_size=st.sampled_from([1, 13, 1000]), device=st.booleans(),
       charge_ah=st.floats(0.0, 0.9), every=st.sampled_from([60.0, 300.0, 1800.0]),
       where=st.floats(0.0, 1.0, exclude_max=True))
def test_a_resumed_run_equals_the_uninterrupted_one(prog: Program, block_size: int,
                                                    device: bool, charge_ah: float,
                                                    every: float, where: float) -> None:
    async def check() -> None:
        whole = await run(prog, _rig(block_size, device, charge_ah), checkpoint_every_s=every)
        count = len(whole.sink.checkpoints)
        crash_at = 1 + int(where * count)
        resumed, crashed, did_crash = await crash_and_resume(
            prog, _rig(block_size, device, charge_ah), crash_at, checkpoint_every_s=every)
        assert did_crash
        assert resumed.outcome.state is whole.outcome.state
        assert_summaries_equal(crashed.cycles + resumed.sink.cycles, whole.sink.cycles)
        assert_samples_equal(samples_of(crashed, resumed.sink), samples_of(whole.sink))
        assert resumed.outcome.test_time_s == whole.outcome.test_time_s

    asyncio.run(check())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(), charge_ah=st.floats(0.0, 0.9))
def test_random_programs_give_the_same_results_for_any_blocking(prog: Program,
                                                                charge_ah: float) -> None:
    async def check() -> None:
        reference = await run(prog, _rig(1, False, charge_ah))
        for block_size, device in ((1000, False), (13, True)):
            other = await run(prog, _rig(block_size, device, charge_ah))
            assert_summaries_equal(other.sink, reference.sink)
            assert_samples_equal(samples_of(other.sink), samples_of(reference.sink))
            assert event_trace(other.sink) == event_trace(reference.sink)

    asyncio.run(check())

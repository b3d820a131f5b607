"""A channel's live values for ``status()``: kept from the blocks its job's engine stores.

``status()`` is called often (the CLI, the MQTT publisher), so it never reads the store: the
sink between a job's engine and the store (:class:`LiveSink`) copies the last stored sample of
every block and the current step from the events into a :class:`LiveChannel`, a dozen
attribute writes per block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cellrig.protocols.engine.output import CycleSummary, Event, EventKind, SampleBlock, Sink
from cellrig.protocols.program import Program
from cellrig.protocols.rig import Spectrum


def _value(column: Any) -> float | None:
    value = float(column[-1])
    return value if math.isfinite(value) else None


@dataclass
class LiveChannel:
    """What runs on a channel and its last stored reading (None where unknown).

    Capacities are those of the current cycle (the ``Cycle … Capacity`` columns).
    """

    job_id: int | None = None
    job_state: str | None = None
    protocol_name: str | None = None
    step: str | None = None
    step_count: int | None = None
    cycle: int | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    pressure_pa: float | None = None
    charge_capacity_ah: float | None = None
    discharge_capacity_ah: float | None = None
    test_time_s: float | None = None

    def start(self, job_id: int, protocol_name: str, state: str) -> None:
        """A job starts on the channel: forget the last one's values."""
        self.clear()
        self.job_id, self.protocol_name, self.job_state = job_id, protocol_name, state

    def resume_from(self, checkpoint: dict[str, Any], program: Program) -> None:
        """A job continued from ``checkpoint``: its step, cycle and test time until the
        first block says more."""
        step = checkpoint.get("step") or {}
        labels = {definition.id: definition.label for definition in program.iter_steps()}
        self.step = labels.get(step.get("step_id", -1))
        self.step_count = checkpoint.get("step_count")
        self.cycle = (checkpoint.get("cycle") or {}).get("number")
        self.test_time_s = checkpoint.get("test_time_s")

    def clear(self) -> None:
        """Nothing runs on the channel."""
        for name in self.__dataclass_fields__:
            setattr(self, name, None)

    def take_block(self, block: SampleBlock) -> None:
        """The last sample of a stored block."""
        columns = block.columns
        self.voltage_v = _value(columns["Voltage / V"])
        self.current_a = _value(columns["Current / A"])
        self.temperature_c = _value(columns["Ambient Temperature / degC"])
        self.pressure_pa = _value(columns["Applied Pressure / Pa"])
        self.charge_capacity_ah = _value(columns["Cycle Charging Capacity / Ah"])
        self.discharge_capacity_ah = _value(columns["Cycle Discharging Capacity / Ah"])
        self.test_time_s = _value(columns["Test Time / s"])
        self.cycle = int(columns["Cycle Count / 1"][-1])
        self.step_count = int(columns["Step Count / 1"][-1])

    def take_event(self, event: Event) -> None:
        """The step and cycle from a step or cycle event."""
        if event.kind is EventKind.STEP_START:
            self.step = event.message
            self.step_count = event.step_count
        self.cycle = event.cycle
        if math.isfinite(event.test_time_s):
            self.test_time_s = event.test_time_s


class LiveSink:
    """The engine's sink: hands everything to the store's sink and keeps the live values."""

    def __init__(self, inner: Sink, live: LiveChannel) -> None:
        self.inner = inner
        self.live = live

    def samples(self, block: SampleBlock) -> None:
        """Stored samples (the last one kept as the live values)."""
        self.inner.samples(block)
        if len(block):
            self.live.take_block(block)

    def event(self, event: Event) -> None:
        """An event (step starts name the live step)."""
        self.inner.event(event)
        self.live.take_event(event)

    def cycle(self, summary: CycleSummary) -> None:
        """A finished cycle."""
        self.inner.cycle(summary)

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        """An impedance spectrum."""
        self.inner.spectrum(step_id, step_count, spectrum)

    def checkpoint(self, state: dict[str, Any]) -> None:
        """The engine's state."""
        self.inner.checkpoint(state)

"""What the engine produces: sample blocks in Battery Data Format columns, events, cycle
summaries, spectra and checkpoints, handed to a sink (the store, or a list in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from cellrig.protocols.rig import Spectrum

#: Sample columns, Battery Data Format names and units, in storage order.
COLUMNS = (
    "Test Time / s",
    "Unix Time / s",
    "Voltage / V",
    "Current / A",
    "Cycle Count / 1",
    "Step Count / 1",
    "Step ID",
    "Step Type",
    "Step Time / s",
    "Charging Capacity / Ah",
    "Discharging Capacity / Ah",
    "Charging Energy / Wh",
    "Discharging Energy / Wh",
    "Cycle Charging Capacity / Ah",
    "Cycle Discharging Capacity / Ah",
    "Cycle Charging Energy / Wh",
    "Cycle Discharging Energy / Wh",
    "Step Charging Capacity / Ah",
    "Step Discharging Capacity / Ah",
    "Step Charging Energy / Wh",
    "Step Discharging Energy / Wh",
    "Ambient Temperature / degC",
    "Applied Pressure / Pa",
)


class StepType(StrEnum):
    """Step Type values (Battery Data Format style), per sample."""

    CC_CHG = "CC_CHG"
    CC_DCH = "CC_DCH"
    CV_CHG = "CV_CHG"
    CV_DCH = "CV_DCH"
    CP_CHG = "CP_CHG"
    CP_DCH = "CP_DCH"
    CR_DCH = "CR_DCH"
    REST = "REST"


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """Stored samples of one block: one array per column (``Step Type`` as strings)."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.columns["Test Time / s"].shape[0])

    def rows(self) -> list[dict[str, Any]]:
        """The samples as dictionaries (for tests and small exports)."""
        names = list(self.columns)
        arrays = [self.columns[name].tolist() for name in names]
        return [dict(zip(names, values, strict=True)) for values in zip(*arrays, strict=True)]


class EventKind(StrEnum):
    """What happened."""

    JOB_START = "job start"
    JOB_RESUME = "job resume"
    JOB_END = "job end"
    STEP_START = "step start"
    STEP_END = "step end"
    CYCLE_START = "cycle start"
    CYCLE_END = "cycle end"
    WARNING = "warning"
    LIMIT = "limit"
    PAUSE = "pause"
    RESUME = "resume"
    SPECTRUM = "spectrum"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Event:
    """One event, with where in the test it happened."""

    kind: EventKind
    test_time_s: float
    unix_time_s: float
    cycle: int
    step_count: int
    step_id: int | None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """The figures of one cycle, computed when it ends."""

    cycle: int
    start_test_time_s: float
    end_test_time_s: float
    charge_capacity_ah: float
    discharge_capacity_ah: float
    charge_energy_wh: float
    discharge_energy_wh: float
    coulombic_efficiency: float | None
    energy_efficiency: float | None
    average_charge_voltage_v: float | None
    average_discharge_voltage_v: float | None
    cc_charge_share: float | None
    cv_charge_share: float | None
    min_temperature_c: float | None
    max_temperature_c: float | None
    min_pressure_pa: float | None
    max_pressure_pa: float | None
    retention: float | None
    reference_retention: float | None

    @property
    def duration_s(self) -> float:
        """How long the cycle took."""
        return self.end_test_time_s - self.start_test_time_s


class Sink(Protocol):
    """Where the engine's output goes. Calls are synchronous and must be quick."""

    def samples(self, block: SampleBlock) -> None:
        """Stored samples."""
        ...

    def event(self, event: Event) -> None:
        """An event."""
        ...

    def cycle(self, summary: CycleSummary) -> None:
        """A finished cycle."""
        ...

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        """An EIS result."""
        ...

    def checkpoint(self, state: dict[str, Any]) -> None:
        """The engine's complete state, JSON-serialisable."""
        ...


@dataclass
class ListSink:
    """A sink that keeps everything in lists (tests, ``cellrig simulate``)."""

    blocks: list[SampleBlock] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    cycles: list[CycleSummary] = field(default_factory=list)
    spectra: list[tuple[int, int, Spectrum]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    keep_checkpoints: bool = True

    def samples(self, block: SampleBlock) -> None:
        """Keep a block."""
        self.blocks.append(block)

    def event(self, event: Event) -> None:
        """Keep an event."""
        self.events.append(event)

    def cycle(self, summary: CycleSummary) -> None:
        """Keep a cycle summary."""
        self.cycles.append(summary)

    def spectrum(self, step_id: int, step_count: int, spectrum: Spectrum) -> None:
        """Keep a spectrum."""
        self.spectra.append((step_id, step_count, spectrum))

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Keep a checkpoint (the last one only, unless ``keep_checkpoints``)."""
        if self.keep_checkpoints or not self.checkpoints:
            self.checkpoints.append(state)
        else:
            self.checkpoints[-1] = state

    def column(self, name: str) -> np.ndarray:
        """One column over every stored block."""
        if not self.blocks:
            return np.zeros(0)
        return np.concatenate([block.columns[name] for block in self.blocks])

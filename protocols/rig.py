"""The rig port: what the engine needs from a channel's instruments, in SI floats.

A rig is one cell position with its potentiostat channel and, where the channel has them, a
chamber, a pressure jig and an EIS unit. Real drivers and the cell model both implement this
port; the engine never knows which one it talks to.

Readings come in blocks (arrays): a host-polled instrument hands over one reading at a time, a
cycler running a step on its own hands over its buffer, the model hands over a whole step. The
engine checks terminations on the block; when one holds at reading ``k`` it calls
:meth:`Rig.end_step` with that reading's time, and the rig discards what came after.

Device-side execution: every :class:`Command` carries the step's conditions. A rig whose
capabilities say ``device_cutoffs`` ends the step itself at the first condition it can check
(and says so with ``Block.done``); any other rig ignores them and the engine ends the step. The
engine checks every condition on the host either way, so the results are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .program import Condition, EisStep

FloatArray = npt.NDArray[np.float64]


class Mode(StrEnum):
    """What the source holds constant."""

    CURRENT = "current"
    VOLTAGE = "voltage"
    POWER = "power"
    RESISTANCE = "resistance"
    REST = "rest"
    OFF = "off"


class JigKind(StrEnum):
    """The stack-pressure jig of a channel, if any."""

    NONE = "none"
    MEASURE_ONLY = "measure only"
    CONTROLLED = "controlled"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a rig can do and its ranges; submission refuses programs that exceed them."""

    max_current_a: float = float("inf")
    min_voltage_v: float = float("-inf")
    max_voltage_v: float = float("inf")
    constant_power: bool = True
    constant_resistance: bool = True
    eis: bool = False
    eis_frequency_hz: tuple[float, float] = (0.0, float("inf"))
    chamber: bool = False
    jig: JigKind = JigKind.NONE
    device_cutoffs: bool = False
    min_sample_interval_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Command:
    """One source setting, with the step's conditions for rigs that can end steps themselves.

    ``elapsed_s`` and ``charge_ah`` say how much of the step already ran (after a resume or a
    CC to CV switch), so device-side time and charge cut-offs stay right.
    """

    mode: Mode
    current_a: float = 0.0
    voltage_v: float = 0.0
    power_w: float = 0.0
    resistance_ohm: float = 0.0
    voltage_limit_v: float | None = None
    current_limit_a: float | None = None
    until: tuple[Condition, ...] = ()
    sample_interval_s: float = 1.0
    elapsed_s: float = 0.0
    charge_ah: float = 0.0
    energy_wh: float = 0.0


@dataclass(frozen=True, slots=True)
class Block:
    """Readings in time order: the instrument's own time, voltage, current and, where the
    channel measures them, temperature and stack pressure (NaN where not measured).

    ``done`` says the rig ended the command itself (a device-side cut-off, or a finite
    command such as a pulse that ran its course).
    """

    time_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    temperature_c: FloatArray | None = None
    pressure_pa: FloatArray | None = None
    done: bool = False

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True, slots=True)
class Spectrum:
    """An impedance spectrum: Z = z_real + j z_imag (z_imag negative for capacitive).

    ``time_s`` is the instrument time at which the sweep ended, on the clock of the blocks'
    ``time_s`` (0 if the rig cannot tell): the test time goes on from there.
    """

    frequency_hz: FloatArray
    z_real_ohm: FloatArray
    z_imag_ohm: FloatArray
    time_s: float = 0.0
    meta: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Environment:
    """Chamber temperature and stack pressure as measured now (None where not measured)."""

    temperature_c: float | None = None
    pressure_pa: float | None = None


class Rig(Protocol):
    """The instruments of one channel, as the engine uses them."""

    @property
    def capabilities(self) -> Capabilities:
        """What this rig can do."""
        ...

    async def apply(self, command: Command) -> float:
        """Set the source (and start device-side execution where the rig has it); returns
        the instrument time at which the new setting took effect."""
        ...

    async def read(self) -> Block:
        """The next block of readings under the current command: at least one reading, or
        none with ``done`` when the rig ended the command without a new one."""
        ...

    async def end_step(self, at_time_s: float) -> None:
        """A condition ended the step at the reading taken at ``at_time_s``: stop there."""
        ...

    async def safe(self) -> None:
        """Put the channel in its safe state: output off, high impedance."""
        ...

    async def set_environment(self, temperature_c: float | None, pressure_pa: float | None) -> None:
        """New chamber temperature and/or stack pressure setpoints (None: leave as is)."""
        ...

    async def eis(self, step: EisStep) -> Spectrum:
        """Run an impedance sweep and return the spectrum."""
        ...

"""The instrument ports: what the station needs from each kind of instrument.

The engine sees one :class:`cellrig.protocols.rig.Rig` per channel. On a station that rig is
composed of parts, each served by one instrument driver (or its emulator's model):

- a :class:`PotentiostatPort` (Keithley 2450, PalmSens MethodSCRIPT, the cell model): sources
  and readings, the channel's ranges and whether it runs steps on its own;
- an :class:`EisPort` (often the same box, often shared by several channels);
- a :class:`ChamberPort` (usually shared by several channels);
- a :class:`JigPort` (one per cell: pneumatic and controlled, or bolted and measure-only).

All values are SI floats with the unit in the name; temperatures in °C. Every wire problem is
raised as :class:`cellrig.errors.InstrumentError` (or a subclass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode, Spectrum


@dataclass(frozen=True, slots=True)
class Identity:
    """Who answered: from ``*IDN?`` or the instrument's own identification command."""

    manufacturer: str
    model: str
    serial_number: str
    firmware: str


class PotentiostatPort(Protocol):
    """One potentiostat / source-measure channel, as the engine's rig port uses it.

    ``capabilities`` fills the source part of :class:`Capabilities` (ranges, constant power,
    ``device_cutoffs``, ``min_sample_interval_s``); the chamber, jig and EIS fields are filled
    in when the station composes a channel's rig.
    """

    @property
    def capabilities(self) -> Capabilities:
        """Ranges and what the channel can do on its own."""
        ...

    async def apply(self, command: Command) -> float:
        """Set the source; returns the instrument time at which it took effect."""
        ...

    async def read(self) -> Block:
        """The next readings under the current command (temperature and pressure NaN)."""
        ...

    async def end_step(self, at_time_s: float) -> None:
        """A condition ended the step at the reading taken at ``at_time_s``."""
        ...

    async def safe(self) -> None:
        """Output off, high impedance: the cell is left floating, not loaded."""
        ...


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a potentiostat is doing now, read without changing it (after a restart, before
    anything is reset): whether it sources, what, and one reading with its instrument time.

    ``mode`` is the instrument's own source function (``CURRENT`` or ``VOLTAGE``; ``OFF`` when
    the output is off), ``level`` its setpoint (A or V) and ``limit`` the magnitude of the
    other quantity's limit (V or A). ``in_compliance``: the limit holds the source now (a
    current source clamped at its voltage limit, or a voltage source at its current limit).
    ``time_s`` is the reading's time on the driver's clock (the one :meth:`PotentiostatPort.
    apply` returns), ``time_scale`` the instrument seconds per host second (1 on hardware).
    ``since_last_reading_s``: the instrument's own time since the last reading it had stored
    when this connection first looked (the previous connection's last reading; None when its
    buffer was empty or cleared).
    """

    output_on: bool
    mode: Mode
    level: float
    limit: float
    in_compliance: bool
    voltage_v: float
    current_a: float
    time_s: float
    time_scale: float = 1.0
    since_last_reading_s: float | None = None


@runtime_checkable
class SourceReader(Protocol):
    """A potentiostat that can say what it is doing without changing it, and whether that is
    a given command as it would source it (an optional part of the potentiostat port)."""

    async def source_state(self) -> SourceState:
        """The source and one reading, by queries only (nothing is reset or switched)."""
        ...

    def sources(self, state: SourceState, command: Command) -> bool:
        """Whether ``state`` is ``command`` as this instrument sources it."""
        ...


class EisPort(Protocol):
    """An impedance analyser (or the EIS mode of a potentiostat)."""

    @property
    def frequency_range_hz(self) -> tuple[float, float]:
        """Lowest and highest frequency it can sweep."""
        ...

    async def eis(self, step: EisStep) -> Spectrum:
        """Run one sweep as the step says and return the spectrum."""
        ...


class ChamberPort(Protocol):
    """A temperature chamber; ``channels`` names the channels whose cells sit in it."""

    @property
    def temperature_range_c(self) -> tuple[float, float]:
        """Lowest and highest setpoint it accepts."""
        ...

    async def set_temperature(self, setpoint_c: float) -> None:
        """A new setpoint (and the chamber running in constant mode)."""
        ...

    async def read_temperature(self) -> float:
        """The measured air temperature in °C."""
        ...

    async def alarms(self) -> list[str]:
        """Active alarms as the chamber names them (empty when none)."""
        ...

    async def standby(self) -> None:
        """Stop heating and cooling actively (the chamber's safe state)."""
        ...


class JigPort(Protocol):
    """A stack-pressure jig: ``kind`` says whether pressure can be set or only measured."""

    @property
    def kind(self) -> JigKind:
        """``CONTROLLED`` (pneumatic, closed loop) or ``MEASURE_ONLY`` (bolted)."""
        ...

    @property
    def max_pressure_pa(self) -> float:
        """The highest stack pressure the jig may apply."""
        ...

    async def set_pressure(self, pressure_pa: float) -> None:
        """A new stack-pressure setpoint; refused by a measure-only jig."""
        ...

    async def read_pressure(self) -> float:
        """The stack pressure measured now (force over cell area), in Pa."""
        ...

    async def alarms(self) -> list[str]:
        """Active interlocks and alarms (empty when none)."""
        ...

"""What a simulated station is made of: its chambers, its cells and the instruments around
each, before anything is started.

A :class:`BenchSpec` comes from a bench file (:mod:`cellrig.simulators.bench_file`), from
:func:`default_bench` (one cell with one of every instrument kind cellrig has drivers for) or
from :func:`channels_bench` (the layout of ``cellrig sim serve --channels N``: N cells, each
with a Keithley 2450 and a pneumatic jig, in one shared ESPEC chamber). The emulators are
started from it by :func:`cellrig.simulators.sim_station.serve_bench`.

Instrument names follow the cell they serve: ``smu-A1`` (a Keithley 2450), ``palmsens-A1``
(a PalmSens as the potentiostat, which is also the cell's EIS unit), ``regulator-A1`` and
``gauge-A1`` (the jig's Alicat and Mark-10); chambers and EIS units are named in the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cellrig.simulators.cell_params import DEFAULT_CELL, CellParameters, load_builtin_cell

#: Stack pressure of a jig when the bench does not say (the paper's 2 MPa).
DEFAULT_PRESSURE_PA = 2.0e6
#: What an emulated chamber is rated for (its controller's set point range).
DEFAULT_CHAMBER_RANGE_C = (-40.0, 150.0)
DEFAULT_PISTON_AREA_M2 = 0.1
#: Where a cell that sits in no chamber is: the room, at this temperature.
ROOM_C = 25.0


class Transport(StrEnum):
    """How a serial instrument is reached: a TCP port (``socket://host:port``, as behind a
    terminal server) or a pseudo-terminal (a device path such as ``/dev/pts/7``)."""

    SOCKET = "socket"
    PTY = "pty"


class ChamberKind(StrEnum):
    """The chamber controllers cellrig drives."""

    ESPEC = "espec"
    WATLOW_F4T = "watlow-f4t"


class PotentiostatKind(StrEnum):
    """The potentiostats cellrig drives."""

    KEITHLEY2450 = "keithley2450"
    PALMSENS = "palmsens"


class JigKind(StrEnum):
    """Pneumatic (an Alicat sets the gas pressure, a Mark-10 measures the force) or bolted
    (a Mark-10 only: the force follows the cell's swell)."""

    PNEUMATIC = "pneumatic"
    BOLTED = "bolted"


class CellState(StrEnum):
    """How a cell starts: as built (anode-free: about 1 V, no lithium in the anode) or
    formed (after the library's formation cycle)."""

    AS_BUILT = "as-built"
    FORMED = "formed"


@dataclass(frozen=True, slots=True)
class ChamberSpec:
    """One chamber and its controller."""

    name: str
    kind: ChamberKind = ChamberKind.ESPEC
    temperature_c: float = ROOM_C
    range_c: tuple[float, float] = DEFAULT_CHAMBER_RANGE_C
    transport: Transport = Transport.SOCKET
    """an ESPEC's line (a Watlow F4T is always Modbus TCP)"""


@dataclass(frozen=True, slots=True)
class JigSpec:
    """A cell's jig: ``pressure_pa`` is a pneumatic jig's stack pressure at the start, or a
    bolted jig's preload (the stack pressure at assembly)."""

    kind: JigKind = JigKind.PNEUMATIC
    pressure_pa: float = DEFAULT_PRESSURE_PA
    piston_area_m2: float = DEFAULT_PISTON_AREA_M2
    transport: Transport = Transport.SOCKET


@dataclass(frozen=True, slots=True)
class PotentiostatSpec:
    """A cell's potentiostat (a Keithley is always reached over TCP, as VISA ``SOCKET``)."""

    kind: PotentiostatKind = PotentiostatKind.KEITHLEY2450
    transport: Transport = Transport.SOCKET


@dataclass(frozen=True, slots=True)
class EisSpec:
    """A PalmSens wired to one cell as its EIS unit."""

    name: str
    cell: str
    transport: Transport = Transport.SOCKET


@dataclass(frozen=True, slots=True)
class CellSpec:
    """One cell position: the cell, how it starts, where it sits and what is wired to it."""

    name: str
    params: CellParameters = field(default_factory=load_builtin_cell)
    cell_source: str = DEFAULT_CELL
    """the cell definition as the bench named it (a built-in name or a path)"""
    state: CellState = CellState.AS_BUILT
    chamber: str | None = None
    """the chamber it sits in; None: the room, no chamber instrument"""
    potentiostat: PotentiostatSpec = field(default_factory=PotentiostatSpec)
    jig: JigSpec | None = field(default_factory=JigSpec)

    @property
    def potentiostat_name(self) -> str:
        """The potentiostat's instrument name."""
        return potentiostat_name(self.potentiostat.kind, self.name)


@dataclass(frozen=True, slots=True)
class BenchSpec:
    """A whole simulated station."""

    chambers: tuple[ChamberSpec, ...]
    cells: tuple[CellSpec, ...]
    eis: tuple[EisSpec, ...] = ()
    name: str = "sim-station"
    source: str = "built-in"
    """where it came from: a bench file's path, or a description"""

    def chamber(self, name: str) -> ChamberSpec:
        """A chamber by name."""
        for chamber in self.chambers:
            if chamber.name == name:
                return chamber
        raise KeyError(f"no chamber {name!r} on the bench")

    def eis_of(self, cell: str) -> str | None:
        """The name of the instrument that measures a cell's impedance, if any."""
        for unit in self.eis:
            if unit.cell == cell:
                return unit.name
        for spec in self.cells:
            if spec.name == cell and spec.potentiostat.kind is PotentiostatKind.PALMSENS:
                return spec.potentiostat_name
        return None


def potentiostat_name(kind: PotentiostatKind, cell: str) -> str:
    """``smu-A1`` for a Keithley 2450, ``palmsens-A1`` for a PalmSens."""
    return f"{'smu' if kind is PotentiostatKind.KEITHLEY2450 else 'palmsens'}-{cell}"


def channel_names(count: int) -> list[str]:
    """``A1``, ``A2``, …"""
    return [f"A{index + 1}" for index in range(count)]


def channels_bench(count: int, *, eis: bool = False) -> BenchSpec:
    """``count`` as-built default cells, each with a Keithley 2450 and a pneumatic jig at
    2 MPa, in one ESPEC chamber ``chamber`` at 25 °C; with ``eis``, a PalmSens ``eis`` wired
    to the first cell."""
    if count < 1:
        raise ValueError("a simulated station needs at least one channel")
    params = load_builtin_cell()
    cells = tuple(CellSpec(name, params, chamber="chamber") for name in channel_names(count))
    units = (EisSpec("eis", cells[0].name),) if eis else ()
    return BenchSpec((ChamberSpec("chamber"),), cells, units,
                     source=f"{count} channel(s)" + (" with EIS" if eis else ""))


def default_bench() -> BenchSpec:
    """One cell with one of every instrument kind cellrig has drivers for: a Keithley 2450,
    a PalmSens for EIS, an ESPEC chamber (the cell's) and a Watlow F4T chamber (empty), an
    Alicat + Mark-10 pneumatic jig at 2 MPa."""
    cell = CellSpec("A1", load_builtin_cell(), chamber="chamber")
    return BenchSpec((ChamberSpec("chamber"), ChamberSpec("chamber-2", ChamberKind.WATLOW_F4T)),
                     (cell,), (EisSpec("eis", "A1"),), source="the default bench")

"""A simulated station on the wire: the emulators of every instrument around a bench of
cells, on one shared bench clock, and a ``station.toml`` that points the real drivers at them.

:func:`serve_bench` starts what a :class:`~cellrig.simulators.bench_spec.BenchSpec` says (a
bench file, the default bench, or the N-cell layout):

- per chamber, an ESPEC emulator (ASCII on a ``socket://`` port or a pseudo-terminal) or a
  Watlow F4T emulator (Modbus TCP, ``host:port``);
- per cell, its potentiostat: a Keithley 2450 emulator (SCPI over TCP:
  ``TCPIP::127.0.0.1::<port>::SOCKET``) or a PalmSens emulator (serial), and its jig: an
  Alicat regulator and a Mark-10 gauge bound to a pneumatic jig, or a Mark-10 alone under a
  bolted one;
- per EIS unit, a PalmSens emulator wired to its cell (a multiplexer that would switch it
  between cells is not emulated).

:func:`serve_sim_station` is the N-cell layout of ``cellrig sim serve --channels N``.

Every emulator reads the same :class:`~cellrig.simulators.bench.BenchClock`, ``speed`` times
faster than real time, so a daemon running the written configuration sees one coherent bench.
:meth:`SimStation.station_toml` sets the options that depend on the speed (``time_scale`` of
the Keithleys and of the PalmSens, which must equal the emulators' speed).

The emulators can run in the process of a test, or in a process of their own
(``cellrig sim serve``) so a daemon can be killed and restarted while the cells live on.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cellrig.simulators.alicat_emulator import AlicatEmulator
from cellrig.simulators.bench import Bench, BenchClock, bolted_jig
from cellrig.simulators.bench_spec import (
    ROOM_C,
    BenchSpec,
    CellSpec,
    CellState,
    ChamberKind,
    ChamberSpec,
    JigKind,
    PotentiostatKind,
    Transport,
    channels_bench,
)
from cellrig.simulators.cell_forming import form_cell
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import CellParameters, load_builtin_cell
from cellrig.simulators.cell_segments import CellState as CellModelState
from cellrig.simulators.chamber import Chamber
from cellrig.simulators.espec_emulator import EspecEmulator
from cellrig.simulators.jig import Jig
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.line_server import LineServer
from cellrig.simulators.mark10_emulator import Mark10Emulator
from cellrig.simulators.palmsens_emulator import PalmSensEmulator
from cellrig.simulators.scpi_server import ScpiServer
from cellrig.simulators.sim_station_toml import station_toml
from cellrig.simulators.watlow_emulator import WatlowF4TEmulator

#: Pascals per psi: the regulators' full scale is written in psi, as on their label.
PA_PER_PSI = 6894.757293168
REGULATOR_FULL_SCALE_PSI = 150.0
START_PRESSURE_PA = 2.0e6
CHAMBER_RANGE_C = (-40.0, 150.0)
PISTON_AREA_M2 = 0.1
CHAMBER = "chamber"
#: The bench chamber of cells that sit in no chamber instrument (the room).
ROOM = "(room)"


@dataclass(frozen=True, slots=True)
class EmulatedInstrument:
    """One emulator: what it emulates, its name in the station and its address."""

    kind: str
    name: str
    address: str
    channel: str | None = None
    """the channel it serves alone (None for a chamber)"""


@dataclass
class SimStation:
    """The running emulators of a simulated station."""

    bench: Bench
    speed: float
    channels: list[str]
    instruments: list[EmulatedInstrument] = field(default_factory=list)
    keithleys: dict[str, Keithley2450Emulator] = field(default_factory=dict)
    scpi_servers: dict[str, ScpiServer] = field(default_factory=dict)
    """each Keithley's SCPI server, by channel (its wire faults, or closed to cut it off)"""
    alicats: dict[str, AlicatEmulator] = field(default_factory=dict)
    mark10s: dict[str, Mark10Emulator] = field(default_factory=dict)
    espec: EspecEmulator | None = None
    """the first ESPEC chamber"""
    palmsens: PalmSensEmulator | None = None
    """the first EIS unit"""
    params: CellParameters = field(default_factory=load_builtin_cell)
    """the first cell's parameters"""
    spec: BenchSpec | None = None
    especs: dict[str, EspecEmulator] = field(default_factory=dict)
    """ESPEC chambers by name"""
    watlows: dict[str, WatlowF4TEmulator] = field(default_factory=dict)
    """Watlow F4T chambers by name"""
    palmsenses: dict[str, PalmSensEmulator] = field(default_factory=dict)
    """PalmSens emulators (potentiostats and EIS units) by instrument name"""
    formed: dict[CellParameters, CellModelState] = field(default_factory=dict)
    """each formed cell's state after formation, by its parameters"""

    def address(self, name: str) -> str:
        """The address of an instrument by name."""
        for instrument in self.instruments:
            if instrument.name == name:
                return instrument.address
        raise KeyError(f"no emulated instrument {name!r}")

    def station_toml(self, *, name: str | None = None, data_folder: str = "data") -> str:
        """A ``station.toml`` for the real drivers, pointed at the emulators (``name``: the
        bench's, ``sim-station`` unless a bench file says)."""
        assert self.spec is not None
        addresses = {instrument.name: instrument.address for instrument in self.instruments}
        return station_toml(self.spec, addresses, self.speed,
                            name=name if name is not None else self.spec.name,
                            data_folder=data_folder)


@contextlib.asynccontextmanager
async def serve_sim_station(channels: int = 4, speed: float = 100.0, *, eis: bool = False,
                            host: str = "127.0.0.1") -> AsyncIterator[SimStation]:
    """``channels`` cells, each with a Keithley 2450 and a pneumatic jig, in one ESPEC
    chamber; with ``eis``, a PalmSens on the first cell. Everything is closed on exit."""
    async with serve_bench(channels_bench(channels, eis=eis), speed, host=host) as station:
        yield station


@contextlib.asynccontextmanager
async def serve_bench(spec: BenchSpec, speed: float = 100.0, *,
                      host: str = "127.0.0.1") -> AsyncIterator[SimStation]:
    """Start the emulators of ``spec`` (see the module); everything is closed on exit."""
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"the speed must be a positive number, not {speed}")
    bench = Bench(BenchClock(scale=speed))
    station = SimStation(bench, speed, [cell.name for cell in spec.cells],
                         params=spec.cells[0].params, spec=spec)
    async with contextlib.AsyncExitStack() as stack:
        for chamber in spec.chambers:
            await _start_chamber(station, stack, chamber, host)
        if any(cell.chamber is None for cell in spec.cells):
            _add_chamber(bench, ROOM, ROOM_C)
        for cell in spec.cells:
            await _start_cell(station, stack, cell, host)
        for unit in spec.eis:
            palmsens = PalmSensEmulator(bench.cells[unit.cell])
            stack.push_async_callback(palmsens.close)
            station.palmsenses[unit.name] = palmsens
            station.palmsens = station.palmsens or palmsens
            station.instruments.append(EmulatedInstrument(
                "palmsens", unit.name, await _listen(palmsens.server, unit.transport, host),
                unit.cell))
        yield station


def _add_chamber(bench: Bench, name: str, temperature_c: float) -> Chamber:
    now_s = bench.clock.now_s()
    return bench.add_chamber(name, Chamber(temperature_c=temperature_c,
                                           setpoint_c=temperature_c, time_s=now_s,
                                           _start_c=temperature_c, _start_s=now_s))


async def _listen(server: LineServer, transport: Transport, host: str) -> str:
    """Serve a serial instrument; its address for pyserial."""
    if transport is Transport.PTY:
        return server.start_pty()
    return await server.start_tcp(host)


async def _start_chamber(station: SimStation, stack: contextlib.AsyncExitStack,
                         spec: ChamberSpec, host: str) -> None:
    chamber = _add_chamber(station.bench, spec.name, spec.temperature_c)
    clock = station.bench.clock
    if spec.kind is ChamberKind.WATLOW_F4T:
        watlow = WatlowF4TEmulator(chamber, clock, set_point_range_c=spec.range_c)
        stack.push_async_callback(watlow.close)
        station.watlows[spec.name] = watlow
        address = f"{host}:{await watlow.start(host)}"
    else:
        espec = EspecEmulator(chamber, clock, rated_range_c=spec.range_c)
        server = espec.server()
        stack.push_async_callback(server.close)
        station.especs[spec.name] = espec
        station.espec = station.espec or espec
        address = await _listen(server, spec.transport, host)
    station.instruments.append(EmulatedInstrument(spec.kind.value, spec.name, address))


async def _start_cell(station: SimStation, stack: contextlib.AsyncExitStack, spec: CellSpec,
                      host: str) -> None:
    bench = station.bench
    chamber = bench.chambers[spec.chamber if spec.chamber is not None else ROOM]
    model = CellModel(spec.params, temperature_c=chamber.temperature_c)
    if spec.state is CellState.FORMED:
        formed = station.formed.get(spec.params)
        if formed is None:
            form_cell(model)
            station.formed[spec.params] = model.state
        else:                # the same cell formed the same way: once is enough
            model.restore(formed)
    full_scale_pa = REGULATOR_FULL_SCALE_PSI * PA_PER_PSI
    jig: Jig | None = None
    if spec.jig is not None and spec.jig.kind is JigKind.PNEUMATIC:
        geometry = Jig(cell_area_m2=spec.params.area_m2, piston_area_m2=spec.jig.piston_area_m2)
        regulator_pa = geometry.regulator_for(spec.jig.pressure_pa)
        jig = Jig(pneumatic=True, cell_area_m2=spec.params.area_m2,
                  piston_area_m2=spec.jig.piston_area_m2, regulator_max_pa=full_scale_pa,
                  regulator_setpoint_pa=regulator_pa, _regulator_start_pa=regulator_pa,
                  _start_s=bench.clock.now_s())
    elif spec.jig is not None:
        jig = bolted_jig(spec.params, spec.jig.pressure_pa)
    cell = bench.add_cell(spec.name, spec.chamber if spec.chamber is not None else ROOM,
                          model, jig)
    name = spec.name
    if spec.potentiostat.kind is PotentiostatKind.KEITHLEY2450:
        keithley = Keithley2450Emulator(cell, serial_number=f"0451{len(station.keithleys):04d}")
        scpi = await stack.enter_async_context(ScpiServer(keithley, host=host))
        station.keithleys[name] = keithley
        station.scpi_servers[name] = scpi
        address = scpi.resource
    else:
        palmsens = PalmSensEmulator(cell, serial_number=f"NX24A{len(station.palmsenses):04d}")
        stack.push_async_callback(palmsens.close)
        station.palmsenses[spec.potentiostat_name] = palmsens
        address = await _listen(palmsens.server, spec.potentiostat.transport, host)
    station.instruments.append(EmulatedInstrument(spec.potentiostat.kind.value,
                                                  spec.potentiostat_name, address, name))
    if spec.jig is None:
        return
    if spec.jig.kind is JigKind.PNEUMATIC:
        alicat = AlicatEmulator.for_bench_cell(cell, full_scale_pa=full_scale_pa)
        server = alicat.line_server()
        stack.push_async_callback(server.close)
        station.alicats[name] = alicat
        station.instruments.append(EmulatedInstrument(
            "alicat", f"regulator-{name}", await _listen(server, spec.jig.transport, host), name))
    mark10 = Mark10Emulator.for_bench_cell(cell)
    server = mark10.line_server()
    stack.push_async_callback(server.close)
    station.mark10s[name] = mark10
    station.instruments.append(EmulatedInstrument(
        "mark10", f"gauge-{name}", await _listen(server, spec.jig.transport, host), name))

"""A small simulated station on the wire: the emulators of every instrument around a few
cells, on one shared bench clock, and a ``station.toml`` that points the real drivers at them.

:func:`serve_sim_station` starts, for ``channels`` cells (default 4) in one chamber:

- a Keithley 2450 emulator per cell (SCPI over TCP: ``TCPIP::127.0.0.1::<port>::SOCKET``);
- one ESPEC chamber emulator shared by every cell (``socket://``);
- a pneumatic jig per cell: an Alicat regulator and a Mark-10 gauge emulator bound to that
  cell's jig (``socket://``), the jig starting at 2 MPa;
- with ``eis``, one PalmSens emulator wired to the first cell: the first channel's EIS unit
  (a multiplexer that would switch it between cells is not emulated).

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
from cellrig.simulators.bench import Bench, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import CellParameters, load_builtin_cell
from cellrig.simulators.espec_emulator import EspecEmulator
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.mark10_emulator import Mark10Emulator
from cellrig.simulators.palmsens_emulator import PalmSensEmulator
from cellrig.simulators.scpi_server import ScpiServer

#: Pascals per psi: the regulators' full scale is written in psi, as on their label.
PA_PER_PSI = 6894.757293168
REGULATOR_FULL_SCALE_PSI = 150.0
START_PRESSURE_PA = 2.0e6
CHAMBER_RANGE_C = (-40.0, 150.0)
PISTON_AREA_M2 = 0.1
CHAMBER = "chamber"
#: Every channel's hard limits: an as-built anode-free cell sits near 1 V, so no lower bound
#: above 0 V; a Keithley 2450 sources up to 1.05 A.
CHANNEL_LIMITS = ('voltage = ["0 V", "4.4 V"], current = "1 A", '
                  'temperature = ["-20 degC", "80 degC"], pressure = ["0.5 MPa", "8 MPa"]')


@dataclass(frozen=True, slots=True)
class EmulatedInstrument:
    """One emulator: what it emulates, its name in the station and its address."""

    kind: str
    name: str
    address: str
    channel: str | None = None
    """the channel it serves alone (None for the shared chamber)"""


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
    palmsens: PalmSensEmulator | None = None
    params: CellParameters = field(default_factory=load_builtin_cell)

    def address(self, name: str) -> str:
        """The address of an instrument by name."""
        for instrument in self.instruments:
            if instrument.name == name:
                return instrument.address
        raise KeyError(f"no emulated instrument {name!r}")

    def station_toml(self, *, name: str = "sim-station", data_folder: str = "data") -> str:
        """A ``station.toml`` for the real drivers, pointed at the emulators."""
        speed = f"{self.speed:g}"
        lines = ["# A simulated station: every address below is an emulator of "
                 "`cellrig sim serve`.",
                 f"# The bench runs {speed} times faster than real time.",
                 "", "[station]", f'name = "{name}"', f'data_folder = "{data_folder}"', ""]
        for instrument in self.instruments:
            lines += [f"[instruments.{instrument.name}]", f'driver = "{instrument.kind}"',
                      f'address = "{instrument.address}"']
            options = self._options(instrument.kind)
            if options:
                lines.append(f"options = {{ {options} }}")
            lines.append("")
        area_cm2 = self.params.area_m2 * 1e4
        for channel in self.channels:
            lines += [f"[channels.{channel}]", f'potentiostat = "smu-{channel}"',
                      f'chamber = "{CHAMBER}"']
            if self.palmsens is not None and channel == self.channels[0]:
                lines.append('eis = "eis"')
            lines += [f'jig = {{ kind = "pneumatic", regulator = "regulator-{channel}", '
                      f'gauge = "gauge-{channel}", cell_area = "{area_cm2:.6g} cm^2", '
                      f'piston_area = "{PISTON_AREA_M2:g} m^2", max_force = "100 kN" }}',
                      f"limits = {{ {CHANNEL_LIMITS} }}", ""]
        return "\n".join(lines)

    def _options(self, kind: str) -> str:
        speed = f"{self.speed:g}"
        low, high = CHAMBER_RANGE_C
        return {
            "keithley2450": f'model = "2450", nplc = 1, time_scale = {speed}',
            "palmsens": f'model = "nexus1", time_scale = {speed}',
            "espec": f'temperature_range = ["{low:g} degC", "{high:g} degC"], '
                     'poll_period = "1 s"',
            "alicat": f'full_scale = "{REGULATOR_FULL_SCALE_PSI:g} psi", '
                      'pressure_unit = "psi"',
            "mark10": 'poll_period = "0.5 s"',
        }.get(kind, "")


def channel_names(count: int) -> list[str]:
    """``A1``, ``A2``, …"""
    return [f"A{index + 1}" for index in range(count)]


@contextlib.asynccontextmanager
async def serve_sim_station(channels: int = 4, speed: float = 100.0, *, eis: bool = False,
                            host: str = "127.0.0.1") -> AsyncIterator[SimStation]:
    """Start the emulators (see the module); everything is closed on exit."""
    if channels < 1:
        raise ValueError("a simulated station needs at least one channel")
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"the speed must be a positive number, not {speed}")
    bench = Bench(BenchClock(scale=speed))
    chamber = bench.add_chamber(CHAMBER)
    names = channel_names(channels)
    station = SimStation(bench, speed, names)
    full_scale_pa = REGULATOR_FULL_SCALE_PSI * PA_PER_PSI
    async with contextlib.AsyncExitStack() as stack:
        espec = EspecEmulator(chamber, bench.clock, rated_range_c=CHAMBER_RANGE_C)
        server = espec.server()
        stack.push_async_callback(server.close)
        station.espec = espec
        station.instruments.append(
            EmulatedInstrument("espec", CHAMBER, await server.start_tcp(host)))
        for name in names:
            jig = pneumatic_jig(station.params, START_PRESSURE_PA, bench.clock.now_s())
            jig.regulator_max_pa = full_scale_pa
            cell = bench.add_cell(name, CHAMBER, CellModel(
                station.params, temperature_c=chamber.temperature_c), jig)
            keithley = Keithley2450Emulator(cell, serial_number=f"0451{len(station.keithleys):04d}")
            scpi = await stack.enter_async_context(ScpiServer(keithley, host=host))
            station.keithleys[name] = keithley
            station.scpi_servers[name] = scpi
            alicat = AlicatEmulator.for_bench_cell(cell, full_scale_pa=full_scale_pa)
            alicat_server = alicat.line_server()
            stack.push_async_callback(alicat_server.close)
            station.alicats[name] = alicat
            mark10 = Mark10Emulator.for_bench_cell(cell)
            mark10_server = mark10.line_server()
            stack.push_async_callback(mark10_server.close)
            station.mark10s[name] = mark10
            station.instruments += [
                EmulatedInstrument("keithley2450", f"smu-{name}", scpi.resource, name),
                EmulatedInstrument("alicat", f"regulator-{name}",
                                   await alicat_server.start_tcp(host), name),
                EmulatedInstrument("mark10", f"gauge-{name}",
                                   await mark10_server.start_tcp(host), name)]
        if eis:
            palmsens = PalmSensEmulator(bench.cells[names[0]])
            stack.push_async_callback(palmsens.close)
            station.palmsens = palmsens
            station.instruments.append(EmulatedInstrument(
                "palmsens", "eis", await palmsens.start_tcp(host), names[0]))
        yield station

"""``driver = "model"``: the simulated bench inside the station, with no wire at all.

Every instrument of the station whose driver is ``model`` is served by one
:class:`~cellrig.simulators.bench.Bench` on one :class:`~cellrig.simulators.bench.BenchClock`
running ``time_scale`` times faster than real time (1 when no model instrument gives it; every
model instrument that gives it must give the same):

- each channel that names a model instrument in any role gets a bench cell named after the
  channel (the ``cell`` option of its potentiostat's model instrument, or of the first model
  instrument it names; the built-in default cell otherwise);
- a model chamber is a bench chamber named after the instrument, shared by every channel that
  names it; a channel whose chamber is not a model sits in a bench chamber named ``room``
  that nothing sets;
- a model jig (its gauge a model instrument) is a bench jig of the channel's kind, starting at
  2 MPa (or the middle of the channel's pressure window when 2 MPa is outside it), its
  regulator's full scale the ``full_scale`` option;
- potentiostat, EIS, chamber and jig ports are those of :mod:`cellrig.simulators.bench_ports`.

Time. The station's timer and the engine's clock follow the bench clock
(:class:`BenchTimer`): monotonic seconds are bench seconds, UTC is the start time plus bench
seconds, and a sleep shrinks by the speed. The station's periods (supervisor tick, watchdog
floor, poll periods) are stretched so they stay the same in real time
(:func:`scaled_period_s`), which keeps a fast bench cheap.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cellrig.daemon.station_config_model import (
    ChannelConfig,
    Driver,
    InstrumentConfig,
    JigType,
    StationConfig,
)
from cellrig.errors import CellrigError
from cellrig.simulators.bench import Bench, BenchCell, BenchClock, bolted_jig, pneumatic_jig
from cellrig.simulators.bench_ports import (
    BenchChamberPort,
    BenchEis,
    BenchJigPort,
    BenchPotentiostat,
)
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import CellParameters, load_builtin_cell, load_cell_file

#: The stack pressure a model jig starts at (the paper's).
START_PRESSURE_PA = 2.0e6
#: The bench chamber of cells whose chamber is not a model.
ROOM = "room"
DEFAULT_RANGE_C = (-40.0, 180.0)


class ModelError(CellrigError):
    """The model instruments of a station cannot be built as configured."""


class BenchTimer:
    """The station's timer and the engine's clock on a bench clock."""

    def __init__(self, clock: BenchClock, start_unix: float | None = None) -> None:
        self.bench_clock = clock
        self.start_unix = (time.time() if start_unix is None else start_unix) - clock.now_s()

    @property
    def speed(self) -> float:
        """How much faster than real time the bench runs (1 for a virtual clock)."""
        return self.bench_clock.scale or 1.0

    def now_s(self) -> float:
        """Bench seconds."""
        return self.bench_clock.now_s()

    def unix_now(self) -> float:
        """The start time plus bench seconds."""
        return self.start_unix + self.bench_clock.now_s()

    async def sleep(self, duration_s: float) -> None:
        """``duration_s`` of bench time."""
        await self.bench_clock.sleep(duration_s)


def scaled_period_s(period_s: float, speed: float, min_real_s: float) -> float:
    """A period in bench seconds that is never shorter than ``min_real_s`` of real time."""
    return max(period_s, min_real_s * speed)


def model_speed(instruments: Mapping[str, InstrumentConfig]) -> float:
    """The one ``time_scale`` of the station's model instruments (1 if none gives it)."""
    scales = {name: float(config.options["time_scale"]) for name, config in instruments.items()
              if config.driver is Driver.MODEL and "time_scale" in config.options}
    if len(set(scales.values())) > 1:
        listed = ", ".join(f"{name}: {scale:g}" for name, scale in sorted(scales.items()))
        raise ModelError(f"the model instruments share one bench clock, so they must have the "
                         f"same time_scale (they have {listed})")
    return next(iter(scales.values()), 1.0)


def _load_cell(option: str | None, folder: Path | None) -> CellParameters:
    if option is None:
        return load_builtin_cell()
    if "/" in option or option.endswith(".yaml"):
        path = Path(option).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        return load_cell_file(path)
    return load_builtin_cell(option)


@dataclass
class ModelBench:
    """The bench behind a station's model instruments, and its ports."""

    bench: Bench
    timer: BenchTimer
    instruments: dict[str, InstrumentConfig]
    potentiostats: dict[str, BenchPotentiostat] = field(default_factory=dict)
    eis_units: dict[str, BenchEis] = field(default_factory=dict)
    chambers: dict[str, BenchChamberPort] = field(default_factory=dict)
    jigs: dict[str, BenchJigPort] = field(default_factory=dict)
    _cells: dict[str | None, CellParameters] = field(default_factory=dict, repr=False)
    """cell definitions read so far, by the ``cell`` option (one read for many channels)"""

    @property
    def speed(self) -> float:
        """How much faster than real time the bench runs."""
        return self.timer.speed

    def cell(self, channel: str) -> BenchCell:
        """The bench cell of a channel."""
        return self.bench.cells[channel]

    @classmethod
    def build(cls, config: StationConfig, *, clock: BenchClock | None = None) -> ModelBench:
        """The bench for every channel that names a model instrument (see the module).

        Raises:
            ModelError: model instruments with different speeds, or a cell definition that
                cannot be read.
        """
        models = {name: instrument for name, instrument in config.instruments.items()
                  if instrument.driver is Driver.MODEL}
        speed = model_speed(models)
        bench_clock = clock if clock is not None else BenchClock(scale=speed)
        made = cls(Bench(bench_clock), BenchTimer(bench_clock), models)
        folder = None if config.source is None else config.source.resolve().parent
        for channel in config.channels.values():
            named = _model_roles(channel, models)
            if named:
                made._add_channel(channel, named, folder)
        return made

    def _add_channel(self, channel: ChannelConfig, named: list[str],
                     folder: Path | None) -> None:
        potentiostat = channel.potentiostat.instrument
        owner = self.instruments[potentiostat if potentiostat in named else named[0]]
        option = owner.options.get("cell")
        params = self._cells.get(option)
        if params is None:
            try:
                params = _load_cell(option, folder)
            except (CellrigError, OSError, KeyError) as error:
                raise ModelError(f"model {owner.name!r}: cannot load the cell of channel "
                                 f"{channel.name}: {error}") from error
            self._cells[option] = params
        chamber_name = channel.chamber if channel.chamber in self.instruments else ROOM
        if chamber_name not in self.bench.chambers:
            self.bench.add_chamber(chamber_name)
        if chamber_name != ROOM:
            options = self.instruments[chamber_name].options
            self.chambers[chamber_name] = BenchChamberPort(
                self.bench.chambers[chamber_name], self.bench.clock,
                tuple(options.get("temperature_range_c", DEFAULT_RANGE_C)), chamber_name)
        jig_config = channel.jig
        jig = None
        if jig_config is not None and jig_config.gauge in self.instruments:
            start_pa = _start_pressure(channel)
            if jig_config.type is JigType.PNEUMATIC:
                jig = pneumatic_jig(params, start_pa, self.bench.clock.now_s())
                gauge_options = self.instruments[jig_config.gauge].options
                jig.regulator_max_pa = float(gauge_options.get("full_scale_pa",
                                                               jig.regulator_max_pa))
            else:
                jig = bolted_jig(params, start_pa)
        room = self.bench.chambers[chamber_name]
        cell = self.bench.add_cell(channel.name, chamber_name,
                                   CellModel(params, temperature_c=room.temperature_c), jig)
        if potentiostat in self.instruments:
            self.potentiostats[channel.name] = BenchPotentiostat(cell, potentiostat)
        if channel.eis in self.instruments:
            self.eis_units[channel.name] = BenchEis(cell, channel.eis or "model")
        if jig is not None and jig_config is not None:
            self.jigs[channel.name] = BenchJigPort(cell, jig_config.geometry.max_pressure_pa,
                                                   jig_config.gauge)


def _model_roles(channel: ChannelConfig, models: Mapping[str, InstrumentConfig]) -> list[str]:
    jig = channel.jig
    names = [channel.potentiostat.instrument, channel.chamber, channel.eis,
             None if jig is None else jig.gauge, None if jig is None else jig.regulator]
    return [name for name in names if name is not None and name in models]


def _start_pressure(channel: ChannelConfig) -> float:
    window = channel.limits.pressure_pa
    if window is None:
        return START_PRESSURE_PA
    low = window.low if window.low is not None else 0.0
    high = window.high if window.high is not None else 2.0 * START_PRESSURE_PA
    if low <= START_PRESSURE_PA <= high:
        return START_PRESSURE_PA
    return 0.5 * (low + high)

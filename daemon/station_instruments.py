"""The driver registry: how each ``driver`` of ``station.toml`` is opened, and the ports it
gives the station's channels.

One opener per :class:`~cellrig.daemon.station_config_model.Driver` takes the instrument's
configuration (address and options, SI names as :mod:`.station_config_drivers` parses them)
and returns an :class:`OpenInstrument`: the ports it provides, by role. An instrument is opened
once, whatever the number of channels it serves (a shared chamber, a shared EIS unit, the
model bench), and closed by the station's exit stack.

=============== ============================================ ==============================
driver          provides                                     opened by
=============== ============================================ ==============================
keithley2450    potentiostat (its one channel)               the station (reset, output off;
                                                             left sourcing for a job that
                                                             resumes, see ``resume``)
palmsens        potentiostat (channel 1), EIS (one sweep at  the station (abort, identify)
                a time however many channels share it)
espec           chamber                                      the station
watlow-f4t      chamber                                      the station
alicat          pressure regulator                           the channel's pneumatic jig
mark10          force gauge                                  the channel's jig
model           every role, from the bench                   (in-process)
=============== ============================================ ==============================

The regulator and the gauge of a jig are built here but entered by the jig
(:class:`~cellrig.drivers.jig_pneumatic.PneumaticJig`, :class:`~cellrig.drivers.jig_bolted.
BoltedJig`), which owns the pressure loop or the force monitor that uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cellrig.drivers.alicat import AlicatPressureController
from cellrig.drivers.espec import EspecChamber
from cellrig.drivers.jig_monitor import ForceGaugePort
from cellrig.drivers.keithley2450 import Keithley2450
from cellrig.drivers.keithley2450_models import ChannelLimits
from cellrig.drivers.mark10 import Mark10ForceGauge
from cellrig.drivers.palmsens import PalmSens
from cellrig.drivers.palmsens_ranges import MODELS as PALMSENS_MODELS
from cellrig.drivers.ports import ChamberPort, EisPort, JigPort, PotentiostatPort
from cellrig.drivers.pressure_loop_task import RegulatorPort
from cellrig.drivers.watlow_f4t import WatlowF4T
from cellrig.drivers.watlow_registers import WordOrder
from cellrig.errors import CellrigError
from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Spectrum

from .station_config_model import ChannelConfig, Driver, InstrumentConfig, StationConfig
from .station_model import ModelBench

#: Default poll periods (s) when the configuration gives none.
CHAMBER_POLL_S = 2.0
GAUGE_POLL_S = 1.0


class ChannelUnavailable(CellrigError):
    """A channel cannot be built from the instruments that opened."""


@dataclass(frozen=True, slots=True)
class OpenContext:
    """What an opener may need besides its own configuration."""

    station: StationConfig
    model: ModelBench | None
    resume: frozenset[str] = frozenset()
    """channels with a job to resume: their potentiostats are read before any reset, and one
    found sourcing is left as it is (every other channel is made safe at once)"""


@dataclass
class OpenInstrument:
    """An opened instrument and the ports it provides (None: not in that role)."""

    config: InstrumentConfig
    potentiostat: Callable[[ChannelConfig], PotentiostatPort] | None = None
    eis: Callable[[ChannelConfig], EisPort] | None = None
    chamber: ChamberPort | None = None
    regulator: RegulatorPort | None = None
    gauge: ForceGaugePort | None = None
    jig: Callable[[ChannelConfig], JigPort] | None = None
    """a whole jig (the model's): no regulator and gauge to assemble"""
    poll_period_s: float | None = None

    @property
    def name(self) -> str:
        """The instrument's name in the configuration."""
        return self.config.name


Opener = Callable[[InstrumentConfig, OpenContext, contextlib.AsyncExitStack],
                  Awaitable[OpenInstrument]]


class SharedEis:
    """An EIS unit several channels use: one sweep at a time, in the order asked."""

    def __init__(self, port: EisPort) -> None:
        self.port = port
        self._lock = asyncio.Lock()

    @property
    def frequency_range_hz(self) -> tuple[float, float]:
        """The unit's range."""
        return self.port.frequency_range_hz

    async def eis(self, step: EisStep) -> Spectrum:
        """Wait for the unit, then sweep."""
        async with self._lock:
            return await self.port.eis(step)


def channel_limits(channel: ChannelConfig) -> ChannelLimits:
    """The channel's hard limits as a source-measure unit takes them (its own protection)."""
    voltage, current = channel.limits.voltage_v, channel.limits.current_a
    if voltage is None or voltage.high is None or current is None or current.high is None:
        raise ChannelUnavailable(f"channel {channel.name} needs a voltage and a current limit")
    low = voltage.low if voltage.low is not None and 0 < voltage.low < voltage.high else 0.0
    return ChannelLimits(max_voltage_v=voltage.high, max_current_a=current.high,
                         min_voltage_v=low)


def _only_user(config: InstrumentConfig, context: OpenContext) -> ChannelConfig:
    users = [channel for channel in context.station.channels.values()
             if channel.potentiostat.instrument == config.name]
    if len(users) != 1:
        raise ChannelUnavailable(f"{config.name} must be the potentiostat of exactly one "
                                 f"channel, not {len(users)}")
    return users[0]


def _common(options: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: options[key] for key in keys if key in options}


async def open_keithley(config: InstrumentConfig, context: OpenContext,
                        stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """A Keithley 2450-family SMU over VISA; its protection is its channel's hard limits.
    Host polls are at most one real second apart (``time_scale`` seconds of instrument time)."""
    channel = _only_user(config, context)
    options = config.options
    time_scale = float(options.get("time_scale", 1.0))
    driver = Keithley2450.over_visa(
        config.address, limits=channel_limits(channel), instrument=config.name,
        max_poll_interval_s=max(1.0, time_scale),
        reset_on_open=channel.name not in context.resume,
        **_common(options, "timeout_s", "model", "nplc", "four_wire", "time_scale"))
    await stack.enter_async_context(driver)
    return OpenInstrument(config, potentiostat=lambda _: driver)


async def open_palmsens(config: InstrumentConfig, context: OpenContext,
                        stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """A PalmSens MethodSCRIPT instrument on a serial line: the potentiostat of channel 1,
    and an EIS unit shared by every channel that names it."""
    del context
    options = config.options
    model = PALMSENS_MODELS[options["model"]] if "model" in options else None
    driver = PalmSens(config.address, instrument=config.name, model=model,
                      **_common(options, "baudrate", "timeout_s", "time_scale"))
    await stack.enter_async_context(driver)
    shared = SharedEis(driver)

    def potentiostat(channel: ChannelConfig) -> PotentiostatPort:
        if channel.potentiostat.channel != 1:
            raise ChannelUnavailable(
                f"channel {channel.name}: the PalmSens driver drives channel 1 of "
                f"{config.name} only, not channel {channel.potentiostat.channel}")
        return driver

    return OpenInstrument(config, potentiostat=potentiostat, eis=lambda _: shared)


def _users(config: InstrumentConfig, context: OpenContext) -> tuple[str, ...]:
    return tuple(context.station.users(config.name))


async def open_espec(config: InstrumentConfig, context: OpenContext,
                     stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """An ESPEC chamber on a serial line or ``socket://``."""
    options = config.options
    driver = EspecChamber.over_serial(
        config.address, temperature_range_c=tuple(options["temperature_range_c"]),
        channels=_users(config, context), instrument=config.name,
        **_common(options, "baudrate", "timeout_s", "rs485_address"))
    await stack.enter_async_context(driver)
    return OpenInstrument(config, chamber=driver,
                          poll_period_s=options.get("poll_period_s", CHAMBER_POLL_S))


async def open_watlow(config: InstrumentConfig, context: OpenContext,
                      stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """A Watlow F4T chamber controller over Modbus TCP (``host`` or ``host:port``)."""
    options = config.options
    host, _, port = config.address.partition(":")
    extra = _common(options, "device_id", "timeout_s", "loop", "alarms")
    if "word_order" in options:
        extra["word_order"] = WordOrder(options["word_order"])
    driver = WatlowF4T.over_tcp(
        host, int(port) if port else 502,
        temperature_range_c=tuple(options["temperature_range_c"]),
        channels=_users(config, context), instrument=config.name, **extra)
    await stack.enter_async_context(driver)
    return OpenInstrument(config, chamber=driver,
                          poll_period_s=options.get("poll_period_s", CHAMBER_POLL_S))


async def open_alicat(config: InstrumentConfig, context: OpenContext,
                      stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """An Alicat pressure controller (entered by its jig)."""
    del context, stack
    driver = AlicatPressureController.serial(
        config.address, name=config.name,
        **_common(config.options, "baudrate", "timeout_s", "unit_id", "pressure_unit",
                  "full_scale_pa"))
    return OpenInstrument(config, regulator=driver)


async def open_mark10(config: InstrumentConfig, context: OpenContext,
                      stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """A Mark-10 force gauge (entered by its jig)."""
    del context, stack
    options = config.options
    driver = Mark10ForceGauge.serial(
        config.address, name=config.name,
        **_common(options, "baudrate", "timeout_s", "compression_positive", "bare_unit"))
    return OpenInstrument(config, gauge=driver,
                          poll_period_s=options.get("poll_period_s", GAUGE_POLL_S))


async def open_model(config: InstrumentConfig, context: OpenContext,
                     stack: contextlib.AsyncExitStack) -> OpenInstrument:
    """The bench's ports for every channel that names this model instrument."""
    del stack
    model = context.model
    assert model is not None, "the station builds the bench before opening model instruments"

    def pick(table: Mapping[str, Any], what: str) -> Callable[[ChannelConfig], Any]:
        def port(channel: ChannelConfig) -> Any:
            if channel.name not in table:
                raise ChannelUnavailable(f"channel {channel.name}: the model {config.name} "
                                         f"has no {what} for it")
            return table[channel.name]
        return port

    chamber = model.chambers.get(config.name)
    return OpenInstrument(
        config, potentiostat=pick(model.potentiostats, "potentiostat"),
        eis=pick(model.eis_units, "cell to measure (its potentiostat is not a model)"),
        chamber=chamber, jig=pick(model.jigs, "jig"),
        poll_period_s=options_period(config.options))


def options_period(options: Mapping[str, Any]) -> float | None:
    """The poll period an instrument's options give, if any."""
    value = options.get("poll_period_s")
    return None if value is None else float(value)


OPENERS: dict[Driver, Opener] = {
    Driver.KEITHLEY2450: open_keithley,
    Driver.PALMSENS: open_palmsens,
    Driver.ESPEC: open_espec,
    Driver.WATLOW_F4T: open_watlow,
    Driver.ALICAT: open_alicat,
    Driver.MARK10: open_mark10,
    Driver.MODEL: open_model,
}

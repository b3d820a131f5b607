"""How a :class:`~cellrig.daemon.station.Station` is built from its configuration.

1. The model bench, if any instrument is ``driver = "model"``; the station's timer is then the
   bench's (:class:`~cellrig.daemon.station_model.BenchTimer`) and its periods are stretched to
   the bench's speed.
2. Every instrument is opened at once (concurrently), each under ``open_timeout_s``: a failure
   is logged and recorded, never raised.
3. One :class:`SharedChamber` per chamber, whatever the number of channels in it.
4. Every channel, concurrently: its potentiostat and EIS ports, its jig (a pneumatic jig opens
   its regulator and gauge and starts its pressure loop; a bolted jig its force monitor), its
   :class:`ChannelRig`, put in its safe state (output off) unless it has a job to resume
   (``resume``: recovery reads the instrument first and decides), and its supervisor. A channel
   whose instruments did not open, or whose build fails, is recorded as unavailable.
5. A first reading of every chamber and jig (a failed one is logged and left to the pollers).

Everything entered goes on the caller's exit stack, so it is closed in reverse order: jigs
first, then instruments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import SharedChamber, StackJig, SystemTimer, Timer
from cellrig.daemon.station import InstrumentFailure, Station, StationChannel
from cellrig.daemon.station_config_model import (
    ChannelConfig,
    Driver,
    JigType,
    StationConfig,
)
from cellrig.daemon.station_instruments import (
    CHAMBER_POLL_S,
    GAUGE_POLL_S,
    OPENERS,
    ChannelUnavailable,
    OpenContext,
    OpenInstrument,
)
from cellrig.daemon.station_model import BenchTimer, ModelBench, scaled_period_s
from cellrig.daemon.supervisor import ChannelSupervisor, EventCallback, SupervisorSettings
from cellrig.drivers.jig_bolted import BoltedJig
from cellrig.drivers.jig_pneumatic import PneumaticJig
from cellrig.drivers.ports import JigPort
from cellrig.errors import CellrigError, InstrumentError

log = logging.getLogger(__name__)

#: On a fast bench, the shortest real time between two polls of one instrument, between two
#: supervisor ticks, and the real time a watchdog allows at least.
MIN_REAL_POLL_S = 0.1
MIN_REAL_TICK_S = 0.1
MIN_REAL_WATCHDOG_S = 2.0


@dataclass
class _Build:
    config: StationConfig
    stack: contextlib.AsyncExitStack
    timer: Timer
    speed: float
    opened: dict[str, OpenInstrument]
    failures: dict[str, InstrumentFailure]
    chambers: dict[str, SharedChamber]
    settings: SupervisorSettings
    on_event: EventCallback | None
    open_timeout_s: float
    resume: frozenset[str] = frozenset()

    def period_s(self, period_s: float) -> float:
        return scaled_period_s(period_s, self.speed, MIN_REAL_POLL_S)


def supervisor_settings(speed: float) -> SupervisorSettings:
    """The default settings, their tick and watchdog floor stretched to a bench's speed."""
    base = SupervisorSettings()
    return SupervisorSettings(
        watchdog_periods=base.watchdog_periods,
        watchdog_floor_s=scaled_period_s(base.watchdog_floor_s, speed, MIN_REAL_WATCHDOG_S),
        hysteresis_fraction=base.hysteresis_fraction, safe_timeout_s=base.safe_timeout_s,
        tick_s=scaled_period_s(base.tick_s, speed, MIN_REAL_TICK_S), retry=base.retry)


#: What opening an instrument or building a channel is expected to raise; anything else is
#: a defect, logged with its traceback (the channel is still only left out).
_EXPECTED = (CellrigError, OSError, TimeoutError, ValueError)


def _reason(error: BaseException) -> str:
    if isinstance(error, InstrumentError):
        return error.detail
    if isinstance(error, TimeoutError):
        return "it did not answer in time"
    return str(error) or type(error).__name__


async def _open_all(config: StationConfig, context: OpenContext,
                    stack: contextlib.AsyncExitStack, open_timeout_s: float
                    ) -> tuple[dict[str, OpenInstrument], dict[str, InstrumentFailure]]:
    opened: dict[str, OpenInstrument] = {}
    failures: dict[str, InstrumentFailure] = {}

    async def open_one(name: str) -> None:
        instrument = config.instruments[name]
        try:
            async with asyncio.timeout(open_timeout_s):
                opened[name] = await OPENERS[instrument.driver](instrument, context, stack)
        except Exception as error:  # one instrument must not stop the others
            failure = InstrumentFailure(name, instrument.driver.value, instrument.address,
                                        _reason(error))
            failures[name] = failure
            if isinstance(error, _EXPECTED):
                log.error("%s", failure)
            else:
                log.exception("%s", failure)

    used = {name for name in config.instruments if config.users(name)}
    await asyncio.gather(*(open_one(name) for name in sorted(used)))
    return opened, failures


async def build_station(config: StationConfig, stack: contextlib.AsyncExitStack, *,
                        timer: Timer | None, on_event: EventCallback | None,
                        settings: SupervisorSettings | None,
                        open_timeout_s: float,
                        resume: frozenset[str] = frozenset()) -> Station:
    """The station, its instruments entered on ``stack`` (see the module)."""
    model = None
    if any(item.driver is Driver.MODEL for item in config.instruments.values()):
        model = ModelBench.build(config)
    chosen: Timer = timer if timer is not None else (
        model.timer if model is not None else SystemTimer())
    speed = chosen.speed if isinstance(chosen, BenchTimer) else 1.0
    opened, failures = await _open_all(config, OpenContext(config, model, resume), stack,
                                       open_timeout_s)
    build = _Build(config, stack, chosen, speed, opened, failures, {},
                   settings or supervisor_settings(speed), on_event, open_timeout_s, resume)
    for name, instrument in opened.items():
        if instrument.chamber is not None:
            build.chambers[name] = SharedChamber(
                name, instrument.chamber, chosen,
                build.period_s(instrument.poll_period_s or CHAMBER_POLL_S))
    unavailable: dict[str, str] = {}
    channels: dict[str, StationChannel] = {}

    async def build_one(channel: ChannelConfig) -> None:
        try:
            async with asyncio.timeout(open_timeout_s):
                channels[channel.name] = await _channel(build, channel)
        except Exception as error:  # one channel must not stop the others
            reason = _reason(error)
            unavailable[channel.name] = reason
            if isinstance(error, _EXPECTED):
                log.error("channel %s is unavailable: %s", channel.name, reason)
            else:
                log.exception("channel %s is unavailable: %s", channel.name, reason)

    await asyncio.gather(*(build_one(channel) for channel in config.channels.values()))
    ordered = {name: channels[name] for name in config.channels if name in channels}
    jigs = {name: channel.jig for name, channel in ordered.items() if channel.jig is not None}
    # one first reading of every chamber and jig, so a job's first samples carry them
    polled = [*build.chambers.values(), *jigs.values()]
    await asyncio.gather(*(instrument.poll() for instrument in polled))
    log.info("station %s: %d channel(s) ready, %d unavailable", config.name, len(ordered),
             len(unavailable))
    return Station(config, chosen, chosen, ordered, build.chambers, jigs,
                   {name: unavailable[name] for name in config.channels if name in unavailable},
                   failures, model)


def _needed(channel: ChannelConfig) -> list[str]:
    jig = channel.jig
    names = [channel.potentiostat.instrument, channel.chamber, channel.eis,
             None if jig is None else jig.regulator, None if jig is None else jig.gauge]
    return [name for name in dict.fromkeys(names) if name is not None]


async def _channel(build: _Build, channel: ChannelConfig) -> StationChannel:
    for name in _needed(channel):
        if name in build.failures:
            raise ChannelUnavailable(str(build.failures[name]))
    potentiostat_name = channel.potentiostat.instrument
    source = build.opened[potentiostat_name]
    if source.potentiostat is None:
        raise ChannelUnavailable(f"{potentiostat_name} is not a potentiostat")
    potentiostat = source.potentiostat(channel)
    described = f"{potentiostat_name} ({source.config.driver.value})"
    eis = None
    if channel.eis is not None:
        unit = build.opened[channel.eis]
        if unit.eis is None:
            raise ChannelUnavailable(f"{channel.eis} is not an EIS unit")
        eis = unit.eis(channel)
        if channel.eis != potentiostat_name:
            described += f" with EIS unit {channel.eis} ({unit.config.driver.value})"
    chamber = None if channel.chamber is None else build.chambers.get(channel.chamber)
    if channel.chamber is not None and chamber is None:
        raise ChannelUnavailable(f"{channel.chamber} is not a chamber")
    jig = await _jig(build, channel)
    rig = ChannelRig(channel.name, potentiostat, eis=eis, chamber=chamber, jig=jig)
    if channel.name not in build.resume:  # a job to resume: recovery reads it first
        await rig.safe()
    supervisor = ChannelSupervisor(rig, timer=build.timer, hard_limits=channel.limits,
                                   on_event=build.on_event, settings=build.settings)
    return StationChannel(channel.name, channel, rig, supervisor, chamber, jig, described)


async def _jig(build: _Build, channel: ChannelConfig) -> StackJig | None:
    config = channel.jig
    if config is None:
        return None
    name = f"{channel.name}-jig"
    gauge = build.opened[config.gauge]
    period_s = gauge.poll_period_s or GAUGE_POLL_S
    port: JigPort
    if gauge.jig is not None:
        port = gauge.jig(channel)
    elif gauge.gauge is None:
        raise ChannelUnavailable(f"{config.gauge} is not a force gauge")
    elif config.type is JigType.PNEUMATIC:
        regulator = None if config.regulator is None else build.opened[config.regulator]
        if regulator is None or regulator.regulator is None:
            raise ChannelUnavailable(f"the jig of channel {channel.name} has no regulator")
        port = await build.stack.enter_async_context(
            PneumaticJig(name, config.geometry, regulator.regulator, gauge.gauge))
    else:
        port = await build.stack.enter_async_context(
            BoltedJig(name, config.geometry, gauge.gauge, period_s=period_s))
    return StackJig(name, port, build.timer, build.period_s(period_s))

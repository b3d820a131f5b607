"""A running station: its instruments open, its channels' rigs and supervisors built, its
environment pollers and watchdogs ready to run.

:func:`open_station` turns a checked :class:`~cellrig.daemon.station_config_model.StationConfig`
into a :class:`Station` (how, in :mod:`cellrig.daemon.station_build`; each driver's opener in
:mod:`cellrig.daemon.station_instruments`; ``driver = "model"`` in
:mod:`cellrig.daemon.station_model`)::

    async with open_station(load_station("station.toml")) as station:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(station.run())   # pollers and watchdogs
            channel = station.channel("A1")
            problems = channel.refusals(program)         # [] when it can run here
            channel.supervisor.begin_job(program.limits)
            outcome = await Engine(program, channel.rig, sink, station.clock).run()
            channel.supervisor.end_job()
            running.cancel()

An instrument that cannot be opened does not stop the station: it is logged with its name,
driver, address and the reason, and every channel that needs it is left out of ``channels``
and listed in ``unavailable`` with that reason; the other channels run. A station where no
channel could be built still opens (the control plane reports why), and its ``channels`` are
empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field

from cellrig.daemon.channel_rig import ChannelRig, SafeAction
from cellrig.daemon.environment import (
    EnvironmentInstrument,
    EnvironmentPoller,
    SharedChamber,
    StackJig,
    Timer,
)
from cellrig.daemon.station_config_model import ChannelConfig, StationConfig
from cellrig.daemon.station_instruments import ChannelUnavailable
from cellrig.daemon.station_model import ModelBench
from cellrig.daemon.station_refusals import channel_refusals
from cellrig.daemon.supervisor import (
    ChannelSupervisor,
    EventCallback,
    Supervisor,
    SupervisorSettings,
)
from cellrig.protocols.clock import Clock
from cellrig.protocols.program import Program

log = logging.getLogger(__name__)

#: How long one instrument may take to open (connect, identify, configure).
OPEN_TIMEOUT_S = 30.0
#: How long one safe action may take in :meth:`Station.safe_all`.
SAFE_TIMEOUT_S = 5.0


@dataclass
class StationChannel:
    """One cell position, built: its rig (the engine's port), its supervisor (already tapped
    into the rig), and the chamber and jig it uses."""

    name: str
    config: ChannelConfig
    rig: ChannelRig
    supervisor: ChannelSupervisor
    chamber: SharedChamber | None
    jig: StackJig | None
    instruments: str = ""
    """the potentiostat (and EIS unit) as named in refusals, e.g. ``smu-a1 (keithley2450)``"""

    def refusals(self, program: Program) -> list[str]:
        """Why ``program`` can never run on this channel (instrument ranges and capabilities,
        the chamber's range, the jig's kind, the channel's hard limits); [] when it can."""
        return channel_refusals(program, self.rig.capabilities, self.instruments or self.name,
                                self.chamber, self.jig, self.config.limits)


@dataclass(frozen=True, slots=True)
class InstrumentFailure:
    """An instrument that could not be opened, and why."""

    instrument: str
    driver: str
    address: str
    reason: str

    def __str__(self) -> str:
        return (f"instrument {self.instrument} ({self.driver}) at {self.address} could not "
                f"be opened: {self.reason}")


@dataclass
class Station:
    """The station's channels, shared chambers, jigs and time."""

    config: StationConfig
    timer: Timer
    """what supervisors and pollers use"""
    clock: Clock
    """what the Engine of a job here must use"""
    channels: Mapping[str, StationChannel]
    chambers: Mapping[str, SharedChamber]
    jigs: Mapping[str, StackJig] = field(default_factory=dict)
    """each channel's jig, by channel"""
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """channels that could not be built, and why"""
    failures: Mapping[str, InstrumentFailure] = field(default_factory=dict)
    """instruments that could not be opened, by name"""
    model: ModelBench | None = None
    """the bench behind the model instruments, if any (for fault injection and tests)"""

    def channel(self, name: str) -> StationChannel:
        """The built channel ``name``.

        Raises:
            ChannelUnavailable: the channel is configured but could not be built (the message
                says why), or the station has no such channel.
        """
        found = self.channels.get(name)
        if found is not None:
            return found
        if name in self.unavailable:
            raise ChannelUnavailable(f"channel {name} is unavailable: {self.unavailable[name]}")
        known = ", ".join(self.config.channels) or "none"
        raise ChannelUnavailable(f"station {self.config.name} has no channel {name!r} "
                                 f"(its channels: {known})")

    @property
    def supervisors(self) -> list[ChannelSupervisor]:
        """Every channel's supervisor."""
        return [channel.supervisor for channel in self.channels.values()]

    def environment(self) -> list[EnvironmentInstrument]:
        """The polled instruments: every shared chamber and every jig."""
        return [*self.chambers.values(), *self.jigs.values()]

    async def run(self) -> None:
        """Poll the chambers and jigs and run every channel's watchdog, until cancelled.
        (The pneumatic jigs' pressure loops run from opening to closing, as the jigs' own
        tasks: a stack stays pressed whether jobs run or not.)"""
        async with asyncio.TaskGroup() as group:
            group.create_task(EnvironmentPoller(self.environment()).run(), name="pollers")
            group.create_task(Supervisor(self.supervisors).run(), name="supervisors")
        await asyncio.Event().wait()  # nothing to poll or watch: still runs until cancelled

    async def safe_all(self) -> None:
        """Every channel's safe state (potentiostat output off; chambers and jigs holding
        their setpoints), each instrument tried on its own; errors logged, not raised."""
        actions: dict[str, SafeAction] = {}
        for channel in self.channels.values():
            for action in channel.rig.safe_actions():
                key = (f"{channel.name}/{action.instrument}"
                       if action.instrument == "potentiostat" else action.instrument)
                actions.setdefault(key, action)

        async def attempt(name: str, action: SafeAction) -> None:
            try:
                async with asyncio.timeout(SAFE_TIMEOUT_S):
                    await action.act()
            except Exception as error:  # every instrument is tried whatever the others do
                log.error("%s: could not reach the safe state: %s", name,
                          str(error) or type(error).__name__)

        await asyncio.gather(*(attempt(name, action) for name, action in actions.items()))


@contextlib.asynccontextmanager
async def open_station(config: StationConfig, *, timer: Timer | None = None,
                       on_event: EventCallback | None = None,
                       settings: SupervisorSettings | None = None,
                       open_timeout_s: float = OPEN_TIMEOUT_S,
                       resume: Collection[str] = ()) -> AsyncIterator[Station]:
    """Opens every instrument (drivers own their transports as async context managers),
    puts each in its safe state, builds channels; closes everything on exit.

    ``timer`` replaces the station's time (by default the machine's, or the bench clock's
    when the station has model instruments); ``on_event`` receives every supervisor's safety
    events; ``settings`` replaces the supervisors' (scaled to the bench's speed otherwise).
    ``resume`` names the channels whose running job the daemon continues: their
    potentiostats are neither reset nor switched off on opening (a Keithley found sourcing is
    left sourcing), so recovery can read what they did meanwhile and make them safe itself.
    """
    from cellrig.daemon.station_build import build_station

    async with contextlib.AsyncExitStack() as stack:
        station = await build_station(config, stack, timer=timer, on_event=on_event,
                                      settings=settings, open_timeout_s=open_timeout_s,
                                      resume=frozenset(resume))
        try:
            yield station
        finally:
            await station.safe_all()

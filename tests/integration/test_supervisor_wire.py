"""A shared chamber on the wire: the ESPEC driver talks to the ESPEC emulator over TCP (real
pyserial ``socket://``), polled for two channels whose potentiostats are model rigs. A dropped
connection trips both channels' chamber watchdogs, their outputs go off, the chamber's hold is
retried until the connection is back, and fresh temperatures return.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import EnvironmentPoller, SharedChamber, SystemTimer
from cellrig.daemon.supervisor import (
    ChannelSupervisor,
    SafetyEvent,
    SafetyEventKind,
    Supervisor,
    SupervisorSettings,
)
from cellrig.drivers.backoff import Backoff
from cellrig.drivers.espec import EspecChamber
from cellrig.protocols.program import Limit, Limits
from cellrig.protocols.rig import Command, Mode
from cellrig.simulators.bench import Bench
from cellrig.simulators.espec_emulator import ALARM_TEXTS, EspecEmulator
from cellrig.simulators.line_server import LineServer
from cellrig.simulators.model_rig import ModelRig

pytestmark = pytest.mark.integration

#: Quick periods so the test runs in about a second of real time.
POLL_S = 0.1
SETTINGS = SupervisorSettings(watchdog_floor_s=1.0, tick_s=0.02,
                              retry=Backoff(initial_s=0.05, max_s=0.2))
CHARGE = Command(Mode.CURRENT, current_a=0.06, sample_interval_s=10.0)


@dataclass
class Station:
    bench: Bench
    emulator: EspecEmulator
    server: LineServer
    espec: EspecChamber
    chamber: SharedChamber
    models: list[ModelRig]
    rigs: list[ChannelRig]
    supervisors: list[ChannelSupervisor]
    events: dict[str, list[SafetyEvent]]


@pytest.fixture
async def station() -> AsyncIterator[Station]:
    bench = Bench.default()
    bench.add_cell("cell-2", "chamber-1")
    emulator = EspecEmulator(bench.chambers["chamber-1"], bench.clock,
                             rated_range_c=(-40.0, 150.0))
    server = emulator.server()
    url = await server.start_tcp()
    espec = EspecChamber.over_serial(url, temperature_range_c=(-40.0, 180.0),
                                     channels=("A1", "A2"), alarm_names=ALARM_TEXTS,
                                     clock=bench.clock.now_s, timeout_s=0.3)
    try:
        async with espec:
            timer = SystemTimer()
            chamber = SharedChamber("chamber-1", espec, timer, poll_period_s=POLL_S)
            models = [ModelRig(bench.cells[name]) for name in ("cell-1", "cell-2")]
            rigs = [ChannelRig(name, model, chamber=chamber)
                    for name, model in zip(("A1", "A2"), models, strict=True)]
            events: dict[str, list[SafetyEvent]] = {"A1": [], "A2": []}
            supervisors = [ChannelSupervisor(rig, timer=timer, settings=SETTINGS,
                                             hard_limits=Limits(temperature_c=Limit(0.0, 60.0)),
                                             on_event=events[rig.name].append)
                           for rig in rigs]
            yield Station(bench, emulator, server, espec, chamber, models, rigs, supervisors,
                          events)
    finally:
        await server.close()


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    async with asyncio.timeout(within_s):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


async def test_a_dropped_chamber_connection_trips_both_channels_and_recovers(
        station: Station) -> None:
    for rig in station.rigs:
        await rig.set_environment(30.0, None)  # both channels hold the chamber at 30 °C
    assert station.emulator.setpoint_c == 30.0
    for supervisor in station.supervisors:
        supervisor.begin_job(Limits())
    for rig in station.rigs:
        await rig.apply(CHARGE)
    async with asyncio.TaskGroup() as group:
        background = [group.create_task(EnvironmentPoller([station.chamber]).run()),
                      group.create_task(Supervisor(station.supervisors).run())]
        await until(lambda: station.chamber.last is not None, 5.0, "a first poll")
        block = await station.rigs[0].read()
        assert block.temperature_c is not None
        assert block.temperature_c[0] == pytest.approx(25.0, abs=0.1)
        assert not any(supervisor.latched for supervisor in station.supervisors)

        station.server.faults.disconnect = True
        # the trip event is delivered once every safe action has been tried
        await until(lambda: all(any(e.kind is SafetyEventKind.WATCHDOG for e in events)
                                for events in station.events.values()), 10.0,
                    "both channels tripped")
        for name, supervisor in zip(("A1", "A2"), station.supervisors, strict=True):
            trip = supervisor.trip
            assert trip is not None and (trip.channel, trip.kind, trip.quantity) == (
                name, SafetyEventKind.WATCHDOG, "chamber-1")
            assert trip.value > trip.limit == pytest.approx(1.0)
        assert all(model.command.mode is Mode.OFF for model in station.models)
        assert math.isnan(station.chamber.fresh_value(3.0))
        # the chamber's hold could not be sent: reported, and retried
        failed = [event for events in station.events.values() for event in events
                  if event.kind is SafetyEventKind.SAFE_FAILED]
        assert failed and all(event.quantity == "chamber-1" for event in failed)
        assert "espec at socket://" in failed[0].message

        station.server.faults.disconnect = False
        await until(lambda: not any(s.unsafe_instruments for s in station.supervisors), 10.0,
                    "the hold went through once the connection was back")
        await until(lambda: not math.isnan(station.chamber.fresh_value(3.0)), 10.0,
                    "fresh temperatures again")
        for task in background:
            task.cancel()
    assert station.emulator.setpoint_c == 30.0
    assert station.emulator.mode == "CONSTANT"

"""The safety supervisor in virtual time: trips through the rig's read tap and the environment
poller, the latch, watchdogs, the safe state when instruments fail, and channels that do not
stop each other."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from engine_helpers import program
from rigs import LinearCell, LinearRig
from test_supervisor_fakes import (
    Channel,
    ConnectionLost,
    FakeChamber,
    FakeJig,
    FakePotentiostat,
    InstrumentTimeout,
    VirtualTimer,
    make_channel,
    shared_chamber,
    wire_error,
)

from cellrig.daemon.channel_rig import ChannelRig, ChannelTripped
from cellrig.daemon.environment import EnvironmentPoller, SharedChamber
from cellrig.daemon.supervisor import (
    ChannelSupervisor,
    SafetyEvent,
    SafetyEventKind,
    Supervisor,
    SupervisorSettings,
)
from cellrig.daemon.supervisor_limits import LimitsConflict, Quantity
from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.engine import Engine, JobState, ListSink
from cellrig.protocols.program import Limit, Limits
from cellrig.protocols.rig import Block, Command, Mode

CHARGE = Command(Mode.CURRENT, current_a=0.5, sample_interval_s=1.0)


@dataclass
class Watched:
    """A channel of fakes with its supervisor and the events it delivered."""

    channel: Channel
    supervisor: ChannelSupervisor
    events: list[SafetyEvent]

    @property
    def rig(self) -> ChannelRig:
        return self.channel.rig

    @property
    def potentiostat(self) -> FakePotentiostat:
        return self.channel.potentiostat


def watched(timer: VirtualTimer, *, name: str = "A1", hard: Limits | None = None,
            chamber: SharedChamber | None = None, jig: FakeJig | None = None,
            potentiostat: FakePotentiostat | None = None,
            settings: SupervisorSettings | None = None) -> Watched:
    channel = make_channel(name, timer, chamber=chamber, jig=jig, potentiostat=potentiostat)
    events: list[SafetyEvent] = []
    supervisor = ChannelSupervisor(channel.rig, timer=timer, hard_limits=hard,
                                   on_event=events.append, settings=settings)
    return Watched(channel, supervisor, events)


def kinds(events: list[SafetyEvent]) -> list[tuple[SafetyEventKind, str]]:
    return [(event.kind, event.quantity) for event in events]


class TestLimits:
    async def test_effective_limits_include_the_instruments_ranges(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, chamber=shared_chamber(timer), jig=FakeJig(max_pressure_pa=5e6),
                       hard=Limits(temperature_c=Limit(0.0, 65.0)))
        limits = unit.supervisor.begin_job(Limits(voltage_v=Limit(2.5, 4.25),
                                                  pressure_pa=Limit(1e6, 6e6)))
        assert limits[Quantity.VOLTAGE].high is not None
        assert limits[Quantity.VOLTAGE].high.source == "job limit"
        assert limits[Quantity.CURRENT].high is not None
        assert (limits[Quantity.CURRENT].high.level,
                limits[Quantity.CURRENT].high.source) == (5.0, "instrument range")
        assert limits[Quantity.TEMPERATURE].high is not None
        assert limits[Quantity.TEMPERATURE].high.source == "channel hard limit"
        assert limits[Quantity.PRESSURE].high is not None
        assert limits[Quantity.PRESSURE].high.level == 5e6
        unit.supervisor.end_job()
        assert unit.supervisor.limits[Quantity.VOLTAGE].high is not None
        assert unit.supervisor.limits[Quantity.VOLTAGE].high.level == 5.0

    def test_a_job_outside_the_hard_limits_is_refused(self) -> None:
        unit = watched(VirtualTimer(), hard=Limits(voltage_v=Limit(2.0, 4.3)))
        with pytest.raises(LimitsConflict, match=r"job limit needs at least 4\.4 V"):
            unit.supervisor.begin_job(Limits(voltage_v=Limit(4.4, 4.6)))

    async def test_warning_with_hysteresis_does_not_trip(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, potentiostat=FakePotentiostat(
            script=[4.1, 4.21, 4.22, 4.21, 4.15, 4.22]))
        unit.supervisor.begin_job(Limits(voltage_v=Limit(2.5, 4.3, 2.6, 4.2)))
        await unit.rig.apply(CHARGE)
        for _ in range(6):
            await unit.rig.read()
        assert [(e.kind, e.value, e.limit, e.reading_time_s) for e in unit.events] == [
            (SafetyEventKind.WARNING, 4.21, 4.2, 2.0), (SafetyEventKind.WARNING, 4.22, 4.2, 6.0)]
        assert not unit.supervisor.latched and unit.potentiostat.safe_calls == 0


class TestTrip:
    async def test_critical_trip_after_the_delay_and_not_before(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber()
        chamber = shared_chamber(timer, port)
        unit = watched(timer, chamber=chamber, jig=FakeJig(), potentiostat=FakePotentiostat(
            script=[4.0, 4.31, 4.32, 4.33, 4.34], dt_s=0.5))
        unit.supervisor.begin_job(Limits(voltage_v=Limit(2.5, 4.3, delay_s=1.5)))
        await unit.rig.set_environment(60.0, 2e6)
        await unit.rig.apply(CHARGE)
        for _ in range(4):  # breach from 1.0 s, readings at 1.5 and 2.0 s: not yet
            await unit.rig.read()
        assert unit.events == [] and unit.potentiostat.safe_calls == 0
        block = await unit.rig.read()  # 2.5 s: 1.5 s of breach
        assert list(block.voltage_v) == [4.34]  # the tripping block still reaches the engine
        trip = unit.supervisor.trip
        assert trip is not None and unit.events == [trip]
        assert (trip.channel, trip.kind, trip.quantity, trip.value, trip.limit,
                trip.reading_time_s) == ("A1", SafetyEventKind.LIMIT, "voltage", 4.34, 4.3, 2.5)
        assert trip.time_s == timer.unix_now()
        assert "voltage trip: 4.34 V above 4.3 V (job limit)" in trip.message
        # the safe state: output off, chamber and jig held where they were
        assert unit.potentiostat.safe_calls == 1 and unit.potentiostat.command.mode is Mode.OFF
        assert port.setpoints == [60.0, 60.0] and port.standby_calls == 0
        assert unit.channel.jig is not None and unit.channel.jig.setpoints == [2e6, 2e6]

    async def test_latched_until_reset(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, hard=Limits(voltage_v=Limit(2.5, 4.3)),
                       potentiostat=FakePotentiostat(voltage_v=4.4))
        await unit.rig.apply(CHARGE)
        await unit.rig.read()
        assert unit.supervisor.latched
        with pytest.raises(ChannelTripped, match="channel A1 is latched safe: voltage trip"):
            await unit.rig.read()
        with pytest.raises(ChannelTripped):
            await unit.rig.apply(CHARGE)
        with pytest.raises(ChannelTripped):
            await unit.rig.set_environment(None, None)
        with pytest.raises(ChannelTripped):
            unit.supervisor.begin_job(Limits())
        await unit.rig.apply(Command(Mode.OFF))  # output off is always allowed
        await unit.rig.safe()
        unit.potentiostat.voltage_v = 3.9
        unit.supervisor.reset()
        await unit.rig.apply(CHARGE)
        assert list((await unit.rig.read()).voltage_v) == [3.9]
        assert len(unit.events) == 1

    async def test_over_temperature_from_the_poller_trips(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber(temperature_c=60.0)
        chamber = shared_chamber(timer, port)
        unit = watched(timer, chamber=chamber, hard=Limits(temperature_c=Limit(-20.0, 70.0)))
        await unit.rig.apply(CHARGE)
        await chamber.poll()
        port.temperature_c = 71.5
        timer.advance(2.0)
        await chamber.poll()
        trip = unit.supervisor.trip
        assert trip is not None and (trip.kind, trip.quantity, trip.value, trip.limit) == (
            SafetyEventKind.LIMIT, "temperature", 71.5, 70.0)
        assert unit.potentiostat.safe_calls == 1

    async def test_the_block_reaches_the_engine_up_to_the_tripping_reading(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, hard=Limits(voltage_v=Limit(2.5, 4.3)),
                       potentiostat=FakePotentiostat(block_size=6,
                                                     script=[4.1, 4.2, 4.25, 4.35, 4.4, 4.5]))
        await unit.rig.apply(CHARGE)
        block = await unit.rig.read()
        assert list(block.time_s) == [1.0, 2.0, 3.0, 4.0]
        assert list(block.voltage_v) == [4.1, 4.2, 4.25, 4.35] and not block.done
        assert block.temperature_c is not None and len(block.temperature_c) == 4
        with pytest.raises(ChannelTripped):
            await unit.rig.read()

    async def test_the_earliest_trip_of_voltage_and_current_wins(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, hard=Limits(voltage_v=Limit(2.5, 4.3, 2.6, 4.2),
                                          current_a=Limit(None, 0.4)),
                       potentiostat=FakePotentiostat(block_size=4,
                                                     script=[4.0, 4.25, 4.35, 4.4]))
        await unit.rig.apply(Command(Mode.CURRENT, current_a=0.5))  # past 0.4 A from the start
        block = await unit.rig.read()
        assert len(block) == 1
        assert kinds(unit.events) == [(SafetyEventKind.LIMIT, "current")]

    async def test_a_block_of_many_readings_trips_on_the_first_one_beyond(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, hard=Limits(current_a=Limit(None, 1.0)),
                       potentiostat=FakePotentiostat(block_size=500))
        await unit.rig.apply(Command(Mode.CURRENT, current_a=-1.2))  # a discharge: |I| counts
        await unit.rig.read()
        trip = unit.supervisor.trip
        assert trip is not None and (trip.quantity, trip.value, trip.reading_time_s) == (
            "current", 1.2, 1.0)

    async def test_chamber_alarms_are_reported_without_a_trip(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber(active_alarms=["HUMIDITY SENSOR"])
        chamber = shared_chamber(timer, port)
        unit = watched(timer, chamber=chamber)
        await chamber.poll()
        await chamber.poll()  # unchanged alarms: reported once
        assert kinds(unit.events) == [(SafetyEventKind.ALARM, "chamber-1")]
        assert "HUMIDITY SENSOR" in unit.events[0].message
        assert not unit.supervisor.latched


class TestWatchdog:
    async def test_a_silent_potentiostat_trips_after_n_sampling_periods(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer)
        await unit.rig.apply(Command(Mode.CURRENT, current_a=0.5, sample_interval_s=2.0))
        await unit.rig.read()
        timer.advance(6.0)  # three periods of 2 s: not yet overdue
        await unit.supervisor.tick()
        assert not unit.supervisor.latched
        timer.advance(0.01)
        await unit.supervisor.tick()
        trip = unit.supervisor.trip
        assert trip is not None and (trip.kind, trip.quantity, trip.limit) == (
            SafetyEventKind.WATCHDOG, "potentiostat", 6.0)
        assert trip.value == pytest.approx(6.01)
        assert unit.potentiostat.safe_calls == 1

    async def test_readings_keep_it_quiet_and_output_off_disarms_it(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer)
        await unit.rig.apply(CHARGE)
        for _ in range(10):
            timer.advance(2.5)
            await unit.rig.read()
            await unit.supervisor.tick()
        await unit.rig.safe()
        timer.advance(3600.0)
        await unit.supervisor.tick()
        assert unit.events == []

    async def test_the_floor_applies_to_fast_sampling(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer)
        await unit.rig.apply(Command(Mode.CURRENT, current_a=0.5, sample_interval_s=0.01))
        timer.advance(4.9)
        await unit.supervisor.tick()
        assert not unit.supervisor.latched
        timer.advance(0.2)
        await unit.supervisor.tick()
        assert unit.supervisor.latched

    async def test_a_chamber_that_stops_answering_trips_a_running_job(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber()
        chamber = shared_chamber(timer, port)
        unit = watched(timer, chamber=chamber)
        await chamber.poll()
        timer.advance(600.0)
        await unit.supervisor.tick()  # no job, output off: not watched
        assert unit.events == []
        unit.supervisor.begin_job(Limits())
        port.read_error = wire_error(InstrumentTimeout, "espec-sh242", "TEMP?")
        for _ in range(3):
            timer.advance(2.0)
            await chamber.poll()
            await unit.supervisor.tick()
        assert not unit.supervisor.latched
        timer.advance(0.5)
        await unit.supervisor.tick()
        trip = unit.supervisor.trip
        assert trip is not None and (trip.kind, trip.quantity) == (
            SafetyEventKind.WATCHDOG, "chamber-1")

    async def test_new_commands_do_not_excuse_a_silent_chamber(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)
        unit = watched(timer, chamber=chamber)
        await chamber.poll()
        for _ in range(8):  # short pulses: a new command every second, the chamber silent
            timer.advance(1.0)
            await unit.rig.apply(CHARGE)
            await unit.rig.read()
            await unit.supervisor.tick()
        trip = unit.supervisor.trip
        assert trip is not None and trip.quantity == "chamber-1"
        assert trip.value == pytest.approx(7.0)  # watched since the first command

    async def test_a_sweep_that_never_ends_trips(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer, settings=SupervisorSettings(watchdog_periods=2.0))
        unit.supervisor.sweep_started(100.0)
        timer.advance(204.9)
        await unit.supervisor.tick()
        assert not unit.supervisor.latched
        timer.advance(0.2)  # past 2 × 100 s + the 5 s floor
        await unit.supervisor.tick()
        assert unit.supervisor.trip is not None and unit.supervisor.trip.quantity == "eis"


class TestSafeStateWhenInstrumentsFail:
    async def test_each_instrument_is_tried_although_the_potentiostat_raises(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber()
        chamber = shared_chamber(timer, port)
        jig = FakeJig()
        unit = watched(timer, chamber=chamber, jig=jig, hard=Limits(voltage_v=Limit(2.5, 4.3)),
                       potentiostat=FakePotentiostat(voltage_v=4.5))
        await unit.rig.set_environment(60.0, 2e6)
        await unit.rig.apply(CHARGE)
        unit.potentiostat.safe_error = wire_error(ConnectionLost, "keithley-2450", ":OUTP OFF")
        port.set_error = wire_error(InstrumentTimeout, "espec-sh242", "TEMP, S60.0")
        await unit.rig.read()  # trips; nothing raised here
        assert jig.setpoints == [2e6, 2e6]
        assert kinds(unit.events) == [
            (SafetyEventKind.SAFE_FAILED, "potentiostat"),
            (SafetyEventKind.SAFE_FAILED, "chamber-1"), (SafetyEventKind.LIMIT, "voltage")]
        assert "keithley-2450 at socket://lab:5025: no answer (command ':OUTP OFF')" \
            in unit.events[0].message
        assert unit.supervisor.unsafe_instruments == ["chamber-1", "potentiostat"]
        # retried with backoff on the watchdog's ticks until they succeed
        unit.potentiostat.safe_error = None
        port.set_error = None
        await unit.supervisor.tick()
        assert unit.supervisor.unsafe_instruments == ["chamber-1", "potentiostat"]
        timer.advance(1.0)
        await unit.supervisor.tick()
        assert unit.supervisor.unsafe_instruments == []
        assert unit.potentiostat.safe_calls == 1 and port.setpoints == [60.0, 60.0]
        assert len(unit.events) == 3

    async def test_a_hanging_instrument_is_given_up_on_after_its_timeout(self) -> None:
        timer = VirtualTimer()
        jig = FakeJig()
        unit = watched(timer, jig=jig, hard=Limits(voltage_v=Limit(2.5, 4.3)),
                       potentiostat=FakePotentiostat(voltage_v=4.5, safe_hangs=True),
                       settings=SupervisorSettings(safe_timeout_s=0.01))
        await unit.rig.set_environment(None, 2e6)
        await unit.rig.apply(CHARGE)
        async with asyncio.timeout(5.0):
            await unit.rig.read()
        assert jig.setpoints == [2e6, 2e6]
        assert kinds(unit.events)[0] == (SafetyEventKind.SAFE_FAILED, "potentiostat")
        assert unit.events[0].message == "potentiostat could not be made safe: TimeoutError"

    async def test_a_failed_engine_safe_leaves_the_watchdog_armed(self) -> None:
        timer = VirtualTimer()
        unit = watched(timer)
        await unit.rig.apply(CHARGE)
        unit.potentiostat.safe_error = wire_error(ConnectionLost, "keithley-2450", ":OUTP OFF")
        with pytest.raises(ConnectionLost):
            await unit.rig.safe()
        timer.advance(5.5)
        await unit.supervisor.tick()
        assert unit.supervisor.trip is not None
        assert unit.supervisor.unsafe_instruments == ["potentiostat"]

    async def test_a_failing_event_callback_changes_nothing(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, potentiostat=FakePotentiostat(voltage_v=4.5))

        def broken(event: SafetyEvent) -> None:
            raise RuntimeError("store is gone")

        supervisor = ChannelSupervisor(channel.rig, timer=timer, on_event=broken,
                                       hard_limits=Limits(voltage_v=Limit(2.5, 4.3)))
        await channel.rig.apply(CHARGE)
        await channel.rig.read()
        assert supervisor.latched and channel.potentiostat.safe_calls == 1
        assert [event.kind for event in supervisor.events] == [SafetyEventKind.LIMIT]


@dataclass
class YieldingCell(LinearRig):
    """The engine tests' linear cell as a potentiostat that lets other tasks run per read."""

    async def read(self) -> Block:
        await asyncio.sleep(0)
        return await super().read()


class TestChannelsAreIndependent:
    async def test_one_channel_trips_the_other_runs_to_the_end(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber(temperature_c=60.0)
        chamber = shared_chamber(timer, port)
        job = program("  - set: {temperature: 60 degC}\n"
                      "  - Charge at 0.5 A for 30 minutes\n")
        runs = []
        for name, hard in (("A1", Limits(voltage_v=Limit(2.5, 3.2))), ("A2", None)):
            cell = YieldingCell(cell=LinearCell())
            channel = ChannelRig(name, cell, chamber=chamber)
            events: list[SafetyEvent] = []
            supervisor = ChannelSupervisor(channel, timer=timer, hard_limits=hard,
                                           on_event=events.append)
            supervisor.begin_job(job.limits)
            runs.append((cell, supervisor, events, Engine(job, channel, ListSink(),
                                                          VirtualClock())))
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(engine.run()) for *_, engine in runs]
            # the watchdog ticks and the chamber polls advance the virtual time as they sleep
            background = [group.create_task(Supervisor([run[1] for run in runs]).run()),
                          group.create_task(EnvironmentPoller([chamber]).run())]
            await asyncio.wait(tasks)
            for task in background:
                task.cancel()
        (cell_a, supervisor_a, events_a, _), (cell_b, supervisor_b, events_b, _) = runs
        tripped, finished = (task.result() for task in tasks)
        assert tripped.state is JobState.FAILED and "latched safe" in tripped.reason
        assert supervisor_a.latched
        assert [(e.kind, e.quantity) for e in events_a] == [(SafetyEventKind.LIMIT, "voltage")]
        # 3.05 V + 1.2 V/Ah × 0.5 A × t passes 3.2 V just after 900 s of charge
        reading_time = events_a[0].reading_time_s
        assert reading_time is not None and 900.0 < reading_time - 1000.0 <= 901.0
        assert cell_a.command.mode is Mode.OFF
        assert finished.state is JobState.COMPLETED
        assert events_b == [] and not supervisor_b.latched
        assert cell_b.cell.charge_ah == pytest.approx(0.25)
        assert cell_b.safe_calls == 1  # the engine's own at the end, nothing from A's trip
        assert port.setpoints == [60.0, 60.0] and port.standby_calls == 0
        assert timer.now_s() > 100.0  # the background loops did run

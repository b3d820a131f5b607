"""The ESPEC driver against the ESPEC emulator through real pyserial transports (a
pseudo-terminal and a ``socket://`` URL), the emulator backed by the bench's chamber."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.chamber_common import ChamberMode, SetpointRefused
from cellrig.drivers.espec import EspecChamber
from cellrig.errors import ConnectionLost, InstrumentReported, InstrumentTimeout, MalformedReply
from cellrig.simulators.bench import Bench, BenchClock
from cellrig.simulators.chamber import Chamber, ChamberFault
from cellrig.simulators.espec_emulator import ALARM_TEXTS, EspecEmulator
from cellrig.simulators.line_server import LineServer

pytestmark = pytest.mark.integration


def clear_fault(chamber: Chamber, at_s: float) -> None:
    """Close the door: the chamber model evaluates its door-open response with an infinite
    ramp rate times zero, which numpy warns about (NaN in a branch it then discards)."""
    with np.errstate(invalid="ignore"):
        chamber.inject(None, at_s)


@dataclass
class Rig:
    bench: Bench
    emulator: EspecEmulator
    server: LineServer
    url: str

    def driver(self, timeout_s: float = 1.0) -> EspecChamber:
        return EspecChamber.over_serial(
            self.url, temperature_range_c=(-40.0, 180.0), channels=("cell-1", "cell-2"),
            alarm_names=ALARM_TEXTS, clock=self.bench.clock.now_s, timeout_s=timeout_s,
            backoff=Backoff(initial_s=0.01, max_s=0.02))


async def serve(bench: Bench, transport: str) -> Rig:
    emulator = EspecEmulator(bench.chambers["chamber-1"], bench.clock,
                             rated_range_c=(-40.0, 150.0))
    server = emulator.server()
    url = await server.start_tcp() if transport == "tcp" else server.start_pty()
    return Rig(bench, emulator, server, url)


@pytest.fixture(params=["pty", "tcp"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    served = await serve(Bench.default(BenchClock()), request.param)
    yield served
    await served.server.close()


async def test_setpoint_reached_and_reported_stable_on_a_virtual_clock(rig: Rig) -> None:
    clock = rig.bench.clock
    async with rig.driver() as chamber:
        assert chamber.temperature_range_c == (-40.0, 150.0)
        await chamber.set_temperature(60.0)
        assert rig.emulator.mode == "CONSTANT"
        stable_at_s = None
        while clock.now_s() < 4 * 3600.0:
            temperature_c = await chamber.read_temperature()
            if chamber.stable(0.5, 600.0):
                stable_at_s = clock.now_s()
                break
            clock.advance(30.0)
        assert stable_at_s is not None
        assert abs(temperature_c - 60.0) <= 0.5
        # 35 K: 100 s ramping at 3 K/min, τ·ln(60) ≈ 41 min more to within 0.5 K, then 10 min
        assert 3100.0 < stable_at_s < 3250.0
        clock.advance(3 * 60.0)                      # nobody looked for 3 min: not known now
        assert not chamber.stable(0.5, 600.0)


async def test_modes_through_the_wire(rig: Rig) -> None:
    async with rig.driver() as chamber:
        await chamber.standby()
        assert await chamber.mode() is ChamberMode.STANDBY
        rig.bench.clock.advance(4 * 3600.0)
        monitor = await chamber.monitor()
        assert monitor.mode is ChamberMode.STANDBY and monitor.humidity_pct is None
        assert monitor.temperature_c == pytest.approx(rig.emulator.chamber.room_c, abs=0.05)
        await chamber.set_temperature(40.0)           # back to constant on its own
        assert await chamber.mode() is ChamberMode.CONSTANT
        with pytest.raises(SetpointRefused):
            await chamber.set_temperature(160.0)      # rated to 180 here, the controller to 150
        assert rig.emulator.received[-1] == "MODE?"


async def test_chamber_faults_raise_the_chamber_alarms(rig: Rig) -> None:
    chamber_model = rig.emulator.chamber
    clock = rig.bench.clock
    async with rig.driver() as chamber:
        await chamber.set_temperature(60.0)
        assert await chamber.alarms() == []
        chamber_model.inject(ChamberFault.DOOR_OPEN, clock.now_s())
        assert await chamber.alarms() == ["door open"]
        assert (await chamber.monitor()).alarm_count == 1
        clear_fault(chamber_model, clock.now_s())
        chamber_model.inject(ChamberFault.RUNAWAY, clock.now_s())
        clock.advance(3600.0)
        assert await chamber.alarms() == ["temperature upper limit"]


async def test_instrument_error_reply(rig: Rig) -> None:
    async with rig.driver() as chamber:
        rig.emulator.na_replies.append("PROTECT ON")
        with pytest.raises(InstrumentReported, match="PROTECT ON"):
            await chamber.set_temperature(30.0)
        await chamber.set_temperature(30.0)


async def test_silence_and_garbage_raise_then_the_link_recovers(rig: Rig) -> None:
    async with rig.driver(timeout_s=0.2) as chamber:
        rig.server.faults.swallow_replies = 1
        with pytest.raises(InstrumentTimeout) as timed_out:
            await chamber.read_temperature()
        assert timed_out.value.command == "TEMP?" and timed_out.value.address == rig.url
        assert await chamber.mode() is ChamberMode.CONSTANT
        rig.server.faults.garble_replies = 1
        with pytest.raises(MalformedReply):
            await chamber.read_temperature()
        assert await chamber.read_temperature() == pytest.approx(25.0, abs=0.05)


async def test_dropped_connection_raises_and_the_next_command_reconnects() -> None:
    rig = await serve(Bench.default(BenchClock()), "tcp")
    try:
        async with rig.driver() as chamber:
            rig.server.faults.disconnect = True
            with pytest.raises(ConnectionLost) as caught:
                await chamber.alarms()
            assert caught.value.command == "ALARM?"
            rig.server.faults.disconnect = False
            assert await chamber.alarms() == []
    finally:
        await rig.server.close()


async def test_tasks_sharing_the_chamber_reconnect_once_and_leak_nothing() -> None:
    rig = await serve(Bench.default(BenchClock()), "tcp")
    try:
        async with rig.driver() as chamber:
            for _ in range(3):
                rig.server.faults.disconnect = True
                failed = await asyncio.gather(*(chamber.read_temperature() for _ in range(4)),
                                              return_exceptions=True)
                assert failed and all(isinstance(e, ConnectionLost) for e in failed)
                rig.server.faults.disconnect = False
                readings = await asyncio.gather(*(chamber.monitor() for _ in range(4)))
                assert {reading.mode for reading in readings} == {ChamberMode.CONSTANT}
    finally:
        await rig.server.close()
    gc.collect()                    # an unclosed connection would warn here, failing the test


async def test_chamber_gone_for_good_names_the_command() -> None:
    rig = await serve(Bench.default(BenchClock()), "tcp")
    async with rig.driver() as chamber:
        await rig.server.close()
        with pytest.raises(ConnectionLost):
            await chamber.read_temperature()
        with pytest.raises(ConnectionLost, match="cannot open") as caught:
            await chamber.mode()
        assert caught.value.command == "MODE?"


async def test_stable_on_an_accelerated_clock() -> None:
    bench = Bench.default(BenchClock(scale=4000.0))
    rig = await serve(bench, "pty")
    try:
        async with rig.driver() as chamber:
            await chamber.set_temperature(30.0)
            started = time.monotonic()
            while not chamber.stable(0.5, 120.0):
                assert time.monotonic() - started < 5.0, "not stable within 5 s"
                await chamber.read_temperature()
                await asyncio.sleep(0.005)
        # 5 K inside τ·ramp: exponential all the way, τ·ln(10) ≈ 23 min, plus 2 min
        assert 1300.0 < bench.clock.now_s() < 2000.0
    finally:
        await rig.server.close()

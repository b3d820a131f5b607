"""The Watlow F4T driver against the F4T emulator through real Modbus TCP (pymodbus client
and server), the emulator backed by the bench's chamber."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.drivers import watlow_registers as reg
from cellrig.drivers.backoff import Backoff
from cellrig.drivers.chamber_common import ChamberMode, SetpointRefused
from cellrig.drivers.watlow_f4t import WatlowF4T
from cellrig.drivers.watlow_registers import WordOrder
from cellrig.errors import (
    ConnectionLost,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
)
from cellrig.simulators.bench import Bench, BenchClock
from cellrig.simulators.chamber import Chamber, ChamberFault
from cellrig.simulators.watlow_emulator import CELSIUS, FAHRENHEIT, OFF, WatlowF4TEmulator

pytestmark = pytest.mark.integration


def clear_fault(chamber: Chamber, at_s: float) -> None:
    """Close the door: the chamber model evaluates its door-open response with an infinite
    ramp rate times zero, which numpy warns about (NaN in a branch it then discards)."""
    with np.errstate(invalid="ignore"):
        chamber.inject(None, at_s)


@dataclass
class Rig:
    bench: Bench
    emulator: WatlowF4TEmulator
    port: int

    def driver(self, word_order: WordOrder = WordOrder.LOW_HIGH,
               timeout_s: float = 0.3) -> WatlowF4T:
        return WatlowF4T.over_tcp(
            "127.0.0.1", self.port, temperature_range_c=(-70.0, 180.0),
            channels=("cell-1", "cell-2"), word_order=word_order, clock=self.bench.clock.now_s,
            timeout_s=timeout_s, backoff=Backoff(initial_s=0.01, max_s=0.02))


async def serve(bench: Bench, word_order: str = "low-high", units: int = CELSIUS) -> Rig:
    emulator = WatlowF4TEmulator(bench.chambers["chamber-1"], bench.clock,
                                 word_order=word_order, display_units=units)
    return Rig(bench, emulator, await emulator.start())


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    served = await serve(Bench.default(BenchClock()))
    yield served
    await served.emulator.close()


async def test_setpoint_reached_and_reported_stable_on_a_virtual_clock(rig: Rig) -> None:
    clock = rig.bench.clock
    async with rig.driver() as chamber:
        assert chamber.temperature_range_c == (-40.0, 150.0)
        assert chamber.channels == ("cell-1", "cell-2")
        await chamber.set_temperature(60.0)
        stable_at_s = None
        while clock.now_s() < 4 * 3600.0:
            temperature_c = await chamber.read_temperature()
            if chamber.stable(0.5, 600.0):
                stable_at_s = clock.now_s()
                break
            clock.advance(30.0)
        assert stable_at_s is not None and abs(temperature_c - 60.0) <= 0.5
        assert 3100.0 < stable_at_s < 3250.0           # as the ESPEC chamber: same model
        assert await chamber.read_working_setpoint() == 60.0


@pytest.mark.parametrize(("word_order", "units"), [
    ("low-high", CELSIUS), ("high-low", CELSIUS), ("low-high", FAHRENHEIT),
    ("high-low", FAHRENHEIT),
])
async def test_word_order_and_display_units(word_order: str, units: int) -> None:
    rig = await serve(Bench.default(BenchClock()), word_order, units)
    try:
        async with rig.driver(WordOrder(word_order)) as chamber:
            assert chamber.temperature_range_c == pytest.approx((-40.0, 150.0))
            await chamber.set_temperature(-12.5)
            assert rig.emulator.set_point_c == pytest.approx(-12.5, abs=1e-4)
            assert await chamber.read_setpoint() == pytest.approx(-12.5, abs=1e-4)
            rig.bench.clock.advance(8 * 3600.0)
            assert await chamber.read_temperature() == pytest.approx(-12.5, abs=0.01)
    finally:
        await rig.emulator.close()


async def test_a_word_order_mismatch_is_caught_at_connect() -> None:
    rig = await serve(Bench.default(BenchClock()), "low-high")
    try:
        with pytest.raises(MalformedReply, match="word order match high-low"):
            async with rig.driver(WordOrder.HIGH_LOW):
                pass
    finally:
        await rig.emulator.close()


async def test_modes_and_refused_setpoints(rig: Rig) -> None:
    async with rig.driver() as chamber:
        assert await chamber.mode() is ChamberMode.CONSTANT
        await chamber.standby()
        assert await chamber.mode() is ChamberMode.STANDBY and rig.emulator.mode == OFF
        rig.bench.clock.advance(6 * 3600.0)
        assert await chamber.read_temperature() == pytest.approx(23.0, abs=0.01)
        await chamber.set_temperature(40.0)            # back to auto on its own
        assert await chamber.mode() is ChamberMode.CONSTANT
        with pytest.raises(SetpointRefused):
            await chamber.set_temperature(160.0)
        words = reg.encode_float(160.0, WordOrder.LOW_HIGH)
        with pytest.raises(InstrumentReported) as caught:   # the controller refuses it too
            await chamber.link.write(reg.CLOSED_LOOP_SET_POINT, words)
        assert caught.value.code == 3 and "illegal data value" in str(caught.value)
        with pytest.raises(InstrumentReported) as read_only:
            await chamber.link.write(reg.PROCESS_VALUE, words)
        assert read_only.value.code == 2


async def test_chamber_faults_raise_the_chamber_alarms(rig: Rig) -> None:
    chamber_model = rig.emulator.chamber
    clock = rig.bench.clock
    async with rig.driver() as chamber:
        await chamber.set_temperature(60.0)
        assert await chamber.alarms() == []             # deviation alarm blocked while heating
        clock.advance(3 * 3600.0)
        assert await chamber.alarms() == []
        chamber_model.inject(ChamberFault.DOOR_OPEN, clock.now_s())
        clock.advance(60.0)
        assert await chamber.alarms() == ["alarm 2 low"]
        clear_fault(chamber_model, clock.now_s())
        clock.advance(3600.0)
        assert await chamber.alarms() == []
        chamber_model.inject(ChamberFault.RUNAWAY, clock.now_s())
        clock.advance(2 * 60.0)
        assert await chamber.alarms() == ["alarm 2 high"]
        clock.advance(3600.0)
        assert await chamber.alarms() == ["alarm 1 high", "alarm 2 high"]


async def test_instrument_error_is_reported(rig: Rig) -> None:
    async with rig.driver() as chamber:
        rig.emulator.exception_replies.append(4)
        with pytest.raises(InstrumentReported) as caught:
            await chamber.read_temperature()
        assert caught.value.code == 4 and "server device failure" in str(caught.value)
        assert caught.value.command == "read 2820+2"
        assert await chamber.read_temperature() == pytest.approx(25.0, abs=0.01)


async def test_silence_and_garbage_raise_then_the_link_recovers(rig: Rig) -> None:
    async with rig.driver() as chamber:
        rig.emulator.faults.swallow_replies = 1
        with pytest.raises(InstrumentTimeout) as timed_out:
            await chamber.read_temperature()
        assert timed_out.value.address == f"modbus-tcp://127.0.0.1:{rig.port}/1"
        assert await chamber.mode() is ChamberMode.CONSTANT
        rig.emulator.faults.garble_replies = 1
        with pytest.raises(MalformedReply, match="not a Modbus reply"):
            await chamber.read_temperature()
        rig.emulator.faults.silent = True
        with pytest.raises(InstrumentTimeout):
            await chamber.alarms()
        rig.emulator.faults.silent = False
        assert await chamber.alarms() == []


async def test_connection_dropped_mid_reply_then_reconnected(rig: Rig) -> None:
    async with rig.driver() as chamber:
        rig.emulator.faults.drop_mid_reply = True
        with pytest.raises(ConnectionLost) as caught:
            await chamber.read_temperature()
        assert caught.value.command == "read 2820+2"
        rig.emulator.faults.drop_mid_reply = False
        assert await chamber.read_temperature() == pytest.approx(25.0, abs=0.01)


async def test_controller_gone_for_good_names_the_command() -> None:
    rig = await serve(Bench.default(BenchClock()))
    async with rig.driver() as chamber:
        await rig.emulator.close()
        with pytest.raises(ConnectionLost):
            await chamber.read_temperature()           # the server closed the connection
        with pytest.raises(ConnectionLost, match="cannot connect") as caught:
            await chamber.alarms()                      # three attempts to reconnect, then this
        assert caught.value.command == "read 1356"


async def test_unreachable_controller_raises_connection_lost() -> None:
    rig = await serve(Bench.default(BenchClock()))
    await rig.emulator.close()
    with pytest.raises(ConnectionLost, match="cannot connect"):
        async with rig.driver():
            pass


async def test_stable_on_an_accelerated_clock() -> None:
    bench = Bench.default(BenchClock(scale=4000.0))
    rig = await serve(bench)
    try:
        async with rig.driver() as chamber:
            await chamber.set_temperature(30.0)
            started = time.monotonic()
            while not chamber.stable(0.5, 120.0):
                assert time.monotonic() - started < 5.0, "not stable within 5 s"
                await chamber.read_temperature()
                await asyncio.sleep(0.005)
        assert 1300.0 < bench.clock.now_s() < 2000.0
    finally:
        await rig.emulator.close()

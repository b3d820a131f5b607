"""The Alicat driver against the Alicat emulator through real pyserial: a pseudo-terminal and
a ``socket://`` URL, on the bench's virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cellrig.drivers.alicat import AlicatPressureController
from cellrig.errors import (
    ConnectionLost,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
)
from cellrig.simulators.alicat_emulator import AlicatEmulator
from cellrig.simulators.bench import Bench
from cellrig.simulators.jig import JigFault
from cellrig.simulators.line_server import LineServer

pytestmark = pytest.mark.integration

PSI = 6894.757293168361


@dataclass
class Served:
    bench: Bench
    emulator: AlicatEmulator
    server: LineServer
    url: str
    transport: str

    def driver(self) -> AlicatPressureController:
        return AlicatPressureController.serial(self.url, name="alicat-1", timeout_s=0.3,
                                               clock=self.bench.clock.now_s)


@pytest.fixture(params=["pty", "tcp"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    bench = Bench.default()
    emulator = AlicatEmulator.for_bench_cell(bench.cells["cell-1"])
    server = emulator.line_server()
    url = server.start_pty() if request.param == "pty" else await server.start_tcp()
    yield Served(bench, emulator, server, url, request.param)
    await server.close()


async def test_poll_setpoint_and_the_regulator_following(served: Served) -> None:
    async with served.driver() as alicat:
        frame = await alicat.poll()
        assert frame.pressure_pa == pytest.approx(186_560.0, abs=0.01 * PSI)
        assert frame.setpoint_pa == pytest.approx(186_560.0, abs=0.01 * PSI)
        frame = await alicat.set_pressure(300e3)
        assert frame.setpoint_pa == pytest.approx(300e3, abs=0.01 * PSI)
        served.bench.clock.advance(30.0)                # six time constants of the regulator
        assert (await alicat.poll()).pressure_pa == pytest.approx(300e3, rel=0.005)
        assert await alicat.firmware() == "10v05.0-R24"
    assert served.emulator.received == ["A", "AS43.51", "A", "AVE"]


async def test_hold_and_cancel(served: Served) -> None:
    async with served.driver() as alicat:
        assert (await alicat.hold_valves()).held
        await alicat.set_pressure(400e3)               # taken as setpoint, not acted on
        served.bench.clock.advance(30.0)
        frame = await alicat.poll()
        assert frame.held and frame.pressure_pa == pytest.approx(186_560.0, rel=0.001)
        assert not (await alicat.cancel_hold()).held
        served.bench.clock.advance(30.0)
        assert (await alicat.poll()).pressure_pa == pytest.approx(400e3, rel=0.005)


async def test_other_unit_ids_get_no_answer(served: Served) -> None:
    async with AlicatPressureController.serial(served.url, unit_id="B", timeout_s=0.2) as other:
        with pytest.raises(InstrumentTimeout):
            await other.poll()


async def test_refusal_garbage_and_silence_then_recovery(served: Served) -> None:
    async with served.driver() as alicat:
        served.emulator.faults.refuse = 1
        with pytest.raises(InstrumentReported) as refused:
            await alicat.poll()
        assert (refused.value.instrument, refused.value.address) == ("alicat-1", served.url)
        served.server.faults.garble_replies = 1
        with pytest.raises(MalformedReply):
            await alicat.poll()
        served.server.faults.swallow_replies = 1
        with pytest.raises(InstrumentTimeout):
            await alicat.poll()
        assert (await alicat.poll()).unit_id == "A"


async def test_reply_dropped_half_way(served: Served) -> None:
    async with served.driver() as alicat:
        served.emulator.faults.drop_mid_reply = 1
        with pytest.raises((MalformedReply, ConnectionLost)):
            await alicat.poll()
        if served.transport == "tcp":
            with pytest.raises(ConnectionLost):          # the server hung up after the half
                await alicat.poll()
        assert (await alicat.poll()).setpoint_pa == pytest.approx(186_560.0, abs=0.01 * PSI)


async def test_leak_shows_as_pressure_below_setpoint(served: Served) -> None:
    async with served.driver() as alicat:
        served.bench.cells["cell-1"].jig.inject(JigFault.LEAK, served.bench.clock.now_s())
        served.bench.clock.advance(120.0)
        frame = await alicat.poll()
        assert frame.pressure_pa < 0.85 * frame.setpoint_pa

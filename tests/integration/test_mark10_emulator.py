"""The Mark-10 driver against the Mark-10 emulator through real pyserial: a pseudo-terminal
and a ``socket://`` URL, reading the bench cell's jig."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cellrig.drivers.mark10 import Mark10ForceGauge
from cellrig.errors import (
    ConnectionLost,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
)
from cellrig.simulators.bench import Bench, bolted_jig
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.jig import JigFault
from cellrig.simulators.line_server import LineServer
from cellrig.simulators.mark10_emulator import Mark10Emulator

pytestmark = pytest.mark.integration


@dataclass
class Served:
    bench: Bench
    emulator: Mark10Emulator
    server: LineServer
    url: str
    transport: str

    def driver(self) -> Mark10ForceGauge:
        return Mark10ForceGauge.serial(self.url, name="mark10-1", timeout_s=0.3,
                                       clock=self.bench.clock.now_s)


@pytest.fixture(params=["pty", "tcp"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    bench = Bench.default()
    emulator = Mark10Emulator.for_bench_cell(bench.cells["cell-1"])
    server = emulator.line_server()
    url = server.start_pty() if request.param == "pty" else await server.start_tcp()
    yield Served(bench, emulator, server, url, request.param)
    await server.close()


async def test_reading_the_bench_cell(served: Served) -> None:
    async with served.driver() as gauge:
        assert await gauge.read_force_n() == pytest.approx(18_656.0, abs=0.1)
        assert await gauge.read_current_force_n() == pytest.approx(18_656.0, abs=0.1)
        assert await gauge.peak_compression_n() == pytest.approx(18_656.0, abs=0.1)
        identity = await gauge.identify()
        assert (identity.model, identity.serial_number) == ("M7I", "7I-000123")
    assert served.emulator.received == ["?", "?C", "?PC", "RM", "RS", "RV"]


async def test_units_other_than_newtons(served: Served) -> None:
    served.emulator.unit, served.emulator.decimals = "lbF", 2
    async with served.driver() as gauge:
        assert await gauge.read_force_n() == pytest.approx(18_656.0, abs=0.03)


async def test_swell_in_a_bolted_jig_reaches_the_gauge(served: Served) -> None:
    bench = Bench(served.bench.clock)
    bench.add_chamber("chamber-1")
    params = load_builtin_cell()
    cell = bench.add_cell("cell-2", "chamber-1", jig=bolted_jig(params, preload_pa=2e6))
    emulator = Mark10Emulator.for_bench_cell(cell)
    server = emulator.line_server()
    url = server.start_pty()
    try:
        async with Mark10ForceGauge.serial(url, timeout_s=0.3) as gauge:
            before_n = await gauge.read_force_n()
            cell.source_current(0.3, 4.25)
            bench.clock.advance(3600.0)
            after_n = await gauge.read_force_n()
    finally:
        await server.close()
    swell_m = cell.measure().swell_m
    assert swell_m > 5e-6
    assert after_n - before_n == pytest.approx(5e8 * swell_m, rel=0.01)


async def test_errors_garbage_and_silence_then_recovery(served: Served) -> None:
    async with served.driver() as gauge:
        served.emulator.faults.errors = 1
        with pytest.raises(InstrumentReported) as reported:
            await gauge.read_force_n()
        assert reported.value.code == 10 and reported.value.address == served.url
        served.server.faults.garble_replies = 1
        with pytest.raises(MalformedReply):
            await gauge.read_force_n()
        served.server.faults.silent = True
        with pytest.raises(InstrumentTimeout):
            await gauge.read_force_n()
        served.server.faults.silent = False
        assert await gauge.read_force_n() == pytest.approx(18_656.0, abs=0.1)


async def test_sensor_lost_is_reported(served: Served) -> None:
    jig = served.bench.cells["cell-1"].jig
    assert jig is not None
    async with served.driver() as gauge:
        jig.inject(JigFault.SENSOR_LOST, served.bench.clock.now_s())
        with pytest.raises(InstrumentReported, match=r"\*11"):
            await gauge.read_force_n()
        jig.inject(None, served.bench.clock.now_s())
        served.bench.clock.advance(1.0)
        assert await gauge.read_force_n() == pytest.approx(18_656.0, abs=0.1)


async def test_reply_dropped_half_way(served: Served) -> None:
    async with served.driver() as gauge:
        served.emulator.faults.drop_mid_reply = 1
        with pytest.raises((MalformedReply, ConnectionLost)):
            await gauge.read_force_n()
        if served.transport == "tcp":
            with pytest.raises(ConnectionLost):
                await gauge.read_force_n()
        assert await gauge.read_force_n() == pytest.approx(18_656.0, abs=0.1)

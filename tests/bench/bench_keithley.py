"""Benchmark: readings per second through the Keithley 2450 driver over pyvisa-py TCP, for one
instrument and for 64 emulated instruments at once in one process (prints figures).

Run: ``python tests/bench/bench_keithley.py [--seconds 3]``. Every reading goes the whole way:
driver → VisaLink worker thread → pyvisa-py ``TCPIP::127.0.0.1::<port>::SOCKET`` → the SCPI
server → the emulator → the bench cell model, and back. The emulators and the drivers share
one process and one event loop, so the figures are the cost of both; the line "wire only"
repeats the exchange with a query that does not touch the cell model (``:SYST:ERR:COUN?``) to
separate the transport from the model.

Figures printed:

1. one instrument, host-polled ``:READ?`` as fast as it goes (a virtual bench clock, so the
   driver never waits): readings/s and the round trip;
2. the same exchange without the cell model: transport round trips/s;
3. one instrument, instrument-timed (``SimpleLoop`` into ``defbuffer1`` every 2 ms at
   NPLC 0.01, fetched with ``:TRACe:DATA?``) on a real-time clock: readings/s the driver
   receives and their spacing;
4. 64 instruments (64 bench cells, 64 servers, 64 drivers with their worker threads), all
   polling as fast as they go: total readings/s;
5. 64 instruments each reading once a second in real time (a station's normal load): the
   readings/s achieved and how far the spacing of each instrument's readings is from 1 s
   (median and 99th percentile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import AsyncIterator

from cellrig.drivers.keithley2450 import Keithley2450
from cellrig.drivers.keithley2450_models import ChannelLimits
from cellrig.protocols.rig import Command, Mode
from cellrig.simulators.bench import Bench, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.scpi_server import ScpiServer

LIMITS = ChannelLimits(max_voltage_v=4.4, max_current_a=1.0)


def bench_of(cells: int, scale: float | None) -> Bench:
    bench = Bench(BenchClock(scale=scale))
    bench.add_chamber("chamber-1")
    params = load_builtin_cell()
    for index in range(cells):
        bench.add_cell(f"cell-{index + 1}", "chamber-1",
                       CellModel(params, temperature_c=25.0),
                       pneumatic_jig(params, 2.0e6, bench.clock.now_s()))
    return bench


@contextlib.asynccontextmanager
async def instruments(count: int, scale: float | None,
                      nplc: float = 1.0) -> AsyncIterator[list[Keithley2450]]:
    """``count`` emulated instruments on one bench and their drivers; ``scale`` None is a
    virtual clock (each reading moves it by one integration, the driver never waits)."""
    bench = bench_of(count, scale)
    async with contextlib.AsyncExitStack() as stack:
        drivers = []
        for index in range(count):
            emulator = Keithley2450Emulator(bench.cells[f"cell-{index + 1}"])
            server = await stack.enter_async_context(ScpiServer(emulator))
            driver = Keithley2450.over_visa(server.resource, limits=LIMITS,
                                            instrument=f"keithley-{index + 1}",
                                            time_scale=scale or 1e9, nplc=nplc,
                                            max_poll_interval_s=1.0)
            drivers.append(await stack.enter_async_context(driver))
        yield drivers


async def poll(driver: Keithley2450, seconds: float,
               interval_s: float) -> tuple[list[float], list[float]]:
    """Read for ``seconds``: the instrument time of every reading and the host time each
    read took."""
    await driver.apply(Command(Mode.CURRENT, current_a=0.2, sample_interval_s=interval_s))
    await driver.read()
    times: list[float] = []
    took: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        block = await driver.read()
        took.append(time.monotonic() - started)
        times.extend(block.time_s.tolist())
    return times, took


async def one_instrument(seconds: float) -> None:
    async with instruments(1, scale=None) as (driver,):
        _, took = await poll(driver, seconds, interval_s=0.05)
        print(f"1 instrument, host-polled :READ?: {len(took) / seconds:8.0f} readings/s "
              f"(round trip {statistics.median(took) * 1e3:.2f} ms median)")
        query = ":SYST:ERR:COUN?"
        count = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            async with driver.transport.lock:
                await driver.transport.query(query)
            count += 1
        print(f"1 instrument, wire only ({query}): {count / seconds:8.0f} round trips/s")
    async with instruments(1, scale=1.0, nplc=0.01) as (driver,):
        times, _ = await poll(driver, seconds, interval_s=0.002)
        print(f"1 instrument, instrument-timed (SimpleLoop every 2 ms, NPLC 0.01, real time): "
              f"{len(times) / seconds:8.0f} readings/s received, spacing "
              f"{statistics.median(statistics_of(times)) * 1e3:.2f} ms median")


async def many_instruments(count: int, seconds: float) -> None:
    async with instruments(count, scale=None) as drivers:
        results = await asyncio.gather(*(poll(d, seconds, 0.05) for d in drivers))
        total = sum(len(times) for times, _ in results)
        print(f"{count} instruments, host-polled as fast as they go: {total / seconds:8.0f} "
              f"readings/s in all ({total / seconds / count:.0f} per instrument)")
    async with instruments(count, scale=1.0) as drivers:
        results = await asyncio.gather(*(poll(d, seconds, 1.0) for d in drivers))
        spacing = sorted(abs(gap - 1.0) for times, _ in results for gap in statistics_of(times))
        total = sum(len(times) for times, _ in results)
        p99 = spacing[min(len(spacing) - 1, int(0.99 * len(spacing)))]
        print(f"{count} instruments at 1 reading/s each (real time): {total / seconds:8.1f} "
              f"readings/s in all; spacing off 1 s by {statistics.median(spacing) * 1e3:.1f} ms "
              f"median, {p99 * 1e3:.1f} ms p99")


def statistics_of(times: list[float]) -> list[float]:
    """Spacings of consecutive readings."""
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def main(seconds: float) -> None:
    await one_instrument(seconds)
    await many_instruments(64, seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    asyncio.run(main(parser.parse_args().seconds))

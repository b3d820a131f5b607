"""Benchmark: how long a station takes to start, and what running jobs on every channel costs
(prints figures).

Run: ``python tests/bench/bench_station.py [--channels 4 64] [--seconds 5]``.

Figures printed, for each channel count N:

1. the emulators of a simulated station (``serve_sim_station``: N Keithley 2450 SCPI servers,
   one ESPEC, N Alicat and N Mark-10 line servers): time to start them;
2. ``open_station`` on that station through the real drivers (pyvisa-py to the Keithleys,
   pyserial ``socket://`` to the rest), all in this process: time to open (identify, reset,
   configure every SMU; open the chamber; start N pressure loops; a first poll of everything),
   and time to close;
3. ``open_station`` on a station of N ``driver = "model"`` channels (no wire);
4. with ``--seconds``: every channel of the wire station charging at once at 0.1C (a reading
   every 100 s of bench time, the bench at 100 times real time: each SMU read once a real
   second, a station's normal load), the pollers, pressure loops and watchdogs running:
   readings per second in all and the process's CPU use.

The emulators and the station share one process and one event loop (as in the integration
tests), so the figures include the emulators' cost; a daemon against real instruments or
against ``cellrig sim serve`` in another process pays only its own part.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.protocols.rig import Command, Mode
from cellrig.simulators.sim_station import serve_sim_station

SPEED = 100.0
#: One reading a real second per SMU (100 s of bench time at 100 times).
READING_EVERY_S = 100.0
MODEL_CHANNEL = """
[channels.M{index}]
potentiostat = {{ instrument = "bench", channel = {index} }}
chamber = "bench"
limits = {{ voltage = ["0 V", "4.4 V"], current = "1 A" }}
[channels.M{index}.jig]
kind = "pneumatic"
regulator = "bench"
gauge = "bench"
cell_area = "93.28 cm^2"
piston_area = "0.1 m^2"
max_force = "100 kN"
"""
MODEL_HEAD = """
[station]
name = "bench-station"
data_folder = "data"
[instruments.bench]
driver = "model"
options = { time_scale = 100 }
"""


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def charge_all(station: Station, seconds: float) -> None:
    counts = dict.fromkeys(station.channels, 0)
    stop = asyncio.Event()

    async def charge(name: str) -> None:
        rig = station.channels[name].rig
        await rig.apply(Command(Mode.CURRENT, current_a=0.06, voltage_limit_v=4.2,
                                sample_interval_s=READING_EVERY_S))
        # the flag as well as the cancellation: on Python 3.11 a cancellation that meets a
        # driver's wait_for just as its reply arrives can be lost
        while not stop.is_set():
            counts[name] += len(await rig.read())

    started, cpu = time.perf_counter(), cpu_s()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(station.run())]
        tasks += [group.create_task(charge(name)) for name in station.channels]
        await asyncio.sleep(seconds)
        stop.set()
        for task in tasks:
            task.cancel()
    elapsed, used = time.perf_counter() - started, cpu_s() - cpu
    total = sum(counts.values())
    print(f"  {len(counts)} channels charging at once: {total / elapsed:7.0f} readings/s in all, "
          f"CPU {100 * used / elapsed:.0f} % of one core")


async def wire_station(channels: int, seconds: float) -> None:
    started = time.perf_counter()
    async with serve_sim_station(channels, SPEED) as sim:
        print(f"  emulators started in {time.perf_counter() - started:.3f} s")
        config = load_station_text(sim.station_toml())
        started = time.perf_counter()
        async with open_station(config) as station:
            print(f"  open_station (real drivers on the wire): "
                  f"{time.perf_counter() - started:.3f} s, {len(station.channels)} channels")
            if seconds > 0:
                await charge_all(station, seconds)
            closing = time.perf_counter()
        print(f"  closed in {time.perf_counter() - closing:.3f} s")


async def model_station(channels: int) -> None:
    text = MODEL_HEAD + "".join(MODEL_CHANNEL.format(index=index + 1)
                                for index in range(channels))
    config = load_station_text(text)
    started = time.perf_counter()
    async with open_station(config) as station:
        print(f"  open_station (driver = \"model\"): {time.perf_counter() - started:.3f} s, "
              f"{len(station.channels)} channels")


async def main(counts: list[int], seconds: float) -> None:
    for count in counts:
        print(f"{count} channels:")
        await wire_station(count, seconds)
        await model_station(count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="also charge every channel for this long (0: start-up only)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.channels, arguments.seconds))

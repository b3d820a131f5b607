"""Benchmark: the control socket and the daemon's start and stop (prints figures).

Run: ``python tests/bench/bench_control.py [--channels 4 64] [--requests 2000]``.

For each channel count N, on a station of N ``driver = "model"`` channels (no wire), the
daemon running in this process with the real job manager:

1. ``run_daemon`` from the call to the control socket serving, and from the stop to its end
   (store closed);
2. requests answered per second over one connection (``status``: every channel's live values;
   ``jobs``: the job list from the store, 20 jobs), and the largest reply;
3. ``cellrig status --once`` and ``cellrig jobs`` as a person runs them: wall time of the
   command (a new interpreter, imports, connect, one request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from daemon_fixtures import (
    SHORT,
    cellrig_command,
    model_station_toml,
    short_folder,
)

from cellrig.daemon.control_api import SubmitRequest, to_json
from cellrig.daemon.control_client import ControlClient
from cellrig.daemon.service import DaemonHooks, run_daemon
from cellrig.daemon.station_config import load_station


async def measure(channels: int, requests: int) -> None:
    with short_folder() as folder:
        path = folder / "station.toml"
        path.write_text(model_station_toml(folder / "data", channels=channels,
                                           time_scale=1000.0))
        config = load_station(path)
        socket = folder / "c.sock"
        stop = asyncio.Event()
        ready = asyncio.Event()
        hooks = DaemonHooks(started=lambda _control, _path: ready.set())
        began = time.perf_counter()
        task = asyncio.create_task(run_daemon(config, socket=socket, stop=stop, hooks=hooks))
        await ready.wait()
        start_s = time.perf_counter() - began
        async with ControlClient(socket) as client:
            for index in range(20):
                channel = f"A{index % channels + 1}"
                await client.submit(SubmitRequest(channel, SHORT, {"id": f"c{index}"}))
            rates = {}
            for verb in ("status", "jobs"):
                began = time.perf_counter()
                for _ in range(requests):
                    reply = await client.request(verb)
                rates[verb] = requests / (time.perf_counter() - began)
                size = len(json.dumps(to_json(reply)))
                print(f"  {verb:6s}: {rates[verb]:8.0f} requests/s over one connection, "
                      f"reply {size / 1024:.1f} KiB")
        commands = {}
        for args in (("status", "--once"), ("jobs",)):
            times = []
            for _ in range(3):
                began = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    *cellrig_command(), *args, "--socket", str(socket),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                assert await process.wait() == 0
                times.append(time.perf_counter() - began)
            commands[" ".join(args)] = statistics.median(times)
        began = time.perf_counter()
        stop.set()
        await task
        stop_s = time.perf_counter() - began
        print(f"  daemon start to serving: {start_s * 1000:.0f} ms; stop to closed store: "
              f"{stop_s * 1000:.0f} ms")
        for name, seconds in commands.items():
            print(f"  cellrig {name}: {seconds * 1000:.0f} ms wall (median of 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    for channels in args.channels:
        print(f"{channels} model channels:")
        asyncio.run(measure(channels, args.requests))


if __name__ == "__main__":
    main()

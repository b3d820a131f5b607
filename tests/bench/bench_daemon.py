"""Benchmark: how many channels one ``cellrig daemon`` carries at one reading a second, through
the wire emulators with the store on (prints figures; docs/daemon.md quotes them).

Run: ``python tests/bench/bench_daemon.py [--channels 16 64 256] [--seconds 30]``.

For each channel count N, three kinds of process, as on a lab PC:

1. ``cellrig sim serve --channels N --speed 1 --write-config station.toml``: the emulators (N
   Keithley 2450 SCPI servers, N Alicat regulators and N Mark-10 gauges, one ESPEC chamber) in a
   process of their own, in real time. More than ``--per-emulator`` (256) channels are served
   by several such processes (the later ones from bench files of the same layout: cells
   ``B1`` …, chamber ``chamber-b``, …) and their configurations joined into one;
2. ``cellrig daemon --config station.toml``: the real drivers (pyvisa-py to the Keithleys,
   pyserial ``socket://`` to the rest), the store, no sinks;
3. this script: a client of the control socket.

Then:

- with the station idle for ``--idle-seconds``: the daemon's CPU (its pollers, pressure loops
  and watchdogs);
- one job per channel, submitted back to back over one connection, a protocol that records
  every second of a long 0.05C charge (at speed 1 the Keithley driver reads each SMU once a
  real second): submit → queued (the reply) and submit → running (the job's
  ``started_unix_s`` in the store against the wall clock when the request was sent),
  p50 / p99 / max;
- after ``--settle`` seconds, a steady window of ``--seconds``: the daemon's CPU time
  (``utime + stime`` of /proc/PID/stat, every thread, the store's writer included) and RSS
  (``VmRSS``) and thread count at its start and end; the samples stored per second (the
  store's newest sample id, read with ``StoreReader`` on the store file, at both ends) to show
  the channels really run at about 1 Hz; the emulators' CPU beside it;
- ``--probes`` single submissions on a loaded station: a running job is stopped and a new one
  submitted on its channel while the N − 1 others run; submit → running of each;
- SIGTERM to the daemon (time to its exit) and to the emulators.

``uptime``'s load average is printed beside the figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import signal
import statistics
import string
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from daemon_fixtures import cellrig_command, short_folder

from cellrig.daemon.control_api import JobView, SubmitRequest
from cellrig.daemon.control_client import ControlClient
from cellrig.daemon.store_read import StoreReader

#: One reading stored every second (instrument time; the bench at speed 1 is real time) for
#: longer than any run: an as-built cell charged at 0.05C (30 mA) stays far inside the limits.
ONE_HERTZ = """cellrig: 1
name: one-hertz
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.4 V]}
record: {every: 1 s}
steps:
  - Charge at 0.05C for 10 hours
"""
CELL = {"id": "bench", "capacity": "600 mAh"}
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") / 1024


@dataclass
class ProcessLook:
    """A process's CPU time, resident memory and threads at one moment."""

    at_s: float
    cpu_s: float
    rss_kib: float
    threads: int


def look(pid: int) -> ProcessLook:
    """Read /proc/PID/stat (utime + stime) and /proc/PID/status (VmRSS, Threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    cpu_s = (int(fields[11]) + int(fields[12])) * TICK_S  # fields 14 and 15 of stat
    rss_kib, threads = 0.0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = float(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return ProcessLook(time.monotonic(), cpu_s, rss_kib, threads)


def cpu_share(before: ProcessLook, after: ProcessLook) -> float:
    """CPU used between two looks as a fraction of one core."""
    return (after.cpu_s - before.cpu_s) / (after.at_s - before.at_s)


def load() -> str:
    """The 1-minute load average (what ``uptime`` shows first)."""
    return f"{os.getloadavg()[0]:.2f}"


def percentiles(values: Sequence[float]) -> str:
    """p50 / p99 / max in ms."""
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms")


def bench_file(letter: str, count: int) -> str:
    """The layout of ``sim serve --channels`` under other names: cells ``<letter>1`` … in an
    ESPEC chamber ``chamber-<letter>``, each with a Keithley 2450 and a pneumatic jig."""
    chamber = f"chamber-{letter.lower()}"
    cells = "".join(f"  {letter}{index}: {{chamber: {chamber}}}\n"
                    for index in range(1, count + 1))
    return (f"cellrig-bench: 1\nchambers:\n  {chamber}: {{kind: espec}}\ncells:\n{cells}")


@dataclass
class Emulators:
    """The emulator processes and the station.toml that points at all of them."""

    processes: list[asyncio.subprocess.Process]
    config: Path


async def start_emulator(arguments: list[str]) -> asyncio.subprocess.Process:
    """``cellrig sim serve ARGUMENTS``, once it says it serves."""
    process = await asyncio.create_subprocess_exec(
        *cellrig_command(), "sim", "serve", *arguments,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None
    async with asyncio.timeout(120):
        while True:
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError(f"cellrig sim serve exited {await process.wait()}")
            if line.startswith(b"serving "):
                break
    return process  # it prints nothing more on stdout until it stops


@contextlib.asynccontextmanager
async def emulators(folder: Path, channels: int, per_process: int
                    ) -> AsyncIterator[Emulators]:
    """The emulators of ``channels`` channels in processes of at most ``per_process`` each,
    and one station.toml for all of them (data in ``folder/data``)."""
    processes: list[asyncio.subprocess.Process] = []
    config = folder / "station.toml"
    try:
        parts: list[str] = []
        for number, first in enumerate(range(0, channels, per_process)):
            count = min(per_process, channels - first)
            part = folder / f"station-{number}.toml"
            common = ["--speed", "1", "--write-config", str(part),
                      "--data-folder", str(folder / "data"), "--name", "bench-daemon"]
            if number == 0:
                arguments = ["--channels", str(count), *common]
            else:
                bench = folder / f"bench-{number}.yaml"
                bench.write_text(bench_file(string.ascii_uppercase[number], count))
                arguments = ["--bench", str(bench), *common]
            processes.append(await start_emulator(arguments))
            text = part.read_text()
            # the later files add their instruments and channels to the first one's station
            parts.append(text if number == 0 else text[text.index("[instruments."):])
        config.write_text("\n".join(parts))
        yield Emulators(processes, config)
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def daemon(config: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``cellrig daemon --config CONFIG`` (its log in ``log``), once it serves."""
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *cellrig_command(), "daemon", "--config", str(config),
            stdout=asyncio.subprocess.DEVNULL, stderr=log_file)
    try:
        async with asyncio.timeout(300):
            while b"event=daemon-ready" not in log.read_bytes():
                if process.returncode is not None:
                    raise RuntimeError(f"the daemon exited {process.returncode}:\n"
                                       + log.read_text(errors="replace")[-3000:])
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_running(client: ControlClient, job_ids: set[int], timeout_s: float
                       ) -> dict[int, JobView]:
    """The jobs' views once every one of them has started (or ended)."""
    async with asyncio.timeout(timeout_s):
        while True:
            views = {view.id: view for view in await client.jobs()
                     if view.id in job_ids and view.started_unix_s is not None}
            if len(views) == len(job_ids):
                return views
            await asyncio.sleep(0.1)


def newest_sample(store: Path) -> int:
    with StoreReader(store) as reader:
        newest, _ = reader.newest_sample()
        return newest


async def measure(channels: int, args: argparse.Namespace) -> None:
    print(f"{channels} channels (load {load()}):", flush=True)
    with short_folder() as folder:
        began = time.perf_counter()
        async with emulators(folder, channels, args.per_emulator) as sim:
            print(f"  emulators: {len(sim.processes)} process(es), serving after "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
            began = time.perf_counter()
            async with daemon(sim.config, folder / "daemon.log") as process:
                pid = process.pid
                print(f"  daemon: ready {time.perf_counter() - began:.1f} s after its start, "
                      f"RSS {look(pid).rss_kib / 1024:.0f} MiB, {look(pid).threads} threads",
                      flush=True)
                await run_jobs(channels, pid, [p.pid for p in sim.processes],
                               folder / "data", args)
                stopping = time.perf_counter()
                process.send_signal(signal.SIGTERM)
                code = await process.wait()
                print(f"  SIGTERM to exit: {time.perf_counter() - stopping:.1f} s (exit {code})",
                      flush=True)


async def run_jobs(channels: int, pid: int, emulator_pids: list[int], data: Path,
                   args: argparse.Namespace) -> None:
    socket, store = data / "cellrig.sock", data / "station.db"
    async with ControlClient(socket) as client:
        names = [channel.channel for channel in (await client.status()).channels]
        assert len(names) == channels, names

        before = look(pid)
        await asyncio.sleep(args.idle_seconds)
        idle = cpu_share(before, look(pid))
        print(f"  idle station: daemon CPU {100 * idle:.1f} % of a core "
              f"({1000 * idle / channels:.2f} ms/s per channel; load {load()})", flush=True)

        sent: dict[int, float] = {}
        queued: list[float] = []
        began = time.perf_counter()
        for name in names:
            wall, sending = time.time(), time.perf_counter()
            view = await client.submit(SubmitRequest(name, ONE_HERTZ, CELL, source="bench"))
            queued.append(time.perf_counter() - sending)
            sent[view.id] = wall
        submitted_s = time.perf_counter() - began
        views = await wait_running(client, set(sent), timeout_s=120 + channels)
        running = [(views[job].started_unix_s or math.nan) - sent[job] for job in sent]
        print(f"  {channels} submissions back to back in {submitted_s:.2f} s "
              f"(load {load()})", flush=True)
        print(f"    submit -> queued:  {percentiles(queued)}")
        print(f"    submit -> running: {percentiles(running)}", flush=True)

        await asyncio.sleep(args.settle)
        start, sample_start = look(pid), newest_sample(store)
        emulators_start = [look(other) for other in emulator_pids]
        load_start = load()
        await asyncio.sleep(args.seconds)
        end, sample_end = look(pid), newest_sample(store)
        emulators_end = [look(other) for other in emulator_pids]
        window_s = end.at_s - start.at_s
        rate = (sample_end - sample_start) / window_s
        share = cpu_share(start, end)
        emulator_share = sum(cpu_share(a, b) for a, b in zip(emulators_start, emulators_end,
                                                             strict=True))
        states = [view.state for view in await client.jobs()]
        print(f"  steady {window_s:.0f} s (load {load_start} -> {load()}):", flush=True)
        print(f"    samples stored: {rate:.1f} /s ({rate / channels:.3f} per channel per s); "
              f"jobs running {states.count('running')} of {channels}")
        print(f"    daemon CPU: {100 * share:.1f} % of a core, "
              f"{1000 * share / channels:.2f} ms/s per channel "
              f"({1000 * (share - idle) / channels:.2f} above the idle station)")
        print(f"    daemon RSS: {start.rss_kib / 1024:.0f} -> {end.rss_kib / 1024:.0f} MiB, "
              f"{end.rss_kib / channels:.0f} KiB per channel; threads {end.threads}")
        print(f"    emulators CPU: {100 * emulator_share:.1f} % of a core", flush=True)
        results.append(Result(channels, rate, share, end.rss_kib, end.threads, emulator_share,
                              running, f"{load_start} / {load()}"))

        probes: list[float] = []
        job_ids = list(sent)
        for index in range(min(args.probes, channels)):
            job_id = job_ids[index * channels // max(args.probes, 1)]
            stopped = await client.stop(job_id, "bench probe")
            while stopped.state not in ("stopped", "completed", "aborted", "failed"):
                await asyncio.sleep(0.05)
                stopped = await client.job(job_id)
            await asyncio.sleep(0.5)
            wall = time.time()
            view = await client.submit(SubmitRequest(stopped.channel, ONE_HERTZ, CELL,
                                                     source="bench"))
            started = (await wait_running(client, {view.id}, 60))[view.id].started_unix_s
            assert started is not None
            probes.append(started - wall)
        if probes:
            print(f"  {len(probes)} single submissions with {channels - 1} channels running: "
                  f"submit -> running {percentiles(probes)} (load {load()})", flush=True)
            results[-1].single = probes


@dataclass
class Result:
    """The figures of one channel count."""

    channels: int
    samples_per_s: float
    cpu: float
    """the daemon's CPU in the steady window, a fraction of one core"""
    rss_kib: float
    threads: int
    emulators_cpu: float
    running: list[float]
    """submit -> running of the back-to-back submissions, seconds"""
    load: str
    single: list[float] = field(default_factory=list)
    """submit -> running of the single submissions on the loaded station, seconds"""


results: list[Result] = []


def p50_p99(values: Sequence[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:.0f} / {p99 * 1000:.0f} ms"


def table() -> None:
    """The figures of every channel count as a Markdown table, then what one more channel
    costs between successive counts."""
    print()
    print("| channels | samples stored /s | daemon CPU, % of a core | per channel | RSS | "
          "per channel (RSS / N) | threads | submit → running p50 / p99, N at once | "
          "one on a loaded station | emulators' CPU | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.channels} | {r.samples_per_s:.0f} | {100 * r.cpu:.1f} % | "
              f"{1000 * r.cpu / r.channels:.2f} ms/s | {r.rss_kib / 1024:.0f} MiB | "
              f"{r.rss_kib / r.channels:.0f} KiB | {r.threads} | {p50_p99(r.running)} | "
              f"{p50_p99(r.single)} | {100 * r.emulators_cpu:.0f} % | {r.load} |")
    for low, high in itertools.pairwise(results):
        more = high.channels - low.channels
        if more > 0:
            print(f"from {low.channels} to {high.channels} channels, each one more: "
                  f"CPU {1000 * (high.cpu - low.cpu) / more:.2f} ms/s, "
                  f"RSS {(high.rss_kib - low.rss_kib) / more:.0f} KiB, "
                  f"threads {(high.threads - low.threads) / more:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="the steady window (default 30)")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="the idle station's window before the submissions (default 5)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="wait this long after every job runs (default 5)")
    parser.add_argument("--probes", type=int, default=5,
                        help="single submissions on the loaded station (default 5)")
    parser.add_argument("--per-emulator", type=int, default=256,
                        help="channels per `cellrig sim serve` process (at most 256)")
    args = parser.parse_args()
    for channels in args.channels:
        asyncio.run(measure(channels, args))
    table()


if __name__ == "__main__":
    main()

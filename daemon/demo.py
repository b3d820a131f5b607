"""``cellrig demo``: a whole station at work on a simulated bench, in a minute or two.

1. The emulators of a simulated station start (:mod:`~cellrig.simulators.sim_station`): four
   Keithley 2450s (SCPI over TCP), one ESPEC chamber the four cells share, an Alicat regulator
   and a Mark-10 gauge for each cell's pneumatic jig, all on one bench clock running ``speed``
   times faster than real time.
2. Their ``station.toml`` is written into the demo folder, and the daemon runs on it in this
   process (:func:`~cellrig.daemon.service.run_daemon`), with its store in ``data/``: the real
   drivers, the job manager, the safety supervisors, the control socket.
3. The formation protocol of the library is submitted to all four channels through the control
   socket, as ``cellrig submit`` does, and a compact status table shows their progress.
4. When every job has ended, the daemon stops and each job is exported from the store: Battery
   Data Format CSV and Parquet, the cycle table, the provenance and the plots, one folder per
   channel.

The daemon's log goes to ``daemon.log`` in the demo folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from .cli_format import job_line, status_table
from .control_api import JobView, StationControl, SubmitRequest
from .control_client import ControlClient
from .control_server import MAX_SOCKET_PATH_BYTES
from .service import STOP_GRACE_S, DaemonHooks, StopTimedOut, run_daemon, store_path
from .service_log import LogfmtFormatter

#: Bench speed of the demo: the formation (about 17 h of bench time with the chamber's warm-up
#: and the 30 min soak) in about a minute.
DEFAULT_SPEED = 1000.0
#: The fastest bench the emulators keep up with (as ``cellrig sim serve``).
MAX_SPEED = 1e6
CHANNELS = 4
FINAL_STATES = frozenset({"completed", "stopped", "aborted", "failed"})
#: Seconds between status lines when the output is not a terminal.
LINE_PERIOD_S = 10.0
#: Seconds between redraws of the table on a terminal.
REDRAW_PERIOD_S = 1.0
#: The longest the demo's jobs may take, in bench seconds, before the demo gives up.
MAX_BENCH_S = 40 * 3600.0
OUT_OF_TIME = "the demo ran out of time"


def default_folder() -> Path:
    """``cellrig-demo-<YYYYmmdd-HHMMSS>`` in the current folder (numbered if it exists)."""
    base = Path.cwd() / f"cellrig-demo-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, number = base, 1
    while folder.exists():
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    return folder


@contextlib.contextmanager
def socket_place(folder: Path) -> Iterator[Path]:
    """The control socket in the demo's data folder, or in a temporary folder when that
    path is too long for a Unix socket."""
    path = folder / "data" / "cellrig.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES:
        yield path
        return
    short = Path(tempfile.mkdtemp(prefix="cellrig-demo-"))
    try:
        yield short / "cellrig.sock"
    finally:
        shutil.rmtree(short, ignore_errors=True)


@contextlib.contextmanager
def daemon_log(path: Path) -> Iterator[None]:
    """cellrig's log lines into ``path`` (not on the screen) while the demo runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(LogfmtFormatter())
    logger = logging.getLogger("cellrig")
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
        handler.close()


@contextlib.asynccontextmanager
async def running_daemon(config_path: Path, socket: Path) -> AsyncIterator[None]:
    """The daemon on ``config_path`` as a task of this event loop, stopped (as by SIGTERM)
    when the block ends."""
    from .station_config import load_station

    config = load_station(config_path)
    stop = asyncio.Event()
    started: asyncio.Future[StationControl] = asyncio.get_running_loop().create_future()
    hooks = DaemonHooks(started=lambda control, _path: started.set_result(control))
    task = asyncio.create_task(run_daemon(config, socket=socket, stop=stop, hooks=hooks,
                                          stop_grace_s=STOP_GRACE_S), name="daemon")
    try:
        either: list[asyncio.Future[Any]] = [started, task]
        done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # what stopped it
        yield
    finally:
        stop.set()
        try:
            await task
        except StopTimedOut as exc:
            # what ignored its cancellation would keep the process alive: the cells are
            # safe and the store is closed, so end here
            print(f"cellrig demo: {exc}; see {config_path.parent / 'daemon.log'}",
                  file=sys.stderr)
            logging.shutdown()
            os._exit(1)


async def watch(client: ControlClient, jobs: list[JobView], speed: float) -> list[JobView]:
    """Show the channels until every job has ended; returns the jobs as they ended."""
    terminal = sys.stdout.isatty()
    started = time.monotonic()
    last_line = -LINE_PERIOD_S
    while True:
        views = [await client.job(job.id) for job in jobs]
        status = await client.status()
        elapsed = time.monotonic() - started
        if terminal:
            sys.stdout.write("\x1b[H\x1b[2J" + status_table(status, compact=True)
                             + f"\n\n{elapsed:.0f} s, bench at {speed:g}x real time "
                               "(Ctrl-C stops the demo)\n")
            sys.stdout.flush()
        elif elapsed - last_line >= LINE_PERIOD_S:
            last_line = elapsed
            parts = [f"{c.channel} {c.job_state or 'idle'} "
                     f"{'-' if c.voltage_v is None else f'{c.voltage_v:.3f} V'}"
                     for c in status.channels]
            print(f"{elapsed:5.0f} s: " + ", ".join(parts), flush=True)
        if all(view.state in FINAL_STATES for view in views):
            if terminal:
                print()
            return views
        if elapsed * speed > MAX_BENCH_S:
            for view in views:
                if view.state not in FINAL_STATES:
                    await client.stop(view.id, OUT_OF_TIME)
        await asyncio.sleep(REDRAW_PERIOD_S if terminal else 0.5)


async def run_station(folder: Path, speed: float, protocol: str) -> list[JobView]:
    """Steps 1–3 (see the module): the emulators, the daemon, the jobs to their end."""
    from cellrig.simulators.sim_station import serve_sim_station

    async with serve_sim_station(CHANNELS, speed) as sim:
        config_path = folder / "station.toml"
        config_path.write_text(sim.station_toml(name="demo-station", data_folder="data"),
                               encoding="utf-8")
        print(f"simulated station: {CHANNELS} cells at {speed:g} times real time, "
              f"configuration in {config_path}", flush=True)
        with socket_place(folder) as socket:
            async with running_daemon(config_path, socket), ControlClient(socket) as client:
                jobs = []
                for channel in sim.channels:
                    job = await client.submit(SubmitRequest(
                        channel=channel, protocol_text=protocol,
                        cell={"id": f"demo-{channel}"}, submitted_by="cellrig demo"))
                    print(job_line(job), flush=True)
                    jobs.append(job)
                return await watch(client, jobs, speed)


def export_all(folder: Path, jobs: list[JobView]) -> list[Path]:
    """Step 4: each job's files and plots in ``folder/<channel>``."""
    from .cli_export import plot_job
    from .export import export_job
    from .station_config import load_station
    from .store_read import StoreReader

    written: list[Path] = []
    config = load_station(folder / "station.toml")
    with StoreReader(store_path(config)) as reader:
        for job in jobs:
            target = folder / job.channel
            written += export_job(reader, job.id, target)
            written += plot_job(reader, job.id, target)
            for summary in reader.cycles(job.id):
                if summary.discharge_capacity_ah > 0:
                    efficiency = summary.coulombic_efficiency
                    print(f"{job.channel}: cycle {summary.cycle}: charge "
                          f"{summary.charge_capacity_ah * 1000:.1f} mAh, discharge "
                          f"{summary.discharge_capacity_ah * 1000:.1f} mAh"
                          + ("" if efficiency is None
                             else f", Coulombic efficiency {efficiency * 100:.1f} %"))
    return written


def demo_protocol(protocol: str) -> str:
    """The text to submit: a protocol file's contents, or a library protocol's name (which the
    station reads from its library)."""
    path = Path(protocol)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            from .cli_protocols import UsageError

            raise UsageError(f"cannot read the protocol {protocol}: {exc.strerror}") from None
    return protocol


def run_demo(args: argparse.Namespace) -> int:
    """``cellrig demo``; 0 when every job ran to its end (completed, or stopped by a
    ``stop`` step of its protocol), 1 when one was aborted, failed or ran out of time."""
    folder = Path(args.out).resolve() if args.out else default_folder()
    speed = args.speed or DEFAULT_SPEED
    if speed > MAX_SPEED:
        from .cli_protocols import UsageError

        raise UsageError(f"--speed must be at most {MAX_SPEED:g}, not {speed:g}")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with daemon_log(folder / "daemon.log"):
        jobs = asyncio.run(run_station(folder, speed, demo_protocol(args.protocol)))
    for job in jobs:
        print(job_line(job))
    written = export_all(folder, jobs)
    print(f"\n{len(written)} files written in {time.monotonic() - started:.0f} s. "
          f"Everything is in:\n  {folder}")
    print("  <channel>/*.bdf.csv, *.bdf.parquet  Battery Data Format time series\n"
          "  <channel>/*.cycles.csv              one row per cycle\n"
          "  <channel>/*.png                     plots\n"
          "  station.toml, data/station.db       the station and its store "
          "(cellrig export JOB --config station.toml)\n"
          "  daemon.log                          the daemon's log")
    ended = all(job.state == "completed" or (job.state == "stopped"
                                             and job.reason != OUT_OF_TIME) for job in jobs)
    return 0 if ended else 1

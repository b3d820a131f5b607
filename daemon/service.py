"""``cellrig daemon``: the station service.

One process per lab PC. It reads ``station.toml`` (a problem in it is printed with file, line
and column, exit code 2), takes the store's lock (a second daemon on the same data folder
refuses to start), opens the store, the station's instruments and the job manager (which picks
up the jobs a previous run left unfinished), serves the control socket and runs the sinks the
configuration names, all in one TaskGroup.

SIGTERM or SIGINT: the socket stops taking requests, the job workers are cancelled (a running
or paused job keeps its state and its last checkpoint in the store, so the next start
continues it), every cell is made safe, the store is flushed and closed, and the process
exits 0. Under systemd the daemon reports READY, STATUS, WATCHDOG
and STOPPING (:mod:`~cellrig.daemon.sd_notify`). docs/daemon.md has the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellrig import __version__
from cellrig.errors import CellrigError

from .control_api import StationControl
from .control_server import ControlServer
from .sd_notify import Notifier
from .service_lock import StoreLock
from .service_log import fields
from .station_config_model import StationConfig

if TYPE_CHECKING:
    from .environment import Timer
    from .jobs import JobManager
    from .station import Station
    from .store import Store

log = logging.getLogger("cellrig.daemon")

#: The store's file in the data folder.
STORE_NAME = "station.db"
#: The control socket's file in the data folder (unless ``--socket`` names another path).
SOCKET_NAME = "cellrig.sock"
#: How often the STATUS line is refreshed.
STATUS_PERIOD_S = 10.0
#: How long the tasks may take to end once the daemon stops (``cellrig daemon``).
STOP_GRACE_S = 20.0
#: Longest wait between restarts of a sink that keeps failing.
SINK_BACKOFF_MAX_S = 60.0


class StopTimedOut(CellrigError):
    """Tasks of the daemon did not end when it stopped; the process must exit."""


def socket_path(config: StationConfig, override: str | Path | None = None) -> Path:
    """The control socket: ``override`` (``--socket``), else ``<data_folder>/cellrig.sock``."""
    if override:
        return Path(override)
    return config.data_folder / SOCKET_NAME


def store_path(config: StationConfig) -> Path:
    """The station's store file."""
    return config.data_folder / STORE_NAME


@dataclass
class DaemonHooks:
    """What an embedding program (``cellrig demo``, the tests) may add to a daemon run."""

    started: Callable[[StationControl, Path], None] | None = None
    """called once the control socket serves (the job manager and the socket path)"""
    timer: Timer | None = None
    """the station's timer (a simulated bench's accelerated clock); None: the station's own"""
    extra_tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


@dataclass
class Sink:
    """An optional sink: the module and function that run it, and their arguments."""

    name: str
    module: str
    function: str
    arguments: tuple[Any, ...]
    keywords: dict[str, Any] = field(default_factory=dict)


def configured_sinks(config: StationConfig, store: Any, control: StationControl,
                     station: Station | None = None) -> list[Sink]:
    """The sinks the configuration names."""
    found = []
    if config.influxdb is not None:
        keywords: dict[str, Any] = {}
        if station is not None:
            from .station_health import instrument_states

            keywords["instrument_states"] = lambda: instrument_states(station)
        found.append(Sink("influxdb", "cellrig.daemon.influx_forwarder", "run_influx_forwarder",
                          (config, store), keywords))
    if config.mqtt is not None:
        found.append(Sink("mqtt", "cellrig.daemon.mqtt_bridge", "run_mqtt",
                          (config, store, control)))
    return found


async def run_sink(sink: Sink) -> None:
    """Run a sink for the daemon's life: imported on first use (a missing module is logged
    and skipped), restarted with a growing pause if it fails, so a sink's trouble never stops
    the station."""
    try:
        module = importlib.import_module(sink.module)
        runner = getattr(module, sink.function)
    except (ImportError, AttributeError) as exc:
        log.warning("sink %s not available in this version (%s); running without it",
                    sink.name, exc, extra=fields("sink-unavailable", sink=sink.name))
        return
    pause_s = 1.0
    while True:
        try:
            log.info("sink %s started", sink.name, extra=fields("sink-start", sink=sink.name))
            await runner(*sink.arguments, **sink.keywords)
            log.info("sink %s ended", sink.name, extra=fields("sink-end", sink=sink.name))
            return
        except Exception:
            log.exception("sink %s failed; restarting in %.0f s", sink.name, pause_s,
                          extra=fields("sink-failed", sink=sink.name))
        await asyncio.sleep(pause_s)
        pause_s = min(SINK_BACKOFF_MAX_S, pause_s * 2)


async def report_health(notifier: Notifier, control: StationControl) -> None:
    """WATCHDOG=1 at half the watchdog interval (from the event loop itself, so a hung loop
    stops it) and a STATUS line every few seconds."""
    period_s = min(notifier.watchdog_interval_s or STATUS_PERIOD_S, STATUS_PERIOD_S)
    next_status = 0.0
    loop = asyncio.get_running_loop()
    while True:
        if notifier.watchdog_interval_s is not None:
            notifier.watchdog()
        if loop.time() >= next_status:
            next_status = loop.time() + STATUS_PERIOD_S
            with contextlib.suppress(Exception):
                notifier.status(await status_line(control))
        await asyncio.sleep(period_s)


async def status_line(control: StationControl) -> str:
    """``4 channels: 2 running, 1 paused, 3 queued`` for ``systemctl status``."""
    status = await control.status()
    states: dict[str, int] = {}
    for channel in status.channels:
        if channel.job_state:
            states[channel.job_state] = states.get(channel.job_state, 0) + 1
    queued = sum(channel.queued for channel in status.channels)
    parts = [f"{count} {state}" for state, count in sorted(states.items())]
    if queued:
        parts.append(f"{queued} queued")
    latched = sum(1 for channel in status.channels if channel.latched)
    if latched:
        parts.append(f"{latched} latched")
    return f"{len(status.channels)} channels: " + (", ".join(parts) or "idle")


async def run_daemon(config: StationConfig, *, socket: Path, stop: asyncio.Event,
                     notifier: Notifier | None = None, hooks: DaemonHooks | None = None,
                     stop_grace_s: float | None = None) -> None:
    """Run the station until ``stop`` is set; raises what stopped it otherwise (the store's
    lock held by another daemon, a control socket in use, a store that cannot be opened).

    Once ``stop`` is set, the tasks have ``stop_grace_s`` (None: as long as they take) to end
    after their cancellation; a task that ignores it (a call stuck in a driver's thread) is
    logged, the cells are made safe and the store closed all the same, and
    :class:`StopTimedOut` is raised: the caller must then end the process."""
    from .jobs import JobManager
    from .station import open_station
    from .store import Store

    notifier = notifier or Notifier()
    hooks = hooks or DaemonHooks()
    with StoreLock(config.data_folder):
        notifier.status("opening the store")
        store = Store.open(store_path(config))
        try:
            notifier.status("opening the instruments")
            resume = await asyncio.to_thread(running_channels, store)
            async with open_station(config, timer=hooks.timer, resume=resume) as station:
                for name, reason in station.unavailable.items():
                    log.error("channel %s is out of service: %s", name, reason,
                              extra=fields("channel-unavailable", channel=name))
                manager = JobManager(station, store)
                try:
                    resumed = await manager.recover()
                    if resumed:
                        log.info("jobs %s continue from their checkpoints",
                                 ", ".join(map(str, resumed)),
                                 extra=fields("jobs-recovered", jobs=resumed))
                    await _serve(config, station, manager, store, socket, stop, notifier,
                                 hooks, stop_grace_s)
                finally:
                    manager.close()
        finally:
            notifier.status("closing the store")
            await asyncio.to_thread(store.close)
            log.info("store closed", extra=fields("store-closed", path=str(store.path)))


def running_channels(store: Store) -> frozenset[str]:
    """The channels whose job was running when the daemon stopped: opened without a reset,
    so recovery can read what their potentiostats did meanwhile (docs/jobs.md, Recovery)."""
    from .store_schema import JobState

    reader = store.reader()
    try:
        return frozenset(record.channel for record in reader.unfinished_jobs()
                         if record.state is JobState.RUNNING)
    finally:
        reader.close()


async def _serve(config: StationConfig, station: Station, manager: JobManager, store: Store,
                 socket: Path, stop: asyncio.Event, notifier: Notifier,
                 hooks: DaemonHooks, stop_grace_s: float | None) -> None:
    stuck: list[str] = []
    async with ControlServer(manager, socket) as server:
        runner = asyncio.create_task(
            _run_tasks(config, station, manager, store, socket, stop, server, notifier, hooks),
            name="daemon.tasks")
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopping, runner], return_when=asyncio.FIRST_COMPLETED)
            if not runner.done():
                await asyncio.wait([runner], timeout=stop_grace_s)
            if runner.done():
                runner.result()  # what made it end, if it failed
            else:
                stuck = sorted(task.get_name() for task in asyncio.all_tasks()
                               if not task.done() and not task.get_name().startswith("Task-"))
                log.error("the daemon's tasks did not stop within %g s (still running: %s); "
                          "making the cells safe and closing the store anyway", stop_grace_s,
                          ", ".join(stuck[:12]) or "?", extra=fields("stop-timed-out"))
        except asyncio.CancelledError:
            runner.cancel()
            raise
        finally:
            stopping.cancel()
    await station.safe_all()
    await asyncio.to_thread(store.flush)
    if stuck:
        raise StopTimedOut(f"the daemon's tasks did not stop within {stop_grace_s:g} s")


async def _run_tasks(config: StationConfig, station: Station, manager: JobManager,
                     store: Store, socket: Path, stop: asyncio.Event, server: ControlServer,
                     notifier: Notifier, hooks: DaemonHooks) -> None:
    """The daemon's tasks in one group, until ``stop`` is set (then each is cancelled) or
    the job workers or the station's pollers end (they end only by failing)."""
    tasks: list[asyncio.Task[Any]] = []
    async with asyncio.TaskGroup() as group:
        tasks.append(group.create_task(manager.run(), name="jobs"))
        tasks.append(group.create_task(station.run(), name="station"))
        for sink in configured_sinks(config, store, manager, station):
            tasks.append(group.create_task(run_sink(sink), name=f"sink.{sink.name}"))
        tasks.append(group.create_task(report_health(notifier, manager), name="health"))
        for extra in hooks.extra_tasks:
            tasks.append(group.create_task(extra(), name="extra"))
        notifier.ready(await status_line(manager))
        log.info("station %s serving on %s (cellrig %s, %d channels)", config.name,
                 socket, __version__, len(station.channels),
                 extra=fields("daemon-ready", station=config.name))
        if hooks.started is not None:
            hooks.started(manager, socket)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([stopping, *tasks[:2]], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        log.info("stopping: no more requests; running jobs are left to resume",
                 extra=fields("daemon-stopping"))
        notifier.stopping("stopping: making every cell safe")
        server.stop_accepting()
        for task in tasks:
            task.cancel()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (a second one is ignored while stopping)."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        def handler(number: int = number) -> None:
            if not stop.is_set():
                log.info("%s received", signal.Signals(number).name,
                         extra=fields("signal", signal=signal.Signals(number).name))
            stop.set()

        loop.add_signal_handler(number, handler)


def main(config_path: str, *, socket_override: str | None = None,
         log_format: str = "text", verbose: bool = False) -> int:
    """``cellrig daemon``: 0 after a clean stop, 1 when the station failed, 2 for a
    configuration that is not valid (printed with file, line and column)."""
    import sys

    from cellrig.errors import ConfigError

    from .service_log import LogFormat, setup_logging
    from .station_config import load_station

    setup_logging(LogFormat(log_format), logging.DEBUG if verbose else logging.INFO)
    try:
        config = load_station(config_path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        print(f"{config_path}: the station configuration is not valid; the daemon did not "
              "start", file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.warning("%s", warning.render(), extra=fields("config-warning"))
    return asyncio.run(_main(config, socket_path(config, socket_override)))


async def _main(config: StationConfig, socket: Path) -> int:
    stop = asyncio.Event()
    install_stop_signals(stop)
    notifier = Notifier()
    log.info("cellrig %s starting station %s (data folder %s)", __version__, config.name,
             config.data_folder, extra=fields("daemon-start", station=config.name))
    try:
        await run_daemon(config, socket=socket, stop=stop, notifier=notifier,
                         stop_grace_s=STOP_GRACE_S)
    except StopTimedOut as exc:
        # the tasks that ignored their cancellation would keep the interpreter alive: the
        # cells are safe and the store is closed, so end here
        log.error("exiting: %s", exc, extra=fields("daemon-failed"))
        notifier.stopping(f"failed: {exc}")
        logging.shutdown()
        os._exit(1)
    except CellrigError as exc:
        log.error("the daemon stopped: %s", exc, extra=fields("daemon-failed"))
        notifier.stopping(f"failed: {exc}")
        return 1
    except BaseExceptionGroup as group:
        failures = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
        for failure in failures:
            if isinstance(failure, CellrigError):
                log.error("the daemon stopped: %s", failure, extra=fields("daemon-failed"))
            else:
                log.error("the daemon stopped: %r", failure, exc_info=failure,
                          extra=fields("daemon-failed"))
        notifier.stopping("failed")
        return 1
    log.info("station %s stopped cleanly", config.name, extra=fields("daemon-stopped"))
    return 0

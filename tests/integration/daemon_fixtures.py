"""A station daemon for the control tests: a station.toml of ``driver = "model"`` channels
(the whole bench in the daemon, on one clock ``time_scale`` times faster than real time),
run in-process with :func:`~cellrig.daemon.service.run_daemon` or as a ``cellrig daemon``
subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from cellrig.daemon.control_api import StationControl
from cellrig.daemon.control_client import ControlClient
from cellrig.daemon.service import DaemonHooks, run_daemon
from cellrig.daemon.station_config import load_station

#: A protocol that lasts minutes of bench time per cycle: long enough to pause and stop.
CYCLING = """cellrig: 1
name: short-cycling
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V]}
record: {every: 60 s}
steps:
  - Charge at 0.5C until 4.2 V
  - repeat: 50
    steps:
      - Discharge at 0.5C until 3.0 V
      - Charge at 0.5C until 4.2 V
"""
#: A protocol that ends in about 2 s at a bench speed of 100.
SHORT = """cellrig: 1
name: short-rest
cell: {capacity: 600 mAh}
record: {every: 10 s}
steps:
  - Rest for 2 minutes
  - Charge at 0.2C for 2 minutes
"""
CELL_YAML = "id: cell-7\ncapacity: 600 mAh\nmass: 4.1 g\nnotes: pressed at 300 MPa\n"


def model_station_toml(data_folder: Path, *, channels: int = 2,
                       time_scale: float = 1000.0) -> str:
    """A station of ``channels`` model channels (A1, A2, ...) sharing one model chamber,
    each in its own pneumatic model jig."""
    lines = ['[station]', 'name = "model-test"', f'data_folder = "{data_folder}"', '',
             '[instruments.chamber]', 'driver = "model"',
             f'options = {{ time_scale = {time_scale:g} }}', '']
    for number in range(1, channels + 1):
        name = f"A{number}"
        lines += [f'[instruments.smu-{name}]', 'driver = "model"',
                  f'options = {{ time_scale = {time_scale:g}, cell = "paper-pouch-0.6Ah" }}',
                  f'[instruments.jig-{name}]', 'driver = "model"', '',
                  f'[channels.{name}]', f'potentiostat = "smu-{name}"', 'chamber = "chamber"',
                  f'jig = {{ kind = "pneumatic", regulator = "jig-{name}", gauge = "jig-{name}", '
                  'cell_area = "93.28 cm^2", piston_area = "0.1 m^2", max_force = "100 kN" }',
                  'limits = { voltage = ["-0.2 V", "4.4 V"], current = "0.8 A" }', '']
    return "\n".join(lines)


@contextlib.contextmanager
def short_folder() -> Iterator[Path]:
    """A new folder with a short path (a Unix socket path holds at most 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="crg"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_station(folder: Path, *, channels: int = 2, time_scale: float = 1000.0) -> Path:
    """station.toml for a model station with its data in ``folder/data``."""
    path = folder / "station.toml"
    path.write_text(model_station_toml(folder / "data", channels=channels,
                                       time_scale=time_scale), encoding="utf-8")
    return path


@dataclass
class InProcessDaemon:
    """A daemon running as a task of the test's event loop."""

    control: StationControl
    socket: Path
    stop: asyncio.Event
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def daemon_in_process(config_path: Path, *, socket: Path | None = None,
                            hooks: DaemonHooks | None = None) -> AsyncIterator[InProcessDaemon]:
    """``run_daemon`` on ``config_path`` until the block ends (then stopped as SIGTERM
    would); yields once the control socket serves."""
    config = load_station(config_path)
    socket = socket or config.data_folder / "cellrig.sock"
    stop = asyncio.Event()
    started: asyncio.Future[StationControl] = asyncio.get_running_loop().create_future()
    hooks = hooks or DaemonHooks()
    hooks.started = lambda control, _path: started.set_result(control)
    task = asyncio.create_task(run_daemon(config, socket=socket, stop=stop, hooks=hooks))
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait([started, task], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what stopped it
    try:
        yield InProcessDaemon(started.result(), socket, stop, task)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task


async def wait_for_state(client: ControlClient, job_id: int, states: set[str],
                         timeout_s: float = 30.0) -> str:
    """The job's state once it is one of ``states``."""
    async with asyncio.timeout(timeout_s):
        while True:
            state = (await client.job(job_id)).state
            if state in states:
                return state
            await asyncio.sleep(0.05)


def cellrig_command() -> list[str]:
    """The installed ``cellrig`` script beside this interpreter (``python -m`` without it)."""
    script = Path(sys.executable).parent / "cellrig"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "cellrig.daemon.cli"]


def cellrig(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """``cellrig ARGS`` in a subprocess; fails the test on a non-zero exit unless ``check``
    is false."""
    result = subprocess.run([*cellrig_command(), *args],
                            capture_output=True, text=True, timeout=timeout_s,
                            env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"cellrig {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class DaemonProcess:
    """``cellrig daemon`` as a subprocess, its stderr (the log) in a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.config = config
        self.log = log
        self.socket = load_station(config).data_folder / "cellrig.sock"
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            [*cellrig_command(), "daemon", "--config", str(config), *options],
            stdout=subprocess.DEVNULL, stderr=self._log_file,
            env={**os.environ, **(env or {})})

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the log says the daemon serves (fails if it exits first)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "event=daemon-ready" in text or '"event": "daemon-ready"' in text:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited {self.process.returncode}:\n"
                                     + self.log.read_text(errors="replace"))
            time.sleep(0.05)
        raise AssertionError("the daemon did not get ready:\n" + self.log.read_text())

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then its exit code."""
        self.process.terminate()
        try:
            return self.process.wait(timeout_s)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        """Make sure it is gone (after a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log_file.close()

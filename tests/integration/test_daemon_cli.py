"""``cellrig daemon`` as a subprocess on a model station, driven by the ``cellrig`` commands in
subprocesses: submit, jobs, status, pause, resume, events, stop; sd_notify from the
environment systemd sets; a second daemon refused; SIGTERM → exit 0 with the job left
resumable; a restart continues it; export with the daemon stopped; bad input without a
traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from daemon_fixtures import (
    CELL_YAML,
    CYCLING,
    SHORT,
    DaemonProcess,
    cellrig,
    cellrig_command,
    short_folder,
    wait_for_state,
    write_station,
)

from cellrig.daemon.cli_format import events_header
from cellrig.daemon.control_client import ControlClient

pytestmark = pytest.mark.integration


def _tail(log: Path, lines: int = 30) -> str:
    """The end of a daemon's log, for a failure's message."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait(socket_path: Path, job_id: int, states: set[str]) -> str:
    async def wait() -> str:
        async with ControlClient(socket_path) as client:
            try:
                return await wait_for_state(client, job_id, states)
            except TimeoutError:
                job = await client.job(job_id)
                raise AssertionError(f"job {job_id} is {job.state} ({job.reason}), "
                                     f"not {states}") from None

    return asyncio.run(wait())


class NotifyListener:
    """The service manager's end of sd_notify: a datagram socket read by a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self._open = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while self._open:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait_for(self, text: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in m for m in list(self.messages)):
            assert time.monotonic() < deadline, f"no {text} in {self.messages[-5:]}"
            time.sleep(0.02)

    def close(self) -> None:
        self._open = False
        self.thread.join(5)
        self.sock.close()


def test_the_station_through_the_cli_across_a_restart() -> None:
    with short_folder() as folder:
        # 50 times real time: the first charge lasts about 80 s, so the restart falls in it
        # (a model station's cells start fresh in a new process; a real cell would not)
        config = write_station(folder, time_scale=50)
        (folder / "cell.yaml").write_text(CELL_YAML)
        (folder / "cycling.yaml").write_text(CYCLING)
        (folder / "short.yaml").write_text(SHORT)
        station = ("--config", str(config))
        notify = NotifyListener(folder / "notify.sock")
        daemon = DaemonProcess(config, folder / "daemon.log",
                               env={"NOTIFY_SOCKET": str(folder / "notify.sock"),
                                    "WATCHDOG_USEC": "400000"})
        try:
            daemon.wait_ready()
            notify.wait_for("READY=1")
            notify.wait_for("WATCHDOG=1")

            second = cellrig("daemon", *station, check=False)
            assert second.returncode == 1
            assert "another cellrig daemon" in second.stderr

            submitted = cellrig("submit", str(folder / "cycling.yaml"), "--channel", "A1",
                                "--cell", str(folder / "cell.yaml"), *station)
            assert submitted.stdout.strip() in (  # the channel's worker may be quicker
                "job 1 on A1: queued (short-cycling, cell cell-7)",
                "job 1 on A1: running (short-cycling, cell cell-7)")
            cellrig("submit", str(folder / "short.yaml"), "--channel", "A2", *station)
            assert _wait(daemon.socket, 1, {"running"}) == "running"
            status = cellrig("status", "--once", *station).stdout
            row = next(line for line in status.splitlines() if line.startswith("A1"))
            assert "running" in row and "Charge at 0.5C" in row
            live = subprocess.Popen([*cellrig_command(), "status", "--interval", "0.2",
                                     *station], stdout=subprocess.PIPE, text=True)
            assert live.stdout is not None
            headings: list[str] = []
            for line in iter(live.stdout.readline, ""):
                headings += [line] if line.startswith("station model-test") else []
                if len(headings) == 3:
                    break
            live.send_signal(signal.SIGINT)  # Ctrl-C ends the live table quietly
            assert live.wait(10) == 0
            live.stdout.close()
            assert cellrig("pause", "1", *station).stdout.startswith("job 1 on A1: paused")
            assert cellrig("resume", "1", *station).stdout.startswith("job 1 on A1: running")
            assert _wait(daemon.socket, 2, {"completed"}) == "completed"
            jobs = cellrig("jobs", *station).stdout.splitlines()
            assert jobs[0].split()[:3] == ["JOB", "CHANNEL", "STATE"]
            assert jobs[1].split()[:3] == ["2", "A2", "completed"]
            assert jobs[2].split()[:3] == ["1", "A1", "running"]
            listed = json.loads(cellrig("jobs", "--state", "completed", "--json",
                                        *station).stdout)
            assert [job["id"] for job in listed] == [2]
            events = cellrig("events", "1", *station).stdout
            assert "job start" in events and "Charge at 0.5C" in events

            assert daemon.terminate() == 0, _tail(folder / "daemon.log")
            notify.wait_for("STOPPING=1")
            assert sum("WATCHDOG=1" in m for m in notify.messages) >= 3
        finally:
            daemon.kill()
            notify.close()
        log = (folder / "daemon.log").read_text()
        assert "event=daemon-stopped" in log and "Traceback" not in log
        assert not daemon.socket.exists()

        restarted = DaemonProcess(config, folder / "daemon2.log",
                                  options=("--log-format", "json"))
        try:
            restarted.wait_ready()
            lines = [json.loads(line) for line in
                     (folder / "daemon2.log").read_text().splitlines()]
            recovered = next(line for line in lines if line["event"] == "jobs-recovered")
            assert recovered["jobs"] == [1] and recovered["level"] == "info"
            assert _wait(restarted.socket, 1, {"running"}) == "running"
            for _ in range(20):  # the job manager may ask to try again while it takes the job
                answer = cellrig("stop", "1", "--reason", "seen enough", *station, check=False)
                if "try again" not in answer.stderr:
                    break
                time.sleep(0.25)
            assert answer.returncode == 0, answer.stderr + (folder / "daemon2.log").read_text()
            stopped = answer.stdout
            assert stopped.strip() == "job 1 on A1: stopped (short-cycling, cell cell-7): " \
                                      "seen enough", _tail(folder / "daemon2.log")
            followed = cellrig("events", "1", "--follow", *station, timeout_s=30).stdout
            at = events_header().index("KIND")
            kinds = [line[at:at + 12].strip() for line in followed.splitlines()[1:]]
            assert "job resume" in kinds and kinds[-1] == "job end", followed
            assert restarted.process.send_signal(signal.SIGINT) is None
            assert restarted.process.wait(30) == 0, _tail(folder / "daemon2.log")
        finally:
            restarted.kill()

        exported = cellrig("export", "1", "--store", str(folder / "data" / "station.db"),
                           "--out", str(folder / "export"), "--plots").stdout.split()
        names = sorted(Path(path).name for path in exported)
        assert any(name.endswith(".bdf.parquet") for name in names)
        assert any(name.endswith(".bdf.csv") for name in names)
        assert any(name.endswith(".cycles.csv") for name in names)
        assert "voltage_current.png" in names
        table = pq.read_table(next(p for p in exported if p.endswith(".bdf.parquet")))
        assert table.num_rows > 5 and "Voltage / V" in table.column_names
        assert "cell-7" in next(p for p in exported if p.endswith(".bdf.csv"))


def test_bad_input_is_reported_without_a_traceback() -> None:
    with short_folder() as folder:
        config = folder / "station.toml"
        config.write_text('[station]\nname = "x"\ndata_folder = "data"\n'
                          '[instruments.smu]\ndriver = "keithly2450"\n')
        broken = cellrig("daemon", "--config", str(config), check=False)
        assert broken.returncode == 2
        assert f"{config}:5:10: error" in broken.stderr
        assert "Traceback" not in broken.stderr

        station = ("--socket", str(folder / "none.sock"))
        for args, text in [
            (("jobs", *station), "no station is listening"),
            (("submit", "no-such-protocol", "--channel", "A1", *station),
             "no library protocol of that name"),
            (("export", "3", "--store", str(folder / "missing.db")), "there is no store"),
        ]:
            result = cellrig(*args, check=False)
            assert result.returncode == 1, result.stderr
            assert text in result.stderr and "Traceback" not in result.stderr
        usage = cellrig("pause", "first", check=False)
        assert usage.returncode == 2 and "a job number" in usage.stderr

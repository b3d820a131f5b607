"""Recovery on the wire: ``cellrig daemon`` runs a job on an emulated Keithley 2450 (real
driver, pyvisa-py), is killed with SIGKILL in the middle of a constant-current step while the
instrument goes on sourcing, and a station opened again for the job's recovery reads the
instrument, accounts the outage and continues the step.

The emulator and its bench cell live in the test (the daemon reaches them over TCP), so the
outage can be measured (a sleep of known length at a known bench speed) and the charge the job
counted checked against what the cell received, which is what an uninterrupted run counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from daemon_fixtures import DaemonProcess, cellrig, short_folder

from cellrig.daemon.job_station import JobSettings
from cellrig.daemon.jobs import JobManager
from cellrig.daemon.service import running_channels
from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station
from cellrig.daemon.store import Store
from cellrig.daemon.store_read import StoreReader
from cellrig.simulators.bench import Bench, BenchCell, BenchClock
from cellrig.simulators.keithley2450_commands import CURRENT
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.integration

SPEED = 300.0
CURRENT_A = 0.3
OUTAGE_S = 1.5
"""real seconds without a daemon: 450 s of bench time, 37.5 mAh at 0.3 A"""
PROTOCOL = """cellrig: 1
name: cc
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V]}
record: {every: 30 s}
steps:
  - Charge at 0.5C for 60 minutes
  - Rest for 2 minutes
"""
SETTINGS = JobSettings(chamber_poll_s=0.05, latched_poll_s=0.05, stop_wait_s=5.0)


def write_station(folder: Path, resource: str) -> Path:
    path = folder / "wire.toml"
    path.write_text(f"""[station]
name = "wire"
data_folder = "{folder / 'data'}"

[instruments.smu]
driver = "keithley2450"
address = "{resource}"
options = {{ model = "2450", time_scale = {SPEED:g} }}

[channels.A1]
potentiostat = "smu"
limits = {{ voltage = ["0 V", "4.4 V"], current = "1 A" }}
""", encoding="utf-8")
    (folder / "cc.yaml").write_text(PROTOCOL, encoding="utf-8")
    return path


def stored_test_time_s(store: Path, job_id: int) -> float:
    with StoreReader(store) as reader:
        times = reader.samples(job_id).columns["Test Time / s"]
    return float(times[-1]) if len(times) else 0.0


async def run_until_killed(config: Path, store: Path, at_test_time_s: float) -> int:
    """Submit the job to ``cellrig daemon`` and kill the daemon with SIGKILL once the job has
    stored a sample past ``at_test_time_s``: nothing switches the instrument off."""
    folder = config.parent
    daemon = DaemonProcess(config, folder / "daemon.log")
    try:
        await asyncio.to_thread(daemon.wait_ready)
        submitted = await asyncio.to_thread(cellrig, "submit", str(folder / "cc.yaml"),
                                            "--channel", "A1", "--config", str(config))
        job_id = int(submitted.stdout.split()[1])
        async with asyncio.timeout(30):
            while await asyncio.to_thread(stored_test_time_s, store, job_id) < at_test_time_s:
                await asyncio.sleep(0.05)
        daemon.process.send_signal(signal.SIGKILL)
    finally:
        await asyncio.to_thread(daemon.kill)
    return job_id


@contextlib.asynccontextmanager
async def managed(station: Station, store: Store) -> AsyncIterator[JobManager]:
    manager = JobManager(station, store, settings=SETTINGS, software_version="9.9.9-test")
    try:
        await manager.recover()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(station.run()), group.create_task(manager.run())]
            try:
                yield manager
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        manager.close()


async def resume(config: Path, store_path: Path, job_id: int) -> None:
    """Open the station as the daemon does after a crash (the running jobs' channels without
    a reset) and run the job to its end."""
    store = Store.open(store_path)
    try:
        resumed = running_channels(store)
        assert resumed == {"A1"}
        async with open_station(load_station(config), resume=resumed) as station, \
                managed(station, store) as manager:
            async with asyncio.timeout(60):
                while (await manager.job(job_id)).state not in ("completed", "failed",
                                                                "aborted"):
                    await asyncio.sleep(0.02)
    finally:
        store.close()


def read_back(path: Path, job_id: int) -> tuple[Any, Any, Any, Any]:
    with StoreReader(path) as reader:
        return (reader.job(job_id), reader.events(job_id), reader.cycles(job_id),
                reader.samples(job_id).columns)


def charge_in_ah(cell: BenchCell) -> float:
    cell.measure()  # brought to now
    return cell.cell.state.charge_in_ah


async def test_an_outage_in_a_cc_step_is_accounted_from_the_instrument() -> None:
    bench = Bench.default(BenchClock(scale=SPEED))
    cell = bench.cells["cell-1"]
    emulator = Keithley2450Emulator(cell)
    with short_folder() as folder:
        async with ScpiServer(emulator) as server:
            config = write_station(folder, server.resource)
            path = folder / "data" / "station.db"
            before_ah = charge_in_ah(cell)
            job_id = await run_until_killed(config, path, 900.0)
            killed = time.monotonic()
            assert emulator.output_on and emulator.levels[CURRENT] == pytest.approx(CURRENT_A)
            await asyncio.sleep(OUTAGE_S)
            await resume(config, path, job_id)
            outage_real_s = time.monotonic() - killed
            received_ah = charge_in_ah(cell) - before_ah
            result = read_back(path, job_id)
    job, events, cycles, samples = result
    assert job.state.value == "completed", job.reason
    notes = [e.event for e in events if e.event.message.startswith("resumed after restart")]
    assert len(notes) == 1
    data = notes[0].data
    assert data["instrument"] == "sourcing the step", notes[0].message
    # the outage in instrument time: at least the sleep, at most everything since the kill
    assert OUTAGE_S * SPEED * 0.95 <= data["outage_s"] <= outage_real_s * SPEED
    assert data["outage_charge_ah"] == pytest.approx(CURRENT_A * data["outage_s"] / 3600,
                                                     rel=1e-9)
    assert data["in_compliance"] is False and data["cutoff_passed"] is None
    # what the cell received is what the job counted (an uninterrupted run counts the same):
    # the step ended by its own clock at 60 minutes, outage included
    counted_ah = cycles[0].charge_capacity_ah
    print(f"outage {data['outage_s']:.1f} s of instrument time ({outage_real_s:.2f} s real, "
          f"{data['instrument_since_last_reading_s']:.1f} s since the last reading), "
          f"{data['outage_charge_ah']:.5f} Ah accounted; counted {counted_ah:.5f} Ah, the cell "
          f"received {received_ah:.5f} Ah")
    assert counted_ah == pytest.approx(received_ah, rel=2e-3)
    assert counted_ah == pytest.approx(CURRENT_A, rel=0.01)  # 60 min at 0.3 A (+ one reading)
    # test time is continuous: no stored interval is longer than the outage plus a reading's
    times = samples["Test Time / s"]
    steps = samples["Step Time / s"]
    assert float(max(times[1:] - times[:-1])) <= data["outage_s"] + 31.0
    charge_steps = samples["Step Count / 1"] == 1
    assert float(steps[charge_steps][-1]) == pytest.approx(3600.0, abs=31.0)
    assert float(times[charge_steps][-1]) == pytest.approx(float(steps[charge_steps][-1]),
                                                           abs=1e-6)


async def test_an_instrument_found_off_is_made_safe_and_only_test_time_moves_on() -> None:
    bench = Bench.default(BenchClock(scale=SPEED))
    cell = bench.cells["cell-1"]
    emulator = Keithley2450Emulator(cell)
    with short_folder() as folder:
        async with ScpiServer(emulator) as server:
            config = write_station(folder, server.resource)
            path = folder / "data" / "station.db"
            before_ah = charge_in_ah(cell)
            job_id = await run_until_killed(config, path, 900.0)
            await emulator.execute(":OUTP OFF")  # someone switched it off meanwhile
            await asyncio.sleep(OUTAGE_S)
            await resume(config, path, job_id)
            received_ah = charge_in_ah(cell) - before_ah
            job, events, cycles, samples = read_back(path, job_id)
    notes = [e.event for e in events if e.event.message.startswith("resumed after restart")]
    assert job.state.value == "completed", job.reason
    assert len(notes) == 1 and "outage_charge_ah" not in notes[0].data
    data = notes[0].data
    assert data["instrument"] == "off", notes[0].message
    assert data["outage_s"] >= OUTAGE_S * SPEED * 0.95
    # what flowed from the last stored sample until it was switched off (readings every 30 s,
    # then the kill and the switch: under a minute of bench time) is lost; nothing after
    lost_ah = received_ah - cycles[0].charge_capacity_ah
    assert 0.0 <= lost_ah <= CURRENT_A * 60.0 / 3600.0
    charge_steps = samples["Step Count / 1"] == 1
    step_s = float(samples["Step Time / s"][charge_steps][-1])
    assert step_s == pytest.approx(3600.0, abs=31.0)
    # but the test's clock did not stop: the outage is in the test time, not the step time
    test_s = float(samples["Test Time / s"][charge_steps][-1])
    assert test_s - step_s == pytest.approx(data["outage_s"], abs=31.0)


async def test_a_recovered_job_stopped_before_it_runs_stops_its_instrument_too() -> None:
    bench = Bench.default(BenchClock(scale=SPEED))
    emulator = Keithley2450Emulator(bench.cells["cell-1"])
    with short_folder() as folder:
        async with ScpiServer(emulator) as server:
            config = write_station(folder, server.resource)
            path = folder / "data" / "station.db"
            job_id = await run_until_killed(config, path, 300.0)
            store = Store.open(path)
            try:
                async with open_station(load_station(config),
                                        resume=running_channels(store)) as station:
                    manager = JobManager(station, store, settings=SETTINGS)
                    try:
                        await manager.recover()  # no workers: the job waits in its queue
                        assert emulator.output_on  # left sourcing the step
                        view = await manager.stop(job_id, "not after all")
                        assert not emulator.output_on
                    finally:
                        manager.close()
            finally:
                store.close()
    assert (view.state, view.reason) == ("stopped", "not after all")

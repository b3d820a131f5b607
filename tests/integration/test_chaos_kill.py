"""Chaos: ``cellrig daemon`` killed with SIGKILL at random moments during a job whose
instruments live in another process (``cellrig sim serve``), and started again each time.

After at least ten kills the job must complete, every restart must have picked it up again
(one ``resumed after restart`` event each), and its record must be whole: sample ids rising,
no sample stored twice, steps and cycles in order, every cycle summarised once.

What the record cannot hold is what the cell did while no daemon was running: the emulated
Keithley keeps sourcing until the restarted daemon opens it again (as a real one does), and
nobody reads it meanwhile, not even to stop at a cut-off (so a later step may have more to
do). With ten restarts of one to three seconds in a run of well under a minute, that is a
large share of the bench time, so the cycle table is compared with an uninterrupted run of the
same protocol on the same cell model only through bounds: every cycle's capacities within the
most the outages can have passed (their length × the bench speed × the step current) and 5 %,
and the charge counted plus that at least 95 % of what the uninterrupted run counted. These
bounds are loose; ``test_job_recovery.py`` checks the exact equality where the instrument
does not move on without the daemon.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from daemon_fixtures import DaemonProcess, cellrig, short_folder

from cellrig.daemon.store_read import StoreReader
from cellrig.protocols.clock import VirtualClock
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.simulators.bench import Bench
from cellrig.simulators.model_rig import ModelRig

pytestmark = pytest.mark.integration

SPEED = 300.0
KILLS = 10
CURRENT_A = 0.3
PROTOCOL = """cellrig: 1
name: chaos
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V]}
record: {every: 30 s}
steps:
  - Charge at 0.5C until 4.2 V
  - Rest for 5 minutes
  - Discharge at 0.5C until 3.0 V
  - Rest for 5 minutes
  - Charge at 0.5C until 4.2 V
"""


@contextmanager
def sim_serve(folder: Path) -> Iterator[Path]:
    """``cellrig sim serve`` for one cell in its own process; yields its station.toml."""
    config = folder / "sim.toml"
    command = [sys.executable, "-m", "cellrig.daemon.cli", "sim", "serve", "--channels", "1",
               "--speed", f"{SPEED:g}", "--write-config", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=folder, env={**os.environ})
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or line.startswith("serving"):
                break
        assert config.is_file(), "cellrig sim serve did not write its configuration"
        yield config
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def start(config: Path, folder: Path, number: int) -> DaemonProcess:
    daemon = DaemonProcess(config, folder / f"daemon-{number}.log")
    daemon.wait_ready()
    return daemon


def job_state(store: Path, job_id: int) -> str:
    with StoreReader(store) as reader:
        return reader.job(job_id).state.value


def uninterrupted_cycles() -> list[tuple[float, float]]:
    """(charge, discharge) per cycle of the protocol on the same cell, never interrupted."""
    program = resolve(load_protocol_text(PROTOCOL, "chaos.yaml"))
    sink = ListSink(keep_checkpoints=False)
    asyncio.run(Engine(program, ModelRig(Bench.default().cells["cell-1"]), sink,
                       VirtualClock()).run())
    return [(c.charge_capacity_ah, c.discharge_capacity_ah) for c in sink.cycles]


def test_a_job_survives_ten_kills_of_its_daemon() -> None:
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    with short_folder() as folder, sim_serve(folder) as config:
        protocol = folder / "chaos.yaml"
        protocol.write_text(PROTOCOL, encoding="utf-8")
        store = folder / "data" / "station.db"
        daemon = start(config, folder, 0)
        try:
            submitted = cellrig("submit", str(protocol), "--channel", "A1",
                                "--config", str(config))
            job_id = int(submitted.stdout.split()[1])
            kills = 0
            while kills < KILLS:
                time.sleep(rng.uniform(0.3, 2.0))
                assert job_state(store, job_id) == "running", "the job ended before the kills"
                daemon.process.send_signal(signal.SIGKILL)
                daemon.kill()
                kills += 1
                daemon = start(config, folder, kills)
            deadline = time.monotonic() + 60.0
            while job_state(store, job_id) == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert daemon.terminate() == 0
        finally:
            daemon.kill()
        with StoreReader(store) as reader:
            job = reader.job(job_id)
            events = reader.events(job_id)
            samples = reader.samples(job_id)
            cycles = reader.cycles(job_id)
    assert job.state.value == "completed", job.reason
    resumes = [e.event for e in events if e.event.message.startswith("resumed after restart")]
    assert len(resumes) == KILLS
    gaps_s = [float(e.data["gap_s"]) for e in resumes if e.data.get("gap_s") is not None]
    # the record is whole: nothing twice, nothing out of order
    assert np.all(np.diff(samples.ids) > 0)
    columns = samples.columns
    assert np.all(np.diff(columns["Test Time / s"]) >= 0)
    assert np.all(np.diff(columns["Step Count / 1"]) >= 0)
    # a resumed step's first reading may share its step time with the last one stored before
    # the kill (the outage is not step time), but it was taken later: no reading twice
    keys = set(zip(columns["Step Count / 1"].tolist(), columns["Step Time / s"].tolist(),
                   columns["Unix Time / s"].tolist(), strict=True))
    assert len(keys) == len(samples), "a sample stored twice"
    assert [c.cycle for c in cycles] == [1, 2]
    assert [e.event.kind.value for e in events].count("job end") == 1
    # the cycle table against the uninterrupted run, through the outages' bounds
    reference = uninterrupted_cycles()
    assert len(reference) == len(cycles)
    outage_ah = sum(gaps_s) * SPEED * CURRENT_A / 3600.0
    for got, (charge_ah, discharge_ah) in zip(cycles, reference, strict=True):
        assert abs(got.charge_capacity_ah - charge_ah) <= outage_ah + 0.05 * charge_ah
        assert abs(got.discharge_capacity_ah - discharge_ah) <= outage_ah + 0.05 * discharge_ah
    counted_ah = sum(c.charge_capacity_ah + c.discharge_capacity_ah for c in cycles)
    expected_ah = sum(charge + discharge for charge, discharge in reference)
    print(f"counted {counted_ah:.4f} Ah, uninterrupted {expected_ah:.4f} Ah, outages at most "
          f"{outage_ah:.4f} Ah over {sum(gaps_s):.1f} s")
    assert counted_ah + outage_ah >= 0.95 * expected_ah

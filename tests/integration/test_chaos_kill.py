"""Chaos: ``cellrig daemon`` killed with SIGKILL at random moments during a job whose
instruments live in another process (``cellrig sim serve``), and started again each time.

After at least ten kills the job must complete, every restart must have picked it up again
(one ``resumed after restart`` event each), and its record must be whole: sample ids rising,
no sample stored twice, steps and cycles in order, every cycle summarised once.

The emulated Keithley keeps sourcing while no daemon runs, as a real one does: each restart
opens it without a reset, finds it sourcing the stored step and accounts the outage (its length
in bench time, its charge). With ten restarts of one to three seconds in a run of well under a
minute, the outages are a large share of the bench time (about 7,000 of 10,000 s), so the
cycle table says whether they were accounted: each cycle's charge and discharge capacity must
be within ``TOLERANCE`` (2 %) of an uninterrupted run of the same protocol on the same bench
through the same drivers. One thing no accounting undoes: an outage in which the instrument
went past a step's cut-off (nobody read it to stop there; it held the cut-off voltage) left the
cell where the uninterrupted run never took it, and such an outage's charge is allowed on top,
for its cycle and the next. ``test_job_recovery.py`` checks the exact equality where the
instrument does not move on without the daemon.
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

from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store_read import StoreReader
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.simulators.sim_station import serve_sim_station

pytestmark = pytest.mark.integration

SPEED = 300.0
#: The uninterrupted run's bench speed (in this process, so faster: ~10 s).
UNINTERRUPTED_SPEED = 1000.0
#: Each cycle's capacities against the uninterrupted run. Where the two runs differ when no
#: outage passed a cut-off: where a step ends (the first reading at or past its cut-off, one
#: every 30 s of bench time; at the cut-off the Keithley holds the voltage, so each run may
#: pass up to 30 s × 0.3 A = 2.5 mAh more: 1.1 % of the 0.235 Ah of cycle 2's charge, the
#: smallest figure), and each outage's length, measured on the host from the last stored
#: sample to the reading after the restart (a few milliseconds of latency, about a second of
#: bench time at this speed: under 0.1 mAh each, ten of them 0.3 %). 1.4 % at most, so 2 %;
#: the uninterrupted run alone varied by 0.8 % between runs. Seen: 0.05-0.9 %.
TOLERANCE = 0.02
#: Bench seconds the host's and the instrument's measures of an outage may disagree by.
CLOCK_SLACK_S = 5.0
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


async def wire_cycles(speed: float) -> list[tuple[float, float]]:
    """(charge, discharge) per cycle of the protocol run without interruption on the same
    bench (``cellrig sim serve``'s, served here) through the same drivers."""
    program = resolve(load_protocol_text(PROTOCOL, "chaos.yaml"))
    async with serve_sim_station(1, speed) as sim:
        config = load_station_text(sim.station_toml(), "sim.toml")
        async with open_station(config) as station:
            channel = station.channels["A1"]
            sink = ListSink(keep_checkpoints=False)
            channel.supervisor.begin_job(program.limits)
            try:
                await Engine(program, channel.rig, sink, station.clock).run()
            finally:
                channel.supervisor.end_job()
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
    # every restart found the instrument sourcing the stored step (the store gets a step's
    # start before the instrument gets its command) and accounted the outage; the host's
    # measure of it agrees with the instrument's own clock (which counts from the last reading
    # taken, not the last one stored: a little less)
    notes = resumes
    for note in notes:
        assert note.data["instrument"] == "sourcing the step", note.message
        since_s = note.data["instrument_since_last_reading_s"]
        assert since_s is None or note.data["outage_s"] >= since_s - CLOCK_SLACK_S, note.data
    # the cycle table against an uninterrupted run on the same bench and drivers
    reference = asyncio.run(wire_cycles(UNINTERRUPTED_SPEED))
    assert len(reference) == len(cycles)
    rows = []
    for got, (charge_ah, discharge_ah) in zip(cycles, reference, strict=True):
        # an outage that went past its step's cut-off left the cell where an uninterrupted
        # run never takes it (held at 4.2 V or 3.0 V meanwhile): real charge, counted, but
        # not the reference's; it moves this cycle and the next, by at most what it passed
        beyond_ah = sum(abs(float(note.data["outage_charge_ah"])) for note in notes
                        if note.data.get("cutoff_passed") and got.cycle - 1 <= note.cycle
                        <= got.cycle)
        for name, value, want in (("charge", got.charge_capacity_ah, charge_ah),
                                  ("discharge", got.discharge_capacity_ah, discharge_ah)):
            rows.append(f"cycle {got.cycle} {name}: {value:.5f} Ah, uninterrupted {want:.5f} Ah "
                        f"({value - want:+.5f}; allowed {TOLERANCE * want + beyond_ah:.5f})")
            assert abs(value - want) <= TOLERANCE * want + beyond_ah, rows[-1]
    outage_s = sum(float(note.data["outage_s"]) for note in notes)
    accounted_ah = sum(abs(float(note.data["outage_charge_ah"])) for note in notes)
    print(f"{len(notes)} outages, {outage_s:.0f} s of bench time, {accounted_ah:.4f} Ah "
          "accounted;", "; ".join(rows))

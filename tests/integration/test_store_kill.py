"""The station store survives ``kill -9``: a process writes samples and checkpoints through a
job's sink and is killed with SIGKILL at a random moment, several times over; after every
kill the reopened store has every sample that was committed, the sample ids run 1, 2, 3, …
without a gap or a repeat, the running job is found, and the stored checkpoint matches the
samples committed before it.

Also: what is handed to a sink is committed, and visible to another connection, within a
second without anyone asking for it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cellrig.daemon.store import JobState, Provenance, Store, StoreReader
from cellrig.protocols.engine.output import COLUMNS, SampleBlock

pytestmark = pytest.mark.integration

KILLS = 4

#: The writing process: continues the job's samples from what is committed (test time = the
#: sample's number in the job), a checkpoint every few blocks saying how many samples were
#: sent before it, and now and then a flush, after which it reports what is committed.
WRITER = r"""
import random, sys, time
import numpy as np
from cellrig.daemon.store import JobState, Provenance, Store
from cellrig.protocols.engine.output import COLUMNS, SampleBlock

path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
store = Store.open(path)
reader = store.reader()
jobs = reader.jobs([JobState.RUNNING])
if jobs:
    job_id = jobs[0].id
else:
    job_id = store.add_job("A1", Provenance("kill", "text", "{}", {}, {}, "0" * 64))
    store.set_state(job_id, JobState.RUNNING)
sent = reader.sample_count(job_id)
sink = store.sink(job_id)
print("START", job_id, sent, flush=True)
blocks = 0
while True:
    count = rng.choice((1, 1, 1, 7, 50, 200))
    times = np.arange(sent, sent + count, dtype=np.float64)
    columns = {}
    for name in COLUMNS:
        if name in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
            columns[name] = np.full(count, 1 + sent // 1000, dtype=np.int64)
        elif name == "Step Type":
            columns[name] = np.array(["CC_CHG"] * count, dtype=object)
        else:
            columns[name] = times * 1e-3 + 3.5
    columns["Test Time / s"] = times
    sink.samples(SampleBlock(columns))
    sent += count
    blocks += 1
    if blocks % 5 == 0:
        sink.checkpoint({"samples_sent": sent, "last_test_time_s": sent - 1.0})
    if blocks % 40 == 0:
        store.flush()
        print("COMMITTED", sent, flush=True)
    time.sleep(rng.uniform(0.0, 0.004))
"""


def run_and_kill(script: Path, store: Path, seed: int) -> tuple[int, int]:
    """Start the writer, let it commit a few times, kill it at a random moment; returns
    (samples it had committed when it started, the last count it reported committed)."""
    lines: list[str] = []
    reported = threading.Event()
    with subprocess.Popen([sys.executable, str(script), str(store), str(seed)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if sum(line.startswith("COMMITTED") for line in lines) >= 2:
                    reported.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not reported.wait(60):
                process.kill()
                assert process.stderr is not None
                pytest.fail(f"the writer did not commit: {lines} {process.stderr.read()}")
            time.sleep(random.Random(seed).uniform(0.0, 0.8))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(10)
    assert process.returncode == -signal.SIGKILL
    start = next(line for line in lines if line.startswith("START"))
    committed = [int(line.split()[1]) for line in lines if line.startswith("COMMITTED")]
    return int(start.split()[2]), committed[-1]


def test_kill_9_at_random_moments_loses_nothing_committed(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    path = tmp_path / "station.db"
    base_seed = random.randrange(1_000_000)
    before = 0
    for kill in range(KILLS):
        seed = base_seed + kill
        started_with, committed = run_and_kill(script, path, seed)
        context = f"kill {kill + 1}, seed {seed}"
        assert started_with == before, context
        with StoreReader(path) as reader:
            (job,) = reader.unfinished_jobs()
            assert job.state is JobState.RUNNING, context
            samples = reader.samples(job.id, columns=["Test Time / s"])
            count = len(samples)
            assert count >= committed, context
            assert samples.ids.tolist() == list(range(1, count + 1)), context
            np.testing.assert_array_equal(samples.columns["Test Time / s"],
                                          np.arange(count, dtype=np.float64), err_msg=context)
            checkpoint = reader.checkpoint(job.id)
            assert checkpoint is not None, context
            assert checkpoint.samples == checkpoint.state["samples_sent"], context
            assert checkpoint.last_sample_id == checkpoint.samples <= count, context
            last = samples.columns["Test Time / s"][checkpoint.last_sample_id - 1]
            assert last == checkpoint.state["last_test_time_s"], context
            (check,) = reader.connection.execute("PRAGMA integrity_check").fetchone()
            assert check == "ok", context
        assert count > before, context
        before = count


def test_samples_are_committed_within_a_second_unasked(tmp_path: Path) -> None:
    path = tmp_path / "station.db"
    with Store.open(path) as store:
        job_id = store.add_job("A1", Provenance("t", "text", "{}", {}, {}, "0" * 64))
        sink = store.sink(job_id)
        with StoreReader(path) as reader:
            for round_number in range(3):
                columns = {name: np.zeros(3, dtype=np.int64 if "Count" in name or
                                          name == "Step ID" else np.float64)
                           for name in COLUMNS if name != "Step Type"}
                columns["Step Type"] = np.array(["REST"] * 3, dtype=object)
                sink.samples(SampleBlock(columns))
                handed_over = time.monotonic()
                while reader.sample_count(job_id) < 3 * (round_number + 1):
                    assert time.monotonic() - handed_over < 1.0, "not committed within 1 s"
                    time.sleep(0.01)
        assert store.stats.max_latency_s < 1.0

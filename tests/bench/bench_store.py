"""Benchmark: the station store (prints figures; docs/store.md quotes them).

Run: ``python tests/bench/bench_store.py [--samples N] [--channels 64,512] [--seconds S]``.

1. Throughput through a job's sink, blocks of 1 and of 1,000 samples: samples per second
   until committed, and what one sink call costs the caller (the event loop).
2. Bytes per stored sample on disk (the file after a WAL checkpoint, with the index).
3. Memory while one job writes ``--samples`` samples in blocks of 1,000 (peak RSS growth
   and the writer's largest holding), and the longest hand-over-to-commit latency.
4. One station database against one database per job: C channels each storing one sample a
   second (one commit a second, as the daemon does), for ``--seconds`` simulated seconds:
   writer CPU per second of data, bytes written to disk per sample, and reading one job's
   samples back (what ``cellrig export`` does). This is the measurement behind the layout.
5. Commit durations while 512 channels write: how long the event loop would stall if the
   commits ran on it instead of on the writer thread.

Samples look like a real cycling record: a random voltage walk, test and step totals with
full-precision fractions, temperature and pressure with noise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from cellrig.daemon.store import JobSink, Provenance, Store, WriterSettings
from cellrig.protocols.engine.output import COLUMNS, SampleBlock

PROVENANCE = Provenance("bench", "cellrig: 1\n", "{}", {"id": "bench-cell"}, {}, "0" * 64)
_INTEGER_COLUMNS = ("Cycle Count / 1", "Step Count / 1", "Step ID")


def realistic_block(start: int, count: int, rng: np.random.Generator) -> SampleBlock:
    """``count`` samples from sample number ``start`` on, one a second, cycling every hour."""
    index = np.arange(start, start + count, dtype=np.float64)
    phase = (index // 3600).astype(np.int64)
    charging = phase % 2 == 0
    current = np.where(charging, 0.0634, -0.0634) + rng.normal(0, 1e-5, count)
    columns: dict[str, np.ndarray] = {
        "Test Time / s": index,
        "Unix Time / s": 1.77e9 + index + rng.uniform(0, 1e-3, count),
        "Voltage / V": 3.7 + 0.4 * np.sin(index / 3600 * np.pi) + rng.normal(0, 1e-4, count),
        "Current / A": current,
        "Step Time / s": index % 3600,
        "Ambient Temperature / degC": 60.0 + rng.normal(0, 0.05, count),
        "Applied Pressure / Pa": 2.0e6 + rng.normal(0, 500.0, count),
    }
    for number, name in enumerate(_INTEGER_COLUMNS):
        columns[name] = (phase // 2 + 1) if number == 0 else (phase + 1 if number == 1
                                                              else phase % 4 + 1)
    kinds = np.empty(count, dtype=object)
    kinds[:] = np.where(charging, "CC_CHG", "CC_DCH")
    columns["Step Type"] = kinds
    for name in COLUMNS:
        if name not in columns:
            columns[name] = index * 1.761e-5 + rng.uniform(0, 1e-6, count)
    return SampleBlock({name: columns[name] for name in COLUMNS})


def wal_checkpointed_size(path: Path) -> int:
    """The database file's size after moving the WAL into it."""
    import sqlite3

    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


def rss_bytes() -> int:
    """This process's resident memory now."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) * 1024 if match else 0


def disk_written() -> int:
    """Bytes this process has caused to be written to storage so far."""
    text = Path("/proc/self/io").read_text()
    match = re.search(r"write_bytes: (\d+)", text)
    return int(match.group(1)) if match else 0


def throughput(folder: Path, block_size: int, total: int) -> None:
    rng = np.random.default_rng(1)
    blocks = [realistic_block(n, block_size, rng) for n in range(0, total, block_size)]
    path = folder / f"throughput-{block_size}.db"
    with Store.open(path) as store:
        sink = store.sink(store.add_job("A1", PROVENANCE))
        started = time.perf_counter()
        calls: list[float] = []
        for block in blocks:
            before = time.perf_counter()
            sink.samples(block)
            calls.append(time.perf_counter() - before)
        handed = time.perf_counter() - started
        store.flush()
        elapsed = time.perf_counter() - started
        stats = store.stats
    size = wal_checkpointed_size(path)
    print(f"  blocks of {block_size:>5}: {total / elapsed:>10,.0f} samples/s committed "
          f"({total / handed:,.0f}/s handed over); a sink call costs "
          f"{statistics.median(calls) * 1e6:.1f} µs median, {max(calls) * 1e3:.1f} ms max; "
          f"{stats.commits} commits, {stats.backpressure_waits} back-pressure waits; "
          f"{size / total:.0f} bytes/sample on disk")


def memory(folder: Path, total: int) -> None:
    rng = np.random.default_rng(2)
    template = [realistic_block(n, 1000, rng) for n in range(0, 100_000, 1000)]
    path = folder / "memory.db"
    rss_before = rss_bytes()
    rss_peak = rss_before
    held = 0
    with Store.open(path) as store:
        sink = store.sink(store.add_job("A1", PROVENANCE))
        started = time.perf_counter()
        for number in range(total // 1000):
            sink.samples(template[number % len(template)])
            held = max(held, store.held_bytes)
            if number % 100 == 0:
                sink.checkpoint({"samples": number * 1000})
                rss_peak = max(rss_peak, rss_bytes())
        store.flush()
        elapsed = time.perf_counter() - started
        stats = store.stats
    size = wal_checkpointed_size(path)
    print(f"  {total:,} samples in blocks of 1,000: {elapsed:.1f} s ({total / elapsed:,.0f}/s); "
          f"RSS {rss_before / 2**20:.0f} MiB before, at most {rss_peak / 2**20:.0f} MiB while "
          f"writing; the writer held at most "
          f"{held / 2**20:.1f} MiB (bound {WriterSettings().max_bytes / 2**20:.0f} MiB); "
          f"{stats.backpressure_waits} back-pressure waits ({stats.backpressure_wait_s:.1f} s); "
          f"longest hand-over to commit {stats.max_latency_s * 1e3:.0f} ms; "
          f"file {size / 2**20:.0f} MiB = {size / total:.0f} bytes/sample")


def layout(folder: Path, channels: int, seconds: int, per_job: bool) -> list[float]:
    rng = np.random.default_rng(3)
    rows = [realistic_block(n, 1, rng) for n in range(seconds)]
    place = folder / f"{'per-job' if per_job else 'station'}-{channels}"
    place.mkdir()
    stores = ([Store.open(place / f"job-{n}.db") for n in range(channels)] if per_job
              else [Store.open(place / "station.db")])
    sinks: list[JobSink] = []
    for number in range(channels):
        store = stores[number] if per_job else stores[0]
        sinks.append(store.sink(store.add_job(f"C{number}", PROVENANCE)))
    for store in stores:
        store.flush()
    written = disk_written()
    cpu = time.process_time()
    wall = time.perf_counter()
    for second in range(seconds):
        for sink in sinks:
            sink.samples(rows[second])
        for store in stores:
            store.flush()  # the commit the writer makes once a second
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    commit_s = [store.stats.max_commit_s for store in stores]
    for store in stores:
        store.close()
    written = disk_written() - written
    samples = channels * seconds
    middle = channels // 2
    path = place / (f"job-{middle}.db" if per_job else "station.db")
    job_id = 1 if per_job else middle + 1
    size = sum(wal_checkpointed_size(p) for p in place.glob("*.db"))
    with stores[0].reader() if not per_job else Store(path).reader() as reader:
        started = time.perf_counter()
        read = reader.samples(job_id)
        read_s = time.perf_counter() - started
    name = "one per job" if per_job else "one station"
    print(f"  {name:11} {channels:>4} channels: {cpu / seconds * 1e3:6.2f} ms CPU per second of "
          f"data ({wall / samples * 1e6:5.1f} µs wall/sample), {written / samples:6.0f} B "
          f"written/sample, {size / samples:4.0f} B/sample on disk, one job read back at "
          f"{read_s / len(read) * 1e6:5.1f} µs/sample; longest commit "
          f"{max(commit_s) * 1e3:.1f} ms")
    shutil.rmtree(place)
    return commit_s


def commit_stalls(folder: Path, channels: int, seconds: int) -> None:
    rng = np.random.default_rng(4)
    rows = [realistic_block(n, 1, rng) for n in range(seconds)]
    durations: list[float] = []
    with Store.open(folder / "stalls.db") as store:
        sinks = [store.sink(store.add_job(f"C{n}", PROVENANCE)) for n in range(channels)]
        for second in range(seconds):
            for sink in sinks:
                sink.samples(rows[second])
            before = store.stats.max_commit_s
            store.stats.max_commit_s = 0.0
            store.flush()
            durations.append(store.stats.max_commit_s)
            store.stats.max_commit_s = max(before, store.stats.max_commit_s)
    durations.sort()
    p99 = durations[int(len(durations) * 0.99)]
    print(f"  {channels} channels, {seconds} commits: commit median "
          f"{statistics.median(durations) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max "
          f"{durations[-1] * 1e3:.2f} ms (the loop's stall per second if it committed itself)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000,
                        help="samples for the memory run (default 2,000,000)")
    parser.add_argument("--channels", default="64,512",
                        help="channel counts for the layout comparison")
    parser.add_argument("--seconds", type=int, default=300,
                        help="simulated seconds per layout run")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cellrig-bench-store-"))
    try:
        print("throughput through one job's sink:")
        throughput(folder, 1, 50_000)
        throughput(folder, 1000, 1_000_000)
        print("memory:")
        memory(folder, arguments.samples)
        print("one station database or one per job (one sample per channel per second):")
        for channels in (int(text) for text in arguments.channels.split(",")):
            layout(folder, channels, arguments.seconds, per_job=False)
            layout(folder, channels, arguments.seconds, per_job=True)
        print("commits on the writer thread (what the event loop is spared):")
        commit_stalls(folder, 512, arguments.seconds)
        print(f"(SQLite {__import__('sqlite3').sqlite_version}, {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

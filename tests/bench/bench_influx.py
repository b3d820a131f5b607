"""Benchmark: the InfluxDB forwarder (prints figures; docs/influxdb.md quotes them).

Run: ``python tests/bench/bench_influx.py [--samples N] [--channels 256] [--seconds 30]``.

1. Encoding: line protocol lines per second from store chunks of 5,000 samples (one core).
2. Throughput: a store holding ``--samples`` samples (8 channels) is forwarded from cursor 0
   to a real influxd 1.x (1.x API, aiohttp) and to a real VictoriaMetrics (2.x API,
   influxdb-client): samples per second from the first read to the last acknowledgement,
   everything included (reading the store, encoding, HTTP, the server's write).
3. Latency: ``--channels`` channels each store one sample a second, with the sample's unix
   time taken when it is handed to the store, for ``--seconds`` seconds, while the forwarder
   runs with its default settings (the store commits every 0.5 s, the forwarder polls every
   0.5 s). Per sample: the time from its unix time to the server's acknowledgement of the
   write that carried it; p50, p99 and the longest.

The servers are started on loopback ports with temporary folders, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from servers import influxdb1, victoria_metrics
from station_data import add_job, block

from cellrig.daemon.influx_forwarder import (
    ForwarderSettings,
    InfluxForwarder,
)
from cellrig.daemon.influx_lines import SAMPLE_COLUMNS, JobTags, encode_samples
from cellrig.daemon.influx_writers import (
    InfluxV1Writer,
    InfluxV2Writer,
    PointWriter,
)
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.daemon.store import Store


def fill_store(store: Store, samples: int, channels: int, start_unix_s: float) -> None:
    per_channel = samples // channels
    jobs = [add_job(store, f"A{number + 1}", f"cell-{number + 1}") for number in range(channels)]
    for first in range(0, per_channel, 1000):
        count = min(1000, per_channel - first)
        for number, job_id in enumerate(jobs):
            store.sink(job_id).samples(block(first, count, start_unix_s + number * 1e-3,
                                             seed=number))
    store.flush()


def bench_encoding(store: Store) -> None:
    with store.reader() as reader:
        chunk = next(reader.iter_samples(None, columns=SAMPLE_COLUMNS, limit=5000,
                                         chunk_rows=5000))
        tags = {job.id: JobTags("assb-lab-3", job.channel, job.provenance.cell.get("id"),
                                job.id).text() for job in reader.jobs()}
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        encoded = encode_samples(chunk, tags)
    elapsed = time.perf_counter() - started
    size = sum(len(line) for line in encoded.lines) / len(encoded.lines)
    print(f"encoding: {rounds * len(chunk) / elapsed:,.0f} lines/s "
          f"({size:.0f} bytes a line, 13 fields)")


def rss_mib() -> float:
    """The process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def forward_all(writer: PointWriter, store: Store, total: int) -> tuple[float, float]:
    """Run the forwarder (as the daemon does) from cursor 0 until it has delivered ``total``
    samples: the seconds it took, and how far the resident memory rose meanwhile."""
    forwarder = InfluxForwarder(writer, store, "assb-lab-3",
                                settings=ForwarderSettings(cursor_prefix=f"bench{time.time()}"))
    rss_before = peak = rss_mib()
    started = time.perf_counter()
    task = asyncio.create_task(forwarder.run())
    while forwarder.positions.get("samples", 0) < total:
        await asyncio.sleep(0.005)
        peak = max(peak, rss_mib())
    elapsed = time.perf_counter() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed, peak - rss_before


def bench_throughput(folder: Path, samples: int) -> None:
    start_unix_s = float(int(time.time()) - 86_400)
    with Store.open(folder / "throughput.db") as store:
        fill_store(store, samples, 8, start_unix_s)
        bench_encoding(store)
        with store.reader() as reader:
            total = int(reader.connection.execute("SELECT max(id) FROM samples").fetchone()[0])
        with influxdb1(folder / "influxdb") as influx:
            influx.create_database("cellrig")
            config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig")
            elapsed, grown = asyncio.run(forward_all(InfluxV1Writer(config), store, total))
            counted = influx.count("samples", "voltage_v", "cellrig")
            print(f"InfluxDB 1.6.7, 1.x API: {total / elapsed:,.0f} samples/s "
                  f"({total:,} samples in {elapsed:.1f} s; {counted:,} points counted; "
                  f"RSS rose {grown:.0f} MiB while the backlog drained)")
        with victoria_metrics(folder / "victoria-metrics") as victoria:
            config = InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab", bucket="cellrig")
            elapsed, grown = asyncio.run(forward_all(InfluxV2Writer(config), store, total))
            print(f"VictoriaMetrics, 2.x API: {total / elapsed:,.0f} samples/s "
                  f"({total:,} samples in {elapsed:.1f} s; RSS rose {grown:.0f} MiB)")


class TimingWriter:
    """Passes writes on and notes, per sample line, when the server acknowledged it."""

    def __init__(self, inner: PointWriter) -> None:
        self.inner = inner
        self.latencies_s: list[float] = []
        self.sizes: list[int] = []

    @property
    def description(self) -> str:
        return self.inner.description

    async def write(self, body: bytes) -> None:
        await self.inner.write(body)
        acknowledged = time.time()
        lines = [line for line in body.split(b"\n") if line.startswith(b"samples,")]
        if lines:
            self.sizes.append(len(lines))
        for line in lines:
            self.latencies_s.append(acknowledged - int(line.rsplit(b" ", 1)[1]) / 1e9)

    async def close(self) -> None:
        await self.inner.close()


def bench_latency(folder: Path, channels: int, seconds: float) -> None:
    with influxdb1(folder / "influxdb-latency") as influx, \
            Store.open(folder / "latency.db") as store:
        influx.create_database("cellrig")
        config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig")
        jobs = [add_job(store, f"C{number + 1}") for number in range(channels)]
        writer = TimingWriter(InfluxV1Writer(config))
        forwarder = InfluxForwarder(writer, store, "assb-lab-3")
        halt = threading.Event()

        def produce() -> None:
            tick = time.monotonic()
            index = 0
            while not halt.is_set():
                for number, job_id in enumerate(jobs):
                    # block() puts sample ``index`` at start + index s: start so it is now
                    sample = block(index, 1, time.time() - index, seed=number)
                    store.sink(job_id).samples(sample)
                    # spread the channels over the second, as unsynchronised instruments are
                    time.sleep(max(0.0, tick + (number + 1) / channels - time.monotonic()))
                index += 1
                tick += 1.0

        async def scenario() -> None:
            task = asyncio.create_task(forwarder.run())
            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            await asyncio.sleep(seconds)
            halt.set()
            await asyncio.to_thread(producer.join)
            await asyncio.sleep(2.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        cpu_started = time.process_time()
        asyncio.run(scenario())
        cpu_s = time.process_time() - cpu_started
        latencies = np.array(writer.latencies_s)
        print(f"latency, {channels} channels at 1 Hz for {seconds:.0f} s "
              f"({len(latencies):,} samples): p50 {np.percentile(latencies, 50):.2f} s, "
              f"p99 {np.percentile(latencies, 99):.2f} s, longest {latencies.max():.2f} s; "
              f"{forwarder.stats.writes} writes of {statistics.mean(writer.sizes):.0f} samples "
              f"on average; process CPU {100 * cpu_s / (seconds + 2):.1f} % of a core "
              "(the forwarder and the store's writer, with the producer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400_000)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellrig-bench-influx-") as folder:
        bench_throughput(Path(folder), arguments.samples)
        bench_latency(Path(folder), arguments.channels, arguments.seconds)


if __name__ == "__main__":
    main()

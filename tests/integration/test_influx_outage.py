"""An InfluxDB outage only delays data: the server (influxd through the 1.x API,
VictoriaMetrics through the 2.x API) is stopped while samples keep being stored and started
again later; afterwards every sample is in it once, the backlog has drained, the forwarder's
writes stayed the size of a batch however large the backlog grew, and the outage was logged
once when it began and once when it ended (not per retry)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import InfluxDb1, ServerProcess, VictoriaMetrics, influxdb1, victoria_metrics
from station_data import add_job, block

from cellrig.daemon.influx_forwarder import ForwarderSettings, InfluxForwarder
from cellrig.daemon.influx_writers import InfluxV1Writer, InfluxV2Writer, PointWriter
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.daemon.store import Store
from cellrig.drivers.backoff import Backoff

pytestmark = pytest.mark.integration

CHANNELS = 8
BLOCK = 20
PERIOD_S = 0.05  # 8 channels × 20 samples every 50 ms: 3,200 samples a second
BATCH = 500


class Producer(threading.Thread):
    """Stores samples on every channel until stopped, like running jobs do."""

    def __init__(self, store: Store, job_ids: list[int], start_unix_s: float) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.job_ids = job_ids
        self.start_unix_s = start_unix_s
        self.stored = 0
        self.halt = threading.Event()

    def run(self) -> None:
        first = 0
        while not self.halt.is_set():
            for number, job_id in enumerate(self.job_ids):
                # 10 ms apart within a channel: distinct timestamps at any precision
                self.store.sink(job_id).samples(
                    block(first, BLOCK, self.start_unix_s + number * 1e-3, period_s=0.01,
                          pressure=number % 2 == 0, seed=number))
                self.stored += BLOCK
            first += BLOCK
            time.sleep(PERIOD_S)


@contextmanager
def target(api: str, folder: Path) -> Iterator[tuple[ServerProcess, PointWriter]]:
    """A running server and a writer for it."""
    if api == "v1":
        with influxdb1(folder / "influxdb") as influx:
            influx.create_database("cellrig")
            config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig")
            yield influx, InfluxV1Writer(config, timeout_s=2.0)
    else:
        with victoria_metrics(folder / "victoria-metrics") as victoria:
            config = InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab", bucket="cellrig")
            yield victoria, InfluxV2Writer(config, timeout_s=2.0)


def count(server: ServerProcess, field: str, expected: int) -> int:
    """Points of a sample field in the server (VictoriaMetrics: once they are searchable)."""
    if isinstance(server, InfluxDb1):
        return server.count("samples", field, "cellrig")
    assert isinstance(server, VictoriaMetrics)
    deadline = time.monotonic() + 20.0
    found = server.count(f"samples_{field}")
    while found < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        found = server.count(f"samples_{field}")
    time.sleep(0.5)
    return server.count(f"samples_{field}")


def largest_reported_backlog(server: ServerProcess) -> float:
    if isinstance(server, InfluxDb1):
        answer = server.query("SELECT max(backlog_samples) FROM station_health", "cellrig")
        return float(answer["results"][0]["series"][0]["values"][0][1])
    assert isinstance(server, VictoriaMetrics)
    series = server.export('{__name__="station_health_backlog_samples"}')
    return max(max(entry["values"]) for entry in series)


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_outage_loses_and_doubles_nothing(api: str, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cellrig.influxdb")
    settings = ForwarderSettings(batch_samples=BATCH, poll_interval_s=0.1,
                                 health_interval_s=0.5,
                                 backoff=Backoff(initial_s=0.1, max_s=0.5))
    with target(api, tmp_path) as (server, writer), \
            Store.open(tmp_path / "station.db") as store:
        job_ids = [add_job(store, f"A{number + 1}") for number in range(CHANNELS)]
        producer = Producer(store, job_ids, time.time() - 3600.0)
        forwarder = InfluxForwarder(writer, store, "assb-lab-3", settings=settings)
        peak_backlog = 0

        async def scenario() -> None:
            nonlocal peak_backlog
            task = asyncio.create_task(forwarder.run())
            producer.start()
            await asyncio.sleep(1.0)
            assert forwarder.stats.forwarded_samples > 0, "nothing forwarded before the outage"
            await asyncio.to_thread(server.stop)
            outage_end = time.monotonic() + 3.0
            with store.reader() as reader:
                while time.monotonic() < outage_end:
                    await asyncio.sleep(0.2)
                    newest = reader.connection.execute("SELECT max(id) FROM samples"
                                                       ).fetchone()[0]
                    peak_backlog = max(peak_backlog, newest - forwarder.positions["samples"])
            await asyncio.to_thread(server.start)
            await asyncio.sleep(1.0)
            producer.halt.set()
            await asyncio.to_thread(producer.join)
            await asyncio.to_thread(store.flush)
            deadline = time.monotonic() + 30.0
            while forwarder.positions["samples"] < producer.stored:
                assert time.monotonic() < deadline, "the backlog did not drain"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.6)  # one more health point, with the backlog gone
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        stored = producer.stored
        assert count(server, "voltage_v", stored) == stored
        assert count(server, "pressure_pa", stored // 2) == stored // 2
        assert forwarder.stats.forwarded_samples == stored
        # the backlog outgrew a batch several times over; the writes stayed batch-sized
        assert peak_backlog > 4 * BATCH
        assert forwarder.stats.largest_body_bytes < BATCH * 400
        assert forwarder.stats.failed_writes >= 2 and forwarder.stats.outages == 1
        assert forwarder.stats.backlog_samples == 0
        store.flush()
        with store.reader() as reader:
            assert reader.cursor("influxdb.samples") == stored
        assert largest_reported_backlog(server) > 0  # reported while it was behind

    records = [record for record in caplog.records if record.name == "cellrig.influxdb"]
    warnings = [record for record in records if record.levelno == logging.WARNING]
    recoveries = [record for record in records if "takes writes again" in record.getMessage()]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert "cannot be reached" in warnings[0].getMessage()
    assert len(recoveries) == 1

"""Every stored sample, event and cycle summary arrives in InfluxDB once: through the 1.x API
into a real influxd 1.6.7 and through the 2.x API (influxdb-client) into a real
VictoriaMetrics. Forwarding again from an old cursor doubles nothing. What arrives is what
was stored: values, integer fields, missing (NaN) fields left out, tags escaped."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path

import pytest
from servers import InfluxDb1, VictoriaMetrics, http, influxdb1, victoria_metrics
from station_data import fill

from cellrig.daemon.influx_forwarder import (
    ForwarderSettings,
    InfluxForwarder,
    run_influx_forwarder,
)
from cellrig.daemon.influx_writers import InfluxV1Writer, InfluxV2Writer
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.daemon.store import Store

pytestmark = pytest.mark.integration

DATABASE = "cellrig"
#: Two days back: inside VictoriaMetrics' accepted window, and a fixed past for InfluxDB.
START_UNIX_S = math.floor(time.time()) - 2 * 86_400.0


async def drain(forwarder: InfluxForwarder, timeout_s: float = 60.0) -> None:
    """Forward until a pass finds nothing more."""
    deadline = time.monotonic() + timeout_s
    while await forwarder.forward_once() or forwarder.positions["samples"] == 0:
        assert time.monotonic() < deadline, "the forwarder did not catch up"
    await forwarder.forward_once()


def v1_config(server: InfluxDb1) -> InfluxDbSinkConfig:
    return InfluxDbSinkConfig(server.url, InfluxApi.V1, database=DATABASE)


@pytest.fixture
def influx(tmp_path: Path):  # type: ignore[no-untyped-def]
    with influxdb1(tmp_path / "influxdb") as server:
        server.create_database(DATABASE)
        yield server


def test_every_record_arrives_once_v1(tmp_path: Path, influx: InfluxDb1) -> None:
    settings = ForwarderSettings(batch_samples=700, batch_records=4)
    with Store.open(tmp_path / "station.db") as store:
        totals = fill(store, channels=3, samples_per_channel=1500, start_unix_s=START_UNIX_S)

        async def forward() -> InfluxForwarder:
            forwarder = InfluxForwarder(InfluxV1Writer(v1_config(influx)), store, "assb-lab-3",
                                        settings=settings)
            try:
                await drain(forwarder)
            finally:
                await forwarder.close()
            return forwarder

        forwarder = asyncio.run(forward())
        assert forwarder.stats.forwarded_samples == totals["samples"] == 4500
        assert forwarder.stats.writes >= 4500 // 700
        assert influx.count("samples", "voltage_v", DATABASE) == totals["samples"]
        assert influx.count("samples", "cycle", DATABASE) == totals["samples"]
        assert influx.count("events", "cycle", DATABASE) == totals["events"]
        assert influx.count("cycles", "discharge_capacity_ah", DATABASE) == totals["cycles"]
        # unmeasured values are left out, not written as zeros
        assert influx.count("samples", "pressure_pa", DATABASE) == 3000
        assert influx.count("samples", "temperature_c", DATABASE) == 3000
        store.flush()
        with store.reader() as reader:
            assert reader.cursor("influxdb.samples") == 4500
            assert reader.cursor("influxdb.cycles") == totals["cycles"]

        # forward everything again from the start: points overwrite themselves
        for kind in ("samples", "events", "cycles"):
            store.move_cursor(f"influxdb.{kind}", 0)
        store.flush()
        again = asyncio.run(forward())
        assert again.stats.forwarded_samples == 4500
        assert influx.count("samples", "voltage_v", DATABASE) == 4500
        assert influx.count("events", "cycle", DATABASE) == totals["events"]
        assert influx.count("cycles", "cycle", DATABASE) == totals["cycles"]

        with store.reader() as reader:
            stored = reader.samples(2)
        check_values(influx, stored.columns)


def check_values(influx: InfluxDb1, columns: dict[str, object]) -> None:
    """The second job's samples come back as stored: float fields bit for bit, integers as
    integers, the cell id with its comma and space, the step type as a tag."""
    answer = influx.query(
        "SELECT voltage_v, current_a, temperature_c, pressure_pa, cycle, step_id, step_type "
        "FROM samples WHERE job = '2' AND cell = 'cell, #2'", DATABASE, epoch="ns")
    rows = answer["results"][0]["series"][0]["values"]
    assert len(rows) == 1500
    voltage = columns["Voltage / V"]
    unix = columns["Unix Time / s"]
    for index in (0, 1, 777, 1499):
        time_ns, volts, amps, temperature, pressure, cycle, step_id, step_type = rows[index]
        assert time_ns == round(float(unix[index]) * 1e6) * 1000  # type: ignore[index]
        assert volts == float(voltage[index])  # type: ignore[index]
        assert amps in (0.0634, -0.0634)
        assert step_type == ("CC_CHG" if amps > 0 else "CC_DCH")
        assert pressure is None and isinstance(temperature, float)
        assert isinstance(cycle, int) and isinstance(step_id, int)


def test_events_and_cycles_carry_their_fields_v1(tmp_path: Path, influx: InfluxDb1) -> None:
    with Store.open(tmp_path / "station.db") as store:
        fill(store, channels=1, samples_per_channel=50, start_unix_s=START_UNIX_S, cycles=2)

        async def forward() -> None:
            forwarder = InfluxForwarder(InfluxV1Writer(v1_config(influx)), store, "st 1")
            try:
                await drain(forwarder)
            finally:
                await forwarder.close()

        asyncio.run(forward())
    events = influx.query("SELECT message, kind, data, station FROM events WHERE "
                          "kind = 'cycle end'", DATABASE)["results"][0]["series"][0]
    assert [row[1] for row in events["values"]] == ['cycle 1 "done"', 'cycle 2 "done"']
    assert events["values"][0][3] == '{"note": "cycle 1 \\"done\\""}'
    assert events["values"][0][4] == "st 1"
    cycles = influx.query("SELECT cycle, coulombic_efficiency, capacity_retention, "
                          "reference_capacity_retention "
                          "FROM cycles", DATABASE)["results"][0]["series"][0]
    assert [row[1] for row in cycles["values"]] == [1, 2]
    assert cycles["values"][0][2] == 0.998
    assert cycles["values"][0][4] is None  # None in the summary: no field
    # a cycle is placed at its end: the first sample's clock plus its end test time
    first = influx.query("SELECT cycle FROM cycles", DATABASE, epoch="s")
    assert first["results"][0]["series"][0]["values"][0][0] == START_UNIX_S + 3600


@pytest.fixture
def victoria(tmp_path: Path):  # type: ignore[no-untyped-def]
    with victoria_metrics(tmp_path / "victoria-metrics") as server:
        yield server


def wait_for_count(server: VictoriaMetrics, metric: str, expected: int,
                   timeout_s: float = 20.0) -> int:
    """VictoriaMetrics makes new points searchable within a second or so."""
    deadline = time.monotonic() + timeout_s
    count = server.count(metric)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.25)
        count = server.count(metric)
    return count


def test_every_sample_arrives_once_v2(tmp_path: Path, victoria: VictoriaMetrics) -> None:
    config = InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab", bucket="cellrig")
    settings = ForwarderSettings(batch_samples=1000)
    with Store.open(tmp_path / "station.db") as store:
        totals = fill(store, channels=4, samples_per_channel=1000, start_unix_s=START_UNIX_S)

        async def forward() -> InfluxForwarder:
            forwarder = InfluxForwarder(InfluxV2Writer(config), store, "assb-lab-3",
                                        settings=settings)
            try:
                await drain(forwarder)
            finally:
                await forwarder.close()
            return forwarder

        forwarder = asyncio.run(forward())
        assert forwarder.stats.forwarded_samples == totals["samples"] == 4000
        assert wait_for_count(victoria, "samples_voltage_v", 4000) == 4000
        assert wait_for_count(victoria, "cycles_discharge_capacity_ah", totals["cycles"]) \
            == totals["cycles"]
        assert wait_for_count(victoria, "events_cycle", totals["events"]) == totals["events"]
        # once more from the start: VictoriaMetrics (deduplicating) keeps one of each
        for kind in ("samples", "events", "cycles"):
            store.move_cursor(f"influxdb.{kind}", 0)
        store.flush()
        again = asyncio.run(forward())
        assert again.stats.forwarded_samples == 4000
        time.sleep(1.5)
        assert victoria.count("samples_voltage_v") == 4000
    series = victoria.export('{__name__="samples_voltage_v", channel="A2"}')
    assert {entry["metric"]["cell"] for entry in series} == {"cell, #2"}
    assert {entry["metric"]["step_type"] for entry in series} == {"CC_CHG"}


def test_run_influx_forwarder_from_station_toml(tmp_path: Path, influx: InfluxDb1) -> None:
    """The daemon's entry point: the station file names the server; cancelling stops it."""
    (tmp_path / "influxdb.password").write_text("unused-by-a-server-without-auth\n")
    config = load_station_text(f"""
[station]
name = "assb-lab-3"
data_folder = "data"
[instruments.bench]
driver = "model"
[channels.A1]
potentiostat = "bench"
limits = {{ voltage = ["2.0 V", "4.4 V"], current = "1 A" }}
[sinks.influxdb]
url = "{influx.url}"
database = "{DATABASE}"
username = "assb-lab-3"
password_file = "influxdb.password"
""", folder=tmp_path)
    with Store.open(tmp_path / "station.db") as store:
        totals = fill(store, channels=2, samples_per_channel=400, start_unix_s=START_UNIX_S)

        async def scenario() -> None:
            task = asyncio.create_task(run_influx_forwarder(config, store))
            for _ in range(200):
                if influx.count("samples", "voltage_v", DATABASE) == totals["samples"]:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert influx.count("samples", "voltage_v", DATABASE) == totals["samples"]
        health = influx.query('SELECT backlog_samples FROM station_health', DATABASE)
        assert health["results"][0]["series"][0]["values"]
        store.flush()
        with store.reader() as reader:
            assert reader.cursor("influxdb.samples") == totals["samples"]


def test_rejected_data_is_skipped_and_logged_once(tmp_path: Path, influx: InfluxDb1,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Someone wrote ``cycle`` as a float into the measurement first: InfluxDB refuses every
    sample (a field type conflict). The forwarder logs that once, moves on, and the events
    and cycle summaries of the same batches arrive."""
    caplog.set_level(logging.DEBUG, logger="cellrig.influxdb")
    conflict = f"samples,station=other cycle=1.5 {int(START_UNIX_S * 1e9)}\n".encode()
    status, _ = http("POST", f"{influx.url}/write?db={DATABASE}&precision=ns", conflict)
    assert status == 204
    with Store.open(tmp_path / "station.db") as store:
        totals = fill(store, channels=2, samples_per_channel=500, start_unix_s=START_UNIX_S)

        async def forward() -> InfluxForwarder:
            forwarder = InfluxForwarder(InfluxV1Writer(v1_config(influx)), store, "assb-lab-3",
                                        settings=ForwarderSettings(batch_samples=300))
            try:
                await drain(forwarder)
            finally:
                await forwarder.close()
            return forwarder

        forwarder = asyncio.run(forward())
        assert forwarder.positions["samples"] == totals["samples"]
        assert forwarder.stats.rejected_batches == 4 and forwarder.stats.forwarded_samples == 0
    assert influx.count("samples", "voltage_v", DATABASE) == 0
    assert influx.count("events", "cycle", DATABASE) == totals["events"]
    assert influx.count("cycles", "cycle", DATABASE) == totals["cycles"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "rejected the data (HTTP 400" in errors[0].getMessage()
    assert "field type conflict" in errors[0].getMessage()


def test_a_restarted_forwarder_continues_from_its_cursors(tmp_path: Path,
                                                          influx: InfluxDb1) -> None:
    """The first forwarder stops after two batches (as a daemon that is stopped); the next
    one, on the reopened store, forwards only the rest."""
    settings = ForwarderSettings(batch_samples=500)
    with Store.open(tmp_path / "station.db") as store:
        totals = fill(store, channels=2, samples_per_channel=1000, start_unix_s=START_UNIX_S)

        async def twice() -> None:
            forwarder = InfluxForwarder(InfluxV1Writer(v1_config(influx)), store, "s",
                                        settings=settings)
            try:
                assert await forwarder.forward_once()
                assert await forwarder.forward_once()
            finally:
                await forwarder.close()

        asyncio.run(twice())
    assert influx.count("samples", "voltage_v", DATABASE) == 1000
    with Store.open(tmp_path / "station.db") as store:
        with store.reader() as reader:
            assert reader.cursor("influxdb.samples") == 1000

        async def rest() -> InfluxForwarder:
            forwarder = InfluxForwarder(InfluxV1Writer(v1_config(influx)), store, "s",
                                        settings=settings)
            try:
                await drain(forwarder)
            finally:
                await forwarder.close()
            return forwarder

        forwarder = asyncio.run(rest())
    assert forwarder.stats.forwarded_samples == totals["samples"] - 1000
    assert influx.count("samples", "voltage_v", DATABASE) == totals["samples"]

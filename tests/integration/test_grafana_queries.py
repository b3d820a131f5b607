"""Every query of the Grafana dashboards in deploy/grafana runs against a real influxd 1.6.7
filled by the forwarder from two stations' stores, and returns the series it should.

Grafana's macros and variables are expanded as Grafana does for InfluxQL: ``$timeFilter``
becomes ``time >= FROMms and time <= TOms``, ``$__interval`` an interval, and a template
variable inside ``/^…$/`` the regex alternation of its values (what "All" selects). The
variables' own queries (``SHOW TAG VALUES``) run first and give those values.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import InfluxDb1, influxdb1
from station_data import fill

from cellrig.daemon.influx_forwarder import InfluxForwarder
from cellrig.daemon.influx_writers import InfluxV1Writer
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.daemon.store import Store

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
DATABASE = "cellrig"
NOW_S = time.time()
START_UNIX_S = float(int(NOW_S) - 2 * 3600)
LAB3 = [("assb-lab-3", "A1"), ("assb-lab-3", "A2"), ("assb-lab-3", "A3")]
LAB4 = [("assb-lab-4", "A1")]
CHANNELS = {*LAB3, *LAB4}
JOBS = {("assb-lab-3", "A1", "1"), ("assb-lab-3", "A2", "2"), ("assb-lab-3", "A3", "3"),
        ("assb-lab-4", "A1", "1")}
STATION_CHANNEL = ("station", "channel")
STATION_CHANNEL_JOB = ("station", "channel", "job")
CYCLES = (STATION_CHANNEL_JOB, JOBS)

#: (dashboard file, panel title, refId) → (the tags its series are grouped by, the series).
#: Channel 2 of each store measures no pressure, channel 3 no temperature (station_data).
EXPECTED: dict[tuple[str, str, str], tuple[tuple[str, ...], set[tuple[str, ...]]]] = {
    ("cellrig-live-cells.json", "Voltage", "A"): (STATION_CHANNEL, CHANNELS),
    ("cellrig-live-cells.json", "Current", "A"): (STATION_CHANNEL, CHANNELS),
    ("cellrig-live-cells.json", "Temperature", "A"): (
        STATION_CHANNEL, CHANNELS - {("assb-lab-3", "A3")}),
    ("cellrig-live-cells.json", "Stack pressure", "A"): (
        STATION_CHANNEL, CHANNELS - {("assb-lab-3", "A2")}),
    ("cellrig-live-cells.json", "Latest values", "A"): (STATION_CHANNEL_JOB, JOBS),
    ("cellrig-live-cells.json", "Events", "A"): (STATION_CHANNEL_JOB, JOBS),
    ("cellrig-cycling.json", "Discharge capacity", "A"): CYCLES,
    ("cellrig-cycling.json", "Coulombic efficiency", "A"): CYCLES,
    ("cellrig-cycling.json", "Capacity retention", "A"): CYCLES,
    ("cellrig-cycling.json", "Average discharge voltage", "A"): CYCLES,
    ("cellrig-cycling.json", "Cycle table", "A"): CYCLES,
    ("cellrig-station-health.json", "Backlog (samples not yet in InfluxDB)", "A"): (
        ("station",), {("assb-lab-3",), ("assb-lab-4",)}),
    ("cellrig-station-health.json", "Data age", "A"): (
        ("station",), {("assb-lab-3",), ("assb-lab-4",)}),
    ("cellrig-station-health.json", "Data age", "B"): (
        ("station",), {("assb-lab-3",), ("assb-lab-4",)}),
    ("cellrig-station-health.json", "Instruments", "A"): (
        ("station", "instrument"), {("assb-lab-3", "smu-a1"), ("assb-lab-3", "chamber"),
                                    ("assb-lab-4", "smu-a1"), ("assb-lab-4", "chamber")}),
    ("cellrig-station-health.json", "Last sample per channel", "A"): (
        STATION_CHANNEL_JOB, JOBS),
    ("cellrig-station-health.json", "Forwarder", "A"): (
        ("station",), {("assb-lab-3",), ("assb-lab-4",)}),
    ("cellrig-station-health.json", "Forwarder", "B"): (
        ("station",), {("assb-lab-3",), ("assb-lab-4",)}),
}
#: What each template variable lists ("All" then selects every one).
VARIABLES = {
    "station": ["assb-lab-3", "assb-lab-4"],
    "channel": ["A1", "A2", "A3"],
    "job": ["1", "2", "3"],
}
CYCLE_COUNT = 3


def regex_escape(value: str) -> str:
    """A value escaped for an InfluxQL regex literal, the characters Grafana escapes."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/-])", r"\\\1", value)


def expand(query: str, variables: dict[str, list[str]], interval: str = "1m") -> str:
    """A panel's query as Grafana sends it (every variable set to All)."""
    from_ms = int((START_UNIX_S - 86_400) * 1000)
    to_ms = int((NOW_S + 86_400) * 1000)
    text = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    text = text.replace("$__interval", interval)
    for name, values in variables.items():
        alternation = "(" + "|".join(regex_escape(value) for value in values) + ")"
        text = re.sub(r"\$\{" + name + r"\}|\[\[" + name + r"\]\]|\$" + name + r"\b",
                      lambda _match, replacement=alternation: replacement, text)
    assert "$" not in text.replace("$/", "/"), f"a variable was left in {text!r}"
    return text


def series_of(influx: InfluxDb1, query: str) -> list[dict[str, Any]]:
    answer = influx.query(query, DATABASE)
    results = answer["results"]
    assert len(results) == 1
    return list(results[0].get("series", []))


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("grafana")
    with influxdb1(folder / "influxdb") as influx:
        influx.create_database(DATABASE)
        config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database=DATABASE)
        for station, channels in (("assb-lab-3", 3), ("assb-lab-4", 1)):
            with Store.open(folder / f"{station}.db") as store:
                fill(store, channels=channels, samples_per_channel=600,
                     start_unix_s=START_UNIX_S, cycles=CYCLE_COUNT)
                forwarder = InfluxForwarder(
                    InfluxV1Writer(config), store, station,
                    instrument_states=lambda: {"smu-a1": True, "chamber": False},
                    instrument_drivers={"smu-a1": "keithley2450", "chamber": "espec"})

                async def forward(forwarder: InfluxForwarder = forwarder) -> None:
                    try:
                        while await forwarder.forward_once() or \
                                forwarder.positions["samples"] == 0:
                            pass
                        await forwarder.write_health()
                    finally:
                        await forwarder.close()

                asyncio.run(forward())
        yield influx


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text(encoding="utf-8")))
            for path in sorted(DASHBOARDS.glob("*.json"))]


def targets() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, dashboard in dashboards():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((name, panel["title"], target))
    return found


def test_every_query_has_an_expectation() -> None:
    assert len(dashboards()) == 3
    assert {(name, title, target["refId"]) for name, title, target in targets()} == \
        set(EXPECTED)
    for name, dashboard in dashboards():
        uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
        assert uids == {"cellrig-influxdb"}, name
        for variable in dashboard["templating"]["list"]:
            assert variable["name"] in VARIABLES, (name, variable["name"])


def test_variables_list_what_was_forwarded(filled: InfluxDb1) -> None:
    for name, dashboard in dashboards():
        known: dict[str, list[str]] = {}
        for variable in dashboard["templating"]["list"]:
            query = expand(variable["query"], known)
            values = sorted({row[1] for entry in series_of(filled, query)
                             for row in entry["values"]})
            assert values == VARIABLES[variable["name"]], (name, variable["name"], query)
            known[variable["name"]] = values


@pytest.mark.parametrize(("dashboard", "title", "target"), targets(),
                         ids=[f"{name}:{title}:{target['refId']}"
                              for name, title, target in targets()])
def test_panel_query_returns_its_series(filled: InfluxDb1, dashboard: str, title: str,
                                        target: dict[str, Any]) -> None:
    query = expand(target["query"], VARIABLES)
    series = series_of(filled, query)
    keys, expected = EXPECTED[(dashboard, title, target["refId"])]
    found = {tuple(entry.get("tags", {}).get(key, "") for key in keys) for entry in series}
    assert found == expected, query
    for entry in series:
        values = [row for row in entry["values"]
                  if any(value is not None for value in row[1:])]
        assert values, (query, entry)
        if dashboard == "cellrig-cycling.json":
            assert [row[1] for row in entry["values"]] == list(range(1, CYCLE_COUNT + 1))


def test_provisioning_names_the_dashboards_data_source() -> None:
    """The provisioned data source has the uid every panel names, speaks InfluxQL and takes
    its address and credentials from the environment (no secret in the file)."""
    grafana = DASHBOARDS.parent
    sources = yaml.safe_load((grafana / "provisioning" / "datasources" /
                              "cellrig-influxdb.yaml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    assert source["uid"] == "cellrig-influxdb" and source["type"] == "influxdb"
    assert "version" not in source.get("jsonData", {})  # InfluxQL, the default
    assert source["url"].startswith("${") and source["secureJsonData"]["password"].startswith(
        "${")
    flux = yaml.safe_load((grafana / "examples" / "datasource-influxdb-flux.yaml")
                          .read_text(encoding="utf-8"))
    assert flux["datasources"][0]["jsonData"]["version"] == "Flux"
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "cellrig.yaml")
                               .read_text(encoding="utf-8"))
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/cellrig"

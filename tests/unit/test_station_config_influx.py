"""``[sinks.influxdb]``: the 1.x and 2.x APIs, named or inferred from the keys, and the
errors of a table that mixes them, names neither or has a wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.errors import ConfigError

HEAD = """[station]
name = "bench-1"
data_folder = "data"

[instruments.bench]
driver = "model"

[channels.A1]
potentiostat = "bench"
limits = { voltage = ["2.0 V", "4.4 V"], current = "1 A" }

[sinks.influxdb]
"""


def influx(table: str) -> InfluxDbSinkConfig:
    config = load_station_text(HEAD + table, folder=Path("/etc/cellrig"))
    assert config.influxdb is not None
    return config.influxdb


def errors(table: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_station_text(HEAD + table)
    return [diagnostic.render() for diagnostic in caught.value.diagnostics]


def test_v1_inferred_from_its_keys() -> None:
    config = influx('url = "http://influx.lab:8086"\ndatabase = "cellrig"\n'
                    'retention_policy = "one_year"\nusername = "lab-3"\n'
                    'password_file = "influxdb.password"\n')
    assert config == InfluxDbSinkConfig(
        "http://influx.lab:8086", InfluxApi.V1, database="cellrig",
        retention_policy="one_year", username="lab-3",
        password_file=Path("/etc/cellrig/influxdb.password"))


def test_v2_inferred_and_named() -> None:
    table = 'url = "https://influx.lab"\norg = "lab"\nbucket = "cellrig"\n'
    assert influx(table) == InfluxDbSinkConfig("https://influx.lab", InfluxApi.V2, org="lab",
                                               bucket="cellrig")
    named = influx('api = "v2"\n' + table + 'token_file = "/run/secrets/token"\n')
    assert named.api is InfluxApi.V2 and named.token_file == Path("/run/secrets/token")
    assert influx('api = "v1"\nurl = "http://x:8086"\ndatabase = "d"\n').api is InfluxApi.V1


def test_the_api_changes_the_hash() -> None:
    v1 = load_station_text(HEAD + 'url = "http://x:8086"\ndatabase = "cellrig"\n')
    again = load_station_text(HEAD + 'database = "cellrig"\nurl = "http://x:8086"\n')
    v2 = load_station_text(HEAD + 'url = "http://x:8086"\norg = "a"\nbucket = "cellrig"\n')
    assert v1.sha256 == again.sha256 != v2.sha256


def test_mixed_keys_are_refused_at_the_table() -> None:
    found = errors('url = "http://x:8086"\ndatabase = "d"\nbucket = "b"\n')
    assert len(found) == 1
    assert "station.toml:12:8: error: [sinks.influxdb] mixes keys of the 1.x API (database) " \
           "and of the 2.x API (bucket)" in found[0]


def test_keys_of_the_other_api_are_refused_where_written() -> None:
    found = errors('api = "v1"\nurl = "http://x:8086"\ndatabase = "d"\norg = "lab"\n')
    assert len(found) == 1
    assert 'station.toml:16:7: error: org belongs to the 2.x API, but this table has ' \
           'api = "v1"' in found[0]


def test_neither_api() -> None:
    found = errors('url = "http://x:8086"\n')
    assert len(found) == 1 and "[sinks.influxdb] needs bucket" in found[0]
    assert "database for the 1.x API" in found[0]


def test_wrong_values() -> None:
    found = errors('api = "v3"\nurl = "http://x:8086"\nbucket = "b"\n')
    assert 'api = "v3" is not an InfluxDB API' in found[0] and "one of v1, v2" in found[0]
    found = errors('url = "http://x:8086"\ndatabase = "my db"\nusername = 7\n')
    assert len(found) == 2
    assert 'database = "my db" is not an InfluxDB database' in found[0]
    assert "username = 7 is not a user name" in found[1]
    found = errors('url = "http://x:8086"\norg = "lab"\n')
    assert "[sinks.influxdb] needs bucket (an InfluxDB bucket)" in found[0]
    assert "unknown key 'tokenfile'" in errors(
        'url = "http://x:8086"\norg = "a"\nbucket = "b"\ntokenfile = "t"\n')[0]


def test_ca_file_needs_https() -> None:
    config = influx('url = "https://influx.lab:8086"\ndatabase = "d"\nca_file = "ca.pem"\n')
    assert config.ca_file == Path("/etc/cellrig/ca.pem")
    found = errors('url = "http://x:8086"\norg = "a"\nbucket = "b"\nca_file = "ca.pem"\n')
    assert len(found) == 1 and "ca_file is for TLS, which needs an https:// url" in found[0]

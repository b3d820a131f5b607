"""InfluxDB over https: with ``ca_file`` naming the authority that signed the server's
certificate, both writers write (influxd 1.x through the 1.x API, VictoriaMetrics through the
2.x API); without it the certificate is not trusted, which is a refusal that says to set
``ca_file`` (retrying alone would never help)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from servers import influxdb1, make_certificates, victoria_metrics

from cellrig.daemon.influx_writers import InfluxRefused, make_writer
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig

pytestmark = pytest.mark.integration


def line() -> bytes:
    return f"samples,station=s voltage_v=3.7 {int(time.time() * 1e9)}\n".encode()


async def write(config: InfluxDbSinkConfig) -> None:
    writer = make_writer(config)
    try:
        await writer.write(line())
    finally:
        await writer.close()


def refusal(config: InfluxDbSinkConfig) -> str:
    with pytest.raises(InfluxRefused) as caught:
        asyncio.run(write(config))
    return str(caught.value)


def test_v1_over_https(tmp_path: Path) -> None:
    authority, certificate, key = make_certificates(tmp_path / "certificates")
    with influxdb1(tmp_path / "influxdb", tls=(certificate, key)) as influx:
        influx.create_database("cellrig")
        config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig",
                                    ca_file=authority)
        asyncio.run(write(config))
        assert influx.count("samples", "voltage_v", "cellrig") == 1
        untrusted = refusal(InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig"))
        assert "certificate is not trusted" in untrusted and "ca_file" in untrusted
        missing = refusal(InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig",
                                             ca_file=tmp_path / "absent.pem"))
        assert "cannot use the InfluxDB ca_file" in missing


def test_v2_over_https(tmp_path: Path) -> None:
    authority, certificate, key = make_certificates(tmp_path / "certificates")
    with victoria_metrics(tmp_path / "victoria-metrics", tls=(certificate, key)) as victoria:
        config = InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab", bucket="cellrig",
                                    ca_file=authority)
        asyncio.run(write(config))
        deadline = time.monotonic() + 20.0
        while victoria.count("samples_voltage_v") < 1:
            assert time.monotonic() < deadline, "the point did not arrive"
            time.sleep(0.25)
        untrusted = refusal(InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab",
                                               bucket="cellrig"))
        assert "certificate is not trusted" in untrusted
        missing = refusal(InfluxDbSinkConfig(victoria.url, InfluxApi.V2, org="lab",
                                             bucket="cellrig", ca_file=tmp_path / "absent.pem"))
        assert "cannot use the InfluxDB ca_file" in missing

"""deploy/influxdb/setup-influxdb1.sh against a real influxd with authentication on: it
creates the database, a user per station that may write and a Grafana user that may only
read; the forwarder writes with the station's password file; running it again changes
nothing."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from pathlib import Path

import pytest
from servers import InfluxDb1, http, influxdb1, require

from cellrig.daemon.influx_writers import InfluxRefused, make_writer
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "influxdb" / "setup-influxdb1.sh"
LINE = b"samples,station=assb-lab-3 voltage_v=3.7 1700000000000000000\n"


def run_script(influx: InfluxDb1, folder: Path, *arguments: str) -> str:
    require("curl", "curl")
    require("openssl", "openssl")
    admin = folder / "admin.password"
    admin.write_text(influx.admin_password)
    environment = {**os.environ, "INFLUX_URL": influx.url, "INFLUX_ADMIN_USER": "admin",
                   "INFLUX_ADMIN_PASSWORD_FILE": str(admin)}
    done = subprocess.run(["bash", str(SCRIPT), *arguments], env=environment, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def write(config: InfluxDbSinkConfig) -> None:
    writer = make_writer(config)
    try:
        await writer.write(LINE)
    finally:
        await writer.close()


def test_setup_script(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    with influxdb1(tmp_path / "influxdb", auth=True) as influx:
        said = run_script(influx, tmp_path, "--station", "assb-lab-3", "--grafana", "grafana",
                          "--retention", "520w", "--secrets", str(secrets))
        assert "user assb-lab-3 created" in said and "user grafana created" in said
        station_password = secrets / "assb-lab-3.password"
        assert station_password.stat().st_mode & 0o077 == 0
        policies = influx.query('SHOW RETENTION POLICIES ON "cellrig"')
        rows = policies["results"][0]["series"][0]["values"]
        defaults = [(row[0], row[1]) for row in rows if row[4]]  # name, duration, …, default
        assert defaults == [("cellrig", "87360h0m0s")]

        station = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig",
                                     username="assb-lab-3", password_file=station_password)
        asyncio.run(write(station))
        assert influx.count("samples", "voltage_v", "cellrig") == 1
        grafana = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig",
                                     username="grafana",
                                     password_file=secrets / "grafana.password")
        with pytest.raises(InfluxRefused, match="refused the credentials"):
            asyncio.run(write(grafana))  # read only
        pair = f"grafana:{(secrets / 'grafana.password').read_text().strip()}"
        status, body = http("GET", f"{influx.url}/query?db=cellrig&q=SELECT+count(*)+FROM+"
                            "samples", headers={"Authorization": "Basic " + base64.b64encode(
                                pair.encode()).decode()})
        assert status == 200 and b'"error"' not in body and b"count_voltage_v" in body

        before = station_password.read_text()
        again = run_script(influx, tmp_path, "--station", "assb-lab-3", "--grafana", "grafana",
                           "--secrets", str(secrets))
        assert "user assb-lab-3 exists: password unchanged" in again
        assert station_password.read_text() == before
        asyncio.run(write(station))


def test_setup_script_refuses_bad_names(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--station", "lab 3"], text=True,
                          capture_output=True, check=False,
                          env={**os.environ, "INFLUX_URL": "http://127.0.0.1:9"})
    assert done.returncode == 2 and "is not a name this script accepts" in done.stderr

"""``cellrig daemon`` with both sinks configured: the MQTT bridge on a real mosquitto (a
researcher's ``cellrig --broker … submit`` reaches the station, the local socket sees the
job) and an InfluxDB forwarder whose server is down (the station runs on regardless); SIGTERM
stops everything cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_fixtures import SHORT, DaemonProcess, cellrig, model_station_toml, short_folder
from mqtt_servers import Broker, free_port

pytestmark = pytest.mark.integration

STATION = "assb-lab-3"


def test_the_daemon_runs_its_sinks_and_survives_a_dead_one() -> None:
    with short_folder() as folder:
        broker = Broker(folder, accounts=(STATION, "bob"))
        broker.start()
        try:
            text = model_station_toml(folder / "data", channels=1, time_scale=100.0)
            text = text.replace('name = "model-test"', f'name = "{STATION}"')
            (folder / "token").write_text("not-a-real-token\n")
            text += (f'\n[sinks.mqtt]\nurl = "{broker.url}"\nusername = "{STATION}"\n'
                     f'password_file = "{broker.password_file(STATION)}"\n'
                     f'\n[sinks.influxdb]\nurl = "http://127.0.0.1:{free_port()}"\n'
                     f'org = "lab"\nbucket = "cellrig"\ntoken_file = "{folder / "token"}"\n')
            config = folder / "station.toml"
            config.write_text(text)
            (folder / "short.yaml").write_text(SHORT)
            daemon = DaemonProcess(config, folder / "daemon.log")
            try:
                daemon.wait_ready()
                remote = ("--broker", broker.url, "--station", STATION, "--broker-user", "bob",
                          "--broker-password-file", str(broker.password_file("bob")),
                          "--broker-timeout", "20")
                submitted = cellrig(*remote, "submit", str(folder / "short.yaml"),
                                    "--channel", "A1")
                assert submitted.stdout.startswith("job 1 on A1: ")
                local = cellrig("jobs", "--config", str(config)).stdout.splitlines()
                assert local[1].split()[:2] == ["1", "A1"]
                status = cellrig(*remote, "status").stdout
                assert status.startswith(f"station {STATION}")
                assert daemon.terminate() == 0
            finally:
                daemon.kill()
        finally:
            broker.stop()
        log = (folder / "daemon.log").read_text()
        assert "event=sink-start sink=mqtt" in log
        assert "event=sink-start sink=influxdb" in log
        assert "event=daemon-stopped" in log
        assert "Traceback" not in log
        assert not Path(folder / "data" / "cellrig.sock").exists()

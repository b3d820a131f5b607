"""Stations and people on one real mosquitto (the deploy configuration and ACL): the ACL
keeps accounts to their rights; a broker restart is invisible but for a gap in telemetry;
three ``cellrig daemon`` processes on model stations are listed, commanded and stopped
through the broker, and the one killed shows offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from mqtt_servers import REPOSITORY, STATIONS, Broker
from mqtt_station import JobWriter, StoreStation, station_config

from cellrig.daemon.control_api import ControlError, ErrorCode, SubmitRequest
from cellrig.daemon.control_client import StationUnreachable
from cellrig.daemon.fleet import Fleet, StationSeen
from cellrig.daemon.mqtt_bridge import MqttBridge
from cellrig.daemon.mqtt_connection import BrokerError, make_client, parse_url, settings_of
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store import Store
from cellrig.drivers.backoff import Backoff

pytestmark = pytest.mark.integration

PROTOCOL = ("cellrig: 1\nname: charge\ncell: {capacity: 5 mAh}\n"
            "steps:\n  - Charge at 0.1C until 4.25 V\n")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    folder = tmp_path / "broker"
    folder.mkdir()
    server = Broker(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def bridged(folder: Path, name: str, broker: Broker
                  ) -> AsyncIterator[tuple[Store, MqttBridge]]:
    """A station over a real store on the broker, in this process."""
    config = station_config(folder, name, broker.url, broker.password_file(name),
                            telemetry_interval="200 ms")
    assert config.mqtt is not None
    store = Store.open(config.data_folder / "station.db")
    control = StoreStation(store, name, list(config.channels))
    bridge = MqttBridge(config, store, control, settings_of(config.mqtt),
                        backoff=Backoff(initial_s=0.05, max_s=0.3))
    task = asyncio.create_task(bridge.run())
    try:
        yield store, bridge
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        control.close()
        store.close()


def fleet(broker: Broker, user: str, timeout_s: float = 5.0) -> Fleet:
    return Fleet(parse_url(broker.url, username=user,
                           password_file=broker.password_file(user)), timeout_s=timeout_s)


def account(broker: Broker, name: str, client: str = "") -> aiomqtt.Client:
    settings = parse_url(broker.url, username=name, password_file=broker.password_file(name))
    return make_client(settings, identifier=f"test-{name}{client}-{os.getpid()}")


async def retained(broker: Broker, user: str, topic: str, wait_s: float = 1.0
                   ) -> dict[str, dict[str, Any]]:
    """The retained messages under a topic filter that ``user`` may read."""
    found: dict[str, dict[str, Any]] = {}
    async with account(broker, user) as client:
        await client.subscribe(topic, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    if message.retain:
                        found[message.topic.value] = json.loads(message.payload)  # type: ignore
    return found


async def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_acl_keeps_each_account_to_its_rights(tmp_path: Path, broker: Broker) -> None:
    async with bridged(tmp_path / "s1", "assb-lab-1", broker) as (store, bridge):
        await wait_until(lambda: bridge.connections == 1)
        async with account(broker, "bob", "-snoop") as snoop:
            await snoop.subscribe("cellrig/#", qos=1)
            async with fleet(broker, "alice") as allowed:  # alice may command assb-lab-1
                job = await allowed.station("assb-lab-1").submit(
                    SubmitRequest("A1", PROTOCOL, {}, source="charge.yaml"))
            seen: set[str] = set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.5):
                    async for message in snoop.messages:
                        seen.add(message.topic.value)
        # others read what the station publishes, not alice's request nor its reply
        assert {"cellrig/assb-lab-1/status", "cellrig/assb-lab-1/A1/state"} <= seen
        assert not [topic for topic in seen if "/cmd/" in topic or "/reply/" in topic]
        for user in ("bob", "grafana"):  # bob commands assb-lab-3 only; grafana reads
            async with fleet(broker, user, timeout_s=30.0) as refused:
                with pytest.raises(ControlError, match="does not let") as stop:
                    await refused.station("assb-lab-1").stop(job.id)
                assert stop.value.code is ErrorCode.FORBIDDEN
                with pytest.raises(ControlError, match="Not authorized"):  # at once
                    async with asyncio.timeout(5.0):
                        await refused.station("assb-lab-1").submit(
                            SubmitRequest("A2", PROTOCOL, {}, source="charge.yaml"))
        async with fleet(broker, "mallory", timeout_s=1.0) as stranger:  # no rights at all
            with pytest.raises(StationUnreachable, match="no station"):
                await stranger.station("assb-lab-1").status()
            assert await stranger.stations(wait_s=1.0) == []
            await stranger.client.publish("cellrig/assb-lab-1/cmd/stop",
                                          json.dumps({"job": job.id}).encode(), qos=1)
        # readers and other stations cannot write into a station's subtree
        async with account(broker, "grafana") as reader, account(broker, "assb-lab-2") as other:
            fake = json.dumps({"station": "assb-lab-1", "online": False}).encode()
            await reader.publish("cellrig/assb-lab-1/status", fake, qos=1, retain=True)
            await other.publish("cellrig/assb-lab-1/status", fake, qos=1, retain=True)
            await other.publish("cellrig/assb-lab-1/cmd/stop", b'{"job": 1}', qos=1)
        status = await retained(broker, "alice", "cellrig/assb-lab-1/status")
        assert status["cellrig/assb-lab-1/status"]["online"] is True
        with store.reader() as reader_db:
            jobs = reader_db.jobs()
        assert [(j.id, j.state.value) for j in jobs] == [(job.id, "running")]


async def test_a_station_on_the_wrong_account_is_told(tmp_path: Path, broker: Broker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    config = station_config(tmp_path / "s1", "assb-lab-1", broker.url,
                            broker.password_file("assb-lab-2"))
    assert config.mqtt is not None
    settings = dataclasses.replace(settings_of(config.mqtt), username="assb-lab-2")
    with Store.open(config.data_folder / "station.db") as store:
        control = StoreStation(store, config.name, list(config.channels))
        bridge = MqttBridge(config, store, control, settings)
        bridge.write_check_s = 0.5
        task = asyncio.create_task(bridge.run())
        try:
            await wait_until(lambda: "may not write cellrig/assb-lab-1/#" in caplog.text)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            control.close()


async def test_broker_restart_is_a_gap_in_telemetry_only(tmp_path: Path,
                                                         broker: Broker) -> None:
    async with bridged(tmp_path / "s1", "assb-lab-1", broker) as (store, bridge):
        await wait_until(lambda: bridge.connections == 1)
        async with fleet(broker, "alice") as before:
            job = await before.station("assb-lab-1").submit(
                SubmitRequest("A1", PROTOCOL, {}, source="charge.yaml"))
        await asyncio.sleep(1.2)  # the state change is published within a second
        await asyncio.to_thread(broker.restart)  # no persistence: retained messages are gone
        await wait_until(lambda: bridge.connections == 2, 15.0)
        await asyncio.sleep(0.5)
        found = await retained(broker, "grafana", "cellrig/assb-lab-1/#")
        assert found["cellrig/assb-lab-1/status"]["online"] is True
        assert found["cellrig/assb-lab-1/A1/state"]["job_id"] == job.id
        assert found["cellrig/assb-lab-1/A2/state"]["job_id"] is None
        async with account(broker, "grafana") as watcher:  # telemetry flows again
            await watcher.subscribe("cellrig/assb-lab-1/A1/telemetry")
            voltage_v = JobWriter(store, job.id).samples(3)
            async with asyncio.timeout(5.0):
                message = await anext(aiter(watcher.messages))
            assert json.loads(message.payload)["voltage_v"] == voltage_v  # type: ignore
        async with fleet(broker, "alice") as after:
            stopped = await after.station("assb-lab-1").stop(job.id, "after the restart")
        assert stopped.state == "stopped"


def write_station(folder: Path, name: str, broker: Broker) -> Path:
    """A model station with two channels, publishing to the broker as ``name``."""
    folder.mkdir(parents=True)
    lines = [f'[station]\nname = "{name}"\ndata_folder = "{folder}"\n']
    for channel in ("A1", "A2"):
        lines.append(f'[instruments.bench-{channel}]\ndriver = "model"\n'
                     'options = { cell = "pouch-2x2cm", time_scale = 10 }\n'
                     f'[channels.{channel}]\npotentiostat = "bench-{channel}"\n'
                     'limits = { voltage = ["-0.5 V", "4.5 V"], current = "1 A" }\n')
    lines.append(f'[sinks.mqtt]\nurl = "{broker.url}"\nusername = "{name}"\n'
                 f'password_file = "{broker.password_file(name)}"\n')
    path = folder / "station.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def cellrig(broker: Broker, user: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellrig.daemon.cli", "--broker", broker.url,
         "--broker-user", user, "--broker-password-file", str(broker.password_file(user)),
         *arguments], capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False)


@pytest.mark.slow
async def test_three_daemons_on_one_broker(tmp_path: Path, broker: Broker) -> None:
    daemons = {}
    for name in STATIONS:
        config = write_station(tmp_path / name, name, broker)
        with (tmp_path / f"{name}.log").open("wb") as log:
            daemons[name] = subprocess.Popen(
                [sys.executable, "-m", "cellrig.daemon.cli", "daemon", "--config",
                 str(config)], stdout=subprocess.DEVNULL, stderr=log, cwd=REPOSITORY)
    try:
        async with fleet(broker, "alice", timeout_s=20.0) as alice, \
                fleet(broker, "bob", timeout_s=20.0) as bob:
            seen: list[StationSeen] = []
            async with asyncio.timeout(60.0):
                while len([s for s in seen if s.online]) < 3:
                    await asyncio.sleep(0.2)
                    seen = await alice.stations(wait_s=0.5)
            assert [(s.name, s.channels) for s in seen] == [
                (name, ["A1", "A2"]) for name in STATIONS]

            listing = await asyncio.to_thread(cellrig, broker, "alice", "stations")
            assert listing.returncode == 0, listing.stderr
            for name in STATIONS:
                assert f"{name}  online" in listing.stdout

            jobs = {}
            for name, person in (("assb-lab-1", alice), ("assb-lab-2", alice),
                                 ("assb-lab-3", bob)):
                view = await person.station(name).submit(
                    SubmitRequest("A1", PROTOCOL, {"id": f"cell-{name}"},
                                  source="charge.yaml"))
                assert view.channel == "A1" and view.cell_id == f"cell-{name}"
                jobs[name] = view.id
            for name, person in (("assb-lab-1", alice), ("assb-lab-2", alice),
                                 ("assb-lab-3", bob)):
                station = person.station(name)
                async with asyncio.timeout(20.0):
                    while (await station.job(jobs[name])).state != "running":
                        await asyncio.sleep(0.1)
                stopped = await station.stop(jobs[name], "stopped from the fleet test")
                assert stopped.state in ("stopped", "running")
                async with asyncio.timeout(20.0):
                    while (await station.job(jobs[name])).state != "stopped":
                        await asyncio.sleep(0.1)
                listed = await station.jobs()
                assert [(j.id, j.state) for j in listed] == [(jobs[name], "stopped")]

            # the station commands through the broker print what they print on the PC
            protocol = tmp_path / "charge.yaml"
            protocol.write_text(PROTOCOL, encoding="utf-8")
            submitted = await asyncio.to_thread(
                cellrig, broker, "alice", "--station", "assb-lab-2", "submit", str(protocol),
                "--channel", "A2")
            assert submitted.returncode == 0, submitted.stderr
            job_id = int(submitted.stdout.split()[1])
            assert submitted.stdout.startswith(f"job {job_id} on A2: ")
            viewed = await alice.station("assb-lab-2").job(job_id)
            assert viewed.channel == "A2"
            stopped_cli = await asyncio.to_thread(
                cellrig, broker, "alice", "--station", "assb-lab-2", "stop", str(job_id))
            assert stopped_cli.returncode == 0, stopped_cli.stderr
            async with asyncio.timeout(20.0):
                while (await alice.station("assb-lab-2").job(job_id)).state != "stopped":
                    await asyncio.sleep(0.1)
            remote = await asyncio.to_thread(cellrig, broker, "alice", "--station",
                                             "assb-lab-2", "jobs")
            local = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "cellrig.daemon.cli", "jobs", "--socket",
                                 str(tmp_path / "assb-lab-2" / "cellrig.sock")],
                capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False)
            assert local.returncode == 0, local.stderr
            assert remote.stdout == local.stdout and f"{job_id}  A2" in remote.stdout
            status = await asyncio.to_thread(cellrig, broker, "alice", "--station",
                                             "assb-lab-2", "status", "--once")
            assert status.stdout.startswith("station assb-lab-2  cellrig "), status.stdout
            denied = await asyncio.to_thread(cellrig, broker, "bob", "--station", "assb-lab-1",
                                             "stop", str(jobs["assb-lab-1"]))
            assert denied.returncode == 1
            assert "does not let 'bob' send this request" in denied.stderr

            daemons["assb-lab-3"].send_signal(signal.SIGKILL)
            daemons["assb-lab-3"].wait(10.0)
        listing = await asyncio.to_thread(cellrig, broker, "bob", "stations")
        assert "assb-lab-3  offline (connection lost)" in listing.stdout, listing.stdout
        assert "assb-lab-1  online" in listing.stdout
    finally:
        for process in daemons.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in daemons.items():
            try:
                process.wait(15.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
            if name != "assb-lab-3":
                log = (tmp_path / f"{name}.log").read_text(errors="replace")
                assert "Traceback" not in log, log[-3000:]


# paho-mqtt 2.2 does not close the socket of a TLS handshake that fails (the untrusted
# client below): the garbage collector does, with a ResourceWarning
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
async def test_tls_with_the_lab_authority(tmp_path: Path) -> None:
    """mqtts:// with the station's ca_file; a client that does not trust the authority is
    refused with the reason."""
    folder = tmp_path / "broker"
    folder.mkdir()
    server = Broker(folder, tls=True)
    server.start()
    try:
        assert server.ca_file is not None
        url = f"mqtts://localhost:{server.tls_port}"
        text = [f'[station]\nname = "assb-lab-1"\ndata_folder = "{tmp_path / "s1"}"\n',
                '[instruments.bench]\ndriver = "model"\n[channels.A1]\n'
                'potentiostat = "bench"\n'
                'limits = { voltage = ["-0.5 V", "4.5 V"], current = "1 A" }\n',
                f'[sinks.mqtt]\nurl = "{url}"\nusername = "assb-lab-1"\n'
                f'password_file = "{server.password_file("assb-lab-1")}"\n'
                f'ca_file = "{server.ca_file}"\n']
        config = load_station_text("\n".join(text), folder=tmp_path)
        assert config.mqtt is not None
        with Store.open(tmp_path / "s1" / "station.db") as store:
            control = StoreStation(store, config.name, list(config.channels))
            bridge = MqttBridge(config, store, control, settings_of(config.mqtt))
            task = asyncio.create_task(bridge.run())
            try:
                settings = parse_url(url, username="alice", ca_file=server.ca_file,
                                     password_file=server.password_file("alice"))
                async with Fleet(settings, timeout_s=5.0) as alice:
                    status = await alice.station("assb-lab-1").status()
                assert [c.channel for c in status.channels] == ["A1"]
                assert bridge.connections == 1
                untrusted = parse_url(url, username="alice",
                                      password_file=server.password_file("alice"))
                with pytest.raises(BrokerError, match="certificate verify failed"):
                    async with Fleet(untrusted):
                        pass
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                control.close()
    finally:
        server.stop()

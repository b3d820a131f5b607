"""A station on a real mosquitto (the deploy configuration and ACL): telemetry, retained
status and states, events and cycle summaries published from a store being written; the
last will on a kill; requests answered, malformed and oversized ones too, with the station
still running after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from mqtt_servers import REPOSITORY, Broker
from mqtt_station import JobWriter, StoreStation, station_config
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cellrig.daemon.control_api import ControlError, ErrorCode, SubmitRequest
from cellrig.daemon.fleet import Fleet
from cellrig.daemon.jobs import JobManager
from cellrig.daemon.mqtt_bridge import MqttBridge, run_mqtt
from cellrig.daemon.mqtt_connection import make_client, parse_url, settings_of
from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store import Store
from cellrig.drivers.backoff import Backoff
from cellrig.protocols.engine.output import EventKind

pytestmark = pytest.mark.integration

STATION = "assb-lab-1"
PROTOCOL = "cellrig: 1\nname: formation\nsteps:\n  - Charge at 0.1C until 4.25 V\n"


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


class Running:
    """A station's store, control and bridge, running."""

    def __init__(self, store: Store, control: StoreStation, bridge: MqttBridge,
                 task: asyncio.Task[None]) -> None:
        self.store = store
        self.control = control
        self.bridge = bridge
        self.task = task


@pytest.fixture
async def station(tmp_path: Path, broker: Broker) -> AsyncIterator[Running]:
    config = station_config(tmp_path / STATION, STATION, broker.url,
                            broker.password_file(STATION), telemetry_interval="500 ms")
    store = Store.open(config.data_folder / "station.db")
    control = StoreStation(store, STATION, list(config.channels))
    assert config.mqtt is not None
    bridge = MqttBridge(config, store, control, settings_of(config.mqtt),
                        backoff=Backoff(initial_s=0.1, max_s=0.5))
    task = asyncio.create_task(bridge.run())
    try:
        yield Running(store, control, bridge, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        control.close()
        store.close()


def account(broker: Broker, name: str, client: str = "") -> aiomqtt.Client:
    settings = parse_url(broker.url, username=name, password_file=broker.password_file(name))
    return make_client(settings, identifier=f"test-{name}{client}-{os.getpid()}")


async def collect(client: aiomqtt.Client, seconds: float) -> list[aiomqtt.Message]:
    found: list[aiomqtt.Message] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                found.append(message)
    return found


async def next_on(client: aiomqtt.Client, topic: str, timeout_s: float = 5.0,
                  **expected: Any) -> dict[str, Any]:
    """The next message on ``topic`` whose payload has the ``expected`` values."""
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            if message.topic.value == topic:
                payload: dict[str, Any] = json.loads(message.payload)  # type: ignore[arg-type]
                if all(payload.get(k) == v for k, v in expected.items()):
                    return payload
    raise AssertionError("unreachable")


async def submit(control: StoreStation, channel: str = "A1") -> int:
    job = await control.submit(SubmitRequest(channel, PROTOCOL, {"id": "cell-07"},
                                             source="formation.yaml"))
    return job.id


async def test_status_state_telemetry_events_and_cycles(broker: Broker,
                                                        station: Running) -> None:
    root = f"cellrig/{STATION}"
    async with account(broker, "grafana") as reader:
        await reader.subscribe(f"{root}/#", qos=1)
        status = await next_on(reader, f"{root}/status", online=True)
        assert status["channels"] == ["A1", "A2"] and status["state"] == "online"
        job_id = await submit(station.control)
        state = await next_on(reader, f"{root}/A1/state", job_id=job_id)
        assert state["job_state"] == "running" and state["protocol_name"] == "formation.yaml"

        writer = JobWriter(station.store, job_id)
        started = time.monotonic()
        last_voltage = 0.0
        while time.monotonic() - started < 2.0:  # 20 samples a second for 2 s
            last_voltage = writer.samples(1)
            await asyncio.sleep(0.05)
        writer.event(EventKind.STEP_END, "reached 4.25 V")
        writer.cycle(1, 0.6)
        writer.cycle(2, 0.59)
        found = await collect(reader, 2.0)
        elapsed_s = time.monotonic() - started

    telemetry = [json.loads(m.payload) for m in found  # type: ignore[arg-type]
                 if m.topic.value == f"{root}/A1/telemetry"]
    # at most one message per 500 ms (less 5 % for jitter), the newest values: the last one
    # is the last sample
    assert 2 <= len(telemetry) <= elapsed_s / (0.5 * 0.95) + 1
    assert telemetry[-1]["voltage_v"] == pytest.approx(last_voltage)
    assert telemetry[-1]["sample_id"] == writer.count
    assert telemetry[-1]["pressure_pa"] is None  # not measured: null, not NaN
    assert telemetry[-1]["temperature_c"] == 60.0 and telemetry[-1]["job_id"] == job_id
    events = [m for m in found if m.topic.value == f"{root}/A1/event"]
    assert len(events) == 1 and events[0].qos == 1
    event = json.loads(events[0].payload)  # type: ignore[arg-type]
    assert event["kind"] == "step end" and event["data"] == {"why": "reached 4.25 V"}
    cycles = [json.loads(m.payload) for m in found  # type: ignore[arg-type]
              if m.topic.value == f"{root}/A1/cycle"]
    assert [c["cycle"] for c in cycles] == [1, 2]
    assert cycles[1]["discharge_capacity_ah"] == 0.59 and cycles[1]["duration_s"] == 3600.0

    # retained: a newcomer gets the status, the state and the last cycle at once
    async with account(broker, "grafana") as newcomer:
        await newcomer.subscribe(f"{root}/#", qos=1)
        retained = {m.topic.value: json.loads(m.payload)  # type: ignore[arg-type]
                    for m in await collect(newcomer, 1.0) if m.retain}
    assert retained[f"{root}/status"]["online"] is True
    assert retained[f"{root}/A1/state"]["job_id"] == job_id
    assert retained[f"{root}/A1/cycle"]["cycle"] == 2
    assert retained[f"{root}/A2/state"]["job_id"] is None
    assert f"{root}/A1/event" not in retained and f"{root}/A1/telemetry" not in retained
    # the events' and cycles' cursors are durable
    station.store.flush()
    with station.store.reader() as reader_db:
        assert reader_db.cursor("mqtt.events") == 1 and reader_db.cursor("mqtt.cycles") == 2


async def test_requests_and_bad_requests(broker: Broker, station: Running) -> None:
    settings = parse_url(broker.url, username="alice",
                         password_file=broker.password_file("alice"))
    async with Fleet(settings, timeout_s=5.0) as fleet, fleet.station(STATION) as remote:
        job = await remote.submit(SubmitRequest("A1", PROTOCOL, {"id": "cell-07"},
                                                source="formation.yaml"))
        assert job.state == "running" and job.channel == "A1"
        status = await remote.status()
        assert [c.job_id for c in status.channels] == [job.id, None]
        assert [j.id for j in await remote.jobs()] == [job.id]
        with pytest.raises(ControlError) as missing:
            await remote.stop(99)
        assert missing.value.code is ErrorCode.NOT_FOUND
        with pytest.raises(ControlError) as channel:
            await remote.submit(SubmitRequest("B7", PROTOCOL, {}))
        assert channel.value.code is ErrorCode.NOT_FOUND
        stopped = await remote.stop(job.id, "cell swelled")
        assert stopped.state == "stopped" and stopped.reason == "cell swelled"
        with pytest.raises(ControlError) as again:
            await remote.stop(job.id)
        assert again.value.code is ErrorCode.CONFLICT

    async with account(broker, "alice") as client:
        reply_topic = f"cellrig/{STATION}/reply/alice/raw"
        await client.subscribe(reply_topic, qos=1)

        async def ask(verb: str, payload: bytes) -> dict[str, Any]:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = reply_topic
            properties.CorrelationData = os.urandom(8)
            await client.publish(f"cellrig/{STATION}/cmd/{verb}", payload, qos=1,
                                 properties=properties)
            async with asyncio.timeout(5.0):
                async for message in client.messages:
                    if message.properties.CorrelationData == properties.CorrelationData:
                        answer: dict[str, Any] = json.loads(message.payload)  # type: ignore
                        return answer
            raise AssertionError("unreachable")

        for verb, payload, words in [
            ("stop", b"{not json", "not JSON"),
            ("stop", b"[1, 2]", "JSON object"),
            ("stop", b'{"job": "seven"}', "job number"),
            ("stop", b'{"job": 1, "force": true}', "unknown argument"),
            ("submit", b'{"channel": "A1"}', "protocol_text"),
            ("explode", b"{}", "unknown verb"),
            ("submit", b'{"channel": "A1", "protocol_text": "' + b"x" * 300_000 + b'"}',
             "at most 262144"),
            ("jobs", b"\xff\xfe", "not JSON"),
        ]:
            answer = await ask(verb, payload)
            assert answer["ok"] is False, (verb, payload[:40])
            assert answer["error"]["code"] == "invalid"
            assert words in answer["error"]["message"], answer
        # a request without a response topic is dropped, one with a wildcard in it cannot be
        # answered; the station still answers
        await client.publish(f"cellrig/{STATION}/cmd/status", b"{}", qos=1)
        wildcard = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        wildcard.ResponseTopic = f"cellrig/{STATION}/reply/alice/#"
        with contextlib.suppress(aiomqtt.MqttError):  # the broker disconnects its sender
            async with account(broker, "alice", "-careless") as careless:
                await careless.publish(f"cellrig/{STATION}/cmd/status", b"{}", qos=1,
                                       properties=wildcard)
        answer = await ask("status", b"")
        assert answer["ok"] is True and answer["result"]["station"] == STATION
    assert not station.task.done()
    assert station.bridge.connections == 1


KILLED_STATION = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from mqtt_station import StoreStation, station_config
from cellrig.daemon.mqtt_bridge import run_mqtt
from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store import Store
from pathlib import Path

async def main():
    config = station_config(Path(sys.argv[2]), "assb-lab-2", sys.argv[3], Path(sys.argv[4]))
    with Store.open(config.data_folder / "station.db") as store:
        await run_mqtt(config, store, StoreStation(store, config.name, list(config.channels)))

asyncio.run(main())
"""


async def test_last_will_says_offline_when_the_daemon_is_killed(tmp_path: Path,
                                                                broker: Broker) -> None:
    script = tmp_path / "station.py"
    script.write_text(KILLED_STATION, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), str(Path(__file__).parent), str(tmp_path / "s2"),
         broker.url, str(broker.password_file("assb-lab-2"))], cwd=REPOSITORY)
    try:
        async with account(broker, "bob") as watcher:
            await watcher.subscribe("cellrig/assb-lab-2/status", qos=1)
            online = await next_on(watcher, "cellrig/assb-lab-2/status", 15.0, online=True)
            assert online["channels"] == ["A1", "A2"]
            process.send_signal(signal.SIGKILL)
            offline = await next_on(watcher, "cellrig/assb-lab-2/status", 5.0, online=False)
            assert offline["reason"] == "connection lost" and offline["state"] == "offline"
        async with account(broker, "bob") as newcomer:
            await newcomer.subscribe("cellrig/assb-lab-2/status", qos=1)
            retained = await next_on(newcomer, "cellrig/assb-lab-2/status", 2.0)
            assert retained["online"] is False
    finally:
        process.kill()
        process.wait(5.0)


async def test_a_clean_stop_says_offline(broker: Broker, station: Running) -> None:
    async with account(broker, "grafana") as watcher:
        await watcher.subscribe(f"cellrig/{STATION}/status", qos=1)
        await next_on(watcher, f"cellrig/{STATION}/status", online=True)
        station.task.cancel()
        offline = await next_on(watcher, f"cellrig/{STATION}/status", online=False)
        assert offline["reason"] == "stopped"


CYCLES = """cellrig: 1
name: quick-cycles
cell: {capacity: 5 mAh}
steps:
  - repeat: 2
    steps:
      - Charge at 1C for 1 minute
      - Discharge at 1C until 2.5 V
"""


async def test_a_real_job_on_a_model_station(tmp_path: Path, broker: Broker) -> None:
    """The job manager runs a job on the model bench: its engine's samples, events and cycle
    summaries reach the broker through the store, and its state follows the job."""
    folder = tmp_path / STATION
    folder.mkdir()
    text = [f'[station]\nname = "{STATION}"\ndata_folder = "{folder}"\n',
            '[instruments.bench]\ndriver = "model"\n'
            'options = { cell = "pouch-2x2cm", time_scale = 30 }\n'
            '[channels.A1]\npotentiostat = "bench"\n'
            'limits = { voltage = ["-0.5 V", "4.5 V"], current = "1 A" }\n',
            f'[sinks.mqtt]\nurl = "{broker.url}"\nusername = "{STATION}"\n'
            f'password_file = "{broker.password_file(STATION)}"\n'
            'telemetry_interval = "200 ms"\n']
    config = load_station_text("\n".join(text), folder=folder)
    root = f"cellrig/{STATION}"
    with Store.open(folder / "station.db") as store:
        async with open_station(config) as station, account(broker, "grafana") as reader:
            manager = JobManager(station, store)
            await reader.subscribe(f"{root}/#", qos=1)
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(manager.run()), group.create_task(station.run()),
                             group.create_task(run_mqtt(config, store, manager))]
                    await next_on(reader, f"{root}/status", 10.0, online=True)
                    job = await manager.submit(SubmitRequest("A1", CYCLES, {"id": "c1"},
                                                             source="quick.yaml"))
                    found = []
                    ran = False
                    async with asyncio.timeout(60.0):
                        async for message in reader.messages:
                            payload = json.loads(message.payload)  # type: ignore[arg-type]
                            found.append((message.topic.value, payload))
                            if message.topic.value != f"{root}/A1/state":
                                continue
                            ran = ran or payload["job_id"] == job.id
                            if ran and payload["job_state"] is None:  # the job has ended
                                break
                    for task in tasks:
                        task.cancel()
            except* asyncio.CancelledError:
                pass
            finally:
                manager.close()
    kinds = [p["kind"] for t, p in found if t == f"{root}/A1/event"]
    assert kinds[0] == "job start" and kinds[-1] == "job end" and "step start" in kinds
    states = [p["job_state"] for t, p in found if t == f"{root}/A1/state"]
    assert "running" in states and states[-1] is None
    telemetry = [p for t, p in found if t == f"{root}/A1/telemetry"]
    assert len(telemetry) >= 3 and {p["job_id"] for p in telemetry} == {job.id}
    assert {"CC_CHG", "CC_DCH"} <= {p["step_type"] for p in telemetry}
    cycles = [p for t, p in found if t == f"{root}/A1/cycle"]
    assert [c["cycle"] for c in cycles] == [1, 2]
    # 5 mA for a minute of the bench's time
    assert cycles[0]["charge_capacity_ah"] == pytest.approx(5e-3 / 60, rel=0.05)

"""Benchmark: MQTT through a real mosquitto (prints figures; docs/mqtt.md quotes them).

Run: ``python tests/bench/bench_mqtt.py [--messages N] [--channels 256] [--seconds S]``.

1. Messages per second through mosquitto on loopback: an aiomqtt client publishes
   ``--messages`` telemetry-sized JSON messages (QoS 0, then QoS 1), ``mosquitto_sub``
   receives them; the rate is counted from the first publish to the last message received.
2. Telemetry latency: ``--channels`` running jobs each store one sample a second (a writer
   thread hands each second's samples to the store, as the engines would); the station's
   bridge reads them from the store and publishes telemetry; a subscriber takes each message's
   latency as its arrival time minus the sample's Unix time. Reported: messages per second,
   p50 / p99 / max latency, and the CPU the whole process used per second (store writer,
   bridge, subscriber and writer thread together).

The broker is the deploy configuration with its ACL and password accounts (as the tests
start it); it needs mosquitto installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from mqtt_servers import Broker
from mqtt_station import JobWriter, StoreStation, station_config

from cellrig.daemon.control_api import SubmitRequest
from cellrig.daemon.mqtt_bridge import MqttBridge
from cellrig.daemon.mqtt_connection import make_client, parse_url, settings_of
from cellrig.daemon.store import Store

PAYLOAD = json.dumps({
    "station": "assb-lab-1", "channel": "A1", "job_id": 12, "sample_id": 123456,
    "unix_time_s": 1796642762.123, "test_time_s": 3600.5, "voltage_v": 3.912345678,
    "current_a": 0.0634, "temperature_c": 60.02, "pressure_pa": 2001234.5, "cycle": 17,
    "step_count": 52, "step_type": "CC_CHG", "step_time_s": 1200.0,
    "cycle_charge_capacity_ah": 0.3123, "cycle_discharge_capacity_ah": 0.0}).encode()


def client(broker: Broker, user: str, name: str) -> aiomqtt.Client:
    settings = parse_url(broker.url, username=user, password_file=broker.password_file(user))
    return make_client(settings, identifier=name)


async def throughput(broker: Broker, messages: int, qos: int) -> tuple[float, int]:
    """Messages per second from one aiomqtt publisher (this process) to a ``mosquitto_sub``
    subscriber (its own process, in C), and how many the broker dropped (it drops what a
    subscriber's queue cannot hold when the publisher outruns it)."""
    topic = "cellrig/assb-lab-1/A1/telemetry"
    password = broker.password_file("grafana").read_text(encoding="utf-8").strip()
    subscriber = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-V", "5", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "grafana",
        "-P", password, "-q", str(qos), "-t", topic, "-C", str(messages), "-W", "60",
        stdout=asyncio.subprocess.PIPE)
    assert subscriber.stdout is not None
    await asyncio.sleep(1.0)  # its subscription is in place
    received = 0
    last_s = 0.0

    async def count() -> None:
        nonlocal received, last_s
        assert subscriber.stdout is not None
        async for _ in subscriber.stdout:
            received += 1
            last_s = time.perf_counter()

    counter = asyncio.create_task(count())
    async with client(broker, "assb-lab-1", f"bench-pub-{qos}") as publisher:
        started = time.perf_counter()
        window = 1000 if qos == 0 else 100  # publishes in flight at once
        for first in range(0, messages, window):
            await asyncio.gather(*(publisher.publish(topic, PAYLOAD, qos=qos)
                                   for _ in range(min(window, messages - first))))
        seen = -1
        while received != seen and received < messages:  # until 1 s without a message
            seen = received
            await asyncio.sleep(1.0)
    if subscriber.returncode is None:
        subscriber.terminate()
    await subscriber.wait()
    await counter
    return received / (last_s - started), messages - received


def write_samples(store: Store, jobs: list[int], seconds: float, stop: threading.Event) -> None:
    """One sample per job each second, stamped with the time it is handed over."""
    writers = [JobWriter(store, job_id) for job_id in jobs]
    start = time.time()
    tick = 0
    while not stop.is_set() and tick < seconds:
        for writer in writers:
            writer.samples(1, unix_time_s=time.time())
        tick += 1
        stop.wait(max(0.0, start + tick - time.time()))


async def latency(folder: Path, broker: Broker, channels: int, seconds: float
                  ) -> dict[str, float]:
    names = [f"C{index:03d}" for index in range(channels)]
    config = station_config(folder, "assb-lab-1", broker.url,
                            broker.password_file("assb-lab-1"), channels=names)
    assert config.mqtt is not None
    latencies: list[float] = []
    with Store.open(config.data_folder / "station.db") as store:
        control = StoreStation(store, config.name, names)
        jobs = [(await control.submit(SubmitRequest(name, "bench", {}))).id for name in names]
        bridge = MqttBridge(config, store, control, settings_of(config.mqtt))
        bridge_task = asyncio.create_task(bridge.run())
        async with client(broker, "grafana", "bench-latency") as subscriber:
            await subscriber.subscribe("cellrig/assb-lab-1/+/telemetry")
            while bridge.connections == 0:
                await asyncio.sleep(0.05)
            stop = threading.Event()
            cpu_start = time.process_time()
            wall_start = time.monotonic()
            writer = threading.Thread(target=write_samples,
                                      args=(store, jobs, seconds, stop), daemon=True)
            writer.start()
            try:
                async with asyncio.timeout(seconds + 3.0):
                    async for message in subscriber.messages:
                        sample = json.loads(message.payload)  # type: ignore[arg-type]
                        latencies.append(time.time() - sample["unix_time_s"])
            except TimeoutError:
                pass
            wall_s = time.monotonic() - wall_start
            cpu_s = time.process_time() - cpu_start
            stop.set()
            writer.join()
        bridge_task.cancel()
        await asyncio.gather(bridge_task, return_exceptions=True)
        control.close()
    latencies.sort()
    return {"messages": len(latencies), "rate": len(latencies) / seconds,
            "p50": statistics.median(latencies),
            "p99": latencies[int(0.99 * (len(latencies) - 1))], "max": latencies[-1],
            "cpu_per_s": cpu_s / wall_s}


async def main(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cellrig-bench-mqtt-") as folder:
        broker_folder = Path(folder) / "broker"
        broker_folder.mkdir()
        broker = Broker(broker_folder)
        broker.start()
        try:
            for qos in (0, 1):
                rate, dropped = await throughput(broker, arguments.messages, qos)
                print(f"throughput QoS {qos}: {rate:,.0f} messages/s received "
                      f"({arguments.messages:,} {len(PAYLOAD)}-byte telemetry payloads, "
                      f"{dropped:,} dropped by the broker)")
            figures = await latency(Path(folder) / "station", broker, arguments.channels,
                                    arguments.seconds)
            print(f"telemetry, {arguments.channels} channels at 1 Hz for "
                  f"{arguments.seconds:g} s: {figures['messages']:.0f} messages "
                  f"({figures['rate']:.0f}/s); latency from the sample's hand-over to the "
                  f"subscriber p50 {figures['p50'] * 1e3:.0f} ms, p99 "
                  f"{figures['p99'] * 1e3:.0f} ms, max {figures['max'] * 1e3:.0f} ms; "
                  f"process CPU {figures['cpu_per_s'] * 100:.1f} % of a core")
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0)
    asyncio.run(main(parser.parse_args()))

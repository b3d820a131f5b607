"""The MQTT parts without a broker: broker URLs and password files, topics and payloads,
requests answered (bad ones too), the store feed's telemetry and cursors, [sinks.mqtt] in
station.toml, and the `cellrig stations` table."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cellrig.daemon.cli_format import table
from cellrig.daemon.control_api import (
    ControlError,
    ErrorCode,
    JobView,
    StationStatus,
    SubmitRequest,
)
from cellrig.daemon.fleet import StationSeen
from cellrig.daemon.fleet_cli import stations_table
from cellrig.daemon.mqtt_commands import CommandHandler, parse
from cellrig.daemon.mqtt_connection import BrokerError, parse_url, read_password
from cellrig.daemon.mqtt_feed import CYCLES_CURSOR, EVENTS_CURSOR, StoreFeed
from cellrig.daemon.mqtt_payloads import Topics, encode
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.store import Provenance, Store
from cellrig.errors import ConfigError, Diagnostic, ProtocolError, SourceLocation
from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, EventKind, SampleBlock

# -- broker URLs and accounts -----------------------------------------------------------------


def test_broker_urls(tmp_path: Path) -> None:
    plain = parse_url("mqtt://broker.lab.example")
    assert (plain.host, plain.port, plain.tls, plain.username) == (
        "broker.lab.example", 1883, False, None)
    secret = tmp_path / "alice.password"
    secret.write_text("s3cret\n", encoding="utf-8")
    tls = parse_url("mqtts://alice@broker.lab.example", password_file=secret)
    assert (tls.port, tls.tls, tls.username, tls.password) == (8883, True, "alice", "s3cret")
    assert "s3cret" not in repr(tls)
    assert tls.url == "mqtts://broker.lab.example:8883"
    assert parse_url("mqtt://bob@h:1884", username="carol").username == "carol"


@pytest.mark.parametrize(("url", "words"), [
    ("http://broker", "not a broker URL"),
    ("broker.lab.example", "not a broker URL"),
    ("mqtt://broker:99999", "port 99999"),
])
def test_wrong_broker_urls(url: str, words: str) -> None:
    with pytest.raises(BrokerError, match=words):
        parse_url(url)


def test_tls_files_need_mqtts_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    with pytest.raises(BrokerError, match="no such file"):
        parse_url("mqtts://broker", ca_file=ca)
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    with pytest.raises(BrokerError, match="need an mqtts:// URL"):
        parse_url("mqtt://broker", ca_file=ca)
    with pytest.raises(BrokerError, match="both"):
        parse_url("mqtts://broker", cert_file=ca)


def test_password_files(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="cannot read"):
        read_password(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(BrokerError, match="empty"):
        read_password(empty)


# -- topics and payloads ----------------------------------------------------------------------


def test_topics() -> None:
    topics = Topics("cellrig/", "assb-lab-3")
    assert topics.status == "cellrig/assb-lab-3/status"
    assert topics.channel("A1", "telemetry") == "cellrig/assb-lab-3/A1/telemetry"
    assert topics.command("stop") == "cellrig/assb-lab-3/cmd/stop"
    assert topics.commands == "cellrig/assb-lab-3/cmd/+"
    assert topics.reply("alice", "c1") == "cellrig/assb-lab-3/reply/alice/c1"


def test_payloads_have_null_where_json_has_no_number() -> None:
    encoded = encode({"v": math.nan, "t": [math.inf, 1.5], "n": {"x": -math.inf}})
    assert json.loads(encoded) == {"v": None, "t": [None, 1.5], "n": {"x": None}}


# -- requests ---------------------------------------------------------------------------------


class Control:
    """A station control that records calls; ``fail`` makes status raise it."""

    station_name = "assb-lab-1"

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def _job(self, job_id: int, state: str = "running") -> JobView:
        return JobView(job_id, "A1", state, "", "formation", "cell-7", 1.0, 2.0, None)

    async def submit(self, request: SubmitRequest) -> JobView:
        self.calls.append(("submit", request))
        return self._job(1, "queued")

    async def jobs(self, states: Sequence[str] | None = None) -> list[JobView]:
        self.calls.append(("jobs", states))
        return [self._job(1)]

    async def job(self, job_id: int) -> JobView:
        return self._job(job_id)

    async def status(self) -> StationStatus:
        if self.fail is not None:
            raise self.fail
        return StationStatus("assb-lab-1", "0.1.0", 1.0, [])

    async def pause(self, job_id: int) -> JobView:
        return self._job(job_id, "paused")

    async def resume(self, job_id: int) -> JobView:
        return self._job(job_id)

    async def stop(self, job_id: int, reason: str = "stopped on request") -> JobView:
        self.calls.append(("stop", (job_id, reason)))
        if job_id == 404:
            raise ControlError(ErrorCode.NOT_FOUND, "there is no job 404")
        return self._job(job_id, "stopped")

    async def events(self, job_id: int, after_id: int = 0) -> list[Any]:
        return []


async def test_requests_answered_with_the_control_api_json() -> None:
    control = Control()
    handler = CommandHandler(control)
    stopped = await handler.answer("stop", b'{"job": 3, "reason": "swelled"}')
    assert stopped["ok"] is True and stopped["result"]["state"] == "stopped"
    assert control.calls[-1] == ("stop", (3, "swelled"))
    submitted = await handler.answer("submit", json.dumps(
        {"channel": "A1", "protocol_text": "formation", "cell": {"id": "c"}}).encode())
    assert submitted["result"]["state"] == "queued"
    assert (await handler.answer("status", None))["result"]["station"] == "assb-lab-1"
    assert (await handler.answer("jobs", b'{"states": ["running"]}'))["ok"] is True
    refused = await handler.answer("stop", b'{"job": 404}')
    assert refused == {"ok": False, "error": {"code": "not-found",
                                              "message": "there is no job 404"}}


@pytest.mark.parametrize(("verb", "payload", "words"), [
    ("stop", b"{", "not JSON"),
    ("stop", b"\xff", "not JSON"),
    ("stop", b"7", "JSON object"),
    ("stop", b"{}", "job number"),
    ("stop", b'{"job": true}', "job number"),
    ("jobs", b'{"states": "running"}', "list of job states"),
    ("reboot", b"{}", "unknown verb"),
    ("stop", b" " * 300_000, "at most 262144"),
])
async def test_bad_requests_answered_invalid(verb: str, payload: bytes, words: str) -> None:
    answer = await CommandHandler(Control()).answer(verb, payload)
    assert answer["ok"] is False and answer["error"]["code"] == "invalid"
    assert words in answer["error"]["message"]


async def test_failures_answered_never_raised() -> None:
    crash = await CommandHandler(Control(RuntimeError("bug"))).answer("status", b"")
    assert crash["error"] == {"code": "internal",
                              "message": "the station failed; its log says more"}
    bad_input = ProtocolError([Diagnostic(SourceLocation("p.yaml", 3, 5), "no such step")])
    refused = await CommandHandler(Control(bad_input)).answer("status", b"")
    assert refused["error"]["code"] == "refused" and "p.yaml:3:5" in refused["error"]["message"]


def test_an_empty_payload_is_an_empty_request() -> None:
    assert parse("status", b"") == {} and parse("status", None) == {}


# -- the store feed ---------------------------------------------------------------------------


def block(first: int, count: int) -> SampleBlock:
    numbers = np.arange(first, first + count, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        if name in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
            columns[name] = np.ones(count, dtype=np.int64)
        elif name == "Step Type":
            columns[name] = np.array(["REST"] * count, dtype=object)
        else:
            columns[name] = numbers
    columns["Applied Pressure / Pa"] = np.full(count, math.nan)
    return SampleBlock(columns)


def summary(cycle: int) -> CycleSummary:
    return CycleSummary(cycle, 0.0, 10.0, 1.0, 0.9, 4.0, 3.5, 0.9, 0.87, 3.9, 3.7, 0.9, 0.1,
                        None, None, None, None, 1.0, None)


def test_feed_latest_sample_per_channel_and_durable_cursors(tmp_path: Path) -> None:
    provenance = Provenance("p", "text", "{}", {}, {}, "0" * 64)
    with Store.open(tmp_path / "station.db") as store:
        old = store.add_job("A1", provenance)
        store.sink(old).samples(block(0, 5))  # before the feed starts: not telemetry
        store.flush()
        feed = StoreFeed(store, "s")
        feed.open()
        assert feed.latest_samples() == {}
        second = store.add_job("A2", provenance)
        store.sink(old).samples(block(100, 3))
        store.sink(second).samples(block(200, 4))
        store.sink(old).samples(block(300, 2))
        store.sink(second).event(Event(EventKind.WARNING, 1.0, time.time(), 1, 1, 1, "hot"))
        store.sink(old).cycle(summary(1))
        store.flush()
        latest = feed.latest_samples()
        assert latest["A1"]["voltage_v"] == 301.0 and latest["A1"]["job_id"] == old
        assert latest["A2"]["voltage_v"] == 203.0 and latest["A2"]["pressure_pa"] != 0
        assert math.isnan(latest["A2"]["pressure_pa"])  # encode() makes it null
        assert feed.latest_samples() == {}
        events = feed.new_events()
        assert [(c, p["kind"], p["message"]) for c, p in events.messages] == [
            ("A2", "warning", "hot")]
        cycles = feed.new_cycles()
        assert [(c, p["cycle"], p["duration_s"]) for c, p in cycles.messages] == [
            ("A1", 1, 10.0)]
        feed.delivered(EVENTS_CURSOR, events.last_id)
        feed.delivered(CYCLES_CURSOR, cycles.last_id)
        assert feed.new_events().messages == [] and feed.new_cycles().messages == []
        store.flush()
        feed.close()
        again = StoreFeed(store, "s")  # a restarted daemon: the cursors were kept
        again.open()
        assert again.new_events().messages == [] and again.new_cycles().messages == []
        again.close()


# -- station.toml -----------------------------------------------------------------------------

STATION = """[station]
name = "assb-lab-3"
data_folder = "data"
[instruments.bench]
driver = "model"
[channels.A1]
potentiostat = "bench"
limits = { voltage = ["2.0 V", "4.4 V"], current = "100 mA" }
[sinks.mqtt]
"""


def test_mqtt_sink_settings(tmp_path: Path) -> None:
    config = load_station_text(STATION + 'url = "mqtts://broker:8883"\nca_file = "ca.pem"\n'
                               'cert_file = "c.pem"\nkey_file = "k.pem"\n'
                               'telemetry_interval = "250 ms"\n', folder=tmp_path)
    assert config.mqtt is not None
    assert config.mqtt.ca_file == tmp_path / "ca.pem"
    assert config.mqtt.key_file == tmp_path / "k.pem"
    assert config.mqtt.telemetry_interval_s == 0.25
    default = load_station_text(STATION + 'url = "mqtt://broker"\n', folder=tmp_path)
    assert default.mqtt is not None and default.mqtt.telemetry_interval_s == 1.0


@pytest.mark.parametrize(("lines", "words"), [
    ('url = "mqtt://broker"\nca_file = "ca.pem"\n', "ca_file is for TLS"),
    ('url = "mqtts://broker"\ncert_file = "c.pem"\n', "needs key_file"),
    ('url = "mqtt://broker"\ntelemetry_interval = "0 s"\n', "more than zero"),
    ('url = "mqtt://broker"\ntelemetry_interval = "2 V"\n', "telemetry_interval"),
])
def test_wrong_mqtt_sink_settings(lines: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_station_text(STATION + lines)
    assert words in caught.value.render()


# -- cellrig stations -------------------------------------------------------------------------


def test_stations_table() -> None:
    running = {"job_id": 12, "job_state": "running", "cycle": 3, "step": "CC charge",
               "step_count": 4, "queued": 1, "latched": None}
    seen = [StationSeen("assb-lab-1", True, "", ["A1", "A2"],
                        {"A1": running, "A2": {"job_id": None, "job_state": None,
                                               "queued": 0}}),
            StationSeen("assb-lab-2", False, "connection lost", ["B1"], {})]
    expected = table(
        ("STATION", "STATUS", "CHANNEL", "JOB", "STATE", "CYCLE", "STEP", "QUEUED"),
        [["assb-lab-1", "online", "A1", "12", "running", "3", "4: CC charge", "1"],
         ["", "", "A2", "-", "idle", "-", "-", "0"],
         ["assb-lab-2", "offline (connection lost)", "B1", "-", "-", "-", "-", "-"]],
        [False, False, False, True, False, True, False, True])
    assert stations_table(seen) == expected


def test_station_commands_go_through_the_broker_only_when_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cellrig.daemon.cli import build_parser
    from cellrig.daemon.fleet_cli import remote_handler, run_remote

    monkeypatch.delenv("CELLRIG_BROKER", raising=False)
    parser = build_parser()
    remote = parser.parse_args(["--broker", "mqtt://b", "--station", "s1", "--broker-timeout",
                                "5", "stop", "12"])
    assert remote_handler(remote) is run_remote and remote.broker_timeout == 5.0
    assert remote_handler(parser.parse_args(["stop", "12"])) is None
    local = parser.parse_args(["--broker", "mqtt://b", "stop", "12", "--socket", "/run/x"])
    assert remote_handler(local) is None
    assert remote_handler(parser.parse_args(["--broker", "mqtt://b", "stations"])) is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--broker-timeout", "-1", "stations"])


def test_any_value_can_be_encoded() -> None:
    encoded = encode({"f32": np.float32(1.5), "nan": np.float64("nan"), "i": np.int64(3),
                      "path": Path("/x"), "list": [np.float32("inf")]})
    assert json.loads(encoded) == {"f32": 1.5, "nan": None, "i": 3, "path": "/x",
                                   "list": [None]}

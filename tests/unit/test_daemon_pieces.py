"""The daemon's pure pieces: log lines, the watchdog interval, request parsing, the CLI's
station commands' arguments."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from cellrig.daemon.cli import build_parser
from cellrig.daemon.control_api import ControlError, ErrorCode
from cellrig.daemon.control_server import decode_request, finite, request_id, verb_and_args
from cellrig.daemon.sd_notify import Notifier
from cellrig.daemon.service_log import LogFormat, fields, setup_logging


@pytest.fixture
def log_stream() -> object:
    stream = io.StringIO()
    handlers = logging.getLogger().handlers[:]
    handler = setup_logging(LogFormat.TEXT, stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    assert logging.getLogger().handlers == handlers


def test_logfmt_lines_carry_the_event_and_quote_what_needs_it(log_stream: io.StringIO) -> None:
    logging.getLogger("cellrig.test").info(
        "job %d resumed", 12, extra=fields("job-resume", channel="A1", job=12, skipped=None,
                                           note='say "hi"'))
    line = log_stream.getvalue().strip()
    assert "\n" not in line
    pairs = line.split(" ", 5)
    assert pairs[0].startswith("time=") and pairs[0].endswith("Z")
    assert pairs[1:5] == ["level=info", "logger=cellrig.test", "event=job-resume", "channel=A1"]
    assert pairs[5] == 'job=12 note="say \\"hi\\"" message="job 12 resumed"'
    assert "skipped" not in line


def test_json_lines_with_a_traceback_stay_one_line() -> None:
    stream = io.StringIO()
    handler = setup_logging(LogFormat.JSON, stream=stream)
    try:
        try:
            raise ValueError("broken")
        except ValueError:
            logging.getLogger("cellrig.test").exception("it failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "log" and record["level"] == "error"
    assert "ValueError: broken" in record["traceback"]


def test_the_watchdog_runs_at_half_the_interval_for_this_process_only() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}
                    ).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
                    ).watchdog_interval_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
                    ).watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s is None
    notifier = Notifier({"NOTIFY_SOCKET": "@abstract"})
    assert notifier.address == "\0abstract" and notifier.enabled
    outside = Notifier({})
    assert not outside.enabled and outside.ready("x") is False


@pytest.mark.parametrize(("line", "message"), [
    (b"{", "one JSON object per line"),
    (b"[1]", "a request is a JSON object"),
    (b"\xff", "one JSON object per line"),
])
def test_lines_that_are_not_requests(line: bytes, message: str) -> None:
    with pytest.raises(ControlError) as error:
        decode_request(line)
    assert error.value.code is ErrorCode.INVALID and message in error.value.message


def test_request_fields_are_checked() -> None:
    request = decode_request(b'{"id": 4, "verb": "job", "args": {"job": 3}}')
    assert request_id(request) == 4 and verb_and_args(request) == ("job", {"job": 3})
    assert request_id({"id": True}) is None and request_id({"id": [1]}) is None
    assert request_id({"id": "a"}) == "a"
    assert verb_and_args({"verb": "status"}) == ("status", {})
    for bad in ({"verb": 3}, {"verb": "jobs", "args": [1]}):
        with pytest.raises(ControlError):
            verb_and_args(bad)


def test_replies_carry_no_nan() -> None:
    assert finite({"a": [1.0, float("nan")], "b": float("inf"), "c": "x"}) == \
        {"a": [1.0, None], "b": None, "c": "x"}


def test_station_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["submit", "formation", "--channel", "A1", "-p", "upper=4.3V",
                              "--start-with", "3", "--start-with", "4", "--socket", "s"])
    assert (args.protocol, args.channel, args.params, args.start_with, args.socket) == \
        ("formation", "A1", ["upper=4.3V"], [3, 4], "s")
    args = parser.parse_args(["export", "7", "--format", "bdf-csv", "--store", "x.db"])
    assert (args.job, args.formats, args.store, args.plots) == (7, ["bdf-csv"], "x.db", False)
    args = parser.parse_args(["daemon", "--config", "s.toml", "--log-format", "json"])
    assert (args.config, args.log_format, args.socket) == ("s.toml", "json", None)
    args = parser.parse_args(["demo", "--speed", "500"])
    assert (args.speed, args.protocol, args.out) == (500.0, "formation", None)
    for wrong in (["status", "--interval", "0"], ["events", "0"], ["jobs", "--state", "done"],
                  ["export", "1", "--store", "a", "--config", "b"], ["daemon"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(wrong)
        assert exit_.value.code == 2

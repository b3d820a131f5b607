"""The daemon's log: one line per event on stderr, as logfmt or JSON.

Every line has the time (UTC, ISO 8601), the level, the logger, an ``event`` name (a short
fixed word a log query can match: ``job-start``, ``control-request``, ``sink-failed``), the
``channel`` and ``job`` when there is one, and a ``message`` for a person. Under systemd,
stderr goes to the journal, which keeps each line as one entry.

A module logs an event with the standard library::

    log.info("job 12 resumed", extra=fields("job-resume", channel="A1", job=12))
"""

from __future__ import annotations

import json
import logging
import sys
import time
from enum import StrEnum
from typing import Any, TextIO

#: Record attributes the formatters write as fields of their own, in this order.
FIELDS = ("event", "channel", "job")
#: Attributes every LogRecord has; anything else in ``extra`` is written as a field too.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    """logfmt: ``time=… level=info event=job-start channel=A1 job=12 message="…"``"""
    JSON = "json"
    """one JSON object per line"""


def fields(event: str, **values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the event name and fields (None values left out)."""
    return {"event": event, **{key: value for key, value in values.items() if value is not None}}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a line shows of a record, in order: time, level, logger, event, channel, job,
    other extra fields, message, and the traceback when there is one."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    found: dict[str, Any] = {
        "time": f"{stamp}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": getattr(record, "event", None) or "log",
    }
    for name in FIELDS[1:]:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    for name, value in vars(record).items():
        if name not in _STANDARD and name not in found and not name.startswith("_"):
            found[name] = value
    found["message"] = record.getMessage()
    if record.exc_info:
        found["traceback"] = logging.Formatter().formatException(record.exc_info)
    return found


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and not any(c in text for c in ' ="\\\n\t'):
        return text
    return json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs on one line; values with spaces or quotes are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}"
                        for key, value in record_fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record), default=str, ensure_ascii=False)


def setup_logging(log_format: LogFormat = LogFormat.TEXT, level: int = logging.INFO,
                  stream: TextIO | None = None) -> logging.Handler:
    """Send cellrig's log (and warnings of the libraries it uses) to ``stream`` (stderr)
    in ``log_format``; returns the handler, so a caller can remove it again."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.JSON else LogfmtFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("cellrig").setLevel(level)
    return handler

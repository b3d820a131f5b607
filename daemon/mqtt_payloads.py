"""MQTT topics and the JSON payloads a station publishes (docs/mqtt.md is the schema).

Topics, under the configured prefix (``cellrig``)::

    cellrig/<station>/status                  retained: online (with its channels) / offline
    cellrig/<station>/<channel>/telemetry     the latest values, at most once a second
    cellrig/<station>/<channel>/state         retained: the job, its step, latched, queued
    cellrig/<station>/<channel>/event         every event of the channel's jobs, QoS 1
    cellrig/<station>/<channel>/cycle         retained: each cycle summary as it ends
    cellrig/<station>/cmd/<verb>              requests (MQTT 5 response topic + correlation)
    cellrig/<station>/reply/<user>/<client>   replies, where the requester asked for them

Payloads are JSON objects with SI values and the unit in each name; a value that was not
measured is ``null`` (JSON has no NaN). Every payload names its station and channel, so a
subscriber to ``cellrig/#`` needs no topic parsing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cellrig import __version__
from cellrig.protocols.engine.output import CycleSummary

from .control_api import API_VERSION, ChannelStatus, to_json
from .store_records import SampleColumns, StoredEvent

#: Telemetry fields and the sample columns they come from.
TELEMETRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("unix_time_s", "Unix Time / s"),
    ("test_time_s", "Test Time / s"),
    ("voltage_v", "Voltage / V"),
    ("current_a", "Current / A"),
    ("temperature_c", "Ambient Temperature / degC"),
    ("pressure_pa", "Applied Pressure / Pa"),
    ("cycle", "Cycle Count / 1"),
    ("step_count", "Step Count / 1"),
    ("step_type", "Step Type"),
    ("step_time_s", "Step Time / s"),
    ("cycle_charge_capacity_ah", "Cycle Charging Capacity / Ah"),
    ("cycle_discharge_capacity_ah", "Cycle Discharging Capacity / Ah"),
)
#: The fields of a channel's state; a change of any of them is published.
STATE_FIELDS = ("job_id", "job_state", "protocol_name", "step", "step_count", "cycle",
                "latched", "queued")


class Topics:
    """The topic names of one station under a prefix."""

    def __init__(self, prefix: str, station: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.station = station
        self.root = f"{self.prefix}/{station}"

    @property
    def status(self) -> str:
        """The station's retained status."""
        return f"{self.root}/status"

    def channel(self, channel: str, kind: str) -> str:
        """``telemetry``, ``state``, ``event`` or ``cycle`` of a channel."""
        return f"{self.root}/{channel}/{kind}"

    def command(self, verb: str) -> str:
        """Where requests of one verb go."""
        return f"{self.root}/cmd/{verb}"

    @property
    def commands(self) -> str:
        """The filter the station subscribes to for requests."""
        return f"{self.root}/cmd/+"

    def reply(self, user: str, client: str) -> str:
        """A response topic inside the station's subtree, so the station's account may write
        it and the requester's account may read it (see deploy/mosquitto/acl)."""
        return f"{self.root}/reply/{user}/{client}"


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON; NaN and infinities become null, numpy scalars numbers, anything else
    JSON does not know its text (so that no value can stop a message)."""
    return json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False,
                      default=str).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def status_payload(station: str, channels: Sequence[str], *, online: bool,
                   unix_time_s: float | None, reason: str = "") -> dict[str, Any]:
    """The station's status: ``online`` with its channels, or ``offline`` with why (the last
    will says ``connection lost``, a clean shutdown ``stopped``)."""
    return {"station": station, "state": "online" if online else "offline",
            "online": online, "channels": list(channels), "software_version": __version__,
            "api_version": API_VERSION, "unix_time_s": unix_time_s, "reason": reason}


def telemetry_payload(station: str, channel: str, chunk: SampleColumns,
                      row: int) -> dict[str, Any]:
    """One sample's live values."""
    payload: dict[str, Any] = {"station": station, "channel": channel,
                               "job_id": int(chunk.job_ids[row]),
                               "sample_id": int(chunk.ids[row])}
    for name, column in TELEMETRY_COLUMNS:
        value = chunk.columns[column][row]
        payload[name] = value if isinstance(value, str) else value.item()
    return payload


def state_payload(station: str, channel: ChannelStatus, unix_time_s: float) -> dict[str, Any]:
    """What runs on a channel (no live readings: those are telemetry)."""
    payload: dict[str, Any] = {"station": station, "channel": channel.channel}
    payload.update({name: getattr(channel, name) for name in STATE_FIELDS})
    payload["unix_time_s"] = unix_time_s
    return payload


def state_key(channel: ChannelStatus) -> tuple[Any, ...]:
    """What a state message is published again for when it changes."""
    return tuple(getattr(channel, name) for name in STATE_FIELDS)


def event_payload(station: str, channel: str, stored: StoredEvent) -> dict[str, Any]:
    """One stored event."""
    event = stored.event
    return {"station": station, "channel": channel, "job_id": stored.job_id, "id": stored.id,
            "kind": event.kind.value, "test_time_s": event.test_time_s,
            "unix_time_s": event.unix_time_s, "cycle": event.cycle,
            "step_count": event.step_count, "step_id": event.step_id,
            "message": event.message, "data": to_json(event.data)}


def cycle_payload(station: str, channel: str, job_id: int, cycle_id: int,
                  summary: CycleSummary) -> dict[str, Any]:
    """One cycle summary, with its duration."""
    payload: dict[str, Any] = {"station": station, "channel": channel, "job_id": job_id,
                               "id": cycle_id}
    payload.update(dataclasses.asdict(summary))
    payload["duration_s"] = summary.duration_s
    return payload


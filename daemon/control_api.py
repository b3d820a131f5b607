"""What a station answers to, wherever the request comes from.

The station's job manager implements :class:`StationControl`; the Unix-socket control server,
the MQTT command handler and the CLI all speak it, so ``cellrig submit`` on the PC and the
same command through the broker give the same answer. Requests and replies are plain
dataclasses with a JSON form (:func:`to_json` / ``from_json``) that the wire formats carry
unchanged; a refusal is a :class:`ControlError` with a code a client can act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cellrig.errors import CellrigError

#: Version of the request and reply layout below; a client that sees a newer one says so.
API_VERSION = 1


class ErrorCode(StrEnum):
    """Why a request was not carried out."""

    INVALID = "invalid"
    """the request is malformed (missing field, wrong type, too large)"""
    REFUSED = "refused"
    """the protocol, cell or parameters cannot run on that channel (the message says why)"""
    NOT_FOUND = "not-found"
    """no such job or channel"""
    CONFLICT = "conflict"
    """the job is not in a state that allows it (stopping a completed job, …)"""
    FORBIDDEN = "forbidden"
    """the caller may not do this"""
    INTERNAL = "internal"
    """the station failed; its log says more"""


class ControlError(CellrigError):
    """A request the station did not carry out, with a code and a message for a person."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        """``{"code": ..., "message": ...}``."""
        return {"code": self.code.value, "message": self.message}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ControlError:
        """The error a reply carried."""
        try:
            code = ErrorCode(str(value.get("code", "internal")))
        except ValueError:
            code = ErrorCode.INTERNAL
        return cls(code, str(value.get("message", "")))


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """A job to queue: a protocol's text (a file's contents, or a library name as ``library``),
    the cell it runs on (the keys of a cell file: ``id``, ``capacity`` or ``areal_capacity``
    and ``area``, ``mass``, ``notes``, …, values as in protocol files), parameter overrides
    (``name: "value with unit"``) and the channel.

    ``source`` names where the protocol came from (a file name), so errors can point at it.
    ``start_with`` lists queued jobs on other channels that share a chamber with this one and
    must start together with it (their temperature steps then stay in step).
    ``hold_for_group`` queues the job without starting it until a later submission names it
    (or its group) in ``start_with``: that is how the first member of a group waits on an idle
    channel."""

    channel: str
    protocol_text: str
    cell: Mapping[str, Any]
    parameters: Mapping[str, str] = field(default_factory=dict)
    source: str = "<submitted>"
    start_with: Sequence[int] = ()
    submitted_by: str = ""
    hold_for_group: bool = False

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SubmitRequest:
        """Checked reading of the JSON form; :class:`ControlError` (invalid) names the field."""
        channel = _text(value, "channel")
        protocol_text = _text(value, "protocol_text")
        cell = value.get("cell", {})
        if not isinstance(cell, Mapping):
            raise ControlError(ErrorCode.INVALID, "'cell' must be a mapping")
        parameters = value.get("parameters", {})
        if not isinstance(parameters, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str | int | float)
                for k, v in parameters.items()):
            raise ControlError(ErrorCode.INVALID,
                               "'parameters' must map names to values, e.g. {\"upper\": \"4.2 V\"}")
        start_with = value.get("start_with", [])
        if not isinstance(start_with, list) or not all(
                isinstance(j, int) and not isinstance(j, bool) for j in start_with):
            raise ControlError(ErrorCode.INVALID, "'start_with' must be a list of job ids")
        hold = value.get("hold_for_group", False)
        if not isinstance(hold, bool):
            raise ControlError(ErrorCode.INVALID, "'hold_for_group' must be true or false")
        return cls(channel=channel, protocol_text=protocol_text, cell=dict(cell),
                   parameters={k: str(v) for k, v in parameters.items()},
                   source=str(value.get("source", "<submitted>")),
                   start_with=tuple(start_with), submitted_by=str(value.get("submitted_by", "")),
                   hold_for_group=hold)


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as a client sees it."""

    id: int
    channel: str
    state: str
    """a :class:`~cellrig.daemon.store_schema.JobState` value"""
    reason: str
    protocol_name: str
    cell_id: str
    queued_unix_s: float
    started_unix_s: float | None
    ended_unix_s: float | None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> JobView:
        """The view a reply carried."""
        fields: dict[str, Any] = {f.name: value.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel, live: what runs on it and its last reading (None where unknown)."""

    channel: str
    job_id: int | None
    job_state: str | None
    protocol_name: str | None
    step: str | None
    """a readable description of the current step (``CC charge 60 mA to 4.25 V``)"""
    step_count: int | None
    cycle: int | None
    voltage_v: float | None
    current_a: float | None
    temperature_c: float | None
    pressure_pa: float | None
    charge_capacity_ah: float | None
    discharge_capacity_ah: float | None
    test_time_s: float | None
    latched: str | None = None
    """why the channel is latched safe by the supervisor, when it is"""
    queued: int = 0
    """jobs waiting on the channel"""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ChannelStatus:
        """The status a reply carried."""
        fields: dict[str, Any] = {f.name: value[f.name] for f in dataclasses.fields(cls)
                                  if f.name in value}
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class StationStatus:
    """The whole station, live."""

    station: str
    software_version: str
    unix_time_s: float
    channels: Sequence[ChannelStatus]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> StationStatus:
        """The status a reply carried."""
        return cls(station=str(value["station"]), software_version=str(value["software_version"]),
                   unix_time_s=float(value["unix_time_s"]),
                   channels=[ChannelStatus.from_json(c) for c in value["channels"]])


@dataclass(frozen=True, slots=True)
class EventView:
    """One stored event of a job."""

    id: int
    job_id: int
    kind: str
    test_time_s: float
    unix_time_s: float
    cycle: int
    step_count: int
    step_id: int | None
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> EventView:
        """The event a reply carried."""
        fields: dict[str, Any] = {f.name: value[f.name] for f in dataclasses.fields(cls)
                                  if f.name in value}
        return cls(**fields)


class StationControl(Protocol):
    """The station's control surface. Every method raises :class:`ControlError` to refuse."""

    @property
    def station_name(self) -> str:
        """The station's name (from station.toml)."""
        ...

    async def submit(self, request: SubmitRequest) -> JobView:
        """Validate and queue a job; returns it queued (or already running)."""
        ...

    async def jobs(self, states: Sequence[str] | None = None) -> list[JobView]:
        """Jobs, newest first, optionally only those in ``states``."""
        ...

    async def job(self, job_id: int) -> JobView:
        """One job."""
        ...

    async def status(self) -> StationStatus:
        """Every channel, live."""
        ...

    async def pause(self, job_id: int) -> JobView:
        """Pause a running job at its next block (output off until resumed)."""
        ...

    async def resume(self, job_id: int) -> JobView:
        """Resume a paused job."""
        ...

    async def stop(self, job_id: int, reason: str = "stopped on request") -> JobView:
        """Stop a queued, running or paused job; the cell is left safe."""
        ...

    async def events(self, job_id: int, after_id: int = 0) -> list[EventView]:
        """A job's events after ``after_id``."""
        ...


def to_json(value: Any) -> Any:
    """The JSON form of a request, reply or list of them (dataclasses as objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def _text(value: Mapping[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str) or not found:
        raise ControlError(ErrorCode.INVALID, f"'{name}' must be a non-empty string")
    return found

"""The lab's stations through one broker: which stations there are, and the same requests as
on a station's PC, sent over MQTT 5 request/response.

::

    async with Fleet(parse_url("mqtts://broker.lab.example", username="alice",
                               password_file=Path("~/.cellrig/mqtt.password"))) as fleet:
        for seen in await fleet.stations():
            print(seen.name, seen.online, seen.channels)
        async with fleet.station("assb-lab-3") as station:      # a ControlClient
            job = await station.stop(12)

A request goes to ``<prefix>/<station>/cmd/<verb>`` with a response topic inside the
station's subtree that names this client (``<prefix>/<station>/reply/<user>/<client id>``) and
random correlation data; the reply is matched by both. Before the first request to a station
its retained status is read, so a station that is offline or was never seen gets a clear
error at once instead of a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cellrig.drivers.cancellation import cancellable

from .control_api import ControlError, ErrorCode, to_json
from .control_client import ControlClient, StationUnreachable
from .mqtt_commands import MAX_REQUEST_BYTES
from .mqtt_connection import BrokerError, BrokerSettings, client_id, make_client
from .mqtt_payloads import Topics

log = logging.getLogger("cellrig.fleet")

#: How long a reply may take (a submission checks the protocol; a stop waits for the cell).
REPLY_TIMEOUT_S = 60.0
#: How long to wait for retained messages after subscribing.
RETAINED_WAIT_S = 1.0
#: A listing ends when no retained message came for this long.
QUIET_S = 0.3


@dataclass(slots=True)
class StationSeen:
    """A station as its retained messages describe it."""

    name: str
    online: bool = False
    reason: str = ""
    channels: list[str] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    """each channel's retained state (job_id, job_state, protocol_name, step, …)"""
    software_version: str = ""
    unix_time_s: float | None = None


class Fleet:
    """One connection to the broker for a person (or a script)."""

    def __init__(self, settings: BrokerSettings, *, prefix: str = "cellrig",
                 timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.settings = settings
        self.prefix = prefix.rstrip("/")
        self.timeout_s = timeout_s
        self.user = settings.username or "anonymous"
        self.identifier = client_id("cellrig-cli")
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, asyncio.Future[Any]] = {}
        self._seen: dict[str, StationSeen] = {}
        self._heard = asyncio.Event()

    async def __aenter__(self) -> Fleet:
        client = make_client(self.settings, identifier=self.identifier)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"cannot connect to {self.settings.url}: {exc}") from None
        self._client = client
        self._watch_refusals(client)
        self._reader = asyncio.create_task(self._read(), name="fleet.read")
        await self._subscribe(f"{self.prefix}/+/reply/{self.user}/{self.identifier}")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)
        self._client = None

    def _watch_refusals(self, client: aiomqtt.Client) -> None:
        """Fail a request at once when the broker refuses it. An MQTT 5 broker acknowledges a
        publish its ACL does not allow with "not authorized" (mosquitto does), but aiomqtt 2
        does not pass the acknowledgement's code on, so the paho client beneath it is asked:
        its ``publish`` tells which message id carries which correlation data, its
        ``on_publish`` the code of each acknowledgement. Without those internals a refused
        request ends in the reply timeout instead."""
        paho: Any = getattr(client, "_client", None)
        if paho is None or not hasattr(paho, "on_publish"):
            return
        publish, on_publish = paho.publish, paho.on_publish
        mids: dict[int, bytes] = {}

        def publishing(topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                       properties: Any = None, *args: Any, **kwargs: Any) -> Any:
            info = publish(topic, payload, qos, retain, properties, *args, **kwargs)
            correlation = getattr(properties, "CorrelationData", None)
            if correlation is not None:
                mids[info.mid] = bytes(correlation)
            return info

        def acknowledged(client: Any, userdata: Any, mid: int, reason_code: Any,
                         properties: Any) -> None:
            correlation = mids.pop(mid, None)
            if correlation is not None and getattr(reason_code, "is_failure", False):
                waiting = self._waiting.get(correlation)
                if waiting is not None and not waiting.done():
                    waiting.set_exception(ControlError(ErrorCode.FORBIDDEN, (
                        f"the broker {self.settings.url} does not let {self.user!r} send "
                        f"this request ({reason_code}): its ACL decides which stations an "
                        "account may command")))
            on_publish(client, userdata, mid, reason_code, properties)

        paho.publish = publishing
        paho.on_publish = acknowledged

    @property
    def client(self) -> aiomqtt.Client:
        if self._client is None:
            raise BrokerError("not connected to the broker (use `async with Fleet(...)`)")
        return self._client

    async def _subscribe(self, topic: str) -> None:
        try:
            await cancellable(self.client.subscribe(topic, qos=1))
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"{self.settings.url}: cannot subscribe to {topic}: {exc}"
                              ) from None

    async def _read(self) -> None:
        """Route every message until the connection ends; then every request still waiting
        fails at once."""
        try:
            await self._route()
        except aiomqtt.MqttError as exc:
            lost = StationUnreachable(f"lost the broker {self.settings.url}: {exc}")
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(lost)
            raise

    async def _route(self) -> None:
        """Replies to their requests, retained status and states to the stations seen."""
        async for message in self.client.messages:
            topic = message.topic.value
            payload = _json(message.payload)
            if "/reply/" in topic:
                correlation = getattr(message.properties, "CorrelationData", None)
                waiting = self._waiting.pop(bytes(correlation or b""), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(payload)
                continue
            levels = topic[len(self.prefix) + 1:].split("/")
            if not isinstance(payload, dict) or not levels[0]:
                continue
            seen = self._seen.setdefault(levels[0], StationSeen(levels[0]))
            if levels[1:] == ["status"]:
                seen.online = payload.get("online") is True
                seen.reason = str(payload.get("reason") or "")
                seen.channels = [str(c) for c in payload.get("channels") or []]
                seen.software_version = str(payload.get("software_version") or "")
                seen.unix_time_s = payload.get("unix_time_s")
            elif len(levels) == 3 and levels[2] == "state":
                seen.states[levels[1]] = payload
            self._heard.set()

    async def stations(self, *, wait_s: float = 3.0) -> list[StationSeen]:
        """Every station with a retained status on the broker, by name; waits until the
        retained messages have stopped coming (at most ``wait_s``)."""
        await self._subscribe(f"{self.prefix}/+/status")
        await self._subscribe(f"{self.prefix}/+/+/state")
        await self._quiet(wait_s)
        return sorted((s for s in self._seen.values() if s.channels or s.online or s.reason),
                      key=lambda s: s.name)

    async def _quiet(self, wait_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        first = True
        while loop.time() < deadline:
            self._heard.clear()
            try:
                async with asyncio.timeout(RETAINED_WAIT_S if first else QUIET_S):
                    await self._heard.wait()
            except TimeoutError:
                return
            first = False

    async def seen(self, station: str) -> StationSeen:
        """A station's retained status; :class:`StationUnreachable` if it was never seen or
        is offline."""
        if station not in self._seen or not (self._seen[station].online
                                             or self._seen[station].reason):
            await self._subscribe(Topics(self.prefix, station).status)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RETAINED_WAIT_S):
                    while not self._known(station):
                        self._heard.clear()
                        await self._heard.wait()
        found = self._seen.get(station)
        if found is None or not self._known(station):
            raise StationUnreachable(
                f"no station {station!r} on {self.settings.url} (`cellrig --broker "
                f"{self.settings.url} stations` lists those there are)")
        if not found.online:
            why = found.reason or "no reason given"
            raise StationUnreachable(f"station {station!r} is offline ({why}); requests need "
                                     "its daemon running")
        return found

    def _known(self, station: str) -> bool:
        seen = self._seen.get(station)
        return seen is not None and (seen.online or bool(seen.reason))

    async def request(self, station: str, verb: str, args: Mapping[str, Any] | None = None,
                      *, timeout_s: float | None = None) -> Any:
        """Send one request and return its result; raises the station's
        :class:`ControlError`, or :class:`StationUnreachable`."""
        await self.seen(station)
        topics = Topics(self.prefix, station)
        payload = json.dumps(to_json(dict(args or {})), allow_nan=False).encode()
        if len(payload) > MAX_REQUEST_BYTES:
            raise ControlError(ErrorCode.INVALID, f"the request has {len(payload)} bytes; a "
                               f"station accepts at most {MAX_REQUEST_BYTES}")
        correlation = secrets.token_bytes(16)
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = topics.reply(self.user, self.identifier)
        properties.CorrelationData = correlation
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = reply
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            await cancellable(self.client.publish(topics.command(verb), payload, qos=1,
                                                  properties=properties))
            async with asyncio.timeout(limit_s):
                answer = await reply
        except TimeoutError:
            raise StationUnreachable(
                f"station {station!r} did not answer {verb!r} within {limit_s:g} s; it is "
                f"online, so the broker may not let {self.user!r} command it (its ACL drops "
                "such requests without a word)") from None
        except aiomqtt.MqttError as exc:
            raise StationUnreachable(f"lost the broker {self.settings.url}: {exc}") from None
        finally:
            self._waiting.pop(correlation, None)
        if not isinstance(answer, dict):
            raise ControlError(ErrorCode.INTERNAL, f"station {station!r} answered something "
                                                   "that is not a reply")
        if answer.get("ok") is True:
            return answer.get("result")
        error = answer.get("error")
        raise ControlError.from_json(error if isinstance(error, dict) else {})

    def station(self, name: str) -> RemoteStation:
        """A client of one station with the control socket client's methods."""
        return RemoteStation(self, name)


class RemoteStation(ControlClient):
    """:class:`ControlClient` whose requests travel through the broker: the same verbs, the
    same arguments, the same replies and errors as on the station's PC."""

    def __init__(self, fleet: Fleet, station: str) -> None:
        super().__init__(f"{fleet.settings.url}/{station}", timeout_s=fleet.timeout_s)
        self.fleet = fleet
        self.station = station

    async def connect(self) -> None:
        """Make sure the station is online."""
        await self.fleet.seen(self.station)

    async def close(self) -> None:
        """Nothing to close: the fleet's connection is shared."""

    async def request(self, verb: str, args: Mapping[str, Any] | None = None) -> Any:
        """One request through the broker; a submission not signed by anyone is signed with
        the broker account (the station cannot see who sent it)."""
        found = dict(args or {})
        if verb == "submit" and not found.get("submitted_by"):
            found["submitted_by"] = f"{self.fleet.user} (through the broker)"
        return await self.fleet.request(self.station, verb, found, timeout_s=self.timeout_s)


def _json(payload: Any) -> Any:
    try:
        return json.loads(payload)
    except (TypeError, ValueError):
        return None

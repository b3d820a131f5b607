"""The station on the broker: live telemetry, retained status and channel states, events and
cycle summaries from the store, and requests answered through :class:`StationControl`.

The daemon runs :func:`run_mqtt` as one of its tasks when ``[sinks.mqtt]`` is set. It connects,
says the station is online (retained, with a last will that says offline), re-publishes the
retained states, subscribes to the station's command topics, and then publishes and answers
until the connection drops; then it reconnects with a jittered backoff
(:class:`~cellrig.drivers.backoff.Backoff`). A broker restart is thus invisible except for a
gap in live telemetry. Cancelling the task says offline and disconnects cleanly.

aiomqtt waits for every acknowledgement with ``asyncio.wait_for``, which on Python 3.11 can
swallow a cancellation arriving with the acknowledgement; each publish and subscribe awaited
on its own goes through :func:`~cellrig.drivers.cancellation.cancellable`, so stopping the
bridge always stops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.cancellation import cancellable

from .control_api import StationControl
from .mqtt_commands import CommandHandler
from .mqtt_connection import BrokerError, BrokerSettings, client_id, make_client, settings_of
from .mqtt_feed import CYCLES_CURSOR, EVENTS_CURSOR, Batch, StoreFeed
from .mqtt_payloads import Topics, encode, state_key, state_payload, status_payload
from .station_config_model import StationConfig
from .store import Store

log = logging.getLogger("cellrig.mqtt")
T = TypeVar("T")

#: How often the store is read for new samples, events and cycles.
FEED_TICK_S = 0.2
#: How often the channels' states are asked for (published only when they change).
STATE_INTERVAL_S = 1.0
#: Requests carried out at the same time; more wait in the broker's queue.
CONCURRENT_REQUESTS = 8
#: How long the station's own status may take to come back before the ACL is suspected.
WRITE_CHECK_S = 5.0


async def run_mqtt(config: StationConfig, store: Store, control: StationControl) -> None:
    """Keep the station on the broker of ``config.mqtt`` until cancelled. A wrong setting (a
    password file that cannot be read, a broken URL) raises :class:`BrokerError` at once; a
    broker that is down or refuses the account is retried, and logged."""
    if config.mqtt is None:
        raise BrokerError("the station has no [sinks.mqtt]")
    bridge = MqttBridge(config, store, control, settings_of(config.mqtt))
    await bridge.run()


class MqttBridge:
    """One station's connection to the broker, reconnected as often as needed."""

    def __init__(self, config: StationConfig, store: Store, control: StationControl,
                 settings: BrokerSettings, *, backoff: Backoff | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        assert config.mqtt is not None
        self.config = config
        self.control = control
        self.settings = settings
        self.station = config.name
        self.channels = list(config.channels)
        self.topics = Topics(config.mqtt.topic_prefix, config.name)
        self.telemetry_interval_s = config.mqtt.telemetry_interval_s
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self.wall_clock = wall_clock
        self.feed = StoreFeed(store, config.name)
        self.commands = CommandHandler(control)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mqtt-feed")
        self.connections = 0
        """successful connections so far (for tests and the log)"""
        self._status_heard = asyncio.Event()
        self.write_check_s = WRITE_CHECK_S

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def run(self) -> None:
        """Connect, serve, reconnect; until cancelled."""
        try:
            await self._in_thread(self.feed.open)
            delays = self.backoff.delays()
            while True:
                try:
                    await self._connect_and_serve()
                    delays = self.backoff.delays()
                except* (aiomqtt.MqttError, OSError) as group:
                    log.warning("MQTT: %s: %s", self.settings.url, _first(group))
                except* BrokerError as group:  # TLS files that cannot be loaded
                    log.error("MQTT: %s", _first(group))
                except* Exception as group:  # a bug or the store: log it, keep retrying
                    log.error("MQTT: the bridge failed", exc_info=_first(group))
                delay_s = next(delays)
                log.info("MQTT: reconnecting to %s in %.1f s", self.settings.url, delay_s)
                await asyncio.sleep(delay_s)
        finally:
            await asyncio.shield(self._in_thread(self.feed.close))
            self._thread.shutdown(wait=False)

    async def _connect_and_serve(self) -> None:
        will = aiomqtt.Will(self.topics.status, encode(status_payload(
            self.station, self.channels, online=False, unix_time_s=None,
            reason="connection lost")), qos=1, retain=True)
        client = make_client(self.settings, identifier=client_id(f"cellrig-{self.station}"),
                             will=will)
        async with client:
            self.connections += 1
            log.info("MQTT: connected to %s as %s", self.settings.url, self.station)
            try:
                await self._serve(client)
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        try:
            async with asyncio.timeout(2.0):
                await cancellable(client.publish(self.topics.status, encode(status_payload(
                    self.station, self.channels, online=False, unix_time_s=self.wall_clock(),
                    reason="stopped")), qos=1, retain=True))
        except (aiomqtt.MqttError, TimeoutError):
            log.warning("MQTT: could not say offline before disconnecting")

    async def _serve(self, client: aiomqtt.Client) -> None:
        # telemetry is live: what was stored while the broker was away is not sent
        await self._in_thread(self.feed.skip_samples)
        await cancellable(client.subscribe(self.topics.commands, qos=1))
        # the station reads its own status back: proof that the broker lets it write
        await cancellable(client.subscribe(self.topics.status, qos=1))
        self._status_heard = asyncio.Event()
        await cancellable(client.publish(self.topics.status, encode(status_payload(
            self.station, self.channels, online=True, unix_time_s=self.wall_clock())),
            qos=1, retain=True))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._publish_states(client), name="mqtt.state")
            group.create_task(self._publish_feed(client), name="mqtt.feed")
            group.create_task(self._answer_requests(client, group), name="mqtt.commands")
            group.create_task(self._check_writes(), name="mqtt.check")

    async def _check_writes(self) -> None:
        """Log an error when the station's own status does not come back: the broker drops
        what an account may not write without telling the writer."""
        try:
            async with asyncio.timeout(self.write_check_s):
                await self._status_heard.wait()
        except TimeoutError:
            log.error("MQTT: the broker %s does not deliver what station %s publishes: the "
                      "account %r may not write %s/# (the ACL's station pattern needs the "
                      "account to be named as the station)", self.settings.url, self.station,
                      self.settings.username, self.topics.root)

    # -- states ----------------------------------------------------------------------------

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        """Each channel's state, retained: all of them on connecting, then each change."""
        published: dict[str, tuple[Any, ...]] = {}
        failing = False
        while True:
            try:
                status = await self.control.status()
                failing = False
            except Exception:
                if not failing:  # once, not every second
                    log.exception("MQTT: the station's status could not be read")
                failing = True
                status = None
            if status is not None:
                now = self.wall_clock()
                for channel in status.channels:
                    key = state_key(channel)
                    if published.get(channel.channel) != key:
                        await cancellable(client.publish(
                            self.topics.channel(channel.channel, "state"),
                            encode(state_payload(self.station, channel, now)),
                            qos=1, retain=True))
                        published[channel.channel] = key
            await asyncio.sleep(STATE_INTERVAL_S)

    # -- telemetry, events, cycles ---------------------------------------------------------

    async def _publish_feed(self, client: aiomqtt.Client) -> None:
        pending: dict[str, dict[str, Any]] = {}
        sent_at: dict[str, float] = {}
        while True:
            pending.update(await self._in_thread(self.feed.latest_samples))
            now = time.monotonic()
            # a little slack, so that a channel storing a sample each interval is not pushed
            # to the next tick by jitter
            due = [channel for channel in pending
                   if now - sent_at.get(channel, -1e9) >= self.telemetry_interval_s * 0.95]
            await asyncio.gather(*(
                client.publish(self.topics.channel(channel, "telemetry"),
                               encode(pending.pop(channel)), qos=0)
                for channel in due))
            sent_at.update((channel, now) for channel in due)
            await self._deliver(client, await self._in_thread(self.feed.new_events),
                                "event", EVENTS_CURSOR, retain=False)
            await self._deliver(client, await self._in_thread(self.feed.new_cycles),
                                "cycle", CYCLES_CURSOR, retain=True)
            await asyncio.sleep(FEED_TICK_S)

    async def _deliver(self, client: aiomqtt.Client, batch: Batch, kind: str, cursor: str,
                       *, retain: bool) -> None:
        """Publish at QoS 1 and, once the broker has them all, move the durable cursor."""
        if not batch.messages:
            return
        await asyncio.gather(*(
            client.publish(self.topics.channel(channel, kind), encode(payload), qos=1,
                           retain=retain)
            for channel, payload in batch.messages))
        await self._in_thread(self.feed.delivered, cursor, batch.last_id)

    # -- requests --------------------------------------------------------------------------

    async def _answer_requests(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(CONCURRENT_REQUESTS)
        prefix = self.topics.command("")
        async for message in client.messages:
            topic = message.topic.value
            if topic == self.topics.status:
                self._status_heard.set()
                continue
            if not topic.startswith(prefix):
                continue
            verb = topic[len(prefix):]
            response_topic = getattr(message.properties, "ResponseTopic", None)
            correlation = getattr(message.properties, "CorrelationData", None)
            if not response_topic:
                log.warning("MQTT: a %r request without a response topic was ignored "
                            "(requests need MQTT 5 with a response topic)", verb)
                continue
            await slots.acquire()
            group.create_task(self._answer(client, slots, verb, message.payload,
                                           response_topic, correlation),
                              name=f"mqtt.request.{verb}")

    async def _answer(self, client: aiomqtt.Client, slots: asyncio.Semaphore, verb: str,
                      payload: Any, response_topic: str, correlation: bytes | None) -> None:
        try:
            reply = await self.commands.answer(verb, _payload_bytes(payload))
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if correlation:
                properties.CorrelationData = correlation
            properties.ContentType = "application/json"
            try:
                await cancellable(client.publish(response_topic, encode(reply), qos=1,
                                                 properties=properties))
            except ValueError as exc:  # a response topic no message can go to ('#', '+')
                log.warning("MQTT: cannot answer %s on %r: %s", verb, response_topic, exc)
        finally:
            slots.release()


def _payload_bytes(payload: Any) -> bytes | bytearray | str | None:
    if payload is None or isinstance(payload, bytes | bytearray | str):
        return payload
    return str(payload)


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of an exception group (what the log names)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


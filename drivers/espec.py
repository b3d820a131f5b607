"""ESPEC temperature chambers (P-300 / SCP-220 family controllers) over serial or TCP.

The controller speaks CR LF-framed ASCII (command set and sources in :mod:`.espec_protocol`)
on RS-232/485 at 9600 baud, or over TCP through the LAN option or a serial-to-Ethernet
forwarder; :class:`~cellrig.drivers.serial_link.SerialLink` reaches both (a device path or a
``socket://host:port`` URL).

Behaviour:

- ``set_temperature`` refuses a setpoint outside ``temperature_range_c`` before sending it;
  the range is the chamber's rating given by the station, narrowed at connect time to the
  controller's own upper and lower limits (``TEMP?``). It then sends ``TEMP, S<value>`` and,
  unless the chamber already runs in constant mode, ``MODE,CONSTANT``.
- ``standby`` (``MODE,STANDBY``) is the chamber's safe state: no heating or cooling.
- Every temperature the driver reads feeds the stability rule (:mod:`.chamber_stability`);
  ``stable(within_k, for_s)`` answers from those readings without talking to the chamber.
- ``NA:<reason>`` replies raise :class:`InstrumentReported`; timeouts, garbled replies and a
  dropped connection raise the link's errors. Nothing is retried behind the caller's back:
  the failed exchange raises, is logged, and the next exchange first reconnects (with bounded
  jittered backoff) if the connection was lost.
- Alarm codes are model-specific (the controller's manual lists them); ``alarm_names`` maps
  the station's chamber codes to words, and an unnamed code reads ``alarm <code>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Protocol, Self, TypeVar

from cellrig.errors import ConnectionLost, InstrumentReported, MalformedReply

from . import espec_protocol as wire
from .backoff import Backoff
from .chamber_common import ChamberMode, Clock, check_setpoint, controller_range
from .chamber_stability import StabilityWatch
from .ports import ChamberPort
from .serial_link import SerialLink

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class LineLink(Protocol):
    """The part of :class:`SerialLink` the driver uses (a scripted link in unit tests)."""

    url: str
    instrument: str

    @property
    def is_open(self) -> bool:
        """Whether the connection is up."""
        ...

    async def open(self) -> None:
        """Open the connection."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5,
                     sleep: Callable[[float], Awaitable[None]] = ...) -> None:
        """Close and open again with backoff."""
        ...

    async def query(self, text: str, *, timeout_s: float | None = None) -> str:
        """Send one line, return the one-line reply."""
        ...


class EspecChamber:
    """One ESPEC chamber, shared by ``channels``; implements the chamber port."""

    def __init__(self, link: LineLink, *, temperature_range_c: tuple[float, float],
                 channels: tuple[str, ...] = (), rs485_address: int | None = None,
                 alarm_names: Mapping[int, str] | None = None, clock: Clock = time.monotonic,
                 backoff: Backoff | None = None, reconnect_attempts: int = 3,
                 stability: StabilityWatch | None = None) -> None:
        self.link = link
        self.channels = channels
        self.rs485_address = rs485_address
        self.alarm_names = dict(alarm_names or {})
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.reconnect_attempts = reconnect_attempts
        self.stability = stability or StabilityWatch()
        self._lock = asyncio.Lock()
        self._rated_range_c = temperature_range_c
        self._range_c = temperature_range_c
        wire.addressed("", rs485_address)  # validates the address

    @classmethod
    def over_serial(cls, url: str, *, temperature_range_c: tuple[float, float],
                    channels: tuple[str, ...] = (), instrument: str = "espec",
                    baudrate: int = 9600, timeout_s: float = 2.0,
                    rs485_address: int | None = None,
                    alarm_names: Mapping[int, str] | None = None,
                    clock: Clock = time.monotonic,
                    backoff: Backoff | None = None) -> EspecChamber:
        """A driver on its own :class:`SerialLink` (device path or ``socket://`` URL)."""
        link = SerialLink(url, instrument=instrument, baudrate=baudrate, timeout_s=timeout_s)
        return cls(link, temperature_range_c=temperature_range_c, channels=channels,
                   rs485_address=rs485_address, alarm_names=alarm_names, clock=clock,
                   backoff=backoff)

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.link.open()
        try:
            status = await self.read_temperature_status()
            self._range_c = controller_range(
                self._rated_range_c, (status.lower_limit_c, status.upper_limit_c),
                instrument=self.link.instrument, address=self.link.url,
                command=wire.TEMPERATURE_QUERY)
        except BaseException:
            await self.link.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.link.close()

    @property
    def temperature_range_c(self) -> tuple[float, float]:
        """Lowest and highest setpoint accepted: the rating within the controller's limits."""
        return self._range_c

    # -- the port ---------------------------------------------------------------------------

    async def read_temperature(self) -> float:
        """The measured air temperature in °C (``TEMP?``)."""
        return (await self.read_temperature_status()).temperature_c

    async def set_temperature(self, setpoint_c: float) -> None:
        """A new constant setpoint, and the chamber running in constant mode."""
        command = wire.setpoint_command(setpoint_c)
        check_setpoint(setpoint_c, self._range_c, instrument=self.link.instrument,
                       address=self.link.url, command=command)
        await self._set(command)
        self.stability.new_setpoint(round(setpoint_c, 1))
        if await self.mode() is not ChamberMode.CONSTANT:
            await self.constant()

    async def alarms(self) -> list[str]:
        """Active alarms (``ALARM?``), named by ``alarm_names``."""
        codes = await self._parsed(wire.ALARM_QUERY, wire.parse_alarms)
        return [self.alarm_names.get(code, f"alarm {code}") for code in codes]

    async def standby(self) -> None:
        """Stop heating and cooling (``MODE,STANDBY``)."""
        await self._set(wire.STANDBY_MODE)

    # -- more of the instrument -------------------------------------------------------------

    async def constant(self) -> None:
        """Run on the constant setpoint (``MODE,CONSTANT``)."""
        await self._set(wire.CONSTANT_MODE)

    async def mode(self) -> ChamberMode:
        """The operating mode (``MODE?``)."""
        return await self._parsed(wire.MODE_QUERY, wire.parse_mode)

    async def read_temperature_status(self) -> wire.TemperatureStatus:
        """Measured value, setpoint and the controller's limits (``TEMP?``)."""
        status = await self._parsed(wire.TEMPERATURE_QUERY, wire.parse_temperature)
        self._observe(status.temperature_c, status.setpoint_c)
        return status

    async def monitor(self) -> wire.Monitor:
        """Temperature, humidity, mode and alarm count in one exchange (``MON?``)."""
        monitor = await self._parsed(wire.MONITOR_QUERY, wire.parse_monitor)
        self._observe(monitor.temperature_c, None)
        return monitor

    async def identify(self) -> str:
        """The controller's type string (``TYPE?``), e.g. sensor, controller, rated maximum."""
        return await self._exchange(wire.TYPE_QUERY)

    def stable(self, within_k: float, for_s: float) -> bool:
        """Whether the readings taken so far satisfy the stability rule now."""
        return self.stability.stable(within_k, for_s, now_s=self.clock())

    # -- exchanges --------------------------------------------------------------------------

    def _observe(self, temperature_c: float, setpoint_c: float | None) -> None:
        """Feed the stability rule; a setpoint changed elsewhere (at the panel) restarts it."""
        if setpoint_c is not None and setpoint_c != self.stability.setpoint_c:
            self.stability.new_setpoint(setpoint_c)
        self.stability.add(self.clock(), temperature_c)

    async def _set(self, command: str) -> None:
        await self._parsed(command, wire.check_acknowledged)

    async def _parsed(self, command: str, parse: Callable[[str], _T]) -> _T:
        reply = await self._exchange(command)
        try:
            return parse(reply)
        except wire.ReplyError as error:
            log.warning("%s at %s: %s", self.link.instrument, self.link.url, error)
            raise MalformedReply(str(error), instrument=self.link.instrument,
                                 address=self.link.url, command=command) from error

    async def _exchange(self, command: str) -> str:
        """One command and its reply; reconnects first if the connection was lost. Under the
        driver's lock, so that callers on several tasks never reconnect twice at once."""
        async with self._lock:
            return await self._exchange_locked(command)

    async def _exchange_locked(self, command: str) -> str:
        if not self.link.is_open:
            log.info("%s at %s: reconnecting before %r", self.link.instrument, self.link.url,
                     command)
            try:
                await self.link.reopen(self.backoff, attempts=self.reconnect_attempts)
            except ConnectionLost as error:
                raise ConnectionLost(error.detail, instrument=self.link.instrument,
                                     address=self.link.url, command=command) from error
        try:
            reply = await self.link.query(wire.addressed(command, self.rs485_address))
        except ConnectionLost:
            log.warning("%s at %s: connection lost during %r", self.link.instrument,
                        self.link.url, command)
            raise
        reason = wire.na_reason(reply)
        if reason is not None:
            log.warning("%s at %s: %r refused with NA:%s", self.link.instrument,
                        self.link.url, command, reason)
            raise InstrumentReported(wire.describe_na(reason), instrument=self.link.instrument,
                                     address=self.link.url, command=command)
        return reply


def _implements_the_port(chamber: EspecChamber) -> ChamberPort:
    """Checked by mypy: the driver is a :class:`~cellrig.drivers.ports.ChamberPort`."""
    return chamber

"""A Modbus TCP register link for one instrument, over pymodbus 3's AsyncModbusTcpClient.

The link reads and writes holding registers under one lock and turns what pymodbus reports
into the project's error tree, naming instrument, address and the exchange:

- the connection refused, closed or dropped mid-reply → :class:`ConnectionLost`;
- no reply within ``timeout_s`` → :class:`InstrumentTimeout`;
- bytes came back that do not frame as the reply (garbage) → :class:`MalformedReply` (the
  link watches the received bytes, since pymodbus discards unframed data and just times out);
- a Modbus exception response → :class:`InstrumentReported` with the exception code.

pymodbus' own reconnection and retries are switched off: a failed exchange raises at once, and
the next exchange reconnects first, with the project's bounded jittered backoff.

pymodbus awaits connections and replies with ``asyncio.wait_for``, which on Python 3.11
returns the result instead of raising when a cancellation arrives together with it (CPython
gh-86296): a poll loop cancelled just as its reply came in would poll on for ever, and the
task group waiting for it (a station stopping its pollers) would never end. So every pymodbus
call runs in a task of its own that the caller only waits for
(:func:`~cellrig.drivers.cancellation.cancellable`): the
caller's cancellation (or its own timeout) always reaches the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
)

from .backoff import Backoff
from .cancellation import cancellable

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=InstrumentError)

#: Modbus exception codes (Modbus application protocol, section 7).
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusLink:
    """Holding-register access to one Modbus TCP device (``device_id``) at ``host:port``."""

    def __init__(self, host: str, port: int = 502, *, instrument: str, device_id: int = 1,
                 timeout_s: float = 1.0, backoff: Backoff | None = None,
                 reconnect_attempts: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.host = host
        self.port = port
        self.instrument = instrument
        self.device_id = device_id
        self.timeout_s = timeout_s
        self.backoff = backoff or Backoff()
        self.reconnect_attempts = reconnect_attempts
        self.sleep = sleep
        self.lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._received_bytes = 0

    @property
    def url(self) -> str:
        """Where the device is, as error messages name it."""
        return f"modbus-tcp://{self.host}:{self.port}/{self.device_id}"

    @property
    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        return self._client is not None and self._client.connected

    async def open(self) -> None:
        """Connect once; raises :class:`ConnectionLost` if the device cannot be reached."""
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s,
                                      retries=0, reconnect_delay=0,
                                      trace_packet=self._count_received)
        if not await cancellable(client.connect()):
            client.close()
            raise self._error(ConnectionLost, "cannot connect", None)
        self._client = client

    async def close(self) -> None:
        """Close the connection; never raises."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def reopen(self) -> None:
        """Close and connect again with backoff; raises the last :class:`ConnectionLost`."""
        await self.close()
        delays = self.backoff.delays()
        for attempt in range(1, self.reconnect_attempts + 1):
            try:
                await self.open()
            except ConnectionLost as error:
                if attempt == self.reconnect_attempts:
                    raise
                delay_s = next(delays)
                log.warning("%s at %s: reconnect failed (%s); next try in %.2f s",
                            self.instrument, self.url, error.detail, delay_s)
                await self.sleep(delay_s)
            else:
                if attempt > 1:
                    log.info("%s at %s: reconnected after %d attempts", self.instrument,
                             self.url, attempt)
                return

    async def read(self, address: int, count: int = 1) -> list[int]:
        """Read ``count`` holding registers from ``address`` (function 3)."""
        command = f"read {address}" + (f"+{count}" if count > 1 else "")
        response = await self._execute(
            command, lambda client: client.read_holding_registers(
                address, count=count, device_id=self.device_id))
        registers = list(response.registers)
        if len(registers) != count:
            raise self._error(MalformedReply, f"{len(registers)} registers for {count}",
                              command)
        return registers

    async def write(self, address: int, values: list[int]) -> None:
        """Write holding registers from ``address`` (function 16)."""
        command = f"write {address} {values}"
        await self._execute(command, lambda client: client.write_registers(
            address, values, device_id=self.device_id))

    async def _execute(self, command: str,
                       request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]],
                       ) -> ModbusPDU:
        async with self.lock:
            if not self.is_open:
                log.info("%s at %s: connecting before %r", self.instrument, self.url, command)
                try:
                    await self.reopen()
                except ConnectionLost as error:
                    raise self._error(ConnectionLost, error.detail, command) from error
            client = self._client
            assert client is not None
            self._received_bytes = 0
            try:
                async with asyncio.timeout(self.timeout_s + 1.0):
                    response = await cancellable(request(client))
            except ConnectionException as error:
                await self._lost(command, error)
            except ModbusIOException as error:
                await self._classify(command, error)
            except ModbusException as error:
                raise self._error(MalformedReply, f"bad reply: {error}", command) from error
            except TimeoutError as error:
                raise self._error(InstrumentTimeout, f"no reply within {self.timeout_s:g} s",
                                  command) from error
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            log.warning("%s at %s: %r answered Modbus exception %d (%s)", self.instrument,
                        self.url, command, code, name)
            raise InstrumentReported(f"Modbus exception {code} ({name})",
                                     instrument=self.instrument, address=self.url,
                                     command=command, code=code)
        return response

    async def _classify(self, command: str, error: ModbusIOException) -> NoReturn:
        """No framed reply: the connection dropped, garbage came back, or nothing did."""
        if self._client is None or not self._client.connected:
            await self._lost(command, error)
        if self._received_bytes:
            log.warning("%s at %s: %d byte(s) after %r did not frame as a reply",
                        self.instrument, self.url, self._received_bytes, command)
            raise self._error(MalformedReply, f"{self._received_bytes} byte(s) that are not "
                              "a Modbus reply", command) from error
        log.warning("%s at %s: no reply to %r", self.instrument, self.url, command)
        raise self._error(InstrumentTimeout, f"no reply within {self.timeout_s:g} s",
                          command) from error

    async def _lost(self, command: str, error: BaseException) -> NoReturn:
        log.warning("%s at %s: connection lost during %r", self.instrument, self.url, command)
        await self.close()
        raise self._error(ConnectionLost, f"connection lost: {error}", command) from error

    def _count_received(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received_bytes += len(data)
        return data

    def _error(self, kind: type[_E], message: str, command: str | None) -> _E:
        return kind(message, instrument=self.instrument, address=self.url, command=command)


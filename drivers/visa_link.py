"""A VISA message-based resource for asyncio: pyvisa with the pyvisa-py backend.

SCPI instruments (Keithley 2450 family, Keysight SMUs, impedance analysers) are reached through
VISA resource strings: ``TCPIP::<host>::5025::SOCKET`` for a raw LAN socket,
``TCPIP::<host>::INSTR`` (VXI-11), ``USB0::…::INSTR`` or ``GPIB0::18::INSTR``. pyvisa is
synchronous and a session must not be used from two threads at once, so :class:`VisaLink` owns
one resource as an ``async with`` resource and runs every call on its own single worker thread
(one executor per resource: the calls of one instrument run in order, those of different
instruments in parallel). ``lock`` serialises exchanges that must not interleave. pyvisa keeps
one resource manager per VISA library for the whole process, shared by every link; a link
closes its own resource only (closing the manager would close every instrument's).

Timeouts. The VISA timeout (``timeout_s``) is shorter than the asyncio timeout around each call
(``timeout_s + margin_s``): normally VISA gives up first and the worker is free again; if a call
hangs past the asyncio timeout, the link reports a timeout and the next call queues behind the
stuck one on the same thread. Cancelling an awaiting task does not interrupt the blocking call.

Resynchronisation. After a timeout a late reply would be taken as the answer to the next query,
so the next exchange first clears the device (a VISA device clear; on a raw socket, which has
no device clear, the link drops what pyvisa-py read ahead and drains the socket until it has
been quiet for ``RESYNC_QUIET_S``). On a raw socket the link also looks before each exchange
whether stale bytes are waiting or the instrument closed the connection.

Errors. Every wire problem becomes an error of :mod:`cellrig.errors` naming instrument, address
and command: :class:`ConnectionLost` (cannot open, closed by the peer, I/O error),
:class:`InstrumentTimeout`, :class:`MalformedReply` (undecodable bytes). pyvisa-py's socket
session reports a connection the instrument closed as a timeout (it reads no bytes until the
VISA timeout); the link tells the two apart by looking at the socket.

Sources: PyVISA 1.16 and PyVISA-py 0.8 documentation and source (``ResourceManager("@py")``,
``MessageBasedResource.read/write/query/clear``, ``TCPIPSocketSession``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import select
import socket
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, NoReturn, Protocol, Self, TypeVar

import pyvisa
import pyvisa.constants
import pyvisa.errors
import pyvisa.resources

from cellrig.errors import ConnectionLost, InstrumentError, InstrumentTimeout, MalformedReply

from .backoff import Backoff

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=InstrumentError)
_T = TypeVar("_T")

#: Resynchronisation on a raw socket drains until nothing arrives for this long.
RESYNC_QUIET_S = 0.05

#: pyvisa keeps one resource manager per VISA library for the whole process; its first
#: creation must not race between worker threads.
_MANAGER_LOCK = threading.Lock()

#: VISA status codes that mean the transport is gone rather than slow.
_LOST_CODES = frozenset({
    pyvisa.constants.StatusCode.error_connection_lost,
    pyvisa.constants.StatusCode.error_io,
    pyvisa.constants.StatusCode.error_closing_failed,
    pyvisa.constants.StatusCode.error_invalid_object,
    pyvisa.constants.StatusCode.error_resource_not_found,
    pyvisa.constants.StatusCode.error_resource_busy,
})


class MessageTransport(Protocol):
    """What an SCPI driver needs from its transport (a :class:`VisaLink`, or a scripted fake in
    unit tests): line-based write and query under one lock, open, close and reopen."""

    instrument: str
    address: str
    lock: asyncio.Lock

    @property
    def is_open(self) -> bool:
        """Whether the connection is up (as far as the transport knows)."""
        ...

    async def open(self) -> None:
        """Open the connection once."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5) -> None:
        """Close and open again, retrying with backoff."""
        ...

    async def write(self, command: str) -> None:
        """Send one command (the terminator is added)."""
        ...

    async def query(self, command: str, *, timeout_s: float | None = None) -> str:
        """Send a query and return its reply line (without the terminator)."""
        ...


class VisaLink:
    """One VISA resource on its own worker thread, with a lock, timeouts and resynchronisation.

    ``backend`` is the pyvisa library spec: ``"@py"`` (pyvisa-py, no vendor VISA needed) by
    default.
    """

    def __init__(self, address: str, *, instrument: str, timeout_s: float = 2.0,
                 margin_s: float = 1.0, open_timeout_s: float = 5.0,
                 read_termination: str = "\n", write_termination: str = "\n",
                 encoding: str = "ascii", backend: str = "@py") -> None:
        if not timeout_s > 0 or not margin_s > 0:
            raise ValueError("a VISA link needs positive timeout_s and margin_s")
        self.address = address
        self.instrument = instrument
        self.timeout_s = timeout_s
        self.margin_s = margin_s
        self.open_timeout_s = open_timeout_s
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.encoding = encoding
        self.backend = backend
        self.lock = asyncio.Lock()
        self._manager: pyvisa.ResourceManager | None = None
        self._resource: pyvisa.resources.MessageBasedResource | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._out_of_step = False

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def is_open(self) -> bool:
        """Whether the resource is open (as far as the link knows)."""
        return self._resource is not None

    async def open(self) -> None:
        """Open the resource once; raises :class:`ConnectionLost` if it cannot."""
        if self._resource is not None:
            return
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"visa-{self.instrument}")
        wait_s = self.open_timeout_s + self.margin_s
        try:
            self._manager, self._resource = await self._on_worker(
                self._open_blocking, None, wait_s)
        except TimeoutError as error:
            raise self._error(ConnectionLost, f"cannot open: no answer within {wait_s:g} s",
                              None) from error
        self._out_of_step = False

    async def close(self) -> None:
        """Close the resource (not the resource manager, which every link of the process
        shares: closing it would close them all); never raises."""
        resource = self._resource
        self._resource = self._manager = None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if resource is not None:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout_s + self.margin_s):
                    await loop.run_in_executor(executor, _close_blocking, resource)
            except (TimeoutError, RuntimeError) as error:
                log.warning("%s at %s: closing did not finish cleanly (%s)", self.instrument,
                            self.address, error or type(error).__name__)
        executor.shutdown(wait=False)

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5,
                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                     rng: random.Random | None = None) -> None:
        """Close and open again, retrying with bounded jittered backoff; raises the last
        :class:`ConnectionLost` when every attempt failed."""
        await self.close()
        delays = (backoff or Backoff()).delays(rng)
        last: ConnectionLost | None = None
        for attempt in range(attempts):
            try:
                await self.open()
                log.info("%s at %s: reconnected (attempt %d)", self.instrument, self.address,
                         attempt + 1)
                return
            except ConnectionLost as error:
                last = error
                if attempt + 1 < attempts:
                    delay_s = next(delays)
                    log.warning("%s at %s: reconnect failed (%s); next try in %.2f s",
                                self.instrument, self.address, error.detail, delay_s)
                    await sleep(delay_s)
        assert last is not None
        raise last

    # -- exchanges ----------------------------------------------------------------------------

    async def write(self, command: str) -> None:
        """Send one command (the write terminator is added)."""
        await self._exchange(command, lambda resource: resource.write(command))

    async def query(self, command: str, *, timeout_s: float | None = None) -> str:
        """Send a query and return its reply (the read terminator stripped)."""
        def ask(resource: pyvisa.resources.MessageBasedResource) -> str:
            resource.write(command)
            return resource.read()

        return await self._exchange(command, ask, timeout_s)

    async def resynchronise(self) -> None:
        """Clear the device and drop stale replies (also done before the next exchange after a
        timeout)."""
        resource = self._require_open(None)
        await self._on_worker(lambda: self._clear(resource, None), None,
                              self.timeout_s + self.margin_s)
        self._out_of_step = False

    # -- internals ----------------------------------------------------------------------------

    def _open_blocking(self) -> tuple[pyvisa.ResourceManager,
                                      pyvisa.resources.MessageBasedResource]:
        try:
            with _MANAGER_LOCK:  # pyvisa makes one manager per library, on first use
                manager = pyvisa.ResourceManager(self.backend)
        except (OSError, ValueError, pyvisa.errors.Error) as error:
            raise self._error(ConnectionLost, f"no VISA library {self.backend!r}: {error}",
                              None) from error
        try:
            resource = manager.open_resource(
                self.address, read_termination=self.read_termination,
                write_termination=self.write_termination, encoding=self.encoding,
                timeout=round(self.timeout_s * 1000), open_timeout=round(
                    self.open_timeout_s * 1000))
        except Exception as error:  # pyvisa-py raises a bare Exception when it cannot connect
            raise self._error(ConnectionLost, f"cannot open: {error}", None) from error
        if not isinstance(resource, pyvisa.resources.MessageBasedResource):
            _close_blocking(resource)
            raise self._error(ConnectionLost, "not a message-based resource", None)
        sock = _raw_socket(resource)
        if sock is not None:
            # pyvisa-py reports a refused connection as opened: look at the socket.
            refused = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if refused or _socket_state(sock) == "closed":
                _close_blocking(resource)
                reason = os.strerror(refused) if refused else "closed at once"
                raise self._error(ConnectionLost, f"cannot open: {reason}", None)
        return manager, resource

    async def _exchange(self, command: str,
                        call: Callable[[pyvisa.resources.MessageBasedResource], _T],
                        timeout_s: float | None = None) -> _T:
        resource = self._require_open(command)
        visa_timeout_s = self.timeout_s if timeout_s is None else timeout_s

        def run() -> _T:
            self._before_exchange(resource, command)
            if timeout_s is not None:
                resource.timeout = round(timeout_s * 1000)
            try:
                return call(resource)
            finally:
                if timeout_s is not None:
                    resource.timeout = round(self.timeout_s * 1000)

        try:
            return await self._on_worker(run, command, visa_timeout_s + self.margin_s)
        except TimeoutError as error:
            self._out_of_step = True
            raise self._error(InstrumentTimeout,
                              f"the VISA call did not return within "
                              f"{visa_timeout_s + self.margin_s:g} s", command) from error
        except ConnectionLost:
            await self.close()
            raise

    def _before_exchange(self, resource: pyvisa.resources.MessageBasedResource,
                         command: str) -> None:
        """On the worker: resynchronise if a timeout left the link out of step, and on a raw
        socket look whether stale bytes wait or the peer has closed."""
        sock = _raw_socket(resource)
        if sock is not None:
            state = _socket_state(sock)
            if state == "closed":
                raise self._error(ConnectionLost, "the instrument closed the connection",
                                  command)
            if state == "stale":
                self._out_of_step = True
        if self._out_of_step:
            dropped = self._clear(resource, command)
            self._out_of_step = False
            log.info("%s at %s: resynchronised before %r (%d stale byte(s) dropped)",
                     self.instrument, self.address, command, dropped)

    def _clear(self, resource: pyvisa.resources.MessageBasedResource,
               command: str | None) -> int:
        """On the worker: a device clear; on a raw socket, drop pyvisa-py's read-ahead and
        drain the socket until it is quiet (pyvisa-py's own clear never ends on a socket the
        peer has closed). Returns the number of bytes dropped (0 where unknown)."""
        sock = _raw_socket(resource)
        if sock is None:
            resource.clear()
            return 0
        resource.flush(pyvisa.constants.BufferOperation.discard_read_buffer_no_io)
        dropped = 0
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], RESYNC_QUIET_S)
                if not readable:
                    return dropped
                chunk = sock.recv(4096)
            except OSError as error:
                self._raise(ConnectionLost, f"connection lost: {error}", command, error)
            if not chunk:
                raise self._error(ConnectionLost, "the instrument closed the connection",
                                  command)
            dropped += len(chunk)

    async def _on_worker(self, function: Callable[[], _T], command: str | None,
                         wait_s: float) -> _T:
        executor = self._executor
        if executor is None:
            raise self._error(ConnectionLost, "not connected", command)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, self._mapped, function, command)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives together with the reply (CPython gh-86296), leaving a job unstoppable
        async with asyncio.timeout(wait_s):
            return await future

    def _mapped(self, function: Callable[[], _T], command: str | None) -> _T:
        """Run on the worker, turning pyvisa's and the socket's exceptions into the tree."""
        try:
            return function()
        except InstrumentError:
            raise
        except pyvisa.errors.VisaIOError as error:
            if error.error_code == pyvisa.constants.StatusCode.error_timeout:
                self._out_of_step = True
                resource = self._resource
                sock = None if resource is None else _raw_socket(resource)
                if sock is not None and _socket_state(sock) == "closed":
                    self._raise(ConnectionLost, "the instrument closed the connection "
                                "(mid-reply)", command, error)
                self._raise(InstrumentTimeout, f"no reply within {self.timeout_s:g} s",
                            command, error)
            if error.error_code in _LOST_CODES:
                self._raise(ConnectionLost, f"connection lost: {error.description}", command,
                            error)
            self._raise(ConnectionLost, f"VISA error: {error.description}", command, error)
        except pyvisa.errors.InvalidSession as error:
            self._raise(ConnectionLost, "the session is closed", command, error)
        except UnicodeDecodeError as error:
            self._out_of_step = True
            self._raise(MalformedReply, f"undecodable reply ({error.reason} at byte "
                        f"{error.start})", command, error)
        except OSError as error:
            self._raise(ConnectionLost, f"connection lost: {error}", command, error)

    def _raise(self, kind: type[_E], message: str, command: str | None,
               cause: BaseException) -> NoReturn:
        raise self._error(kind, message, command) from cause

    def _require_open(self, command: str | None) -> pyvisa.resources.MessageBasedResource:
        if self._resource is None:
            raise self._error(ConnectionLost, "not connected", command)
        return self._resource

    def _error(self, kind: type[_E], message: str, command: str | None) -> _E:
        return kind(message, instrument=self.instrument, address=self.address, command=command)


def _close_blocking(resource: pyvisa.resources.Resource) -> None:
    try:
        resource.close()
    except Exception as error:  # a broken session may fail to close in many ways
        log.debug("closing %r: %s", resource, error)


def _raw_socket(resource: pyvisa.resources.Resource) -> socket.socket | None:
    """The TCP socket under a pyvisa-py ``TCPIP::…::SOCKET`` session, or None for any other
    resource or backend."""
    try:
        sessions: Any = getattr(resource.visalib, "sessions", None)
        session = sessions.get(resource.session) if isinstance(sessions, dict) else None
    except pyvisa.errors.InvalidSession:
        return None
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def _socket_state(sock: socket.socket) -> str:
    """``"closed"`` if the peer closed it, ``"stale"`` if bytes wait unread, else ``"quiet"``."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return "quiet"
        peeked = sock.recv(1, socket.MSG_PEEK)
    except (OSError, ValueError):
        return "closed"
    return "closed" if not peeked else "stale"

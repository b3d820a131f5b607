"""What the jig drivers need from a line link, and reconnecting without blocking a control loop.

The Alicat and Mark-10 drivers talk through :class:`cellrig.drivers.serial_link.SerialLink`
on hardware and on the emulators; unit tests hand them a scripted link with the same surface
(:class:`LineLink`), so the exact command strings are checked without a transport.

A pressure loop polls its instruments every second or so. When a connection drops, the loop
must not stall in a long retry sequence: it holds its output and keeps ticking. So instead of
:meth:`SerialLink.reopen` (which sleeps between attempts), :class:`Reconnector` makes at most
one attempt per exchange, and only once the backoff delay since the last failure has passed
on the injected clock (bench time in simulations).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Protocol, Self, TypeVar

from cellrig.drivers.backoff import Backoff
from cellrig.errors import ConnectionLost, InstrumentError, InstrumentTimeout

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=InstrumentError)


class LineLink(Protocol):
    """A line-framed connection to one instrument (SerialLink's surface that drivers use)."""

    url: str
    instrument: str

    @property
    def is_open(self) -> bool:
        """Whether the connection is up."""
        ...

    async def open(self) -> None:
        """Open the connection; raises ConnectionLost if it cannot."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...

    async def query(self, text: str, *, timeout_s: float | None = None) -> str:
        """Send one command line and return the one reply line."""
        ...


class Reconnector:
    """Reopens a dropped link from the next exchange on, spaced by jittered backoff.

    ``clock`` gives seconds (monotonic; the bench clock in simulations). While the backoff
    delay after a failed attempt has not passed, :meth:`ensure_open` raises
    :class:`ConnectionLost` at once instead of trying again.
    """

    def __init__(self, link: LineLink, *, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.link = link
        self._backoff = backoff if backoff is not None else Backoff(initial_s=0.5, max_s=10.0)
        self._clock = clock
        self._rng = rng
        self._delays: Iterator[float] | None = None
        self._next_attempt_s = -float("inf")
        self.failures = 0

    async def ensure_open(self, command: str) -> None:
        """Make sure the link is open before ``command`` is sent."""
        if self.link.is_open:
            return
        now = self._clock()
        if now < self._next_attempt_s:
            wait_s = self._next_attempt_s - now
            raise ConnectionLost(f"not connected; next reconnect attempt in {wait_s:.1f} s",
                                 instrument=self.link.instrument, address=self.link.url,
                                 command=command)
        try:
            await self.link.open()
        except ConnectionLost as error:
            self.failures += 1
            if self._delays is None:
                self._delays = self._backoff.delays(self._rng)
            self._next_attempt_s = now + next(self._delays)
            log.warning("%s at %s: reconnect attempt %d failed: %s", self.link.instrument,
                        self.link.url, self.failures, error.detail)
            raise
        if self.failures:
            log.info("%s at %s: reconnected after %d failed attempt(s)", self.link.instrument,
                     self.link.url, self.failures)
        self.failures = 0
        self._delays = None
        self._next_attempt_s = -float("inf")


class LineDriver:
    """What the jig's line-protocol drivers share: the link as an ``async with`` resource,
    reconnecting before an exchange, and errors naming instrument, address and command."""

    def __init__(self, link: LineLink, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self._reconnector = Reconnector(link, clock=clock)

    async def __aenter__(self) -> Self:
        await self.link.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.link.close()

    async def _exchange(self, command: str) -> str:
        """Send one command (reopening a dropped link first) and return the reply, stripped."""
        await self._reconnector.ensure_open(command)
        return (await self.link.query(command)).strip()

    def _error(self, kind: type[_E], message: str, command: str) -> _E:
        return kind(message, instrument=self.link.instrument, address=self.link.url,
                    command=command)


class ScriptedLink:
    """A :class:`LineLink` that plays a script of ``(command, reply)`` exchanges, for tests of
    a driver's exact command strings without a transport (pymeasure's ``expected_protocol``).

    A reply of None makes the exchange time out; an exception instance is raised instead of
    replying. A command other than the next one in the script fails the exchange, and
    :meth:`assert_done` fails while exchanges are left.
    """

    def __init__(self, script: list[tuple[str, str | BaseException | None]], *,
                 url: str = "scripted://", instrument: str = "scripted") -> None:
        self.url = url
        self.instrument = instrument
        self.script = list(script)
        self.sent: list[str] = []
        self.opened = 0
        self._open = False
        self.refuse_open = False

    @property
    def is_open(self) -> bool:
        """Whether the link is open."""
        return self._open

    async def open(self) -> None:
        """Open (or refuse with ConnectionLost while ``refuse_open`` is set)."""
        if self.refuse_open:
            raise ConnectionLost("refused", instrument=self.instrument, address=self.url)
        self._open = True
        self.opened += 1

    async def close(self) -> None:
        """Close."""
        self._open = False

    async def query(self, text: str, *, timeout_s: float | None = None) -> str:
        """Play the next exchange of the script."""
        self.sent.append(text)
        if not self._open:
            raise ConnectionLost("not connected", instrument=self.instrument, address=self.url,
                                 command=text)
        if not self.script:
            raise AssertionError(f"unexpected command {text!r}: the script is finished")
        expected, reply = self.script.pop(0)
        if text != expected:
            raise AssertionError(f"sent {text!r}, the script expected {expected!r}")
        if reply is None:
            raise InstrumentTimeout("no reply", instrument=self.instrument, address=self.url,
                                    command=text)
        if isinstance(reply, BaseException):
            if isinstance(reply, ConnectionLost):
                self._open = False
            raise reply
        return reply

    def assert_done(self) -> None:
        """Fail if exchanges of the script were not played."""
        if self.script:
            raise AssertionError(f"exchanges left in the script: {self.script}")

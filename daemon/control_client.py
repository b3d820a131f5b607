"""The client side of the station's control socket (:mod:`~cellrig.daemon.control_server`).

::

    async with ControlClient(socket_path) as station:
        job = await station.submit(SubmitRequest(channel="A1", protocol_text=text, cell=cell))
        print((await station.status()).channels)

Every refusal arrives as :class:`~cellrig.daemon.control_api.ControlError` with the
station's code and message; a station that cannot be reached raises :class:`StationUnreachable`
(a ControlError too) saying why and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .control_api import (
    ControlError,
    ErrorCode,
    EventView,
    JobView,
    StationStatus,
    SubmitRequest,
    to_json,
)
from .control_server import MAX_REQUEST_BYTES

#: How long a reply may take (a submission checks the protocol; stopping waits for the cell
#: to be made safe).
REPLY_TIMEOUT_S = 60.0


class StationUnreachable(ControlError):
    """The control socket is not there, refuses the connection or went away."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INTERNAL, message)


class ControlClient:
    """One connection to a station's control socket; requests are sent one at a time."""

    def __init__(self, path: str | Path, *, timeout_s: float = REPLY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> ControlClient:
        await self.connect()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection; raises :class:`StationUnreachable` with the reason."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(self.path), limit=MAX_REQUEST_BYTES * 64)
        except FileNotFoundError:
            raise StationUnreachable(
                f"no station is listening at {self.path} (is `cellrig daemon` running? "
                "give its socket with --socket or its configuration with --config)") from None
        except PermissionError:
            raise StationUnreachable(
                f"not allowed to use {self.path}: the station's control socket is for its "
                "user and group (ask to be added to the group that owns it)") from None
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                raise StationUnreachable(
                    f"nothing answers at {self.path}: the station is not running (the socket "
                    "file was left by a daemon that stopped)") from None
            raise StationUnreachable(f"cannot connect to {self.path}: {exc}") from None

    async def close(self) -> None:
        """Close the connection."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(self, verb: str, args: Mapping[str, Any] | None = None) -> Any:
        """Send one request and return the reply's result (JSON data); raises ControlError."""
        async with self._lock:
            if self._writer is None or self._reader is None:
                await self.connect()
            assert self._writer is not None and self._reader is not None
            number = next(self._ids)
            line = json.dumps({"id": number, "verb": verb, "args": to_json(args or {})})
            try:
                self._writer.write(line.encode() + b"\n")
                await self._writer.drain()
                async with asyncio.timeout(self.timeout_s):
                    answer = await self._reader.readline()
            except TimeoutError:
                await self.close()
                raise StationUnreachable(f"the station did not answer {verb!r} within "
                                         f"{self.timeout_s:g} s") from None
            except (ConnectionError, ValueError) as exc:
                await self.close()
                raise StationUnreachable(f"the connection to {self.path} broke: {exc}"
                                         ) from None
            if not answer:
                await self.close()
                raise StationUnreachable(f"the station closed the connection at {self.path} "
                                         "(it is stopping?)")
        return _result(answer, number)

    # -- the station's control, as in StationControl --------------------------------------

    async def submit(self, request: SubmitRequest) -> JobView:
        """Queue a job."""
        return JobView.from_json(await self.request("submit", to_json(request)))

    async def jobs(self, states: Sequence[str] | None = None) -> list[JobView]:
        """Jobs, newest first."""
        args = {} if states is None else {"states": list(states)}
        return [JobView.from_json(job) for job in await self.request("jobs", args)]

    async def job(self, job_id: int) -> JobView:
        """One job."""
        return JobView.from_json(await self.request("job", {"job": job_id}))

    async def status(self) -> StationStatus:
        """Every channel, live."""
        return StationStatus.from_json(await self.request("status"))

    async def pause(self, job_id: int) -> JobView:
        """Pause a running job."""
        return JobView.from_json(await self.request("pause", {"job": job_id}))

    async def resume(self, job_id: int) -> JobView:
        """Resume a paused job."""
        return JobView.from_json(await self.request("resume", {"job": job_id}))

    async def stop(self, job_id: int, reason: str = "stopped on request") -> JobView:
        """Stop a job; the cell is left safe."""
        return JobView.from_json(await self.request("stop", {"job": job_id, "reason": reason}))

    async def events(self, job_id: int, after_id: int = 0) -> list[EventView]:
        """A job's events after ``after_id``."""
        found = await self.request("events", {"job": job_id, "after": after_id})
        return [EventView.from_json(event) for event in found]


def _result(answer: bytes, number: int) -> Any:
    try:
        reply = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(ErrorCode.INTERNAL, "the station answered something that is not "
                                               "JSON") from None
    if not isinstance(reply, dict):
        raise ControlError(ErrorCode.INTERNAL, "the station's reply is not a JSON object")
    if reply.get("id") is None and reply.get("ok") is False:
        pass  # a refusal of the connection or of a line it could not read: its error says
    elif reply.get("id") != number:
        raise ControlError(ErrorCode.INTERNAL, "the station's reply does not match the request")
    if reply.get("ok") is True:
        return reply.get("result")
    error = reply.get("error")
    raise ControlError.from_json(error if isinstance(error, dict) else {})

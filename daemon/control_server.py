"""The station's control socket: a Unix-domain stream socket that speaks
:mod:`~cellrig.daemon.control_api` as JSON lines.

One JSON object per line each way. A request::

    {"id": 1, "verb": "stop", "args": {"job": 12, "reason": "cell swelled"}}

is answered with ``{"id": 1, "ok": true, "result": …}`` or ``{"id": 1, "ok": false,
"error": {"code": "conflict", "message": "…"}}``. Requests on one connection are answered in
order; a client may keep its connection open. A line longer than ``max_request_bytes``
(1 MiB: a protocol's text travels inside a submission), a line that is not JSON, an unknown
verb or a wrong argument is answered with an ``invalid`` error and the connection stays
usable; nothing a client sends stops the server.

Who may talk to the station is decided by the socket file's permissions: it is created with
mode 0660, so its owner (the daemon's user) and the members of its group may connect (see
docs/daemon.md). A submission records the connecting user (from the kernel's peer
credentials) as ``submitted_by``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from cellrig.errors import CellrigError, InputError

from .control_api import ControlError, ErrorCode, StationControl, SubmitRequest, to_json
from .service_log import fields

log = logging.getLogger("cellrig.control")

#: Longest request line, in bytes.
MAX_REQUEST_BYTES = 1 << 20
#: Connections served at once; one more is told so and closed (a client stuck in a loop of
#: connecting cannot use up the daemon's file descriptors).
MAX_CONNECTIONS = 64
#: Mode of the socket file: the daemon's user and group may connect, nobody else.
SOCKET_MODE = 0o660
#: Longest path of a Unix socket on Linux (sun_path holds 108 bytes with the final NUL).
MAX_SOCKET_PATH_BYTES = 107
_READ_CHUNK = 65_536


class SocketInUse(CellrigError):
    """The control socket cannot be served: another process serves its path, the path is
    not a socket, or the folder cannot be written."""


def _job_id(args: Mapping[str, Any], name: str = "job") -> int:
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ControlError(ErrorCode.INVALID, f"'{name}' must be a job number (1, 2, ...)")
    return value


def _only(args: Mapping[str, Any], *allowed: str) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise ControlError(ErrorCode.INVALID,
                           f"unknown argument(s) {', '.join(unknown)} (this verb takes: {known})")


class Dispatcher:
    """Turns a request's verb and arguments into a call of the station's control."""

    def __init__(self, control: StationControl) -> None:
        self.control = control
        self.verbs: dict[str, Callable[[Mapping[str, Any], str], Awaitable[Any]]] = {
            "submit": self._submit, "jobs": self._jobs, "job": self._job,
            "status": self._status, "pause": self._pause, "resume": self._resume,
            "stop": self._stop, "events": self._events,
        }

    async def call(self, verb: str, args: Mapping[str, Any], caller: str) -> Any:
        """The JSON form of the result; raises :class:`ControlError` to refuse."""
        handler = self.verbs.get(verb)
        if handler is None:
            raise ControlError(ErrorCode.INVALID, f"unknown verb {verb!r} (one of "
                               f"{', '.join(sorted(self.verbs))})")
        return finite(to_json(await handler(args, caller)))

    async def _submit(self, args: Mapping[str, Any], caller: str) -> Any:
        request = SubmitRequest.from_json(args)
        if not request.submitted_by and caller:
            request = dataclasses.replace(request, submitted_by=caller)
        return await self.control.submit(request)

    async def _jobs(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "states")
        states = args.get("states")
        if states is not None and (not isinstance(states, list)
                                   or not all(isinstance(s, str) for s in states)):
            raise ControlError(ErrorCode.INVALID, "'states' must be a list of job states, "
                                                  "e.g. [\"running\", \"queued\"]")
        return await self.control.jobs(states)

    async def _job(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "job")
        return await self.control.job(_job_id(args))

    async def _status(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args)
        return await self.control.status()

    async def _pause(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "job")
        return await self.control.pause(_job_id(args))

    async def _resume(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "job")
        return await self.control.resume(_job_id(args))

    async def _stop(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "job", "reason")
        reason = args.get("reason", "stopped on request")
        if not isinstance(reason, str):
            raise ControlError(ErrorCode.INVALID, "'reason' must be text")
        if caller and reason == "stopped on request":
            reason = f"stopped on request by {caller}"
        return await self.control.stop(_job_id(args), reason)

    async def _events(self, args: Mapping[str, Any], caller: str) -> Any:
        _only(args, "job", "after")
        after = args.get("after", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ControlError(ErrorCode.INVALID, "'after' must be an event id (0 for all)")
        return await self.control.events(_job_id(args), after)


def decode_request(line: bytes) -> dict[str, Any]:
    """The JSON object of a request line; raises :class:`ControlError` (invalid)."""
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(ErrorCode.INVALID, f"a request is one JSON object per line: {exc}"
                           ) from None
    if not isinstance(request, dict):
        raise ControlError(ErrorCode.INVALID, 'a request is a JSON object: {"id": 1, '
                                              '"verb": "status", "args": {}}')
    return request


def request_id(request: Mapping[str, Any]) -> int | str | None:
    """The id a reply repeats (None when the request has none a reply could carry)."""
    found = request.get("id")
    if isinstance(found, bool) or not isinstance(found, int | str):
        return None
    return found


def verb_and_args(request: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """A request's verb and arguments; raises :class:`ControlError` (invalid)."""
    verb, args = request.get("verb"), request.get("args", {})
    if not isinstance(verb, str):
        raise ControlError(ErrorCode.INVALID, "'verb' must be text, e.g. \"status\"")
    if not isinstance(args, dict):
        raise ControlError(ErrorCode.INVALID, "'args' must be a JSON object")
    return verb, args


def peer_user(writer: asyncio.StreamWriter) -> str:
    """The name of the user at the other end of a Unix socket ('' if unknown)."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return ""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return ""


class RequestTooLarge(Exception):
    """A request line longer than the limit (it has been read and dropped whole)."""


async def read_line(reader: asyncio.StreamReader, buffer: bytearray,
                    max_bytes: int) -> bytes | None:
    """The next line (without its newline), None at the end of the stream; raises
    :class:`RequestTooLarge` once a line longer than ``max_bytes`` has been read to its end."""
    overflow = False
    while True:
        end = buffer.find(b"\n")
        if end >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if overflow or len(line) > max_bytes:
                raise RequestTooLarge
            return line
        if len(buffer) > max_bytes:
            overflow = True
            buffer.clear()
        chunk = await reader.read(_READ_CHUNK)
        if not chunk:
            if buffer and not overflow:
                line = bytes(buffer)
                buffer.clear()
                return line
            return None
        buffer.extend(chunk)


class ControlServer:
    """The control socket, served while the ``async with`` block runs."""

    def __init__(self, control: StationControl, path: str | Path, *,
                 mode: int = SOCKET_MODE, max_request_bytes: int = MAX_REQUEST_BYTES,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.path = Path(path)
        self.mode = mode
        self.max_request_bytes = max_request_bytes
        self.max_connections = max_connections
        self.dispatcher = Dispatcher(control)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False
        self.requests = 0
        """requests answered so far"""

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) with its mode; raises
        :class:`SocketInUse` when another process serves the path."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH_BYTES:
            raise SocketInUse(f"the control socket path {self.path} is longer than "
                              f"{MAX_SOCKET_PATH_BYTES} bytes, the most a Unix socket can "
                              "have: choose a shorter one with --socket")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            await remove_stale_socket(self.path)
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
            os.chmod(self.path, self.mode)
        except OSError as exc:
            raise SocketInUse(f"cannot serve the control socket {self.path}: "
                              f"{exc.strerror or exc}") from None
        log.info("control socket %s listening (mode %04o)", self.path, self.mode,
                 extra=fields("control-listen", path=str(self.path)))

    def stop_accepting(self) -> None:
        """Take no new connections or requests; requests under way are finished."""
        self._closing = True
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop accepting, end every connection and remove the socket file."""
        self.stop_accepting()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            log.warning("too many connections (%d); one refused", len(self._connections),
                        extra=fields("control-refused", code="internal"))
            with contextlib.suppress(ConnectionError):
                await self._send(writer, None, ControlError(
                    ErrorCode.INTERNAL, f"the station serves {self.max_connections} "
                                        "connections already; try again"))
            writer.close()
            return
        self._connections.add(task)
        caller = peer_user(writer)
        buffer = bytearray()
        try:
            while not self._closing:
                try:
                    line = await read_line(reader, buffer, self.max_request_bytes)
                except RequestTooLarge:
                    log.info("request too large", extra=fields("control-refused",
                                                               code="invalid"))
                    await self._send(writer, None, ControlError(
                        ErrorCode.INVALID,
                        f"the request is larger than {self.max_request_bytes} bytes"))
                    continue
                if line is None:
                    break
                if not line.strip():
                    continue
                answer_id, reply = await self._answer(line, caller)
                await self._send(writer, answer_id, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, line: bytes, caller: str) -> tuple[Any, Any]:
        found_id: Any = None
        verb = "?"
        try:
            request = decode_request(line)
            found_id = request_id(request)
            verb, args = verb_and_args(request)
            if self._closing:
                raise ControlError(ErrorCode.INTERNAL, "the station is shutting down")
            result = await self.dispatcher.call(verb, args, caller)
        except ControlError as exc:
            log.info("%s refused: %s", verb, exc.message,
                     extra=fields("control-refused", verb=verb, code=exc.code.value,
                                  user=caller or None))
            return found_id, exc
        except InputError as exc:
            return found_id, ControlError(ErrorCode.REFUSED, exc.render())
        except CellrigError as exc:
            log.warning("%s failed: %s", verb, exc, extra=fields("control-failed", verb=verb))
            return found_id, ControlError(ErrorCode.INTERNAL, str(exc))
        except Exception:
            log.exception("%s failed", verb, extra=fields("control-failed", verb=verb))
            return found_id, ControlError(ErrorCode.INTERNAL,
                                          "the station failed; its log says more")
        if verb not in ("status", "jobs", "job", "events"):
            log.info("%s done", verb, extra=fields("control-request", verb=verb,
                                                   user=caller or None))
        return found_id, result

    async def _send(self, writer: asyncio.StreamWriter, request_id: Any, reply: Any) -> None:
        if isinstance(reply, ControlError):
            message: dict[str, Any] = {"id": request_id, "ok": False, "error": reply.to_json()}
        else:
            message = {"id": request_id, "ok": True, "result": reply}
        try:
            text = json.dumps(message, allow_nan=False, default=_jsonable)
        except (TypeError, ValueError) as exc:
            log.exception("reply not JSON", extra=fields("control-failed"))
            text = json.dumps({"id": request_id, "ok": False, "error": ControlError(
                ErrorCode.INTERNAL, f"the reply could not be sent as JSON: {exc}").to_json()})
        writer.write(text.encode() + b"\n")
        self.requests += 1
        await writer.drain()


def finite(value: Any) -> Any:
    """JSON data with every NaN or infinity replaced by null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    """JSON for what ``json`` does not know (numpy scalars, paths)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


async def remove_stale_socket(path: Path) -> None:
    """Remove a socket file no process listens on (left by a daemon that was killed);
    raise :class:`SocketInUse` if one does, or if the path is something else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket: not replacing it")
    try:
        _reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            log.info("removing stale control socket %s", path,
                     extra=fields("control-stale-socket", path=str(path)))
            path.unlink(missing_ok=True)
            return
        raise SocketInUse(f"cannot check the control socket {path}: {exc}") from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    raise SocketInUse(f"another process serves the control socket {path} "
                      "(is a daemon already running?)")

"""Requests that arrive over MQTT, carried out on the station's :class:`StationControl`.

A request is published to ``cellrig/<station>/cmd/<verb>``; its payload is the arguments
object of the control socket's request (``{"job": 12, "reason": "cell swelled"}``, a
submission's JSON form, or empty for ``status``), and its MQTT 5 properties carry the topic
to answer on and correlation data to answer with. The reply is the control socket's, without
the ``id`` (the correlation data plays its part): ``{"ok": true, "result": …}`` or
``{"ok": false, "error": {"code": …, "message": …}}``. Verbs and arguments are those of
:class:`~cellrig.daemon.control_server.Dispatcher`, so the socket and the broker cannot
drift apart.

Every request gets exactly one reply: a payload that is too large, not JSON or not an
object, an unknown verb, a wrong argument, a protocol that does not check, a job that does not
exist, … are each answered with a :class:`ControlError`. Nothing a client sends can stop the
station: an unexpected failure is logged and answered as ``internal``.

Who may send which verb to which station is the broker's ACL's decision, not the station's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cellrig.errors import CellrigError, InputError

from .control_api import ControlError, ErrorCode, StationControl
from .control_server import Dispatcher

log = logging.getLogger("cellrig.mqtt")

#: The largest request carried out: a protocol file with its cell is a few KiB.
MAX_REQUEST_BYTES = 256 * 1024
#: The verbs a station answers.
VERBS = ("submit", "stop", "pause", "resume", "status", "jobs", "job", "events")


class CommandHandler:
    """Turns one request's verb and payload into the reply's JSON object."""

    def __init__(self, control: StationControl, *,
                 max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.dispatcher = Dispatcher(control)
        self.max_request_bytes = max_request_bytes

    async def answer(self, verb: str, payload: bytes | bytearray | str | None
                     ) -> dict[str, Any]:
        """The reply (never raises, except for cancellation)."""
        try:
            args = parse(verb, payload, self.max_request_bytes)
            result = await self.dispatcher.call(verb, args, "")
        except ControlError as exc:
            log.info("MQTT: %s refused: %s", verb, exc.message)
            return reply_error(exc)
        except InputError as exc:
            return reply_error(ControlError(ErrorCode.REFUSED, exc.render()))
        except CellrigError as exc:
            log.warning("MQTT: %s failed: %s", verb, exc)
            return reply_error(ControlError(ErrorCode.INTERNAL, str(exc)))
        except Exception:
            log.exception("MQTT: %s failed", verb)
            return reply_error(ControlError(ErrorCode.INTERNAL,
                                            "the station failed; its log says more"))
        return {"ok": True, "result": result}


def parse(verb: str, payload: bytes | bytearray | str | None,
          max_bytes: int = MAX_REQUEST_BYTES) -> dict[str, Any]:
    """A request's arguments as a JSON object; :class:`ControlError` (invalid) otherwise."""
    if verb not in VERBS:
        raise ControlError(ErrorCode.INVALID,
                           f"unknown verb {verb!r} (one of {', '.join(sorted(VERBS))})")
    raw = payload or b""
    if len(raw) > max_bytes:
        raise ControlError(ErrorCode.INVALID,
                           f"the request has {len(raw)} bytes; a station accepts at most "
                           f"{max_bytes} ({max_bytes // 1024} KiB)")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(ErrorCode.INVALID, f"the request is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ControlError(ErrorCode.INVALID,
                           'the request must be a JSON object, e.g. {"job": 12}')
    return value


def reply_error(error: ControlError) -> dict[str, Any]:
    """A reply carrying a refusal."""
    return {"ok": False, "error": error.to_json()}

"""``cellrig --broker URL …``: the commands that reach stations through the lab's broker.

``cellrig --broker URL stations`` lists the stations the broker knows (their retained status
and channel states). With ``--broker`` and ``--station NAME``, ``submit``, ``stop``, ``status``,
``jobs`` (and the other station commands) go to that station over MQTT and print what they
print on the station's PC, with the same tables (:mod:`~cellrig.daemon.cli_format`):
:func:`station_client` gives a :class:`~cellrig.daemon.fleet.RemoteStation`, the control
socket's client with the broker as its transport.

The account: ``--broker-user`` (or a user in the URL, ``mqtt://alice@broker``) and
``--broker-password-file``; each also from the environment (``CELLRIG_BROKER``,
``CELLRIG_STATION``, ``CELLRIG_BROKER_USER``, ``CELLRIG_BROKER_PASSWORD_FILE``,
``CELLRIG_BROKER_CA_FILE``, ``CELLRIG_BROKER_TIMEOUT``), so a researcher sets them once in
their shell profile. A command given ``--socket`` or ``--config`` talks to that station
directly even then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli_format import MISSING, shorten, table
from .cli_protocols import UsageError

if TYPE_CHECKING:  # the MQTT client is imported only by the commands that use it
    from .control_api import SubmitRequest
    from .control_client import ControlClient
    from .fleet import StationSeen
    from .mqtt_connection import BrokerSettings

STATIONS_HEADERS = ("STATION", "STATUS", "CHANNEL", "JOB", "STATE", "CYCLE", "STEP", "QUEUED")
#: The station commands that go through the broker when --broker is given.
REMOTE_COMMANDS = ("submit", "jobs", "status", "pause", "resume", "stop", "events")


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    """The global options that send station commands through a broker."""
    group = parser.add_argument_group(
        "through the lab's MQTT broker (docs/mqtt.md)",
        "Given before the command: cellrig --broker mqtts://broker.lab.example --station "
        "assb-lab-3 status")
    group.add_argument("--broker", metavar="URL", default=os.environ.get("CELLRIG_BROKER"),
                       help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS); env "
                            "CELLRIG_BROKER")
    group.add_argument("--station", metavar="NAME", default=os.environ.get("CELLRIG_STATION"),
                       help="the station the command goes to; env CELLRIG_STATION")
    group.add_argument("--broker-user", metavar="NAME",
                       default=os.environ.get("CELLRIG_BROKER_USER"),
                       help="your broker account (or mqtt://NAME@HOST); env CELLRIG_BROKER_USER")
    group.add_argument("--broker-password-file", metavar="FILE",
                       default=os.environ.get("CELLRIG_BROKER_PASSWORD_FILE"),
                       help="the file holding your broker password; env "
                            "CELLRIG_BROKER_PASSWORD_FILE")
    group.add_argument("--broker-timeout", metavar="SECONDS", type=_seconds,
                       default=os.environ.get("CELLRIG_BROKER_TIMEOUT") or "60",
                       help="how long to wait for a station's reply (default 60); env "
                            "CELLRIG_BROKER_TIMEOUT")
    group.add_argument("--broker-ca-file", metavar="FILE",
                       default=os.environ.get("CELLRIG_BROKER_CA_FILE"),
                       help="the authority that signed the broker's certificate (mqtts://); "
                            "env CELLRIG_BROKER_CA_FILE")


def add_stations_parser(commands: Any) -> None:
    """``cellrig --broker URL stations``."""
    stations = commands.add_parser(
        "stations", help="list the stations on the broker, their channels and jobs",
        description="List every station the broker has a retained status of: online or "
                    "offline, each channel with its job, state, cycle and step. Needs "
                    "--broker (before the command).")
    stations.add_argument("--wait", type=float, default=3.0, metavar="SECONDS",
                          help="longest wait for the broker's retained messages (default 3)")


def broker_settings(args: argparse.Namespace) -> BrokerSettings:
    """The broker and account of the command line; :class:`UsageError` without --broker."""
    from .mqtt_connection import parse_url

    if not getattr(args, "broker", None):
        raise UsageError("which broker? give --broker mqtt://HOST (before the command) or "
                         "set CELLRIG_BROKER")
    password_file = args.broker_password_file
    ca_file = args.broker_ca_file
    return parse_url(args.broker, username=args.broker_user or None,
                     password_file=None if not password_file else
                     Path(password_file).expanduser(),
                     ca_file=None if not ca_file else Path(ca_file).expanduser())


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def uses_broker(args: argparse.Namespace) -> bool:
    """Whether station commands go through the broker: with --broker (or CELLRIG_BROKER),
    unless the command names a local station with --socket or --config."""
    local = getattr(args, "socket", None) or getattr(args, "config", None)
    return bool(getattr(args, "broker", None)) and not local


@asynccontextmanager
async def station_client(args: argparse.Namespace,
                         socket: Path | None = None) -> AsyncIterator[ControlClient]:
    """The station a command talks to: through the broker with ``--broker`` (then
    ``--station`` is required), otherwise the control socket at ``socket``."""
    from .control_client import ControlClient
    from .fleet import Fleet

    if not uses_broker(args):
        if socket is None:
            raise UsageError("which station? give --socket PATH or --broker URL --station NAME")
        async with ControlClient(socket) as local:
            yield local
        return
    if not getattr(args, "station", None):
        raise UsageError("which station? give --station NAME with --broker (`cellrig "
                         "--broker URL stations` lists them)")
    async with Fleet(broker_settings(args), timeout_s=args.broker_timeout) as fleet, \
            fleet.station(args.station) as remote:
        yield remote


def remote_handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int] | None:
    """:func:`run_remote` for a station command given with --broker, else None."""
    if uses_broker(args) and getattr(args, "command", None) in REMOTE_COMMANDS:
        return run_remote
    return None


def run_remote(args: argparse.Namespace) -> int:
    """A station command through the broker, printed as on the station's PC (``status``
    prints once: ``--interval`` redraws are for the PC)."""
    from . import cli_format
    from .control_api import to_json

    async def work() -> str:
        async with station_client(args) as station:
            command = args.command
            if command == "submit":
                return cli_format.job_line(await station.submit(submission(args)))
            if command == "jobs":
                found = await station.jobs(args.state)
                return json.dumps(to_json(found), indent=2) if args.json else \
                    cli_format.jobs_table(found, time.time())
            if command == "status":
                status = await station.status()
                return json.dumps(to_json(status), indent=2) if args.json else \
                    cli_format.status_table(status)
            if command == "events":
                await station.job(args.job)
                events = await station.events(args.job, 0)
                if args.json:
                    return "\n".join(json.dumps(to_json(event)) for event in events)
                return cli_format.events_table(events)
            if command == "pause":
                return cli_format.job_line(await station.pause(args.job))
            if command == "resume":
                return cli_format.job_line(await station.resume(args.job))
            return cli_format.job_line(
                await station.stop(args.job, args.reason or "stopped on request"))

    print(asyncio.run(work()))
    return 0


def submission(args: argparse.Namespace) -> SubmitRequest:
    """``cellrig submit``'s request (as the PC's command builds it), signed with the broker
    account."""
    from cellrig.protocols.resolve import load_cell_file

    from .cli_protocols import parse_parameters
    from .cli_station_run import plain, protocol_source
    from .control_api import SubmitRequest

    text, source = protocol_source(args.protocol)
    cell = {} if args.cell is None else plain(load_cell_file(args.cell))
    return SubmitRequest(channel=args.channel, protocol_text=text, cell=cell,
                         parameters=parse_parameters(args.params), source=source,
                         start_with=tuple(args.start_with),
                         hold_for_group=args.hold_for_group)


def run_stations(args: argparse.Namespace) -> int:
    """Print the stations table; exit 1 when the broker has none."""
    from .fleet import Fleet

    settings = broker_settings(args)

    async def listing() -> list[StationSeen]:
        async with Fleet(settings) as fleet:
            return await fleet.stations(wait_s=args.wait)

    seen = asyncio.run(listing())
    if not seen:
        print(f"no stations on {settings.url}")
        return 1
    print(stations_table(seen))
    return 0


def stations_table(stations: list[StationSeen]) -> str:
    """One row per channel of every station; a station without channels gets one row."""
    rows: list[list[str]] = []
    for station in stations:
        status = "online" if station.online else f"offline ({station.reason or '?'})"
        channels = station.channels or sorted(station.states) or [MISSING]
        for index, channel in enumerate(channels):
            state = station.states.get(channel, {})
            job_state = state.get("job_state") or ("idle" if state else MISSING)
            if state.get("latched"):
                job_state = "LATCHED"
            step = state.get("step") or MISSING
            if state.get("step") and state.get("step_count") is not None:
                step = f"{state['step_count']}: {state['step']}"
            rows.append([
                station.name if index == 0 else "", status if index == 0 else "", channel,
                _text(state.get("job_id")), job_state, _text(state.get("cycle")),
                shorten(step, 44), _text(state.get("queued"))])
    right = [False, False, False, True, False, True, False, True]
    return table(STATIONS_HEADERS, rows, right)


def _text(value: Any) -> str:
    return MISSING if value is None else str(value)

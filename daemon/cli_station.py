"""The station commands of the CLI: daemon, submit, jobs, status, pause, resume, stop, events,
export and demo.

The parsers are built here (cheap to import); each command's work is imported when it runs.
Commands that talk to a running station find its control socket with ``--socket``, or from
its configuration (``--config station.toml``), or ``$CELLRIG_SOCKET``, or the configuration
at ``/etc/cellrig/station.toml``, in that order.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where the CLI looks for the station's configuration when nothing else is given.
DEFAULT_CONFIG = Path("/etc/cellrig/station.toml")
JOB_STATES = ("queued", "running", "paused", "completed", "stopped", "aborted", "failed")
EXPORT_FORMATS = ("bdf-parquet", "bdf-csv")

Handler = Callable[[argparse.Namespace], int]


def _job_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a job number is 1, 2, 3, ... (got {text!r})")
    return int(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a positive number, e.g. 2 (got {text!r})")
    return value


def _station_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("which station")
    where.add_argument("--socket", metavar="PATH",
                       help="the daemon's control socket (default: from --config, "
                            "$CELLRIG_SOCKET, or /etc/cellrig/station.toml)")
    where.add_argument("--config", metavar="station.toml",
                       help="the station's configuration; its control socket is used")


def add_parsers(commands: Any,
                cell_and_parameters: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register the station commands on the CLI's subcommands."""
    daemon = commands.add_parser(
        "daemon", help="run the station service (instruments, jobs, store, control socket)",
        description="Run the station: read station.toml (every problem printed with file, "
                    "line and column; exit 2), open the store in its data folder, the "
                    "instruments and the job manager (unfinished jobs are resumed), serve the "
                    "control socket and the configured sinks. Logs go to stderr, one line "
                    "per event. SIGTERM or Ctrl-C stops it cleanly: jobs are checkpointed and "
                    "left resumable, cells made safe, the store closed; exit 0. See "
                    "docs/daemon.md.")
    daemon.add_argument("--config", required=True, metavar="station.toml",
                        help="the station's configuration (docs/station.md)")
    daemon.add_argument("--socket", metavar="PATH",
                        help="the control socket (default: <data_folder>/cellrig.sock)")
    daemon.add_argument("--log-format", choices=["text", "json"], default="text",
                        help="log lines as logfmt (text, default) or JSON objects")
    daemon.add_argument("--verbose", "-v", action="store_true", help="debug messages too")

    submit = commands.add_parser(
        "submit", help="queue a protocol on a channel of the station",
        description="Queue a job: PROTOCOL (a file, or a library protocol such as "
                    "formation) on the cell of CELL.yaml at a channel. The station checks "
                    "it against the cell, the channel's instruments and hard limits before "
                    "it is queued; a refusal says why. Prints the job's number.")
    submit.add_argument("protocol", metavar="PROTOCOL",
                        help="protocol file (YAML), or a library protocol name")
    submit.add_argument("--channel", required=True, metavar="NAME",
                        help="the channel (cell position), e.g. A1")
    cell_and_parameters(submit)
    submit.add_argument("--start-with", type=_job_number, action="append", default=[],
                        metavar="JOB",
                        help="a queued job on another channel of the same chamber to start "
                             "together with this one (repeatable)")
    submit.add_argument("--hold-for-group", action="store_true",
                        help="queue the job without starting it until a later submission "
                             "names it with --start-with")
    _station_options(submit)

    jobs = commands.add_parser("jobs", help="list the station's jobs",
                               description="The station's jobs, newest first.")
    jobs.add_argument("--state", action="append", choices=JOB_STATES, metavar="STATE",
                      help=f"only jobs in this state (repeatable): {', '.join(JOB_STATES)}")
    jobs.add_argument("--json", action="store_true", help="JSON instead of a table")
    _station_options(jobs)

    status = commands.add_parser(
        "status", help="live table of every channel (like top; Ctrl-C ends it)",
        description="Every channel of the station: job, state, cycle, step, voltage, "
                    "current, temperature, pressure, capacities and test time, redrawn "
                    "every few seconds until Ctrl-C.")
    status.add_argument("--once", action="store_true", help="print the table once and exit")
    status.add_argument("--interval", type=_positive, default=2.0, metavar="S",
                        help="seconds between refreshes (default 2)")
    status.add_argument("--json", action="store_true", help="JSON (implies --once)")
    _station_options(status)

    for verb, text in (("pause", "pause a running job (output off until resumed)"),
                       ("resume", "resume a paused job"),
                       ("stop", "stop a job; its cell is left safe")):
        parser = commands.add_parser(verb, help=text, description=text[0].upper() + text[1:]
                                     + ".")
        parser.add_argument("job", type=_job_number, metavar="JOB", help="the job's number")
        if verb == "stop":
            parser.add_argument("--reason", default="", help="why (kept with the job)")
        _station_options(parser)

    events = commands.add_parser(
        "events", help="a job's events (steps, cycles, warnings, its end)",
        description="A job's events, oldest first. With --follow, new events are printed as "
                    "they come until the job ends or Ctrl-C.")
    events.add_argument("job", type=_job_number, metavar="JOB", help="the job's number")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    _station_options(events)

    export = commands.add_parser(
        "export", help="write a job's data as Battery Data Format files",
        description="Write a job's samples as Battery Data Format CSV and/or Parquet, its "
                    "cycle table and provenance (and with --plots, PNG plots) into a folder. "
                    "Reads the store file directly: works while the daemon runs and when it "
                    "is stopped.")
    export.add_argument("job", type=_job_number, metavar="JOB", help="the job's number")
    export.add_argument("--format", action="append", choices=EXPORT_FORMATS, dest="formats",
                        help="bdf-parquet or bdf-csv (repeatable; default: both)")
    export.add_argument("--plots", action="store_true",
                        help="also voltage/current, cycling, dQ/dV and Nyquist plots (PNG)")
    export.add_argument("--out", metavar="DIR", help="output folder (default: ./job-<JOB>)")
    source = export.add_mutually_exclusive_group()
    source.add_argument("--config", metavar="station.toml",
                        help="the station's configuration: its store is read")
    source.add_argument("--store", metavar="PATH", help="the store file (station.db)")

    demo = commands.add_parser(
        "demo", help="a simulated station: four cells through formation, in a minute or two",
        description="Start a simulated station (four channels with Keithley 2450 emulators, "
                    "one shared ESPEC chamber, a pneumatic jig per cell, on an accelerated "
                    "clock), run the daemon on it, submit the formation protocol to all four "
                    "cells, show their progress, and export Battery Data Format files, cycle "
                    "tables and plots into a folder named at the end. Needs no server.")
    demo.add_argument("--out", metavar="DIR",
                      help="the demo's folder (default: a new cellrig-demo-<time> folder)")
    demo.add_argument("--speed", type=_positive, metavar="X",
                      help="how much faster than real time the bench runs (default: as fast "
                           "as formation fits in about a minute)")
    demo.add_argument("--protocol", default="formation", metavar="NAME|FILE",
                      help="the library protocol or protocol file to run (default formation; "
                           "a shorter one, such as charge-and-stop, makes a quicker demo)")


def _socket(args: argparse.Namespace) -> Path:
    """The control socket of the station the command talks to."""
    if getattr(args, "socket", None):
        return Path(args.socket)
    config = getattr(args, "config", None)
    if not config and not os.environ.get("CELLRIG_SOCKET") and DEFAULT_CONFIG.is_file():
        config = str(DEFAULT_CONFIG)
    if config:
        from .service import socket_path
        from .station_config import load_station

        return socket_path(load_station(config))
    if os.environ.get("CELLRIG_SOCKET"):
        return Path(os.environ["CELLRIG_SOCKET"])
    from .cli_protocols import UsageError

    raise UsageError("which station? give --socket PATH or --config station.toml (or set "
                     "CELLRIG_SOCKET)")


def _client_command(name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from .cli_station_run import CLIENT_COMMANDS

        return CLIENT_COMMANDS[name](args, _socket(args))

    return run


def _run_daemon(args: argparse.Namespace) -> int:
    from .service import main

    return main(args.config, socket_override=args.socket, log_format=args.log_format,
                verbose=args.verbose)


def _run_export(args: argparse.Namespace) -> int:
    from .cli_export import run_export

    return run_export(args)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


#: The commands of this module, by name.
HANDLERS: dict[str, Handler] = {
    "daemon": _run_daemon,
    "submit": _client_command("submit"),
    "jobs": _client_command("jobs"),
    "status": _client_command("status"),
    "pause": _client_command("pause"),
    "resume": _client_command("resume"),
    "stop": _client_command("stop"),
    "events": _client_command("events"),
    "export": _run_export,
    "demo": _run_demo,
}

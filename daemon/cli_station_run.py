"""The work of the CLI commands that talk to a running station through its control socket
(``cellrig submit``, ``jobs``, ``status``, ``pause``, ``resume``, ``stop``, ``events``).

Each returns the exit code: 0 when the station did what was asked, 1 when it refused or could
not be reached (the reason is printed on stderr by the CLI, without a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellrig.errors import ConfigError, Diagnostic, SourceLocation
from cellrig.protocols.yamlsource import YMap, YNode, YScalar, YSeq

from .cli_format import event_line, events_header, events_table, job_line, jobs_table, status_table
from .cli_protocols import parse_parameters
from .control_api import JobView, SubmitRequest, to_json
from .control_client import ControlClient

#: Job states after which a job's events stop growing.
FINAL_STATES = frozenset({"completed", "stopped", "aborted", "failed"})
#: Pause between polls of ``cellrig events --follow``.
FOLLOW_PERIOD_S = 1.0
#: Wait after a followed job has ended before the last look at its events.
ENDED_GRACE_S = 1.5
#: Clear the terminal and go home (ANSI), for the live status table.
CLEAR = "\x1b[H\x1b[2J"


def plain(node: YNode) -> Any:
    """A parsed YAML node as plain data (scalars with their values)."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [plain(item) for item in node.items]
    return {str(key.value): plain(value) for key, value in node.entries}


def protocol_source(name_or_path: str) -> tuple[str, str]:
    """``(text, source name)`` of a protocol file, or of a library protocol by name."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Diagnostic(SourceLocation(str(path), 1, 1),
                                          f"cannot read the protocol: {exc}")]) from None
    from cellrig.protocols.library import library_files

    names = []
    for entry in library_files():
        name = entry.name.removesuffix(".yaml")
        names.append(name)
        if name == name_or_path:
            return entry.read_text(encoding="utf-8"), f"library/{entry.name}"
    raise ConfigError([Diagnostic(
        SourceLocation(name_or_path, 1, 1),
        f"no protocol file {name_or_path!r} and no library protocol of that name",
        expected=f"a YAML file, or one of {', '.join(names)}", example="formation")])


def _cell(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    from cellrig.protocols.resolve import load_cell_file

    node: YMap = load_cell_file(path)
    found = plain(node)
    assert isinstance(found, dict)
    return found


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def run_submit(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig submit``."""
    text, source = protocol_source(args.protocol)
    request = SubmitRequest(channel=args.channel, protocol_text=text, cell=_cell(args.cell),
                            parameters=parse_parameters(args.params), source=source,
                            start_with=tuple(args.start_with),
                            hold_for_group=args.hold_for_group)

    async def submit() -> JobView:
        async with ControlClient(socket) as station:
            return await station.submit(request)

    job = _run(submit())
    print(job_line(job))
    return 0


def run_jobs(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig jobs``."""
    async def jobs() -> list[JobView]:
        async with ControlClient(socket) as station:
            return await station.jobs(args.state)

    found = _run(jobs())
    if args.json:
        print(json.dumps(to_json(found), indent=2))
    else:
        print(jobs_table(found, time.time()))
    return 0


def run_status(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig status``: once, or redrawn every ``--interval`` seconds until Ctrl-C."""
    async def watch() -> None:
        live = not (args.once or args.json)
        async with ControlClient(socket) as station:
            while True:
                status = await station.status()
                if args.json:
                    print(json.dumps(to_json(status), indent=2))
                    return
                table = status_table(status)
                if not live:
                    print(table)
                    return
                if sys.stdout.isatty():
                    sys.stdout.write(CLEAR + table + "\n\n(Ctrl-C to quit)\n")
                else:
                    sys.stdout.write(table + "\n\n")
                sys.stdout.flush()
                await asyncio.sleep(args.interval)

    with contextlib.suppress(KeyboardInterrupt):
        _run(watch())
    return 0


def _change(verb: str, args: argparse.Namespace, socket: Path) -> int:
    async def change() -> JobView:
        async with ControlClient(socket) as station:
            if verb == "pause":
                return await station.pause(args.job)
            if verb == "resume":
                return await station.resume(args.job)
            return await station.stop(args.job, args.reason or "stopped on request")

    print(job_line(_run(change())))
    return 0


def run_pause(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig pause JOB``."""
    return _change("pause", args, socket)


def run_resume(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig resume JOB``."""
    return _change("resume", args, socket)


def run_stop(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig stop JOB``."""
    return _change("stop", args, socket)


def run_events(args: argparse.Namespace, socket: Path) -> int:
    """``cellrig events JOB [--follow]``."""
    async def follow() -> None:
        async with ControlClient(socket) as station:
            await station.job(args.job)  # an unknown job is refused here, before any output
            after = 0
            printed_header = False
            ended = False
            while True:
                found = await station.events(args.job, after)
                if args.json:
                    for event in found:
                        print(json.dumps(to_json(event)), flush=True)
                elif not args.follow:
                    print(events_table(found))
                else:
                    if not printed_header:
                        print(events_header(), flush=True)
                        printed_header = True
                    for event in found:
                        print(event_line(event), flush=True)
                if found:
                    after = found[-1].id
                if not args.follow or ended:
                    return
                # a job's last events are committed up to a second after its final state:
                # once it has ended, one more look after the store's commit interval
                ended = (await station.job(args.job)).state in FINAL_STATES
                await asyncio.sleep(ENDED_GRACE_S if ended else FOLLOW_PERIOD_S)

    with contextlib.suppress(KeyboardInterrupt):
        _run(follow())
    return 0


#: The commands of this module, by name.
CLIENT_COMMANDS: dict[str, Callable[[argparse.Namespace, Path], int]] = {
    "submit": run_submit, "jobs": run_jobs, "status": run_status, "pause": run_pause,
    "resume": run_resume, "stop": run_stop, "events": run_events,
}

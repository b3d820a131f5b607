"""Submission: a request made into a program that can run on its channel, or a clear refusal.

:func:`prepare` parses the protocol text (or reads a library protocol named by the text), reads
the submitted cell (the keys of a cell file), applies the parameter overrides and resolves the
program; then it refuses what can never run on the channel (``job_refusals``). It is pure
computation (no store, no I/O beyond the library), so the job manager runs it off the event
loop.

Codes: a protocol, cell or parameter that is not valid is ``invalid``, with every error the
protocol checker found, each with its file, line and column; a valid program that cannot run
on the channel (unknown channel, instrument ranges, hard limits, chamber range) is ``refused``,
one line per reason.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import yaml

from cellrig import __version__
from cellrig.daemon.control_api import ControlError, ErrorCode, SubmitRequest
from cellrig.daemon.job_refusals import environment_refusals, hard_limit_refusals
from cellrig.daemon.job_station import JobChannel, JobStation
from cellrig.daemon.store_records import Provenance
from cellrig.errors import InputError
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.program import Program
from cellrig.protocols.resolve import load_cell_text, resolve
from cellrig.protocols.yamlsource import YMap

_LIBRARY_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A submission that can run: its channel, program and provenance."""

    channel: str
    program: Program
    provenance: Provenance


def library_text(name: str) -> str | None:
    """The text of the library protocol ``name`` (``formation``), or None if there is none."""
    from cellrig.protocols.library import library_files

    for entry in library_files():
        if entry.name == f"{name}.yaml":
            return entry.read_text(encoding="utf-8")
    return None


def _protocol_text(request: SubmitRequest) -> tuple[str, str]:
    """The protocol text and the name errors point at: a library name stands for its file."""
    text = request.protocol_text
    name = text.strip()
    if "\n" not in name and _LIBRARY_NAME.fullmatch(name):
        found = library_text(name)
        if found is not None:
            return found, f"library/{name}.yaml"
    return text, request.source


def _cell(cell: dict[str, Any], source: str) -> YMap | None:
    if not cell:
        return None
    try:
        text = yaml.safe_dump(cell, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise ControlError(ErrorCode.INVALID, f"the cell cannot be read: {exc}") from None
    return load_cell_text(text, f"{source} (cell)")


def _invalid(exc: InputError) -> ControlError:
    lines = [d.render() for d in exc.diagnostics] or [str(exc)]
    return ControlError(ErrorCode.INVALID, "\n".join(lines))


def prepare(request: SubmitRequest, station: JobStation, *,
            software_version: str = __version__) -> Prepared:
    """Check a submission; :class:`ControlError` says why it cannot run."""
    channel = station.channels.get(request.channel)
    if channel is None:
        known = ", ".join(sorted(station.channels)) or "none"
        raise ControlError(ErrorCode.REFUSED,
                           f"there is no channel {request.channel!r} (channels: {known})")
    text, source = _protocol_text(request)
    try:
        protocol = load_protocol_text(text, source)
        cell = _cell(dict(request.cell), source)
        program = resolve(protocol, cell, dict(request.parameters))
    except InputError as exc:
        raise _invalid(exc) from None
    problems = refusals(program, channel)
    if problems:
        raise ControlError(ErrorCode.REFUSED,
                           f"{program.name} cannot run on channel {channel.name}:\n"
                           + "\n".join(f"- {problem}" for problem in problems))
    provenance = dataclasses.replace(
        Provenance.of(text, program, parameters=dict(request.parameters),
                      station_config_sha256=station.config.sha256),
        software_version=software_version)
    return Prepared(channel.name, program, provenance)


def refusals(program: Program, channel: JobChannel) -> list[str]:
    """Every reason ``program`` can never run on ``channel`` (each said once)."""
    found = [*channel.refusals(program),
             *hard_limit_refusals(program, channel.config.limits),
             *environment_refusals(program, channel.name, channel.chamber, channel.jig)]
    return list(dict.fromkeys(found))

"""Plain-text tables of jobs, events and station status, as the CLI prints them.

Used by the commands that talk to a station, on the PC (the Unix socket) and through the
broker alike, so a table looks the same wherever it comes from. Every column that carries a
quantity names its unit in the header (``V``, ``I / mA``, ``T / degC``, ``P / MPa``); a value
that is not known is shown as ``-``. Times of day are UTC, as stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from .control_api import ChannelStatus, EventView, JobView, StationStatus

#: Shown where a value is not known.
MISSING = "-"
#: Longest reason or message cell before it is cut (the whole text is in ``cellrig events``).
TEXT_WIDTH = 60


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart; ``right`` marks the columns
    aligned right (numbers). The last column is not padded."""
    if right is None:
        right = [False] * len(headers)
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    last = len(headers) - 1

    def line(cells: Sequence[str]) -> str:
        parts = []
        for index, cell in enumerate(cells):
            if right[index]:
                parts.append(cell.rjust(widths[index]))
            elif index == last:
                parts.append(cell)
            else:
                parts.append(cell.ljust(widths[index]))
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def number(value: float | None, decimals: int, scale: float = 1.0) -> str:
    """``value * scale`` with ``decimals`` decimals, or ``-`` when unknown or not finite."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value * scale:.{decimals}f}"


def utc_time(unix_s: float | None) -> str:
    """``2026-12-07 11:20:31`` (UTC), or ``-``."""
    if unix_s is None:
        return MISSING
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``3:07:12`` (hours:minutes:seconds), ``2d 03:07:12`` from a day on, or ``-``."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else clock


def shorten(text: str, width: int = TEXT_WIDTH) -> str:
    """One line of at most ``width`` characters (``…`` where cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# -- jobs ------------------------------------------------------------------------------------

JOB_HEADERS = ("JOB", "CHANNEL", "STATE", "PROTOCOL", "CELL", "QUEUED (UTC)", "RAN", "REASON")


def job_row(job: JobView, now_unix_s: float) -> list[str]:
    """One job as a row of :data:`JOB_HEADERS`; RAN is how long it has run (until it ended,
    or until now)."""
    ran: float | None = None
    if job.started_unix_s is not None:
        ran = (job.ended_unix_s if job.ended_unix_s is not None else now_unix_s) \
            - job.started_unix_s
    return [str(job.id), job.channel, job.state, job.protocol_name, job.cell_id or MISSING,
            utc_time(job.queued_unix_s), duration(ran), shorten(job.reason) or MISSING]


def jobs_table(jobs: Sequence[JobView], now_unix_s: float) -> str:
    """The jobs, one row each, in the order given."""
    if not jobs:
        return "no jobs"
    right = [True, False, False, False, False, False, True, False]
    return table(JOB_HEADERS, [job_row(job, now_unix_s) for job in jobs], right)


def job_line(job: JobView) -> str:
    """``job 12 on A1: running (formation, cell pouch-7)`` and the reason, if any."""
    text = f"job {job.id} on {job.channel}: {job.state} ({job.protocol_name}"
    text += f", cell {job.cell_id})" if job.cell_id else ")"
    return f"{text}: {job.reason}" if job.reason else text


# -- events ----------------------------------------------------------------------------------

EVENT_HEADERS = ("ID", "TIME (UTC)", "TEST TIME", "CYCLE", "STEP", "KIND", "MESSAGE")
#: Fixed widths of the event columns (all but the message), so that the lines
#: ``cellrig events --follow`` prints as they come stay under the first table's header.
EVENT_WIDTHS = (6, 19, 11, 5, 5, 12)
_EVENT_RIGHT = (True, False, True, True, True, False)


def event_row(event: EventView) -> list[str]:
    """One event as a row of :data:`EVENT_HEADERS` (the test time as h:mm:ss)."""
    return [str(event.id), utc_time(event.unix_time_s), duration(event.test_time_s),
            str(event.cycle), str(event.step_count), event.kind, " ".join(event.message.split())]


def _event_cells(cells: Sequence[str]) -> str:
    padded = [cell.rjust(width) if right else cell.ljust(width)
              for cell, width, right in zip(cells, EVENT_WIDTHS, _EVENT_RIGHT, strict=False)]
    return "  ".join([*padded, *cells[len(EVENT_WIDTHS):]]).rstrip()


def event_line(event: EventView) -> str:
    """One event as a line of the events table."""
    return _event_cells(event_row(event))


def events_header() -> str:
    """The header line of the events table."""
    return _event_cells(EVENT_HEADERS)


def events_table(events: Sequence[EventView]) -> str:
    """The events, oldest first, under their header."""
    if not events:
        return "no events"
    return "\n".join([events_header(), *(event_line(event) for event in events)])


# -- status ----------------------------------------------------------------------------------

STATUS_HEADERS = ("CHANNEL", "JOB", "STATE", "CYCLE", "STEP", "V", "I / mA", "T / degC",
                  "P / MPa", "QCHG / mAh", "QDIS / mAh", "TEST TIME", "QUEUED")
COMPACT_HEADERS = ("CHANNEL", "JOB", "STATE", "CYCLE", "V", "I / mA", "T / degC", "P / MPa",
                   "QCHG / mAh", "QDIS / mAh", "TEST TIME")


def channel_row(channel: ChannelStatus, compact: bool = False) -> list[str]:
    """One channel as a row of :data:`STATUS_HEADERS` (or :data:`COMPACT_HEADERS`). A
    latched channel shows ``LATCHED`` as its state."""
    state = channel.job_state or "idle"
    if channel.latched:
        state = "LATCHED"
    step = channel.step or MISSING
    if channel.step_count is not None and channel.step:
        step = f"{channel.step_count}: {channel.step}"
    cells = {
        "CHANNEL": channel.channel,
        "JOB": MISSING if channel.job_id is None else str(channel.job_id),
        "STATE": state,
        "CYCLE": MISSING if channel.cycle is None else str(channel.cycle),
        "STEP": shorten(step, 44),
        "V": number(channel.voltage_v, 4),
        "I / mA": number(channel.current_a, 3, 1000.0),
        "T / degC": number(channel.temperature_c, 1),
        "P / MPa": number(channel.pressure_pa, 3, 1e-6),
        "QCHG / mAh": number(channel.charge_capacity_ah, 2, 1000.0),
        "QDIS / mAh": number(channel.discharge_capacity_ah, 2, 1000.0),
        "TEST TIME": duration(channel.test_time_s),
        "QUEUED": str(channel.queued),
    }
    return [cells[name] for name in (COMPACT_HEADERS if compact else STATUS_HEADERS)]


_NUMERIC = frozenset({"JOB", "CYCLE", "V", "I / mA", "T / degC", "P / MPa", "QCHG / mAh",
                      "QDIS / mAh", "TEST TIME", "QUEUED"})


def status_table(status: StationStatus, compact: bool = False) -> str:
    """A heading line (station, software version, time) and one row per channel; below,
    the reason of every latched channel."""
    headers = COMPACT_HEADERS if compact else STATUS_HEADERS
    heading = (f"station {status.station}  cellrig {status.software_version}  "
               f"{utc_time(status.unix_time_s)} UTC")
    rows = [channel_row(channel, compact) for channel in status.channels]
    lines = [heading, "", table(headers, rows, [name in _NUMERIC for name in headers])]
    latched = [c for c in status.channels if c.latched]
    if latched:
        lines.append("")
        lines.extend(f"{c.channel} latched safe: {c.latched}" for c in latched)
    return "\n".join(lines)

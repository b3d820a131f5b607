"""Jobs that start together (``SubmitRequest.start_with``).

Jobs on channels that share a chamber can be submitted as a group: each waits at the head of
its channel's queue, with its channel idle, until every other member that is still queued is
waiting the same way; then all start at once, so their set steps reach the chamber in step.
A member that is stopped while it waits leaves the group and the others go on without it.

A job submitted with ``hold_for_group`` is held: it does not start, even alone on an idle
channel, until a later submission names it (or a member of its group) in ``start_with``. The
hold then passes to the newest member: a group is held as long as its newest member asked to
be, so a group of three is submitted as held, held, then the last one plain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence

from cellrig.daemon.control_api import ControlError, ErrorCode
from cellrig.daemon.job_station import JobChannel


class StartGroups:
    """The groups of queued jobs and which members are ready to start."""

    def __init__(self, poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self._groups: dict[int, set[int]] = {}
        self._ready: set[int] = set()
        self._held: set[int] = set()
        self._changed = asyncio.Event()

    def group(self, job_id: int) -> frozenset[int]:
        """The members of ``job_id``'s group (empty if it has none)."""
        return frozenset(self._groups.get(job_id, ()))

    def check(self, channel: str, start_with: Sequence[int], queued: Collection[int],
              channels: Mapping[str, JobChannel],
              channel_of: Callable[[int], str | None]) -> set[int]:
        """The jobs a new job on ``channel`` joins (with their groups); :class:`ControlError`
        (refused) when one is not queued, runs on the same channel as another member, or does
        not share this channel's chamber."""
        members: set[int] = set()
        for job_id in start_with:
            members |= {job_id} | self._groups.get(job_id, set())
        if not members:
            return members
        chamber = channels[channel].config.chamber
        used = {channel: -1}
        for job_id in sorted(members):
            if job_id not in queued:
                raise ControlError(ErrorCode.REFUSED, f"start_with: job {job_id} is not "
                                   "queued; only queued jobs can start together")
            other = channel_of(job_id)
            assert other is not None
            if other in used:
                raise ControlError(ErrorCode.REFUSED, f"start_with: job {job_id} is on "
                                   f"channel {other}, which already has a job in the group")
            used[other] = job_id
            if chamber is None or channels[other].config.chamber != chamber:
                raise ControlError(ErrorCode.REFUSED, f"start_with: job {job_id} is on "
                                   f"channel {other}, which does not share a chamber with "
                                   f"channel {channel}")
        return members

    def join(self, job_id: int, members: set[int], *, hold: bool = False) -> None:
        """Put ``job_id`` in one group with ``members`` (and their groups); ``hold``: the
        group waits for a later member."""
        self._held -= members
        if hold:
            self._held.add(job_id)
            self._groups.setdefault(job_id, {job_id})
        if not members:
            self._notify()
            return
        group = {job_id} | members
        for member in list(group):
            group |= self._groups.get(member, set())
        for member in group:
            self._groups[member] = group
        self._notify()

    def leave(self, job_id: int) -> None:
        """``job_id`` started or was stopped: the others no longer wait for it."""
        group = self._groups.pop(job_id, None)
        if group is not None:
            group.discard(job_id)
        self._ready.discard(job_id)
        self._held.discard(job_id)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_ready(self, job_id: int, queued: Callable[[], Collection[int]]) -> bool:
        """Wait until every queued member of ``job_id``'s group waits here too and the group
        is not held; False if ``job_id`` itself left the queue meanwhile."""
        if job_id not in self._groups:
            return True
        self._ready.add(job_id)
        self._notify()
        try:
            while True:
                waiting = queued()
                if job_id not in waiting:
                    return False
                group = self._groups.get(job_id, set())
                if not group & self._held and all(
                        member in self._ready for member in group if member in waiting):
                    return True
                changed = self._changed
                try:
                    async with asyncio.timeout(self.poll_s):
                        await changed.wait()
                except TimeoutError:
                    pass
        finally:
            self._ready.discard(job_id)

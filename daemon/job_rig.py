"""The rig a job's engine drives: the channel's rig, with the shared-chamber wait.

:class:`JobRig` passes every call to the channel's :class:`~cellrig.daemon.channel_rig.ChannelRig`
except a chamber setpoint the chamber cannot take now. The rule (docs/jobs.md): a chamber shared
by several channels holds one temperature; a job whose ``set`` step needs another one first
gives up its own hold on the old temperature (it has moved past the steps that needed it), then
waits — output off, its state stays running, an event says it waits and for whom — until no
other channel holds the chamber at a different temperature, and then takes it. Jobs that reach
the same set step at different times therefore line up: the chamber moves when the last
holder asks for the new temperature or ends.

Each read first yields to the event loop, so a rig that computes whole steps without waiting
(the bench model) shares the loop with the other channels, and a cancellation lands between
blocks, before the instrument moves on, never inside one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import SAME_SETPOINT_C, ChamberBusy, SharedChamber
from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Block, Capabilities, Command, Spectrum

#: ``(message, data)`` of a wait event.
WaitReport = Callable[[str, dict[str, Any]], None]


class ChamberWaits:
    """Wakes the jobs waiting for a station's chambers whenever a hold is given up."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A channel released a chamber or changed its setpoint: waiters look again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        """Until the next :meth:`notify`, or ``timeout_s``."""
        changed = self._changed
        try:
            async with asyncio.timeout(timeout_s):
                await changed.wait()
        except TimeoutError:
            pass


class JobRig:
    """The engine's rig port for one job (see the module docstring)."""

    def __init__(self, rig: ChannelRig, waits: ChamberWaits, *, poll_s: float,
                 report: WaitReport, check_stop: Callable[[], None],
                 on_chamber: Callable[[bool], None] = lambda held: None,
                 first_apply_at_s: float | None = None,
                 before_apply: Callable[[], Awaitable[None]] | None = None) -> None:
        self.rig = rig
        self.before_apply = before_apply
        """awaited before every command reaches the instrument (the job's store committing
        what the engine sent before it: see ``job_run``)"""
        self.first_apply_at_s = first_apply_at_s
        """after a restart whose outage was accounted up to this instrument time: what the
        first command returns as its time, so the engine counts on from there"""
        self.waits = waits
        self.poll_s = poll_s
        self.report = report
        self.check_stop = check_stop
        self.on_chamber = on_chamber
        """told False when the job starts waiting for the chamber, True once it holds it"""
        self.waited_s = 0.0

    @property
    def capabilities(self) -> Capabilities:
        """The channel rig's."""
        return self.rig.capabilities

    async def apply(self, command: Command) -> float:
        """Set the source; the first command after an accounted outage takes effect, for the
        engine, where the accounting stopped (the instrument sourced it all along)."""
        if self.before_apply is not None:
            await self.before_apply()
        at_s = await self.rig.apply(command)
        if self.first_apply_at_s is not None:
            at_s, self.first_apply_at_s = min(self.first_apply_at_s, at_s), None
        return at_s

    async def read(self) -> Block:
        """The next block, after letting the other channels' tasks run."""
        await asyncio.sleep(0)
        return await self.rig.read()

    async def end_step(self, at_time_s: float) -> None:
        """End the step at a reading."""
        await self.rig.end_step(at_time_s)

    async def safe(self) -> None:
        """Output off (after which no outage runs on into the next command)."""
        self.first_apply_at_s = None
        await self.rig.safe()

    async def eis(self, step: EisStep) -> Spectrum:
        """An impedance sweep."""
        return await self.rig.eis(step)

    async def set_environment(self, temperature_c: float | None,
                              pressure_pa: float | None) -> None:
        """New setpoints; a chamber temperature that another channel's hold prevents is
        waited for (see the module docstring)."""
        chamber = self.rig.chamber
        if temperature_c is None or chamber is None:
            await self.rig.set_environment(temperature_c, pressure_pa)
            return
        name = self.rig.name
        held = chamber.holders.get(name)
        if held is not None and abs(held - temperature_c) > SAME_SETPOINT_C:
            chamber.release(name)  # this job has moved past the steps that needed it
            self.waits.notify()
        started = time.monotonic()
        told = False
        while True:
            self.check_stop()
            if chamber.can_take(name, temperature_c):
                try:
                    await self.rig.set_environment(temperature_c, pressure_pa)
                except ChamberBusy:  # another waiter took it first
                    pass
                else:
                    break
            if not told:
                self.on_chamber(False)
                await self.rig.safe()  # the wait may be long: no current meanwhile
                self.report(_waiting_message(chamber, name, temperature_c),
                            {"wait": "chamber", "chamber": chamber.name,
                             "setpoint_c": temperature_c, "holders": _others(chamber, name)})
                told = True
            await self.waits.wait(self.poll_s)
        self.on_chamber(True)
        if told:
            waited_s = time.monotonic() - started
            self.waited_s += waited_s
            self.report(f"chamber {chamber.name} taken at {temperature_c:g} °C after waiting "
                        f"{waited_s:.3g} s", {"wait": "chamber", "chamber": chamber.name,
                                              "setpoint_c": temperature_c, "waited_s": waited_s})
        self.waits.notify()  # others at the same temperature may join now


def _others(chamber: SharedChamber, channel: str) -> dict[str, float]:
    return {name: held for name, held in chamber.holders.items() if name != channel}


def _waiting_message(chamber: SharedChamber, channel: str, setpoint_c: float) -> str:
    held = ", ".join(f"{name} at {value:g} °C"
                     for name, value in sorted(_others(chamber, channel).items()))
    return (f"waiting for chamber {chamber.name}: this step needs {setpoint_c:g} °C and "
            f"the chamber is held by {held}")

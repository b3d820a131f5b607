"""Jig alarms: what the interlocks raise, kept in one book that reports each change once.

An alarm is active while its condition holds and is cleared when it stops holding (a gauge
that answers again, a force back under the maximum). Every change goes to the log and, as an
:class:`AlarmEvent`, to the callback the station gives (its event store and the safety
supervisor), so a transient fault leaves a record even after it cleared. ``alarms()`` on a
jig returns the active ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class JigAlarm(StrEnum):
    """The interlocks and alarms of a stack-pressure jig."""

    GAUGE_LOST = "gauge lost"
    """no valid force reading within the response timeout: the loop holds its output"""
    REGULATOR_LOST = "regulator lost"
    """the pressure controller did not answer within the response timeout"""
    OVER_FORCE = "over force"
    """the force is above the jig's maximum: the loop may lower its output, never raise it"""
    OVER_PRESSURE = "over pressure"
    """the stack pressure is above the ceiling (the protocol's limit or the jig's maximum)"""
    REGULATOR_TRACKING = "regulator tracking"
    """the regulator's pressure stays away from its own setpoint: a leak, or no gas supply"""
    OUT_OF_TOLERANCE = "out of tolerance"
    """the stack pressure stays outside the tolerance band around the setpoint"""
    LOOP_STOPPED = "loop stopped"
    """the control task ended with an unexpected error"""


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm raised (``active``) or cleared, at ``time_s`` on the loop's clock."""

    jig: str
    alarm: JigAlarm
    active: bool
    time_s: float
    message: str

    def __str__(self) -> str:
        state = "raised" if self.active else "cleared"
        return f"{self.jig}: {self.alarm.value} {state} at {self.time_s:.1f} s: {self.message}"


class AlarmBook:
    """The active alarms of one jig; reports every raise and clear once."""

    def __init__(self, jig: str, on_event: Callable[[AlarmEvent], None] | None = None) -> None:
        self.jig = jig
        self._on_event = on_event
        self._active: dict[JigAlarm, AlarmEvent] = {}
        self.history: list[AlarmEvent] = []

    def update(self, alarm: JigAlarm, active: bool, now_s: float, message: str = "") -> None:
        """Set an alarm's state; reports it only when it changes. ``message`` says what is
        wrong (used when the alarm is raised; a clear repeats what was wrong)."""
        if active == (alarm in self._active):
            return
        if active:
            event = AlarmEvent(self.jig, alarm, True, now_s, message or alarm.value)
            self._active[alarm] = event
            log.warning("%s", event)
        else:
            raised = self._active.pop(alarm)
            event = AlarmEvent(self.jig, alarm, False, now_s, f"was: {raised.message}")
            log.info("%s", event)
        self.history.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def is_active(self, alarm: JigAlarm) -> bool:
        """Whether ``alarm`` is raised now."""
        return alarm in self._active

    def messages(self) -> list[str]:
        """Active alarms as a person reads them, oldest first."""
        return [f"{event.alarm.value}: {event.message}" for event in self._active.values()]


class Persistence:
    """A condition that counts only once it has held for ``for_s`` without a break."""

    def __init__(self, for_s: float) -> None:
        self.for_s = for_s
        self._since_s: float | None = None

    def update(self, condition: bool, now_s: float) -> bool:
        """Feed the condition's state now; returns whether it has held long enough."""
        if not condition:
            self._since_s = None
            return False
        if self._since_s is None:
            self._since_s = now_s
        return now_s - self._since_s >= self.for_s

    def reset(self) -> None:
        """Forget how long the condition has held."""
        self._since_s = None

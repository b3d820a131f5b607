"""What the job manager needs of a station, and its settings.

The job manager works on any station that has these parts (``daemon/station.py`` builds the
real one from station.toml; tests build channels by hand over the bench model), so the shapes
are written as protocols rather than imported classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cellrig.daemon.channel_rig import ChannelRig
from cellrig.daemon.environment import SharedChamber, StackJig
from cellrig.daemon.station_config_model import ChannelConfig, StationConfig
from cellrig.daemon.supervisor import ChannelSupervisor
from cellrig.protocols.clock import Clock
from cellrig.protocols.program import Program


class JobChannel(Protocol):
    """One cell position as the job manager sees it."""

    @property
    def name(self) -> str:
        """The channel's name (``A1``)."""
        ...

    @property
    def config(self) -> ChannelConfig:
        """Its configuration (hard limits, chamber, jig)."""
        ...

    @property
    def rig(self) -> ChannelRig:
        """The engine's rig over its instruments."""
        ...

    @property
    def supervisor(self) -> ChannelSupervisor:
        """Its safety supervisor."""
        ...

    @property
    def chamber(self) -> SharedChamber | None:
        """The chamber it uses (often shared), if any."""
        ...

    @property
    def jig(self) -> StackJig | None:
        """Its stack-pressure jig, if any."""
        ...

    def refusals(self, program: Program) -> list[str]:
        """Why ``program`` cannot run on the channel's instruments (empty if it can)."""
        ...


class JobStation(Protocol):
    """A station as the job manager sees it."""

    @property
    def config(self) -> StationConfig:
        """The checked station.toml (name, hash)."""
        ...

    @property
    def clock(self) -> Clock:
        """The UTC clock a job's engine stamps its output with."""
        ...

    @property
    def channels(self) -> Mapping[str, JobChannel]:
        """Every channel by name."""
        ...


@dataclass(frozen=True, slots=True)
class JobSettings:
    """How jobs are run.

    ``checkpoint_every_s`` is in test time; a restart continues from the last checkpoint and
    folds the samples stored after it back in (docs/jobs.md), so this bounds the work a
    restart re-reads, not what it loses. ``chamber_poll_s`` is how often a job waiting for a
    shared chamber looks again even when nothing told it to. ``stop_wait_s`` is how long
    ``stop`` waits for a running job to end before it answers with the job still running.
    """

    checkpoint_every_s: float = 60.0
    chamber_poll_s: float = 1.0
    latched_poll_s: float = 1.0
    stop_wait_s: float = 10.0
    store_timeout_s: float = 30.0
    safe_timeout_s: float = 10.0
    """how long making a channel safe may take at a job's end or before a resume"""

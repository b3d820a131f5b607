"""The step engine: runs a resolved program on any rig, block by block, with no I/O of its own.

See ``runner.Engine``. The engine talks to the instruments through the rig port
(``cellrig.protocols.rig``), to time through an injected clock, and hands samples, events,
cycle summaries and checkpoints to a sink (``output.Sink``).
"""

from .output import Event, EventKind, ListSink, SampleBlock, Sink
from .runner import Engine, JobOutcome, JobState

__all__ = ["Engine", "Event", "EventKind", "JobOutcome", "JobState", "ListSink", "SampleBlock",
           "Sink"]

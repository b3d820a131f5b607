"""A force gauge in-process, in the Mark-10's role but without a wire.

The loop's unit tests and ``cellrig simulate`` read the bench's force through this object
exactly as through :class:`cellrig.drivers.mark10.Mark10ForceGauge` (``read_force_n``). The
force is a callable evaluated at the bench's present time (a bench cell's
``measure().force_n``, or a jig model with a given swell). A NaN force (the jig's
``SENSOR_LOST``) is reported as the gauge's error; ``failing`` makes it stop answering.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cellrig.errors import InstrumentReported, InstrumentTimeout


class ModelForceGauge:
    """A force source behind the jigs' gauge port."""

    def __init__(self, force_n: Callable[[], float], *, name: str = "model-gauge") -> None:
        self.force_n = force_n
        self.name = name
        self.failing = False
        self.reads = 0

    async def read_force_n(self) -> float:
        """The force now, compression positive."""
        self.reads += 1
        if self.failing:
            raise InstrumentTimeout("no reply (model gauge set to fail)", instrument=self.name,
                                    address="model://", command="?")
        force_n = self.force_n()
        if not math.isfinite(force_n):
            raise InstrumentReported("gauge error *11 (no sensor reading)", code=11,
                                     instrument=self.name, address="model://", command="?")
        return force_n

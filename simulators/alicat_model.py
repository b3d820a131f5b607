"""The bench's pneumatic regulator in-process, in the Alicat's role but without a wire.

``cellrig simulate`` and the loop's unit tests run a pneumatic jig at full speed: the loop
talks to this object exactly as to :class:`cellrig.drivers.alicat.AlicatPressureController`
(``poll``, ``set_pressure``, ``full_scale_pa``), and it sets and reads the jig model's
regulator at the bench's present time. The setpoint it reports is the one commanded, as a
controller's is, even where the jig cannot reach it (supply limit, leak). ``failing`` makes
every exchange time out, as a controller that stopped answering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cellrig.errors import InstrumentTimeout
from cellrig.simulators.jig import Jig


@dataclass(frozen=True, slots=True)
class RegulatorReading:
    """The regulator's pressure and setpoint, in pascals."""

    pressure_pa: float
    setpoint_pa: float


class ModelRegulator:
    """A jig model's regulator behind the loop's regulator port."""

    def __init__(self, jig: Jig, now_s: Callable[[], float], *,
                 full_scale_pa: float = 1.0e6, name: str = "model-regulator") -> None:
        self.jig = jig
        self.now_s = now_s
        self.full_scale_pa = full_scale_pa
        self.name = name
        self.failing = False
        self.setpoint_pa = jig.regulator_setpoint_pa
        self.commands: list[tuple[float, float]] = []
        """every setpoint received, with the bench time it arrived"""

    async def poll(self) -> RegulatorReading:
        """The regulator's state now."""
        self._check("poll")
        at = np.array([self.now_s()])
        return RegulatorReading(float(self.jig.regulator_pressure(at)[0]), self.setpoint_pa)

    async def set_pressure(self, pressure_pa: float) -> RegulatorReading:
        """A new regulator setpoint, taking effect at the bench's present time."""
        self._check(f"set {pressure_pa:.0f} Pa")
        now_s = self.now_s()
        self.commands.append((now_s, pressure_pa))
        self.setpoint_pa = pressure_pa
        self.jig.set_regulator(pressure_pa, now_s)
        return await self.poll()

    def _check(self, command: str) -> None:
        if self.failing:
            raise InstrumentTimeout("no reply (model regulator set to fail)",
                                    instrument=self.name, address="model://", command=command)

"""A scripted test rig for the engine: a linear cell (OCV linear in charge, one series
resistance) on a virtual instrument clock, with a chamber and a jig that settle exponentially.

Readings are taken on a fixed grid from the moment a command is applied and handed over in
blocks of ``block_size`` (1 = a host-polled instrument). With ``device_cutoffs`` the rig ends a
command itself at the first reading that meets one of its conditions, as a cycler would;
either way the readings are the same, so the engine's results must be too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cellrig.protocols.program import Condition, EisStep, Operator, Quantity
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode, Spectrum


@dataclass
class LinearCell:
    """OCV = ocv0_v + slope_v_per_ah * charge_ah; terminal V = OCV + I * r_ohm."""

    capacity_ah: float = 1.0
    charge_ah: float = 0.0
    ocv0_v: float = 3.0
    slope_v_per_ah: float = 1.2
    r_ohm: float = 0.1

    def ocv(self, charge_ah: float) -> float:
        """Open-circuit voltage at a state of charge."""
        return self.ocv0_v + self.slope_v_per_ah * charge_ah


@dataclass
class LinearRig:
    """The test rig (implements the engine's rig port)."""

    cell: LinearCell = field(default_factory=LinearCell)
    dt_s: float = 1.0
    block_size: int = 1
    device_cutoffs: bool = False
    eis_capable: bool = True
    temperature_c: float = 25.0
    pressure_pa: float = 1e6
    environment_tau_s: float = 60.0
    time_s: float = 1000.0
    command: Command = field(default_factory=lambda: Command(Mode.OFF))
    applied: list[Command] = field(default_factory=list)
    safe_calls: int = 0
    ended_at: list[float] = field(default_factory=list)
    _setpoints: tuple[float | None, float | None] = (None, None)
    _step_charge_ah: float = 0.0
    _step_energy_wh: float = 0.0
    _elapsed_s: float = 0.0
    _done: bool = False
    _fresh: bool = False
    _snapshots: list[tuple[float, float, float, float, float, float]] = field(
        default_factory=list)

    @property
    def capabilities(self) -> Capabilities:
        """Everything, with the configured device-side execution."""
        return Capabilities(eis=self.eis_capable, chamber=True, jig=JigKind.CONTROLLED,
                            device_cutoffs=self.device_cutoffs)

    async def apply(self, command: Command) -> float:
        """Take a command; its readings start now."""
        self.command = command
        self.applied.append(command)
        self._step_charge_ah = command.charge_ah
        self._step_energy_wh = command.energy_wh
        self._elapsed_s = command.elapsed_s
        self._done = False
        self._fresh = True
        return self.time_s

    def _current(self) -> float:
        cell, command = self.cell, self.command
        ocv = cell.ocv(cell.charge_ah)
        if command.mode is Mode.CURRENT:
            return command.current_a
        if command.mode is Mode.VOLTAGE:
            return (command.voltage_v - ocv) / cell.r_ohm
        if command.mode is Mode.POWER:
            disc = ocv * ocv + 4 * cell.r_ohm * command.power_w
            return (-ocv + math.sqrt(max(disc, 0.0))) / (2 * cell.r_ohm)
        if command.mode is Mode.RESISTANCE:
            return -ocv / (cell.r_ohm + command.resistance_ohm)
        return 0.0

    def _advance(self, dt: float) -> None:
        cell = self.cell
        if self.command.mode is Mode.VOLTAGE:
            # exact exponential approach of the charge under constant voltage
            target = (self.command.voltage_v - cell.ocv0_v) / cell.slope_v_per_ah
            tau = 3600.0 * cell.r_ohm / cell.slope_v_per_ah
            before = cell.charge_ah
            cell.charge_ah = target + (before - target) * math.exp(-dt / tau)
        else:
            cell.charge_ah += self._current() * dt / 3600.0
        for index, attr in ((0, "temperature_c"), (1, "pressure_pa")):
            setpoint = self._setpoints[index]
            if setpoint is not None:
                value = getattr(self, attr)
                setattr(self, attr, setpoint + (value - setpoint) * math.exp(
                    -dt / self.environment_tau_s))
        self.time_s += dt
        self._elapsed_s += dt

    def _reading(self) -> tuple[float, float, float]:
        current = self._current()
        voltage = self.cell.ocv(self.cell.charge_ah) + current * self.cell.r_ohm
        return self.time_s, voltage, current

    def _meets(self, condition: Condition, voltage: float, current: float) -> bool:
        values = {Quantity.VOLTAGE: voltage, Quantity.CURRENT: abs(current),
                  Quantity.TIME: self._elapsed_s, Quantity.CHARGE: abs(self._step_charge_ah)}
        value = values.get(condition.quantity)
        if value is None:
            return False
        if condition.operator is Operator.AT_LEAST:
            return value >= condition.value
        return value <= condition.value

    async def read(self) -> Block:
        """The next ``block_size`` readings (fewer if a device-side cut-off ends the block)."""
        times, volts, amps = [], [], []
        self._snapshots = []
        first = self._fresh
        self._fresh = False
        done = False
        for index in range(self.block_size):
            if not (first and index == 0):
                before = self._current()
                self._advance(self.dt_s)
                after = self._current()
                self._step_charge_ah += 0.5 * (before + after) * self.dt_s / 3600.0
            t, v, i = self._reading()
            self._snapshots.append((t, self.cell.charge_ah, self.temperature_c, self.pressure_pa,
                                    self._step_charge_ah, self._elapsed_s))
            times.append(t)
            volts.append(v)
            amps.append(i)
            if self.device_cutoffs and any(self._meets(c, v, i) for c in self.command.until):
                done = True
                break
        return Block(np.array(times), np.array(volts), np.array(amps),
                     np.array([snapshot[2] for snapshot in self._snapshots]),
                     np.array([snapshot[3] for snapshot in self._snapshots]), done=done)

    async def end_step(self, at_time_s: float) -> None:
        """Go back to the state at the reading the engine ended the step on."""
        self.ended_at.append(at_time_s)
        for snapshot in self._snapshots:
            if snapshot[0] == at_time_s:
                (self.time_s, self.cell.charge_ah, self.temperature_c, self.pressure_pa,
                 self._step_charge_ah, self._elapsed_s) = snapshot
                return
        raise AssertionError(f"no reading at {at_time_s} in the last block")

    async def safe(self) -> None:
        """Output off."""
        self.command = Command(Mode.OFF)
        self.safe_calls += 1

    async def set_environment(self, temperature_c: float | None, pressure_pa: float | None
                              ) -> None:
        """New setpoints; the environment follows with ``environment_tau_s``."""
        self._setpoints = (
            temperature_c if temperature_c is not None else self._setpoints[0],
            pressure_pa if pressure_pa is not None else self._setpoints[1],
        )

    async def eis(self, step: EisStep) -> Spectrum:
        """A series R with one R||C, sampled on the step's frequencies (takes 60 s)."""
        decades = math.log10(step.start_hz / step.stop_hz)
        count = max(2, round(decades * step.points_per_decade) + 1)
        frequency = np.logspace(math.log10(step.start_hz), math.log10(step.stop_hz), count)
        omega = 2 * math.pi * frequency
        z = self.cell.r_ohm + 0.05 / (1 + 1j * omega * 0.05 * 1e-3)
        self.time_s += 60.0
        return Spectrum(frequency, z.real.astype(float), z.imag.astype(float), self.time_s)

"""The instrument ports of a station, served straight by the bench (no wire, no emulator).

A station whose instruments are ``driver = "model"`` gets its potentiostat, EIS, chamber and
jig ports from here. Every cell of the bench shares one :class:`~cellrig.simulators.bench.
BenchClock` running at the station's speed, so all channels age together whatever each one is
doing: a cell at rest goes on resting while another one charges.

:class:`BenchPotentiostat` is host-polled, like a source-measure unit: ``apply`` sets the bench
cell's source and takes a first reading, ``read`` waits for the next sample time on the bench
clock and takes one reading there; the engine ends the steps (no device cut-offs). How densely
it samples is bounded in real time (``min_real_interval_s``), so a fast bench stays cheap: at
a speed of 1000 and the default 20 ms, readings are at least 20 s of bench time apart.

:class:`~cellrig.simulators.model_rig.ModelRig` (whole steps computed at once on a virtual
clock of its own) is the faster choice for one cell alone (``cellrig simulate``); on a shared
clock several channels must advance together, which is what these ports do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cellrig.errors import InstrumentReported
from cellrig.protocols.program import EisStep
from cellrig.protocols.rig import Block, Capabilities, Command, JigKind, Mode, Spectrum
from cellrig.simulators.bench import BenchCell, BenchClock
from cellrig.simulators.chamber import Chamber
from cellrig.simulators.model_rig_steps import eis_frequencies, sweep_duration_s

#: The address every bench port reports in its errors.
IN_PROCESS = "in-process"
#: The EIS frequency range of the model (as wide as the model rig's).
MODEL_EIS_RANGE_HZ = (1e-5, 1e7)


@dataclass
class BenchPotentiostat:
    """A host-polled potentiostat channel on one bench cell (the potentiostat port)."""

    cell: BenchCell
    instrument: str = "model"
    min_real_interval_s: float = 0.02
    command: Command = field(default_factory=lambda: Command(Mode.OFF))
    _pending: Block | None = field(default=None, init=False)
    _last_s: float | None = field(default=None, init=False)

    @property
    def clock(self) -> BenchClock:
        """The bench clock the cell runs on."""
        return self.cell.clock

    @property
    def capabilities(self) -> Capabilities:
        """Constant current and voltage (with limits), rest; steps ended by the host."""
        return Capabilities(constant_power=False, constant_resistance=False,
                            device_cutoffs=False, min_sample_interval_s=0.0)

    async def apply(self, command: Command) -> float:
        """Set the bench cell's source and take the first reading; returns its time."""
        mode = command.mode
        if mode is Mode.CURRENT:
            self.cell.source_current(command.current_a, command.voltage_limit_v)
        elif mode is Mode.VOLTAGE:
            self.cell.source_voltage(command.voltage_v, command.current_limit_a)
        elif mode in (Mode.REST, Mode.OFF):
            self.cell.open_circuit()
        else:
            raise InstrumentReported(f"the model potentiostat has no {mode.value} mode",
                                     instrument=self.instrument, address=IN_PROCESS,
                                     command=f"apply {mode.value}")
        self.command = command
        first = self._reading()
        self._pending = first
        return float(first.time_s[0])

    async def read(self) -> Block:
        """The next reading, when its sample time has come on the bench clock."""
        if self._pending is not None:
            block, self._pending = self._pending, None
            return block
        interval_s = self.command.sample_interval_s if self.command.sample_interval_s > 0 else 1.0
        if self.clock.scale is not None:
            interval_s = max(interval_s, self.min_real_interval_s * self.clock.scale)
        due_s = (self._last_s if self._last_s is not None else self.clock.now_s()) + interval_s
        wait_s = due_s - self.clock.now_s()
        await self.clock.sleep(max(wait_s, 0.0))
        return self._reading()

    async def end_step(self, at_time_s: float) -> None:
        """Nothing to stop: the source holds until the next command."""
        del at_time_s
        self._pending = None

    async def safe(self) -> None:
        """Output off: the cell floats at open circuit."""
        self.cell.open_circuit()
        self.command = Command(Mode.OFF)
        self._pending = None

    def _reading(self) -> Block:
        reading = self.cell.measure()
        self._last_s = reading.time_s
        voltage = math.nan if self.command.mode is Mode.OFF else reading.voltage_v
        return Block(np.array([reading.time_s]), np.array([voltage]),
                     np.array([reading.current_a]))


@dataclass
class BenchEis:
    """An impedance analyser on one bench cell (the EIS port): the cell's impedance at the
    sweep's start, the sweep taking its time on the bench clock."""

    cell: BenchCell
    instrument: str = "model"

    @property
    def frequency_range_hz(self) -> tuple[float, float]:
        """As wide as the model's."""
        return MODEL_EIS_RANGE_HZ

    async def eis(self, step: EisStep) -> Spectrum:
        """One sweep (at open circuit, or holding the step's DC voltage)."""
        frequency = eis_frequencies(step)
        impedance = self.cell.impedance(frequency)
        duration_s = sweep_duration_s(frequency)
        if step.dc_voltage_v is not None:
            self.cell.source_voltage(step.dc_voltage_v)
        try:
            await self.cell.clock.sleep(duration_s)
        finally:
            self.cell.open_circuit()
        return Spectrum(frequency, impedance.real.astype(float), impedance.imag.astype(float),
                        self.cell.clock.now_s(),
                        {"duration_s": duration_s, "amplitude": step.amplitude})


@dataclass
class BenchChamberPort:
    """The chamber port over a bench chamber, read on the bench clock."""

    chamber: Chamber
    clock: BenchClock
    temperature_range_c: tuple[float, float] = (-40.0, 180.0)
    instrument: str = "model"

    async def set_temperature(self, setpoint_c: float) -> None:
        """A new setpoint (refused outside the range, as a real controller does)."""
        low_c, high_c = self.temperature_range_c
        if not low_c <= setpoint_c <= high_c:
            raise InstrumentReported(
                f"setpoint {setpoint_c:g} °C is outside {low_c:g} to {high_c:g} °C",
                instrument=self.instrument, address=IN_PROCESS,
                command=f"set {setpoint_c:g} °C")
        self.chamber.set(setpoint_c, self.clock.now_s())

    async def read_temperature(self) -> float:
        """The chamber sensor now."""
        return float(self.chamber.measure(np.array([self.clock.now_s()]))[0])

    async def alarms(self) -> list[str]:
        """The chamber's fault, if one was injected."""
        return [] if self.chamber.fault is None else [self.chamber.fault.value]

    async def standby(self) -> None:
        """Drift back to the room's temperature."""
        self.chamber.set(self.chamber.room_c, self.clock.now_s())


@dataclass
class BenchJigPort:
    """The jig port over a bench cell's jig: a pneumatic jig is set directly (the regulator
    model follows with its lag), a bolted one only measured."""

    cell: BenchCell
    max_pressure_pa: float = math.inf
    instrument: str = "model"

    def __post_init__(self) -> None:
        if self.cell.jig is None:
            raise ValueError("this bench cell has no jig")
        jig = self.cell.jig
        if jig.pneumatic:
            reachable_pa = (jig.regulator_max_pa * jig.piston_area_m2
                            + jig.preload_n) / jig.cell_area_m2
            self.max_pressure_pa = min(self.max_pressure_pa, reachable_pa)

    @property
    def kind(self) -> JigKind:
        """Controlled (pneumatic) or measure-only (bolted)."""
        jig = self.cell.jig
        assert jig is not None
        return JigKind.CONTROLLED if jig.pneumatic else JigKind.MEASURE_ONLY

    async def set_pressure(self, pressure_pa: float) -> None:
        """A new stack pressure (refused by a bolted jig and above the maximum)."""
        jig = self.cell.jig
        assert jig is not None
        command = f"set {pressure_pa / 1e6:g} MPa"
        if not jig.pneumatic:
            raise InstrumentReported("a bolted jig cannot set a pressure",
                                     instrument=self.instrument, address=IN_PROCESS,
                                     command=command)
        if not 0.0 <= pressure_pa <= self.max_pressure_pa:
            raise InstrumentReported(
                f"{pressure_pa / 1e6:g} MPa is outside 0 to {self.max_pressure_pa / 1e6:g} MPa",
                instrument=self.instrument, address=IN_PROCESS, command=command)
        jig.set_pressure(pressure_pa, self.cell.clock.now_s())

    async def read_pressure(self) -> float:
        """The load cell over the cell's area, now (it follows the cell's swell)."""
        return self.cell.measure().pressure_pa

    async def alarms(self) -> list[str]:
        """The jig's fault, if one was injected."""
        jig = self.cell.jig
        return [] if jig is None or jig.fault is None else [jig.fault.value]

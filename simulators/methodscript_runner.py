"""Run a parsed MethodSCRIPT against a bench cell, streaming its output as the device does.

The device state that outlives a script (cell on or off, pgstat mode, setpoints, ranges) is a
:class:`Device`; a :class:`ScriptRunner` executes one script on it. Measurement loops take a
reading every interval of bench time (``clock.sleep``), so they stream at the bench clock's
speed: a scaled clock paces them, a virtual clock lets them run as fast as the code does.

What the loops drive on the bench cell:

* ``meas_loop_cp``: constant current, compliance at the model's potential limit;
* ``meas_loop_ca`` and ``meas_loop_eis``: constant voltage, the current capped by the largest
  current range the script set (``set_range``/``set_autoranging``);
* ``meas_loop_ocp``: nothing (the cell must be off);
* ``cell_off``: open circuit.

A runtime error (an injected instrument error, a loop started with the cell in the wrong state,
an argument out of bounds) ends the script with ``!XXXX: Line L``; ``on_finished:`` runs however
the script ends, including when the task is cancelled by an abort.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from cellrig.drivers.methodscript_codec import TECHNIQUE_CODES, encode_packet, format_error
from cellrig.drivers.palmsens_ranges import PalmSensModel
from cellrig.simulators.bench import BenchCell
from cellrig.simulators.methodscript_parser import Arg, Script, Statement

NEEDS_CELL_ON = 0x4027
OCP_WITH_CELL_ON = 0x0014
OUT_OF_BOUNDS = 0x4205
GALVANOSTAT_MODE = 6

Send = Callable[[str], Awaitable[None]]


class RuntimeFault(Exception):
    """The script stops with an error line."""

    def __init__(self, code: int, line: int) -> None:
        self.code, self.line = code, line
        super().__init__(f"0x{code:04X} at line {line}")


class _Break(Exception):
    """``breakloop``: leave the measurement loop."""


@dataclass(frozen=True, slots=True)
class Noise:
    """Measurement noise: voltage (V, standard deviation), current and impedance (relative)."""

    voltage_v: float = 50e-6
    current_relative: float = 1e-4
    impedance_relative: float = 1e-3


@dataclass
class Device:
    """The emulated instrument around one bench cell."""

    cell: BenchCell
    model: PalmSensModel
    noise: Noise = field(default_factory=Noise)
    seed: int = 0
    cell_on: bool = False
    pgstat_mode: int = 2
    set_e_v: float = 0.0
    set_i_a: float = 0.0
    current_limit_a: float = 0.0
    pending_error: int | None = None
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.current_limit_a = self.model.max_current_a

    def switch_on(self) -> None:
        """``cell_on``: drive the set current (galvanostat) or set potential."""
        self.cell_on = True
        if self.pgstat_mode == GALVANOSTAT_MODE:
            self.drive_current(self.set_i_a)
        else:
            self.drive_voltage(self.set_e_v)

    def switch_off(self) -> None:
        """``cell_off``: open circuit."""
        self.cell_on = False
        self.cell.open_circuit()

    def drive_current(self, current_a: float) -> None:
        """Constant current with the instrument's own compliance."""
        limit = self.model.potential_limit_v
        self.cell.source_current(current_a, limit if current_a >= 0 else -limit)

    def drive_voltage(self, voltage_v: float) -> None:
        """Constant voltage, the current capped by the range the script set."""
        self.cell.source_voltage(voltage_v, self.current_limit_a)


class ScriptRunner:
    """Runs one script on a device; ``in_loop`` says whether a measurement loop is open."""

    def __init__(self, script: Script, device: Device, send: Send) -> None:
        self.script = script
        self.device = device
        self.send = send
        self.in_loop = False
        self.variables: dict[str, tuple[float, str]] = {}
        self._packet: list[tuple[str, float]] = []
        self._timer_s = device.cell.clock.now_s()

    async def run(self) -> None:
        """Execute the script, then ``on_finished:``; the output ends with an empty line, or
        with the error line of a runtime error."""
        try:
            await self._block(self.script.statements)
        except RuntimeFault as fault:
            self.in_loop = False
            await self.send(format_error(fault.code, "", fault.line))
            return
        finally:
            self._finish()
        await self.send("")

    def _finish(self) -> None:
        for statement in self.script.on_finished:
            if statement.command == "cell_off":
                self.device.switch_off()
            elif statement.command == "cell_on":
                self.device.switch_on()

    async def _block(self, statements: tuple[Statement, ...]) -> None:
        for statement in statements:
            await self._execute(statement)

    def _value(self, arg: Arg) -> float:
        return arg.literal if arg.literal is not None else self.variables[arg.text][0]

    def _set(self, name: str, value: float, kind: str) -> None:
        self.variables[name] = (value, kind)

    async def _execute(self, statement: Statement) -> None:
        command, args, device = statement.command, statement.args, self.device
        clock = device.cell.clock
        if command.startswith("meas_loop_"):
            await self._measure(statement)
        elif command == "if":
            await self._if(statement)
        elif command == "breakloop":
            raise _Break
        elif command == "var":
            self._set(args[0].text, math.nan, "aa")
        elif command == "store_var":
            self._set(args[0].text, self._value(args[1]), args[2].text)
        elif command == "set_pgstat_mode":
            device.pgstat_mode = int(self._value(args[0]))
        elif command in ("set_range", "set_autoranging"):
            self._range(statement)
        elif command == "set_e":
            device.set_e_v = self._value(args[0])
            if device.cell_on and device.pgstat_mode != GALVANOSTAT_MODE:
                device.drive_voltage(device.set_e_v)
        elif command == "set_i":
            device.set_i_a = self._value(args[0])
            if device.cell_on and device.pgstat_mode == GALVANOSTAT_MODE:
                device.drive_current(device.set_i_a)
        elif command == "cell_on":
            device.switch_on()
        elif command == "cell_off":
            device.switch_off()
        elif command == "timer_start":
            self._timer_s = clock.now_s()
        elif command == "timer_get":
            self._set(args[0].text, clock.now_s() - self._timer_s, "eb")
        elif command == "wait":
            await clock.sleep(self._value(args[0]))
        elif command == "pck_start":
            self._packet = []
        elif command == "pck_add":
            value, kind = self.variables[args[0].text]
            self._packet.append((kind, value))
        elif command == "pck_end":
            await self.send(encode_packet(self._packet))
        # set_pgstat_chan, set_max_bandwidth, set_range_minmax: nothing to emulate

    def _range(self, statement: Statement) -> None:
        kind = statement.args[0].text
        top = self._value(statement.args[-1])
        if kind in ("ba", "db"):
            if abs(top) > self.device.model.max_current_a * (1 + 1e-9):
                raise RuntimeFault(OUT_OF_BOUNDS, statement.line)
            self.device.current_limit_a = abs(top)

    async def _if(self, statement: Statement) -> None:
        left, operator, right = statement.args
        a, b = self._value(left), self._value(right)
        holds = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b, "==": a == b,
                 "!=": a != b}[operator.text]
        await self._block(statement.body if holds else statement.orelse)

    async def _measure(self, statement: Statement) -> None:
        command, device = statement.command, self.device
        if command == "meas_loop_ocp":
            if device.cell_on:
                raise RuntimeFault(OCP_WITH_CELL_ON, statement.line)
        elif not device.cell_on:
            raise RuntimeFault(NEEDS_CELL_ON, statement.line)
        await self.send(f"M{TECHNIQUE_CODES[command]}")
        self.in_loop = True
        try:
            if command == "meas_loop_eis":
                await self._sweep(statement)
            else:
                await self._timed_loop(statement)
        except _Break:
            pass
        self.in_loop = False
        await self.send("*")

    async def _timed_loop(self, statement: Statement) -> None:
        command, args, device = statement.command, statement.args, self.device
        interval, run_time = self._value(args[-2]), self._value(args[-1])
        if not interval > 0:
            raise RuntimeFault(OUT_OF_BOUNDS, statement.line)
        if command == "meas_loop_cp":
            current = self._value(args[2])
            if abs(current) > device.model.max_current_a * (1 + 1e-9):
                raise RuntimeFault(OUT_OF_BOUNDS, statement.line)
            device.drive_current(current)
        elif command == "meas_loop_ca":
            device.drive_voltage(self._value(args[2]))
        clock = device.cell.clock
        start, count = clock.now_s(), 1
        while count * interval <= run_time * (1 + 1e-12):
            await clock.sleep(max(0.0, start + count * interval - clock.now_s()))
            self._check_injected(statement)
            reading = device.cell.measure()
            noise = device.noise
            voltage = reading.voltage_v + noise.voltage_v * device.rng.standard_normal()
            current = reading.current_a * (1 + noise.current_relative
                                           * device.rng.standard_normal())
            potential_kind = "da" if command == "meas_loop_ca" else "ab"
            self._set(args[0].text, voltage, potential_kind)
            if command != "meas_loop_ocp":
                self._set(args[1].text, current, "ba")
            await self._block(statement.body)
            count += 1

    async def _sweep(self, statement: Statement) -> None:
        args, device = statement.args, self.device
        start_hz, stop_hz = self._value(args[4]), self._value(args[5])
        points, dc_v = int(self._value(args[6])), self._value(args[7])
        if not (start_hz > 0 and stop_hz > 0 and points >= 1):
            raise RuntimeFault(OUT_OF_BOUNDS, statement.line)
        low, high = device.model.eis_frequency_hz
        if not (low <= min(start_hz, stop_hz) and max(start_hz, stop_hz) <= high):
            raise RuntimeFault(OUT_OF_BOUNDS, statement.line)
        device.drive_voltage(dc_v)
        frequencies = np.geomspace(start_hz, stop_hz, points)
        for frequency in frequencies:
            await device.cell.clock.sleep(point_duration_s(float(frequency)))
            self._check_injected(statement)
            impedance = complex(device.cell.impedance(np.array([frequency]))[0])
            scatter = device.noise.impedance_relative * abs(impedance)
            impedance += complex(*(scatter * device.rng.standard_normal(2)))
            self._set(args[0].text, float(frequency), "dc")
            self._set(args[1].text, impedance.real, "cc")
            self._set(args[2].text, impedance.imag, "cd")
            await self._block(statement.body)

    def _check_injected(self, statement: Statement) -> None:
        code = self.device.pending_error
        if code is not None:
            self.device.pending_error = None
            raise RuntimeFault(code, statement.line)


def point_duration_s(frequency_hz: float) -> float:
    """Bench time one impedance point takes: two periods, at least 0.1 s of settling and
    integration."""
    return max(2.0 / frequency_hz, 0.1)

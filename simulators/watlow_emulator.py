"""A Watlow F4T controller on Modbus TCP, backed by a bench chamber.

A pymodbus 3 server holds the F4T registers cellrig uses (the map and its sources are in
:mod:`cellrig.drivers.watlow_registers`; this module keeps its own table, as an instrument
would) and answers from the chamber model on the bench clock; a
:class:`~cellrig.simulators.watlow_fault_proxy.FaultProxy` in front of it makes the wire
misbehave on demand (:attr:`WatlowF4TEmulator.faults`). :attr:`exception_replies` makes the
controller itself answer Modbus exceptions.

What the emulated controller does, loop 1:

- temperatures travel in the display units (register 1328, °C or °F), 32-bit floats in the
  configured word order (low-high, the factory default, or high-low);
- control mode (2730) auto holds the closed-loop set point (2782); off stops conditioning, so
  the air drifts to room temperature; manual holds the output, modelled as holding the air
  where it is. A set point outside the loop's range (2774/2776), or an unknown mode, is
  refused with exception 3 (illegal data value); writing a read-only register with exception 2;
- alarm 1 is a process alarm (high above the rated range: a runaway heater), alarm 2 a
  deviation alarm of ±3 K around the set point with set point blocking (blocked after a set
  point change until the air first enters the band), both with 0.6 K hysteresis: an opened
  door drags the air out of the band (alarm 2 low), a runaway heater above it (alarm 2 high,
  then alarm 1 high). Alarm states are evaluated whenever the registers are accessed.
"""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass
from typing import cast

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .chamber import Chamber
from .espec_emulator import BenchTime
from .watlow_fault_proxy import FaultProxy, ModbusWireFaults

CELSIUS, FAHRENHEIT = 15, 30
AUTO, MANUAL, OFF = 10, 54, 62
PROCESS_ALARM, DEVIATION_ALARM = 76, 24
ALARM_HIGH, ALARM_LOW, ALARM_BLOCKED, ALARM_NONE = 7, 8, 12, 61

DEVICE_STATUS, DISPLAY_UNITS = 90, 1328
ALARM_BASE = {1: 1330, 2: 1430}
"""alarm n's first register; type +0, high +4, low +6, hysteresis +8, state +26"""
MODE, RANGE_MIN, RANGE_MAX, SET_POINT = 2730, 2774, 2776, 2782
WORKING_SET_POINT, MODE_ACTIVE, PROCESS_VALUE = 2810, 2814, 2820


@dataclass
class F4tAlarm:
    """One alarm function: process limits in °C, or deviation offsets in K."""

    kind: int
    high: float
    low: float
    hysteresis_k: float = 0.6
    state: int = ALARM_NONE
    blocked: bool = False

    def evaluate(self, process_c: float, set_point_c: float) -> None:
        """Update the state for the process value now."""
        if self.kind == DEVIATION_ALARM:
            high_c, low_c = set_point_c + self.high, set_point_c + self.low
        else:
            high_c, low_c = self.high, self.low
        holding_high = self.state == ALARM_HIGH and process_c > high_c - self.hysteresis_k
        holding_low = self.state == ALARM_LOW and process_c < low_c + self.hysteresis_k
        if self.kind not in (PROCESS_ALARM, DEVIATION_ALARM):
            self.state = ALARM_NONE
        elif self.blocked and not low_c < process_c < high_c:
            self.state = ALARM_BLOCKED
        elif not (holding_high or holding_low):      # within the hysteresis an alarm holds
            self.blocked = False
            self.state = (ALARM_HIGH if process_c >= high_c
                          else ALARM_LOW if process_c <= low_c else ALARM_NONE)


class WatlowF4TEmulator:
    """The controller, its registers and its Modbus TCP server."""

    def __init__(self, chamber: Chamber, clock: BenchTime, *, word_order: str = "low-high",
                 display_units: int = CELSIUS,
                 set_point_range_c: tuple[float, float] = (-40.0, 150.0),
                 device_id: int = 1) -> None:
        if word_order not in ("low-high", "high-low"):
            raise ValueError("word order is 'low-high' or 'high-low'")
        self.chamber = chamber
        self.clock = clock
        self.low_word_first = word_order == "low-high"
        self.display_units = display_units
        self.range_c = set_point_range_c
        self.device_id = device_id
        self.mode = AUTO
        self.set_point_c = chamber.setpoint_c
        self.alarms = {
            1: F4tAlarm(PROCESS_ALARM, set_point_range_c[1] + 5.0, set_point_range_c[0] - 5.0),
            2: F4tAlarm(DEVIATION_ALARM, 3.0, -3.0, blocked=True),
        }
        self.faults = ModbusWireFaults()
        self.exception_replies: list[int] = []
        """Modbus exception codes the next requests are answered with."""
        self._server: ModbusTcpServer | None = None
        self._proxy: FaultProxy | None = None

    # -- serving ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on ``host:port`` (0: any free port); returns the port."""
        self._server = ModbusTcpServer(self.device(), address=("127.0.0.1", 0))
        await self._server.serve_forever(background=True)
        listener = cast(asyncio.Server, self._server.transport)
        self._proxy = FaultProxy(("127.0.0.1", listener.sockets[0].getsockname()[1]),
                                 self.faults)
        return await self._proxy.start(host, port)

    async def close(self) -> None:
        """Stop serving."""
        if self._proxy is not None:
            await self._proxy.close()
            self._proxy = None
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> WatlowF4TEmulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def device(self) -> SimDevice:
        """The register layout as a pymodbus device whose every access runs the controller."""
        def block(address: int, count: int, readonly: bool = False) -> SimData:
            return SimData(address, count=count, datatype=DataType.REGISTERS, readonly=readonly)

        data = [block(DEVICE_STATUS, 1, True), block(DISPLAY_UNITS, 1)]
        for base in ALARM_BASE.values():
            data += [block(base, 26), block(base + 26, 1, True)]
        data += [block(MODE, 1), block(RANGE_MIN, 4), block(SET_POINT, 2),
                 block(WORKING_SET_POINT, 2, True), block(MODE_ACTIVE, 1, True),
                 block(PROCESS_VALUE, 2, True)]
        return SimDevice(self.device_id, simdata=data, action=self._on_access)

    # -- the controller ---------------------------------------------------------------------

    async def _on_access(self, function_code: int, start: int, address: int, count: int,
                         registers: list[int], values: list[int] | list[bool] | None,
                         ) -> ExcCodes | None:
        if self.exception_replies:
            return ExcCodes(self.exception_replies.pop(0))
        now_s = self.clock.now_s()
        if values:
            refused = self._write(now_s, address, [int(v) for v in values], registers, start)
            if refused is not None:
                return refused
        self._refresh(now_s, registers, start)
        if values:        # pymodbus stores the written words after this returns
            for offset, value in enumerate(values):
                registers[address - start + offset] = int(value)
        return None

    def _write(self, now_s: float, address: int, values: list[int], registers: list[int],
               start: int) -> ExcCodes | None:
        """Validate and apply a write (all of it or nothing)."""
        view = registers.copy()
        view[address - start: address - start + len(values)] = values
        written = range(address, address + len(values))

        def touched(register: int, width: int = 1) -> bool:
            return any(r in written for r in range(register, register + width))

        def temperature(register: int, delta: bool = False) -> float:
            value = self._unpack(view[register - start: register - start + 2])
            if self.display_units == FAHRENHEIT:
                return value / 1.8 if delta else (value - 32.0) / 1.8
            return value

        mode, units = view[MODE - start], view[DISPLAY_UNITS - start]
        kinds = [view[base - start] for base in ALARM_BASE.values()]
        low_c = temperature(RANGE_MIN) if touched(RANGE_MIN, 2) else self.range_c[0]
        high_c = temperature(RANGE_MAX) if touched(RANGE_MAX, 2) else self.range_c[1]
        set_point_c = temperature(SET_POINT) if touched(SET_POINT, 2) else self.set_point_c
        if (mode not in (AUTO, MANUAL, OFF) or units not in (CELSIUS, FAHRENHEIT)
                or not all(kind in (OFF, PROCESS_ALARM, DEVIATION_ALARM) for kind in kinds)
                or not (math.isfinite(set_point_c) and low_c <= set_point_c <= high_c)):
            return ExcCodes.ILLEGAL_VALUE
        for number, base in ALARM_BASE.items():
            alarm = self.alarms[number]
            delta = alarm.kind == DEVIATION_ALARM
            if touched(base):
                alarm.kind = view[base - start]
            if touched(base + 4, 2):
                alarm.high = temperature(base + 4, delta)
            if touched(base + 6, 2):
                alarm.low = temperature(base + 6, delta)
        self.range_c, self.display_units = (low_c, high_c), units
        if touched(SET_POINT, 2) and set_point_c != self.set_point_c:
            self.set_point_c = set_point_c
            self.alarms[2].blocked = True
        if touched(SET_POINT, 2) or touched(MODE):
            self.mode = mode
            air_c = self._air_c(now_s, measured=False)
            target_c = {AUTO: self.set_point_c, OFF: self.chamber.room_c, MANUAL: air_c}[mode]
            self.chamber.set(target_c, now_s)
        return None

    def _refresh(self, now_s: float, registers: list[int], start: int) -> None:
        """Write the controller's state into the registers."""
        process_c = self._air_c(now_s, measured=True)
        for alarm in self.alarms.values():
            alarm.evaluate(process_c, self.set_point_c)

        def put(register: int, words: list[int]) -> None:
            registers[register - start: register - start + len(words)] = words

        def put_temperature(register: int, value_c: float, delta: bool = False) -> None:
            value = value_c
            if self.display_units == FAHRENHEIT:
                value = value_c * 1.8 + (0.0 if delta else 32.0)
            put(register, self._pack(value))

        put(DEVICE_STATUS, [138])
        put(DISPLAY_UNITS, [self.display_units])
        for number, base in ALARM_BASE.items():
            alarm = self.alarms[number]
            delta = alarm.kind == DEVIATION_ALARM
            put(base, [alarm.kind])
            put_temperature(base + 4, alarm.high, delta)
            put_temperature(base + 6, alarm.low, delta)
            put_temperature(base + 8, alarm.hysteresis_k, True)
            put(base + 26, [alarm.state])
        put(MODE, [self.mode])
        put(MODE_ACTIVE, [self.mode])
        put_temperature(RANGE_MIN, self.range_c[0])
        put_temperature(RANGE_MAX, self.range_c[1])
        put_temperature(SET_POINT, self.set_point_c)
        put_temperature(WORKING_SET_POINT, self.set_point_c)
        put_temperature(PROCESS_VALUE, process_c)

    def _air_c(self, now_s: float, *, measured: bool) -> float:
        """The air as the sensor reads it (or truly is) now; at the very instant of a change
        without a ramp limit (an opened door) the model yields NaN, where the air still has
        its temperature of that instant."""
        model = self.chamber.measure if measured else self.chamber.true_temperature
        with np.errstate(invalid="ignore"):
            value = float(model(np.array([now_s]))[0])
        return value if math.isfinite(value) else self.chamber.temperature_c

    def _pack(self, value: float) -> list[int]:
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        return [low, high] if self.low_word_first else [high, low]

    def _unpack(self, words: list[int]) -> float:
        low, high = words if self.low_word_first else reversed(words)
        value: float = struct.unpack(">f", struct.pack(">HH", high, low))[0]
        return value

"""Watlow F4T temperature controllers (the controller of many benchtop chambers, ESPEC North
America's and TestEquity's among them) over Modbus TCP.

Registers, their sources and the float word order are in :mod:`.watlow_registers`; the wire
(pymodbus 3, errors, reconnection with backoff) in :mod:`.watlow_modbus`.

Behaviour:

- At connect the driver reads the display units (register 1328: the F4T sends temperatures
  in them, so a controller set to °F is converted) and loop ``loop``'s set point range
  (2774/2776), which narrows ``temperature_range_c`` (the chamber's rating, from the station).
- ``set_temperature`` refuses a setpoint outside the range before writing it, writes the
  closed-loop set point (2782) and switches the loop's control mode (2730) to auto unless it
  already is; ``standby`` switches the control mode to off: no heating or cooling.
- ``alarms`` reads the state of each alarm in ``alarms`` (1356 + 100·(n−1)); the startup,
  none and blocked states are inactive, anything else is reported (``alarm 1 high``).
- The word order must match the controller's "Modbus Word Order" setting (factory: low-high).
- Every process value read feeds the stability rule (:mod:`.chamber_stability`).
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Protocol, Self

from cellrig.errors import InstrumentReported, MalformedReply

from . import watlow_registers as reg
from .backoff import Backoff
from .chamber_common import ChamberMode, Clock, check_setpoint, controller_range
from .chamber_stability import StabilityWatch
from .ports import ChamberPort
from .watlow_modbus import ModbusLink
from .watlow_registers import F4tValue, WordOrder

_MODES = {F4tValue.OFF: ChamberMode.STANDBY, F4tValue.AUTO: ChamberMode.CONSTANT,
          F4tValue.MANUAL: ChamberMode.MANUAL}


class RegisterLink(Protocol):
    """The part of :class:`ModbusLink` the driver uses (a scripted link in unit tests)."""

    instrument: str

    @property
    def url(self) -> str:
        """Where the device is."""
        ...

    async def open(self) -> None:
        """Connect."""
        ...

    async def close(self) -> None:
        """Disconnect."""
        ...

    async def read(self, address: int, count: int = 1) -> list[int]:
        """Read holding registers."""
        ...

    async def write(self, address: int, values: list[int]) -> None:
        """Write holding registers."""
        ...


class WatlowF4T:
    """One chamber under a Watlow F4T, shared by ``channels``; implements the chamber port."""

    def __init__(self, link: RegisterLink, *, temperature_range_c: tuple[float, float],
                 channels: tuple[str, ...] = (), loop: int = 1, alarms: tuple[int, ...] = (1, 2),
                 word_order: WordOrder = WordOrder.LOW_HIGH, clock: Clock = time.monotonic,
                 stability: StabilityWatch | None = None) -> None:
        self.link = link
        self.channels = channels
        self.loop = loop
        self.alarm_numbers = alarms
        self.word_order = word_order
        self.clock = clock
        self.stability = stability or StabilityWatch()
        self.display_units = F4tValue.CELSIUS
        self._rated_range_c = temperature_range_c
        self._range_c = temperature_range_c
        reg.loop_register(0, loop)
        for alarm in alarms:
            reg.alarm_register(0, alarm)

    @classmethod
    def over_tcp(cls, host: str, port: int = 502, *, temperature_range_c: tuple[float, float],
                 channels: tuple[str, ...] = (), device_id: int = 1, timeout_s: float = 1.0,
                 loop: int = 1, alarms: tuple[int, ...] = (1, 2),
                 word_order: WordOrder = WordOrder.LOW_HIGH, clock: Clock = time.monotonic,
                 instrument: str = "watlow-f4t", backoff: Backoff | None = None) -> WatlowF4T:
        """A driver on its own :class:`ModbusLink`."""
        link = ModbusLink(host, port, instrument=instrument, device_id=device_id,
                          timeout_s=timeout_s, backoff=backoff)
        return cls(link, temperature_range_c=temperature_range_c, channels=channels, loop=loop,
                   alarms=alarms, word_order=word_order, clock=clock)

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.link.open()
        try:
            units = (await self.link.read(reg.DISPLAY_UNITS))[0]
            if units not in (F4tValue.CELSIUS, F4tValue.FAHRENHEIT):
                raise self._malformed(f"display units {units} are neither C (15) nor F (30)",
                                      f"read {reg.DISPLAY_UNITS}")
            self.display_units = F4tValue(units)
            range_address = reg.loop_register(reg.SET_POINT_MIN, self.loop)
            low_c, high_c = await self._read_temperatures(range_address, 2)
            if not low_c < high_c:
                raise self._malformed(
                    f"the loop's set point range reads {low_c:g} to {high_c:g} °C: does the "
                    f"controller's Modbus word order match {self.word_order.value}?",
                    f"read {range_address}+4")
            self._range_c = controller_range(
                self._rated_range_c, (low_c, high_c), instrument=self.link.instrument,
                address=self.link.url, command=f"read {range_address}+4")
            self.stability.new_setpoint(await self.read_setpoint())
        except BaseException:
            await self.link.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.link.close()

    @property
    def temperature_range_c(self) -> tuple[float, float]:
        """Lowest and highest setpoint accepted: the rating within the loop's set point range."""
        return self._range_c

    # -- the port ---------------------------------------------------------------------------

    async def read_temperature(self) -> float:
        """The loop's process value (the air temperature) in °C."""
        (temperature_c,) = await self._read_temperatures(
            reg.loop_register(reg.PROCESS_VALUE, self.loop), 1)
        self.stability.add(self.clock(), temperature_c)
        return temperature_c

    async def set_temperature(self, setpoint_c: float) -> None:
        """A new closed-loop set point, and the loop in auto (constant) control."""
        address = reg.loop_register(reg.CLOSED_LOOP_SET_POINT, self.loop)
        words = reg.encode_float(reg.from_celsius(setpoint_c, self.display_units),
                                 self.word_order)
        check_setpoint(setpoint_c, self._range_c, instrument=self.link.instrument,
                       address=self.link.url, command=f"write {address} {words}")
        await self.link.write(address, words)
        self.stability.new_setpoint(setpoint_c)
        mode_register = reg.loop_register(reg.CONTROL_MODE, self.loop)
        if (await self.link.read(mode_register))[0] != F4tValue.AUTO:
            await self.constant()

    async def alarms(self) -> list[str]:
        """Active alarms, e.g. ``["alarm 1 high"]``."""
        active = []
        for number in self.alarm_numbers:
            state = (await self.link.read(reg.alarm_register(reg.ALARM_STATE, number)))[0]
            if state not in reg.INACTIVE_ALARM_STATES:
                active.append(f"alarm {number} "
                              + reg.ALARM_STATE_NAMES.get(state, f"state {state}"))
        return active

    async def standby(self) -> None:
        """Control mode off: no heating or cooling."""
        await self._write_mode(F4tValue.OFF)

    # -- more of the instrument -------------------------------------------------------------

    async def constant(self) -> None:
        """Control mode auto: hold the closed-loop set point."""
        await self._write_mode(F4tValue.AUTO)

    async def mode(self) -> ChamberMode:
        """The loop's active control mode (2814): off → standby, auto → constant, manual."""
        address = reg.loop_register(reg.CONTROL_MODE_ACTIVE, self.loop)
        value = (await self.link.read(address))[0]
        if value not in _MODES:
            raise self._malformed(f"unknown control mode {value}", f"read {address}")
        return _MODES[F4tValue(value)]

    async def read_setpoint(self) -> float:
        """The closed-loop set point in °C."""
        (setpoint_c,) = await self._read_temperatures(
            reg.loop_register(reg.CLOSED_LOOP_SET_POINT, self.loop), 1)
        return setpoint_c

    async def read_working_setpoint(self) -> float:
        """The set point the loop controls to now (ramping, profiles) in °C."""
        (setpoint_c,) = await self._read_temperatures(
            reg.loop_register(reg.WORKING_SET_POINT, self.loop), 1)
        return setpoint_c

    def stable(self, within_k: float, for_s: float) -> bool:
        """Whether the readings taken so far satisfy the stability rule now."""
        return self.stability.stable(within_k, for_s, now_s=self.clock())

    # -- internals --------------------------------------------------------------------------

    async def _write_mode(self, value: F4tValue) -> None:
        await self.link.write(reg.loop_register(reg.CONTROL_MODE, self.loop), [int(value)])

    async def _read_temperatures(self, address: int, count: int) -> list[float]:
        """``count`` consecutive temperature floats from ``address``, in °C."""
        words = await self.link.read(address, 2 * count)
        values = []
        for index in range(count):
            value = reg.decode_float(words[2 * index: 2 * index + 2], self.word_order)
            if not math.isfinite(value):
                raise InstrumentReported(f"register {address + 2 * index} reads {value} "
                                         "(sensor error?)", instrument=self.link.instrument,
                                         address=self.link.url,
                                         command=f"read {address}+{2 * count}")
            values.append(reg.to_celsius(value, self.display_units))
        return values

    def _malformed(self, message: str, command: str) -> MalformedReply:
        return MalformedReply(message, instrument=self.link.instrument, address=self.link.url,
                              command=command)


def _implements_the_port(chamber: WatlowF4T) -> ChamberPort:
    """Checked by mypy: the driver is a :class:`~cellrig.drivers.ports.ChamberPort`."""
    return chamber

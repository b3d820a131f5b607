"""The Watlow F4T driver against scripted register exchanges: which registers it reads and
writes, with which words, and the float layout in both word orders."""

from __future__ import annotations

import math

import pytest

from cellrig.drivers import watlow_registers as reg
from cellrig.drivers.chamber_common import ChamberMode, SetpointRefused
from cellrig.drivers.watlow_f4t import WatlowF4T
from cellrig.drivers.watlow_registers import WordOrder
from cellrig.errors import InstrumentReported, MalformedReply, UnsupportedInstrument
from cellrig.simulators.watlow_emulator import F4tAlarm

Exchange = tuple[str, int, list[int]]
"""("read", address, words returned) or ("write", address, words expected)"""


class ScriptedRegisters:
    def __init__(self, script: list[Exchange]) -> None:
        self.instrument = "watlow-f4t"
        self.url = "modbus-tcp://chamber:502/1"
        self.script = list(script)
        self.opened = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def read(self, address: int, count: int = 1) -> list[int]:
        kind, expected, words = self.script.pop(0)
        assert (kind, address, count) == ("read", expected, len(words))
        return words

    async def write(self, address: int, values: list[int]) -> None:
        assert self.script, f"unexpected write {address} {values}"
        assert ("write", address, values) == self.script.pop(0)


def floats(*values: float, order: WordOrder = WordOrder.LOW_HIGH) -> list[int]:
    return [word for value in values for word in reg.encode_float(value, order)]


def connect(units: int = 15, low: float = -40.0, high: float = 150.0,
            set_point: float = 25.0, order: WordOrder = WordOrder.LOW_HIGH) -> list[Exchange]:
    return [("read", 1328, [units]), ("read", 2774, floats(low, high, order=order)),
            ("read", 2782, floats(set_point, order=order))]


def driver(script: list[Exchange], **options: object) -> tuple[WatlowF4T, ScriptedRegisters]:
    link = ScriptedRegisters(script)
    return WatlowF4T(link, temperature_range_c=(-70.0, 180.0), **options), link  # type: ignore[arg-type]


def test_float_layout_in_both_word_orders() -> None:
    # 25.0 is 0x41C80000: high word 0x41C8, low word 0x0000
    assert reg.encode_float(25.0, WordOrder.LOW_HIGH) == [0x0000, 0x41C8]
    assert reg.encode_float(25.0, WordOrder.HIGH_LOW) == [0x41C8, 0x0000]
    assert reg.decode_float([0x0000, 0x41C8], WordOrder.LOW_HIGH) == 25.0
    assert reg.decode_float([0x0000, 0x41C8], WordOrder.HIGH_LOW) < 1e-40   # the mismatch
    assert reg.decode_float(reg.encode_float(-12.5, WordOrder.HIGH_LOW),
                            WordOrder.HIGH_LOW) == -12.5
    with pytest.raises(ValueError, match="two 16-bit"):
        reg.decode_float([1, 2, 3], WordOrder.LOW_HIGH)
    assert reg.loop_register(reg.PROCESS_VALUE, 2) == 2980
    assert reg.alarm_register(reg.ALARM_STATE, 3) == 1556
    assert reg.to_celsius(212.0, reg.F4tValue.FAHRENHEIT) == pytest.approx(100.0)
    assert reg.from_celsius(-40.0, reg.F4tValue.FAHRENHEIT) == pytest.approx(-40.0)


async def test_connect_reads_units_range_and_set_point() -> None:
    chamber, link = driver(connect(low=-40.0, high=150.0, set_point=60.0))
    async with chamber:
        assert chamber.temperature_range_c == (-40.0, 150.0)
        assert chamber.stability.setpoint_c == 60.0
        assert link.opened
    assert not link.script and not link.opened


async def test_set_temperature_writes_the_set_point_then_auto() -> None:
    chamber, link = driver([
        *connect(),
        ("write", 2782, floats(60.0)),
        ("read", 2730, [62]),
        ("write", 2730, [10]),
        ("write", 2782, floats(-10.0)),
        ("read", 2730, [10]),
    ])
    async with chamber:
        await chamber.set_temperature(60.0)
        await chamber.set_temperature(-10.0)
    assert not link.script


async def test_fahrenheit_controller_and_second_loop() -> None:
    chamber, link = driver([
        ("read", 1328, [30]),
        ("read", 2934, floats(-40.0, 302.0)),       # loop 2: +160
        ("read", 2942, floats(77.0)),
        ("write", 2942, floats(140.0)),             # 60 °C
        ("read", 2890, [10]),
        ("read", 2980, floats(131.0)),              # 55 °C
    ], loop=2)
    async with chamber:
        assert chamber.temperature_range_c == pytest.approx((-40.0, 150.0))
        assert chamber.stability.setpoint_c == pytest.approx(25.0)
        await chamber.set_temperature(60.0)
        assert await chamber.read_temperature() == pytest.approx(55.0)
    assert not link.script


async def test_modes_standby_and_alarms() -> None:
    chamber, _link = driver([
        *connect(),
        ("read", 2814, [10]),
        ("write", 2730, [62]),
        ("read", 2814, [62]),
        ("read", 2814, [54]),
        ("read", 1356, [7]), ("read", 1456, [12]), ("read", 1556, [28]),
        ("read", 1356, [88]), ("read", 1456, [8]), ("read", 1556, [99]),
    ], alarms=(1, 2, 3))
    async with chamber:
        assert await chamber.mode() is ChamberMode.CONSTANT
        await chamber.standby()
        assert await chamber.mode() is ChamberMode.STANDBY
        assert await chamber.mode() is ChamberMode.MANUAL
        assert await chamber.alarms() == ["alarm 1 high", "alarm 3 error"]
        assert await chamber.alarms() == ["alarm 2 low", "alarm 3 state 99"]


async def test_refusals_and_bad_values() -> None:
    chamber, link = driver([*connect(), ("read", 2814, [3]), ("read", 2820, floats(math.nan))])
    async with chamber:
        with pytest.raises(SetpointRefused) as refused:
            await chamber.set_temperature(151.0)
        assert refused.value.command == f"write 2782 {floats(151.0)}"
        with pytest.raises(MalformedReply, match="unknown control mode 3"):
            await chamber.mode()
        with pytest.raises(InstrumentReported, match="sensor error"):
            await chamber.read_temperature()
    assert not link.script


@pytest.mark.parametrize(("script", "error", "match"), [
    ([("read", 1328, [1])], MalformedReply, "neither C"),
    (connect(order=WordOrder.HIGH_LOW), MalformedReply, "word order match low-high"),
    (connect(low=200.0, high=300.0), UnsupportedInstrument, "does not overlap"),
])
async def test_connect_checks_what_the_controller_says(script: list[Exchange],
                                                       error: type[Exception],
                                                       match: str) -> None:
    chamber, link = driver(script)
    with pytest.raises(error, match=match):
        async with chamber:
            pass
    assert not link.opened


async def test_stability_from_process_values() -> None:
    now = [0.0]
    chamber, _link = driver(connect(set_point=60.0)
                            + [("read", 2820, floats(t)) for t in (59.0, 59.6, 60.4, 60.0)],
                            clock=lambda: now[0])
    async with chamber:
        answers = []
        for _ in range(4):
            await chamber.read_temperature()
            answers.append(chamber.stable(0.5, 40.0))
            now[0] += 20.0
    assert answers == [False, False, False, True]


def test_emulator_alarm_logic_with_hysteresis_and_blocking() -> None:
    process = F4tAlarm(76, high=155.0, low=-45.0)
    process.evaluate(156.0, 60.0)
    assert process.state == 7
    process.evaluate(154.6, 60.0)            # within 0.6 K hysteresis: still high
    assert process.state == 7
    process.evaluate(154.3, 60.0)
    assert process.state == 61
    deviation = F4tAlarm(24, high=3.0, low=-3.0, blocked=True)
    deviation.evaluate(25.0, 60.0)           # heating after a set point change: blocked
    assert deviation.state == 12
    deviation.evaluate(58.0, 60.0)
    assert deviation.state == 61 and not deviation.blocked
    deviation.evaluate(56.9, 60.0)
    assert deviation.state == 8
    off = F4tAlarm(62, high=1.0, low=-1.0)
    off.evaluate(1000.0, 0.0)
    assert off.state == 61

"""The ESPEC driver against scripted exchanges: the exact command strings it sends, how it
reads the replies, and how it turns ``NA:`` replies and bad replies into errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from cellrig.drivers import espec_protocol as wire
from cellrig.drivers.backoff import Backoff
from cellrig.drivers.chamber_common import ChamberMode, SetpointRefused
from cellrig.drivers.espec import EspecChamber
from cellrig.errors import ConnectionLost, InstrumentReported, MalformedReply

Reply = str | Exception


class ScriptedLink:
    """Plays one scripted exchange per query and fails the test on any other command."""

    def __init__(self, script: list[tuple[str, Reply]]) -> None:
        self.url = "socket://chamber:10001"
        self.instrument = "espec"
        self.script = list(script)
        self.sent: list[str] = []
        self.opened = 0
        self.reopened = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self.opened += 1
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5,
                     sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.reopened += 1
        self._open = True

    async def query(self, text: str, *, timeout_s: float | None = None) -> str:
        self.sent.append(text)
        assert self.script, f"unexpected command {text!r}"
        expected, reply = self.script.pop(0)
        assert text == expected
        if isinstance(reply, Exception):
            if isinstance(reply, ConnectionLost):
                self._open = False
            raise reply
        return reply


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


CONNECT = ("TEMP?", "25.0,25.0,100.0,-20.0")


def chamber(script: list[tuple[str, Reply]], **options: object) -> tuple[EspecChamber,
                                                                        ScriptedLink]:
    link = ScriptedLink(script)
    return EspecChamber(link, temperature_range_c=(-40.0, 150.0),  # type: ignore[arg-type]
                        channels=("ch-1", "ch-2"), **options), link


async def test_connect_reads_the_limits_and_narrows_the_range() -> None:
    driver, link = chamber([CONNECT])
    async with driver:
        assert driver.temperature_range_c == (-20.0, 100.0)
        assert driver.channels == ("ch-1", "ch-2")
    assert link.sent == ["TEMP?"] and not link.is_open


async def test_set_temperature_sends_setpoint_then_constant_mode() -> None:
    driver, link = chamber([
        CONNECT,
        ("TEMP, S60.0", "OK:TEMP, S60.0"),
        ("MODE?", "STANDBY"),
        ("MODE,CONSTANT", "OK:MODE,CONSTANT"),
        ("TEMP, S-10.0", "OK:TEMP, S-10.0"),
        ("MODE?", "CONSTANT"),
    ])
    async with driver:
        await driver.set_temperature(60.0)
        await driver.set_temperature(-10.04)
    assert not link.script


async def test_out_of_range_setpoint_is_refused_before_sending() -> None:
    driver, link = chamber([CONNECT])
    async with driver:
        with pytest.raises(SetpointRefused) as caught:
            await driver.set_temperature(120.0)
    assert caught.value.command == "TEMP, S120.0"
    assert "-20 to 100 °C" in str(caught.value)
    assert link.sent == ["TEMP?"]


async def test_readings_modes_alarms_and_standby() -> None:
    driver, _link = chamber([
        CONNECT,
        ("TEMP?", "59.8,60.0,100.0,-20.0"),
        ("MON?", "59.9,,CONSTANT,2"),
        ("MODE?", "RUN PAUSE"),
        ("ALARM?", "2,3,17"),
        ("ALARM?", "0"),
        ("MODE,STANDBY", "OK:MODE,STANDBY"),
        ("TYPE?", "T,S2,150.0"),
    ], alarm_names={3: "door open"})
    async with driver:
        assert await driver.read_temperature() == 59.8
        monitor = await driver.monitor()
        assert monitor == wire.Monitor(59.9, None, ChamberMode.CONSTANT, 2)
        assert await driver.mode() is ChamberMode.PROGRAM
        assert await driver.alarms() == ["door open", "alarm 17"]
        assert await driver.alarms() == []
        await driver.standby()
        assert await driver.identify() == "T,S2,150.0"


async def test_rs485_address_prefixes_every_command() -> None:
    driver, link = chamber([("3,TEMP?", "25.0,25.0,100.0,-20.0"), ("3,MODE,STANDBY", "OK")],
                           rs485_address=3)
    async with driver:
        await driver.standby()
    assert link.sent == ["3,TEMP?", "3,MODE,STANDBY"]
    with pytest.raises(ValueError, match="1 to 16"):
        chamber([], rs485_address=17)


async def test_na_reply_raises_instrument_reported_with_its_meaning() -> None:
    driver, _link = chamber([CONNECT, ("TEMP, S50.0", "NA:PROTECT ON")])
    async with driver:
        with pytest.raises(InstrumentReported) as caught:
            await driver.set_temperature(50.0)
    error = caught.value
    assert error.command == "TEMP, S50.0" and error.address == "socket://chamber:10001"
    assert "NA:PROTECT ON (data protection is enabled on the panel)" in str(error)


@pytest.mark.parametrize(("command", "reply"), [
    ("TEMP?", "25.0,25.0"),
    ("TEMP?", "hot,25.0,100.0,-20.0"),
    ("MON?", "25.0,,SLEEPING,0"),
    ("MON?", "25.0,,CONSTANT,-1"),
    ("ALARM?", "2,3"),
    ("ALARM?", "x"),
    ("MODE,STANDBY", "STANDBY"),
])
async def test_replies_that_do_not_parse_raise_malformed_reply(command: str, reply: str) -> None:
    driver, _link = chamber([CONNECT, (command, reply)])
    calls = {"TEMP?": driver.read_temperature, "MON?": driver.monitor,
             "ALARM?": driver.alarms, "MODE,STANDBY": driver.standby}
    async with driver:
        with pytest.raises(MalformedReply) as caught:
            await calls[command]()
    assert caught.value.command == command


async def test_lost_connection_raises_then_the_next_command_reconnects() -> None:
    lost = ConnectionLost("connection lost", instrument="espec", address="socket://chamber:10001",
                          command="TEMP?")
    driver, link = chamber([CONNECT, ("TEMP?", lost), ("TEMP?", "24.0,25.0,100.0,-20.0")])
    async with driver:
        with pytest.raises(ConnectionLost):
            await driver.read_temperature()
        assert await driver.read_temperature() == 24.0
    assert link.reopened == 1


async def test_stability_follows_the_readings_on_the_driver_clock() -> None:
    clock = Clock()
    script: list[tuple[str, Reply]] = [CONNECT, ("TEMP, S60.0", "OK:TEMP, S60.0"),
                                       ("MODE?", "CONSTANT")]
    temperatures = [40.0, 55.0, 59.7, 59.8, 60.2, 60.1, 59.9]
    script += [("TEMP?", f"{t:.1f},60.0,100.0,-20.0") for t in temperatures]
    driver, _link = chamber(script, clock=clock)
    async with driver:
        await driver.set_temperature(60.0)
        answers = []
        for _ in temperatures:
            await driver.read_temperature()
            answers.append(driver.stable(0.5, 60.0))
            clock.now_s += 30.0
    assert answers == [False, False, False, False, True, True, True]


async def test_setpoint_changed_at_the_panel_restarts_stability() -> None:
    clock = Clock()
    driver, _link = chamber([CONNECT] + [("TEMP?", "25.0,25.0,100.0,-20.0")] * 3
                            + [("TEMP?", "25.0,30.0,100.0,-20.0")], clock=clock)
    async with driver:
        for _ in range(3):
            await driver.read_temperature()
            clock.now_s += 30.0
        assert driver.stable(0.5, 60.0)
        await driver.read_temperature()
        assert not driver.stable(0.5, 0.0)


def test_wire_helpers() -> None:
    assert wire.setpoint_command(59.96) == "TEMP, S60.0"
    assert wire.setpoint_command(-5) == "TEMP, S-5.0"
    assert wire.na_reason("NA:CMD ERR") == "CMD ERR" and wire.na_reason("OK:X") is None
    assert wire.describe_na("WHATEVER") == "chamber refused: NA:WHATEVER"
    assert wire.parse_monitor("24.1,100,CONSTANT,0").humidity_pct == 100.0
    assert wire.parse_mode("RMT RUN END HOLD") is ChamberMode.PROGRAM
    assert wire.parse_temperature("23.5,25.0,150.0,-40.0") == wire.TemperatureStatus(
        23.5, 25.0, 150.0, -40.0)
    with pytest.raises(wire.ReplyError, match="not a finite number"):
        wire.parse_temperature("nan,25.0,150.0,-40.0")

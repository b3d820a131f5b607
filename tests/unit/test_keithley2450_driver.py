"""The Keithley 2450 driver's exact exchanges, against a scripted transport that records what
is sent and answers from a script (the integration tests prove the same strings against the
emulator through pyvisa-py)."""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np
import pytest

from cellrig.drivers.keithley2450 import Keithley2450
from cellrig.drivers.keithley2450_models import ChannelLimits
from cellrig.drivers.keithley2450_setup import READ_QUERY, SWITCH_OFF, VERIFY_QUERY
from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
    UnsupportedInstrument,
)
from cellrig.protocols.rig import Command, Mode

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04512345,1.7.12b"
NO_ERROR = '0,"No error;0,0,0"'
LIMITS = ChannelLimits(max_voltage_v=4.4, max_current_a=1.0, min_voltage_v=2.5)

CONFIGURATION = [
    "*CLS",
    "*RST;:OUTP:SMOD HIMP",
    ":SOUR:VOLT:PROT PROT5",
    ":SOUR:FUNC CURR",
    ":SOUR:CURR:RANG:AUTO ON",
    ":SOUR:CURR:VLIM 4.4",
    ":SOUR:CURR 0",
    ":SOUR:CURR:READ:BACK ON",
    ":SOUR:VOLT:RANG:AUTO ON",
    ":SOUR:VOLT:ILIM 1",
    ":SOUR:VOLT:READ:BACK ON",
    ':SENS:FUNC "VOLT"',
    ":SENS:VOLT:RANG:AUTO ON",
    ":SENS:VOLT:NPLC 1",
    ":SENS:VOLT:RSEN ON",
    ":SENS:CURR:RANG:AUTO ON",
    ":SENS:CURR:NPLC 1",
    ":SENS:CURR:RSEN ON",
    ':TRAC:CLE "defbuffer1"',
    ":SYST:ERR?",
    VERIFY_QUERY,
    ":SYST:LFR?",
]


class ScriptedTransport:
    """Records every message; answers queries with the next scripted reply for that query
    (an exception in the script is raised instead)."""

    instrument = "keithley-2450"
    address = "TCPIP::192.0.2.7::5025::SOCKET"

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.sent: list[str] = []
        self.replies: dict[str, deque[str | Exception]] = {}
        self.opened = 0
        self._open = False

    def script(self, query: str, *replies: str | Exception) -> None:
        self.replies.setdefault(query, deque()).extend(replies)

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self.opened += 1
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def reopen(self, backoff: object = None, *, attempts: int = 5) -> None:
        await self.open()

    async def write(self, command: str) -> None:
        self.sent.append(command)

    async def query(self, command: str, *, timeout_s: float | None = None) -> str:
        self.sent.append(command)
        queue = self.replies.get(command)
        assert queue, f"unscripted query {command!r}"
        reply = queue.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply


def scripted_connection() -> ScriptedTransport:
    transport = ScriptedTransport()
    transport.script("*IDN?", IDN)
    transport.script("*LANG?", "SCPI")
    transport.script(":SYST:ERR?", NO_ERROR)
    transport.script(VERIFY_QUERY, "HIMP;HIMP;PROT5")
    transport.script(":SYST:LFR?", "50")
    return transport


async def connected(**options: object) -> tuple[Keithley2450, ScriptedTransport]:
    transport = scripted_connection()
    driver = Keithley2450(transport, limits=LIMITS, time_scale=1e9, **options)  # type: ignore[arg-type]
    await driver.__aenter__()
    transport.sent.clear()
    return driver, transport


def reading(voltage: float, current: float, relative_s: float, errors: int = 0) -> str:
    return f"{voltage:.6E},{current:.6E},{relative_s:.6f};{errors}"


def timeout(command: str = READ_QUERY) -> InstrumentTimeout:
    return InstrumentTimeout("no reply within 2 s", instrument="keithley-2450",
                             address=ScriptedTransport.address, command=command)


class TestConnecting:
    async def test_identify_reset_and_configure(self) -> None:
        transport = scripted_connection()
        async with Keithley2450(transport, limits=LIMITS) as driver:
            assert transport.sent == ["*IDN?", "*LANG?", *CONFIGURATION]
            assert driver.identity is not None and driver.identity.serial_number == "04512345"
            assert driver.line_frequency_hz == 50.0
            transport.script(SWITCH_OFF, "0")
        assert transport.sent[-1] == SWITCH_OFF

    @pytest.mark.parametrize(("idn", "language", "error"), [
        ("KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234567,C32", "SCPI", UnsupportedInstrument),
        ("Keysight Technologies,B2901A,MY123,3.4", "SCPI", UnsupportedInstrument),
        (IDN, "TSP", UnsupportedInstrument),
        (IDN, "SCPI2400", UnsupportedInstrument),
        ("\x15#?", "SCPI", MalformedReply),
    ])
    async def test_other_instruments_and_command_sets_are_refused(
            self, idn: str, language: str, error: type[Exception]) -> None:
        transport = ScriptedTransport()
        transport.script("*IDN?", idn)
        transport.script("*LANG?", language)
        with pytest.raises(error):
            async with Keithley2450(transport, limits=LIMITS):
                pass
        assert not transport.is_open
        assert not any(text.startswith(":OUTP") for text in transport.sent)

    async def test_limits_beyond_the_model_are_refused(self) -> None:
        transport = scripted_connection()
        with pytest.raises(UnsupportedInstrument, match=r"exceeds the 1\.05 A of a 2450"):
            await Keithley2450(transport, limits=ChannelLimits(4.4, 5.0)).__aenter__()

    async def test_a_configuration_error_is_raised_with_its_code(self) -> None:
        transport = scripted_connection()
        transport.replies[":SYST:ERR?"] = deque(
            ['-222,"Parameter data out of range;1;2026/01/01 00:00:00.000"', NO_ERROR])
        with pytest.raises(InstrumentReported) as caught:
            await Keithley2450(transport, limits=LIMITS).__aenter__()
        assert caught.value.code == -222
        assert caught.value.detail == "Parameter data out of range"
        assert ":SOUR:VOLT:PROT PROT5" in (caught.value.command or "")

    async def test_protection_that_did_not_take_is_an_error(self) -> None:
        transport = scripted_connection()
        transport.replies[VERIFY_QUERY] = deque(["NORM;HIMP;PROT5"])
        with pytest.raises(InstrumentReported, match="protection did not take"):
            await Keithley2450(transport, limits=LIMITS).__aenter__()

    def test_capabilities_are_the_models_within_the_channel(self) -> None:
        wide = Keithley2450(ScriptedTransport(), limits=ChannelLimits(210.0, 1.05))
        assert (wide.capabilities.max_current_a, wide.capabilities.min_voltage_v,
                wide.capabilities.max_voltage_v) == (1.05, -210.0, 210.0)
        cell = Keithley2450(ScriptedTransport(), limits=LIMITS)
        capabilities = cell.capabilities
        assert (capabilities.max_current_a, capabilities.min_voltage_v,
                capabilities.max_voltage_v) == (1.0, 2.5, 4.4)
        assert not capabilities.device_cutoffs
        assert not capabilities.constant_power and not capabilities.constant_resistance
        assert capabilities.min_sample_interval_s == pytest.approx(0.04)
        big = Keithley2450(ScriptedTransport(), limits=ChannelLimits(100.0, 7.0), model="2461")
        assert big.capabilities.max_current_a == 7.0


class TestSourcing:
    async def test_cc_charge_with_a_voltage_limit(self) -> None:
        driver, transport = await connected()
        message = (':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.25;'
                   f":SOUR:CURR 0.06;:OUTP ON;{READ_QUERY}")
        transport.script(message, reading(3.61, 0.06, 0.0))
        transport.script(READ_QUERY, reading(3.62, 0.06, 1.04))
        at_s = await driver.apply(Command(Mode.CURRENT, current_a=0.06, voltage_limit_v=4.25))
        assert transport.sent == [message]
        assert at_s == 0.0
        first, second = await driver.read(), await driver.read()
        assert (first.time_s[0], first.voltage_v[0], first.current_a[0]) == (0.0, 3.61, 0.06)
        assert (second.time_s[0], second.voltage_v[0]) == (1.04, 3.62)

    async def test_a_new_level_of_the_same_function_keeps_the_output_on(self) -> None:
        driver, transport = await connected()
        transport.script(f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;'
                         f":SOUR:CURR 0.1;:OUTP ON;{READ_QUERY}", reading(3.6, 0.1, 0.0))
        await driver.apply(Command(Mode.CURRENT, current_a=0.1))
        transport.script(f":SOUR:CURR 0;{READ_QUERY}", reading(3.55, 0.0, 5.0))
        await driver.apply(Command(Mode.REST))
        assert transport.sent[-1] == f":SOUR:CURR 0;{READ_QUERY}"

    async def test_cv_after_cc_turns_the_output_off_to_change_function(self) -> None:
        driver, transport = await connected()
        transport.script(f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;'
                         f":SOUR:CURR 0.6;:OUTP ON;{READ_QUERY}", reading(4.1, 0.6, 0.0))
        await driver.apply(Command(Mode.CURRENT, current_a=0.6))
        message = (':OUTP OFF;:SOUR:FUNC VOLT;:SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.6;'
                   f":SOUR:VOLT 4.25;:OUTP ON;{READ_QUERY}")
        transport.script(message, reading(0.59, 4.25, 900.0))
        await driver.apply(Command(Mode.VOLTAGE, voltage_v=4.25, current_limit_a=0.6))
        block = await driver.read()
        assert transport.sent[-1] == message
        # measuring current: READ is the current, SOUR the voltage
        assert (block.voltage_v[0], block.current_a[0]) == (4.25, 0.59)

    async def test_a_discharge_is_sourced_as_a_voltage_at_its_lower_bound(self) -> None:
        driver, transport = await connected()
        message = (':SOUR:FUNC VOLT;:SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.3;:SOUR:VOLT 2.7;'
                   f":OUTP ON;{READ_QUERY}")
        transport.script(message, reading(-0.3, 3.9, 0.0))
        await driver.apply(Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=2.7))
        block = await driver.read()
        assert (block.voltage_v[0], block.current_a[0]) == (3.9, -0.3)

    async def test_a_discharge_below_its_bound_is_a_plain_current(self) -> None:
        driver, transport = await connected()
        transport.script(f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;'
                         f":SOUR:CURR 0;:OUTP ON;{READ_QUERY}", reading(2.4, 0.0, 0.0))
        await driver.apply(Command(Mode.REST))
        message = f":SOUR:CURR -0.3;{READ_QUERY}"
        transport.script(message, reading(2.3, -0.3, 1.0))
        await driver.apply(Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=2.7))
        assert transport.sent[-1] == message

    async def test_commands_beyond_the_channel_are_refused_before_sending(self) -> None:
        driver, transport = await connected()
        for command in (Command(Mode.CURRENT, current_a=1.5), Command(Mode.VOLTAGE, 0, 5.0),
                        Command(Mode.POWER, power_w=1.0)):
            with pytest.raises(InstrumentError):
                await driver.apply(command)
        assert transport.sent == []

    async def test_an_error_after_applying_is_raised(self) -> None:
        driver, transport = await connected()
        message = (':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;:SOUR:CURR 0.5;'
                   f":OUTP ON;{READ_QUERY}")
        transport.script(message, reading(3.6, 0.5, 0.0, errors=1))
        transport.script(":SYST:ERR?", '5074,"Output current limit exceeded;1;x"', NO_ERROR)
        with pytest.raises(InstrumentReported) as caught:
            await driver.apply(Command(Mode.CURRENT, current_a=0.5))
        assert caught.value.code == 5074
        assert caught.value.command is not None and ":SOUR:CURR 0.5" in caught.value.command

    async def test_safe_switches_off_at_high_impedance_and_checks(self) -> None:
        driver, transport = await connected()
        transport.script(SWITCH_OFF, "0", "1", "1")
        await driver.safe()
        assert transport.sent == [SWITCH_OFF]
        with pytest.raises(InstrumentReported, match="still on"):
            await driver.safe()

    async def test_safe_reconnects_a_dropped_connection(self) -> None:
        driver, transport = await connected()
        await transport.close()
        transport.script(SWITCH_OFF, "0")
        await driver.safe()
        assert transport.opened == 2
        assert transport.sent == [SWITCH_OFF]


class TestReading:
    async def start(self, **options: object) -> tuple[Keithley2450, ScriptedTransport]:
        driver, transport = await connected(**options)
        transport.script(f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;'
                         f":SOUR:CURR 0.2;:OUTP ON;{READ_QUERY}", reading(3.6, 0.2, 0.0))
        await driver.apply(Command(Mode.CURRENT, current_a=0.2))
        await driver.read()
        return driver, transport

    async def test_a_failed_reading_is_retried_once(self) -> None:
        driver, transport = await self.start()
        transport.script(READ_QUERY, timeout(), reading(3.61, 0.2, 1.0))
        block = await driver.read()
        assert block.voltage_v[0] == 3.61
        transport.script(READ_QUERY, "\ufffd#?", "ok;0")
        with pytest.raises(MalformedReply):
            await driver.read()

    async def test_a_dropped_connection_is_reopened_for_the_retry(self) -> None:
        driver, transport = await self.start()
        lost = ConnectionLost("closed", instrument="k", address="a", command=READ_QUERY)
        transport.script(READ_QUERY, lost, reading(3.61, 0.2, 1.0))
        await driver.read()
        assert transport.opened == 2

    async def test_without_retries_the_first_failure_is_raised(self) -> None:
        driver, transport = await self.start(retries=0)
        transport.script(READ_QUERY, timeout())
        with pytest.raises(InstrumentTimeout):
            await driver.read()

    async def test_an_instrument_error_during_a_step_is_raised(self) -> None:
        driver, transport = await self.start()
        transport.script(READ_QUERY, reading(3.61, 0.2, 1.0, errors=1))
        transport.script(":SYST:ERR?", '-300,"Device-specific error;1;x"', NO_ERROR)
        with pytest.raises(InstrumentReported) as caught:
            await driver.read()
        assert caught.value.code == -300

    async def test_fast_sampling_is_timed_by_the_instrument(self) -> None:
        driver, transport = await connected()
        transport.script(f':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.4;'
                         f":SOUR:CURR 0.2;:OUTP ON;{READ_QUERY}", reading(3.6, 0.2, 0.0))
        loop = ':TRIG:LOAD "SimpleLoop", 50000, 0.005, "defbuffer1";:TRAC:CLE "defbuffer1";:INIT'
        count = ':TRAC:ACT:END? "defbuffer1";:SYST:ERR:COUN?'
        transport.script(count, "0;0", "3;0")
        transport.script(':TRAC:DATA? 1, 3, "defbuffer1", READ, SOUR, REL',
                         "3.6,0.2,0.0,3.61,0.2,0.045,3.62,0.2,0.09")
        await driver.apply(Command(Mode.CURRENT, current_a=0.2, sample_interval_s=0.045))
        assert transport.sent[-1] == loop
        await driver.read()
        block = await driver.read()
        assert len(block) == 3
        assert np.diff(block.time_s) == pytest.approx([0.045, 0.045])
        assert block.time_s[0] >= 0.045  # after the first reading, by the loop's lead at least
        await driver.end_step(float(block.time_s[-1]))
        assert transport.sent[-1] == ":ABOR"

    async def test_readings_under_off_are_not_asked_for(self) -> None:
        driver, transport = await connected()
        transport.script(SWITCH_OFF, "0")
        await driver.apply(Command(Mode.OFF))
        block = await driver.read()
        assert np.isnan(block.voltage_v[0]) and block.current_a[0] == 0.0
        assert transport.sent == [SWITCH_OFF]

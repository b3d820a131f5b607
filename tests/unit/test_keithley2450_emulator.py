"""The Keithley 2450 emulator's SCPI, message by message, on a bench in virtual time (no
sockets): forms of headers, the event log, source and output-off behaviour on the cell,
buffers and the trigger model."""

from __future__ import annotations

import pytest

from cellrig.simulators.bench import Bench, BenchClock
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator


@pytest.fixture
def bench() -> Bench:
    return Bench.default(BenchClock())


@pytest.fixture
def smu(bench: Bench) -> Keithley2450Emulator:
    return Keithley2450Emulator(bench.cells["cell-1"])


async def ask(smu: Keithley2450Emulator, message: str) -> str:
    reply = await smu.execute(message)
    assert reply is not None, f"no reply to {message!r}"
    return reply


async def charge_a_little(smu: Keithley2450Emulator, bench: Bench) -> None:
    """Charge the empty cell to about half."""
    await smu.execute("*RST;:OUTP:SMOD HIMP;:SOUR:FUNC CURR;:SOUR:CURR:VLIM 4.4;"
                      ":SOUR:CURR 0.6;:OUTP ON")
    bench.clock.advance(1800.0)
    await smu.execute(":OUTP OFF")


class TestIdentityAndForms:
    async def test_identity_and_command_set(self, smu: Keithley2450Emulator) -> None:
        assert await ask(smu, "*IDN?") == "KEITHLEY INSTRUMENTS,MODEL 2450,04512345,1.7.12b"
        assert await ask(smu, "*lang?") == "SCPI"
        assert await ask(smu, "*OPC?") == "1"

    @pytest.mark.parametrize("message", [
        ":SOUR:CURR:VLIM 4.2", ":SOURce:CURRent:VLIMit:LEVel 4.2", "sour1:curr:vlim 4.2",
        ":SOUR:FUNC VOLT;:SOUR:CURR:VLIM 4.2", ":SOUR:CURR:VLIM MIN;VLIM 4.2",
    ])
    async def test_forms_of_one_setting(self, smu: Keithley2450Emulator, message: str) -> None:
        await smu.execute(message)
        assert smu.voltage_limit_v == 4.2
        assert await ask(smu, ":SOUR:CURR:VLIM?") == "4.200000e+00"
        assert len(smu.errors) == 0

    async def test_queries_of_a_message_share_a_line(self, smu: Keithley2450Emulator) -> None:
        await smu.execute(":OUTP:CURR:SMOD HIMP;:SOUR:VOLT:PROT PROT5")
        assert await ask(smu, ":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?;:SOUR:VOLT:PROT?") == (
            "HIMP;NORM;PROT5")


class TestEventLog:
    @pytest.mark.parametrize(("message", "code", "text"), [
        (":SOUR:CURRENTS 1", -113, "Undefined header"),
        (":SOUR:CURR 5", -222, "Parameter data out of range"),
        (":SOUR:CURR", -109, "Missing parameter"),
        (":OUTP ON, OFF", -108, "Parameter not allowed"),
        (":OUTP:SMOD LOUD", -224, "Illegal parameter value"),
        (":SOUR:VOLT:PROT PROT7", -224, "Illegal parameter value"),
        (':SENS:FUNC VOLT', -104, "Data type error"),
    ])
    async def test_errors_are_logged_with_the_manuals_codes(
            self, smu: Keithley2450Emulator, message: str, code: int, text: str) -> None:
        assert await smu.execute(message) is None
        assert await ask(smu, ":SYST:ERR:COUN?") == "1"
        reply = await ask(smu, ":SYST:ERR?")
        assert reply.startswith(f'{code},"{text};1;')
        assert await ask(smu, ":SYST:ERR?") == '0,"No error;0,0,0"'

    async def test_a_failed_query_gets_no_reply(self, smu: Keithley2450Emulator) -> None:
        assert await smu.execute(":SOUR:CURR:VLIM:TRIPPEDX?") is None
        assert await ask(smu, ":SYST:ERR:CODE?") == "-113"

    async def test_clear_status_and_injected_errors(self, smu: Keithley2450Emulator) -> None:
        smu.inject_error(-300, "Device-specific error")
        await smu.execute(":NOPE")
        assert await ask(smu, ":SYST:ERR:COUN?") == "2"
        assert (await ask(smu, ":SYST:ERR?")).startswith('-300,"Device-specific error;')
        await smu.execute("*CLS")
        assert await ask(smu, ":SYST:ERR:COUN?") == "0"

    async def test_a_tsp_mode_instrument_takes_common_commands_only(self, bench: Bench) -> None:
        smu = Keithley2450Emulator(bench.cells["cell-1"], language="TSP")
        assert await ask(smu, "*LANG?") == "TSP"
        assert await smu.execute(":OUTP ON") is None
        assert not smu.output_on
        assert len(smu.errors) == 1


class TestSourceOnTheCell:
    async def test_cc_charge_clamps_at_its_voltage_limit(
            self, smu: Keithley2450Emulator, bench: Bench) -> None:
        await smu.execute(':SOUR:FUNC CURR;:SOUR:CURR:VLIM 4.1;:SOUR:CURR 0.6;'
                          ':SENS:FUNC "VOLT";:OUTP ON')
        bench.clock.advance(60.0)
        voltage, current, _ = (await ask(smu, ':READ? "defbuffer1", READ, SOUR, REL')).split(",")
        assert float(current) == pytest.approx(0.6)
        assert float(voltage) < 4.1
        assert await ask(smu, ":SOUR:CURR:VLIM:TRIP?") == "0"
        bench.clock.advance(3600.0)
        voltage, current = (await ask(smu, ":READ? 'defbuffer1', READ, SOUR")).split(",")
        assert float(voltage) == pytest.approx(4.1)
        assert 0 < float(current) < 0.6
        assert await ask(smu, ":SOUR:CURR:VLIM:TRIP?") == "1"

    async def test_overvoltage_protection_caps_the_voltage_limit(
            self, smu: Keithley2450Emulator, bench: Bench) -> None:
        await smu.execute(":SOUR:VOLT:PROT PROT2;:SOUR:FUNC CURR;:SOUR:CURR:VLIM 20;"
                          ":SOUR:CURR 0.5;:OUTP ON")
        bench.clock.advance(600.0)
        assert smu.cell.measure().voltage_v == pytest.approx(2.0)
        assert await ask(smu, ":SOUR:VOLT:PROT:TRIP?") == "1"

    async def test_cv_with_a_current_limit(self, smu: Keithley2450Emulator,
                                           bench: Bench) -> None:
        await charge_a_little(smu, bench)
        await smu.execute(':SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 0.05;:SOUR:VOLT 2.5;'
                          ':SENS:FUNC "CURR";:OUTP ON')
        bench.clock.advance(10.0)
        current, voltage = (await ask(smu, ":READ? \"defbuffer1\", READ, SOUR")).split(",")
        assert float(current) == pytest.approx(-0.05)
        assert float(voltage) > 2.5
        assert await ask(smu, ":SOUR:VOLT:ILIM:TRIP?") == "1"

    async def test_the_normal_output_off_state_discharges_the_cell(
            self, smu: Keithley2450Emulator, bench: Bench) -> None:
        await charge_a_little(smu, bench)
        await smu.execute(":OUTP:SMOD NORM;:SOUR:FUNC CURR;:SOUR:CURR 0.6;:OUTP OFF")
        bench.clock.advance(1.0)
        assert smu.cell.measure().current_a == pytest.approx(-0.1)
        await smu.execute(":OUTP:SMOD HIMP")
        bench.clock.advance(1.0)
        assert smu.cell.measure().current_a == 0.0

    async def test_nothing_is_measured_through_an_open_relay(
            self, smu: Keithley2450Emulator) -> None:
        await smu.execute(":OUTP:SMOD HIMP;:OUTP OFF")
        assert await ask(smu, ':READ? "defbuffer1", READ, SOUR') == "9.910000E+37,9.910000E+37"


class TestBuffersAndTriggerModel:
    async def test_relative_times_count_from_the_first_reading(
            self, smu: Keithley2450Emulator, bench: Bench) -> None:
        await smu.execute(':SOUR:FUNC CURR;:SOUR:CURR 0.1;:SENS:FUNC "VOLT";:OUTP ON;'
                          ':TRAC:CLE "defbuffer1"')
        for _ in range(3):
            await smu.execute(':READ? "defbuffer1"')
            bench.clock.advance(10.0)
        assert await ask(smu, ':TRAC:ACT? "defbuffer1"') == "3"
        relative = [float(x) for x in
                    (await ask(smu, ':TRAC:DATA? 1, 3, "defbuffer1", REL')).split(",")]
        assert relative == pytest.approx([0.0, 10.04, 20.08])
        assert await smu.execute(':TRAC:DATA? 2, 4, "defbuffer1"') is None
        assert await ask(smu, ":SYST:ERR:CODE?") == "-222"

    async def test_simple_loop_fills_the_buffer_in_instrument_time(
            self, smu: Keithley2450Emulator) -> None:
        await smu.execute(':SOUR:FUNC CURR;:SOUR:CURR 0.1;:SENS:FUNC "VOLT";:OUTP ON;'
                          ':TRIG:LOAD "SimpleLoop", 5, 0.46, "defbuffer1";:INIT')
        assert await ask(smu, "*OPC?") == "1"
        assert await ask(smu, ":TRIG:STAT?") == "IDLE;IDLE;3"
        assert await ask(smu, ":TRAC:ACT:STAR?;END?") == "1;5"
        fields = (await ask(smu, ':TRAC:DATA? 1, 5, "defbuffer1", READ, SOUR, REL')).split(",")
        relative = [float(x) for x in fields[2::3]]
        assert relative == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
        assert [float(x) for x in fields[1::3]] == pytest.approx([0.1] * 5)

    async def test_abort_stops_a_loop(self, smu: Keithley2450Emulator) -> None:
        await smu.execute(':TRIG:LOAD "SimpleLoop", 1000000, 1;:INIT')
        assert (await ask(smu, ":TRIG:STAT?")).startswith("RUNNING")
        await smu.execute(":ABOR")
        assert (await ask(smu, ":TRIG:STAT?")).startswith("ABORTED")
        await smu.aclose()

    async def test_duration_loop_turns_the_output_on(self, smu: Keithley2450Emulator) -> None:
        await smu.execute(':SOUR:FUNC CURR;:SOUR:CURR 0.05;:TRIG:LOAD "DurationLoop", 1, 0.06')
        assert not smu.output_on
        await smu.execute(":INIT;*WAI")
        assert smu.output_on
        assert await ask(smu, ':TRAC:ACT?') == "10"

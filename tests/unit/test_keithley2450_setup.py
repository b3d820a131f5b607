"""How the Keithley 2450 driver sources each command, its model table, reply parsing and the
instrument clock it builds from relative timestamps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellrig.drivers.keithley2450_models import (
    MODELS,
    ChannelLimits,
    parse_error,
    parse_identity,
    parse_numbers,
)
from cellrig.drivers.keithley2450_setup import (
    SettingRefused,
    SourceSetting,
    setting_commands,
    source_setting,
)
from cellrig.drivers.keithley2450_timebase import RelativeTimebase
from cellrig.protocols.rig import Command, Mode

LIMITS = ChannelLimits(max_voltage_v=4.4, max_current_a=1.0, min_voltage_v=2.5)


class TestSourceSetting:
    @pytest.mark.parametrize(("command", "expected"), [
        (Command(Mode.CURRENT, current_a=0.3, voltage_limit_v=4.25),
         SourceSetting("CURR", 0.3, 4.25)),
        (Command(Mode.CURRENT, current_a=0.3, voltage_limit_v=9.0),
         SourceSetting("CURR", 0.3, 4.4)),
        (Command(Mode.CURRENT, current_a=0.3), SourceSetting("CURR", 0.3, 4.4)),
        (Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=3.0),
         SourceSetting("VOLT", 3.0, 0.3)),
        (Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=2.0),
         SourceSetting("VOLT", 2.5, 0.3)),
        (Command(Mode.CURRENT, current_a=-0.3), SourceSetting("VOLT", 2.5, 0.3)),
        (Command(Mode.VOLTAGE, voltage_v=4.25, current_limit_a=0.6),
         SourceSetting("VOLT", 4.25, 0.6)),
        (Command(Mode.VOLTAGE, voltage_v=4.25), SourceSetting("VOLT", 4.25, 1.0)),
        (Command(Mode.VOLTAGE, voltage_v=4.25, current_limit_a=-0.2),
         SourceSetting("VOLT", 4.25, 0.2)),
        (Command(Mode.REST), SourceSetting("CURR", 0.0, 4.4)),
        (Command(Mode.OFF), None),
    ])
    def test_each_kind_of_command(self, command: Command,
                                  expected: SourceSetting | None) -> None:
        assert source_setting(command, LIMITS) == expected

    def test_without_a_lower_bound_a_discharge_is_a_current(self) -> None:
        limits = ChannelLimits(max_voltage_v=4.4, max_current_a=1.0)
        assert source_setting(Command(Mode.CURRENT, current_a=-0.3), limits) == (
            SourceSetting("CURR", -0.3, 4.4))

    def test_a_cell_already_below_the_bound_is_discharged_as_asked(self) -> None:
        command = Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=3.0)
        assert source_setting(command, LIMITS, present_voltage_v=2.9) == (
            SourceSetting("CURR", -0.3, 4.4))
        assert source_setting(command, LIMITS, present_voltage_v=3.1) == (
            SourceSetting("VOLT", 3.0, 0.3))

    @pytest.mark.parametrize("command", [
        Command(Mode.CURRENT, current_a=1.2), Command(Mode.CURRENT, current_a=math.nan),
        Command(Mode.VOLTAGE, voltage_v=4.5), Command(Mode.VOLTAGE, voltage_v=2.0),
        Command(Mode.POWER, power_w=1.0), Command(Mode.RESISTANCE, resistance_ohm=10.0),
    ])
    def test_what_the_channel_cannot_source(self, command: Command) -> None:
        with pytest.raises(SettingRefused):
            source_setting(command, LIMITS)

    def test_commands_from_off_same_function_and_a_change(self) -> None:
        charge = SourceSetting("CURR", 0.3, 4.25)
        assert setting_commands(charge, None, output_on=False) == [
            ":SOUR:FUNC CURR", ':SENS:FUNC "VOLT"', ":SOUR:CURR:VLIM 4.25", ":SOUR:CURR 0.3",
            ":OUTP ON"]
        rest = SourceSetting("CURR", 0.0, 4.4)
        assert setting_commands(rest, charge, output_on=True) == [
            ":SOUR:CURR:VLIM 4.4", ":SOUR:CURR 0"]
        assert setting_commands(charge, charge, output_on=True) == []
        hold = SourceSetting("VOLT", 4.25, 0.3)
        assert setting_commands(hold, charge, output_on=True) == [
            ":OUTP OFF", ":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', ":SOUR:VOLT:ILIM 0.3",
            ":SOUR:VOLT 4.25", ":OUTP ON"]


class TestModels:
    @pytest.mark.parametrize(("model", "voltage", "setting"), [
        ("2450", 4.4, "PROT5"), ("2450", 2.0, "PROT2"), ("2450", 150.0, "PROT160"),
        ("2450", 200.0, "NONE"), ("2461", 90.0, "NONE"), ("2460", 21.0, "PROT40"),
    ])
    def test_the_lowest_protection_that_lets_the_voltage_through(
            self, model: str, voltage: float, setting: str) -> None:
        assert MODELS[model].protection(voltage) == setting

    def test_channel_limits_are_checked(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            ChannelLimits(max_voltage_v=4.4, max_current_a=0.0)
        with pytest.raises(ValueError, match="min_voltage_v"):
            ChannelLimits(max_voltage_v=4.4, max_current_a=1.0, min_voltage_v=4.5)
        assert ChannelLimits(220.0, 2.0).within(MODELS["2450"]) == [
            "max current 2 A exceeds the 1.05 A of a 2450",
            "max voltage 220 V exceeds the 210 V of a 2450"]

    def test_replies(self) -> None:
        identity = parse_identity("KEITHLEY INSTRUMENTS INC.,MODEL 2460,04365704,1.6.4c\n")
        assert identity is not None and (identity.model, identity.firmware) == ("2460", "1.6.4c")
        assert parse_identity("KEITHLEY,2450") is None
        assert parse_error('-113,"Undefined header;1;2026/01/01 12:00:00.000"') == (
            -113, "Undefined header")
        assert parse_error('0,"No error;0,0,0"') == (0, "No error")
        assert parse_error("garbage") is None
        values = parse_numbers("4.2E+00,9.910000E+37,+1.5e-3")
        assert values is not None and values[0] == 4.2 and math.isnan(values[1])
        assert parse_numbers("4.2,x") is None
        assert parse_numbers("nan") is None


class HostClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class TestTimebase:
    def test_relative_times_become_one_clock_across_restarts(self) -> None:
        host = HostClock()
        timebase = RelativeTimebase(time_scale=10.0, host_clock=host)
        assert timebase.place_one(0.0) == 0.0
        host.now_s += 1.0
        assert timebase.place_one(10.0) == 10.0
        host.now_s += 0.5  # 5 s of instrument time pass, then the buffer is cleared
        timebase.restart(lead_s=0.04)
        times = timebase.place(np.array([0.0, 0.05, 0.1]))
        assert times == pytest.approx([15.04, 15.09, 15.14])

    def test_a_clock_going_back_without_a_restart_carries_on(self) -> None:
        host = HostClock()
        timebase = RelativeTimebase(host_clock=host)
        timebase.place_one(50.0)
        host.now_s += 2.0
        assert timebase.place_one(0.0) == pytest.approx(52.0)

    def test_pacing_in_instrument_time(self) -> None:
        host = HostClock()
        timebase = RelativeTimebase(time_scale=100.0, host_clock=host)
        assert timebase.wait_host_s(1.0) == 0.0
        timebase.place_one(3.0)
        assert timebase.wait_host_s(1.0) == pytest.approx(0.01)
        host.now_s += 0.004
        assert timebase.wait_host_s(1.0) == pytest.approx(0.006)
        assert timebase.now_s() == pytest.approx(3.4)

"""The ESPEC emulator's controller logic, line by line, on a virtual bench clock."""

from __future__ import annotations

import pytest

from cellrig.simulators.bench import BenchClock
from cellrig.simulators.chamber import Chamber, ChamberFault
from cellrig.simulators.espec_emulator import (
    ALARM_DOOR_OPEN,
    ALARM_UPPER_LIMIT,
    EspecEmulator,
)


@pytest.fixture
def clock() -> BenchClock:
    return BenchClock()


@pytest.fixture
def emulator(clock: BenchClock) -> EspecEmulator:
    chamber = Chamber(temperature_c=25.0, setpoint_c=25.0, room_c=23.0)
    return EspecEmulator(chamber, clock, rated_range_c=(-40.0, 150.0))


def test_queries_report_the_chamber(emulator: EspecEmulator) -> None:
    assert emulator.handle("TEMP?") == "25.0,25.0,150.0,-40.0"
    assert emulator.handle("MON?") == "25.0,,CONSTANT,0"
    assert emulator.handle("MODE?") == "CONSTANT"
    assert emulator.handle("ALARM?") == "0"
    assert emulator.handle("TYPE?") == "T,S2,150.0"
    assert emulator.handle("CONSTANT SET?,TEMP") == "25.0,ON"


def test_setpoint_moves_the_chamber_on_the_bench_clock(emulator: EspecEmulator,
                                                       clock: BenchClock) -> None:
    assert emulator.handle("TEMP, S60.0") == "OK:TEMP,S60.0"
    clock.advance(600.0)
    measured_c = float(emulator.handle("TEMP?").split(",")[0])   # type: ignore[union-attr]
    assert 40.0 < measured_c < 60.0
    clock.advance(6 * 3600.0)
    assert emulator.handle("TEMP?") == "60.0,60.0,150.0,-40.0"


def test_standby_lets_the_air_drift_to_room_and_constant_resumes(emulator: EspecEmulator,
                                                                 clock: BenchClock) -> None:
    assert emulator.handle("MODE, STANDBY") == "OK:MODE,STANDBY"
    clock.advance(6 * 3600.0)
    assert emulator.handle("MON?") == "23.0,,STANDBY,0"
    assert emulator.handle("TEMP, S30.0") == "OK:TEMP,S30.0"     # stored, not applied
    clock.advance(3600.0)
    assert emulator.handle("TEMP?") == "23.0,30.0,150.0,-40.0"
    assert emulator.handle("MODE,CONSTANT") == "OK:MODE,CONSTANT"
    clock.advance(6 * 3600.0)
    assert emulator.handle("TEMP?") == "30.0,30.0,150.0,-40.0"
    assert emulator.handle("POWER,OFF") == "OK:POWER,OFF"
    assert emulator.handle("MODE?") == "OFF"


def test_limits_and_refusals(emulator: EspecEmulator) -> None:
    assert emulator.handle("TEMP, S40.0 H80.0 L0.0") == "OK:TEMP,S40.0 H80.0 L0.0"
    assert emulator.handle("TEMP?") == "25.0,40.0,80.0,0.0"
    assert emulator.handle("TEMP, S90.0") == "NA:DATA OUT OF RANGE"
    assert emulator.handle("TEMP, H200.0") == "NA:DATA OUT OF RANGE"
    assert emulator.handle("TEMP, X5") == "NA:PARA ERR"
    assert emulator.handle("MODE,DANCE") == "NA:PARA ERR"
    assert emulator.handle("HUMI?") == "NA:CONT NOT READY-1"
    assert emulator.handle("FLY?") == "NA:CMD ERR"
    emulator.na_replies.append("CHB NOT READY")
    assert emulator.handle("TEMP?") == "NA:CHB NOT READY"
    assert emulator.handle("MODE?") == "CONSTANT"


def test_door_open_and_runaway_raise_alarms(emulator: EspecEmulator, clock: BenchClock) -> None:
    emulator.handle("TEMP, S60.0 H70.0")
    emulator.chamber.inject(ChamberFault.DOOR_OPEN, clock.now_s())
    assert emulator.handle("ALARM?") == f"1,{ALARM_DOOR_OPEN}"
    emulator.chamber.inject(None, clock.now_s())
    assert emulator.handle("ALARM?") == "0"
    emulator.chamber.inject(ChamberFault.RUNAWAY, clock.now_s())
    clock.advance(3600.0)
    assert emulator.handle("ALARM?") == f"1,{ALARM_UPPER_LIMIT}"
    assert emulator.handle("MON?").endswith(",CONSTANT,1")        # type: ignore[union-attr]


def test_rs485_address_selects_the_controller(clock: BenchClock) -> None:
    emulator = EspecEmulator(Chamber(), clock, rs485_address=2)
    assert emulator.handle("1,MODE?") is None
    assert emulator.handle("2,MODE?") == "CONSTANT"
    assert list(emulator.received) == ["MODE?"]

"""The Keithley 2450 driver through real pyvisa-py against the emulator on a bench cell:
identify and configure, constant current, constant voltage, rest, a discharge held at its
lower bound, instrument-timed readings, and every wire fault raising its error with the output
left off (high impedance), checked in the emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.drivers.keithley2450 import Keithley2450
from cellrig.drivers.keithley2450_models import ChannelLimits
from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
    UnsupportedInstrument,
)
from cellrig.protocols.rig import Command, Mode
from cellrig.simulators.bench import Bench, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.integration

SPEED = 200.0
LIMITS = ChannelLimits(max_voltage_v=4.4, max_current_a=1.0, min_voltage_v=2.5)


@dataclass
class Setup:
    bench: Bench
    emulator: Keithley2450Emulator
    server: ScpiServer
    driver: Keithley2450


def bench_with_cell(charged_s: float, speed: float) -> Bench:
    """The default bench, its cell charged at 0.6 A for ``charged_s`` and rested an hour."""
    params = load_builtin_cell()
    cell = CellModel(params, temperature_c=25.0, pressure_pa=2.0e6)
    if charged_s:
        cell.run_current(0.6, [charged_s])
        cell.run_rest([3600.0])
    bench = Bench(BenchClock(scale=speed))
    bench.add_chamber("chamber-1")
    bench.add_cell("cell-1", "chamber-1", cell, pneumatic_jig(params, 2.0e6))
    return bench


@contextlib.asynccontextmanager
async def setup(language: str = "SCPI", charged_s: float = 0.0, speed: float = SPEED,
                **options: object) -> AsyncIterator[Setup]:
    bench = bench_with_cell(charged_s, speed)
    emulator = Keithley2450Emulator(bench.cells["cell-1"], language=language)
    async with ScpiServer(emulator) as server:
        driver = Keithley2450.over_visa(server.resource, limits=LIMITS, timeout_s=0.3,
                                        time_scale=speed, **options)  # type: ignore[arg-type]
        async with driver:
            yield Setup(bench, emulator, server, driver)
            server.faults.silent = False


@pytest.fixture
async def rig() -> AsyncIterator[Setup]:
    async with setup() as made:
        yield made


@pytest.fixture
async def half_charged() -> AsyncIterator[Setup]:
    async with setup(charged_s=1800.0) as made:
        yield made


async def readings(driver: Keithley2450, count: int) -> tuple[np.ndarray, ...]:
    blocks = [await driver.read() for _ in range(count)]
    return tuple(np.concatenate([getattr(b, name) for b in blocks])
                 for name in ("time_s", "voltage_v", "current_a"))


async def test_identify_and_configure(rig: Setup) -> None:
    identity = rig.driver.identity
    assert identity is not None and (identity.manufacturer, identity.model) == (
        "KEITHLEY INSTRUMENTS", "2450")
    smu = rig.emulator
    assert not smu.output_on
    assert smu.off_modes == {"CURRent": "HIMPedance", "VOLTage": "HIMPedance"}
    assert smu.protection_v == 5
    assert (smu.voltage_limit_v, smu.current_limit_a) == (4.4, 1.0)
    assert smu.four_wire == {"CURRent": True, "VOLTage": True}
    assert smu.read_back == {"CURRent": True, "VOLTage": True}
    assert len(smu.errors) == 0
    assert rig.driver.capabilities.max_current_a == 1.0


async def test_a_tsp_mode_instrument_is_refused() -> None:
    with pytest.raises(UnsupportedInstrument, match=r"\*LANG SCPI"):
        async with setup(language="TSP"):
            pass


async def test_constant_current_with_a_voltage_limit(rig: Setup) -> None:
    await rig.driver.apply(Command(Mode.CURRENT, current_a=0.5, voltage_limit_v=4.2,
                                   sample_interval_s=2.0))
    assert rig.emulator.output_on and rig.emulator.source_function == "CURRent"
    assert rig.emulator.voltage_limit_v == 4.2
    time_s, voltage_v, current_a = await readings(rig.driver, 6)
    assert current_a == pytest.approx(0.5, rel=1e-6)
    assert np.all(np.diff(voltage_v) > 0)  # charging
    assert np.all(np.diff(time_s) > 0)
    cell = rig.emulator.cell.measure()
    assert cell.current_a == pytest.approx(0.5)


async def test_constant_voltage_with_a_current_limit(half_charged: Setup) -> None:
    rig = half_charged
    resting = rig.emulator.cell.measure().voltage_v
    await rig.driver.apply(Command(Mode.VOLTAGE, voltage_v=resting + 0.1, current_limit_a=0.05,
                                   sample_interval_s=1.0))
    assert rig.emulator.source_function == "VOLTage"
    _, voltage_v, current_a = await readings(rig.driver, 4)
    # a step of 100 mV drives the limit current at first: the source is clamped
    assert current_a[0] == pytest.approx(0.05, rel=1e-6)
    assert np.all(voltage_v <= resting + 0.1 + 1e-6)


async def test_rest_measures_the_floating_cell(half_charged: Setup) -> None:
    rig = half_charged
    await rig.driver.apply(Command(Mode.REST, sample_interval_s=1.0))
    _, voltage_v, current_a = await readings(rig.driver, 3)
    assert np.all(current_a == 0.0)
    assert voltage_v[-1] == pytest.approx(rig.emulator.cell.measure().voltage_v, abs=2e-3)
    assert voltage_v[-1] == pytest.approx(rig.emulator.cell.cell.ocv_v(), abs=0.05)
    assert rig.emulator.output_on  # on, at 0 A, so the voltage can be measured


async def test_a_discharge_stops_at_its_lower_bound() -> None:
    async with setup(charged_s=1800.0, speed=2000.0, max_poll_interval_s=20.0) as rig:
        await discharge_to_bound(rig)


async def discharge_to_bound(rig: Setup) -> None:
    cell = rig.emulator.cell
    bound_v = cell.measure().voltage_v - 0.6 * cell.cell.dc_resistance_ohm() - 0.05
    await rig.driver.apply(Command(Mode.CURRENT, current_a=-0.6, voltage_limit_v=bound_v,
                                   sample_interval_s=20.0))
    assert rig.emulator.source_function == "VOLTage"  # a sink at the bound
    _, voltage_v, current_a = await readings(rig.driver, 2)
    assert current_a[0] == pytest.approx(-0.6, rel=1e-6)
    # the host only watches: the instrument holds the bound on its own
    while abs(current_a[-1]) > 0.5:
        _, voltage_v, current_a = await readings(rig.driver, 1)
    assert voltage_v[-1] == pytest.approx(bound_v, abs=1e-5)
    assert rig.emulator.in_compliance is False


async def eventually(condition: Callable[[], bool], within_s: float = 1.0) -> None:
    """Wait for the emulator to show ``condition``: a driver call returns once its last command
    is sent, and the instrument (here, the emulator on the same loop) takes it a moment later."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the instrument never got there"
        await asyncio.sleep(0.005)


async def test_fast_readings_are_timed_by_the_instrument() -> None:
    async with setup(speed=4.0) as rig:
        await fast_readings(rig)


async def fast_readings(rig: Setup) -> None:
    await rig.driver.apply(Command(Mode.CURRENT, current_a=0.2, sample_interval_s=0.045))
    await eventually(lambda: rig.emulator.trigger.template == "SimpleLoop")
    time_s, _, current_a = await readings(rig.driver, 4)
    assert len(time_s) > 10
    spacing = np.diff(time_s[1:])
    assert np.all(spacing > 0)
    assert spacing.mean() == pytest.approx(0.045, rel=0.1)
    assert current_a == pytest.approx(0.2, rel=1e-6)
    await rig.driver.end_step(float(time_s[-1]))
    await eventually(lambda: rig.emulator.trigger.state == "ABORTED")


def drop(server: ScpiServer, emulator: Keithley2450Emulator) -> None:
    server.faults.drop_mid_reply = 2


def garble(server: ScpiServer, emulator: Keithley2450Emulator) -> None:
    server.faults.garble_replies = 2


def silence(server: ScpiServer, emulator: Keithley2450Emulator) -> None:
    server.faults.silent = True


def report(server: ScpiServer, emulator: Keithley2450Emulator) -> None:
    emulator.inject_error(-300, "Device-specific error")


@pytest.mark.parametrize(("fault", "error"), [
    (drop, ConnectionLost), (garble, MalformedReply), (silence, InstrumentTimeout),
    (report, InstrumentReported),
])
async def test_each_wire_fault_raises_its_error_and_the_output_ends_off(
        rig: Setup, fault: object, error: type[InstrumentError]) -> None:
    await rig.driver.apply(Command(Mode.CURRENT, current_a=0.3, sample_interval_s=1.0))
    await rig.driver.read()
    assert rig.emulator.output_on
    fault(rig.server, rig.emulator)  # type: ignore[operator]
    with pytest.raises(error) as caught:
        await rig.driver.read()
    assert caught.value.instrument == "keithley-2450"
    assert caught.value.address == rig.server.resource
    assert caught.value.command is not None
    if error is InstrumentTimeout:  # the box does not answer: off is sent, not confirmed
        with pytest.raises(InstrumentTimeout):
            await rig.driver.safe()
    else:
        await rig.driver.safe()
    assert not rig.emulator.output_on
    assert rig.emulator.off_modes["CURRent"] == "HIMPedance"
    assert rig.emulator.cell.measure().current_a == 0.0


async def test_a_single_bad_reply_is_retried_and_the_step_goes_on(rig: Setup) -> None:
    await rig.driver.apply(Command(Mode.CURRENT, current_a=0.3, sample_interval_s=1.0))
    await rig.driver.read()  # the reading apply took
    rig.server.faults.garble_replies = 1
    block = await rig.driver.read()
    assert block.current_a[0] == pytest.approx(0.3, rel=1e-6)
    rig.server.faults.drop_mid_reply = 1
    block = await rig.driver.read()
    assert block.current_a[0] == pytest.approx(0.3, rel=1e-6)
    assert rig.server.connections == 2
    assert rig.emulator.output_on


async def test_opened_without_a_reset_a_sourcing_instrument_is_read_and_kept(
        half_charged: Setup) -> None:
    rig = half_charged
    discharge = Command(Mode.CURRENT, current_a=-0.3, voltage_limit_v=3.0)
    await rig.driver.apply(discharge)  # a voltage source at 3.0 V sinking at most 0.3 A
    await rig.driver.read()
    await rig.bench.clock.sleep(60.0)
    # a restarted daemon opens the instrument again, its job to resume
    again = Keithley2450.over_visa(rig.server.resource, limits=LIMITS, timeout_s=0.3,
                                   time_scale=SPEED, reset_on_open=False)
    async with again:
        found = again.found_state
        assert found is not None and found.output_on and found.mode is Mode.VOLTAGE
        assert (found.level, found.limit) == (pytest.approx(3.0), pytest.approx(0.3))
        assert found.in_compliance and found.current_a == pytest.approx(-0.3, rel=1e-6)
        assert found.voltage_v > 3.0 and found.time_scale == SPEED
        # the instrument's own time since the other connection's last reading
        assert found.since_last_reading_s is not None and found.since_last_reading_s >= 60.0
        assert again.sources(found, discharge)
        assert not again.sources(found, Command(Mode.CURRENT, current_a=-0.2,
                                                voltage_limit_v=3.0))
        assert not again.sources(found, Command(Mode.REST))
        received = rig.emulator.commands_received
        at_s = await again.apply(discharge)
        assert rig.emulator.commands_received == received + 1  # its reading, no setting
        assert at_s > found.time_s and rig.emulator.output_on
        assert rig.emulator.source_function == "VOLTage"
        state = await again.source_state()  # queries only: it still sources the same
        assert state.output_on and state.level == pytest.approx(3.0)
    assert not rig.emulator.output_on  # closing switches it off, as ever


async def test_opened_without_a_reset_an_instrument_found_off_is_reset(rig: Setup) -> None:
    await rig.driver.safe()
    await rig.emulator.execute(":SOUR:FUNC VOLT")  # left in another state by someone
    again = Keithley2450.over_visa(rig.server.resource, limits=LIMITS, timeout_s=0.3,
                                   time_scale=SPEED, reset_on_open=False)
    async with again:
        assert again.found_state is None
        assert rig.emulator.source_function == "CURRent"  # configured afresh
        assert rig.emulator.off_modes == {"CURRent": "HIMPedance", "VOLTage": "HIMPedance"}

"""The PalmSens driver against its emulator through real pyserial transports (a pseudo-terminal
and a ``socket://`` URL), on an accelerated bench: rest, constant current to a voltage cut-off,
a constant-voltage hold, an EIS sweep whose fit recovers the cell model's resistances, and every
injected wire fault — each raises its error and leaves the cell at open circuit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.daemon.eis_fit import fit_spectrum
from cellrig.drivers.palmsens import PalmSens
from cellrig.errors import ConnectionLost, InstrumentReported, InstrumentTimeout, MalformedReply
from cellrig.protocols.program import Condition, EisMode, EisStep, Operator, Quantity
from cellrig.protocols.rig import Block, Command, Mode
from cellrig.simulators.bench import Bench, BenchCell, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.palmsens_emulator import PalmSensEmulator

pytestmark = pytest.mark.integration

SPEED = 200.0


@dataclass
class Setup:
    emulator: PalmSensEmulator
    channel: PalmSens
    cell: BenchCell
    transport: str

    def assert_open_circuit(self) -> None:
        """The emulated instrument has the cell off and the bench cell carries no current."""
        assert not self.emulator.running
        assert not self.emulator.cell_on
        assert self.cell.measure().current_a == 0.0


def half_charged_bench(speed: float) -> tuple[Bench, BenchCell]:
    """One pouch cell, charged to about half and rested, in a pneumatic jig at 2 MPa."""
    bench = Bench(BenchClock(speed))
    bench.add_chamber("chamber-1")
    params = load_builtin_cell()
    model = CellModel(params, temperature_c=25.0)
    model.run_current(0.3, [3600.0])
    model.run_rest([1800.0])
    jig = pneumatic_jig(params, 2.0e6, bench.clock.now_s())
    return bench, bench.add_cell("cell-1", "chamber-1", model, jig)


@asynccontextmanager
async def serving(transport: str, speed: float) -> AsyncIterator[Setup]:
    """The emulator on a half-charged bench cell, and the driver connected to it."""
    _, cell = half_charged_bench(speed)
    emulator = PalmSensEmulator(cell)
    address = await emulator.start_tcp() if transport == "tcp" else emulator.start_pty()
    channel = PalmSens(address, time_scale=speed, timeout_s=0.5, abort_timeout_s=0.5)
    try:
        await channel.open()
        yield Setup(emulator, channel, cell, transport)
    finally:
        emulator.faults.silent = False
        await channel.__aexit__(None, None, None)
        await emulator.close()


@pytest.fixture(params=["tcp", "pty"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    async with serving(request.param, SPEED) as served:
        yield served


@pytest.fixture(params=["tcp", "pty"])
async def fast_setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    """Ten times faster, for an EIS sweep down to 10 mHz (about 1000 s of bench time)."""
    async with serving(request.param, 10 * SPEED) as served:
        yield served


async def read_until_done(channel: PalmSens, limit: int = 10_000) -> list[Block]:
    blocks = []
    for _ in range(limit):
        block = await channel.read()
        blocks.append(block)
        if block.done:
            return blocks
    raise AssertionError("the loop did not end")


def joined(blocks: list[Block]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([b.time_s for b in blocks]),
            np.concatenate([b.voltage_v for b in blocks]),
            np.concatenate([b.current_a for b in blocks]))


async def test_identity_through_the_transport(setup: Setup) -> None:
    assert setup.channel.identity is not None
    assert setup.channel.identity.model == "Nexus"
    assert setup.channel.capabilities.max_current_a == 1.0


async def test_rest_reads_the_open_circuit_voltage(setup: Setup) -> None:
    resting_v = setup.cell.measure().voltage_v
    started = await setup.channel.apply(Command(
        Mode.REST, sample_interval_s=1.0,
        until=(Condition(Quantity.TIME, Operator.AT_LEAST, 5.0),)))
    time_s, voltage_v, current_a = joined(await read_until_done(setup.channel))
    assert len(time_s) == 5
    assert np.all(current_a == 0.0)
    assert voltage_v == pytest.approx(resting_v, abs=2e-3)
    # readings every second of bench time, the last at 5 s; at 200 times real time each
    # millisecond of event-loop latency delays a reading by 0.2 s
    assert np.all(np.diff(time_s) > 0)
    assert 4.9 < time_s[-1] - started < 10.0
    setup.assert_open_circuit()


@pytest.mark.parametrize("transport", ["tcp", "pty"])
async def test_constant_current_ends_at_the_voltage_cutoff_where_the_model_says(
        transport: str) -> None:
    current_a, interval_s, speed = 0.1, 30.0, 400.0
    async with serving(transport, speed) as setup:
        cutoff_v = setup.cell.measure().voltage_v + 0.1
        predicted_s = setup.cell.cell.time_to_voltage(current_a, cutoff_v, 7200.0)
        assert predicted_s is not None and 400.0 < predicted_s < 800.0
        started = await setup.channel.apply(Command(
            Mode.CURRENT, current_a=current_a, voltage_limit_v=4.4,
            sample_interval_s=interval_s,
            until=(Condition(Quantity.VOLTAGE, Operator.AT_LEAST, cutoff_v),)))
        blocks = await read_until_done(setup.channel)
        time_s, voltage_v, measured_a = joined(blocks)
        assert blocks[-1].done and len(blocks[-1]) == 0
        assert voltage_v[-1] > cutoff_v > voltage_v[-2]
        assert measured_a == pytest.approx(current_a, rel=1e-3)
        # The device ended the loop at the first reading past the cut-off: after the model's
        # own crossing time and within one interval of it, plus what the event loop's latency
        # (milliseconds, seconds of bench time at 400 times real time) adds.
        late_s = time_s[-1] - started - predicted_s
        assert -2.0 < late_s < interval_s + 10.0
        setup.assert_open_circuit()


async def test_constant_voltage_hold_draws_a_decaying_current(setup: Setup) -> None:
    hold_v = setup.cell.measure().voltage_v + 0.05
    await setup.channel.apply(Command(Mode.VOLTAGE, voltage_v=hold_v, current_limit_a=0.5,
                                      sample_interval_s=2.0))
    blocks = [await setup.channel.read() for _ in range(10)]
    _, voltage_v, current_a = joined(blocks)
    assert voltage_v == pytest.approx(hold_v, abs=1e-3)
    assert np.all(current_a > 0) and current_a[-1] < current_a[0]
    assert setup.emulator.cell_on
    await setup.channel.end_step(float(blocks[-1].time_s[-1]))
    setup.assert_open_circuit()


async def test_eis_sweep_fit_recovers_the_models_resistances(fast_setup: Setup) -> None:
    setup = fast_setup
    resting_v = setup.cell.measure().voltage_v
    circuit = setup.cell.cell.circuit()
    bulk_ohm = (circuit.electrolyte_ohm + circuit.contact_ohm
                + 0.5 * float(circuit.lithiation_at(setup.cell.cell.state.cathode_ah)))
    step = EisStep(id=1, label="EIS", mode=EisMode.POTENTIOSTATIC, start_hz=1e6, stop_hz=0.01,
                   points_per_decade=10, amplitude=0.01)
    spectrum = await setup.channel.eis(step)
    assert len(spectrum.frequency_hz) == 81
    assert spectrum.meta["ocv_v"] == pytest.approx(resting_v, abs=5e-3)
    fit = fit_spectrum(spectrum, "R0-p(R1,CPE1)-p(R2,CPE2)-W3",
                       area_m2=setup.cell.cell.params.area_m2)
    assert fit.bulk_resistance_ohm == pytest.approx(bulk_ohm, rel=0.05)
    assert fit.interfacial_resistance_ohm == pytest.approx(circuit.interface_ohm, rel=0.05)
    assert fit.relative_rms < 0.01
    setup.assert_open_circuit()


async def start_long_charge(setup: Setup) -> None:
    await setup.channel.apply(Command(Mode.CURRENT, current_a=0.1, voltage_limit_v=4.4,
                                      sample_interval_s=1.0))
    for _ in range(3):
        await setup.channel.read()
    assert setup.emulator.cell_on


async def keep_reading(setup: Setup, limit: int = 200) -> None:
    """Read on: readings sent before the fault come first."""
    for _ in range(limit):
        await setup.channel.read()


async def test_dropped_connection(setup: Setup) -> None:
    if setup.transport == "pty":
        pytest.skip("a pseudo-terminal has no connection to drop")
    await start_long_charge(setup)
    setup.emulator.drop_connection(after_lines=0)
    with pytest.raises(ConnectionLost) as caught:
        await keep_reading(setup)
    assert caught.value.command == "meas_loop_cp"
    setup.assert_open_circuit()
    await setup.channel.safe()


async def test_garbage_reply(setup: Setup) -> None:
    await start_long_charge(setup)
    setup.emulator.faults.garble_replies = 1
    with pytest.raises(MalformedReply):
        await keep_reading(setup)
    setup.assert_open_circuit()
    await setup.channel.safe()


async def test_instrument_stops_answering(setup: Setup) -> None:
    await start_long_charge(setup)
    setup.emulator.faults.silent = True
    with pytest.raises(InstrumentTimeout):
        await keep_reading(setup)
    setup.assert_open_circuit()
    setup.emulator.faults.silent = False
    await asyncio.sleep(0.1)
    await setup.channel.safe()


async def test_instrument_reports_an_error(setup: Setup) -> None:
    await start_long_charge(setup)
    setup.emulator.inject_error(0x0032)
    with pytest.raises(InstrumentReported) as caught:
        await keep_reading(setup)
    assert caught.value.code == 0x0032
    setup.assert_open_circuit()
    await setup.channel.safe()

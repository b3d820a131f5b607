"""The step engine runs a CC-CV charge on the Keithley 2450 driver, through pyvisa-py, against
the emulator on an accelerated bench; the charge ends where the cell model, run directly, says.
A wire fault during a job fails it and leaves the emulated output off."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from cellrig.drivers.keithley2450 import Keithley2450
from cellrig.drivers.keithley2450_models import ChannelLimits
from cellrig.errors import CellrigError
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobState, ListSink
from cellrig.protocols.program import EisStep, Program
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import Block, Capabilities, Command, Spectrum
from cellrig.simulators.bench import Bench, BenchClock
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.keithley2450_emulator import Keithley2450Emulator
from cellrig.simulators.scpi_server import ScpiServer

pytestmark = pytest.mark.integration

SPEED = 4000.0
CUTOFF_C = 0.05
UPPER_V = 4.25


@dataclass
class SourceOnlyRig:
    """The engine's rig port with a potentiostat and nothing else."""

    potentiostat: Keithley2450

    @property
    def capabilities(self) -> Capabilities:
        return self.potentiostat.capabilities

    async def apply(self, command: Command) -> float:
        return await self.potentiostat.apply(command)

    async def read(self) -> Block:
        return await self.potentiostat.read()

    async def end_step(self, at_time_s: float) -> None:
        await self.potentiostat.end_step(at_time_s)

    async def safe(self) -> None:
        await self.potentiostat.safe()

    async def set_environment(self, temperature_c: float | None,
                              pressure_pa: float | None) -> None:
        raise CellrigError("this rig has no chamber or jig")

    async def eis(self, step: EisStep) -> Spectrum:
        raise CellrigError("this rig has no EIS unit")


@dataclass
class Station:
    bench: Bench
    emulator: Keithley2450Emulator
    server: ScpiServer
    driver: Keithley2450


@contextlib.asynccontextmanager
async def open_station(timeout_s: float) -> AsyncIterator[Station]:
    bench = Bench.default(BenchClock(scale=SPEED))
    emulator = Keithley2450Emulator(bench.cells["cell-1"])
    async with ScpiServer(emulator) as server:
        driver = Keithley2450.over_visa(
            server.resource, limits=ChannelLimits(max_voltage_v=4.4, max_current_a=1.0),
            timeout_s=timeout_s, time_scale=SPEED, max_poll_interval_s=10.0)
        async with driver:
            yield Station(bench, emulator, server, driver)
            server.faults.silent = False


def charge_program(capacity_ah: float, steps: str) -> Program:
    text = (f"cellrig: 1\nname: keithley-cccv\ncell: {{capacity: {capacity_ah * 1000:.4f} mAh}}\n"
            f"record: {{every: 10 s}}\nsteps:\n{steps}")
    return resolve(load_protocol_text(text, "keithley-cccv.yaml"))


def model_cccv(current_a: float, cutoff_a: float) -> tuple[float, float, float]:
    """CC to 4.25 V then CV to the cut-off on the cell model directly, advanced in short
    segments as the bench advances it between readings (the model's self-heating enters
    segment by segment): CC time, CV time and the charge passed."""
    model = CellModel(load_builtin_cell(), temperature_c=25.0, pressure_pa=2.0e6)
    cc_s = cv_s = 0.0
    while True:
        voltage, _ = model.run_current(current_a, [5.0])
        cc_s += 5.0
        if voltage[-1] >= UPPER_V:
            break
    while True:
        current = model.run_voltage(UPPER_V, [30.0])
        cv_s += 30.0
        if abs(current[-1]) <= cutoff_a:
            break
    return cc_s, cv_s, model.state.charge_in_ah


def column(sink: ListSink, name: str) -> np.ndarray:
    return np.concatenate([block.columns[name] for block in sink.blocks])


async def test_cccv_charge_ends_where_the_model_says() -> None:
    async with open_station(timeout_s=1.0) as station:
        await cccv_charge(station)


async def cccv_charge(station: Station) -> None:
    capacity_ah = station.bench.cells["cell-1"].cell.params.capacity_ah
    program = charge_program(
        capacity_ah, f"  - cccv: {{current: 1C, voltage: {UPPER_V} V, cutoff: {CUTOFF_C}C}}\n")
    sink = ListSink(keep_checkpoints=False)
    outcome = await Engine(program, SourceOnlyRig(station.driver), sink).run()
    assert outcome.state is JobState.COMPLETED, outcome.reason

    cc_s, cv_s, charge_ah = model_cccv(capacity_ah, CUTOFF_C * capacity_ah)
    test_time = column(sink, "Test Time / s")
    voltage = column(sink, "Voltage / V")
    current = column(sink, "Current / A")
    charged = column(sink, "Charging Capacity / Ah")
    step_type = column(sink, "Step Type")

    # The end: the current at the cut-off, at the voltage, after as long as the model takes,
    # the charge the model says in the cell.
    assert abs(current[-1]) == pytest.approx(CUTOFF_C * capacity_ah, rel=0.05)
    assert voltage[-1] == pytest.approx(UPPER_V, abs=2e-3)
    assert test_time[-1] == pytest.approx(cc_s + cv_s, rel=0.02)
    assert station.bench.cells["cell-1"].cell.state.charge_in_ah == pytest.approx(
        charge_ah, rel=0.005)
    # The record misses what flowed between the step's last reading and the CV command (the
    # host's latency, times 4000 here): within 2 %.
    assert charged[-1] == pytest.approx(charge_ah, rel=0.02)
    # The switch to CV: where the model reaches 4.25 V at 1 C.
    first_cv = int(np.argmax(step_type == "CV_CHG"))
    assert test_time[first_cv - 1] == pytest.approx(cc_s, abs=40.0)
    assert np.all(current[:first_cv] == pytest.approx(capacity_ah, rel=1e-4))
    # Host-polled readings, about every 10 s of instrument time at 4000 times real speed.
    assert 100 < len(test_time) < 2000
    # The job ends with the output off, high impedance.
    assert not station.emulator.output_on
    assert station.emulator.off_modes["CURRent"] == "HIMPedance"


async def test_a_silent_instrument_fails_the_job_and_the_output_ends_off() -> None:
    async with open_station(timeout_s=0.2) as station:
        await silent_instrument(station)


async def silent_instrument(station: Station) -> None:
    capacity_ah = station.bench.cells["cell-1"].cell.params.capacity_ah
    program = charge_program(capacity_ah, "  - Charge at 0.5C for 2 hours\n")
    sink = ListSink(keep_checkpoints=False)
    job = asyncio.create_task(Engine(program, SourceOnlyRig(station.driver), sink).run())
    while not sink.blocks:
        await asyncio.sleep(0.005)
    assert station.emulator.output_on
    station.server.faults.silent = True
    outcome = await asyncio.wait_for(job, timeout=20.0)
    assert outcome.state is JobState.FAILED
    assert "no reply" in outcome.reason
    # safe() could not confirm (the instrument does not answer), but the commands went through.
    assert not station.emulator.output_on
    assert station.emulator.off_modes["CURRent"] == "HIMPedance"
    assert math.isclose(station.emulator.cell.measure().current_a, 0.0, abs_tol=1e-12)

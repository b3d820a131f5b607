"""The emulated MethodSCRIPT device on a virtual bench clock: its replies to commands, its
parse errors with code and position, and scripts run against a bench cell."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from cellrig.drivers.methodscript_codec import LineKind, classify, decode_packet
from cellrig.drivers.methodscript_scripts import (
    Cutoff,
    Ranges,
    chronoamperometry,
    chronopotentiometry,
    impedance_sweep,
    open_circuit,
)
from cellrig.simulators.bench import Bench, BenchClock
from cellrig.simulators.methodscript_parser import ScriptError, parse_script
from cellrig.simulators.methodscript_runner import Noise
from cellrig.simulators.palmsens_emulator import PalmSensEmulator

RANGES = Ranges(1.0, 10.0)


class Recorder:
    """A line session that keeps what the device sends."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def send_line(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
async def emulator() -> PalmSensEmulator:
    bench = Bench.default(BenchClock())
    return PalmSensEmulator(bench.cells["cell-1"], noise=Noise(0.0, 0.0, 0.0))


async def send(emulator: PalmSensEmulator, session: Recorder, *lines: str) -> None:
    for line in lines:
        await emulator.on_line(line, session)


async def run(emulator: PalmSensEmulator, script: list[str]) -> list[str]:
    session = Recorder()
    await send(emulator, session, "e", *script, "")
    while emulator.running:
        await asyncio.sleep(0)
    return session.lines


def packets(lines: list[str]) -> list[list[float]]:
    return [[v.value for v in decode_packet(line).variables] for line in lines
            if classify(line) is LineKind.PACKET]


async def test_online_commands(emulator: PalmSensEmulator) -> None:
    session = Recorder()
    await send(emulator, session, "t", "i", "Z", "q", "", "hello")
    assert session.lines == ["tnexus114#Sep 30 2025 12:00:00", "R*", "iNX24A0042", "Z!0006",
                             "q!0003", "h!0003"]


@pytest.mark.parametrize(("script", "code", "line", "column"), [
    (["var p", "frobnicate p"], 0x4001, 2, 1),
    (["var p", "  meas_loop_ocp q 100m 1", "endloop"], 0x420B, 2, 17),
    (["var p", "var p"], 0x4026, 2, 5),
    (["var p", "meas_loop_ocp p 100m 1", "  meas_loop_ocp p 100m 1", "  endloop", "endloop"],
     0x400B, 3, 3),
    (["var p", "meas_loop_ocp p 100m 1", "  pck_start"], 0x4018, 3, 1),
    (["breakloop"], 0x4004, 1, 1),
    (["set_e 4.25"], 0x4039, 1, 7),
    (["set_range AB 1"], 0x0002, 1, 11),
    (["cell_on 1"], 0x4004, 1, 9),
    (["set_autoranging ba 1n"], 0x4018, 1, 1),
    (["var p", "if p >> 1", "endif"], 0x4004, 2, 1),
])
def test_parse_errors_carry_the_devices_code_and_position(
        script: list[str], code: int, line: int, column: int) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(script)
    assert (caught.value.code, caught.value.line, caught.value.column) == (code, line, column)


async def test_a_refused_script_answers_e_with_the_error(emulator: PalmSensEmulator) -> None:
    lines = await run(emulator, ["var p", "frobnicate p"])
    assert lines == ["e!4001: Line 2, Col 1"]
    assert not emulator.running and not emulator.cell_on


async def test_constant_current_ends_at_the_cutoff_and_switches_off(
        emulator: PalmSensEmulator) -> None:
    script = chronopotentiometry(0.6, 10.0, 3600.0, RANGES, (Cutoff(3.5, rising=True),))
    lines = await run(emulator, script)
    assert lines[:2] == ["e", "M000A"] and lines[-2:] == ["*", ""]
    readings = packets(lines)
    times = [r[0] for r in readings]
    voltages = [r[1] for r in readings]
    assert times == pytest.approx([10.0 * (k + 1) for k in range(len(times))])
    assert voltages[-1] > 3.5 > voltages[-2]
    assert all(r[2] == pytest.approx(0.6) for r in readings)
    assert not emulator.cell_on
    assert emulator.device.cell.measure().current_a == 0.0


async def test_constant_voltage_caps_the_current_at_the_range(
        emulator: PalmSensEmulator) -> None:
    lines = await run(emulator, chronoamperometry(3.9, 5.0, 30.0, Ranges(0.1, 10.0)))
    readings = packets(lines)
    assert len(readings) == 6
    assert all(0 < r[2] <= 0.1 * (1 + 1e-9) for r in readings)


async def test_rest_with_the_cell_on_is_a_device_error(emulator: PalmSensEmulator) -> None:
    script = open_circuit(1.0, 5.0, RANGES)
    script.insert(script.index("timer_start"), "cell_on")
    lines = await run(emulator, script)
    assert lines[-1] == f"!0014: Line {script.index('meas_loop_ocp p 1 5') + 1}"
    assert not emulator.cell_on


async def test_an_injected_error_stops_the_loop_and_the_cell(emulator: PalmSensEmulator) -> None:
    emulator.inject_error(0x0032)
    script = chronopotentiometry(0.1, 1.0, 100.0, RANGES)
    lines = await run(emulator, script)
    assert lines == ["e", "M000A", f"!0032: Line {script.index('meas_loop_cp p i 100m 1 100') + 1}"]
    assert not emulator.cell_on


async def test_abort_ends_the_script_with_z_loop_end_and_empty_line(
        emulator: PalmSensEmulator) -> None:
    session = Recorder()
    await send(emulator, session, "e", *chronopotentiometry(0.1, 1.0, 1e6, RANGES), "")
    for _ in range(5):
        await asyncio.sleep(0)
    assert emulator.running and emulator.cell_on
    await send(emulator, session, "t")
    assert session.lines[-1] == "t!0006"
    await send(emulator, session, "Z")
    assert session.lines[-3:] == ["Z", "*", ""]
    assert not emulator.running and not emulator.cell_on


async def test_eis_is_the_cell_models_impedance(emulator: PalmSensEmulator) -> None:
    script = impedance_sweep(1e5, 0.1, 7, 0.01, RANGES)
    lines = await run(emulator, script)
    assert [line for line in lines if line and line[0] in "M*"] == ["M000B", "*", "M000D", "*"]
    ocv = [p for p in packets(lines) if len(p) == 1]
    points = np.array([p for p in packets(lines) if len(p) == 4])
    assert len(ocv) == 10 and 0.5 < ocv[-1][0] < 5.0
    frequency = points[:, 1]
    assert frequency == pytest.approx(np.geomspace(1e5, 0.1, 7))
    expected = emulator.device.cell.impedance(frequency)
    assert points[:, 2] == pytest.approx(expected.real, rel=1e-5)
    assert points[:, 3] == pytest.approx(expected.imag, rel=1e-4, abs=1e-7)
    assert np.all(np.diff(points[:, 0]) > 0)
    assert not emulator.cell_on

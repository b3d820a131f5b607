"""Benches on the wire: the default bench (one cell with one of every instrument kind) and a
bench file (two cells, a Watlow F4T and an ESPEC chamber, a bolted jig, a PalmSens
potentiostat, every serial instrument but one on a pseudo-terminal), served by their
emulators; the written ``station.toml`` loaded by ``load_station``, opened by ``open_station``
with the real drivers (pyvisa-py, pyserial, pymodbus), and a short charge run through the
engine on one channel. Cells in the room, formed alike; ``cellrig sim serve --bench`` in a
process of its own, and a bench file with a mistake."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from cellrig.daemon.cli import main
from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station, load_station_text
from cellrig.errors import Severity
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobOutcome, JobState, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import JigKind
from cellrig.simulators.bench_file import load_bench_text
from cellrig.simulators.bench_spec import default_bench
from cellrig.simulators.sim_station import serve_bench

pytestmark = pytest.mark.integration

SPEED = 300.0
CHARGE = """cellrig: 1
name: short-charge
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V], temperature: [0 degC, 60 degC]}
record: {every: 10 s}
steps:
  - Charge at 0.5C for 5 minutes
"""
BENCH = """cellrig-bench: 1
name: two-cells
chambers:
  oven: {kind: watlow-f4t, temperature: 30 degC}
  espec: {kind: espec, temperature: 40 degC, transport: pty}
cells:
  A1:
    state: formed
    chamber: oven
    potentiostat: keithley2450
    jig: {kind: pneumatic, pressure: 3 MPa, transport: pty}
  A2:
    cell: pouch-2x2cm
    chamber: espec
    potentiostat: {kind: palmsens, transport: pty}
    jig: {kind: bolted, preload: 2.5 MPa}
eis:
  eis-A1: {cell: A1, transport: pty}
"""


#: Bounds on what the tests wait for, each well inside pytest's 300 s timeout: the charge (1 s
#: of real time at SPEED), the station's pollers and watchdogs stopping once cancelled, and a
#: whole test (emulators started, cells formed, instruments opened and closed).
CHARGE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 150.0


@contextlib.asynccontextmanager
async def within(seconds: float, what: str) -> AsyncIterator[None]:
    """Fail with a message naming ``what`` if the block takes longer than ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        pytest.fail(f"{what} did not finish within {seconds:g} s")


async def charge(station: Station, channel: str) -> tuple[JobOutcome, ListSink]:
    """The short charge on one channel, its supervisor watching (the station's pollers and
    watchdogs run meanwhile, and must stop when cancelled)."""
    built = station.channels[channel]
    program = resolve(load_protocol_text(CHARGE, "charge.yaml"))
    assert built.refusals(program) == []
    built.supervisor.begin_job(program.limits)
    sink = ListSink(keep_checkpoints=False)
    running = asyncio.create_task(station.run(), name="station.run")
    try:
        async with within(CHARGE_TIMEOUT_S, f"the charge on {channel}"):
            outcome = await Engine(program, built.rig, sink, station.clock).run()
    finally:
        built.supervisor.end_job()
        built.rig.release_environment()
        # not a task group: one that waits for a poll loop deaf to its cancellation waits
        # for ever (a Modbus reply arriving with the cancel once made a poller lose it)
        running.cancel()
        stopped, _ = await asyncio.wait([running], timeout=STOP_TIMEOUT_S)
    assert stopped, (f"the station's pollers and watchdogs were still running "
                     f"{STOP_TIMEOUT_S:g} s after being cancelled: {running!r}")
    assert running.cancelled(), running.exception()
    return outcome, sink


async def test_the_default_bench_opens_with_the_real_drivers_and_runs_a_charge() -> None:
    async with within(TEST_TIMEOUT_S, "the default bench's test"), \
            serve_bench(default_bench(), SPEED) as sim:
        kinds = {(instrument.kind, instrument.name) for instrument in sim.instruments}
        assert kinds == {("espec", "chamber"), ("watlow-f4t", "chamber-2"),
                         ("keithley2450", "smu-A1"), ("alicat", "regulator-A1"),
                         ("mark10", "gauge-A1"), ("palmsens", "eis")}
        text = sim.station_toml()
        config = load_station_text(text, "sim.toml")
        assert [w.message for w in config.warnings if w.severity is Severity.WARNING]
        assert any("chamber-2" in warning.message for warning in config.warnings)
        async with open_station(config) as station:
            assert list(station.channels) == ["A1"] and not station.unavailable
            channel = station.channels["A1"]
            assert channel.rig.capabilities.eis
            assert channel.jig is not None and channel.jig.kind is JigKind.CONTROLLED
            outcome, sink = await charge(station, "A1")
        assert outcome.state is JobState.COMPLETED, outcome.reason
        times = sink.column("Test Time / s")
        assert times[-1] == pytest.approx(300.0, abs=15.0)
        assert np.median(sink.column("Current / A")[times > 0]) == pytest.approx(0.3, rel=0.01)
        assert np.abs(sink.column("Applied Pressure / Pa") - 2e6).max() < 0.1e6
        # the charge reached the emulated cell
        assert sim.bench.cells["A1"].cell.state.charge_in_ah == pytest.approx(0.025, rel=0.05)
        # the Watlow chamber opens with its driver too, once a channel names it
        moved = text.replace('chamber = "chamber"', 'chamber = "chamber-2"')
        async with open_station(load_station_text(moved, "moved.toml")) as station:
            assert list(station.chambers) == ["chamber-2"] and not station.unavailable
            assert station.chambers["chamber-2"].fresh_value(3.0) == pytest.approx(25.0,
                                                                                   abs=0.5)


async def test_a_bench_file_with_two_cells_a_watlow_and_a_bolted_jig(tmp_path: Path) -> None:
    spec = load_bench_text(BENCH, "two-cells.yaml", tmp_path)
    async with within(TEST_TIMEOUT_S, "the two-cell bench's test"), \
            serve_bench(spec, SPEED) as sim:
        addresses = {instrument.name: instrument.address for instrument in sim.instruments}
        assert addresses["oven"].startswith("127.0.0.1:")
        on_pty = ["espec", "regulator-A1", "gauge-A1", "palmsens-A2", "eis-A1"]
        assert all(addresses[name].startswith("/dev/") for name in on_pty), addresses
        assert addresses["gauge-A2"].startswith("socket://127.0.0.1:")
        assert "regulator-A2" not in addresses
        config_path = tmp_path / "station.toml"
        config_path.write_text(sim.station_toml(data_folder=str(tmp_path)), encoding="utf-8")
        config = load_station(config_path)
        assert config.name == "two-cells" and not config.warnings
        async with open_station(config) as station:
            assert list(station.channels) == ["A1", "A2"] and not station.unavailable
            bolted = station.channels["A2"]
            assert bolted.jig is not None and bolted.jig.kind is JigKind.MEASURE_ONLY
            assert bolted.rig.capabilities.eis        # the PalmSens measures its own cell
            assert station.jigs["A2"].fresh_value(3.0) == pytest.approx(2.5e6, rel=0.05)
            assert station.jigs["A1"].fresh_value(3.0) == pytest.approx(3e6, rel=0.05)
            assert station.chambers["oven"].fresh_value(3.0) == pytest.approx(30.0, abs=0.5)
            assert station.chambers["espec"].fresh_value(3.0) == pytest.approx(40.0, abs=0.5)
            assert station.channels["A1"].rig.capabilities.eis
            outcome, sink = await charge(station, "A1")
        assert outcome.state is JobState.COMPLETED, outcome.reason
        voltage = sink.column("Voltage / V")
        # a formed cell: discharged to 2.5 V and rested, it charges from above 3 V
        assert np.nanmin(voltage) > 3.0 and np.nanmax(voltage) < 4.0
        assert sim.watlows["oven"].set_point_c == 30.0
        assert sim.bench.cells["A2"].cell.state.charge_in_ah == 0.0


async def test_cells_in_the_room_formed_alike_without_jigs() -> None:
    spec = load_bench_text("cellrig-bench: 1\ncells:\n  A1: {state: formed, jig: none}\n"
                           "  A2: {state: formed, jig: none}\n", "room.yaml")
    async with within(TEST_TIMEOUT_S, "the room bench's test"), serve_bench(spec, SPEED) as sim:
        assert [instrument.name for instrument in sim.instruments] == ["smu-A1", "smu-A2"]
        first, second = (sim.bench.cells[name].cell.state for name in ("A1", "A2"))
        assert (first.charge_in_ah, first.charge_out_ah, first.anode_ah, first.dead_ah) == (
            second.charge_in_ah, second.charge_out_ah, second.anode_ah, second.dead_ah)
        assert first.charge_out_ah == pytest.approx(0.635, rel=0.01)
        config = load_station_text(sim.station_toml(), "room.toml")
        assert config.name == "room" and not config.warnings
        assert "chamber =" not in sim.station_toml() and "jig =" not in sim.station_toml()
        async with open_station(config) as station:
            assert list(station.channels) == ["A1", "A2"] and not station.unavailable
            assert station.chambers == {} and station.jigs == {}


def test_sim_serve_serves_a_bench_file_in_another_process(tmp_path: Path) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(BENCH, encoding="utf-8")
    config_path = tmp_path / "sim.toml"
    command = [sys.executable, "-m", "cellrig.daemon.cli", "sim", "serve", "--bench", str(bench),
               "--speed", "200", "--write-config", str(config_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=tmp_path, env={**os.environ}) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                if line.startswith("serving"):
                    break
            assert lines and lines[-1].startswith("serving 2 channel(s) at 200 times"), lines
            printed = {line.split()[1]: (line.split()[0], line.split()[2])
                       for line in lines[:-2]}
            assert printed["oven"][0] == "watlow-f4t"
            assert printed["palmsens-A2"][0] == "palmsens"
            assert printed["smu-A1"][1].startswith("TCPIP::127.0.0.1::")
            config = load_station(config_path)
            assert {name: instrument.address for name, instrument
                    in config.instruments.items()} == {name: address for name, (_, address)
                                                       in printed.items()}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15.0) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_sim_serve_reports_a_bench_file_with_a_mistake(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench.yaml"
    bench.write_text(BENCH.replace("kind: watlow-f4t", "kind: watlow"), encoding="utf-8")
    assert main(["sim", "serve", "--bench", str(bench)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bench}:4:16: error: kind 'watlow' is not one cellrig knows (did you mean " \
           "'watlow-f4t'?)" in captured.err
    assert "expected: one of espec, watlow-f4t" in captured.err
    assert "Traceback" not in captured.err

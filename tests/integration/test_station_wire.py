"""A station opened on the wire: the emulators of a simulated station (one bench clock, an
accelerated bench), the real drivers through pyvisa-py and pyserial, jobs run by the engine on
two channels at once; an instrument that cannot be opened; ``cellrig sim serve`` in a process
of its own, with the station opened from this one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cellrig.daemon.cli import main
from cellrig.daemon.station import Station, open_station
from cellrig.daemon.station_config import load_station, load_station_text
from cellrig.daemon.station_instruments import ChannelUnavailable
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.engine import Engine, JobOutcome, JobState, ListSink
from cellrig.protocols.resolve import resolve
from cellrig.simulators.sim_station import serve_sim_station

pytestmark = pytest.mark.integration

SPEED = 300.0
CHARGE = """cellrig: 1
name: short-charge
cell: {capacity: 600 mAh}
limits: {voltage: [0 V, 4.35 V], temperature: [0 degC, 60 degC], pressure: [1 MPa, 4 MPa]}
record: {every: 10 s}
steps:
  - set: {temperature: 25 degC, pressure: 2 MPa}
  - Charge at 0.5C for 10 minutes
"""


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run_job(station: Station, channel: str) -> tuple[JobOutcome, ListSink]:
    built = station.channels[channel]
    program = resolve(load_protocol_text(CHARGE, "charge.yaml"))
    assert built.refusals(program) == []
    built.supervisor.begin_job(program.limits)
    sink = ListSink(keep_checkpoints=False)
    try:
        outcome = await Engine(program, built.rig, sink, station.clock).run()
    finally:
        built.supervisor.end_job()
        built.rig.release_environment()
    return outcome, sink


async def test_two_channels_charge_at_once_through_the_real_drivers() -> None:
    async with serve_sim_station(3, SPEED, eis=True) as sim:
        config = load_station_text(sim.station_toml(), "sim.toml")
        async with open_station(config) as station, asyncio.TaskGroup() as group:
            assert list(station.channels) == ["A1", "A2", "A3"] and not station.unavailable
            assert station.channels["A1"].rig.capabilities.eis
            running = group.create_task(station.run())
            async with asyncio.timeout(60.0):
                results = await asyncio.gather(run_job(station, "A1"),
                                               run_job(station, "A2"))
            running.cancel()
        for outcome, sink in results:
            assert outcome.state is JobState.COMPLETED, outcome.reason
            times = sink.column("Test Time / s")
            assert times[-1] == pytest.approx(600.0, abs=15.0)
            current = sink.column("Current / A")
            assert np.median(current[times > 0]) == pytest.approx(0.3, rel=0.01)
            temperature = sink.column("Ambient Temperature / degC")
            pressure = sink.column("Applied Pressure / Pa")
            assert np.isfinite(temperature).all() and np.isfinite(pressure).all()
            assert np.abs(temperature - 25.0).max() < 0.5
            assert np.abs(pressure - 2e6).max() < 0.1e6
        # both ran at once: each one's first sample came before the other's last
        unix = [sink.column("Unix Time / s") for _, sink in results]
        assert unix[0][0] < unix[1][-1] and unix[1][0] < unix[0][-1]
        # the charge reached the emulated cells; the third cell was left alone
        charged = {name: cell.cell.state.charge_in_ah for name, cell in sim.bench.cells.items()}
        assert charged["A1"] == pytest.approx(0.05, rel=0.05)
        assert charged["A2"] == pytest.approx(0.05, rel=0.05)
        assert charged["A3"] == 0.0
        # closing the station left every output off, the chamber at its setpoint
        assert not any(emulator.output_on for emulator in sim.keithleys.values())
        assert sim.espec is not None and sim.espec.setpoint_c == 25.0


async def test_an_instrument_that_cannot_be_opened_leaves_only_its_channels_out(
        caplog: pytest.LogCaptureFixture) -> None:
    async with serve_sim_station(2, SPEED) as sim:
        missing = f"TCPIP::127.0.0.1::{closed_port()}::SOCKET"
        text = sim.station_toml().replace(sim.address("smu-A2"), missing)
        started = time.monotonic()
        async with open_station(load_station_text(text), open_timeout_s=10.0) as station:
            assert time.monotonic() - started < 10.0
            assert list(station.channels) == ["A1"]
            failure = station.failures["smu-A2"]
            assert (failure.instrument, failure.driver, failure.address) == (
                "smu-A2", "keithley2450", missing)
            reason = station.unavailable["A2"]
            assert reason.startswith(f"instrument smu-A2 (keithley2450) at {missing} could "
                                     "not be opened: ")
            assert "Traceback" not in caplog.text and str(failure) in caplog.text
            with pytest.raises(ChannelUnavailable, match=r"channel A2 is unavailable: "
                                                         r"instrument smu-A2"):
                station.channel("A2")
            with pytest.raises(ChannelUnavailable, match=r"no channel 'B1' \(its channels: "
                                                         r"A1, A2\)"):
                station.channel("B1")
            assert station.channel("A1") is station.channels["A1"]
            # the other channel runs
            async with asyncio.TaskGroup() as group:
                running = group.create_task(station.run())
                async with asyncio.timeout(60.0):
                    outcome, _ = await run_job(station, "A1")
                running.cancel()
            assert outcome.state is JobState.COMPLETED, outcome.reason


async def test_a_shared_chamber_that_cannot_be_opened_leaves_out_every_channel_in_it() -> None:
    async with serve_sim_station(2, SPEED) as sim:
        missing = f"socket://127.0.0.1:{closed_port()}"
        text = sim.station_toml().replace(sim.address("chamber"), missing)
        async with open_station(load_station_text(text), open_timeout_s=10.0) as station:
            assert station.channels == {} and station.chambers == {}
            assert set(station.unavailable) == {"A1", "A2"}
            assert all(f"instrument chamber (espec) at {missing}" in reason
                       for reason in station.unavailable.values())


def test_sim_serve_serves_a_daemon_in_another_process(tmp_path: Path) -> None:
    config_path = tmp_path / "sim.toml"
    command = [sys.executable, "-m", "cellrig.daemon.cli", "sim", "serve", "--channels", "2",
               "--speed", "200", "--write-config", str(config_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=tmp_path, env={**os.environ}) as process:
        try:
            assert process.stdout is not None
            lines = []
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                if line.startswith("serving"):
                    break
            assert lines and lines[-1].startswith("serving 2 channel(s) at 200 times"), lines
            printed = {line.split()[1]: line.split()[2] for line in lines
                       if line.split()[0] in ("keithley2450", "espec", "alicat", "mark10")}
            assert sorted(printed) == ["chamber", "gauge-A1", "gauge-A2", "regulator-A1",
                                       "regulator-A2", "smu-A1", "smu-A2"]
            assert f"config        {config_path.resolve()}" in lines
            config = load_station(config_path)
            assert config.instruments["smu-A1"].address == printed["smu-A1"]
            assert config.instruments["smu-A1"].options["time_scale"] == 200.0

            async def open_it() -> list[str]:
                async with open_station(config) as station:
                    return list(station.channels)

            assert asyncio.run(open_it()) == ["A1", "A2"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15.0) == 0
            assert "emulators stopped" in (process.stderr.read() if process.stderr else "")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


async def test_a_station_opened_again_finds_the_cells_as_they_were() -> None:
    async with serve_sim_station(1, SPEED) as sim:
        config = load_station_text(sim.station_toml())
        async with open_station(config) as station, asyncio.TaskGroup() as group:
            running = group.create_task(station.run())
            async with asyncio.timeout(60.0):
                outcome, _ = await run_job(station, "A1")
            running.cancel()
        assert outcome.state is JobState.COMPLETED, outcome.reason
        state = sim.bench.cells["A1"].cell.state
        charged_ah, discharged_ah = state.charge_in_ah, state.charge_out_ah
        assert charged_ah > 0.04
        # a daemon restarted: the same emulators, the cell and the chamber as they were
        async with open_station(config) as station:
            assert list(station.channels) == ["A1"] and not station.unavailable
            block = await station.channels["A1"].rig.read()  # output off: no voltage
            assert len(block) == 1 and np.isnan(block.voltage_v[0])
            assert station.chambers["chamber"].fresh_value(3.0) == pytest.approx(25.0, abs=0.5)
            jig = station.jigs["A1"]
            assert jig.fresh_value(3.0) == pytest.approx(2e6, rel=0.05)
        # opening reset the SMU straight into high impedance: nothing flowed
        state = sim.bench.cells["A1"].cell.state
        assert (state.charge_in_ah, state.charge_out_ah) == (charged_ah, discharged_ah)
        assert sim.espec is not None and sim.espec.setpoint_c == 25.0


def test_sim_serve_reports_a_configuration_it_cannot_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "sim.toml"
    assert main(["sim", "serve", "--channels", "1", "--write-config", str(target)]) == 1
    captured = capsys.readouterr()
    assert f"cellrig: cannot write {target}: No such file or directory" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out.splitlines()[0].startswith("espec         chamber      socket://")

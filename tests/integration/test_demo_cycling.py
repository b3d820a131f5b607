"""End to end through the wire emulators: a formation and cycling protocol submitted to four
channels (four Keithley 2450 emulators, a shared ESPEC chamber, a pneumatic jig per cell),
run by the daemon to completion and exported, with the cycle table of every channel."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from daemon_fixtures import cellrig

pytestmark = pytest.mark.integration

#: Formation (CC-CV, rest, CC discharge) and two faster cycles, at 60 °C and 2 MPa.
PROTOCOL = """cellrig: 1
name: formation-and-cycling
cell: {capacity: 600 mAh}
limits: {voltage: [-0.1 V, 4.35 V], current: 1.2C, temperature: [0 degC, 70 degC]}
# the as-built anode-free cell starts near 1 V, far below the discharge cut-off
record: {every: 60 s, voltage_change: 20 mV}
steps:
  - set: {temperature: 60 degC, pressure: 2 MPa}
    wait: {within: {temperature: 1 K, pressure: 0.1 MPa}, for: 5 min, timeout: 3 h}
  - Charge at 0.5C until 4.25 V
  - Hold at 4.25 V until 0.1C
  - Rest for 10 minutes
  - Discharge at 0.5C until 2.5 V
  - repeat: 2
    steps:
      - Charge at 1C until 4.25 V
      - Discharge at 1C until 2.5 V
"""


def test_formation_and_cycling_on_four_channels_to_exported_cycle_tables(
        tmp_path: Path) -> None:
    protocol = tmp_path / "formation-and-cycling.yaml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    folder = tmp_path / "demo"
    result = cellrig("demo", "--out", str(folder), "--protocol", str(protocol),
                     "--speed", "1500", timeout_s=240)
    lines = result.stdout.splitlines()
    for channel in ("A1", "A2", "A3", "A4"):
        ended = [line for line in lines if line.startswith("job ") and
                 f" on {channel}: " in line and "formation-and-cycling" in line][-1]
        assert ": completed" in ended, ended
        cycles_file = next((folder / channel).glob("*.cycles.csv"))
        with cycles_file.open(encoding="utf-8") as table:
            rows = [row for row in csv.DictReader(table)
                    if float(row["Discharging Capacity / Ah"]) > 0]
        assert len(rows) == 3, rows  # formation and the two cycles
        formation, first, second = (float(row["Discharging Capacity / Ah"]) for row in rows)
        # an anode-free cell loses lithium on its first charge; later cycles hold
        # the 0.6 Ah pouch gives about its nominal capacity at 0.5 C, less at 1 C
        assert 0.5 < formation < 0.7
        assert 0.3 < second < formation
        assert first == pytest.approx(second, rel=0.05)
        # at 1,500 times real time, each real millisecond between a step's last reading and
        # the next command is 1.5 s of current the engine does not see: a loaded machine
        # moves a cycle's efficiency by a percent or so either way
        efficiency = float(rows[-1]["Coulombic Efficiency / 1"])
        assert 0.95 < efficiency < 1.03
        assert any(path.suffix == ".png" for path in (folder / channel).iterdir())

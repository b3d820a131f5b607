"""``cellrig demo`` end to end in a subprocess: emulators on the wire, the daemon, four jobs,
the export. The test runs the short charge-and-stop protocol of the library (about 2.5 h of
bench time, 10 s at the demo's speed); the demo's default, formation, is the same path with a
longer protocol (about a minute)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from daemon_fixtures import cellrig

pytestmark = pytest.mark.integration


def test_demo_runs_four_cells_and_exports_them(tmp_path: Path) -> None:
    folder = tmp_path / ("a-demo-folder-with-a-long-name-so-the-socket-must-go-elsewhere" * 2)
    result = cellrig("demo", "--out", str(folder), "--protocol", "charge-and-stop",
                     timeout_s=120)
    lines = result.stdout.splitlines()
    for channel in ("A1", "A2", "A3", "A4"):
        ended = [line for line in lines if line.startswith("job ") and
                 f" on {channel}: " in line and "charge-and-stop" in line][-1]
        assert ": completed " in ended and "reached 3.6 V" in ended
        files = sorted(path.name for path in (folder / channel).iterdir())
        stem = next(name for name in files if name.endswith(".bdf.parquet"))
        assert f"demo-{channel}" in stem
        assert {"voltage_current.png", stem.replace(".bdf.parquet", ".bdf.csv"),
                stem.replace(".bdf.parquet", ".cycles.csv")} <= set(files)
        table = pq.read_table(folder / channel / stem)
        voltage = table.column("Voltage / V").to_numpy()
        assert table.num_rows > 100 and 3.55 < voltage[-1] < 3.7
        temperature = table.column("Ambient Temperature / degC").to_numpy()
        assert temperature[-1] == pytest.approx(60.0, abs=1.0)
        with (folder / channel / stem.replace(".bdf.parquet", ".bdf.csv")).open() as stream:
            assert next(csv.reader(stream))[:3] == ["Test Time / s", "Unix Time / s",
                                                    "Voltage / V"]
        provenance = json.loads((folder / channel / stem.replace(
            ".bdf.parquet", ".provenance.json")).read_text())
        assert provenance["protocol_name"] == "charge-and-stop"
        assert provenance["channel"] == channel
    assert "keithley2450" in (folder / "station.toml").read_text()
    assert "event=store-closed" in (folder / "daemon.log").read_text()
    assert lines[-6].strip() == str(folder)
    # the store stays readable afterwards
    again = cellrig("export", "2", "--config", str(folder / "station.toml"), "--format",
                    "bdf-csv", "--out", str(tmp_path / "again"))
    assert next(Path(p).suffixes[-2:] for p in again.stdout.split()) == [".bdf", ".csv"]

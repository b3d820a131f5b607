"""``cellrig simulate`` end to end: the installed command in a subprocess, and in-process for
the error paths; files read back with pyarrow and csv."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cellrig.daemon import simulate_timeseries as timeseries
from cellrig.daemon.cli import main
from cellrig.daemon.simulate_output import spectrum_times
from cellrig.daemon.simulate_plotter import PLOT_COLUMNS, PlotJob, draw
from cellrig.daemon.simulate_run import (
    load_protocol_argument,
    load_simulated_cell,
    resolve,
    simulate,
)
from cellrig.daemon.simulate_timeseries import columns as simulation_columns
from cellrig.protocols.engine.output import COLUMNS, SampleBlock

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cellrig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "cellrig.daemon.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def test_formation_writes_every_file(tmp_path: Path) -> None:
    done = cellrig("simulate", "formation", "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    folder = tmp_path / "run"
    assert "215.2 mAh/g" in done.stdout
    assert "initial CE       94.1" in done.stdout
    assert str(folder) in done.stdout

    table = pq.read_table(folder / "timeseries.parquet")
    assert tuple(table.column_names) == COLUMNS
    voltage = table.column("Voltage / V").to_numpy()
    test_time = table.column("Test Time / s").to_numpy()
    assert np.all(np.diff(test_time) >= 0)  # a step ends where the next begins
    assert voltage.max() == pytest.approx(4.25, abs=1e-6)
    assert voltage.min() < 2.5 + 1e-6
    kinds = set(table.column("Step Type").to_pylist())
    assert {"REST", "CC_CHG", "CV_CHG", "CC_DCH"} <= kinds
    unix = table.column("Unix Time / s").to_numpy()
    assert np.allclose(unix - unix[0], test_time - test_time[0])

    with (folder / "cycles.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    assert float(rows[0]["Specific Discharge Capacity / mAh/g"]) == pytest.approx(215, rel=0.03)
    events = [json.loads(line) for line in
              (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[0]["kind"] == "job start" and events[-1]["kind"] == "job end"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["state"] == "completed"
    for name in ("voltage_current.png", "cycling.png", "dqdv.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    assert not (folder / "nyquist.png").exists()  # no EIS in formation


def test_csv_format_and_parameters(tmp_path: Path) -> None:
    code = main(["simulate", "charge-and-stop", "-p", "stop_at=3.55V", "--format", "csv",
                 "--out", str(tmp_path / "run"), "--no-plots"])
    assert code == 0
    with (tmp_path / "run" / "timeseries.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["Voltage / V"].startswith("3.55")
    assert rows[-1]["Step Type"] == "CC_CHG"
    assert (tmp_path / "run" / "events.csv").exists()
    assert not list((tmp_path / "run").glob("*.png"))


def test_eis_protocol_writes_spectra_and_nyquist(tmp_path: Path) -> None:
    code = main(["simulate", "eis-open-circuit", "--formed", "--temperature", "60 degC",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    with (tmp_path / "run" / "spectra.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 81  # 1 MHz to 10 mHz at 10 per decade
    assert float(rows[0]["Frequency / Hz"]) == pytest.approx(1e6)
    assert (tmp_path / "run" / "nyquist.png").read_bytes()[:8] == PNG_MAGIC


def test_default_folder_is_named_after_protocol_and_time(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "partial-charge", "--no-plots"]) == 0
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("partial-charge-20")
    assert str(folder) in capsys.readouterr().out


def test_protocol_errors_print_like_check(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cellrig: 1\nname: bad\ncell: {capacity: 634 mAh}\nsteps:\n"
                   "  - Chrage at 0.1C until 4.25 V\n", encoding="utf-8")
    assert main(["simulate", str(bad), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "error" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cell_file_errors_have_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "cell.yaml"
    bad.write_text("cellrig-cell: 1\nname: x\ncell: {areal_capacity: 6.8 parsecs}\n",
                   encoding="utf-8")
    done = cellrig("simulate", "formation", "--cell", str(bad), "--out", "run", cwd=tmp_path)
    assert done.returncode == 1
    assert "cell.yaml:3:" in done.stderr
    assert "Traceback" not in done.stderr


def test_another_cell_scales_the_currents(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "formation", "--cell", "pellet-10mm", "--no-plots",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    table = pq.read_table(tmp_path / "run" / "timeseries.parquet")
    current = table.column("Current / A").to_numpy()
    assert current.max() == pytest.approx(0.1 * 5.5e-3 * 0.7854, rel=1e-3)  # 0.1 C of 4.32 mAh
    assert "pellet-10mm" in out


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "formation", "--dqdv", "1,two"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "formation", "--temperature", "hot"])
    assert exit_info.value.code == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only() -> None:
    cell = load_simulated_cell(None)
    program, _ = resolve(load_protocol_argument("long-cycling"), cell, {"cycles": "20"})
    assert program is not None
    terminal, pipe = _Terminal(), io.StringIO()
    simulate(program, cell, stream=terminal)
    simulate(program, cell, stream=pipe)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rlong-cycling [")
    assert drawn.endswith(" h simulated\n")
    assert "[" + "#" * 30 + "] 100%" in drawn
    assert pipe.getvalue() == ""


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_time_series_written_in_row_groups_while_blocks_come(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str) -> None:
    monkeypatch.setattr(timeseries, "ROWS_PER_GROUP", 50)
    writer = timeseries.TimeSeriesWriter(tmp_path, file_format)
    kinds = ["CC_CHG", "REST", "CV_DCH"]
    for index in range(30):  # 30 blocks of 7 samples, one of them of mixed step types
        times = np.arange(index * 7, index * 7 + 7, dtype=float)
        columns: dict[str, np.ndarray] = {name: times.copy() for name in COLUMNS}
        for name in ("Cycle Count / 1", "Step Count / 1", "Step ID"):
            columns[name] = np.full(7, index, dtype=np.int64)
        step_type = np.empty(7, dtype=object)
        step_type[:] = kinds[index % 3]
        if index == 4:
            step_type[3:] = "CV_CHG"
        columns["Step Type"] = step_type
        writer.add(SampleBlock(columns))
        if index == 20:
            assert writer.rows >= 100  # written while more blocks were still coming
    path = writer.close()
    if file_format == "parquet":
        parquet = pq.ParquetFile(path)
        assert parquet.metadata.num_row_groups == 5  # four full groups and the rest
        table = parquet.read()
        time_s = table.column("Test Time / s").to_numpy()
        step_types = table.column("Step Type").to_pylist()
    else:
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        time_s = np.array([float(row["Test Time / s"]) for row in rows])
        step_types = [row["Step Type"] for row in rows]
    assert np.array_equal(time_s, np.arange(210, dtype=float))
    assert step_types[28:35] == ["REST"] * 3 + ["CV_CHG"] * 4
    assert step_types[:7] == ["CC_CHG"] * 7 and step_types[7:14] == ["REST"] * 7


def test_plots_drawn_here_when_the_copy_cannot_be_forked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cell = load_simulated_cell(None)
    program, _ = resolve(load_protocol_argument("long-cycling"), cell, {"cycles": "3"})
    assert program is not None
    simulation = simulate(program, cell)
    job = PlotJob(tmp_path, {name: simulation_columns(simulation.blocks)[name]
                             for name in PLOT_COLUMNS},
                  simulation.cycles, simulation.spectra, spectrum_times(simulation), [1, 2])

    def no_fork() -> int:
        raise OSError("no fork here")

    monkeypatch.setattr(os, "fork", no_fork)
    drawn = draw(job, forked=True)
    names = ["voltage_current.png", "cycling.png", "nyquist.png", "dqdv.png"]
    if not simulation.spectra:
        names.remove("nyquist.png")
    assert [path.name for path in drawn] == names
    for path in drawn:
        assert path.read_bytes()[:8] == PNG_MAGIC

"""Benchmark: the whole ``cellrig simulate`` command for 1,000 cycles of 0.5 C / 0.5 C.

Run: ``python tests/bench/bench_simulate.py [--runs N]`` (with cellrig installed). The protocol
is the paper's cycling (CC 0.5 C to 4.25 V, CC 0.5 C to 2.5 V, at 60 degC and 2 MPa, after the
chamber and jig settle) with a sample every 10 s: about 1.2 million samples. Each run is the
command in a fresh interpreter, so the time includes the imports, resolving the protocol,
the simulation, and writing the Parquet time series, the tables and the PNG plots. The aim is
under 2 s. The median of the runs is printed, with the simulation's own share (from the
summary the command writes) and what the model found.

If PyBaMM is importable, the same experiment (1,000 × charge/discharge at 0.5 C, 10 s period)
runs once with its single-particle model on its default parameter set, widened to the
protocol's voltage window, timed from import to extracting time, voltage and current; both
times and their ratio are printed. PyBaMM is not a dependency of cellrig.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CYCLES = 1000
PROTOCOL = f"""cellrig: 1
name: bench-cycling
cell: {{areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}}
limits: {{voltage: [-0.1 V, 4.35 V], current: 1C, temperature: [0 degC, 70 degC]}}
record: {{every: 10 s}}
steps:
  - set: {{temperature: 60 degC, pressure: 2 MPa}}
    wait: {{within: {{temperature: 0.5 K, pressure: 0.1 MPa}}, for: 30 min, timeout: 6 h}}
  - repeat: {CYCLES}
    steps:
      - Charge at 0.5C until 4.25 V
      - Discharge at 0.5C until 2.5 V
"""

PYBAMM_SCRIPT = f"""
import time
started = time.perf_counter()
import pybamm
imported = time.perf_counter()
model = pybamm.lithium_ion.SPM()
values = model.default_parameter_values
values.update({{"Upper voltage cut-off [V]": 4.3, "Lower voltage cut-off [V]": 2.4}})
experiment = pybamm.Experiment(
    [("Charge at 0.5C until 4.25 V", "Discharge at 0.5C until 2.5 V")] * {CYCLES},
    period="10 seconds")
simulation = pybamm.Simulation(model, parameter_values=values, experiment=experiment)
solution = simulation.solve()
solved = time.perf_counter()
t = solution["Time [s]"].entries
v = solution["Voltage [V]"].entries
i = solution["Current [A]"].entries
extracted = time.perf_counter()
print(f"{{imported - started:.3f}} {{solved - imported:.3f}} {{extracted - solved:.3f}} "
      f"{{len(solution.cycles)}} {{t.shape[0]}}")
"""


def run_command(folder: Path, protocol: Path, index: int) -> tuple[float, dict[str, object]]:
    """One ``cellrig simulate`` in a fresh interpreter: wall seconds and its summary."""
    out = folder / f"run-{index}"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cellrig.daemon.cli", "simulate", str(protocol),
                           "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cellrig simulate failed:\n{done.stderr}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    import pyarrow.parquet as pq

    summary["samples"] = pq.ParquetFile(out / "timeseries.parquet").metadata.num_rows
    return wall, summary


def pybamm_seconds() -> tuple[float, str] | None:
    """Seconds for the same work in PyBaMM (None if it is not installed)."""
    if importlib.util.find_spec("pybamm") is None:
        return None
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PYBAMM_SCRIPT], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return wall, f"failed: {done.stderr.strip().splitlines()[-1:]}"
    imported, solved, extracted, cycles, points = done.stdout.split()
    return wall, (f"import {imported} s, solve {solved} s, extract {extracted} s; "
                  f"{cycles} cycles, {points} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the command (median)")
    parser.add_argument("--no-pybamm", action="store_true", help="skip the PyBaMM comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cellrig-bench-") as temporary:
        folder = Path(temporary)
        protocol = folder / "bench-cycling.yaml"
        protocol.write_text(PROTOCOL, encoding="utf-8")
        results = [run_command(folder, protocol, index) for index in range(args.runs)]
    walls = [wall for wall, _ in results]
    wall = statistics.median(walls)
    summary = results[0][1]
    simulated = statistics.median(float(str(s["wall_time_s"])) for _, s in results)
    first = summary["first_discharge"]
    last = summary["last_discharge"]
    assert isinstance(first, dict) and isinstance(last, dict)
    print(f"cellrig simulate: {CYCLES} cycles of 0.5 C / 0.5 C, a sample every 10 s "
          f"({summary['samples']:,} samples)")
    print(f"  whole command, median of {args.runs}: {wall:.2f} s "
          f"(runs: {', '.join(f'{w:.2f}' for w in walls)}; aim < 2 s: "
          f"{'ok' if wall < 2.0 else 'MISSES the aim'})")
    print(f"  of which the simulation (engine + model): {simulated:.2f} s")
    print(f"  discharge capacity: first {first['discharge_capacity_ah'] * 1e3:.1f} mAh, "
          f"last {last['discharge_capacity_ah'] * 1e3:.1f} mAh; lab time "
          f"{float(str(summary['lab_time_s'])) / 86400:.1f} days")
    if args.no_pybamm:
        return
    pybamm = pybamm_seconds()
    if pybamm is None:
        print("PyBaMM is not installed: no comparison (pip install pybamm to measure it)")
        return
    seconds, detail = pybamm
    print(f"PyBaMM single-particle model, same experiment: {seconds:.2f} s ({detail})")
    print(f"  ratio PyBaMM / cellrig simulate: {seconds / wall:.1f}")


if __name__ == "__main__":
    main()

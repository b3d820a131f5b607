"""Benchmark: 1,000 cycles of 0.5 C / 0.5 C through the cell model's segment functions.

Run: ``python tests/bench/bench_cell_model.py`` (with cellrig installed). The paper's pouch at
60 °C and 2 MPa: formation (CC-CV 0.1 C, 0.2 C discharge), then each cycle finds the time to
4.25 V at +0.5 C, moves the model there, finds the time to 2.5 V at −0.5 C and moves there, as
the step engine will. Reports the median of several runs, the time per cycle, and the
capacities it found, so a slower but still correct model shows as such.
"""

from __future__ import annotations

import statistics
import time

from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell

RUNS = 5
CYCLES = 1000


def run_once() -> tuple[float, float, float]:
    """Seconds for the cycles, first and last discharge capacity (Ah)."""
    params = load_builtin_cell()
    model = CellModel(params, 60.0, 2.0e6)
    capacity = params.capacity_ah
    charge_s = model.time_to_voltage(0.1 * capacity, 4.25, 1e6) or 0.0
    model.run_current(0.1 * capacity, [charge_s])
    hold_s = model.time_to_current(4.25, 0.05 * capacity, 1e6) or 0.0
    model.run_voltage(4.25, [hold_s])
    model.run_rest([600.0])
    discharge_s = model.time_to_voltage(-0.2 * capacity, 2.5, 1e6) or 0.0
    model.run_current(-0.2 * capacity, [discharge_s])
    model.run_rest([600.0])
    current = 0.5 * capacity
    first = last = 0.0
    start = time.perf_counter()
    for _ in range(CYCLES):
        up = model.time_to_voltage(current, 4.25, 1e6) or 0.0
        model.run_current(current, [up])
        down = model.time_to_voltage(-current, 2.5, 1e6) or 0.0
        model.run_current(-current, [down])
        last = current * down / 3600.0
        first = first or last
    return time.perf_counter() - start, first, last


def main() -> None:
    results = [run_once() for _ in range(RUNS)]
    seconds = statistics.median(result[0] for result in results)
    _, first, last = results[0]
    print(f"cell model: {CYCLES} cycles of 0.5 C / 0.5 C (paper pouch, 60 degC, 2 MPa)")
    print(f"  median of {RUNS} runs: {seconds:.3f} s, {seconds / CYCLES * 1e3:.2f} ms per cycle "
          f"({4 * CYCLES} segment calls)")
    print(f"  discharge capacity: first {first * 1e3:.1f} mAh, last {last * 1e3:.1f} mAh "
          f"({last / first:.1%} retention)")


if __name__ == "__main__":
    main()

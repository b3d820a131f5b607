"""Benchmark: parse + validate + resolve time of protocol files (prints figures).

Run: ``.venv/bin/python tests/bench/bench_protocols.py``. Reports the median of several runs for
every library protocol and for a generated protocol of 1,000 steps (a mix of strings and
mappings with parameters, conditions and loops). The unit registry is built once before timing,
as it is in a running daemon.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.library import library_files
from cellrig.protocols.quantities import registry
from cellrig.protocols.resolve import check

RUNS = 7


def generated_protocol(steps: int) -> str:
    """A protocol of ``steps`` steps, cycling through the common step forms."""
    lines = [
        "cellrig: 1",
        "name: generated",
        "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}",
        "parameters: {upper: 4.25 V, lower: 2.5 V}",
        "limits: {voltage: [2.4 V, 4.35 V], current: 2.5C, temperature: [-20 degC, 70 degC]}",
        "record: {every: 10 s, voltage_change: 5 mV}",
        "steps:",
    ]
    forms = [
        "  - Charge at 0.{i}C until ${{upper}}",
        "  - Hold at ${{upper}} until 0.05C",
        "  - rest: {i} min",
        "  - discharge: {{current: {i} mA}}\n    until: {{voltage: \"${{lower}}\", time: 10 h}}",
        "  - cccv: {{current: 0.33C, voltage: 4.2 V, cutoff: 0.1C}}\n    record: {{every: 1 s}}",
        "  - Discharge at C/{i} for 2 hours or until 2.5 V",
        "  - set: {{temperature: {i} degC}}\n"
        "    wait: {{within: {{temperature: 0.5 K}}, for: 10 min}}",
        "  - eis: {{start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}}",
    ]
    for index in range(steps):
        lines.append(forms[index % len(forms)].format(i=index % 9 + 1))
    return "\n".join(lines) + "\n"


def timings_ms(action: Callable[[], object]) -> tuple[float, float]:
    """The first (cold: value caches empty) and the median wall time of RUNS runs, in ms."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return times[0], statistics.median(times)


def load_and_resolve(text: str, name: str) -> None:
    """Parse, validate (with lints) and resolve one protocol; fail loudly on errors."""
    result = check(load_protocol_text(text, name))
    if result.program is None:
        raise SystemExit(f"{name} is not valid:\n" + "\n".join(d.render() for d in result.errors))


def main() -> None:
    registry()
    print(f"parse + validate + resolve: first run, then median of {RUNS} runs")
    total_first = total = 0.0
    for entry in library_files():
        text = entry.read_text(encoding="utf-8")
        first, median = timings_ms(lambda text=text, name=entry.name: load_and_resolve(text, name))
        total_first += first
        total += median
        print(f"  library/{entry.name:<40} {first:8.2f} ms {median:8.2f} ms")
    print(f"  {'library total':<48} {total_first:8.2f} ms {total:8.2f} ms")
    for steps in (100, 1000):
        text = generated_protocol(steps)
        first, median = timings_ms(lambda text=text: load_and_resolve(text, "generated.yaml"))
        print(f"  generated {steps:>5} steps {'':<28} {first:8.2f} ms {median:8.2f} ms"
              f"  ({median * 1000 / steps:.1f} µs/step)")


if __name__ == "__main__":
    main()

"""Synthetic station data written to a real store: jobs on several channels, sample blocks
that look like cycling (with unmeasured temperature or pressure on some channels), events and
cycle summaries. Used by the InfluxDB tests and ``tests/bench/bench_influx.py``."""

from __future__ import annotations

import math

import numpy as np

from cellrig.daemon.store import JobState, Provenance, Store
from cellrig.protocols.engine.output import COLUMNS, CycleSummary, Event, EventKind, SampleBlock

_INTEGERS = ("Cycle Count / 1", "Step Count / 1", "Step ID")


def add_job(store: Store, channel: str, cell_id: str | None = None) -> int:
    """A running job on ``channel`` whose cell is ``cell_id``."""
    cell = {} if cell_id is None else {"id": cell_id}
    provenance = Provenance("synthetic", "cellrig: 1\n", "{}", cell, {}, "0" * 64)
    job_id = store.add_job(channel, provenance)
    store.set_state(job_id, JobState.RUNNING)
    return job_id


def block(first: int, count: int, start_unix_s: float, *, period_s: float = 1.0,
          temperature: bool = True, pressure: bool = True, seed: int = 0) -> SampleBlock:
    """``count`` samples numbered from ``first``, one every ``period_s`` from
    ``start_unix_s``; each hour a cycle, charging the first half and discharging the second.
    Temperature or pressure NaN (unmeasured) when asked."""
    rng = np.random.default_rng(seed + first)
    index = np.arange(first, first + count, dtype=np.float64)
    test_time = index * period_s
    half = (test_time // 1800).astype(np.int64)
    charging = half % 2 == 0
    columns: dict[str, np.ndarray] = {name: np.zeros(count) for name in COLUMNS}
    columns.update({
        "Test Time / s": test_time,
        "Unix Time / s": start_unix_s + test_time,
        "Voltage / V": 3.7 + 0.3 * np.sin(test_time / 1800 * math.pi) + rng.normal(0, 1e-4,
                                                                                    count),
        "Current / A": np.where(charging, 0.0634, -0.0634),
        "Step Time / s": test_time % 1800,
        "Cycle Charging Capacity / Ah": (test_time % 3600) / 3600 * 0.0634,
        "Ambient Temperature / degC": (60.0 + rng.normal(0, 0.05, count) if temperature
                                       else np.full(count, np.nan)),
        "Applied Pressure / Pa": (2.0e6 + rng.normal(0, 500.0, count) if pressure
                                  else np.full(count, np.nan)),
    })
    columns["Cycle Count / 1"] = half // 2 + 1
    columns["Step Count / 1"] = half + 1
    columns["Step ID"] = half % 2 + 1
    for name in _INTEGERS:
        columns[name] = columns[name].astype(np.int64)
    kinds = np.empty(count, dtype=object)
    kinds[:] = np.where(charging, "CC_CHG", "CC_DCH")
    columns["Step Type"] = kinds
    return SampleBlock(columns)


def event(kind: EventKind, test_time_s: float, unix_time_s: float, cycle: int,
          message: str = "") -> Event:
    """An engine event."""
    return Event(kind, test_time_s, unix_time_s, cycle, 1, 1, message, {"note": message})


def summary(cycle: int, start_s: float, end_s: float, discharge_ah: float) -> CycleSummary:
    """A cycle summary with a discharge capacity and a Coulombic efficiency."""
    return CycleSummary(cycle, start_s, end_s, discharge_ah / 0.998, discharge_ah,
                        discharge_ah * 3.8, discharge_ah * 3.7, 0.998, 0.97, 3.85, 3.76,
                        0.9, 0.1, 59.5, 60.5, 1.9e6, 2.1e6, discharge_ah / 0.0634, None)


def fill(store: Store, *, channels: int = 3, samples_per_channel: int = 1000,
         start_unix_s: float, block_size: int = 100, cycles: int = 3) -> dict[str, int]:
    """Jobs on ``channels`` channels with samples, events and cycle summaries; channel 2
    measures no pressure, channel 3 no temperature. Returns the counts stored."""
    totals = {"samples": 0, "events": 0, "cycles": 0}
    for number in range(channels):
        job_id = add_job(store, f"A{number + 1}", f"cell, #{number + 1}" if number else None)
        sink = store.sink(job_id)
        sink.event(event(EventKind.JOB_START, 0.0, start_unix_s, 1, "started"))
        totals["events"] += 1
        for first in range(0, samples_per_channel, block_size):
            count = min(block_size, samples_per_channel - first)
            sink.samples(block(first, count, start_unix_s + number * 1e-3,
                               pressure=number % 3 != 1, temperature=number % 3 != 2,
                               seed=number))
            totals["samples"] += count
        for cycle in range(1, cycles + 1):
            sink.cycle(summary(cycle, (cycle - 1) * 3600.0, cycle * 3600.0,
                               0.0634 * (1 - 0.001 * cycle)))
            sink.event(event(EventKind.CYCLE_END, cycle * 3600.0,
                             start_unix_s + cycle * 3600.0, cycle, f"cycle {cycle} \"done\""))
            totals["cycles"] += 1
            totals["events"] += 1
    store.flush()
    return totals

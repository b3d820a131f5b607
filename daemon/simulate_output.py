"""Files of a simulated job: the time series in Battery Data Format columns (Parquet or CSV),
the per-cycle table, the events, the spectra and a summary.

Files in the output folder:

* ``timeseries.parquet`` (or ``.csv``): every stored sample, the engine's columns
  (``Test Time / s``, ``Voltage / V``, ``Current / A``, ``Cycle Count / 1``, ...);
* ``cycles.csv``: one row per cycle, the engine's cycle summaries plus the discharge capacity
  per gram of cathode active material and per cm² of electrode;
* ``events.jsonl`` (or ``events.csv``): job, step and cycle events, warnings, limits;
* ``spectra.csv``: every EIS step's spectrum (only when the protocol measures one);
* ``summary.json``: the figures the command prints.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cellrig.protocols.engine import EventKind
from cellrig.protocols.engine.output import CycleSummary

from .simulate_run import Simulation

CYCLE_COLUMNS = (
    ("Cycle", "cycle"),
    ("Start Test Time / s", "start_test_time_s"),
    ("End Test Time / s", "end_test_time_s"),
    ("Charge Capacity / Ah", "charge_capacity_ah"),
    ("Discharge Capacity / Ah", "discharge_capacity_ah"),
    ("Charge Energy / Wh", "charge_energy_wh"),
    ("Discharge Energy / Wh", "discharge_energy_wh"),
    ("Coulombic Efficiency / 1", "coulombic_efficiency"),
    ("Energy Efficiency / 1", "energy_efficiency"),
    ("Average Charge Voltage / V", "average_charge_voltage_v"),
    ("Average Discharge Voltage / V", "average_discharge_voltage_v"),
    ("CC Charge Share / 1", "cc_charge_share"),
    ("CV Charge Share / 1", "cv_charge_share"),
    ("Min Ambient Temperature / degC", "min_temperature_c"),
    ("Max Ambient Temperature / degC", "max_temperature_c"),
    ("Min Applied Pressure / Pa", "min_pressure_pa"),
    ("Max Applied Pressure / Pa", "max_pressure_pa"),
    ("Retention / 1", "retention"),
    ("Reference Retention / 1", "reference_retention"),
)


def cycle_rows(simulation: Simulation) -> list[dict[str, Any]]:
    """One row per cycle (column name → value; None where a figure does not exist)."""
    params = simulation.cell.params
    rows = []
    for summary in simulation.cycles:
        row = {name: getattr(summary, field) for name, field in CYCLE_COLUMNS}
        row["Duration / s"] = summary.duration_s
        capacity_mah = summary.discharge_capacity_ah * 1000.0
        row["Specific Discharge Capacity / mAh/g"] = capacity_mah / (params.cathode_mass_kg * 1e3)
        row["Areal Discharge Capacity / mAh/cm^2"] = capacity_mah / (params.area_m2 * 1e4)
        rows.append(row)
    return rows


def write_cycles(simulation: Simulation, folder: Path) -> Path:
    """``cycles.csv``."""
    path = folder / "cycles.csv"
    names = [name for name, _ in CYCLE_COLUMNS] + [
        "Duration / s", "Specific Discharge Capacity / mAh/g",
        "Areal Discharge Capacity / mAh/cm^2"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in cycle_rows(simulation):
            writer.writerow(["" if row[name] is None else row[name] for name in names])
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def write_events(simulation: Simulation, folder: Path, file_format: str) -> Path:
    """``events.jsonl`` (one JSON object a line) or ``events.csv`` (data as JSON)."""
    records = [{"kind": event.kind.value, "test_time_s": event.test_time_s,
                "unix_time_s": event.unix_time_s, "cycle": event.cycle,
                "step_count": event.step_count, "step_id": event.step_id,
                "message": event.message, "data": event.data}
               for event in simulation.events]
    if file_format == "csv":
        path = folder / "events.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Kind", "Test Time / s", "Unix Time / s", "Cycle Count / 1",
                             "Step Count / 1", "Step ID", "Message", "Data"])
            for record in records:
                writer.writerow([*(record[key] if record[key] is not None else ""
                                   for key in ("kind", "test_time_s", "unix_time_s", "cycle",
                                               "step_count", "step_id", "message")),
                                 json.dumps(record["data"], default=_plain)])
        return path
    path = folder / "events.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, default=_plain) + "\n")
    return path


def spectrum_times(simulation: Simulation) -> list[float]:
    """Test time at the end of each spectrum, in order."""
    return [event.test_time_s for event in simulation.events
            if event.kind is EventKind.SPECTRUM]


def write_spectra(simulation: Simulation, folder: Path) -> Path | None:
    """``spectra.csv``: every spectrum, one row per frequency (None if there is none)."""
    if not simulation.spectra:
        return None
    path = folder / "spectra.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Step ID", "Step Count / 1", "Test Time / s", "Frequency / Hz",
                         "Z' / Ohm", "Z'' / Ohm"])
        for (step_id, step_count, spectrum), test_time in zip(
                simulation.spectra, spectrum_times(simulation), strict=True):
            for row in zip(spectrum.frequency_hz.tolist(), spectrum.z_real_ohm.tolist(),
                           spectrum.z_imag_ohm.tolist(), strict=True):
                writer.writerow([step_id, step_count, test_time, *row])
    return path


def summary_figures(simulation: Simulation) -> dict[str, Any]:
    """The figures of the job: capacities, efficiencies, retention, lab time."""
    outcome = simulation.outcome
    params = simulation.cell.params
    discharged: list[CycleSummary] = [c for c in simulation.cycles
                                      if c.discharge_capacity_ah > 0]
    figures: dict[str, Any] = {
        "protocol": simulation.program.name,
        "cell": simulation.cell.source,
        "state": outcome.state.value,
        "reason": outcome.reason,
        "cycles": outcome.cycles,
        "lab_time_s": outcome.test_time_s,
        "wall_time_s": simulation.wall_s,
        "initial_coulombic_efficiency": outcome.initial_coulombic_efficiency,
        "cycles_to_retention": outcome.cycles_to_retention,
        "cathode_mass_g": params.cathode_mass_kg * 1e3,
        "electrode_area_cm2": params.area_m2 * 1e4,
        "spectra": len(simulation.spectra),
    }
    if discharged:
        first, last = discharged[0], discharged[-1]
        efficiencies = [c.coulombic_efficiency for c in discharged[1:]
                        if c.coulombic_efficiency is not None]
        figures.update({
            "first_discharge": dataclasses.asdict(first),
            "last_discharge": dataclasses.asdict(last),
            "mean_coulombic_efficiency_after_first": (
                sum(efficiencies) / len(efficiencies) if efficiencies else None),
            "retention_of_first_discharge": last.discharge_capacity_ah
            / first.discharge_capacity_ah,
        })
    return figures


def write_summary(figures: dict[str, Any], folder: Path) -> Path:
    """``summary.json``."""
    path = folder / "summary.json"
    path.write_text(json.dumps(figures, indent=2, default=_plain) + "\n", encoding="utf-8")
    return path

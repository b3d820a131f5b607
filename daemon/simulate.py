"""``cellrig simulate``: run a protocol on the cell model at full speed and write what a lab
would look at (see docs/simulate.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from cellrig.errors import Severity
from cellrig.protocols.quantities import Kind, QuantityError, parse_quantity

from .cli_protocols import UsageError, parse_parameters
from .simulate_output import (
    spectrum_times,
    summary_figures,
    write_cycles,
    write_events,
    write_spectra,
    write_summary,
)
from .simulate_plots import FIRST_CYCLES
from .simulate_plotter import PLOT_COLUMNS, PlotJob, Plotter
from .simulate_run import Simulation, load_protocol_argument, load_simulated_cell, resolve, simulate
from .simulate_timeseries import TimeSeriesWriter, columns


def _quantity(text: str, kind: Kind, flag: str) -> float:
    try:
        return parse_quantity(text, kind)
    except QuantityError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _dqdv_cycles(text: str | None, last: int) -> list[int]:
    if text is None:
        return sorted({cycle for cycle in (1, 2, last) if 1 <= cycle <= last})
    chosen = []
    for part in text.split(","):
        part = part.strip()
        if part == "last":
            chosen.append(last)
        elif part.isdigit() and int(part) > 0:
            chosen.append(int(part))
        else:
            raise UsageError(f"--dqdv takes cycle numbers and 'last', e.g. 1,2,last "
                             f"(got {part!r})")
    return chosen


def default_folder(name: str) -> Path:
    """``<protocol>-<YYYYmmdd-HHMMSS>`` under the current directory, not yet existing."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path.cwd() / f"{name}-{stamp}"
    folder, number = base, 1
    while folder.exists():
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    return folder


def _write_others(simulation: Simulation, folder: Path, file_format: str) -> list[Path]:
    """The tables, events, spectra and summary (the time series was written as the job ran)."""
    written = [write_cycles(simulation, folder), write_events(simulation, folder, file_format)]
    spectra = write_spectra(simulation, folder)
    if spectra is not None:
        written.append(spectra)
    written.append(write_summary(summary_figures(simulation), folder))
    return written


def _plot_job(simulation: Simulation, folder: Path, dqdv_cycles: list[int]) -> PlotJob:
    data = columns(simulation.blocks)
    return PlotJob(folder, {name: data[name] for name in PLOT_COLUMNS}, simulation.cycles,
                   simulation.spectra, spectrum_times(simulation), dqdv_cycles)


def _last_discharged(simulation: Simulation) -> int:
    return max((c.cycle for c in simulation.cycles if c.discharge_capacity_ah > 0),
               default=simulation.outcome.cycles)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60.0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] if days else []
    if days or hours:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def summary_lines(simulation: Simulation, figures: dict[str, Any], folder: Path,
                  written: list[Path]) -> list[str]:
    """What the command prints."""
    outcome = simulation.outcome
    params = simulation.cell.params
    mass_g, area_cm2 = params.cathode_mass_kg * 1e3, params.area_m2 * 1e4
    lines = [f"{simulation.program.name} on {simulation.cell.source}: {outcome.state.value} "
             f"({outcome.reason})",
             f"  lab time         {_duration(outcome.test_time_s)} "
             f"({outcome.test_time_s:,.0f} s), simulated in {simulation.wall_s:.2f} s",
             f"  cycles           {outcome.cycles}"]
    for key, label in (("first_discharge", "first discharge"),
                       ("last_discharge", "last discharge")):
        cycle = figures.get(key)
        if cycle is None:
            continue
        mah = cycle["discharge_capacity_ah"] * 1000.0
        average = cycle["average_discharge_voltage_v"]
        lines.append(f"  {label:<16} {mah:.1f} mAh = {mah / mass_g:.1f} mAh/g = "
                     f"{mah / area_cm2:.2f} mAh/cm^2 (cycle {cycle['cycle']}, "
                     f"{average:.3f} V average)")
    lines.append(f"  initial CE       {_share(outcome.initial_coulombic_efficiency)}")
    mean_ce = figures.get("mean_coulombic_efficiency_after_first")
    if mean_ce is not None:
        lines.append(f"  mean CE          {_share(mean_ce)} (cycles after the first)")
    if "retention_of_first_discharge" in figures:
        lines.append(f"  retention        {_share(figures['retention_of_first_discharge'])} "
                     "of the first discharge at the last")
        last = simulation.cycles[-1] if simulation.cycles else None
        if last is not None and last.reference_retention is not None:
            lines.append(f"                   {_share(last.reference_retention)} of reference "
                         "cycle's at the last cycle")
        reached = ", ".join(f"{level} at cycle {cycle}"
                            for level, cycle in outcome.cycles_to_retention.items())
        if reached:
            lines.append(f"                   reached {reached}")
    lines.append(f"  files in         {folder}")
    lines.extend(f"    {path.name}" for path in written)
    return lines


def run_simulate(args: argparse.Namespace) -> int:
    """``cellrig simulate``."""
    parameters = parse_parameters(args.params)
    temperature_c = _quantity(args.temperature, Kind.TEMPERATURE, "--temperature")
    pressure_pa = _quantity(args.pressure, Kind.PRESSURE, "--pressure")
    protocol = load_protocol_argument(args.protocol)
    cell = load_simulated_cell(args.cell)
    program, diagnostics = resolve(protocol, cell, parameters)
    for diagnostic in diagnostics:
        print(diagnostic.render(), file=sys.stderr)
    if program is None:
        errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
        print(f"{protocol.source.name}: NOT valid ({errors} error(s))", file=sys.stderr)
        return 1
    folder = Path(args.out) if args.out else default_folder(program.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot make the folder {folder}: {exc}") from None
    chosen = set(_dqdv_cycles(args.dqdv, 1)) if args.dqdv else {1, 2}
    plotter = None if args.no_plots else Plotter()  # imports matplotlib while the job runs
    writer = TimeSeriesWriter(folder, args.format)
    try:
        try:
            simulation = simulate(
                program, cell, temperature_c=temperature_c, pressure_pa=pressure_pa,
                formed=args.formed, reference_cycle=args.reference_cycle, on_samples=writer.add,
                keep_cycles=frozenset(chosen | set(range(1, FIRST_CYCLES + 1))))
            if plotter is not None:  # the child draws while the files are written
                plotter.start(_plot_job(simulation, folder, _dqdv_cycles(
                    args.dqdv, _last_discharged(simulation))))
        finally:
            timeseries = writer.close()
        written = [timeseries, *_write_others(simulation, folder, args.format)]
        if plotter is not None:
            written.extend(plotter.finish())
    finally:
        if plotter is not None:
            plotter.close()
    for line in summary_lines(simulation, summary_figures(simulation), folder.resolve(),
                              written):
        print(line)
    return 0

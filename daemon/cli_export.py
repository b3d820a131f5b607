"""``cellrig export JOB``: a job's Battery Data Format files, cycle table, provenance and
(``--plots``) PNG plots, read straight from the store file, so it works with the daemon
running or stopped."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .export import ExportFormat, export_job
from .store_read import StoreReader

#: Cycles of the voltage and current plot, and the default dQ/dV cycles besides the last.
PLOTTED_CYCLES = (1, 2, 3)


def store_file(args: argparse.Namespace) -> Path:
    """The store named by ``--store``, by ``--config``'s data folder, or the default
    configuration's."""
    if args.store:
        return Path(args.store)
    from .cli_station import DEFAULT_CONFIG
    from .service import store_path
    from .station_config import load_station

    if args.config or DEFAULT_CONFIG.is_file():
        return store_path(load_station(args.config or DEFAULT_CONFIG))
    from .cli_protocols import UsageError

    raise UsageError("which store? give --config station.toml or --store PATH")


def plot_job(reader: StoreReader, job_id: int, folder: Path) -> list[Path]:
    """The plots ``cellrig simulate`` draws, from a stored job: voltage and current over the
    first cycles, cycling, dQ/dV of cycles 1, 2 and the last, and the spectra. Only the
    samples of the plotted cycles are kept in memory."""
    from .simulate_plotter import PLOT_COLUMNS, PlotJob, draw

    cycles = reader.cycles(job_id)
    last = max((c.cycle for c in cycles if c.discharge_capacity_ah > 0), default=1)
    dqdv_cycles = sorted({c for c in (1, 2, last) if 1 <= c <= last})
    keep = set(PLOTTED_CYCLES) | set(dqdv_cycles)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in PLOT_COLUMNS}
    for chunk in reader.iter_samples(job_id, columns=PLOT_COLUMNS):
        mask = np.isin(chunk.columns["Cycle Count / 1"], list(keep))
        for name in PLOT_COLUMNS:
            parts[name].append(chunk.columns[name][mask])
    data = {name: np.concatenate(arrays) if arrays else np.zeros(0)
            for name, arrays in parts.items()}
    job = reader.job(job_id)
    start = job.started_unix_s or job.queued_unix_s
    stored = reader.spectra(job_id)
    spectra = [(s.step_id, s.step_count, s.spectrum) for s in stored]
    times_s = [(s.unix_time_s or start) - start for s in stored]
    folder.mkdir(parents=True, exist_ok=True)
    return draw(PlotJob(folder, data, cycles, spectra, times_s, dqdv_cycles))


def run_export(args: argparse.Namespace) -> int:
    """Export one job; prints the files written."""
    path = store_file(args)
    formats = [ExportFormat(text) for text in (args.formats or [f.value for f in ExportFormat])]
    folder = Path(args.out) if args.out else Path.cwd() / f"job-{args.job}"
    with StoreReader(path) as reader:
        reader.job(args.job)  # an unknown job fails here, before the folder is made
        written = export_job(reader, args.job, folder, formats=formats)
        if args.plots:
            written += plot_job(reader, args.job, folder)
    for file in written:
        print(file)
    return 0

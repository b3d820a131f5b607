"""Drawing the plots of a simulated job in a second interpreter, started with the job.

matplotlib takes about half a second to import and as long again to draw the plots. The
command starts ``python -m cellrig.daemon.simulate_plotter`` before it runs the protocol: the
child imports matplotlib on the machine's other core meanwhile, then waits for the plot data
(a pickle on its standard input: the few cycles that are plotted, the cycle summaries, the
spectra) and draws, sharing the plots with a forked copy of itself, while the parent writes
its files. If the child cannot be started or fails, the plots are drawn in the command's own
process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellrig.protocols.engine.output import CycleSummary
from cellrig.protocols.rig import Spectrum

#: The sample columns the plots use.
PLOT_COLUMNS = ("Test Time / s", "Voltage / V", "Current / A", "Cycle Count / 1",
                "Cycle Charging Capacity / Ah", "Cycle Discharging Capacity / Ah")
#: How long the child may take to draw once it has the data.
DRAW_TIMEOUT_S = 120.0


@dataclass
class PlotJob:
    """What the plots need."""

    folder: Path
    data: dict[str, np.ndarray]
    cycles: list[CycleSummary]
    spectra: list[tuple[int, int, Spectrum]]
    spectrum_times_s: list[float]
    dqdv_cycles: list[int]


def draw(job: PlotJob, forked: bool = False) -> list[Path]:
    """Every plot there is data for; returns the files written.

    ``forked``: a copy of this process (``os.fork``, which shares the imported matplotlib and
    its loaded fonts) draws the cycle and Nyquist plots while this one draws the others, so
    the plots take about half as long on two free cores. Only for a process without threads
    (the drawing child); where fork is missing or the copy fails, this process draws them.
    """
    from . import simulate_plots as plot

    def time_series() -> list[Path | None]:
        return [plot.plot_voltage_current(job.data, job.folder / "voltage_current.png"),
                plot.plot_dqdv(job.data, job.dqdv_cycles, job.folder / "dqdv.png")]

    def per_cycle() -> list[Path | None]:
        return [plot.plot_cycling(job.cycles, job.folder / "cycling.png"),
                plot.plot_nyquist(job.spectra, job.spectrum_times_s,
                                  job.folder / "nyquist.png")]

    copy = _fork(per_cycle) if forked else None
    first = time_series()
    second = _joined(copy) if copy is not None else None
    if second is None:
        second = per_cycle()
    made = [first[0], *second, first[1]]
    return [path for path in made if path is not None]


def _fork(work: Callable[[], list[Path | None]]) -> tuple[int, int] | None:
    """Run ``work`` in a forked copy of this process; its pid and the pipe it answers on
    (the paths it drew, one a line, ``-`` for a plot without data), or None."""
    if not hasattr(os, "fork"):
        return None
    reading, writing = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(reading)
        os.close(writing)
        return None
    if pid == 0:  # the copy: draw, answer, leave without running the parent's exit handlers
        status = 1
        try:
            os.close(reading)
            answer = "".join(f"{path if path is not None else '-'}\n" for path in work())
            os.write(writing, answer.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writing)
    return pid, reading


def _joined(copy: tuple[int, int]) -> list[Path | None] | None:
    """What the forked copy drew, or None if it failed."""
    pid, reading = copy
    with os.fdopen(reading, "rb") as answer:
        lines = answer.read().decode().splitlines()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    return [None if line == "-" else Path(line) for line in lines]


class Plotter:
    """The drawing child: started at once, given a job once, or closed unused."""

    def __init__(self) -> None:
        self._job: PlotJob | None = None
        try:
            self._child: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", "cellrig.daemon.simulate_plotter"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, "MPLBACKEND": "Agg"})
        except OSError:
            self._child = None

    def start(self, job: PlotJob) -> None:
        """Hand ``job`` to the child, which draws while this process goes on."""
        self._job = job
        if self._child is None or self._child.stdin is None:
            return
        stdin = self._child.stdin
        self._child.stdin = None  # closed here; communicate() must not touch it again
        try:
            stdin.write(pickle.dumps(job))
            stdin.close()
        except OSError:
            self._stop()

    def finish(self) -> list[Path]:
        """The files drawn (in this process, if the child is not there or failed)."""
        child, self._child = self._child, None
        if child is not None:
            try:
                out, _ = child.communicate(timeout=DRAW_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
            else:
                if child.returncode == 0:
                    return [Path(line) for line in out.decode().splitlines() if line]
        assert self._job is not None
        return draw(self._job)

    def close(self) -> None:
        """Stop the child if it is still there (the job failed before the plots)."""
        self._stop()

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.communicate()


def _main() -> int:
    from . import simulate_plots

    simulate_plots.preload()
    job = pickle.load(sys.stdin.buffer)  # from the parent process, through a pipe
    for path in draw(job, forked=True):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(_main())

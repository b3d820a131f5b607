"""PNG plots of a simulated job (matplotlib, Agg canvas, no display needed).

* ``voltage_current.png``: voltage and current against test time over the first cycles;
* ``cycling.png``: discharge capacity, Coulombic efficiency and retention against cycle;
* ``nyquist.png``: every EIS step's spectrum, −Z'' against Z';
* ``dqdv.png``: differential capacity dQ/dV against voltage, charge and discharge, of the
  chosen cycles.

dQ/dV is taken from the recorded samples: per charge or discharge of a cycle, the charge is
interpolated onto an even voltage grid (``DQDV_STEP_V``) where the voltage moves one way, and
differentiated there, so the recording interval sets how fine the peaks can be.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cellrig.protocols.engine.output import CycleSummary
from cellrig.protocols.rig import Spectrum

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]

#: Voltage grid of dQ/dV.
DQDV_STEP_V = 0.005
#: Cycles shown in the voltage and current plot.
FIRST_CYCLES = 3
DPI = 110


def preload() -> None:
    """Import matplotlib and load its fonts (a small figure drawn and thrown away)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = _figure(1.0, 1.0)
    figure.add_subplot().set_title("0")
    FigureCanvasAgg(figure)
    figure.savefig(io.BytesIO(), format="png")


def _figure(height_in: float = 4.0, width_in: float = 7.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def _save(figure: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.savefig(path)
    return path


def plot_voltage_current(data: dict[str, np.ndarray], path: Path,
                         cycles: int = FIRST_CYCLES) -> Path | None:
    """Voltage and current against time (hours) over the first ``cycles`` cycles."""
    mask = data["Cycle Count / 1"] <= cycles
    if not mask.any():
        return None
    hours = data["Test Time / s"][mask] / 3600.0
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(hours, data["Voltage / V"][mask], color="tab:blue", linewidth=1.0)
    axes.set_xlabel("test time / h")
    axes.set_ylabel("voltage / V", color="tab:blue")
    twin = axes.twinx()
    twin.plot(hours, data["Current / A"][mask] * 1000.0, color="tab:red", linewidth=0.8)
    twin.set_ylabel("current / mA", color="tab:red")
    last = int(data["Cycle Count / 1"][mask].max())
    axes.set_title(f"cycle{'s 1-' if last > 1 else ' '}{last}")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_cycling(cycles: list[CycleSummary], path: Path) -> Path | None:
    """Discharge capacity, Coulombic efficiency and retention against cycle."""
    done = [c for c in cycles if c.discharge_capacity_ah > 0]
    if not done:
        return None
    number = np.array([c.cycle for c in done])
    capacity = np.array([c.discharge_capacity_ah * 1000.0 for c in done])
    efficiency = np.array([np.nan if c.coulombic_efficiency is None
                           else 100.0 * c.coulombic_efficiency for c in done])
    retention = 100.0 * capacity / capacity[0]
    figure = _figure(height_in=6.5)
    axes = figure.subplots(3, 1, sharex=True)
    style = {"marker": "." if len(done) < 60 else None, "linewidth": 1.0}
    axes[0].plot(number, capacity, **style)
    axes[0].set_ylabel("discharge / mAh")
    axes[1].plot(number, efficiency, color="tab:green", **style)
    axes[1].set_ylabel("Coulombic eff. / %")
    if len(done) > 1:  # the first cycle's loss would squash the rest
        later = efficiency[1:][np.isfinite(efficiency[1:])]
        if later.size:
            low, high = float(later.min()), float(later.max())
            margin = max(0.02, 0.1 * (high - low))
            axes[1].set_ylim(low - margin, min(high + margin, 100.0 + margin))
    axes[2].plot(number, retention, color="tab:purple", **style)
    axes[2].set_ylabel("retention / %")
    axes[2].set_xlabel("cycle")
    for each in axes:
        each.grid(alpha=0.3)
    return _save(figure, path)


def plot_nyquist(spectra: list[tuple[int, int, Spectrum]], times_s: list[float],
                 path: Path) -> Path | None:
    """Every spectrum, −Z'' against Z', equal axes."""
    if not spectra:
        return None
    figure = _figure(height_in=5.0, width_in=6.0)
    axes = figure.add_subplot()
    for (step_id, step_count, spectrum), time_s in zip(spectra, times_s, strict=True):
        finite = np.isfinite(spectrum.z_real_ohm) & np.isfinite(spectrum.z_imag_ohm)
        axes.plot(spectrum.z_real_ohm[finite] * 1000.0, -spectrum.z_imag_ohm[finite] * 1000.0,
                  marker=".", markersize=3, linewidth=0.8,
                  label=f"step {step_count} (id {step_id}), {time_s / 3600.0:.1f} h")
    axes.set_xlabel("Z' / mOhm")
    axes.set_ylabel("-Z'' / mOhm")
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)


def dqdv(voltage_v: FloatArray, charge_ah: FloatArray) -> tuple[FloatArray, FloatArray]:
    """dQ/dV (Ah/V) on an even voltage grid, for a charge or a discharge (the voltage must
    move one way overall: where it turns back, the readings are dropped)."""
    rising = voltage_v[-1] >= voltage_v[0]
    volts = voltage_v if rising else -voltage_v
    keep = volts >= np.maximum.accumulate(volts)
    volts, charge = volts[keep], charge_ah[keep]
    volts, unique = np.unique(volts, return_index=True)
    charge = charge[unique]
    if volts.shape[0] < 3:
        return np.zeros(0), np.zeros(0)
    grid = np.arange(volts[0], volts[-1], DQDV_STEP_V)
    if grid.shape[0] < 3:
        return np.zeros(0), np.zeros(0)
    on_grid = np.interp(grid, volts, charge)
    slope = np.gradient(on_grid, DQDV_STEP_V)
    return (grid if rising else -grid), slope


def plot_dqdv(data: dict[str, np.ndarray], cycles: list[int], path: Path) -> Path | None:
    """dQ/dV of the chosen cycles, charge (positive) and discharge (negative)."""
    figure = _figure()
    axes = figure.add_subplot()
    drawn = 0
    for index, cycle in enumerate(cycles):
        labelled = False
        in_cycle = data["Cycle Count / 1"] == cycle
        color = f"C{index % 10}"
        for sign, column in ((1.0, "Cycle Charging Capacity / Ah"),
                             (-1.0, "Cycle Discharging Capacity / Ah")):
            mask = in_cycle & (sign * data["Current / A"] > 0)
            if mask.sum() < 3:
                continue
            volts, slope = dqdv(data["Voltage / V"][mask], data[column][mask])
            if volts.size:
                axes.plot(volts, sign * slope, color=color, linewidth=1.0,
                          label=None if labelled else f"cycle {cycle}")
                labelled = True
                drawn += 1
    if not drawn:
        return None
    axes.axhline(0.0, color="grey", linewidth=0.5)
    axes.set_xlabel("voltage / V")
    axes.set_ylabel("dQ/dV / (Ah/V)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _save(figure, path)

"""Nyquist and Bode plots of impedance spectra (and their fits), written as PNG files.

Figures are made with matplotlib's object interface on the Agg canvas: no pyplot state, no
display needed, safe to call from a daemon thread. Several spectra go on one figure (a
temperature or pressure series); a fit is drawn as a line over its spectrum's markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cellrig.daemon.eis_fit import EisFit, spectrum_impedance
from cellrig.protocols.rig import Spectrum

#: Points per decade of a fitted curve.
_CURVE_DENSITY = 40


def _curve_frequencies(spectrum: Spectrum) -> np.ndarray:
    low = float(np.min(spectrum.frequency_hz))
    high = float(np.max(spectrum.frequency_hz))
    decades = max(np.log10(high / low), 0.1)
    return np.geomspace(high, low, int(decades * _CURVE_DENSITY) + 1)


def _label(labels: Sequence[str] | None, index: int) -> str:
    return labels[index] if labels is not None else f"spectrum {index + 1}"


def _nyquist(axes: Axes, spectra: Sequence[Spectrum], fits: Sequence[EisFit | None],
             labels: Sequence[str] | None) -> None:
    for index, spectrum in enumerate(spectra):
        z = spectrum_impedance(spectrum)
        (points,) = axes.plot(z.real, -z.imag, "o", markersize=3, label=_label(labels, index))
        fit = fits[index] if index < len(fits) else None
        if fit is not None:
            curve = fit.impedance(_curve_frequencies(spectrum))
            axes.plot(curve.real, -curve.imag, "-", color=points.get_color(), linewidth=1,
                      label=f"fit {fit.circuit}")
    axes.set_xlabel("Z' / Ohm")
    axes.set_ylabel("-Z'' / Ohm")
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")


def _bode(modulus: Axes, phase: Axes, spectra: Sequence[Spectrum],
          fits: Sequence[EisFit | None], labels: Sequence[str] | None) -> None:
    for index, spectrum in enumerate(spectra):
        z = spectrum_impedance(spectrum)
        f = spectrum.frequency_hz
        (points,) = modulus.loglog(f, np.abs(z), "o", markersize=3, label=_label(labels, index))
        phase.semilogx(f, -np.degrees(np.angle(z)), "o", markersize=3, color=points.get_color())
        fit = fits[index] if index < len(fits) else None
        if fit is not None:
            curve_f = _curve_frequencies(spectrum)
            curve = fit.impedance(curve_f)
            modulus.loglog(curve_f, np.abs(curve), "-", color=points.get_color(), linewidth=1)
            phase.semilogx(curve_f, -np.degrees(np.angle(curve)), "-",
                           color=points.get_color(), linewidth=1)
    modulus.set_ylabel("|Z| / Ohm")
    phase.set_ylabel("-phase / deg")
    phase.set_xlabel("frequency / Hz")
    for axes in (modulus, phase):
        axes.grid(True, which="both", alpha=0.3)
    modulus.legend(fontsize="small")


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=120)
    return path


def nyquist_png(path: str | Path, spectra: Sequence[Spectrum],
                fits: Sequence[EisFit | None] = (), labels: Sequence[str] | None = None,
                title: str | None = None) -> Path:
    """A Nyquist plot (−Z'' against Z', equal scales) of the spectra, with their fits."""
    figure = Figure(figsize=(6.0, 5.0), layout="constrained")
    axes = figure.add_subplot()
    _nyquist(axes, spectra, fits, labels)
    if title:
        axes.set_title(title)
    return _save(figure, Path(path))


def bode_png(path: str | Path, spectra: Sequence[Spectrum],
             fits: Sequence[EisFit | None] = (), labels: Sequence[str] | None = None,
             title: str | None = None) -> Path:
    """A Bode plot (|Z| and −phase against frequency) of the spectra, with their fits."""
    figure = Figure(figsize=(6.0, 6.0), layout="constrained")
    modulus, phase = figure.subplots(2, 1, sharex=True)
    _bode(modulus, phase, spectra, fits, labels)
    if title:
        modulus.set_title(title)
    return _save(figure, Path(path))

"""Fit an equivalent circuit to an impedance spectrum: bulk and interfacial resistance, their
uncertainties, and area-specific resistance.

The fit is :func:`scipy.optimize.least_squares` (trust-region reflective, bounds) on the
relative residual ``(Z_model − Z)/|Z|`` — modulus weighting, so every frequency counts alike
whether the cell shows milliohms at 1 MHz or ohms at 10 mHz. Positive parameters are fitted as
logarithms (decades apart, all of them positive); CPE exponents linearly within 0.4–1.

Initial guesses come from the spectrum itself: the series resistance from the high-frequency
intercept, each arc's resistance and time constant from the peaks and valleys of −Z'' (the arc
tops and the dips between arcs), a Warburg coefficient from the low-frequency tail. A few
starts around those guesses are tried and the best kept. Uncertainties are one standard error
from the Jacobian at the optimum (``cov = s²·(JᵀJ)⁻¹``, ``s²`` the residual variance), carried to
the parameters by the delta method.

"Bulk" is the series resistance outside every parallel group (the electrolyte and contacts);
"interfacial" the resistance of the first parallel group that has one (the highest-frequency
arc, e.g. the Ag–C | electrolyte interface), unless named otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares
from scipy.signal import find_peaks

from cellrig.daemon.eis_circuit import (
    DEFAULT_CIRCUIT,
    Circuit,
    ComplexArray,
    FloatArray,
    Parallel,
    elements_in,
)
from cellrig.protocols.rig import Spectrum

_ALPHA_BOUNDS = (0.4, 1.0)
_BOLTZMANN_EV_PER_K = 8.617333262e-5


@dataclass(frozen=True, slots=True)
class FittedParameter:
    """One fitted parameter with its standard error (NaN when it cannot be estimated);
    ``at_bound`` says the optimum sits on a bound, so the circuit probably does not suit the
    spectrum (or the element is not needed)."""

    name: str
    value: float
    stderr: float
    unit: str
    at_bound: bool = False


@dataclass(frozen=True, slots=True)
class EisFit:
    """The result of a fit: every parameter, the bulk and interfacial resistances, the ASRs."""

    circuit: str
    parameters: dict[str, FittedParameter]
    bulk_resistance_ohm: float
    bulk_stderr_ohm: float
    interfacial_resistance_ohm: float
    interfacial_stderr_ohm: float
    area_m2: float | None
    relative_rms: float
    success: bool

    @property
    def bulk_asr_ohm_cm2(self) -> float | None:
        """Bulk area-specific resistance (Ω·cm²), if the area is known."""
        return None if self.area_m2 is None else self.bulk_resistance_ohm * self.area_m2 * 1e4

    @property
    def interfacial_asr_ohm_cm2(self) -> float | None:
        """Interfacial area-specific resistance (Ω·cm²), if the area is known."""
        if self.area_m2 is None:
            return None
        return self.interfacial_resistance_ohm * self.area_m2 * 1e4

    def impedance(self, frequency_hz: npt.ArrayLike) -> ComplexArray:
        """The fitted circuit's impedance."""
        circuit = Circuit(self.circuit)
        return circuit.impedance(frequency_hz,
                                 [self.parameters[name].value for name in circuit.parameters])

    def summary(self) -> str:
        """A few lines for a report or a log."""
        lines = [f"circuit {self.circuit}: relative rms residual {self.relative_rms:.2%}"]
        lines += [f"  {p.name} = {p.value:.4g} ± {p.stderr:.2g} {p.unit}"
                  + (" (at a bound)" if p.at_bound else "") for p in self.parameters.values()]
        lines.append(f"  bulk R = {self.bulk_resistance_ohm:.4g} ± {self.bulk_stderr_ohm:.2g} "
                     f"Ohm, interfacial R = {self.interfacial_resistance_ohm:.4g} ± "
                     f"{self.interfacial_stderr_ohm:.2g} Ohm")
        bulk_asr, interface_asr = self.bulk_asr_ohm_cm2, self.interfacial_asr_ohm_cm2
        if bulk_asr is not None and interface_asr is not None:
            lines.append(f"  ASR bulk {bulk_asr:.4g} Ohm cm2, interfacial {interface_asr:.4g} "
                         "Ohm cm2")
        return "\n".join(lines)


def spectrum_impedance(spectrum: Spectrum) -> ComplexArray:
    """The spectrum's complex impedance."""
    return np.asarray(spectrum.z_real_ohm + 1j * spectrum.z_imag_ohm, dtype=np.complex128)


def fit_spectrum(spectrum: Spectrum, circuit: str = DEFAULT_CIRCUIT, *,
                 area_m2: float | None = None, interfacial: Sequence[str] | None = None,
                 starts: int = 3) -> EisFit:
    """Fit ``circuit`` to ``spectrum``; ``area_m2`` gives the ASRs, ``interfacial`` names the
    resistances that make up the interfacial resistance (default: the first arc's)."""
    model = Circuit(circuit)
    frequency = np.asarray(spectrum.frequency_hz, dtype=float)
    measured = spectrum_impedance(spectrum)
    keep = np.isfinite(frequency) & np.isfinite(measured) & (frequency > 0)
    frequency, measured = frequency[keep], measured[keep]
    if frequency.size <= len(model.parameters):
        raise ValueError(f"{frequency.size} points cannot fit the {len(model.parameters)} "
                         f"parameters of {circuit}")
    scale = np.abs(measured)
    is_alpha = np.array([name.endswith("_alpha") for name in model.parameters])
    low, high = _bounds(model, float(np.max(scale)))

    def residuals(x: FloatArray) -> FloatArray:
        values = _values(x, is_alpha)
        difference = (model.impedance(frequency, list(values)) - measured) / scale
        return np.concatenate((difference.real, difference.imag))

    best = None
    for start in _starts(model, frequency, measured, starts):
        x0 = np.clip(np.where(is_alpha, start, np.log(np.maximum(start, 1e-300))), low, high)
        result = least_squares(residuals, x0, bounds=(low, high), x_scale="jac",
                               method="trf", max_nfev=4000)
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    values = _values(best.x, is_alpha)
    covariance = _covariance(best.jac, best.fun, len(values))
    gradient = np.where(is_alpha, 1.0, values)          # d value / d x
    margin = 1e-6 * (high - low)
    at_bound = (best.x <= low + margin) | (best.x >= high - margin)
    parameters = {
        name: FittedParameter(name, float(value), _stderr(covariance, gradient, [index]), unit,
                              bool(at_bound[index]))
        for index, (name, value, unit) in enumerate(zip(model.parameters, values, model.units,
                                                        strict=True))}
    bulk_names, interface_names = _roles(model, interfacial)
    index_of = {name: index for index, name in enumerate(model.parameters)}
    bulk_idx = [index_of[name] for name in bulk_names]
    interface_idx = [index_of[name] for name in interface_names]
    return EisFit(
        circuit=model.text, parameters=parameters,
        bulk_resistance_ohm=float(sum(values[i] for i in bulk_idx)),
        bulk_stderr_ohm=_stderr(covariance, gradient, bulk_idx),
        interfacial_resistance_ohm=float(sum(values[i] for i in interface_idx)),
        interfacial_stderr_ohm=_stderr(covariance, gradient, interface_idx),
        area_m2=area_m2, relative_rms=float(np.sqrt(np.mean(best.fun ** 2))),
        success=bool(best.success))


def _values(x: FloatArray, is_alpha: npt.NDArray[np.bool_]) -> FloatArray:
    return np.where(is_alpha, x, np.exp(x))


def _covariance(jacobian: FloatArray, residual: FloatArray, count: int) -> FloatArray:
    dof = max(residual.size - count, 1)
    variance = float(residual @ residual) / dof
    return np.asarray(np.linalg.pinv(jacobian.T @ jacobian) * variance, dtype=float)


def _stderr(covariance: FloatArray, gradient: FloatArray, indices: list[int]) -> float:
    if not indices:
        return math.nan
    g = np.zeros(covariance.shape[0])
    g[indices] = gradient[indices]
    variance = float(g @ covariance @ g)
    return math.sqrt(variance) if variance >= 0 else math.nan


def _roles(model: Circuit, interfacial: Sequence[str] | None) -> tuple[list[str], list[str]]:
    bulk = [e.name for e in model.elements if e.kind == "R" and not e.in_parallel]
    if interfacial is not None:
        unknown = [name for name in interfacial if name not in model.parameters]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in {model.text}")
        return bulk, list(interfacial)
    first_arc = next((e.name for e in model.elements if e.kind == "R" and e.in_parallel), None)
    return bulk, [] if first_arc is None else [first_arc]


def _bounds(model: Circuit, biggest_ohm: float) -> tuple[FloatArray, FloatArray]:
    """Sensible bounds, as logarithms except for CPE exponents."""
    per_unit = {"Ohm": (biggest_ohm * 1e-9, biggest_ohm * 1e3), "F": (1e-15, 1e8),
                "H": (1e-15, 1.0), "s": (1e-9, 1e9), "F s^(alpha-1)": (1e-15, 1e8),
                "Ohm s^-1/2": (biggest_ohm * 1e-9, biggest_ohm * 1e3)}
    low, high = [], []
    for name, unit in zip(model.parameters, model.units, strict=True):
        if name.endswith("_alpha"):
            low.append(_ALPHA_BOUNDS[0])
            high.append(_ALPHA_BOUNDS[1])
        else:
            lo, hi = per_unit[unit]
            low.append(math.log(lo))
            high.append(math.log(hi))
    return np.array(low), np.array(high)


@dataclass(frozen=True, slots=True)
class _Features:
    """What the guesses are read from: high-frequency intercept, arcs, low-frequency tail."""

    series_ohm: float
    arc_ohm: list[float]
    arc_hz: list[float]
    low_hz: float
    low_real_ohm: float
    low_imag_ohm: float
    high_hz: float
    high_imag_ohm: float


def _features(frequency: FloatArray, measured: ComplexArray, arcs: int) -> _Features:
    order = np.argsort(frequency)[::-1]
    f, z = frequency[order], measured[order]
    capacitive = -z.imag
    spread = float(np.ptp(capacitive)) or 1.0
    peaks, _ = find_peaks(capacitive, prominence=0.02 * spread)
    valleys, _ = find_peaks(-capacitive, prominence=0.02 * spread)
    series = max(float(np.min(z.real)), 1e-9 * float(np.max(np.abs(z))))
    end_real = float(z.real[valleys[-1]]) if valleys.size else float(z.real[-1])
    span = max(end_real - series, 1e-3 * series)
    # arc tops, highest frequency first, filled geometrically where too few peaks show
    tops = [float(f[i]) for i in peaks][:arcs]
    while len(tops) < arcs:
        upper = tops[-1] / 30.0 if tops else float(f[0]) / 10.0
        tops.append(max(upper, float(f[-1]) * 3.0))
    bounds = [series, *[float(z.real[i]) for i in valleys][:arcs]]
    steps = [b - a for a, b in itertools.pairwise(bounds)]
    if len(steps) == arcs and all(step > 0 for step in steps):
        resistances = steps
    else:
        resistances = [span / max(arcs, 1)] * arcs
    return _Features(series, resistances, tops, float(f[-1]), float(z.real[-1]),
                     float(z.imag[-1]), float(f[0]), float(z.imag[0]))


def _starts(model: Circuit, frequency: FloatArray, measured: ComplexArray,
            count: int) -> list[FloatArray]:
    groups = _arc_groups(model)
    found = _features(frequency, measured, max(len(groups), 1))
    starts = []
    for shift in (1.0, 3.0, 1 / 3.0, 10.0, 0.1)[:max(count, 1)]:
        starts.append(np.array(_guess(model, found, groups, shift), dtype=float))
    return starts


def _arc_groups(model: Circuit) -> dict[str, int]:
    """Which arc (parallel group of the top-level series, in order) each element in a parallel
    group belongs to."""
    groups: dict[str, int] = {}
    arcs = [part for part in model.root.parts if isinstance(part, Parallel)]
    for index, group in enumerate(arcs):
        for branch in group.branches:
            for element in elements_in(branch):
                groups[element.name] = index
    return groups


def _guess(model: Circuit, found: _Features, groups: dict[str, int],
           shift: float) -> list[float]:
    omega_low = 2 * math.pi * found.low_hz
    tail = max(-found.low_imag_ohm, 1e-6 * found.series_ohm)
    guesses: list[float] = []
    series_seen = 0
    for element in model.elements:
        arc = groups.get(element.name)
        r_arc = found.arc_ohm[arc] if arc is not None else found.series_ohm
        tau = shift / (2 * math.pi * found.arc_hz[arc]) if arc is not None else 1 / omega_low
        if element.kind == "R":
            if arc is None:
                guesses.append(found.series_ohm if series_seen == 0 else 0.1 * found.series_ohm)
                series_seen += 1
            else:
                guesses.append(r_arc)
        elif element.kind == "CPE":
            alpha = 0.85
            guesses += [tau ** alpha / r_arc, alpha]
        elif element.kind == "C":
            guesses.append(tau / r_arc if arc is not None else 1 / (omega_low * tail))
        elif element.kind == "L":
            omega_high = 2 * math.pi * found.high_hz
            guesses.append(max(found.high_imag_ohm / omega_high, 1e-9))
        elif element.kind == "W":
            guesses.append(tail * math.sqrt(omega_low) / 2)
        else:  # Ws, Wo
            remaining = found.low_real_ohm - found.series_ohm - sum(found.arc_ohm)
            guesses += [max(remaining, 0.1 * found.series_ohm) * shift, 1 / omega_low]
    return guesses


def ionic_conductivity_s_per_m(resistance_ohm: float, thickness_m: float,
                               area_m2: float) -> float:
    """Ionic conductivity of a pellet or separator from its bulk resistance: σ = L/(R·A)."""
    return thickness_m / (resistance_ohm * area_m2)


def activation_energy_ev(temperatures_c: Sequence[float],
                         conductivities_s_per_m: Sequence[float]) -> float:
    """Arrhenius activation energy from conductivities at several temperatures: the slope of
    ln σ against 1/T is −Ea/k_B (the form the cell model uses for the electrolyte)."""
    inverse_t = 1.0 / (np.asarray(temperatures_c, dtype=float) + 273.15)
    slope, _ = np.polyfit(inverse_t, np.log(np.asarray(conductivities_s_per_m, dtype=float)), 1)
    return float(-slope * _BOLTZMANN_EV_PER_K)

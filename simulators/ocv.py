"""Open-circuit voltage of an anode-free NMC | Li6PS5Cl | Ag–C cell.

The cell voltage at rest is the cathode's potential against lithium minus the anode's:

    OCV = U_NMC(s) − U_anode(a)

``s`` is the lithium taken out of the cathode in mAh per gram of NMC; ``a`` is the lithium held
by the anode, per unit area. The anode of an anode-free cell holds no lithium when it is built.
On the first charge lithium first alloys into the thin Ag–C layer, whose potential slopes from
about 0.5 V down to 0 V against lithium (the "sloping region" of the first charge, a few % of the
capacity); at the knee the layer is full and lithium plates between the Ag–C layer and the
stainless-steel foil, at the potential of lithium itself. From there on the cell voltage follows
the NMC curve against Li (the "plateau region", which for NMC is a gentle slope from ~3.6 V to
4.25 V). When a discharge empties the anode its potential climbs steeply (bare carbon and steel
hold no lithium), which is what ends a discharge once the lithium inventory runs short (in a
fresh cell the NMC's sluggish lithiation ends it first, see ``cell_circuit``).

Both electrode curves are strictly monotonic and continuously differentiable, so the cell OCV is
too: it can be inverted (state of charge from voltage, by interpolation on a fine table) and its
derivative gives a smooth dQ/dV.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def _softplus(x: ArrayLike) -> FloatArray:
    values = np.asarray(x, dtype=float)
    return np.asarray(np.logaddexp(0.0, values), dtype=float)


def _softplus_scalar(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _sigmoid(x: ArrayLike) -> FloatArray:
    values = np.asarray(x, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * values))


#: The NMC cathode as "galleries" of the multi-site, multi-reaction (MSMR) model (Verbrugge et
#: al., J. Electrochem. Soc. 164, E3243, 2017): each takes ``X`` mAh/g of lithium out around a
#: potential ``U0`` (V vs Li) over a width ``ω`` (V), so the lithium out at a potential ``U`` is
#: ``Σ X/(1 + exp(−(U − U0)/ω))`` and dQ/dV is a sum of smooth bell-shaped peaks: the H1→M
#: transition near 3.73 V, the broad monoclinic region, and the H2→H3 transition near 4.17 V of
#: a high-nickel NMC (Ni ≥ 0.8). The values were fitted to a representative quasi-equilibrium
#: curve of such an NMC at 60 °C, with levels typical of GITT data rather than one measurement
#: (3.5 V at ~10 mAh/g, 3.7 V at ~45, 3.82 V at 100, 4.0 V at ~155, 4.17 V at ~205, 4.25 V at
#: ~232 mAh/g), set so that the model with the paper cell's resistances discharges at 0.5 C with
#: an average of 3.76 V and gives 215 mAh/g at 0.2 C (tests/unit/test_cell_model.py). The
#: galleries hold 262 mAh/g in all, below the 275 mAh/g of a complete delithiation.
NMC_GALLERIES: tuple[tuple[float, float, float], ...] = (
    (38.00, 3.7304, 0.0407),
    (135.60, 3.8716, 0.1306),
    (32.74, 4.0329, 0.3017),
    (48.25, 4.1730, 0.0696),
    (7.06, 4.1748, 0.0172),
)
#: Potential of the pristine (fully lithiated) NMC: the curve's zero of lithium out.
NMC_PRISTINE_V = 3.0
#: Highest potential of the tabulated curve; beyond it the curve continues on its end slope.
NMC_TABLE_TOP_V = 5.2


def nmc_lithium_out_mah_g(potential_v: ArrayLike) -> FloatArray:
    """Lithium out of the NMC (mAh/g) at a potential against Li, counted from the pristine
    oxide at :data:`NMC_PRISTINE_V` (the MSMR sum of :data:`NMC_GALLERIES`)."""
    potential = np.asarray(potential_v, dtype=float)

    def total(u: FloatArray) -> FloatArray:
        parts = [amount * _sigmoid((u - centre) / width)
                 for amount, centre, width in NMC_GALLERIES]
        return np.asarray(np.sum(parts, axis=0), dtype=float)

    return total(potential) - total(np.asarray(NMC_PRISTINE_V))


class MonotoneCurve:
    """A strictly increasing curve through knots, by Steffen's monotone cubic interpolation.

    Steffen's method (Astron. Astrophys. 239, 443, 1990) picks the knot slopes so that the
    piecewise cubic never overshoots: increasing knots give a strictly increasing, continuously
    differentiable curve. Outside the knots it continues as a straight line with the end slope.
    Every method takes and returns arrays (or floats) and works element-wise.
    """

    def __init__(self, x: ArrayLike, y: ArrayLike) -> None:
        xs = np.asarray(x, dtype=float)
        ys = np.asarray(y, dtype=float)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 3:
            raise ValueError("a monotone curve needs at least three knots, x and y alike")
        if np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) <= 0):
            raise ValueError("a monotone curve needs strictly increasing x and y")
        self.x = xs
        self.y = ys
        self.slopes = _steffen_slopes(xs, ys)
        self._knots = [float(v) for v in xs]
        self._values = [float(v) for v in ys]
        self._slopes = [float(v) for v in self.slopes]
        # For value(): each interval's cubic in powers of t, and the inner knots to search.
        width = np.diff(xs)
        start_slope, end_slope = self.slopes[:-1] * width, self.slopes[1:] * width
        rise = np.diff(ys)
        self._inner = xs[1:-1].copy()
        self._start = xs[:-1].copy()
        self._per_width = 1.0 / width
        self._cubic = (ys[:-1].copy(), start_slope, 3.0 * rise - 2.0 * start_slope - end_slope,
                       start_slope + end_slope - 2.0 * rise)

    def __call__(self, x: ArrayLike) -> FloatArray:
        """The curve's value at ``x``."""
        return self.value(x)

    def value(self, x: ArrayLike) -> FloatArray:
        """The curve's value at ``x``, without the slope: the same cubic as :meth:`evaluate`,
        in Horner form from coefficients made once (a third of the time; the two agree to a
        few units in the last place)."""
        xs = np.asarray(x, dtype=float)
        index = np.searchsorted(self._inner, xs, side="right")
        t = xs - self._start[index]
        t *= self._per_width[index]
        c0, c1, c2, c3 = self._cubic
        value = c3[index]
        value *= t
        value += c2[index]
        value *= t
        value += c1[index]
        value *= t
        value += c0[index]
        if xs.size and (xs.min() < self.x[0] or xs.max() > self.x[-1]):
            value = np.where(xs < self.x[0], self.y[0] + self.slopes[0] * (xs - self.x[0]),
                             value)
            value = np.where(xs > self.x[-1], self.y[-1] + self.slopes[-1] * (xs - self.x[-1]),
                             value)
        return np.asarray(value, dtype=float)

    def evaluate(self, x: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Value and slope at ``x``."""
        xs = np.asarray(x, dtype=float)
        last = self.x.size - 2
        index = np.minimum(np.maximum(np.searchsorted(self.x, xs, side="right") - 1, 0), last)
        x0 = self.x[index]
        width = self.x[index + 1] - x0
        # Outside the knots t leaves [0, 1]; those points are replaced by the end lines below.
        t = (xs - x0) / width
        y0, y1 = self.y[index], self.y[index + 1]
        m0, m1 = self.slopes[index] * width, self.slopes[index + 1] * width
        t2 = t * t
        t3 = t2 * t
        value = ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0
                 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1)
        slope = ((6 * t2 - 6 * t) * (y0 - y1) + (3 * t2 - 4 * t + 1) * m0
                 + (3 * t2 - 2 * t) * m1) / width
        below = xs < self.x[0]
        above = xs > self.x[-1]
        if below.any():
            value = np.where(below, self.y[0] + self.slopes[0] * (xs - self.x[0]), value)
            slope = np.where(below, self.slopes[0], slope)
        if above.any():
            value = np.where(above, self.y[-1] + self.slopes[-1] * (xs - self.x[-1]), value)
            slope = np.where(above, self.slopes[-1], slope)
        return value, slope

    def evaluate_scalar(self, x: float) -> tuple[float, float]:
        """Value and slope at one point, in plain Python (for step-by-step integration)."""
        knots = self.x
        last = len(knots) - 1
        if x <= knots[0]:
            return float(self.y[0] + self.slopes[0] * (x - knots[0])), float(self.slopes[0])
        if x >= knots[last]:
            return (float(self.y[last] + self.slopes[last] * (x - knots[last])),
                    float(self.slopes[last]))
        index = bisect.bisect_right(self._knots, x) - 1
        x0 = self._knots[index]
        width = self._knots[index + 1] - x0
        t = (x - x0) / width
        y0, y1 = self._values[index], self._values[index + 1]
        m0, m1 = self._slopes[index] * width, self._slopes[index + 1] * width
        t2 = t * t
        t3 = t2 * t
        value = ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * m0
                 + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * m1)
        slope = ((6 * t2 - 6 * t) * (y0 - y1) + (3 * t2 - 4 * t + 1) * m0
                 + (3 * t2 - 2 * t) * m1) / width
        return value, slope

    def inverse(self, y: ArrayLike) -> FloatArray:
        """The ``x`` at which the curve takes the value ``y`` (Newton steps from a linear
        first guess; the curve is strictly increasing, so the answer is unique)."""
        ys = np.asarray(y, dtype=float)
        guess = np.interp(ys, self.y, self.x)
        guess = np.where(ys < self.y[0], self.x[0] + (ys - self.y[0]) / self.slopes[0], guess)
        guess = np.where(ys > self.y[-1], self.x[-1] + (ys - self.y[-1]) / self.slopes[-1], guess)
        for _ in range(8):
            value, slope = self.evaluate(guess)
            guess = guess - (value - ys) / np.maximum(slope, 1e-12)
        return np.asarray(guess, dtype=float)


def _steffen_slopes(x: FloatArray, y: FloatArray) -> FloatArray:
    width = np.diff(x)
    secant = np.diff(y) / width
    slopes = np.empty_like(x)
    parabola = (secant[:-1] * width[1:] + secant[1:] * width[:-1]) / (width[:-1] + width[1:])
    slopes[1:-1] = np.minimum(np.minimum(2 * secant[:-1], 2 * secant[1:]), parabola)
    first = secant[0] * (1 + width[0] / (width[0] + width[1])) - secant[1] * width[0] / (
        width[0] + width[1])
    last = secant[-1] * (1 + width[-1] / (width[-1] + width[-2])) - secant[-2] * width[-1] / (
        width[-1] + width[-2])
    slopes[0] = min(max(first, 0.5 * secant[0]), 2 * secant[0])
    slopes[-1] = min(max(last, 0.5 * secant[-1]), 2 * secant[-1])
    return slopes


def _nmc_curve() -> MonotoneCurve:
    potential = np.linspace(NMC_PRISTINE_V, NMC_TABLE_TOP_V, 2201)
    return MonotoneCurve(nmc_lithium_out_mah_g(potential), potential)


#: The NMC cathode against Li: potential (V) over lithium out (mAh/g), the MSMR curve
#: tabulated every millivolt and interpolated.
NMC_VS_LI = _nmc_curve()


@dataclass(frozen=True, slots=True)
class AnodeCurve:
    """Potential of the Ag–C | stainless-steel anode against Li, over its lithium content.

    ``agc_capacity_ah_m2`` is the lithium the Ag–C layer takes before lithium plates (the knee);
    ``agc_potential_v`` the layer's potential when it is empty; ``knee_width_ah_m2`` how sharp the
    knee is. ``bare_potential_v`` is the extra rise of an anode emptied of lithium (bare carbon
    and steel), over a content of ``bare_width_ah_m2``. Contents in Ah/m² (1 mAh/cm² = 10 Ah/m²).
    """

    agc_capacity_ah_m2: float
    agc_potential_v: float
    knee_width_ah_m2: float
    bare_potential_v: float
    bare_width_ah_m2: float

    def evaluate(self, lithium_ah_m2: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Potential (V vs Li) and its slope (V per Ah/m²) at each lithium content.

        The sloping part is a softened ramp, ``k·w·ln(1 + exp((a_k − a)/w))``: a straight line
        from ``agc_potential_v`` at ``a = 0`` down to 0 V at the knee ``a_k``, rounded over the
        width ``w``, then 0 V (plating). The bare-anode part is ``E_b·exp(−a/w_b)`` for
        ``a ≥ 0`` and continues as its tangent below 0 (an over-discharged anode).
        """
        content = np.asarray(lithium_ah_m2, dtype=float)
        width = self.knee_width_ah_m2
        knee = self.agc_capacity_ah_m2
        steep = self.agc_potential_v / (width * _softplus(knee / width))
        argument = (knee - content) / width
        ramp = steep * width * _softplus(argument)
        ramp_slope = -steep * _sigmoid(argument)
        bare_width = self.bare_width_ah_m2
        decay = np.exp(-np.maximum(content, 0.0) / bare_width)
        bare = self.bare_potential_v * np.where(content >= 0, decay, 1.0 - content / bare_width)
        bare_slope = -self.bare_potential_v / bare_width * np.where(content >= 0, decay, 1.0)
        return ramp + bare, ramp_slope + bare_slope

    def potential_v(self, lithium_ah_m2: ArrayLike) -> FloatArray:
        """The potential of :meth:`evaluate` without its slope (the constants as plain floats,
        the arrays worked on in place)."""
        given = np.asarray(lithium_ah_m2, dtype=float)
        content = given.reshape(-1)  # at least one dimension, for the in-place steps
        width = self.knee_width_ah_m2
        knee = self.agc_capacity_ah_m2
        steep = self.agc_potential_v / (width * _softplus_scalar(knee / width))
        ramp = np.subtract(knee, content)
        ramp /= width
        np.logaddexp(0.0, ramp, out=ramp)
        ramp *= steep * width
        bare_width = self.bare_width_ah_m2
        if content.size and content.min() < 0:
            decay = np.exp(-np.maximum(content, 0.0) / bare_width)
            ramp += self.bare_potential_v * np.where(content >= 0, decay,
                                                     1.0 - content / bare_width)
            return np.asarray(ramp.reshape(given.shape), dtype=float)
        bare = np.divide(content, -bare_width)
        np.exp(bare, out=bare)
        bare *= self.bare_potential_v
        bare += ramp
        return np.asarray(bare.reshape(given.shape), dtype=float)

    def evaluate_scalar(self, lithium_ah_m2: float) -> tuple[float, float]:
        """:meth:`evaluate` at one point, in plain Python."""
        width = self.knee_width_ah_m2
        knee = self.agc_capacity_ah_m2
        steep = self.agc_potential_v / (width * _softplus_scalar(knee / width))
        argument = (knee - lithium_ah_m2) / width
        ramp = steep * width * _softplus_scalar(argument)
        ramp_slope = -steep * 0.5 * (1.0 + math.tanh(0.5 * argument))
        bare_width = self.bare_width_ah_m2
        if lithium_ah_m2 >= 0:
            decay = math.exp(-lithium_ah_m2 / bare_width)
            bare = self.bare_potential_v * decay
            bare_slope = -self.bare_potential_v / bare_width * decay
        else:
            bare = self.bare_potential_v * (1.0 - lithium_ah_m2 / bare_width)
            bare_slope = -self.bare_potential_v / bare_width
        return ramp + bare, ramp_slope + bare_slope

    def plated_ah_m2(self, lithium_ah_m2: ArrayLike) -> FloatArray:
        """Lithium plated as metal beyond the Ag–C layer: the softened ``max(a − a_k, 0)``,
        shifted so that an empty anode has none."""
        content = np.asarray(lithium_ah_m2, dtype=float)
        width = self.knee_width_ah_m2
        knee = self.agc_capacity_ah_m2
        return width * (_softplus((content - knee) / width) - _softplus(-knee / width))


@dataclass(frozen=True, slots=True)
class CellOcv:
    """The cell's OCV from the lithium in each electrode.

    ``capacity_ah`` is the nominal capacity (the reference of state of charge), ``area_m2`` the
    electrode area, ``cathode_mass_kg`` the NMC mass. The anode's lithium is in Ah; the cathode's
    state is the lithium taken out of it, also in Ah. The two differ by the lithium the cell has
    lost (consumed in side reactions or left electrically isolated as "dead" lithium).
    """

    capacity_ah: float
    area_m2: float
    cathode_mass_kg: float
    anode: AnodeCurve
    cathode: MonotoneCurve = NMC_VS_LI

    def evaluate(self, anode_ah: ArrayLike, cathode_ah: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """OCV (V) and its slope (V/Ah) when both electrodes take up the same charge."""
        # mAh/g = 1000 mAh / 1000 g: Ah per kg is numerically mAh per g.
        specific = np.asarray(cathode_ah, dtype=float) / self.cathode_mass_kg
        cathode_v, cathode_slope = self.cathode.evaluate(specific)
        anode_v, anode_slope = self.anode.evaluate(np.asarray(anode_ah, dtype=float) / self.area_m2)
        slope = cathode_slope / self.cathode_mass_kg - anode_slope / self.area_m2
        return cathode_v - anode_v, slope

    def evaluate_scalar(self, anode_ah: float, cathode_ah: float) -> tuple[float, float]:
        """:meth:`evaluate` at one state, in plain Python (for step-by-step integration)."""
        cathode_v, cathode_slope = self.cathode.evaluate_scalar(cathode_ah / self.cathode_mass_kg)
        anode_v, anode_slope = self.anode.evaluate_scalar(anode_ah / self.area_m2)
        return (cathode_v - anode_v,
                cathode_slope / self.cathode_mass_kg - anode_slope / self.area_m2)

    def voltage_v(self, anode_ah: ArrayLike, cathode_ah: ArrayLike) -> FloatArray:
        """OCV (V) for the lithium in the anode and the lithium out of the cathode (Ah): the
        value of :meth:`evaluate`, computed without the slopes."""
        cathode_v = self.cathode.value(np.divide(cathode_ah, self.cathode_mass_kg))
        return np.asarray(cathode_v - self.anode.potential_v(np.divide(anode_ah, self.area_m2)),
                          dtype=float)

    def of_soc(self, soc: ArrayLike, lost_fraction: float = 0.0) -> FloatArray:
        """OCV at a state of charge (anode lithium over nominal capacity) for a cell that has
        lost ``lost_fraction`` of its nominal capacity in lithium."""
        anode = np.asarray(soc, dtype=float) * self.capacity_ah
        return self.voltage_v(anode, anode + lost_fraction * self.capacity_ah)

    def soc_of(self, voltage_v: ArrayLike, lost_fraction: float = 0.0) -> FloatArray:
        """State of charge at an OCV, by interpolation on a table of 4,001 points from an empty
        anode to 25 % beyond the nominal capacity (voltages outside it are clipped)."""
        grid = np.linspace(0.0, 1.25, 4001)
        table = self.of_soc(grid, lost_fraction)
        return np.asarray(np.interp(np.asarray(voltage_v, dtype=float), table, grid), dtype=float)

    def dqdv_ah_per_v(self, soc: ArrayLike, lost_fraction: float = 0.0) -> FloatArray:
        """Differential capacity dQ/dV (Ah/V) at a state of charge, from the analytic slope."""
        anode = np.asarray(soc, dtype=float) * self.capacity_ah
        _, slope = self.evaluate(anode, anode + lost_fraction * self.capacity_ah)
        return 1.0 / slope


def nmc_potential_v(specific_mah_g: ArrayLike) -> FloatArray:
    """The NMC cathode's potential against Li (V) with ``specific_mah_g`` taken out."""
    return NMC_VS_LI(specific_mah_g)

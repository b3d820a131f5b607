"""The cell's equivalent circuit at a temperature and stack pressure, and its impedance.

Circuit, in series (positive current charges the cell)::

    L ── R_s ── R_l(s) ── (R_int ‖ CPE_int) ── (R_ct ‖ C_ct) ── W_finite ── OCV(state)

* ``R_s``: the Li6PS5Cl separator, ``L/(σ(T)·A)`` with ``σ(T) = σ_25·exp(−Ea/k_B·(1/T − 1/T_25))``,
  plus the tabs and foils (not activated).
* ``R_l(s)``: sluggish lithiation of nearly full NMC; acts on discharge only.
* ``R_int ‖ CPE``: the Ag–C | electrolyte interface. Arrhenius, divided by the contact fraction
  ``φ(p) = 1 − exp(−(p/p_c)^n)`` (improves with pressure and saturates; below ~1 MPa contact is
  lost fast), and grows with dead lithium. In the time domain the CPE is the capacitance with
  the same characteristic frequency, ``C = (Q·R^(1−n))^(1/n)``.
* ``R_ct ‖ C_ct``: charge transfer in the composite cathode.
* ``W``: a finite-length (transmissive) Warburg element, ``Z = R_W·tanh(√(jωτ))/√(jωτ)``, for ion
  transport through the thick cathode and Li diffusion in NMC. In the time domain it is the
  exact Foster expansion ``tanh(√x)/√x = Σ 2/(x + λ_k²)``, ``λ_k = (k − ½)π``: RC pairs with
  ``R_k = 2R_W/λ_k²`` and ``τ_k = τ/λ_k²``; the first :data:`WARBURG_TERMS` are kept and the rest
  (whose time constants are all below τ/400) is a series resistance, so both forms have the same
  DC resistance ``R_W``.

At low frequency the impedance tends to the sum of the resistances plus the cell's
differential capacitance ``dQ/dV``, the same resistance a long constant-current step sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cellrig.simulators.cell_params import CellParameters, arrhenius_factor

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

#: RC pairs kept of the Warburg element's Foster expansion.
WARBURG_TERMS = 6
_LAMBDA_SQUARED = ((np.arange(1, WARBURG_TERMS + 1) - 0.5) * math.pi) ** 2
#: Share of R_W carried by the kept pairs (Σ 2/λ_k² over them; the full sum is 1).
WARBURG_KEPT = float(np.sum(2.0 / _LAMBDA_SQUARED))
#: Smallest contact fraction (a cell with no stack pressure still touches somewhere).
MIN_CONTACT = 1e-4


def contact_fraction(params: CellParameters, pressure_pa: float) -> float:
    """Share of the interface in contact at a stack pressure: ``1 − exp(−(p/p_c)^n)``."""
    ratio = max(pressure_pa, 0.0) / params.contact_pressure_pa
    return max(-math.expm1(-(ratio ** params.contact_exponent)), MIN_CONTACT)


def fade_factor(params: CellParameters, pressure_pa: float, contact_loss: float = 1.0) -> float:
    """How much faster lithium is lost than at full contact: ``(contact_loss/φ(p))^k``.

    Poor contact concentrates the current on fewer spots, where lithium grows in filaments and
    is left isolated on stripping; ``contact_loss`` (≥ 1) is a fault's further loss of contact.
    """
    contact = contact_fraction(params, pressure_pa) / contact_loss
    return float((1.0 / contact) ** params.fade_pressure_exponent)


@dataclass(frozen=True, slots=True)
class Circuit:
    """Element values at one temperature, pressure and state of ageing (ohms, seconds)."""

    electrolyte_ohm: float
    contact_ohm: float
    lithiation_ohm: float
    lithiation_width_ah: float
    interface_ohm: float
    interface_tau_s: float
    interface_cpe_exponent: float
    charge_transfer_ohm: float
    charge_transfer_tau_s: float
    diffusion_ohm: float
    diffusion_tau_s: float
    inductance_h: float
    rc_ohm: FloatArray
    rc_tau_s: FloatArray

    @property
    def series_ohm(self) -> float:
        """Instantaneous resistance in the time domain: separator, tabs and the Warburg
        element's truncated remainder."""
        return self.electrolyte_ohm + self.contact_ohm + self.diffusion_ohm * (1 - WARBURG_KEPT)

    @property
    def dc_ohm(self) -> float:
        """Resistance to a long constant current in the charge direction (no lithiation term)."""
        return (self.electrolyte_ohm + self.contact_ohm + self.interface_ohm
                + self.charge_transfer_ohm + self.diffusion_ohm)

    def lithiation_at(self, cathode_ah: FloatArray | float) -> FloatArray:
        """The lithiation resistance with ``cathode_ah`` of lithium out of the NMC."""
        out = np.maximum(np.asarray(cathode_ah, dtype=float), 0.0)
        resistance = self.lithiation_ohm * np.exp(-out / self.lithiation_width_ah)
        return np.asarray(resistance, dtype=float)


def build_circuit(params: CellParameters, temperature_c: float, pressure_pa: float,
                  dead_fraction: float = 0.0, contact_loss: float = 1.0) -> Circuit:
    """The circuit at ``temperature_c`` and ``pressure_pa``, with ``dead_fraction`` of the
    nominal capacity lost as dead lithium and a fault's extra ``contact_loss`` factor."""
    area = params.area_m2
    reference = params.reference_temperature_c

    def activated(energy_ev: float) -> float:
        return arrhenius_factor(energy_ev, temperature_c, reference)

    conductivity = params.electrolyte_conductivity_s_per_m / activated(
        params.electrolyte_activation_energy_ev)
    contact = contact_fraction(params, pressure_pa) / contact_loss
    growth = 1.0 + params.interface_growth * max(dead_fraction, 0.0)
    interface_asr = (params.interface_asr_ohm_m2 * activated(params.interface_activation_energy_ev)
                     * growth / contact)
    transfer_asr = params.charge_transfer_asr_ohm_m2 * activated(
        params.charge_transfer_activation_energy_ev)
    diffusion_factor = activated(params.diffusion_activation_energy_ev)
    diffusion_ohm = params.diffusion_asr_ohm_m2 * diffusion_factor / area
    diffusion_tau = params.diffusion_time_constant_s * diffusion_factor
    interface_tau = interface_asr * params.interface_capacitance_f_per_m2
    transfer_tau = transfer_asr * params.charge_transfer_capacitance_f_per_m2
    rc_ohm = np.concatenate((
        [interface_asr / area, transfer_asr / area], 2.0 * diffusion_ohm / _LAMBDA_SQUARED))
    rc_tau = np.concatenate(([interface_tau, transfer_tau], diffusion_tau / _LAMBDA_SQUARED))
    return Circuit(
        electrolyte_ohm=params.electrolyte_thickness_m / (conductivity * area),
        contact_ohm=params.series_resistance_ohm,
        lithiation_ohm=params.lithiation_asr_ohm_m2 * activated(
            params.lithiation_activation_energy_ev) / area,
        lithiation_width_ah=params.lithiation_width_ah_per_kg * params.cathode_mass_kg,
        interface_ohm=interface_asr / area,
        interface_tau_s=interface_tau,
        interface_cpe_exponent=params.interface_cpe_exponent,
        charge_transfer_ohm=transfer_asr / area,
        charge_transfer_tau_s=transfer_tau,
        diffusion_ohm=diffusion_ohm,
        diffusion_tau_s=diffusion_tau,
        inductance_h=params.inductance_h,
        rc_ohm=rc_ohm,
        rc_tau_s=rc_tau,
    )


def impedance(circuit: Circuit, frequency_hz: npt.ArrayLike, ocv_slope_v_per_ah: float,
              lithiation_ohm: float = 0.0, shunt_siemens: float = 0.0) -> ComplexArray:
    """Small-signal impedance at open circuit (ohms, complex; imaginary part negative for
    capacitive behaviour).

    ``ocv_slope_v_per_ah`` adds the cell's differential capacitance ``3600/slope`` farads in
    series. The lithiation resistance acts on discharge only; a small sine sees the mean of the
    two half-waves' slopes, so half of ``lithiation_ohm`` appears. ``shunt_siemens`` is an
    internal short in parallel with the whole cell.
    """
    omega = 2.0 * math.pi * np.asarray(frequency_hz, dtype=float)
    jw = 1j * omega
    n = circuit.interface_cpe_exponent
    r_int = circuit.interface_ohm
    capacitance = circuit.interface_tau_s / r_int
    cpe_q = capacitance ** n / r_int ** (1.0 - n)
    z_int = r_int / (1.0 + r_int * cpe_q * jw ** n)
    z_ct = circuit.charge_transfer_ohm / (1.0 + jw * circuit.charge_transfer_tau_s)
    root = np.sqrt(jw * circuit.diffusion_tau_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.abs(root) < 1e-6, 1.0 - root ** 2 / 3.0, np.tanh(root) / root)
    z_w = circuit.diffusion_ohm * ratio
    differential_f = 3600.0 / max(ocv_slope_v_per_ah, 1e-12)
    with np.errstate(divide="ignore"):
        z_cap = np.where(omega > 0, 1.0 / (jw * differential_f), 0.0)
    total = (jw * circuit.inductance_h + circuit.electrolyte_ohm + circuit.contact_ohm
             + 0.5 * lithiation_ohm + z_int + z_ct + z_w + z_cap)
    if shunt_siemens > 0:
        total = 1.0 / (1.0 / total + shunt_siemens)
    return np.asarray(total, dtype=np.complex128)


def lithium_losses(params: CellParameters, fade: float, trap_left_ah: float, dead_ah: float,
                   charged_ah: FloatArray | float) -> tuple[FloatArray, FloatArray]:
    """Lithium lost while ``charged_ah`` (≥ 0) passes in the charge direction.

    Returns the first-charge loss taken (a share of the current until ``trap_left_ah`` is used
    up) and the dead lithium afterwards. Dead lithium forms at a rate
    ``ε·fade·(1 + D/D_a)`` per Ah charged (``D_a`` = acceleration × capacity), whose exact
    solution over a charge ``Q`` is ``D(Q) = (D_0 + D_a)·exp(ε·fade·Q/D_a) − D_a``.
    """
    charged = np.asarray(charged_ah, dtype=float)
    trap = np.minimum(params.first_charge_loss_share * charged, trap_left_ah)
    scale = params.fade_acceleration_fraction * params.capacity_ah
    rate = params.coulombic_loss_fraction * fade
    dead = (dead_ah + scale) * np.exp(rate * charged / scale) - scale
    return trap, dead


def rc_heat_j(rc_ohm: FloatArray, rc_tau_s: FloatArray, start_v: FloatArray, current_a: float,
              duration_s: float) -> float:
    """Heat dissipated in the RC pairs' resistors over a constant-current interval:
    ``Σ (1/R_k)·∫ v_k² dt`` with ``v_k = A + B·exp(−t/τ)``, ``A = I·R_k``, ``B = v_0 − A``."""
    steady = current_a * rc_ohm
    offset = start_v - steady
    fade_once = -np.expm1(-duration_s / rc_tau_s)
    fade_twice = -np.expm1(-2.0 * duration_s / rc_tau_s)
    integral = (steady ** 2 * duration_s + 2 * steady * offset * rc_tau_s * fade_once
                + offset ** 2 * rc_tau_s / 2 * fade_twice)
    return float(np.sum(integral / rc_ohm))

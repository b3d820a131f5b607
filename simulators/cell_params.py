"""Parameters of the simulated cell, and the cell definition files that set them.

Every value is a plain SI float with its unit in the name. The defaults describe the paper's
cell (Lee et al., Nature Energy 2020): NMC | Li6PS5Cl sheet | Ag–C on stainless steel, 6.8 mAh/cm²
on 93.28 cm² (a 67 × 112 mm pouch bi-cell, cathode 53 × 88 mm on both sides), so the nominal
capacity is 6.8 mAh/cm² × 93.28 cm² = 634.3 mAh and 1 C = 6.8 mA/cm². Resistances, the diffusion
time constant and the conductivity are given at ``reference_temperature_c`` (25 °C) and follow
Arrhenius laws, ``R(T) = R_ref·exp(Ea/k_B·(1/T − 1/T_ref))``; the cells are tested at 60 °C, where
``exp(Ea/k_B·(1/298.15 K − 1/333.15 K))`` is 4.18 for 0.35 eV, 5.13 for 0.40 eV and 6.30 for
0.45 eV. The derivation of each value is in its field's comment below.

A cell definition file (YAML) names the cell, gives its capacity and geometry in a ``cell:``
section whose fields are those of a protocol's ``cell:`` (so the section can be submitted as the
job's cell), and may override any model value by section; every quantity carries its unit.
``load_cell_file`` reads one and raises :class:`~cellrig.errors.ConfigError` naming the file, line
and column of every problem. The three cells shipped in ``simulators/cells/`` are listed by
``builtin_cells()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from cellrig.errors import ConfigError, Diagnostic, SourceLocation
from cellrig.simulators.cell_config import parse_cell_text

#: Boltzmann's constant in eV/K (the activation energies are in eV).
BOLTZMANN_EV_PER_K = 8.617333262e-5
#: The built-in cell used when none is named.
DEFAULT_CELL = "paper-pouch-0.6Ah"


@dataclass(frozen=True, slots=True)
class CellParameters:
    """Everything the cell model needs, in SI units (see the module docstring for the
    Arrhenius convention). Areal values are per m² of electrode (1 Ω·cm² = 1e-4 Ω·m²,
    1 mAh/cm² = 10 Ah/m²)."""

    name: str = DEFAULT_CELL
    description: str = ("0.6 Ah anode-free Ag-C | Li6PS5Cl | NMC pouch bi-cell of the paper "
                        "(default cell)")
    chemistry: str = "NMC | Li6PS5Cl | Ag-C on stainless steel (anode-free)"
    format: str = "pouch bi-cell, 67 x 112 mm"
    # Nominal capacity = areal capacity × area = 68 Ah/m² × 93.28e-4 m² (6.8 mAh/cm², paper).
    capacity_ah: float = 68.0 * 93.28e-4
    area_m2: float = 93.28e-4
    # 215 mAh/g of NMC at 0.2 C (paper); with the nominal capacity it fixes the NMC mass:
    # 6.8 mAh/cm² / 215 mAh/g = 31.6 mg/cm², 2.950 g on 93.28 cm².
    specific_capacity_ah_per_kg: float = 215.0
    reference_temperature_c: float = 25.0

    # Li6PS5Cl sheet 30–40 µm thick (paper): the middle, 35 µm. 1.8 mS/cm = 0.18 S/m at room
    # temperature, Ea 0.35 eV (paper, pellet). R = L/(σ·A) = 35e-6 m / (0.18 S/m × 93.28e-4 m²)
    # = 20.8 mΩ at 25 °C (1.94 Ω·cm²); at 60 °C σ = 0.18 × 4.18 = 0.75 S/m and R = 4.97 mΩ
    # (0.46 Ω·cm²).
    electrolyte_thickness_m: float = 35e-6
    electrolyte_conductivity_s_per_m: float = 0.18
    electrolyte_activation_energy_ev: float = 0.35
    # Tabs, foils and welds of a pouch: a few mΩ, not thermally activated.
    series_resistance_ohm: float = 1.0e-3
    # Leads' inductance; 0 as after a potentiostat's lead compensation.
    inductance_h: float = 0.0

    # Ag–C | Li6PS5Cl interface with full contact (high stack pressure): 20 Ω·cm² at 25 °C,
    # 3.9 Ω·cm² at 60 °C (Ea 0.40 eV, typical of Li | argyrodite charge transfer; 4.0 Ω·cm² at
    # 2 MPa), a small interfacial arc near 4 kHz. Double-layer capacitance
    # 10 µF/cm² seen as a constant-phase element of exponent 0.85.
    interface_asr_ohm_m2: float = 20.0e-4
    interface_activation_energy_ev: float = 0.40
    interface_capacitance_f_per_m2: float = 0.1
    interface_cpe_exponent: float = 0.85
    # Contact area fraction φ(p) = 1 − exp(−(p/p_c)^n): 0.98 at 2 MPa, 0.63 at 1 MPa, 0.22 at
    # 0.5 MPa. The interfacial resistance is R/φ, so it improves with pressure and saturates
    # above ~2 MPa, and degrades sharply below ~1 MPa (DOMAIN: too little pressure loses contact).
    contact_pressure_pa: float = 1.0e6
    contact_exponent: float = 2.0

    # Cathode charge transfer (NMC | Li6PS5Cl in the composite cathode): 50 Ω·cm² at 25 °C,
    # 7.9 Ω·cm² at 60 °C (Ea 0.45 eV); the composite's large interface gives ~1 mF/cm². With the
    # other terms the fresh cell has 20 Ω·cm² (0.22 Ω) of DC resistance at 60 °C, 2 MPa.
    charge_transfer_asr_ohm_m2: float = 50.0e-4
    charge_transfer_activation_energy_ev: float = 0.45
    charge_transfer_capacitance_f_per_m2: float = 10.0

    # Ion transport through the thick composite cathode and Li diffusion in NMC, as a
    # finite-length (transmissive) Warburg element: 40 Ω·cm² and τ = 8,000 s at 25 °C, so
    # 7.8 Ω·cm² and 1,560 s at 60 °C (Ea 0.40 eV for both: R_W ∝ L/D and τ ∝ L²/D follow the
    # diffusivity).
    diffusion_asr_ohm_m2: float = 40.0e-4
    diffusion_time_constant_s: float = 8000.0
    diffusion_activation_energy_ev: float = 0.40

    # Sluggish lithiation of nearly full NMC (the end of a discharge): an extra resistance, on
    # discharge only, R_l = R_l0·exp(−s/s_w) with s the lithium still out of the NMC (mAh/g).
    # Lithium diffusion in the oxide slows by orders of magnitude near full lithiation, which is
    # what limits a thick cathode's capacity at high rate. R_l0 = 1.7 Ω·m² at 25 °C (2,700 Ω·cm²
    # at 60 °C) and s_w = 9.3 mAh/g: at 60 °C R_l is 630 Ω·cm² at 13.5 mAh/g (where 0.2 C ends)
    # and 150 Ω·cm² at 27 mAh/g (where 1 C ends), calibrated to 215 mAh/g at 0.2 C and
    # Q1.0C/Q0.2C = 93 % (paper).
    lithiation_asr_ohm_m2: float = 1.7
    lithiation_width_ah_per_kg: float = 9.3
    lithiation_activation_energy_ev: float = 0.45

    # Ag–C layer (≈10 µm of carbon black with Ag nanoparticles): it takes ~0.3 mAh/cm² of Li
    # (4.4 % of 6.8 mAh/cm²) before Li plates, at 0.5 V falling to 0 V vs Li; the knee is
    # rounded over 0.04 mAh/cm². An emptied anode rises a further 1.5 V over 0.02 mAh/cm², so an
    # as-built cell (no Li in the anode, fully lithiated NMC at 3.0 V) reads 3.0 − 2.0 = 1.0 V.
    agc_capacity_ah_m2: float = 3.0
    agc_potential_v: float = 0.5
    agc_knee_width_ah_m2: float = 0.4
    bare_anode_potential_v: float = 1.5
    bare_anode_width_ah_m2: float = 0.2

    # First charge: SEI on the Ag–C layer and Li bound in it take 3 % of the nominal capacity;
    # half of the current goes to it until it is complete (so it spans the sloping region).
    first_charge_loss_fraction: float = 0.03
    first_charge_loss_share: float = 0.5
    # Coulombic loss: the share of every Ah charged that becomes dead lithium or SEI on fresh
    # plated Li, at full contact: 9e-5, so a Coulombic efficiency of 99.99 % (paper: > 99.8 %).
    # It grows with the dead lithium already there (porous dead Li gives more surface):
    # rate × (1 + dead/(0.22 × capacity)). Divided by φ(p)^k (k = 2), so it is worse at low
    # stack pressure: ×2.5 at 1 MPa, ×20 at 0.5 MPa.
    coulombic_loss_fraction: float = 9.0e-5
    fade_acceleration_fraction: float = 0.22
    fade_pressure_exponent: float = 2.0
    # Dead lithium piles up at the interface and raises its resistance: × (1 + 25·dead/capacity),
    # ×3.4 after 1,000 cycles. Lithium loss is hidden at first by the lithium the anode keeps at
    # the end of a discharge (the NMC, not the anode, limits it), so this growth is what fades
    # the capacity early on; together they give 95 % after 600 and 89.6 % after 1,000 cycles of
    # 0.5 C/0.5 C at 60 °C and 2 MPa (paper: 95 % and 89 %).
    interface_growth: float = 25.0

    # Dense Li: M/(ρ·F) = 6.94 g/mol / (0.534 g/cm³ × 96485 C/mol) = 1.347e-4 cm³/C, so 1 mAh/cm²
    # (3.6 C/cm²) plates 4.85 µm. The paper reports ≈25 µm of plated layer at 4.25 V for
    # 6.8 mAh/cm², where dense Li alone would make 33 µm; the model lets the stack grow by those
    # 25 µm by contracting the NMC on delithiation (Ni-rich NMC loses several % of volume above
    # 4.1 V) by 1.1 µm per mAh/cm² taken out of it. Li in the Ag–C layer and the first-charge
    # loss add no thickness; dead lithium counts as dense Li.
    lithium_swell_m_per_ah_m2: float = 4.85e-7
    cathode_contraction_m_per_ah_m2: float = 1.1e-7

    # A pouch cell of ~10 g (0.9 J/(g·K)) between the jig's plates, 3 K/W to the chamber air.
    heat_capacity_j_per_k: float = 10.0
    thermal_resistance_k_per_w: float = 3.0

    @property
    def areal_capacity_ah_m2(self) -> float:
        """Nominal capacity per electrode area (Ah/m²; 10 Ah/m² = 1 mAh/cm²)."""
        return self.capacity_ah / self.area_m2

    @property
    def cathode_mass_kg(self) -> float:
        """NMC mass: nominal capacity over specific capacity."""
        return self.capacity_ah / self.specific_capacity_ah_per_kg

    @property
    def reference_temperature_k(self) -> float:
        """The reference temperature in kelvin."""
        return self.reference_temperature_c + 273.15


def arrhenius_factor(activation_energy_ev: float, temperature_c: float,
                     reference_c: float) -> float:
    """``exp(Ea/k_B·(1/T − 1/T_ref))``: how much a thermally activated resistance at
    ``temperature_c`` exceeds its value at ``reference_c`` (below 1 when warmer)."""
    inverse = 1.0 / (temperature_c + 273.15) - 1.0 / (reference_c + 273.15)
    return math.exp(activation_energy_ev / BOLTZMANN_EV_PER_K * inverse)


def builtin_cells() -> dict[str, str]:
    """The cell definitions shipped with cellrig: name → file text."""
    folder = resources.files("cellrig.simulators").joinpath("cells")
    found: dict[str, str] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            found[entry.name.removesuffix(".yaml")] = entry.read_text(encoding="utf-8")
    return dict(sorted(found.items()))


def load_builtin_cell(name: str = DEFAULT_CELL) -> CellParameters:
    """One of the built-in cells by name (file name without ``.yaml``)."""
    cells = builtin_cells()
    if name not in cells:
        raise KeyError(f"no built-in cell {name!r}; there are {', '.join(cells)}")
    return load_cell_text(cells[name], f"{name}.yaml")


def load_cell_text(text: str, filename: str = "<cell>") -> CellParameters:
    """Cell parameters from the text of a cell definition file."""
    values, strings = parse_cell_text(text, filename)
    known = {item.name for item in fields(CellParameters)}
    chosen: dict[str, Any] = {key: value for key, value in values.items() if key in known}
    chosen.update({key: value for key, value in strings.items() if key in known})
    chosen.setdefault("description", "")
    return CellParameters(**chosen)


def load_cell_file(path: str | Path) -> CellParameters:
    """Cell parameters from a cell definition file; ConfigError names the file for any
    problem, including one that cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(SourceLocation(str(path), 1, 1),
                                      f"cannot read the cell file: {exc}")]) from None
    return load_cell_text(text, str(path))

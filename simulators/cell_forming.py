"""A formed cell for a bench: the library's formation cycle, computed on the cell model.

An anode-free cell is built with no lithium in its anode (about 1 V); its first charge plates
the anode and loses some lithium for good. A bench that starts from a formed cell runs the
steps of ``protocols/library/formation.yaml`` with their defaults directly on the model —
CC 0.1 C to 4.25 V, CV at 4.25 V until 0.05 C, 10 min rest, CC 0.2 C to 2.5 V, 10 min rest,
at 60 °C and 2 MPa — with the model's own cut-off search, so it needs no engine and no
instruments. ``cellrig simulate --formed`` runs the same protocol through the engine;
the two agree (``tests/unit/test_bench_file.py``).
"""

from __future__ import annotations

from cellrig.simulators.cell_model import CellModel

FORMATION_TEMPERATURE_C = 60.0
FORMATION_PRESSURE_PA = 2.0e6
UPPER_V, LOWER_V = 4.25, 2.5
CHARGE_C_RATE, CV_CUTOFF_C_RATE, DISCHARGE_C_RATE = 0.1, 0.05, 0.2
REST_S = 600.0
#: No step of a healthy cell's formation takes this long (0.1 C is ten hours).
LONGEST_STEP_S = 48 * 3600.0


def form_cell(model: CellModel, *, temperature_c: float = FORMATION_TEMPERATURE_C,
              pressure_pa: float = FORMATION_PRESSURE_PA) -> None:
    """Run the formation cycle on ``model`` (its clock moves on by the cycle's duration)."""
    capacity_ah = model.params.capacity_ah
    model.set_conditions(temperature_c=temperature_c, pressure_pa=pressure_pa)
    _current_until(model, CHARGE_C_RATE * capacity_ah, UPPER_V)
    held_s = model.time_to_current(UPPER_V, CV_CUTOFF_C_RATE * capacity_ah, LONGEST_STEP_S)
    model.run_voltage(UPPER_V, [LONGEST_STEP_S if held_s is None else held_s])
    model.run_rest([REST_S])
    _current_until(model, -DISCHARGE_C_RATE * capacity_ah, LOWER_V)
    model.run_rest([REST_S])


def _current_until(model: CellModel, current_a: float, voltage_v: float) -> None:
    reach_s = model.time_to_voltage(current_a, voltage_v, LONGEST_STEP_S)
    if reach_s is None:
        raise ValueError(f"cell {model.params.name!r} did not reach {voltage_v:g} V at "
                         f"{current_a:g} A within {LONGEST_STEP_S / 3600:g} h while forming")
    model.run_current(current_a, [reach_s])

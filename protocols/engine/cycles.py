"""Cycles: the one counting rule, per-cycle summaries and the figures loops test.

The rule (used everywhere: engine, store, summaries, exports): cycle 1 starts with the test; a
new cycle starts when a step that charges the cell starts after a step that discharges it has
run within the current cycle. Which steps charge and discharge is their direction, given by
the protocol's verb: ``Charge``/``Discharge`` at a current, power or resistance, and a
``cccv`` or ``pulse`` on charge or discharge. Rests, holds (CV steps), EIS and set steps have
no direction and belong to the cycle they are in, whatever current flows in them: the noise
of a rest or the small reverse current of a hold never opens or closes a cycle.

A cycle's figures (``summarise``) are those of every reading in it, whichever step it was
taken in. Retention is the cycle's discharge capacity over that of cycle 1 of the test (and
of the reference cycle, if the job names one); the per-test "cycles to 95/90/80 %" is the
first complete cycle whose retention is at or below the level.
"""

from __future__ import annotations

import math

from cellrig.protocols.program import CycleCondition, CycleMetric, Direction, Operator

from .output import CycleSummary
from .state import CycleProgress

RETENTION_THRESHOLDS = (0.95, 0.90, 0.80)


def starts_new_cycle(direction: Direction, cycle: CycleProgress) -> bool:
    """Whether a step of ``direction`` starting now opens a new cycle (``cycle.discharged``
    says a discharging step has run in the current cycle)."""
    return direction is Direction.CHARGE and cycle.discharged


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def figures(cycle: CycleProgress) -> dict[str, float]:
    """The per-cycle figures loop conditions can test, for the cycle as it stands."""
    totals = cycle.totals
    found = {
        CycleMetric.DISCHARGE_CAPACITY.value: totals.discharge_ah,
        CycleMetric.CHARGE_CAPACITY.value: totals.charge_ah,
        CycleMetric.DISCHARGE_ENERGY.value: totals.discharge_wh,
    }
    efficiency = _ratio(totals.discharge_ah, totals.charge_ah)
    if efficiency is not None:
        found[CycleMetric.COULOMBIC_EFFICIENCY.value] = efficiency
    energy_efficiency = _ratio(totals.discharge_wh, totals.charge_wh)
    if energy_efficiency is not None:
        found[CycleMetric.ENERGY_EFFICIENCY.value] = energy_efficiency
    return found


def summarise(cycle: CycleProgress, end_test_time_s: float, first_discharge_ah: float | None,
              reference_discharge_ah: float | None) -> CycleSummary:
    """The summary of a finished cycle."""
    totals = cycle.totals

    def bound(value: float) -> float | None:
        return value if math.isfinite(value) else None

    cv_share = _ratio(cycle.cv_charge_ah, totals.charge_ah)
    return CycleSummary(
        cycle=cycle.number,
        start_test_time_s=cycle.start_test_time_s,
        end_test_time_s=end_test_time_s,
        charge_capacity_ah=totals.charge_ah,
        discharge_capacity_ah=totals.discharge_ah,
        charge_energy_wh=totals.charge_wh,
        discharge_energy_wh=totals.discharge_wh,
        coulombic_efficiency=_ratio(totals.discharge_ah, totals.charge_ah),
        energy_efficiency=_ratio(totals.discharge_wh, totals.charge_wh),
        average_charge_voltage_v=_ratio(totals.charge_wh, totals.charge_ah),
        average_discharge_voltage_v=_ratio(totals.discharge_wh, totals.discharge_ah),
        cc_charge_share=None if cv_share is None else 1.0 - cv_share,
        cv_charge_share=cv_share,
        min_temperature_c=bound(cycle.min_temperature_c),
        max_temperature_c=bound(cycle.max_temperature_c),
        min_pressure_pa=bound(cycle.min_pressure_pa),
        max_pressure_pa=bound(cycle.max_pressure_pa),
        retention=_ratio(totals.discharge_ah, first_discharge_ah or 0.0),
        reference_retention=_ratio(totals.discharge_ah, reference_discharge_ah or 0.0),
    )


def condition_holds(condition: CycleCondition, current: dict[str, float],
                    first: dict[str, float], best: dict[str, float],
                    by_cycle: dict[str, dict[str, float]]) -> bool:
    """Whether a loop condition holds for the current cycle's figures.

    ``first`` and ``best`` are the loop's own first-iteration and best figures; ``by_cycle``
    the figures of test cycles kept for ``of cycle N`` references.
    """
    metric = condition.metric.value
    value = current.get(metric)
    if value is None:
        return False
    threshold = condition.value
    if condition.reference == "first":
        base = first.get(metric)
    elif condition.reference == "max":
        base = best.get(metric)
    elif isinstance(condition.reference, int):
        base = by_cycle.get(str(condition.reference), {}).get(metric)
    else:
        base = 1.0
    if base is None:
        return False
    threshold *= base
    if condition.operator is Operator.AT_MOST:
        return value <= threshold
    return value >= threshold

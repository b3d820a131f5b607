"""The engine's complete state: what a checkpoint holds, and what a resumed engine starts from.

Everything here is plain data (floats, ints, lists, dicts), so a checkpoint is the dataclasses
as dicts, ready for JSON, and a resume is the reverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

CHECKPOINT_FORMAT = 1


@dataclass
class Totals:
    """Charge (Ah) and energy (Wh), charging and discharging, as magnitudes."""

    charge_ah: float = 0.0
    discharge_ah: float = 0.0
    charge_wh: float = 0.0
    discharge_wh: float = 0.0

    def add(self, charge_ah: float, discharge_ah: float, charge_wh: float,
            discharge_wh: float) -> None:
        """Add integrated amounts."""
        self.charge_ah += charge_ah
        self.discharge_ah += discharge_ah
        self.charge_wh += charge_wh
        self.discharge_wh += discharge_wh

    @property
    def net_ah(self) -> float:
        """Charge minus discharge."""
        return self.charge_ah - self.discharge_ah

    @property
    def net_wh(self) -> float:
        """Charging minus discharging energy."""
        return self.charge_wh - self.discharge_wh


@dataclass
class CycleProgress:
    """The running figures of the current cycle."""

    number: int = 1
    start_test_time_s: float = 0.0
    totals: Totals = field(default_factory=Totals)
    cv_charge_ah: float = 0.0
    discharged: bool = False
    min_temperature_c: float = math.inf
    max_temperature_c: float = -math.inf
    min_pressure_pa: float = math.inf
    max_pressure_pa: float = -math.inf


@dataclass
class StepProgress:
    """How far the current step got: enough to continue it after a crash."""

    step_id: int
    elapsed_s: float = 0.0
    totals: Totals = field(default_factory=Totals)
    phase: int = 0
    pulse_index: int = 0
    phase_start_s: float = 0.0
    last_current_a: float | None = None
    last_voltage_v: float | None = None
    record_cells: list[float] | None = None
    stable_since_s: float | None = None
    history_time_s: list[float] = field(default_factory=list)
    history_voltage_v: list[float] = field(default_factory=list)


@dataclass
class EngineState:
    """Everything the engine knows about a running job."""

    pc: int = 0
    cycle: CycleProgress = field(default_factory=CycleProgress)
    step_count: int = 0
    test_time_s: float = 0.0
    test: Totals = field(default_factory=Totals)
    step: StepProgress | None = None
    loop_counters: dict[str, int] = field(default_factory=dict)
    loop_first: dict[str, dict[str, float]] = field(default_factory=dict)
    loop_max: dict[str, dict[str, float]] = field(default_factory=dict)
    cycle_figures: dict[str, dict[str, float]] = field(default_factory=dict)
    last_cycle_figures: dict[str, float] = field(default_factory=dict)
    retention_reached: dict[str, int] = field(default_factory=dict)
    limit_since: dict[str, float | None] = field(default_factory=dict)
    warned: dict[str, bool] = field(default_factory=dict)
    temperature_setpoint_c: float | None = None
    pressure_setpoint_pa: float | None = None
    program_sha256: str = ""
    #: How the job ended (a ``JobState`` value) once it has: the final checkpoint says so.
    ended: str | None = None
    ended_reason: str = ""

    def to_checkpoint(self) -> dict[str, Any]:
        """The state as JSON-ready data (infinities as None), sharing nothing with the state."""
        data = _plain(self)
        data["format"] = CHECKPOINT_FORMAT
        return data  # type: ignore[no-any-return]

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any]) -> EngineState:
        """Rebuild a state from :meth:`to_checkpoint` output."""
        if data.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unsupported checkpoint format {data.get('format')!r}")
        values = {f.name: data[f.name] for f in fields(cls)}
        cycle = dict(values["cycle"])
        cycle["totals"] = Totals(**cycle["totals"])
        for key, default in (("min_temperature_c", math.inf), ("max_temperature_c", -math.inf),
                             ("min_pressure_pa", math.inf), ("max_pressure_pa", -math.inf)):
            if cycle[key] is None:
                cycle[key] = default
        values["cycle"] = CycleProgress(**cycle)
        values["test"] = Totals(**values["test"])
        if values["step"] is not None:
            step = dict(values["step"])
            step["totals"] = Totals(**step["totals"])
            values["step"] = StepProgress(**step)
        return cls(**values)


_FIELDS: dict[type, tuple[str, ...]] = {}
_LEAVES = (int, str, bool, type(None))


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, containers copied, non-finite floats as None (what
    ``dataclasses.asdict`` would give, without its deep copies of every leaf).

    Checkpoints are taken at every step, so the leaves (mostly floats) are handled inline in
    the comprehensions rather than by a call each: ``x - x == 0`` holds exactly for finite
    floats (inf − inf and NaN − NaN are NaN).
    """
    kind = type(value)
    if kind is float:
        return value if value - value == 0 else None
    if kind in _LEAVES:
        return value
    if kind is list:
        return [(item if item - item == 0 else None) if type(item) is float
                else item if type(item) in _LEAVES else _plain(item) for item in value]
    if kind is dict:
        return {key: (item if item - item == 0 else None) if type(item) is float
                else item if type(item) in _LEAVES else _plain(item)
                for key, item in value.items()}
    names = _FIELDS.get(kind)
    if names is None and is_dataclass(value):
        names = _FIELDS.setdefault(kind, tuple(f.name for f in fields(value)))
    if names is not None:
        # the state's dataclasses keep exactly their fields in __dict__, in field order
        items = (vars(value).items() if len(vars(value)) == len(names)
                 else ((name, getattr(value, name)) for name in names))
        return {name: (item if item - item == 0 else None) if type(item) is float
                else item if type(item) in _LEAVES else _plain(item) for name, item in items}
    return value

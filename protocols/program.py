"""The resolved program: what the engine runs, in plain SI floats.

A :class:`Program` is what ``resolve(protocol, cell, parameters)`` makes of a protocol file
for one actual cell: every C-rate and current density is an absolute current, every share of
the nominal capacity an absolute charge, every parameter substituted and every ``for_each``
expanded. Currents are signed: positive charges the cell. Charges are in ampere-hours and
energies in watt-hours (the Battery Data Format's units), temperatures in degrees Celsius,
everything else in SI. A program round-trips through JSON and has a stable hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

PROGRAM_FORMAT = 1


class Direction(StrEnum):
    """Which way a step drives the cell; the cycle rule looks at this."""

    CHARGE = "charge"
    DISCHARGE = "discharge"
    NONE = "none"


class Quantity(StrEnum):
    """What a step condition watches."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    TIME = "time"
    CHARGE = "charge"
    ENERGY = "energy"
    VOLTAGE_RATE = "dvdt"
    TEMPERATURE = "temperature"
    PRESSURE = "pressure"


#: Quantities a condition compares by magnitude (sign-free): current, charge and energy
#: passed in the step, and the rate of voltage change.
MAGNITUDE_QUANTITIES = frozenset(
    {Quantity.CURRENT, Quantity.CHARGE, Quantity.ENERGY, Quantity.VOLTAGE_RATE}
)

CONDITION_UNITS: dict[Quantity, str] = {
    Quantity.VOLTAGE: "V",
    Quantity.CURRENT: "A",
    Quantity.TIME: "s",
    Quantity.CHARGE: "Ah",
    Quantity.ENERGY: "Wh",
    Quantity.VOLTAGE_RATE: "V/s",
    Quantity.TEMPERATURE: "degC",
    Quantity.PRESSURE: "Pa",
}


class Operator(StrEnum):
    """How a condition compares: the step ends once the reading is at or past the value."""

    AT_LEAST = ">="
    AT_MOST = "<="


class CycleMetric(StrEnum):
    """Per-cycle figures a loop's ``until`` can test."""

    DISCHARGE_CAPACITY = "discharge capacity"
    CHARGE_CAPACITY = "charge capacity"
    DISCHARGE_ENERGY = "discharge energy"
    COULOMBIC_EFFICIENCY = "coulombic efficiency"
    ENERGY_EFFICIENCY = "energy efficiency"


SPECIAL_TARGETS = frozenset({"next", "stop"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One way a step can end: ``quantity operator value``; ``then`` names where to go next.

    ``then`` is a step tag, ``"stop"`` (end the job) or None (the next step in order).
    """

    quantity: Quantity
    operator: Operator
    value: float
    then: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class CycleCondition:
    """A loop ends after a cycle whose ``metric`` compares as given.

    With ``reference`` None the value is absolute (Ah, Wh, or a share for efficiencies);
    ``"first"`` means the loop's own first cycle; ``"max"`` the best cycle of the loop so far;
    a number means that cycle of the test (``Cycle Count``).
    """

    metric: CycleMetric
    operator: Operator
    value: float
    reference: str | int | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class Recording:
    """When to store a sample: every ``every_s`` seconds or on a change of V or I, if set."""

    every_s: float | None = None
    voltage_change_v: float | None = None
    current_change_a: float | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """A safety window on one reading; a breach longer than ``delay_s`` aborts the job."""

    low: float | None = None
    high: float | None = None
    warn_low: float | None = None
    warn_high: float | None = None
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The safety limits of a program. Current and charge limits apply to magnitudes."""

    voltage_v: Limit | None = None
    current_a: Limit | None = None
    temperature_c: Limit | None = None
    pressure_pa: Limit | None = None
    charge_per_step_ah: Limit | None = None


@dataclass(frozen=True, slots=True)
class Cell:
    """The actual cell a program was resolved for."""

    id: str | None = None
    capacity_ah: float | None = None
    area_m2: float | None = None
    mass_kg: float | None = None
    chemistry: str | None = None
    format: str | None = None
    reference_offset_v: float = 0.0
    volume_m3: float | None = None
    fabrication: dict[str, Any] = field(default_factory=dict)
    notes: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What every step has: an id (``Step ID``), a label, a tag, its conditions, recording."""

    id: int
    label: str
    direction: Direction = Direction.NONE
    tag: str | None = None
    until: tuple[Condition, ...] = ()
    record: Recording | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentStep(Step):
    """Constant current; ``voltage_limit_v`` is the compliance the source may not pass."""

    current_a: float
    voltage_limit_v: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerStep(Step):
    """Constant power (positive charges)."""

    power_w: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ResistanceStep(Step):
    """Constant load resistance (discharge only)."""

    resistance_ohm: float


@dataclass(frozen=True, slots=True, kw_only=True)
class VoltageStep(Step):
    """Constant voltage (a CV hold) with an optional current compliance."""

    voltage_v: float
    current_limit_a: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CccvStep(Step):
    """Constant current to ``voltage_v``, then constant voltage until a condition ends it."""

    current_a: float
    voltage_v: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RestStep(Step):
    """Open circuit, recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PulseStep(Step):
    """``count`` pulses of ``current_a`` for ``pulse_s``, each followed by ``rest_s``."""

    current_a: float
    pulse_s: float
    rest_s: float
    count: int | None = None


class EisMode(StrEnum):
    """Whether the EIS excitation is a voltage or a current."""

    POTENTIOSTATIC = "potentiostatic"
    GALVANOSTATIC = "galvanostatic"


@dataclass(frozen=True, slots=True, kw_only=True)
class EisStep(Step):
    """An impedance sweep; DC level None means at open circuit."""

    mode: EisMode
    start_hz: float
    stop_hz: float
    points_per_decade: int
    amplitude: float
    dc_voltage_v: float | None = None
    dc_current_a: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetStep(Step):
    """New chamber temperature and/or stack pressure, then an optional wait for stability."""

    temperature_c: float | None = None
    pressure_pa: float | None = None
    wait_temperature_k: float | None = None
    wait_pressure_pa: float | None = None
    wait_for_s: float = 0.0
    wait_timeout_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopStep(Step):
    """End the job here (e.g. to open the cell at this point)."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Repeat:
    """Run ``steps`` up to ``count`` times (None: no count), until a cycle condition holds."""

    label: str
    steps: tuple[Node, ...]
    count: int | None = None
    until: tuple[CycleCondition, ...] = ()
    tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sequence:
    """Steps run once in order: one iteration of a ``for_each`` (label names the value)."""

    label: str
    steps: tuple[Node, ...]
    tag: str | None = None


Node = (
    CurrentStep | PowerStep | ResistanceStep | VoltageStep | CccvStep | RestStep | PulseStep
    | EisStep | SetStep | StopStep | Repeat | Sequence
)

NODE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        CurrentStep, PowerStep, ResistanceStep, VoltageStep, CccvStep, RestStep, PulseStep,
        EisStep, SetStep, StopStep, Repeat, Sequence,
    )
}


@dataclass(frozen=True, slots=True)
class Program:
    """A protocol resolved for one cell: what the engine runs, and what provenance stores."""

    name: str
    steps: tuple[Node, ...]
    cell: Cell
    limits: Limits
    record: Recording
    parameters: dict[str, str] = field(default_factory=dict)
    source_sha256: str = ""
    description: str = ""

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, floats by repr; the hash is taken of it."""
        return json.dumps(_encode(self), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def sha256(self) -> str:
        """The program's stable hash, for provenance."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Program:
        """Rebuild a program from :meth:`to_json` output."""
        data = json.loads(text)
        if data.get("format") != PROGRAM_FORMAT:
            raise ValueError(f"unsupported program format {data.get('format')!r}")
        return Program(
            name=data["name"],
            steps=tuple(_decode_node(node) for node in data["steps"]),
            cell=Cell(**data["cell"]),
            limits=Limits(**{k: _maybe(Limit, v) for k, v in data["limits"].items()}),
            record=Recording(**data["record"]),
            parameters=dict(data["parameters"]),
            source_sha256=data["source_sha256"],
            description=data["description"],
        )

    def iter_steps(self) -> list[Step]:
        """Every step in program order (loop bodies once), for lints and display."""
        found: list[Step] = []

        def walk(nodes: tuple[Node, ...]) -> None:
            for node in nodes:
                if isinstance(node, Repeat | Sequence):
                    walk(node.steps)
                else:
                    found.append(node)

        walk(self.steps)
        return found


def _maybe(cls: type[Any], value: Any) -> Any:
    return None if value is None else cls(**value)


def _encode(value: Any) -> Any:
    if isinstance(value, Program):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
        encoded["format"] = PROGRAM_FORMAT
        return encoded
    if isinstance(value, Step | Repeat | Sequence):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
        encoded["type"] = type(value).__name__
        return encoded
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, StrEnum):
        return value.value
    return value


def _decode_node(data: dict[str, Any]) -> Node:
    cls = NODE_TYPES[data["type"]]
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        raw = data.get(f.name)
        if f.name == "steps":
            kwargs[f.name] = tuple(_decode_node(node) for node in raw or [])
        elif f.name == "until" and cls is Repeat:
            kwargs[f.name] = tuple(
                CycleCondition(
                    metric=CycleMetric(c["metric"]), operator=Operator(c["operator"]),
                    value=c["value"], reference=c["reference"], text=c["text"],
                )
                for c in raw or []
            )
        elif f.name == "until":
            kwargs[f.name] = tuple(
                Condition(
                    quantity=Quantity(c["quantity"]), operator=Operator(c["operator"]),
                    value=c["value"], then=c["then"], text=c["text"],
                )
                for c in raw or []
            )
        elif f.name == "record":
            kwargs[f.name] = _maybe(Recording, raw)
        elif f.name == "direction":
            kwargs[f.name] = Direction(str(raw))
        elif f.name == "mode":
            kwargs[f.name] = EisMode(str(raw))
        elif f.name in data:
            kwargs[f.name] = raw
    return cls(**kwargs)  # type: ignore[no-any-return]

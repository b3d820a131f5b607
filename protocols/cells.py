"""The cell a protocol runs on: its definition in a protocol, a cell file or a submission.

The nominal capacity, which C-rates and shares of capacity are resolved against, is given
directly (``capacity: 634 mAh``), as areal capacity × area (``areal_capacity: 6.8 mAh/cm^2``,
``area: 93.28 cm^2``) or as specific capacity × active mass (``specific_capacity: 215 mAh/g``,
``mass: 2.95 g``). A submitted cell overrides the protocol's cell field by field, except that the
capacity definitions go together: if the submission defines the capacity in any way, the
protocol's capacity fields are dropped.
"""

from __future__ import annotations

import math
from typing import Any

from .context import Context
from .program import Cell
from .quantities import Kind
from .yamlsource import YMap, YNode, YScalar, YSeq

CELL_KEYS = (
    "id", "capacity", "areal_capacity", "area", "mass", "specific_capacity", "chemistry",
    "format", "reference_offset", "volume", "fabrication", "notes",
)
CAPACITY_KEYS = ("capacity", "areal_capacity", "specific_capacity")
CELL_EXAMPLE = (
    "cell: {areal_capacity: 6.8 mAh/cm^2, area: 93.28 cm^2}\n# or: cell: {capacity: 634 mAh}"
)
MISMATCH_TOLERANCE = 0.02


def merge_cells(protocol_cell: YMap | None, submitted: YMap | None) -> YMap | None:
    """The protocol's cell overridden by the submitted one, field by field."""
    if submitted is None:
        return protocol_cell
    if protocol_cell is None:
        return submitted
    replaces_capacity = any(key in submitted for key in CAPACITY_KEYS)
    entries = [
        (key, value) for key, value in protocol_cell.entries
        if str(key.value) not in submitted
        and not (replaces_capacity and str(key.value) in CAPACITY_KEYS)
    ]
    entries.extend(submitted.entries)
    return YMap(tuple(entries), submitted.loc)


def _plain(node: YNode) -> Any:
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [_plain(item) for item in node.items]
    return {str(key.value): _plain(value) for key, value in node.entries}


def read_cell(ctx: Context, node: YNode | None) -> Cell:
    """The resolved cell; reports every bad field. An absent cell has no capacity."""
    if node is None:
        return Cell()
    mapping = ctx.mapping(ctx.substitute(node), "cell", CELL_EXAMPLE)
    if mapping is None:
        return Cell()
    ctx.check_keys(mapping, CELL_KEYS, "the cell", CELL_EXAMPLE)

    def quantity(key: str, kind: Kind) -> float | None:
        value = mapping.get(key)
        if value is None:
            return None
        parsed = ctx.quantity(value, kind, f"cell {key}")
        if parsed is not None and parsed <= 0 and key != "reference_offset":
            ctx.report(value, f"cell {key} must be positive", example=CELL_EXAMPLE)
            return None
        return parsed

    def text(key: str) -> str | None:
        value = mapping.get(key)
        return None if value is None else ctx.text(value, f"cell {key}", f"{key}: text")

    capacity = quantity("capacity", Kind.CHARGE)
    areal = quantity("areal_capacity", Kind.AREAL_CAPACITY)
    area = quantity("area", Kind.AREA)
    mass = quantity("mass", Kind.MASS)
    specific = quantity("specific_capacity", Kind.SPECIFIC_CAPACITY)
    derived: float | None = None
    if areal is not None:
        if area is None:
            ctx.report(mapping, "an areal capacity needs the electrode area", example=CELL_EXAMPLE)
        else:
            derived = areal * area
    elif specific is not None:
        if mass is None:
            ctx.report(mapping, "a specific capacity needs the active mass",
                       example="cell: {specific_capacity: 215 mAh/g, mass: 2.95 g}")
        else:
            derived = specific * mass
    if derived is not None and not math.isfinite(derived):
        ctx.report(mapping, "the cell's loading gives a capacity too large to use",
                   example=CELL_EXAMPLE)
        derived = None
    mismatch = capacity is not None and derived is not None and (
        abs(capacity - derived) > MISMATCH_TOLERANCE * capacity)
    if mismatch:
        assert capacity is not None and derived is not None
        ctx.warn(mapping, f"the cell's capacity ({capacity * 1000:.4g} mAh) differs from what "
                 f"its loading gives ({derived * 1000:.4g} mAh); the capacity is used")
    offset = quantity("reference_offset", Kind.VOLTAGE)
    fabrication_node = mapping.get("fabrication")
    fabrication: dict[str, Any] = {}
    if fabrication_node is not None:
        plain = _plain(fabrication_node)
        fabrication = plain if isinstance(plain, dict) else {"history": plain}
    return Cell(
        id=text("id"),
        capacity_ah=capacity if capacity is not None else derived,
        area_m2=area,
        mass_kg=mass,
        chemistry=text("chemistry"),
        format=text("format"),
        reference_offset_v=offset or 0.0,
        volume_m3=quantity("volume", Kind.VOLUME),
        fabrication=fabrication,
        notes=text("notes"),
    )

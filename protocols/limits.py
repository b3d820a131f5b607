"""Safety limits and the default recording rule of a protocol.

Limits are not terminations: a step's ``until`` ends the step, a limit breach aborts the job
and puts the rig in its safe state. Windows (voltage, temperature, pressure) are written as
``[low, high]``; maxima (current, charge per step) as one value, compared with magnitudes.
The long form adds warning levels and a delay before tripping::

    voltage: {range: [2.4 V, 4.35 V], warn: [2.45 V, 4.3 V], delay: 2 s}
    current: {max: 2.5C, warn: 2.2C, delay: 1 s}
"""

from __future__ import annotations

from collections.abc import Callable

from .context import Context, describe
from .program import Limit, Limits, Recording
from .quantities import Kind
from .until import CellScale, absolute_charge, absolute_current
from .yamlsource import YMap, YNode, YSeq

LIMIT_KEYS = ("voltage", "current", "temperature", "pressure", "charge_per_step")
LIMITS_EXAMPLE = (
    "limits:\n  voltage: [2.4 V, 4.35 V]\n  current: 2.5C\n  temperature: [-20 degC, 70 degC]\n"
    "  pressure: [0.5 MPa, 6 MPa]\n  charge_per_step: 120 %"
)
WINDOW_KINDS = {"voltage": Kind.VOLTAGE, "temperature": Kind.TEMPERATURE,
                "pressure": Kind.PRESSURE}
DEFAULT_RECORDING = Recording(every_s=10.0)

Parse = Callable[[YNode, str], float | None]


def _pair(ctx: Context, node: YNode, what: str, parse: Parse) -> tuple[float | None, float | None]:
    node = ctx.substitute(node)
    if not isinstance(node, YSeq) or len(node.items) != 2:
        ctx.report(node, f"{what} must be a [low, high] pair, not {describe(node)}",
                   example=LIMITS_EXAMPLE)
        return None, None
    low, high = parse(node.items[0], what), parse(node.items[1], what)
    if low is not None and high is not None and low >= high:
        ctx.report(node, f"{what}: the low end must be below the high end", example=LIMITS_EXAMPLE)
    return low, high


def _delay(ctx: Context, mapping: YMap) -> float:
    node = mapping.get("delay")
    if node is None:
        return 0.0
    delay = ctx.quantity(node, Kind.TIME, "delay")
    if delay is not None and delay < 0:
        ctx.report(node, "a delay cannot be negative", example="delay: 2 s")
        return 0.0
    return delay or 0.0


def _window(ctx: Context, node: YNode, name: str) -> Limit | None:
    kind = WINDOW_KINDS[name]

    def parse(item: YNode, what: str) -> float | None:
        return ctx.quantity(item, kind, what)

    node = ctx.substitute(node)
    if isinstance(node, YMap):
        ctx.check_keys(node, ("range", "warn", "delay"), f"the {name} limit", LIMITS_EXAMPLE)
        range_node = node.get("range")
        if range_node is None:
            ctx.report(node, f"the {name} limit needs a range", example=LIMITS_EXAMPLE)
            return None
        low, high = _pair(ctx, range_node, f"{name} range", parse)
        warn_node = node.get("warn")
        warn_low, warn_high = (None, None) if warn_node is None else _pair(
            ctx, warn_node, f"{name} warn", parse)
        if None not in (low, high, warn_low, warn_high):
            assert low is not None and high is not None
            assert warn_low is not None and warn_high is not None
            if not (low <= warn_low < warn_high <= high):
                ctx.report(warn_node or node, f"{name} warning levels must lie inside the range")
        return Limit(low, high, warn_low, warn_high, _delay(ctx, node))
    low, high = _pair(ctx, node, f"{name} limit", parse)
    return Limit(low, high)


def _maximum(ctx: Context, node: YNode, name: str, parse: Parse) -> Limit | None:
    node = ctx.substitute(node)
    if isinstance(node, YMap):
        ctx.check_keys(node, ("max", "warn", "delay"), f"the {name} limit", LIMITS_EXAMPLE)
        max_node = node.get("max")
        if max_node is None:
            ctx.report(node, f"the {name} limit needs 'max'", example=LIMITS_EXAMPLE)
            return None
        high = parse(max_node, f"{name} max")
        warn_node = node.get("warn")
        warn = None if warn_node is None else parse(warn_node, f"{name} warn")
        if high is not None and warn is not None and warn > high:
            ctx.report(warn_node or node, f"the {name} warning level must not exceed the maximum")
        return Limit(None, high, None, warn, _delay(ctx, node))
    high = parse(node, f"{name} limit")
    if high is not None and high <= 0:
        ctx.report(node, f"the {name} limit must be positive", example=LIMITS_EXAMPLE)
    return Limit(None, high)


def read_limits(ctx: Context, node: YNode | None, scale: CellScale) -> Limits:
    """The protocol's safety limits, resolved for the cell."""
    if node is None:
        return Limits()
    mapping = ctx.mapping(ctx.substitute(node), "limits", LIMITS_EXAMPLE)
    if mapping is None:
        return Limits()
    ctx.check_keys(mapping, LIMIT_KEYS, "limits", LIMITS_EXAMPLE)

    def current(item: YNode, what: str) -> float | None:
        written = ctx.current(item, what)
        return None if written is None else absolute_current(ctx, written, scale, item)

    def charge(item: YNode, what: str) -> float | None:
        written = ctx.charge(item, what)
        return None if written is None else absolute_charge(ctx, written, scale, item)

    found: dict[str, Limit | None] = {}
    for name in WINDOW_KINDS:
        value = mapping.get(name)
        found[name] = None if value is None else _window(ctx, value, name)
    current_node, charge_node = mapping.get("current"), mapping.get("charge_per_step")
    return Limits(
        voltage_v=found["voltage"],
        current_a=None if current_node is None else _maximum(ctx, current_node, "current",
                                                             current),
        temperature_c=found["temperature"],
        pressure_pa=found["pressure"],
        charge_per_step_ah=None if charge_node is None else _maximum(
            ctx, charge_node, "charge_per_step", charge),
    )

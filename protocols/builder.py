"""Building the resolved step tree from the ``steps:`` of a protocol file.

A step is either a string (PyBaMM's grammar, see ``strings.py``) or a mapping with one kind
key (``charge``, ``discharge``, ``hold``, ``cccv``, ``rest``, ``pulse``, ``eis``, ``set``,
``stop``, ``step``) or one flow key (``repeat``, ``for_each``), plus common keys (``tag``,
``name``, ``record``, ``until``, ``for``). Each step kind is built in ``stepkinds.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cellrig.errors import SourceLocation

from .context import Context, describe
from .program import Direction, Node, Recording, Repeat, Sequence
from .suggest import did_you_mean
from .until import CellScale, read_cycle_until
from .yamlsource import YMap, YNode, YScalar, YSeq

STEP_KINDS = ("charge", "discharge", "hold", "cccv", "rest", "pulse", "eis", "set", "stop", "step")
FLOW_KINDS = ("repeat", "for_each")
COMMON_KEYS = ("tag", "name", "record", "until", "for")
RECORD_KEYS = ("every", "voltage_change", "current_change")
RECORD_EXAMPLE = "record: {every: 10 s, voltage_change: 5 mV, current_change: 10 mA}"
STEP_EXAMPLE = (
    "- Charge at 0.1C until 4.25 V\n- cccv: {current: 0.1C, voltage: 4.25 V, cutoff: 0.05C}"
)
REPEAT_EXAMPLE = (
    "- repeat: 1000\n  until: discharge capacity < 80 % of first\n  steps:\n"
    "    - Charge at 0.5C until 4.25 V\n    - Discharge at 0.5C until 2.5 V"
)
FOR_EACH_EXAMPLE = (
    "- for_each: {rate: [0.2C, 0.5C, 1C, 2C]}\n  steps:\n    - Discharge at ${rate} until 2.5 V"
)

StepKindBuilder = Callable[["Builder", YMap, str], Node | None]


@dataclass
class Built:
    """The result of building: the tree, and what lints need to point back at the file."""

    steps: tuple[Node, ...]
    locations: dict[int, SourceLocation] = field(default_factory=dict)
    loop_locations: dict[int, SourceLocation] = field(default_factory=dict)


class Builder:
    """Walks ``steps:`` once, building resolved nodes and recording every problem."""

    def __init__(self, ctx: Context, scale: CellScale, kinds: dict[str, StepKindBuilder]) -> None:
        self.ctx = ctx
        self.scale = scale
        self.kinds = kinds
        self.next_id = 1
        self.tags: dict[str, SourceLocation] = {}
        self.targets: list[tuple[str, YNode]] = []
        self.locations: dict[int, SourceLocation] = {}
        self.loop_locations: dict[int, SourceLocation] = {}
        self.for_each_depth = 0

    def build(self, node: YNode) -> Built:
        """Build the whole ``steps:`` list and check ``then`` targets."""
        steps = self.sequence(node, "steps")
        for target, at in self.targets:
            if target in self.tags or target in ("next", "stop"):
                continue
            hint = did_you_mean(target, list(self.tags))
            known = ", ".join(sorted(self.tags)) or "no step has a tag"
            self.ctx.report(
                at, f"'then: {target}' names no tagged step{hint}",
                expected=f"a tag of a step ({known}), 'next' or 'stop'",
                example="- tag: check-up\n  eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV}",
            )
        return Built(steps, self.locations, self.loop_locations)

    # -- helpers used by the step kinds ------------------------------------------------------

    def allocate_id(self, at: YNode) -> int:
        """A fresh ``Step ID``, remembering where the step was written."""
        step_id = self.next_id
        self.next_id += 1
        self.locations[step_id] = at.loc
        return step_id

    def tag(self, mapping: YMap) -> str | None:
        """The step's tag, checked for uniqueness."""
        node = mapping.get("tag")
        if node is None:
            return None
        tag = self.ctx.text(node, "tag", "tag: check-up")
        if tag is None:
            return None
        if tag in ("next", "stop"):
            self.ctx.report(node, f"{tag!r} is reserved for 'then:'; choose another tag")
            return None
        if self.for_each_depth:
            self.ctx.report(
                node, f"the tag {tag!r} is inside for_each, so it would name several steps",
                example="put the tagged step outside the for_each block",
            )
            return None
        if tag in self.tags:
            first = self.tags[tag]
            self.ctx.report(node, f"the tag {tag!r} is already used at line {first.line}")
            return None
        self.tags[tag] = node.loc
        return tag

    def record(self, node: YNode | None) -> Recording | None:
        """A recording rule (``every``, ``voltage_change``, ``current_change``)."""
        from .quantities import Kind

        if node is None:
            return None
        mapping = self.ctx.mapping(self.ctx.substitute(node), "record", RECORD_EXAMPLE)
        if mapping is None:
            return None
        self.ctx.check_keys(mapping, RECORD_KEYS, "record", RECORD_EXAMPLE)
        every = mapping.get("every")
        dv = mapping.get("voltage_change")
        di = mapping.get("current_change")
        every_s = None if every is None else self.ctx.quantity(every, Kind.TIME, "record every")
        dv_v = None if dv is None else self.ctx.quantity(dv, Kind.VOLTAGE, "voltage_change")
        di_a = None
        if di is not None:
            from .until import absolute_current

            written = self.ctx.current(di, "current_change")
            di_a = None if written is None else absolute_current(self.ctx, written, self.scale, di)
        for value, at in ((every_s, every), (dv_v, dv), (di_a, di)):
            if value is not None and value <= 0 and at is not None:
                self.ctx.report(at, "a recording interval or change must be positive",
                                example=RECORD_EXAMPLE)
        return Recording(every_s, dv_v, di_a)

    # -- the tree --------------------------------------------------------------------------

    def sequence(self, node: YNode, what: str) -> tuple[Node, ...]:
        """A list of steps."""
        node = self.ctx.substitute(node)
        if not isinstance(node, YSeq):
            self.ctx.report(node, f"{what} must be a list of steps, not {describe(node)}",
                            example="steps:\n  " + STEP_EXAMPLE.replace("\n", "\n  "))
            return ()
        if not node.items:
            self.ctx.report(node, f"{what} is empty", example="steps:\n  - Rest for 1 h")
        built = [self.node(item) for item in node.items]
        return tuple(item for item in built if item is not None)

    def node(self, item: YNode) -> Node | None:
        """One entry of a steps list."""
        item = self.ctx.substitute(item)
        if isinstance(item, YScalar):
            return self.kinds["step"](self, YMap(((YScalar("step", "step", item.loc), item),),
                                                 item.loc), "step")
        if isinstance(item, YSeq):
            self.ctx.report(item, "a step must be a text or a mapping, not a list",
                            example=STEP_EXAMPLE)
            return None
        present = [key for key in item if key in STEP_KINDS or key in FLOW_KINDS]
        if len(present) != 1:
            self._report_kind(item, present)
            return None
        kind = present[0]
        if kind == "repeat":
            return self.repeat(item)
        if kind == "for_each":
            return self.for_each(item)
        return self.kinds[kind](self, item, kind)

    def _report_kind(self, item: YMap, present: list[str]) -> None:
        if present:
            self.ctx.report(item, "a step has exactly one kind, but this one has "
                            + " and ".join(repr(k) for k in present), example=STEP_EXAMPLE)
            return
        keys = list(item.keys())
        guesses = [did_you_mean(k, STEP_KINDS + FLOW_KINDS) for k in keys]
        hint = next((g for g in guesses if g), "")
        at = item.key_node(keys[0]) if keys else item
        self.ctx.report(
            at or item, f"this step has no kind{hint}",
            expected="one of " + ", ".join(STEP_KINDS + FLOW_KINDS), example=STEP_EXAMPLE,
        )

    def repeat(self, item: YMap) -> Repeat | None:
        """A ``repeat`` block: a count and/or a loop condition around a list of steps."""
        self.ctx.check_keys(item, ("repeat", "until", "steps", "tag", "name"), "a repeat block",
                            REPEAT_EXAMPLE)
        count_node = self.ctx.substitute(item.get("repeat") or YScalar(None, "", item.loc))
        count: int | None = None
        if not (isinstance(count_node, YScalar) and count_node.value is None):
            count = self.ctx.integer(count_node, "repeat", REPEAT_EXAMPLE, minimum=0)
        until_node = item.get("until")
        until = () if until_node is None else tuple(read_cycle_until(self.ctx, until_node))
        tag = self.tag(item)
        body_node = item.get("steps")
        if body_node is None:
            self.ctx.report(item, "a repeat block needs 'steps:'", example=REPEAT_EXAMPLE)
            return None
        body = self.sequence(body_node, "the steps of a repeat block")
        name_node = item.get("name")
        name = (self.ctx.text(name_node, "name", "name: long cycling") if name_node else None)
        label = "repeat" if count is None else f"repeat {count}x"
        if name:
            label = f"{name} ({label})"
        if until:
            label += " until " + " or ".join(c.text for c in until)
        if count is None and not until:
            self.ctx.warn(item, "this loop has neither a count nor an 'until': it never ends "
                          "unless a step condition jumps out of it", example=REPEAT_EXAMPLE)
        loop = Repeat(label=label, steps=body, count=count, until=until, tag=tag)
        self.loop_locations[id(loop)] = item.loc
        return loop

    def for_each(self, item: YMap) -> Sequence | None:
        """A ``for_each`` block: the steps once per value, the value substituted."""
        self.ctx.check_keys(item, ("for_each", "steps", "name"), "a for_each block",
                            FOR_EACH_EXAMPLE)
        spec = self.ctx.mapping(self.ctx.substitute(item.get("for_each") or item),
                                "for_each", FOR_EACH_EXAMPLE)
        body_node = item.get("steps")
        if spec is None:
            return None
        if len(spec.entries) != 1:
            self.ctx.report(spec, "for_each takes one name and its list of values",
                            example=FOR_EACH_EXAMPLE)
            return None
        if body_node is None:
            self.ctx.report(item, "a for_each block needs 'steps:'", example=FOR_EACH_EXAMPLE)
            return None
        name_key, values_node = spec.entries[0]
        name = str(name_key.value)
        values = self.ctx.substitute(values_node)
        if not isinstance(values, YSeq) or not values.items:
            self.ctx.report(values, f"the values of {name!r} must be a non-empty list",
                            example=FOR_EACH_EXAMPLE)
            return None
        iterations: list[Node] = []
        outer = self.ctx.scope.get(name)
        self.for_each_depth += 1
        try:
            for value in values.items:
                if not isinstance(value, YScalar):
                    self.ctx.report(value, "for_each values must be single values",
                                    example=FOR_EACH_EXAMPLE)
                    continue
                self.ctx.scope[name] = value
                body = self.sequence(body_node, "the steps of a for_each block")
                iterations.append(Sequence(label=f"{name} = {value.text}", steps=body))
        finally:
            self.for_each_depth -= 1
            if outer is None:
                self.ctx.scope.pop(name, None)
            else:
                self.ctx.scope[name] = outer
        listing = ", ".join(v.text for v in values.items if isinstance(v, YScalar))
        label = f"for each {name} in [{listing}]"
        title_node = item.get("name")
        title = self.ctx.text(title_node, "name", "name: rate ladder") if title_node else None
        if title:
            label = f"{title} ({label})"
        return Sequence(label=label, steps=tuple(iterations))


def step_direction(current_a: float) -> Direction:
    """The direction of a signed current (positive charges)."""
    if current_a > 0:
        return Direction.CHARGE
    if current_a < 0:
        return Direction.DISCHARGE
    return Direction.NONE

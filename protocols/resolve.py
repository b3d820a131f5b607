"""``resolve(protocol, cell, parameters) -> Program``: a protocol made concrete for one cell.

Resolution substitutes parameters (defaults overridden by the submission), merges the
submitted cell over the protocol's, turns every C-rate, current density and share of the
capacity into an absolute value, builds the step tree and checks it. All errors of the file
are reported together; lints (warnings) are added when there are no errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cellrig.errors import ConfigError, Diagnostic, ProtocolError, Severity, SourceLocation

from .builder import Builder, Built
from .cells import CELL_EXAMPLE, merge_cells, read_cell
from .context import Context
from .document import Protocol, override_nodes
from .limits import DEFAULT_RECORDING, read_limits
from .program import Program, Recording
from .stepkinds import kinds
from .until import CellScale
from .yamlsource import SourceText, YMap, load_yaml


@dataclass
class Resolution:
    """The outcome of resolving: a program (None if there were errors) and every finding."""

    program: Program | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    built: Built | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        """The errors only."""
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        """The warnings only."""
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]


def check(
    protocol: Protocol,
    cell: YMap | None = None,
    parameters: Mapping[str, object] | None = None,
    *,
    lints: bool = True,
) -> Resolution:
    """Resolve and collect every error and warning; never raises for bad input."""
    ctx = Context(protocol.source)
    ctx.scope = override_nodes(protocol, parameters or {}, ctx)
    cell_node = protocol.section("cell")
    merged = merge_cells(cell_node if isinstance(cell_node, YMap) else None, cell)
    if cell_node is not None and not isinstance(cell_node, YMap) and cell is None:
        merged = None
        ctx.mapping(cell_node, "cell", CELL_EXAMPLE)
    resolved_cell = read_cell(ctx, merged)
    scale = CellScale(resolved_cell.capacity_ah, resolved_cell.area_m2)
    limits = read_limits(ctx, protocol.section("limits"), scale)
    builder = Builder(ctx, scale, kinds())
    record: Recording = builder.record(protocol.section("record")) or DEFAULT_RECORDING
    steps_node = protocol.section("steps")
    built = builder.build(steps_node) if steps_node is not None else Built(())
    for name, parameter in protocol.parameters.items():
        if name not in ctx.used_parameters and not ctx.has_errors:
            ctx.warn(parameter.loc, f"the parameter {name!r} is never used")
    if ctx.has_errors:
        return Resolution(None, ctx.diagnostics, built)
    program = Program(
        name=protocol.name,
        description=protocol.description,
        steps=built.steps,
        cell=resolved_cell,
        limits=limits,
        record=record,
        parameters={name: _text(node) for name, node in sorted(ctx.scope.items())},
        source_sha256=protocol.sha256,
    )
    if lints:
        from .lint import lint

        lint(ctx, program, built)
    return Resolution(program, ctx.diagnostics, built)


def resolve(
    protocol: Protocol,
    cell: YMap | None = None,
    parameters: Mapping[str, object] | None = None,
) -> Program:
    """The program for ``cell`` with ``parameters``; raises ProtocolError listing every error."""
    result = check(protocol, cell, parameters, lints=False)
    if result.program is None:
        raise ProtocolError(result.diagnostics)
    return result.program


def load_cell_text(text: str, filename: str = "<cell>") -> YMap:
    """A cell definition from YAML text (the fields of ``cell:``, or a file with ``cell:``)."""
    source = SourceText(filename, text)
    diagnostics: list[Diagnostic] = []
    node = load_yaml(source, diagnostics)
    if node is None and not diagnostics:
        diagnostics.append(Diagnostic(source.loc(0, 0), "the cell file is empty",
                                      example=CELL_EXAMPLE))
    if diagnostics:
        raise ConfigError(diagnostics)
    if isinstance(node, YMap) and isinstance(node.get("cell"), YMap) and len(node.entries) == 1:
        inner = node.get("cell")
        assert isinstance(inner, YMap)
        node = inner
    if not isinstance(node, YMap):
        assert node is not None
        raise ConfigError([Diagnostic(node.loc, "a cell file is a mapping of cell fields",
                                      example="capacity: 634 mAh\narea: 93.28 cm^2",
                                      source_line=source.line(node.loc.line))])
    return node


def load_cell_file(path: str | Path) -> YMap:
    """A cell definition file; raises ConfigError naming the file for any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(SourceLocation(str(path), 1, 1),
                                      f"cannot read the cell file: {exc}")]) from None
    return load_cell_text(text, str(path))


def _text(node: object) -> str:
    from .document import _show

    return _show(node)  # type: ignore[arg-type]

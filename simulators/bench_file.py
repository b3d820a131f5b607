"""Reading bench files: the chambers, cells and instruments of a simulated station, in YAML.

A bench file says what ``cellrig sim serve --bench FILE`` starts (docs/sim-station.md has
the whole format; ``deploy/bench.example.yaml`` is an example)::

    cellrig-bench: 1
    chambers:
      oven: {kind: watlow-f4t, temperature: 25 degC}
    cells:
      A1:
        cell: paper-pouch-0.6Ah          # a built-in cell, or a cell definition file
        state: formed                    # or as-built (the default)
        potentiostat: keithley2450       # or palmsens
        jig: {kind: bolted, preload: 3 MPa}
    eis:
      eis: {cell: A1}                    # a PalmSens wired to cell A1

Every problem of the file is reported at once, each with the file, line and column, what was
expected and an example, as a :class:`~cellrig.errors.ConfigError`; errors in a cell
definition file it names are reported with that file's own positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from cellrig.errors import ConfigError, Diagnostic, SourceLocation
from cellrig.protocols.context import Context, describe
from cellrig.protocols.document import read_root_mapping
from cellrig.protocols.quantities import Kind
from cellrig.protocols.suggest import did_you_mean
from cellrig.protocols.yamlsource import SourceText, YMap, YNode, YScalar, YSeq
from cellrig.simulators.bench_spec import (
    DEFAULT_CHAMBER_RANGE_C,
    DEFAULT_PISTON_AREA_M2,
    DEFAULT_PRESSURE_PA,
    ROOM_C,
    BenchSpec,
    CellSpec,
    CellState,
    ChamberKind,
    ChamberSpec,
    EisSpec,
    JigKind,
    JigSpec,
    PotentiostatKind,
    PotentiostatSpec,
    Transport,
    potentiostat_name,
)
from cellrig.simulators.cell_params import (
    DEFAULT_CELL,
    CellParameters,
    builtin_cells,
    load_builtin_cell,
    load_cell_file,
)

VERSION_KEY = "cellrig-bench"
TOP_KEYS = (VERSION_KEY, "name", "transport", "chambers", "cells", "eis")
#: A regulator of the emulated jigs reaches this much (150 psi, as on its label).
REGULATOR_FULL_SCALE_PA = 150.0 * 6894.757293168
MAX_FILE_BYTES = 1024 * 1024
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NONE = ("none", None)

EXAMPLE = ("cellrig-bench: 1\nchambers:\n  chamber: {kind: espec, temperature: 25 degC}\n"
           "cells:\n  A1: {cell: paper-pouch-0.6Ah, potentiostat: keithley2450}")
CHAMBER_EXAMPLE = "oven: {kind: watlow-f4t, temperature: 60 degC}"
CELL_EXAMPLE = ("A1: {cell: paper-pouch-0.6Ah, state: formed, chamber: oven, "
                "potentiostat: keithley2450, jig: {kind: pneumatic, pressure: 2 MPa}}")
JIG_EXAMPLE = "jig: {kind: pneumatic, pressure: 2 MPa}"
BOLTED_EXAMPLE = "jig: {kind: bolted, preload: 3 MPa}"
EIS_EXAMPLE = "eis: {cell: A1, kind: palmsens}"

E = TypeVar("E", bound=StrEnum)


@dataclass
class _Names:
    """Every instrument name taken so far, with where it was declared."""

    taken: dict[str, SourceLocation] = field(default_factory=dict)

    def claim(self, ctx: Context, name: str, at: YNode, what: str) -> None:
        if name in self.taken:
            ctx.report(at, f"{what} is named {name!r}, as another instrument of the bench "
                       f"(line {self.taken[name].line})",
                       expected="a name no other chamber, EIS unit or cell's instrument has",
                       example=CHAMBER_EXAMPLE)
        else:
            self.taken[name] = at.loc


def load_bench_file(path: str | Path) -> BenchSpec:
    """A bench file; ConfigError names the file for any problem, also one it cannot read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([Diagnostic(SourceLocation(str(path), 1, 1),
                                      f"cannot read the bench file: {reason}")]) from None
    return load_bench_text(text, str(path), Path(path).parent)


def load_bench_text(text: str, filename: str = "<bench>",
                    folder: Path | None = None) -> BenchSpec:
    """A bench from text; cell files named by a relative path are looked for in ``folder``
    (default: the current folder). Raises ConfigError listing every problem."""
    ctx = Context(SourceText(filename, text))
    root = read_root_mapping(ctx, "bench file", EXAMPLE, empty="the bench file is empty",
                             max_bytes=MAX_FILE_BYTES)
    if root is None:
        raise ConfigError(ctx.diagnostics)
    reader = _BenchReader(ctx, folder if folder is not None else Path())
    spec = reader.read(root, Path(filename).stem)
    if ctx.has_errors or spec is None:
        raise ConfigError(ctx.diagnostics)
    return spec


class _BenchReader:
    """Walks one bench file's nodes, reporting into its context."""

    def __init__(self, ctx: Context, folder: Path) -> None:
        self.ctx = ctx
        self.folder = folder
        self.names = _Names()
        self.transport = Transport.SOCKET
        self.cell_names: list[str] = []
        """every cell declared, also those with mistakes"""

    def read(self, root: YMap, default_name: str) -> BenchSpec | None:
        ctx = self.ctx
        ctx.check_keys(root, TOP_KEYS, "the bench", EXAMPLE)
        version = root.get(VERSION_KEY)
        if version is None:
            ctx.report(root, f"a bench file starts with '{VERSION_KEY}: 1'", example=EXAMPLE)
        elif not (isinstance(version, YScalar) and version.value == 1):
            ctx.report(version, f"unsupported {VERSION_KEY} version {describe(version)}; this "
                       "cellrig reads version 1", example=f"{VERSION_KEY}: 1")
        name = "sim-station"
        if (node := root.get("name")) is not None:
            name = self.name(node, "the station name", "name: sim-lab-3") or name
        elif _NAME_RE.fullmatch(default_name):
            name = default_name
        if (node := root.get("transport")) is not None:
            self.transport = self.choice(node, Transport, "transport", "transport: pty") \
                or self.transport
        chambers = self.chambers(root.get("chambers"))
        cells = self.cells(root, root.get("cells"), chambers)
        units = self.eis_units(root.get("eis"), cells)
        if ctx.has_errors:
            return None
        return BenchSpec(tuple(chambers.values()), tuple(spec for spec, _ in cells.values()),
                         tuple(units), name, ctx.source.name)

    # -- sections ---------------------------------------------------------------------------

    def entries(self, node: YNode | None, what: str, example: str) -> list[tuple[YScalar, YNode]]:
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return []
        mapping = self.ctx.mapping(node, what, example)
        return list(mapping.entries) if mapping is not None else []

    def chambers(self, node: YNode | None) -> dict[str, ChamberSpec]:
        found: dict[str, ChamberSpec] = {}
        for key, value in self.entries(node, "chambers", f"chambers:\n  {CHAMBER_EXAMPLE}"):
            name = self.name(key, "a chamber's name", CHAMBER_EXAMPLE)
            table = self.table(value, "kind", f"chamber {key.value!r}", CHAMBER_EXAMPLE,
                               ("kind", "temperature", "range", "transport"))
            if name is None or table is None:
                continue
            self.names.claim(self.ctx, name, key, f"chamber {name!r}")
            kind = self.required(table, "kind", ChamberKind, f"chamber {name!r}",
                                 CHAMBER_EXAMPLE)
            range_c = self.range(table.get("range"))
            temperature_c = ROOM_C
            if (given := table.get("temperature")) is not None:
                start_c = self.ctx.quantity(given, Kind.TEMPERATURE, "temperature")
                if start_c is not None and range_c is not None and not (
                        range_c[0] <= start_c <= range_c[1]):
                    self.ctx.report(given, f"chamber {name!r} is rated for {range_c[0]:g} to "
                                    f"{range_c[1]:g} degC, not {start_c:g} degC",
                                    example="temperature: 25 degC")
                temperature_c = start_c if start_c is not None else temperature_c
            transport = self.transport_of(table, kind is ChamberKind.WATLOW_F4T,
                                          "a Watlow F4T speaks Modbus TCP")
            if kind is not None and range_c is not None and transport is not None:
                found[name] = ChamberSpec(name, kind, temperature_c, range_c, transport)
        return found

    def cells(self, root: YMap, node: YNode | None, chambers: dict[str, ChamberSpec]
              ) -> dict[str, tuple[CellSpec, YScalar]]:
        found: dict[str, tuple[CellSpec, YScalar]] = {}
        entries = self.entries(node, "cells", f"cells:\n  {CELL_EXAMPLE}")
        if not entries and not self.ctx.has_errors:
            self.ctx.report(node if node is not None else root,
                            "a bench needs at least one cell under 'cells:'",
                            example=f"cells:\n  {CELL_EXAMPLE}")
        for key, value in entries:
            name = self.name(key, "a cell's name (its channel's name)", CELL_EXAMPLE)
            table = self.table(value, None, f"cell {key.value!r}", CELL_EXAMPLE,
                               ("cell", "state", "chamber", "potentiostat", "jig"))
            if name is not None:
                self.cell_names.append(name)
            if name is None or table is None:
                continue
            spec = self.cell(name, key, table, chambers)
            if spec is not None:
                found[name] = (spec, key)
        return found

    def cell(self, name: str, key: YScalar, table: YMap,
             chambers: dict[str, ChamberSpec]) -> CellSpec | None:
        ctx, what = self.ctx, f"cell {name!r}"
        params, cell_source = self.cell_params(table.get("cell"))
        state = CellState.AS_BUILT
        if (node := table.get("state")) is not None:
            if isinstance(node, YScalar) and str(node.value).strip() == "as built":
                node = YScalar("as-built", node.text, node.loc, node.quoted)
            state = self.choice(node, CellState, "state", "state: formed") or state
        chamber = self.chamber_of(table.get("chamber"), key, chambers, what)
        potentiostat = self.potentiostat(table.get("potentiostat"), what)
        jig = self.jig(table.get("jig"), what, params)
        if potentiostat is not None:
            claimed = [potentiostat_name(potentiostat.kind, name)]
            if isinstance(jig, JigSpec):
                claimed.append(f"gauge-{name}")
                if jig.kind is JigKind.PNEUMATIC:
                    claimed.append(f"regulator-{name}")
            for instrument in claimed:
                self.names.claim(ctx, instrument, key, f"the instrument of {what}")
        if (potentiostat is None or isinstance(chamber, bool) or isinstance(jig, bool)
                or params is None):
            return None
        return CellSpec(name, params, cell_source, state, chamber, potentiostat, jig)

    def eis_units(self, node: YNode | None, cells: dict[str, tuple[CellSpec, YScalar]]
                  ) -> list[EisSpec]:
        found: list[EisSpec] = []
        wired: dict[str, str] = {}
        for key, value in self.entries(node, "eis", f"eis:\n  {EIS_EXAMPLE}"):
            name = self.name(key, "an EIS unit's name", EIS_EXAMPLE)
            table = self.table(value, "cell", f"EIS unit {key.value!r}", EIS_EXAMPLE,
                               ("cell", "kind", "transport"))
            if name is None or table is None:
                continue
            self.names.claim(self.ctx, name, key, f"EIS unit {name!r}")
            if (kind := table.get("kind")) is not None:
                self.choice(kind, _EisKind, "kind", "kind: palmsens")
            transport = self.transport_of(table, False, "")
            cell_node = table.get("cell")
            if cell_node is None:
                self.ctx.report(table, f"EIS unit {name!r} needs the cell it is wired to",
                                example=EIS_EXAMPLE)
                continue
            cell = self.ctx.text(cell_node, "cell", "cell: A1")
            if cell is None:
                continue
            if cell not in self.cell_names:
                hint = did_you_mean(cell, self.cell_names)
                self.ctx.report(cell_node, f"EIS unit {name!r} is wired to cell {cell!r}, which "
                                f"the bench does not have{hint}", expected="one of its cells "
                                f"({', '.join(self.cell_names) or 'none'})", example=EIS_EXAMPLE)
                continue
            if cell not in cells:
                continue        # the cell's own mistakes are reported
            spec, _ = cells[cell]
            if spec.potentiostat.kind is PotentiostatKind.PALMSENS:
                self.ctx.report(cell_node, f"cell {cell!r} has a PalmSens as its potentiostat, "
                                "which measures its impedance itself",
                                expected="a cell whose potentiostat is a Keithley 2450",
                                example=EIS_EXAMPLE)
            elif cell in wired:
                self.ctx.report(cell_node, f"cell {cell!r} already has an EIS unit, "
                                f"{wired[cell]!r}", example=EIS_EXAMPLE)
            elif transport is not None:
                wired[cell] = name
                found.append(EisSpec(name, cell, transport))
        return found

    # -- parts ------------------------------------------------------------------------------

    def cell_params(self, node: YNode | None) -> tuple[CellParameters | None, str]:
        if node is None:
            return load_builtin_cell(), DEFAULT_CELL
        text = self.ctx.text(node, "cell", f"cell: {DEFAULT_CELL}")
        if text is None:
            return None, ""
        cells = builtin_cells()
        path = Path(text).expanduser()
        path = path if path.is_absolute() else self.folder / path
        if text in cells and not path.exists():
            return load_builtin_cell(text), text
        if not path.is_file():
            hint = did_you_mean(text, cells)
            self.ctx.report(node, f"cell {text!r} is neither a built-in cell nor a file{hint}",
                            expected=f"a built-in cell ({', '.join(cells)}) or the path of a "
                            "cell definition file (cellrig-cell: 1), relative to the bench file",
                            example=f"cell: {DEFAULT_CELL}")
            return None, ""
        try:
            return load_cell_file(path), text
        except ConfigError as error:
            self.ctx.report(node, f"the cell definition {text!r} has errors (below)",
                            example=f"cell: {DEFAULT_CELL}")
            self.ctx.diagnostics.extend(error.diagnostics)
            return None, ""

    def chamber_of(self, node: YNode | None, key: YScalar, chambers: dict[str, ChamberSpec],
                   what: str) -> str | bool | None:
        """The chamber's name, None for the room, or False after an error."""
        if node is None:
            if len(chambers) > 1:
                self.ctx.report(key, f"{what} does not say which chamber it sits in",
                                expected=f"chamber: one of {', '.join(chambers)}, or none",
                                example=f"chamber: {next(iter(chambers))}")
                return False
            return next(iter(chambers), None)
        if isinstance(node, YScalar) and node.value in _NONE:
            return None
        name = self.ctx.text(node, "chamber", "chamber: oven")
        if name is None:
            return False
        if name not in chambers:
            self.ctx.report(node, f"{what} sits in chamber {name!r}, which the bench does not "
                            f"have{did_you_mean(name, chambers)}",
                            expected=f"one of {', '.join([*chambers, 'none'])}",
                            example=CHAMBER_EXAMPLE)
            return False
        return name

    def potentiostat(self, node: YNode | None, what: str) -> PotentiostatSpec | None:
        if node is None:
            return PotentiostatSpec()
        table = self.table(node, "kind", f"the potentiostat of {what}",
                           "potentiostat: {kind: palmsens, transport: pty}", ("kind", "transport"))
        if table is None:
            return None
        kind = self.required(table, "kind", PotentiostatKind, f"the potentiostat of {what}",
                             "potentiostat: keithley2450")
        transport = self.transport_of(table, kind is PotentiostatKind.KEITHLEY2450,
                                      "a Keithley 2450 is reached over TCP "
                                      "(VISA TCPIP::host::port::SOCKET)")
        if kind is None or transport is None:
            return None
        return PotentiostatSpec(kind, transport)

    def jig(self, node: YNode | None, what: str,
            params: CellParameters | None) -> JigSpec | bool | None:
        """The jig, None for none, or False after an error."""
        if node is None:
            return JigSpec()
        if isinstance(node, YScalar) and node.value in _NONE:
            return None
        table = self.table(node, "kind", f"the jig of {what}", JIG_EXAMPLE,
                           ("kind", "pressure", "preload", "piston_area", "transport"))
        if table is None:
            return False
        kind = self.required(table, "kind", JigKind, f"the jig of {what}", JIG_EXAMPLE)
        if kind is None:
            return False
        pneumatic = kind is JigKind.PNEUMATIC
        wanted, refused = ("pressure", "preload") if pneumatic else ("preload", "pressure")
        for key in (refused, *(("piston_area",) if not pneumatic else ())):
            if (bad := table.key_node(key)) is not None:
                self.ctx.report(bad, f"a {kind.value} jig takes no {key}",
                                expected=f"{wanted} for a {kind.value} jig",
                                example=JIG_EXAMPLE if pneumatic else BOLTED_EXAMPLE)
        pressure_pa = self.positive(table.get(wanted), Kind.PRESSURE, wanted, DEFAULT_PRESSURE_PA)
        piston_m2 = self.positive(table.get("piston_area"), Kind.AREA, "piston_area",
                                  DEFAULT_PISTON_AREA_M2)
        transport = self.transport_of(table, False, "")
        if pressure_pa is None or piston_m2 is None or transport is None:
            return False
        if pneumatic and params is not None:
            highest_pa = REGULATOR_FULL_SCALE_PA * piston_m2 / params.area_m2
            if pressure_pa > highest_pa:
                at = table.get("pressure") or table
                self.ctx.report(at, f"the jig of {what} reaches at most {highest_pa / 1e6:.3g} "
                                f"MPa on this cell (a 150 psi regulator on a {piston_m2:g} m^2 "
                                "piston)", expected="a lower pressure or a larger piston_area",
                                example=JIG_EXAMPLE)
                return False
        return JigSpec(kind, pressure_pa, piston_m2, transport)

    def range(self, node: YNode | None) -> tuple[float, float] | None:
        if node is None:
            return DEFAULT_CHAMBER_RANGE_C
        example = "range: [-40 degC, 150 degC]"
        if not (isinstance(node, YSeq) and len(node.items) == 2):
            self.ctx.report(node, "a chamber's range is [lowest, highest]", example=example)
            return None
        low = self.ctx.quantity(node.items[0], Kind.TEMPERATURE, "range")
        high = self.ctx.quantity(node.items[1], Kind.TEMPERATURE, "range")
        if low is None or high is None:
            return None
        if not low < high:
            self.ctx.report(node, "a chamber's range goes from its lowest to its highest "
                            "temperature", example=example)
            return None
        return low, high

    def transport_of(self, table: YMap, tcp_only: bool, why: str) -> Transport | None:
        node = table.get("transport")
        if node is None:
            return Transport.SOCKET if tcp_only else self.transport
        transport = self.choice(node, Transport, "transport", "transport: pty")
        if transport is Transport.PTY and tcp_only:
            self.ctx.report(node, f"{why}: it has no pseudo-terminal",
                            expected="transport: socket (or no transport)",
                            example="transport: socket")
            return None
        return transport

    # -- values -----------------------------------------------------------------------------

    def table(self, node: YNode, short_key: str | None, what: str, example: str,
              allowed: tuple[str, ...]) -> YMap | None:
        """A mapping with ``allowed`` keys; a single value stands for ``{short_key: value}``."""
        if short_key is not None and isinstance(node, YScalar) and node.value is not None:
            return YMap(((YScalar(short_key, short_key, node.loc), node),), node.loc)
        if isinstance(node, YScalar) and node.value is None:
            return YMap((), node.loc)
        mapping = self.ctx.mapping(node, what, example)
        if mapping is not None:
            self.ctx.check_keys(mapping, allowed, what, example)
        return mapping

    def required(self, table: YMap, key: str, kinds: type[E], what: str,
                 example: str) -> E | None:
        node = table.get(key)
        if node is None:
            self.ctx.report(table, f"{what} needs its {key}",
                            expected="one of " + ", ".join(kind.value for kind in kinds),
                            example=example)
            return None
        return self.choice(node, kinds, key, example)

    def choice(self, node: YNode, kinds: type[E], what: str, example: str) -> E | None:
        text = self.ctx.text(node, what, example)
        if text is None:
            return None
        values = [kind.value for kind in kinds]
        if text.strip() not in values:
            self.ctx.report(node, f"{what} {text!r} is not one cellrig knows"
                            f"{did_you_mean(text.strip(), values)}",
                            expected="one of " + ", ".join(values), example=example)
            return None
        return kinds(text.strip())

    def name(self, node: YNode, what: str, example: str) -> str | None:
        text = self.ctx.text(node, what, example)
        if text is not None and not _NAME_RE.fullmatch(text):
            self.ctx.report(node, f"{what} {text!r} is not a name: letters, digits, '-', '_' "
                            "and '.', starting with a letter or digit", example=example)
            return None
        return text

    def positive(self, node: YNode | None, kind: Kind, what: str,
                 default: float) -> float | None:
        if node is None:
            return default
        value = self.ctx.quantity(node, kind, what)
        if value is not None and not value > 0:
            self.ctx.report(node, f"{what} must be more than zero", example=_positive_example(what))
            return None
        return value


class _EisKind(StrEnum):
    """The EIS units emulated (a Solartron 1260 has no emulator yet)."""

    PALMSENS = "palmsens"


def _positive_example(what: str) -> str:
    return "piston_area: 0.1 m^2" if what == "piston_area" else f"{what}: 2 MPa"

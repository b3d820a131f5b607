"""Running a protocol on the model at full speed: the cell, the bench, the engine, progress.

The simulated cell is a cell definition (``cellrig-cell: 1`` files, or a built-in cell by
name); its ``cell:`` section is the job's cell metadata, so C-rates and shares of the capacity
resolve against the cell that is simulated, as they would at a submission. It sits in a
pneumatic jig in a chamber, both starting at the given temperature and pressure. ``formed``
first runs the library's formation protocol on it (not recorded), for protocols written for a
formed cell.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cellrig.errors import ConfigError, Diagnostic
from cellrig.protocols.document import Protocol, load_protocol, load_protocol_text
from cellrig.protocols.engine import Engine, Event, EventKind, JobOutcome, ListSink
from cellrig.protocols.engine.output import CycleSummary, SampleBlock
from cellrig.protocols.program import Node, Program, Repeat, Sequence
from cellrig.protocols.resolve import check, load_cell_file
from cellrig.protocols.rig import Spectrum
from cellrig.protocols.yamlsource import SourceText, YMap, load_yaml
from cellrig.simulators.bench import Bench, BenchClock, pneumatic_jig
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import (
    CellParameters,
    builtin_cells,
    load_builtin_cell,
    load_cell_text,
)
from cellrig.simulators.chamber import Chamber
from cellrig.simulators.model_rig import ModelRig

#: Wall-clock start of simulated jobs when none is given (2026-01-01 00:00 UTC).
DEFAULT_START_UNIX = 1_767_225_600.0


@dataclass(frozen=True)
class SimulatedCell:
    """The model's parameters and the job's cell metadata (None: the protocol's own)."""

    params: CellParameters
    metadata: YMap | None
    source: str


def _cell_section(text: str, filename: str) -> YMap | None:
    source = SourceText(filename, text)
    diagnostics: list[Diagnostic] = []
    root = load_yaml(source, diagnostics)
    if diagnostics:
        raise ConfigError(diagnostics)
    section = root.get("cell") if isinstance(root, YMap) else None
    return section if isinstance(section, YMap) else None


def load_simulated_cell(name_or_path: str | None) -> SimulatedCell:
    """The cell to simulate: a built-in cell by name, a cell definition file, or a plain cell
    file (the fields of a protocol's ``cell:``; the model is then the default cell)."""
    cells = builtin_cells()
    if name_or_path is None:
        name_or_path = "paper-pouch-0.6Ah"
    if name_or_path in cells and not Path(name_or_path).exists():
        text, filename = cells[name_or_path], f"{name_or_path}.yaml"
        return SimulatedCell(load_cell_text(text, filename), _cell_section(text, filename),
                             f"built-in cell {name_or_path}")
    path = Path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        # load_cell_file reports a file it cannot read with the project's diagnostics
        return SimulatedCell(load_builtin_cell(), load_cell_file(path), str(path))
    if text.lstrip().startswith("cellrig-cell"):
        return SimulatedCell(load_cell_text(text, str(path)), _cell_section(text, str(path)),
                             str(path))
    return SimulatedCell(load_builtin_cell(), load_cell_file(path),
                         f"{path} (on the default cell model)")


def load_protocol_argument(name_or_path: str) -> Protocol:
    """A protocol file, or a library protocol by name (``formation``, ``long-cycling``)."""
    path = Path(name_or_path)
    if not path.exists():
        from cellrig.protocols.library import library_files

        for entry in library_files():
            if entry.name.removesuffix(".yaml") == name_or_path:
                return load_protocol_text(entry.read_text(encoding="utf-8"),
                                          f"library/{entry.name}")
    return load_protocol(path)


def resolve(protocol: Protocol, cell: SimulatedCell, parameters: dict[str, str]
            ) -> tuple[Program | None, list[Diagnostic]]:
    """The program for the simulated cell, or None and the diagnostics (errors first)."""
    result = check(protocol, cell.metadata, parameters)
    return result.program, [*result.errors, *result.warnings]


def expected_steps(nodes: tuple[Node, ...]) -> int:
    """Steps the program runs if every loop runs its count (loops without one: once)."""
    total = 0
    for node in nodes:
        if isinstance(node, Repeat):
            total += (node.count or 1) * expected_steps(node.steps)
        elif isinstance(node, Sequence):
            total += expected_steps(node.steps)
        else:
            total += 1
    return total


class Progress:
    """A progress bar on a terminal: steps run against steps expected, the cycle and the
    simulated time; nothing when the stream is not a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total_steps: int, label: str) -> None:
        self.stream = stream
        self.total = max(total_steps, 1)
        self.label = label
        self.enabled = stream.isatty()
        self.steps = 0
        self._shown_at = 0.0

    def step(self, event: Event) -> None:
        """A step started; redraw at most ten times a second."""
        self.steps += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown_at >= 0.1:
            self._shown_at = now
            self._draw(min(self.steps / self.total, 0.999), event.cycle, event.test_time_s)

    def finish(self, cycles: int, test_time_s: float) -> None:
        """The job ended: a full bar, then a new line."""
        if self.enabled:
            self._draw(1.0, cycles, test_time_s)
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, share: float, cycle: int, test_time_s: float) -> None:
        filled = round(share * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%}  cycle {cycle}  "
                          f"{test_time_s / 3600.0:9.1f} h simulated")
        self.stream.flush()


@dataclass
class ProgressSink(ListSink):
    """Keeps everything (as ListSink, only the last checkpoint), reports step starts and hands
    every sample block to ``on_samples``. With ``keep_cycles`` it keeps only the sample blocks
    of those cycles and of the latest one."""

    progress: Progress | None = None
    keep_checkpoints: bool = False
    on_samples: Callable[[SampleBlock], None] | None = None
    keep_cycles: frozenset[int] | None = None
    _latest_cycle: int = 0

    def samples(self, block: SampleBlock) -> None:
        """Keep a block (if wanted) and pass it on."""
        if self.on_samples is not None:
            self.on_samples(block)
        if self.keep_cycles is None:
            self.blocks.append(block)
            return
        cycle = int(block.columns["Cycle Count / 1"][0])
        if cycle != self._latest_cycle:
            if self._latest_cycle not in self.keep_cycles:
                self.blocks = [kept for kept in self.blocks
                               if int(kept.columns["Cycle Count / 1"][0]) != self._latest_cycle]
            self._latest_cycle = cycle
        self.blocks.append(block)

    def event(self, event: Event) -> None:
        """Keep an event; a step start moves the progress bar."""
        self.events.append(event)
        if event.kind is EventKind.STEP_START and self.progress is not None:
            self.progress.step(event)


class BenchWallClock:
    """Wall-clock time of a simulated job: its start plus the bench time of the model."""

    def __init__(self, rig: ModelRig, start_unix: float) -> None:
        self.rig = rig
        self.start_unix = start_unix
        self.origin_s = rig.now_s()

    def unix_now(self) -> float:
        """The simulated UTC time."""
        return self.start_unix + (self.rig.now_s() - self.origin_s)


@dataclass
class Simulation:
    """Everything a simulated job produced."""

    program: Program
    cell: SimulatedCell
    outcome: JobOutcome
    blocks: list[SampleBlock]
    events: list[Event]
    cycles: list[CycleSummary]
    spectra: list[tuple[int, int, Spectrum]]
    wall_s: float
    start_unix: float
    extra: dict[str, Any] = field(default_factory=dict)


def make_rig(cell: SimulatedCell, temperature_c: float, pressure_pa: float) -> ModelRig:
    """A bench with one chamber and the cell in a pneumatic jig, both settled."""
    bench = Bench(BenchClock())
    bench.add_chamber("chamber-1", Chamber(temperature_c=temperature_c, setpoint_c=temperature_c,
                                           _start_c=temperature_c))
    model = CellModel(cell.params, temperature_c=temperature_c, pressure_pa=pressure_pa)
    bench_cell = bench.add_cell("cell-1", "chamber-1", model,
                                pneumatic_jig(cell.params, pressure_pa))
    return ModelRig(bench_cell)


async def _form(rig: ModelRig, cell: SimulatedCell) -> None:
    protocol = load_protocol_argument("formation")
    program, diagnostics = resolve(protocol, cell, {})
    if program is None:
        raise ConfigError(list(diagnostics))
    await Engine(program, rig, ListSink(keep_checkpoints=False), checkpoints=False).run()


def simulate(program: Program, cell: SimulatedCell, *, temperature_c: float = 25.0,
             pressure_pa: float = 2.0e6, formed: bool = False,
             reference_cycle: int | None = None, start_unix: float = DEFAULT_START_UNIX,
             stream: TextIO | None = None,
             on_samples: Callable[[SampleBlock], None] | None = None,
             keep_cycles: frozenset[int] | None = None) -> Simulation:
    """Run ``program`` on the model of ``cell`` at full speed; every sample block goes to
    ``on_samples`` as it comes, and the simulation keeps the blocks of ``keep_cycles`` and
    the last cycle (all if None)."""
    rig = make_rig(cell, temperature_c, pressure_pa)
    progress = Progress(stream if stream is not None else sys.stderr,
                        expected_steps(program.steps), program.name)
    sink = ProgressSink(progress=progress, on_samples=on_samples, keep_cycles=keep_cycles)

    async def job() -> JobOutcome:
        if formed:
            await _form(rig, cell)
        clock = BenchWallClock(rig, start_unix)
        # nothing resumes a simulation: no checkpoints
        return await Engine(program, rig, sink, clock, reference_cycle=reference_cycle,
                            checkpoints=False).run()

    started = time.perf_counter()
    outcome = asyncio.run(job())
    wall = time.perf_counter() - started
    progress.finish(outcome.cycles, outcome.test_time_s)
    return Simulation(program, cell, outcome, sink.blocks, sink.events, sink.cycles,
                      sink.spectra, wall, start_unix)

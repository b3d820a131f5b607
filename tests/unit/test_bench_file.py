"""Bench files: what a correct one says, every mistake located (file, line, column) with what
was expected and an example; a formed cell as the library's formation leaves it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cellrig.daemon.simulate_run import load_protocol_argument, load_simulated_cell, make_rig
from cellrig.daemon.simulate_run import resolve as resolve_for_cell
from cellrig.errors import ConfigError
from cellrig.protocols.engine import Engine, JobState, ListSink
from cellrig.simulators.bench_file import load_bench_file, load_bench_text
from cellrig.simulators.bench_spec import (
    BenchSpec,
    CellState,
    ChamberKind,
    JigKind,
    PotentiostatKind,
    Transport,
    default_bench,
)
from cellrig.simulators.cell_forming import form_cell
from cellrig.simulators.cell_model import CellModel
from cellrig.simulators.cell_params import load_builtin_cell

EXAMPLE = Path(__file__).parents[2] / "deploy" / "bench.example.yaml"
MINIMAL = "cellrig-bench: 1\ncells:\n  A1: {}\n"


def errors_of(text: str, folder: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_bench_text(text, "bench.yaml", folder)
    return [f"{d.location.line}:{d.location.column}: {d.message} | {d.expected} | {d.example}"
            for d in error.value.diagnostics]


def test_the_example_bench_file() -> None:
    spec = load_bench_file(EXAMPLE)
    assert spec.name == "sim-bench" and spec.source == str(EXAMPLE)
    assert [(c.name, c.kind, c.temperature_c) for c in spec.chambers] == [
        ("oven", ChamberKind.WATLOW_F4T, 25.0), ("espec", ChamberKind.ESPEC, 60.0)]
    first, second = spec.cells
    assert (first.state, first.chamber, first.potentiostat.kind) == (
        CellState.FORMED, "oven", PotentiostatKind.KEITHLEY2450)
    assert first.jig is not None and (first.jig.kind, first.jig.pressure_pa) == (
        JigKind.PNEUMATIC, 2e6)
    assert second.params.name == "pouch-2x2cm" and second.params.area_m2 == pytest.approx(4e-4)
    assert second.potentiostat.kind is PotentiostatKind.PALMSENS
    assert second.potentiostat.transport is Transport.PTY
    assert second.jig is not None and (second.jig.kind, second.jig.pressure_pa) == (
        JigKind.BOLTED, 3e6)
    assert [(unit.name, unit.cell) for unit in spec.eis] == [("eis-A1", "A1")]
    assert spec.eis_of("A1") == "eis-A1" and spec.eis_of("A2") == "palmsens-A2"


def test_what_is_left_out_and_the_short_forms() -> None:
    spec = load_bench_text(MINIMAL, "bench.yaml")
    cell = spec.cells[0]
    assert spec.chambers == () and cell.chamber is None and cell.state is CellState.AS_BUILT
    assert cell.params == load_builtin_cell() and cell.potentiostat.kind.value == "keithley2450"
    assert cell.jig is not None and cell.jig.kind is JigKind.PNEUMATIC
    short = load_bench_text("cellrig-bench: 1\ntransport: pty\nchambers: {c: espec}\n"
                            "cells:\n  A1: {potentiostat: palmsens, jig: none, "
                            "state: as built}\n", "bench.yaml")
    cell = short.cells[0]
    assert cell.chamber == "c" and cell.jig is None and cell.state is CellState.AS_BUILT
    assert short.chambers[0].transport is Transport.PTY
    assert cell.potentiostat.transport is Transport.PTY


def test_a_cell_file_relative_to_the_bench(tmp_path: Path) -> None:
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "mine.yaml").write_text(
        "cellrig-cell: 1\nname: mine\ncell: {capacity: 5 mAh, area: 1 cm^2}\n", encoding="utf-8")
    bench = tmp_path / "bench.yaml"
    bench.write_text("cellrig-bench: 1\ncells:\n  A1: {cell: cells/mine.yaml}\n",
                     encoding="utf-8")
    spec = load_bench_file(bench)
    assert spec.cells[0].params.name == "mine" and spec.cells[0].cell_source == "cells/mine.yaml"
    assert spec.name == "bench"


#: (bench text, where the error points: (line, the text at its column), what it says)
MISTAKES = [
    ("cells:\n  A1: {}\n", (1, "cells"), "a bench file starts with 'cellrig-bench: 1'"),
    ("cellrig-bench: 2\ncells:\n  A1: {}\n", (1, "2"),
     "unsupported cellrig-bench version '2'"),
    ("cellrig-bench: 1\nchambers: {}\n", (1, "cellrig"),
     "a bench needs at least one cell under 'cells:'"),
    (MINIMAL + "chamber: {}\n", (4, "chamber"),
     "unknown key 'chamber' in the bench (did you mean 'chambers'?) | one of cellrig-bench, "
     "name, transport, chambers, cells, eis"),
    ("cellrig-bench: 1\nchambers:\n  oven: {kind: watlow, temperature: 25 degC}\n"
     + MINIMAL[17:], (3, "watlow"),
     "kind 'watlow' is not one cellrig knows (did you mean 'watlow-f4t'?) | one of "
     "espec, watlow-f4t"),
    ("cellrig-bench: 1\nchambers:\n  oven: {kind: watlow-f4t, transport: pty}\n"
     + MINIMAL[17:], (3, "pty"), "a Watlow F4T speaks Modbus TCP: it has no pseudo-terminal"),
    ("cellrig-bench: 1\nchambers:\n  oven: {temperature: 25 degC}\n" + MINIMAL[17:],
     (3, "{temperature"), "chamber 'oven' needs its kind | one of espec, watlow-f4t"),
    ("cellrig-bench: 1\nchambers:\n  oven: {kind: espec, temperature: 200 degC}\n"
     + MINIMAL[17:], (3, "200"), "chamber 'oven' is rated for -40 to 150 degC, not 200 degC"),
    ("cellrig-bench: 1\nchambers:\n  oven: {kind: espec, temperature: 25}\n" + MINIMAL[17:],
     (3, "25"), "temperature: '25' has no unit"),
    ("cellrig-bench: 1\nchambers:\n  oven: {kind: espec, range: [150 degC, 0 degC]}\n"
     + MINIMAL[17:], (3, "[150"), "a chamber's range goes from its lowest to its highest"),
    ("cellrig-bench: 1\nchambers: {a: espec, b: espec}\ncells:\n  A1: {}\n", (4, "A1"),
     "cell 'A1' does not say which chamber it sits in | chamber: one of a, b, or none"),
    ("cellrig-bench: 1\ncells:\n  A1: {chamber: oven}\n", (3, "oven"),
     "cell 'A1' sits in chamber 'oven', which the bench does not have"),
    ("cellrig-bench: 1\ncells:\n  A1: {cell: paper-pouch}\n", (3, "paper-pouch"),
     "cell 'paper-pouch' is neither a built-in cell nor a file (did you mean "
     "'paper-pouch-0.6Ah'?)"),
    ("cellrig-bench: 1\ncells:\n  A1: {state: fresh}\n", (3, "fresh"),
     "state 'fresh' is not one cellrig knows | one of as-built, formed"),
    ("cellrig-bench: 1\ncells:\n  A1: {potentiostat: keithley2450, jig: {kind: bolted, "
     "pressure: 3 MPa}}\n", (3, "pressure"),
     "a bolted jig takes no pressure | preload for a bolted jig"),
    ("cellrig-bench: 1\ncells:\n  A1: {potentiostat: {kind: keithley2450, transport: pty}}\n",
     (3, "pty"), "a Keithley 2450 is reached over TCP (VISA TCPIP::host::port::SOCKET): it has "
     "no pseudo-terminal"),
    ("cellrig-bench: 1\ncells:\n  A1: {jig: {kind: pneumatic, pressure: 20 MPa}}\n",
     (3, "20"), "the jig of cell 'A1' reaches at most 11.1 MPa on this cell (a 150 psi "
     "regulator on a 0.1 m^2 piston)"),
    ("cellrig-bench: 1\ncells:\n  A1: {jig: {kind: pneumatic, pressure: -1 MPa}}\n",
     (3, "-1"), "pressure must be more than zero"),
    ("cellrig-bench: 1\ncells:\n  A 1: {}\n", (3, "A 1"),
     "a cell's name (its channel's name) 'A 1' is not a name"),
    (MINIMAL + "eis:\n  eis: {cell: B1}\n", (5, "B1"),
     "EIS unit 'eis' is wired to cell 'B1', which the bench does not have"),
    ("cellrig-bench: 1\ncells:\n  A1: {potentiostat: palmsens}\neis:\n  eis: {cell: A1}\n",
     (5, "A1"), "cell 'A1' has a PalmSens as its potentiostat, which measures its impedance "
     "itself"),
    (MINIMAL + "eis:\n  eis: {cell: A1}\n  eis2: {cell: A1}\n", (6, "A1"),
     "cell 'A1' already has an EIS unit, 'eis'"),
    (MINIMAL + "eis:\n  gauge-A1: {cell: A1}\n", (5, "gauge-A1"),
     "EIS unit 'gauge-A1' is named 'gauge-A1', as another instrument of the bench (line 3)"),
    ("cellrig-bench: 1\ncells: [A1]\n", (2, "[A1]"), "cells must be a mapping, not a list"),
    ("cellrig-bench: 1\ncells:\n  A1: {cell: [a]\n", (4, ""), "this is not valid YAML"),
]


@pytest.mark.parametrize(("text", "at", "expected"), MISTAKES)
def test_a_mistake_is_located_and_explained(text: str, at: tuple[int, str],
                                            expected: str) -> None:
    number, token = at
    lines = [*text.splitlines(), ""]
    place = f"{number}:{lines[number - 1].index(token) + 1}"
    found = errors_of(text)
    assert any(line.startswith(f"{place}: {expected}") for line in found), (place, found)


def test_every_mistake_at_once_with_an_example() -> None:
    found = errors_of("cellrig-bench: 1\nchambers:\n  oven: {kind: espek}\ncells:\n"
                      "  A1: {state: new, jig: {kind: bolt}}\neis:\n  eis: {cell: B1}\n")
    assert [line.split(":")[0:2] for line in found] == [["3", "16"], ["5", "15"], ["5", "32"],
                                                         ["7", "15"]]
    assert "| one of its cells (A1) |" in found[-1]     # A1 is named, mistakes and all
    assert all(" | " in line and not line.endswith("| None") for line in found), found


def test_a_cell_definition_with_mistakes_is_reported_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "cellrig-cell: 1\nname: bad\ncell: {capacity: 5 mAh, area: 1 cm}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_bench_text("cellrig-bench: 1\ncells:\n  A1: {cell: bad.yaml}\n", "bench.yaml",
                        tmp_path)
    places = [(Path(d.location.file).name, d.location.line) for d in error.value.diagnostics]
    assert places == [("bench.yaml", 3), ("bad.yaml", 3)]
    assert "has errors" in error.value.diagnostics[0].message


def test_an_unreadable_bench_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml:1:1: error: cannot read the bench "
                                          r"file: No such file or directory"):
        load_bench_file(tmp_path / "missing.yaml")


def test_the_default_bench_has_one_of_every_instrument_kind() -> None:
    spec = default_bench()
    assert isinstance(spec, BenchSpec) and len(spec.cells) == 1
    assert {chamber.kind for chamber in spec.chambers} == set(ChamberKind)
    cell = spec.cells[0]
    assert cell.potentiostat.kind is PotentiostatKind.KEITHLEY2450
    assert cell.jig is not None and cell.jig.kind is JigKind.PNEUMATIC
    assert spec.eis_of(cell.name) == "eis"


def test_a_formed_cell_is_what_the_library_formation_leaves() -> None:
    formed = CellModel(load_builtin_cell(), temperature_c=25.0)
    form_cell(formed)
    cell = load_simulated_cell(None)
    rig = make_rig(cell, 25.0, 2e6)
    program, diagnostics = resolve_for_cell(load_protocol_argument("formation"), cell, {})
    assert program is not None, diagnostics
    outcome = asyncio.run(Engine(program, rig, ListSink(keep_checkpoints=False),
                                 checkpoints=False).run())
    assert outcome.state is JobState.COMPLETED
    engine_cell = rig.bench_cell.cell
    engine_state, state = engine_cell.state, formed.state
    assert state.charge_out_ah == pytest.approx(engine_state.charge_out_ah, rel=0.002)
    assert state.charge_in_ah == pytest.approx(engine_state.charge_in_ah, rel=0.002)
    assert state.anode_ah == pytest.approx(engine_state.anode_ah, abs=1e-3)
    assert formed.ocv_v() == pytest.approx(engine_cell.ocv_v(), abs=0.01)
    assert 3.2 < formed.ocv_v() < 3.6       # near the 2.5 V cut-off's rest, not 1 V as built

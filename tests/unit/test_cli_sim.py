"""``cellrig sim``: its command line (what it refuses before starting anything)."""

from __future__ import annotations

import pytest

from cellrig.daemon.cli import build_parser, main
from cellrig.daemon.cli_sim import bench_of


@pytest.mark.parametrize(("argv", "message"), [
    (["sim"], "say what to do: cellrig sim serve"),
    (["sim", "serve", "--channels", "0"], "--channels must be 1 to 256, not 0"),
    (["sim", "serve", "--channels", "257"], "--channels must be 1 to 256, not 257"),
    (["sim", "serve", "--speed", "0"], "--speed must be more than 0 and at most 1e6, not 0"),
    (["sim", "serve", "--speed", "nan"], "--speed must be more than 0"),
    (["sim", "serve", "--bench", "b.yaml", "--channels", "2"],
     "--bench does not go with --channels or --eis"),
    (["sim", "serve", "--bench", "b.yaml", "--eis"],
     "--bench does not go with --channels or --eis"),
])
def test_a_bad_command_line_exits_with_2_and_says_why(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_takes_its_options() -> None:
    args = build_parser().parse_args(["sim", "serve", "--channels", "8", "--speed", "1000",
                                      "--eis", "--write-config", "sim.toml"])
    assert (args.command, args.sim_command) == ("sim", "serve")
    assert (args.channels, args.speed, args.eis, args.write_config) == (8, 1000.0, True,
                                                                        "sim.toml")
    assert (args.host, args.name, args.data_folder) == ("127.0.0.1", None, "data")


@pytest.mark.parametrize(("argv", "cells", "chambers", "eis"), [
    ([], ["A1"], ["espec", "watlow-f4t"], ["eis"]),
    (["--channels", "3"], ["A1", "A2", "A3"], ["espec"], []),
    (["--eis"], ["A1", "A2", "A3", "A4"], ["espec"], ["eis"]),
    (["--channels", "2", "--eis"], ["A1", "A2"], ["espec"], ["eis"]),
])
def test_what_is_served_without_a_bench_file(argv: list[str], cells: list[str],
                                             chambers: list[str], eis: list[str]) -> None:
    spec = bench_of(build_parser().parse_args(["sim", "serve", *argv]))
    assert [cell.name for cell in spec.cells] == cells
    assert [chamber.kind.value for chamber in spec.chambers] == chambers
    assert [unit.name for unit in spec.eis] == eis
    assert all(cell.jig is not None and cell.jig.kind.value == "pneumatic"
               and cell.potentiostat.kind.value == "keithley2450" for cell in spec.cells)

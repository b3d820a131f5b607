"""``cellrig sim``: its command line (what it refuses before starting anything)."""

from __future__ import annotations

import pytest

from cellrig.daemon.cli import build_parser, main


@pytest.mark.parametrize(("argv", "message"), [
    (["sim"], "say what to do: cellrig sim serve"),
    (["sim", "serve", "--channels", "0"], "--channels must be 1 to 256, not 0"),
    (["sim", "serve", "--channels", "257"], "--channels must be 1 to 256, not 257"),
    (["sim", "serve", "--speed", "0"], "--speed must be more than 0 and at most 1e6, not 0"),
    (["sim", "serve", "--speed", "nan"], "--speed must be more than 0"),
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
    assert (args.host, args.name, args.data_folder) == ("127.0.0.1", "sim-station", "data")

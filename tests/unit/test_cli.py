"""The ``cellrig`` command line, run in-process through ``cellrig.daemon.cli.main``.

Exit codes: 0 valid, 1 invalid input (every error printed with its location, never a
traceback), 2 for a wrong command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_steps import DESIGN_EXAMPLE

from cellrig import __version__
from cellrig.daemon.cli import main
from cellrig.protocols.program import Program

WriteFile = Callable[..., Path]

VALID = """\
cellrig: 1
name: cli-formation
cell: {capacity: 634 mAh}
parameters: {upper: 4.25 V}
steps:
  - Charge at 0.1C until ${upper}
  - Hold at ${upper} until 0.05C
  - Discharge at 0.2C until 2.5 V
"""

INVALID = """\
cellrig: 1
name: cli-broken
cell: {capacity: 634 mAh}
steps:
  - Chrage at 0.1C until 4.25 V
  - rest: 10 parsecs
"""

NEEDS_A_CELL = """\
cellrig: 1
name: needs-a-cell
steps:
  - Charge at 1C until 4.2 V
"""

LOCATION = re.compile(r"^(?P<file>\S+?):(?P<line>\d+):(?P<column>\d+): (error|warning): ",
                      re.MULTILINE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``cellrig argv``; argparse's exits count as codes."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_valid_file_exits_0_and_prints_the_steps(
    capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile
) -> None:
    path = tmp_protocol(VALID, "formation.yaml")
    code, out, err = run(capsys, "check", str(path))
    assert code == 0
    assert "cli-formation" in out
    assert "63.4 mA" in out  # 0.1C of 634 mAh, resolved
    assert f"{path}: valid (0 error(s), 0 warning(s))" in err


def test_invalid_file_exits_1_with_located_errors(
    capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile
) -> None:
    path = tmp_protocol(INVALID, "broken.yaml")
    code, out, err = run(capsys, "check", str(path))
    assert code == 1
    assert out == ""
    found = [(m["file"], int(m["line"]), int(m["column"])) for m in LOCATION.finditer(err)]
    assert found == [(str(path), 5, 5), (str(path), 6, 11)]
    assert "'Chrage at 0.1C until 4.25 V' is not a step (did you mean 'charge'?)" in err
    assert "rest: '10 parsecs' is not a duration" in err
    assert f"{path}: NOT valid (2 error(s), 0 warning(s))" in err


def test_header_errors_exit_1(capsys: pytest.CaptureFixture[str],
                              tmp_protocol: WriteFile) -> None:
    path = tmp_protocol("name: no-version\nsteps:\n  - Rest for 1 h\n")
    code, _out, err = run(capsys, "check", str(path))
    assert code == 1
    assert f"{path}:1:1: error: the file must start with the format version 'cellrig: 1'" in err


def test_yaml_syntax_error_exits_1(capsys: pytest.CaptureFixture[str],
                                   tmp_protocol: WriteFile) -> None:
    path = tmp_protocol("cellrig: 1\nsteps:\n  - charge: 1C until: 4 V\n")
    code, _out, err = run(capsys, "check", str(path))
    assert code == 1
    assert f"{path}:3:" in err
    assert "this is not valid YAML" in err


def test_missing_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    code, _out, err = run(capsys, "check", str(missing))
    assert code == 1
    assert f"{missing}:1:1: error: cannot read the protocol file" in err


def test_one_invalid_file_among_several_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile
) -> None:
    good = tmp_protocol(VALID, "good.yaml")
    bad = tmp_protocol(INVALID, "bad.yaml")
    code, out, err = run(capsys, "check", "-q", str(good), str(bad))
    assert code == 1
    assert out == ""
    assert f"{good}: valid" in err
    assert f"{bad}: NOT valid" in err


def test_warnings_do_not_fail_the_check(capsys: pytest.CaptureFixture[str],
                                        tmp_protocol: WriteFile) -> None:
    path = tmp_protocol(VALID.replace("  - Hold at ${upper} until 0.05C\n",
                                      "  - Hold at 4.2 V until 0.05C\n"))
    code, _out, err = run(capsys, "check", "--quiet", str(path))
    assert code == 0
    assert re.search(rf"^{re.escape(str(path))}:7:5: warning: this hold is at 4.2 V", err,
                     re.MULTILINE)
    assert "valid (0 error(s), 1 warning(s))" in err


def test_json_output_parses(capsys: pytest.CaptureFixture[str],
                            tmp_protocol: WriteFile) -> None:
    path = tmp_protocol(VALID)
    code, out, _err = run(capsys, "check", "--json", str(path))
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "cli-formation"
    assert [step["type"] for step in data["steps"]] == ["CurrentStep", "VoltageStep",
                                                         "CurrentStep"]
    assert data["steps"][0]["current_a"] == pytest.approx(0.0634)
    assert data["steps"][2]["current_a"] == pytest.approx(-0.1268)
    program = Program.from_json(out.strip())
    assert program.to_json() == out.strip()


def test_json_output_of_several_files_is_one_document_a_line(
    capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile
) -> None:
    first = tmp_protocol(VALID, "first.yaml")
    second = tmp_protocol(DESIGN_EXAMPLE, "second.yaml")
    code, out, _err = run(capsys, "check", "--json", str(first), str(second))
    assert code == 0
    names = [json.loads(line)["name"] for line in out.splitlines()]
    assert names == ["cli-formation", "formation-and-cycling"]


def test_cell_file(capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile) -> None:
    protocol = tmp_protocol(NEEDS_A_CELL, "needs-a-cell.yaml")
    code, _out, err = run(capsys, "check", "-q", str(protocol))
    assert code == 1
    assert "a C-rate needs the cell's nominal capacity, and the cell has none" in err

    cell = tmp_protocol("capacity: 2 Ah\nid: cell-7\n", "cell-7.yaml")
    code, out, _err = run(capsys, "check", "--json", str(protocol), "--cell", str(cell))
    assert code == 0
    data = json.loads(out)
    assert data["cell"]["capacity_ah"] == 2.0
    assert data["cell"]["id"] == "cell-7"
    assert data["steps"][0]["current_a"] == 2.0


def test_cell_file_overrides_the_protocol_cell(capsys: pytest.CaptureFixture[str],
                                               tmp_protocol: WriteFile) -> None:
    protocol = tmp_protocol(VALID)
    cell = tmp_protocol("cell:\n  areal_capacity: 1 mAh/cm^2\n  area: 100 cm^2\n", "cell.yaml")
    code, out, _err = run(capsys, "check", "--json", str(protocol), "--cell", str(cell))
    assert code == 0
    assert json.loads(out)["steps"][0]["current_a"] == pytest.approx(0.01)


def test_bad_cell_file_exits_1_with_its_location(capsys: pytest.CaptureFixture[str],
                                                 tmp_protocol: WriteFile) -> None:
    protocol = tmp_protocol(NEEDS_A_CELL)
    cell = tmp_protocol("capacity: [1 Ah\n", "bad-cell.yaml")
    code, _out, err = run(capsys, "check", str(protocol), "--cell", str(cell))
    assert code == 1
    assert LOCATION.search(err)
    assert str(cell) in err


def test_missing_cell_file_exits_1(capsys: pytest.CaptureFixture[str],
                                   tmp_protocol: WriteFile, tmp_path: Path) -> None:
    protocol = tmp_protocol(NEEDS_A_CELL)
    code, _out, err = run(capsys, "check", str(protocol), "--cell", str(tmp_path / "no.yaml"))
    assert code == 1
    assert f"{tmp_path / 'no.yaml'}:1:1: error: cannot read the cell file" in err


def test_parameters(capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile) -> None:
    path = tmp_protocol(VALID)
    code, out, _err = run(capsys, "check", "--json", str(path), "-p", "upper=4.3V")
    assert code == 0
    data = json.loads(out)
    assert data["parameters"] == {"upper": "4.3V"}
    assert data["steps"][0]["until"][0]["value"] == 4.3
    assert data["steps"][1]["voltage_v"] == 4.3


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("uper=4.3 V", "-p:1:1: error: the protocol has no parameter 'uper' (did you mean "
                       "'upper'?)"),
        ("upper=100 mA", "parameter upper:1:1: error: parameter 'upper' is a voltage "
                         "(default 4.25 V), but 100 mA is a current"),
    ],
)
def test_bad_parameters_exit_1(capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile,
                               argument: str, message: str) -> None:
    code, _out, err = run(capsys, "check", str(tmp_protocol(VALID)), "-p", argument)
    assert code == 1
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "{protocol}", "-p", "upper"],
        ["check", "{protocol}", "-p", "=4.3V"],
        ["check"],
        ["check", "{protocol}", "--no-such-option"],
        ["frobnicate"],
        ["convert", "{protocol}", "--to", "spreadsheet"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_protocol: WriteFile,
                             argv: list[str]) -> None:
    protocol = str(tmp_protocol(VALID))
    code, _out, err = run(capsys, *[arg.format(protocol=protocol) for arg in argv])
    assert code == 2
    assert "error:" in err


def test_parameter_without_equals_says_how(capsys: pytest.CaptureFixture[str],
                                           tmp_protocol: WriteFile) -> None:
    code, _out, err = run(capsys, "check", str(tmp_protocol(VALID)), "-p", "upper")
    assert code == 2
    assert "-p takes NAME=VALUE, e.g. -p upper=4.3V (got 'upper')" in err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys)
    assert code == 2
    assert "cellrig check formation.yaml" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"cellrig {__version__}"


def test_library_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "library", "--quiet")
    assert code == 0, err
    assert "library protocols checked, all valid" in out

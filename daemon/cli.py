"""The ``cellrig`` command.

Exit codes: 0 when everything checked is valid, 1 when a file is not, 2 for usage errors.
Bad input never produces a traceback: every error of the project's tree is printed with its
file, line and column.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cellrig import __version__
from cellrig.errors import CellrigError, InputError

from . import cli_protocols, cli_sim, cli_station, fleet_cli, simulate_args

DESCRIPTION = """\
cellrig runs battery cell tests: protocols written as files, instruments driven by a daemon,
every sample stored and streamed live.

Protocol files:
  cellrig check formation.yaml              check a protocol, print its resolved steps
  cellrig check cycling.yaml --cell my-cell.yaml -p upper=4.3V
  cellrig library                           check and list the ready-made protocols
  cellrig schema > cellrig.schema.json      JSON Schema for editors (VS Code YAML)
  cellrig convert rate.yaml --to pybamm     the steps as PyBaMM experiment strings

Simulation:
  cellrig simulate formation.yaml           run it on the cell model; files, plots, summary
  cellrig simulate long-cycling --reference-cycle 2 --out runs/long
  cellrig demo                              a simulated station running formation on 4 cells
  cellrig sim serve --write-config sim.toml emulated instruments on the wire (one cell,
                                          every kind; --bench FILE, --channels N)

The station (docs/daemon.md):
  cellrig daemon --config station.toml      run the station service
  cellrig submit formation --channel A1 --cell cell-07.yaml -p upper=4.3V
  cellrig jobs --state running              the station's jobs
  cellrig status                            every channel, live (Ctrl-C ends it)
  cellrig pause|resume|stop JOB             change a job
  cellrig events JOB --follow               a job's events as they come
  cellrig export JOB --plots --out data/    Battery Data Format files, cycles, plots

The lab's stations through the MQTT broker (docs/mqtt.md):
  cellrig --broker mqtts://broker.lab.example stations
  cellrig --broker mqtts://broker.lab.example --station assb-lab-3 status
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_cell_and_parameters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cell", metavar="CELL.yaml",
        help="the actual cell (capacity, or areal capacity and area, ...); its fields override "
             "the protocol's cell",
    )
    parser.add_argument(
        "-p", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
        help="override a protocol parameter, e.g. -p upper=4.3V -p cycles=500 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="cellrig", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cellrig {__version__}")
    fleet_cli.add_broker_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "check", help="check protocol files and print the resolved step tree",
        description="Check protocol files: every error and warning with file, line and column, "
                    "then the steps resolved for the cell, with absolute currents and cut-offs. "
                    "Exit 0 when all files are valid, 1 when one is not.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="protocol files (YAML)")
    _add_cell_and_parameters(check)
    check.add_argument("--quiet", "-q", action="store_true",
                       help="print only errors and warnings, not the step tree")
    check.add_argument("--json", action="store_true",
                       help="print the resolved program as JSON instead of the tree")

    library = commands.add_parser(
        "library", help="check and list the ready-made protocols",
        description="Check every protocol of the built-in library and print each one resolved "
                    "for the cell it names.",
    )
    library.add_argument("--quiet", "-q", action="store_true",
                         help="one line per protocol instead of the step trees")

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of protocol files",
        description="Print the JSON Schema of the protocol format, for editors: with the YAML "
                    "extension of VS Code, add '# yaml-language-server: $schema=<path>' on the "
                    "first line of a protocol file (see docs/protocols.md).",
    )
    schema.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")

    convert = commands.add_parser(
        "convert", help="convert a protocol to PyBaMM experiment strings",
        description="Print the steps PyBaMM can express as PyBaMM experiment strings; steps it "
                    "cannot express are named on stderr and the exit code is 1.",
    )
    convert.add_argument("file", metavar="FILE", help="protocol file (YAML)")
    convert.add_argument("--to", required=True, choices=["pybamm"], help="target format")
    _add_cell_and_parameters(convert)
    simulate_args.add_parser(commands, _add_cell_and_parameters)
    cli_station.add_parsers(commands, _add_cell_and_parameters)
    cli_sim.add_parser(commands)
    fleet_cli.add_stations_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    commands = {
        "check": cli_protocols.run_check,
        "library": cli_protocols.run_library,
        "schema": cli_protocols.run_schema,
        "convert": cli_protocols.run_convert,
        "simulate": simulate_args.run,
        **cli_station.HANDLERS,
        **cli_sim.HANDLERS,
        "stations": fleet_cli.run_stations,
    }
    try:
        return (fleet_cli.remote_handler(args) or commands[args.command])(args)
    except cli_protocols.UsageError as exc:
        parser.exit(2, f"cellrig: error: {exc}\n")
    except InputError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except CellrigError as exc:
        print(f"cellrig: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as command-line tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

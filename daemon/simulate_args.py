"""The command line of ``cellrig simulate``: its arguments (cheap to import, so the other
commands do not load the simulator) and the entry point that loads it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_parser(commands: Any,
               cell_and_parameters: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``simulate`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "simulate", help="run a protocol on the simulated cell and plot the results",
        description="Run a protocol on the cell model (cell, temperature chamber, pressure jig) "
                    "at full speed, then write the time series (Battery Data Format columns), "
                    "the cycle table, the events, the spectra and PNG plots, and print a "
                    "summary. PROTOCOL is a file or the name of a library protocol.",
    )
    parser.add_argument("protocol", metavar="PROTOCOL",
                        help="protocol file (YAML), or a library protocol such as formation")
    cell_and_parameters(parser)
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default: a new folder named after the protocol "
                             "and the time, in the current directory)")
    parser.add_argument("--temperature", default="25 degC", metavar="T",
                        help="chamber (and cell) temperature at the start (default 25 degC)")
    parser.add_argument("--pressure", default="2 MPa", metavar="P",
                        help="stack pressure of the jig at the start (default 2 MPa)")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet",
                        help="time series as Parquet (default) or CSV; events as JSON lines or "
                             "CSV with it")
    parser.add_argument("--formed", action="store_true",
                        help="start from a formed cell: the library's formation protocol runs "
                             "on the model first (not recorded)")
    parser.add_argument("--reference-cycle", type=int, metavar="N",
                        help="cycle that retention is also measured against (e.g. the first "
                             "cycle after formation)")
    parser.add_argument("--dqdv", metavar="CYCLES",
                        help="cycles of the dQ/dV plot, e.g. 1,2,100,last (default: 1, 2 "
                             "and the last)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")


def run(args: argparse.Namespace) -> int:
    """Run ``cellrig simulate``."""
    from .simulate import run_simulate

    return run_simulate(args)

"""``cellrig sim serve``: the emulators of a simulated station, in a process of their own.

The emulators (:mod:`cellrig.simulators.sim_station`) keep the cells alive while a daemon
pointed at them (``--write-config``) is started, killed and restarted. What is served:

- ``--bench FILE``: the bench file's chambers, cells and instruments
  (:mod:`cellrig.simulators.bench_file`);
- ``--channels N`` (and/or ``--eis``): N cells (4 with ``--eis`` alone), each with a Keithley
  2450 and a pneumatic jig, in one ESPEC chamber, with ``--eis`` a PalmSens on the first;
- neither: the default bench, one cell with one of every instrument kind cellrig drives.

One line per emulated instrument is printed (kind, name, address), then the path of the
written configuration; the command runs until Ctrl-C or SIGTERM and then closes every
emulator and exits with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellrig.errors import CellrigError

from .cli_protocols import UsageError

if TYPE_CHECKING:
    from cellrig.simulators.bench_spec import BenchSpec

MAX_CHANNELS = 256


def add_parser(commands: Any) -> None:
    """Register ``sim`` (with its ``serve`` subcommand) on the CLI's subcommands."""
    sim = commands.add_parser(
        "sim", help="simulated instruments on the wire (sim serve)",
        description="Wire-level emulators of a station's instruments over a simulated bench.")
    actions = sim.add_subparsers(dest="sim_command", metavar="ACTION", parser_class=type(sim))
    serve = actions.add_parser(
        "serve", help="start the emulators of a simulated station",
        description="Start the emulators of a simulated station, all on one bench clock: "
                    "a bench file's (--bench), N cells each with a Keithley 2450 and a "
                    "pneumatic jig in one ESPEC chamber (--channels, --eis), or, with neither, "
                    "the default bench: one cell with a Keithley 2450, a PalmSens for EIS, an "
                    "Alicat + Mark-10 pneumatic jig, an ESPEC chamber and a Watlow F4T chamber. "
                    "Print their addresses and write a station.toml that points the real "
                    "drivers at them. Runs until Ctrl-C or SIGTERM.")
    serve.add_argument("--bench", metavar="FILE",
                       help="a bench file (YAML, cellrig-bench: 1): chambers, cells, jigs, "
                            "potentiostats, EIS units")
    serve.add_argument("--channels", type=int, default=None, metavar="N",
                       help="N cells, one channel each, in one ESPEC chamber (default: the "
                            "default bench; 4 with --eis)")
    serve.add_argument("--speed", type=float, default=100.0, metavar="X",
                       help="how many times faster than real time the bench runs (default 100)")
    serve.add_argument("--eis", action="store_true",
                       help="add a PalmSens emulator, the first channel's EIS unit")
    serve.add_argument("--write-config", metavar="FILE",
                       help="write a station.toml for these emulators to FILE")
    serve.add_argument("--name", default=None,
                       help="the station name in the written configuration (default: the "
                            "bench file's name, or sim-station)")
    serve.add_argument("--data-folder", default="data", metavar="DIR",
                       help="data_folder of the written configuration (relative to it)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1)")


def run(args: argparse.Namespace) -> int:
    """Run ``cellrig sim ACTION``."""
    if getattr(args, "sim_command", None) != "serve":
        raise UsageError("say what to do: cellrig sim serve [--bench FILE | --channels N] "
                         "[--speed X] [--eis] [--write-config station.toml]")
    if args.bench is not None and (args.channels is not None or args.eis):
        raise UsageError("--bench does not go with --channels or --eis: the bench file says "
                         "its cells and EIS units")
    if args.channels is not None and not 1 <= args.channels <= MAX_CHANNELS:
        raise UsageError(f"--channels must be 1 to {MAX_CHANNELS}, not {args.channels}")
    if not (math.isfinite(args.speed) and 0 < args.speed <= 1e6):
        raise UsageError(f"--speed must be more than 0 and at most 1e6, not {args.speed:g}")
    return asyncio.run(serve(args))


def bench_of(args: argparse.Namespace) -> BenchSpec:
    """What to serve: the bench file, the N-cell layout or the default bench."""
    from cellrig.simulators.bench_file import load_bench_file
    from cellrig.simulators.bench_spec import channels_bench, default_bench

    if args.bench is not None:
        return load_bench_file(args.bench)
    if args.channels is not None or args.eis:
        return channels_bench(args.channels or 4, eis=args.eis)
    return default_bench()


async def serve(args: argparse.Namespace) -> int:
    """Start the emulators, print where they are, wait for Ctrl-C or SIGTERM."""
    from cellrig.simulators.sim_station import serve_bench

    spec = bench_of(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve_bench(spec, args.speed, host=args.host) as sim:
            width = max(len(instrument.name) for instrument in sim.instruments)
            for instrument in sim.instruments:
                print(f"{instrument.kind:<13} {instrument.name:<{width}} {instrument.address}")
            if args.write_config:
                path = Path(args.write_config)
                try:
                    path.write_text(sim.station_toml(name=args.name,
                                                     data_folder=args.data_folder),
                                    encoding="utf-8")
                except OSError as error:
                    raise CellrigError(f"cannot write {path}: {error.strerror or error}"
                                       ) from error
                print(f"config        {path.resolve()}")
            print(f"serving {len(sim.channels)} channel(s) at {args.speed:g} times real time; "
                  "Ctrl-C or SIGTERM stops", flush=True)
            await stop.wait()
    except OSError as error:
        raise CellrigError(f"cannot start the emulators: {error.strerror or error}") from error
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print("emulators stopped", file=sys.stderr)
    return 0


HANDLERS = {"sim": run}

"""The protocol commands of the CLI: check, library, schema, convert."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cellrig.errors import InputError
from cellrig.protocols.document import Protocol, load_protocol, load_protocol_text
from cellrig.protocols.render import render_program
from cellrig.protocols.resolve import Resolution, check, load_cell_file
from cellrig.protocols.yamlsource import YMap


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """``["upper=4.3V", "cycles=500"]`` as a mapping; raises UsageError for a bad pair."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p takes NAME=VALUE, e.g. -p upper=4.3V (got {pair!r})")
        found[name.strip()] = value.strip()
    return found


def _cell(args: argparse.Namespace) -> YMap | None:
    return None if args.cell is None else load_cell_file(args.cell)


def _print_diagnostics(result: Resolution) -> None:
    for diagnostic in [*result.errors, *result.warnings]:
        print(diagnostic.render(), file=sys.stderr)


def _summary(name: str, result: Resolution) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    state = "valid" if result.program is not None else "NOT valid"
    return f"{name}: {state} ({errors} error(s), {warnings} warning(s))"


def run_check(args: argparse.Namespace) -> int:
    """``cellrig check``: every file checked, all findings printed; 1 if any file is invalid."""
    parameters = parse_parameters(args.params)
    cell = _cell(args)
    failed = False
    for file in args.files:
        try:
            protocol = load_protocol(file)
        except InputError as exc:
            print(exc.render(), file=sys.stderr)
            print(f"{file}: NOT valid ({len(exc.diagnostics)} error(s))", file=sys.stderr)
            failed = True
            continue
        result = check(protocol, cell, parameters)
        _print_diagnostics(result)
        print(_summary(file, result), file=sys.stderr)
        if result.program is None:
            failed = True
        elif args.json:
            print(result.program.to_json())
        elif not args.quiet:
            print(render_program(result.program))
            print()
    return 1 if failed else 0


def library_protocols() -> list[Protocol]:
    """Every protocol of the built-in library, loaded."""
    from cellrig.protocols.library import library_files

    return [load_protocol_text(entry.read_text(encoding="utf-8"), f"library/{entry.name}")
            for entry in library_files()]


def run_library(args: argparse.Namespace) -> int:
    """``cellrig library``: check every library protocol, print each resolved."""
    protocols = library_protocols()
    failed = False
    for protocol in protocols:
        result = check(protocol)
        _print_diagnostics(result)
        if result.program is None:
            failed = True
            print(_summary(protocol.source.name, result), file=sys.stderr)
            continue
        steps = len(result.program.iter_steps())
        print(f"{protocol.source.name}: {protocol.name} - {steps} steps, valid"
              + (f", {len(result.warnings)} warning(s)" if result.warnings else ""))
        if protocol.description:
            print(f"  {protocol.description.strip().splitlines()[0]}")
        if not args.quiet:
            print(render_program(result.program))
            print()
    print(f"{len(protocols)} library protocols checked, "
          f"{'all valid' if not failed else 'SOME NOT VALID'}")
    return 1 if failed else 0


def run_schema(args: argparse.Namespace) -> int:
    """``cellrig schema``: the JSON Schema of protocol files."""
    import json

    from cellrig.protocols.schema import protocol_schema

    text = json.dumps(protocol_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """``cellrig convert --to pybamm``: PyBaMM experiment strings, and what cannot convert."""
    from cellrig.protocols.pybamm import to_pybamm

    parameters = parse_parameters(args.params)
    protocol = load_protocol(args.file)
    result = check(protocol, _cell(args), parameters, lints=False)
    if result.program is None:
        _print_diagnostics(result)
        return 1
    conversion = to_pybamm(result.program)
    sys.stdout.write(conversion.python)
    for problem in conversion.unsupported:
        print(f"{args.file}: cannot convert to PyBaMM: {problem}", file=sys.stderr)
    return 1 if conversion.unsupported else 0

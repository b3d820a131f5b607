"""The ``station.toml`` of a simulated station: every emulator as an instrument, every cell
as a channel, with the options that depend on the bench's speed and hard limits that let the
bench's cells sit as they start.

Hard limits per channel: ``voltage = ["0 V", "4.4 V"]`` (no lower bound above 0 V: an
as-built anode-free cell sits near 1 V), ``current = "1 A"`` (what a Keithley 2450 and a
PalmSens Nexus can drive), a temperature window of -20 to 80 °C widened to 10 K around the
chamber's starting temperature, and, with a jig, a pressure window of 0.5 to 8 MPa widened to
a quarter and twice the jig's starting pressure: hard limits hold with or without a job, so a
station must not trip on a bench the moment it opens.
"""

from __future__ import annotations

from cellrig.simulators.bench_spec import (
    ROOM_C,
    BenchSpec,
    CellSpec,
    JigKind,
)

REGULATOR_FULL_SCALE_PSI = 150.0
VOLTAGE_LIMITS = '["0 V", "4.4 V"]'
CURRENT_LIMIT = '"1 A"'
TEMPERATURE_WINDOW_C = (-20.0, 80.0)
PRESSURE_WINDOW_PA = (0.5e6, 8.0e6)
MAX_FORCE = '"100 kN"'


def station_toml(spec: BenchSpec, addresses: dict[str, str], speed: float, *,
                 name: str = "sim-station", data_folder: str = "data") -> str:
    """The configuration for ``spec``'s emulators at ``addresses`` (by instrument name)."""
    lines = ["# A simulated station: every address below is an emulator of "
             "`cellrig sim serve`.",
             f"# The bench runs {speed:g} times faster than real time."]
    used = {cell.chamber for cell in spec.cells}
    idle = [chamber.name for chamber in spec.chambers if chamber.name not in used]
    if idle:
        lines.append(f"# No cell sits in {', '.join(idle)}: no channel names it, so the "
                     "station warns and does not open it.")
    lines += ["", "[station]", f'name = "{name}"', f'data_folder = "{data_folder}"', ""]
    for instrument, kind, options in _instruments(spec, speed):
        lines += [f"[instruments.{instrument}]", f'driver = "{kind}"',
                  f'address = "{addresses[instrument]}"', f"options = {{ {options} }}", ""]
    for cell in spec.cells:
        lines += _channel(spec, cell)
    return "\n".join(lines)


def _instruments(spec: BenchSpec, speed: float) -> list[tuple[str, str, str]]:
    """(name, driver, options) in the order the emulators were started."""
    found: list[tuple[str, str, str]] = []
    for chamber in spec.chambers:
        low, high = chamber.range_c
        found.append((chamber.name, chamber.kind.value,
                      f'temperature_range = ["{low:g} degC", "{high:g} degC"], '
                      'poll_period = "1 s"'))
    keithley = f'model = "2450", nplc = 1, time_scale = {speed:g}'
    palmsens = f'model = "nexus1", time_scale = {speed:g}'
    for cell in spec.cells:
        kind = cell.potentiostat.kind.value
        found.append((cell.potentiostat_name, kind,
                      keithley if kind == "keithley2450" else palmsens))
        if cell.jig is None:
            continue
        if cell.jig.kind is JigKind.PNEUMATIC:
            found.append((f"regulator-{cell.name}", "alicat",
                          f'full_scale = "{REGULATOR_FULL_SCALE_PSI:g} psi", '
                          'pressure_unit = "psi"'))
        found.append((f"gauge-{cell.name}", "mark10", 'poll_period = "0.5 s"'))
    found += [(unit.name, "palmsens", palmsens) for unit in spec.eis]
    return found


def _channel(spec: BenchSpec, cell: CellSpec) -> list[str]:
    lines = [f"[channels.{cell.name}]", f'potentiostat = "{cell.potentiostat_name}"']
    temperature_c = ROOM_C
    if cell.chamber is not None:
        lines.append(f'chamber = "{cell.chamber}"')
        temperature_c = spec.chamber(cell.chamber).temperature_c
    eis = spec.eis_of(cell.name)
    if eis is not None:
        lines.append(f'eis = "{eis}"')
    low_c = min(TEMPERATURE_WINDOW_C[0], temperature_c - 10.0)
    high_c = max(TEMPERATURE_WINDOW_C[1], temperature_c + 10.0)
    limits = (f"voltage = {VOLTAGE_LIMITS}, current = {CURRENT_LIMIT}, "
              f'temperature = ["{low_c:g} degC", "{high_c:g} degC"]')
    if cell.jig is not None:
        area_cm2 = cell.params.area_m2 * 1e4
        parts = [f'kind = "{cell.jig.kind.value}"']
        if cell.jig.kind is JigKind.PNEUMATIC:
            parts.append(f'regulator = "regulator-{cell.name}"')
        parts += [f'gauge = "gauge-{cell.name}"', f'cell_area = "{area_cm2:.6g} cm^2"']
        if cell.jig.kind is JigKind.PNEUMATIC:
            parts.append(f'piston_area = "{cell.jig.piston_area_m2:g} m^2"')
        parts.append(f"max_force = {MAX_FORCE}")
        lines.append(f"jig = {{ {', '.join(parts)} }}")
        low_pa = min(PRESSURE_WINDOW_PA[0], cell.jig.pressure_pa / 4)
        high_pa = max(PRESSURE_WINDOW_PA[1], cell.jig.pressure_pa * 2)
        limits += f', pressure = ["{low_pa / 1e6:.6g} MPa", "{high_pa / 1e6:.6g} MPa"]'
    lines += [f"limits = {{ {limits} }}", ""]
    return lines


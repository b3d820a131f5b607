"""The MethodSCRIPT scripts the PalmSens driver uploads: pure functions from settings to lines.

Each script follows PalmSens' measurement-loop examples (github.com/PalmSens/
MethodSCRIPT_Examples, ``MethodSCRIPTs/Measurement_Loops``: 008 CA, 009 CP, 011 OCP, 012 EIS;
``MSExample034`` for ``if``/``breakloop`` inside a loop) and the MethodSCRIPT manual v1.8
(commands ch. 14): declare the variables, select channel and mode, set the ranges, switch the
cell, start the timer, run one measurement loop that sends a packet per reading, and switch the
cell off in ``on_finished:``, which the device runs however the script ends (normally, by
``breakloop``, by an abort with ``Z`` or after an error). So an upload, an abort or a failure all
leave the cell at open circuit.

Wiring (the driver's convention): working and sense leads on the cell's positive terminal,
counter and reference on the negative. The measured potential is then the cell voltage and a
positive (anodic) current charges the cell, the project's sign convention.

Modes (``set_pgstat_mode``): 2 potentiostat, low speed; 3 potentiostat, high speed; 6
galvanostat (EmStat4 and Nexus), as in the examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellrig.drivers.methodscript_codec import integer_literal, si_literal

#: Indentation of a loop's body (cosmetic: the device ignores leading blanks).
_INDENT = "  "

#: The packet type codes each variable of the driver's scripts carries.
TIME_VAR = "t"
POTENTIAL_VAR = "p"
CURRENT_VAR = "i"


@dataclass(frozen=True, slots=True)
class Cutoff:
    """End the loop once the measured potential is above (``rising``) or below a value."""

    voltage_v: float
    rising: bool

    def lines(self) -> list[str]:
        """``if p > 4250m`` / ``breakloop`` / ``endif``, indented for a loop body."""
        operator = ">" if self.rising else "<"
        return [f"{_INDENT}if {POTENTIAL_VAR} {operator} {si_literal(self.voltage_v)}",
                f"{_INDENT * 2}breakloop", f"{_INDENT}endif"]


@dataclass(frozen=True, slots=True)
class Ranges:
    """The ranges a script sets: the current range that holds the largest expected current
    and the potential range that holds the largest cell voltage."""

    current_a: float
    potential_v: float
    lowest_current_a: float = 1e-9


def bandwidth_hz(interval_s: float) -> float:
    """Analogue bandwidth for a sampling interval: ten times the reading rate (the examples
    use 10–300 Hz at ten readings a second), at least 1 Hz."""
    return max(1.0, round(10.0 / interval_s, 3))


def _loop_body(variables: list[str], cutoffs: tuple[Cutoff, ...] = ()) -> list[str]:
    body = [f"{_INDENT}timer_get {TIME_VAR}", f"{_INDENT}pck_start"]
    body += [f"{_INDENT * 2}pck_add {name}" for name in variables]
    body.append(f"{_INDENT}pck_end")
    for cutoff in cutoffs:
        body += cutoff.lines()
    return body


def _finish() -> list[str]:
    return ["endloop", "on_finished:", f"{_INDENT}cell_off"]


def chronopotentiometry(current_a: float, interval_s: float, run_time_s: float,
                        ranges: Ranges, cutoffs: tuple[Cutoff, ...] = ()) -> list[str]:
    """Constant current (``meas_loop_cp``) with a packet of time, potential and current per
    reading; each cut-off ends the loop at the first reading past it."""
    return [
        f"var {TIME_VAR}", f"var {POTENTIAL_VAR}", f"var {CURRENT_VAR}",
        "set_pgstat_chan 0",
        "set_pgstat_mode 6",
        f"set_max_bandwidth {si_literal(bandwidth_hz(interval_s))}",
        f"set_range ab {si_literal(ranges.potential_v)}",
        f"set_autoranging ab {si_literal(ranges.potential_v)} {si_literal(ranges.potential_v)}",
        f"set_range db {si_literal(ranges.current_a)}",
        f"set_autoranging db {si_literal(ranges.current_a)} {si_literal(ranges.current_a)}",
        "set_i 0",
        "cell_on",
        "timer_start",
        f"meas_loop_cp {POTENTIAL_VAR} {CURRENT_VAR} {si_literal(current_a)} "
        f"{si_literal(interval_s)} {si_literal(run_time_s)}",
        *_loop_body([TIME_VAR, POTENTIAL_VAR, CURRENT_VAR], cutoffs),
        *_finish(),
    ]


def chronoamperometry(voltage_v: float, interval_s: float, run_time_s: float,
                      ranges: Ranges) -> list[str]:
    """Constant voltage (``meas_loop_ca``); the current range caps the current."""
    return [
        f"var {TIME_VAR}", f"var {POTENTIAL_VAR}", f"var {CURRENT_VAR}",
        "set_pgstat_chan 0",
        "set_pgstat_mode 2",
        f"set_max_bandwidth {si_literal(bandwidth_hz(interval_s))}",
        f"set_range_minmax da {si_literal(voltage_v)} {si_literal(voltage_v)}",
        f"set_range ba {si_literal(ranges.current_a)}",
        f"set_autoranging ba {si_literal(ranges.lowest_current_a)} "
        f"{si_literal(ranges.current_a)}",
        f"set_e {si_literal(voltage_v)}",
        "cell_on",
        "timer_start",
        f"meas_loop_ca {POTENTIAL_VAR} {CURRENT_VAR} {si_literal(voltage_v)} "
        f"{si_literal(interval_s)} {si_literal(run_time_s)}",
        *_loop_body([TIME_VAR, POTENTIAL_VAR, CURRENT_VAR]),
        *_finish(),
    ]


def open_circuit(interval_s: float, run_time_s: float, ranges: Ranges,
                 cutoffs: tuple[Cutoff, ...] = ()) -> list[str]:
    """Open-circuit potential (``meas_loop_ocp``) with the cell off: a rest."""
    return [
        f"var {TIME_VAR}", f"var {POTENTIAL_VAR}",
        "set_pgstat_chan 0",
        "set_pgstat_mode 3",
        f"set_max_bandwidth {si_literal(bandwidth_hz(interval_s))}",
        f"set_range ab {si_literal(ranges.potential_v)}",
        f"set_autoranging ab {si_literal(ranges.potential_v)} {si_literal(ranges.potential_v)}",
        "cell_off",
        "timer_start",
        f"meas_loop_ocp {POTENTIAL_VAR} {si_literal(interval_s)} {si_literal(run_time_s)}",
        *_loop_body([TIME_VAR, POTENTIAL_VAR], cutoffs),
        *_finish(),
    ]


#: The open-circuit potential before an EIS sweep at open circuit: readings every 100 ms for
#: one second; the loop variable keeps the last.
OCP_BEFORE_EIS = ("100m", "1")

#: Variables of the EIS script: the open-circuit potential, frequency, Z' and Z''.
EIS_VARIABLES = ("o", "f", "r", "j")


def sweep_points(start_hz: float, stop_hz: float, points_per_decade: int) -> int:
    """Points of a logarithmic sweep with ``points_per_decade`` and both ends included."""
    decades = abs(math.log10(start_hz) - math.log10(stop_hz))
    return max(2, round(decades * points_per_decade) + 1)


def impedance_sweep(start_hz: float, stop_hz: float, points: int, amplitude_v: float,
                    ranges: Ranges, dc_voltage_v: float | None = None) -> list[str]:
    """Potentiostatic EIS (``meas_loop_eis``) from ``start_hz`` to ``stop_hz``; at the cell's
    open-circuit potential (measured first, with the cell off) unless a DC level is given.
    A packet per frequency carries the time, the frequency, Z' and Z''.

    ``amplitude_v`` is the excitation's RMS amplitude, as MethodSCRIPT defines it.
    """
    ocp, frequency, z_real, z_imag = EIS_VARIABLES
    lines = [f"var {name}" for name in (TIME_VAR, *EIS_VARIABLES)]
    lines += [
        "set_pgstat_chan 0",
        "set_pgstat_mode 3",
        f"set_range ab {si_literal(ranges.potential_v)}",
        f"set_autoranging ab {si_literal(ranges.potential_v)} {si_literal(ranges.potential_v)}",
        "timer_start",
    ]
    if dc_voltage_v is None:
        interval, run_time = OCP_BEFORE_EIS
        lines += [
            f"set_max_bandwidth {si_literal(bandwidth_hz(0.1))}",
            "cell_off",
            f"meas_loop_ocp {ocp} {interval} {run_time}",
            f"{_INDENT}pck_start", f"{_INDENT * 2}pck_add {ocp}", f"{_INDENT}pck_end",
            "endloop",
        ]
        dc = ocp
    else:
        dc = si_literal(dc_voltage_v)
    lines += [
        f"set_max_bandwidth {si_literal(max(start_hz, stop_hz) * 10.0)}",
        f"set_range_minmax da {dc} {dc}",
        f"set_range ba {si_literal(ranges.current_a)}",
        f"set_autoranging ba {si_literal(ranges.lowest_current_a)} "
        f"{si_literal(ranges.current_a)}",
        f"set_e {dc}",
        "cell_on",
        f"meas_loop_eis {frequency} {z_real} {z_imag} {si_literal(amplitude_v)} "
        f"{si_literal(start_hz)} {si_literal(stop_hz)} {integer_literal(points)} {dc}",
        *_loop_body([TIME_VAR, frequency, z_real, z_imag]),
        *_finish(),
    ]
    return lines


def cell_off() -> list[str]:
    """A one-line script that switches the cell off (the safe state)."""
    return ["cell_off"]

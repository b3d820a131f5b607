"""PalmSens MethodSCRIPT instruments: their ranges, and the programs they must refuse.

A model is recognised by the six-character device code at the start of the firmware-version
reply (``t``): ``nexus1``, ``es4_hr``, ``es4_lr`` and their multi-channel variants (codes as in
PalmSens' ``palmsens/instrument.py``). Ranges from the MethodSCRIPT manual v1.8 appendix B (the
current ranges each device accepts) and the PalmSens datasheets: the largest current is the top
current range, the potential window the device's applied-potential range, the frequency range
that of its frequency response analyser. Check them against the datasheet of the unit at hand;
a station configuration can narrow them further, never widen them.

:func:`program_refusals` compares a resolved program with a channel's :class:`Capabilities`, so
a protocol that exceeds the instrument is refused at submission instead of failing mid-test.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellrig.protocols.program import (
    CccvStep,
    CurrentStep,
    EisMode,
    EisStep,
    PowerStep,
    Program,
    PulseStep,
    Quantity,
    ResistanceStep,
    Step,
    VoltageStep,
)
from cellrig.protocols.quantities import format_si
from cellrig.protocols.rig import Capabilities


@dataclass(frozen=True, slots=True)
class PalmSensModel:
    """One MethodSCRIPT instrument model and its ranges."""

    code: str
    name: str
    current_ranges_a: tuple[float, ...]
    potential_limit_v: float
    eis_frequency_hz: tuple[float, float]
    baudrate: int = 921_600
    min_sample_interval_s: float = 0.01

    @property
    def max_current_a(self) -> float:
        """The largest current it sources or measures: the top current range."""
        return max(self.current_ranges_a)

    def current_range_for(self, current_a: float) -> float:
        """The smallest current range that holds ``|current_a|`` (the top range if none)."""
        magnitude = abs(current_a)
        fitting = [r for r in sorted(self.current_ranges_a) if r >= magnitude]
        return fitting[0] if fitting else self.max_current_a

    def capabilities(self) -> Capabilities:
        """The source and EIS part of a channel's capabilities.

        No constant power or load (MethodSCRIPT has no such loop); device-side cut-offs
        (voltage cut-offs end a loop by ``breakloop``, a time limit is the loop's run time).
        """
        return Capabilities(
            max_current_a=self.max_current_a,
            min_voltage_v=-self.potential_limit_v,
            max_voltage_v=self.potential_limit_v,
            constant_power=False,
            constant_resistance=False,
            eis=True,
            eis_frequency_hz=self.eis_frequency_hz,
            device_cutoffs=True,
            min_sample_interval_s=self.min_sample_interval_s,
        )


def _decades(low_a: float, high_a: float) -> tuple[float, ...]:
    ranges, value = [], low_a
    while value <= high_a * 1.0001:
        ranges.append(value)
        value *= 10.0
    return tuple(ranges)


NEXUS = PalmSensModel("nexus1", "Nexus", _decades(100e-12, 1.0), 10.0, (10e-6, 1e6))
EMSTAT4_HR = PalmSensModel("es4_hr", "EmStat4 HR", _decades(100e-9, 0.1), 6.0, (10e-6, 200e3))
EMSTAT4_LR = PalmSensModel("es4_lr", "EmStat4 LR", _decades(1e-9, 0.01), 3.0, (10e-6, 200e3))

MODELS: dict[str, PalmSensModel] = {
    model.code: model for model in (
        NEXUS, EMSTAT4_HR, EMSTAT4_LR,
        PalmSensModel("mes4hr", "MultiEmStat4 HR", EMSTAT4_HR.current_ranges_a, 6.0,
                      EMSTAT4_HR.eis_frequency_hz),
        PalmSensModel("mes4lr", "MultiEmStat4 LR", EMSTAT4_LR.current_ranges_a, 3.0,
                      EMSTAT4_LR.eis_frequency_hz),
    )
}


def _currents(step: Step) -> list[float]:
    if isinstance(step, CurrentStep | CccvStep | PulseStep):
        return [step.current_a]
    return []


def _voltages(step: Step) -> list[float]:
    found = [c.value for c in step.until if c.quantity is Quantity.VOLTAGE]
    if isinstance(step, CurrentStep) and step.voltage_limit_v is not None:
        found.append(step.voltage_limit_v)
    if isinstance(step, VoltageStep | CccvStep):
        found.append(step.voltage_v)
    if isinstance(step, EisStep) and step.dc_voltage_v is not None:
        found.append(step.dc_voltage_v)
    return found


def program_refusals(program: Program, capabilities: Capabilities, instrument: str) -> list[str]:
    """Why ``program`` cannot run on a channel with ``capabilities`` (empty if it can): one
    sentence per problem, naming the step and the instrument's range."""
    problems: list[str] = []
    low_v, high_v = capabilities.min_voltage_v, capabilities.max_voltage_v
    for step in program.iter_steps():
        where = f"step {step.id} ({step.label})"
        for current in _currents(step):
            if abs(current) > capabilities.max_current_a * (1 + 1e-9):
                problems.append(
                    f"{where}: {format_si(abs(current), 'A')} exceeds the "
                    f"{format_si(capabilities.max_current_a, 'A')} of {instrument}")
        for voltage in dict.fromkeys(_voltages(step)):
            if not low_v <= voltage <= high_v:
                problems.append(
                    f"{where}: {format_si(voltage, 'V')} is outside the "
                    f"{format_si(low_v, 'V')} to {format_si(high_v, 'V')} of {instrument}")
        if isinstance(step, PowerStep) and not capabilities.constant_power:
            problems.append(f"{where}: {instrument} has no constant-power mode")
        if isinstance(step, ResistanceStep) and not capabilities.constant_resistance:
            problems.append(f"{where}: {instrument} has no constant-resistance mode")
        if isinstance(step, EisStep):
            problems.extend(_eis_refusals(step, capabilities, instrument, where))
        every = (step.record or program.record).every_s
        if every is not None and every < capabilities.min_sample_interval_s:
            problems.append(
                f"{where}: recording every {every:g} s is faster than the "
                f"{capabilities.min_sample_interval_s:g} s {instrument} can sample")
    return problems


def _eis_refusals(step: EisStep, capabilities: Capabilities, instrument: str,
                  where: str) -> list[str]:
    if not capabilities.eis:
        return [f"{where}: {instrument} cannot measure impedance"]
    problems = []
    low_hz, high_hz = capabilities.eis_frequency_hz
    for frequency in (step.start_hz, step.stop_hz):
        if not low_hz <= frequency <= high_hz:
            problems.append(
                f"{where}: {format_si(frequency, 'Hz')} is outside the "
                f"{format_si(low_hz, 'Hz')} to {format_si(high_hz, 'Hz')} of {instrument}")
    if step.mode is not EisMode.POTENTIOSTATIC:
        problems.append(f"{where}: {instrument} runs potentiostatic EIS only")
    return problems

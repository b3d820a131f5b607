"""PalmSens models, their capabilities, and the programs a channel refuses at submission."""

from __future__ import annotations

import pytest

from cellrig.drivers.palmsens import PalmSens
from cellrig.drivers.palmsens_ranges import (
    EMSTAT4_HR,
    EMSTAT4_LR,
    MODELS,
    NEXUS,
    program_refusals,
)
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.program import Program
from cellrig.protocols.resolve import resolve

HEAD = """\
cellrig: 1
name: range-check
cell: {capacity: 634 mAh}
record: {every: 10 s}
steps:
"""


def program(steps: str, head: str = HEAD) -> Program:
    return resolve(load_protocol_text(head + steps, "range-check.yaml"))


def test_models_and_their_ranges() -> None:
    assert set(MODELS) == {"nexus1", "es4_hr", "es4_lr", "mes4hr", "mes4lr"}
    assert NEXUS.max_current_a == pytest.approx(1.0)
    assert EMSTAT4_HR.max_current_a == pytest.approx(0.1)
    assert EMSTAT4_LR.current_ranges_a[0] == pytest.approx(1e-9)
    assert NEXUS.current_range_for(0.0634) == pytest.approx(0.1)
    assert NEXUS.current_range_for(-0.5) == pytest.approx(1.0)
    assert EMSTAT4_HR.current_range_for(0.3) == pytest.approx(0.1)
    capabilities = EMSTAT4_HR.capabilities()
    assert (capabilities.min_voltage_v, capabilities.max_voltage_v) == (-6.0, 6.0)
    assert capabilities.eis_frequency_hz == (10e-6, 200e3)


def test_a_formation_fits_a_nexus() -> None:
    formation = program("""\
  - Charge at 0.1C until 4.25 V
  - Hold at 4.25 V until 0.05C
  - Rest for 10 minutes
  - Discharge at 0.2C until 2.5 V
  - eis: {start: 1 MHz, stop: 10 mHz, amplitude: 10 mV, per_decade: 10}
""")
    assert PalmSens("socket://unused:1", model=NEXUS).refusals(formation) == []


def test_everything_beyond_an_emstat4_lr_is_named() -> None:
    refused = program("""\
  - Charge at 50 mA until 3.95 V
  - Hold at 3.95 V for 5 minutes
  - Discharge at 1 W until 2.5 V
  - eis: {start: 100 kHz, stop: 1 MHz, amplitude: 10 mV, per_decade: 5}
  - eis: {mode: galvanostatic, start: 10 kHz, stop: 1 Hz, amplitude: 1 mA, per_decade: 5}
  - Rest for 1 minute (1 ms period)
""")
    problems = PalmSens("socket://unused:1", model=EMSTAT4_LR).refusals(refused)
    assert problems == [
        "step 1 (Charge at 50 mA until 3.95 V): 50 mA exceeds the 10 mA of EmStat4 LR "
        "(palmsens)",
        "step 1 (Charge at 50 mA until 3.95 V): 3.95 V is outside the -3 V to 3 V of "
        "EmStat4 LR (palmsens)",
        "step 2 (Hold at 3.95 V for 5 minutes): 3.95 V is outside the -3 V to 3 V of "
        "EmStat4 LR (palmsens)",
        "step 3 (Discharge at 1 W until 2.5 V): EmStat4 LR (palmsens) has no constant-power "
        "mode",
        "step 4 (EIS 100 kHz to 1 MHz, 10 mV, 5/decade at open circuit): 1 MHz is outside "
        "the 10 µHz to 200 kHz of EmStat4 LR (palmsens)",
        "step 5 (EIS 10 kHz to 1 Hz, 1 mA, 5/decade at open circuit): EmStat4 LR (palmsens) "
        "runs potentiostatic EIS only",
        "step 6 (Rest for 1 minute (1 ms period)): recording every 0.001 s is faster than "
        "the 0.01 s "
        "EmStat4 LR (palmsens) can sample",
    ]


def test_refusals_follow_the_capabilities_given() -> None:
    formation = program("  - Charge at 0.5 A until 4.2 V\n")
    assert program_refusals(formation, NEXUS.capabilities(), "channel 3") == []
    assert program_refusals(formation, EMSTAT4_HR.capabilities(), "channel 3") == [
        "step 1 (Charge at 0.5 A until 4.2 V): 500 mA exceeds the 100 mA of channel 3"]

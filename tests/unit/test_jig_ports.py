"""The pneumatic and bolted jigs as JigPorts: their ``async with`` lifetime and task, on the
bench's virtual clock with the jig model behind the model regulator and gauge."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from cellrig.drivers.jig_bolted import BoltedJig
from cellrig.drivers.jig_errors import JigRefused
from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.jig_monitor import ForceGaugePort, JigReading
from cellrig.drivers.jig_pneumatic import PneumaticJig
from cellrig.drivers.pressure_loop_alarms import AlarmEvent, JigAlarm
from cellrig.errors import InstrumentTimeout
from cellrig.protocols.rig import JigKind
from cellrig.simulators.alicat_model import ModelRegulator
from cellrig.simulators.bench import BenchClock, bolted_jig, pneumatic_jig
from cellrig.simulators.cell_params import load_builtin_cell
from cellrig.simulators.mark10_model import ModelForceGauge

PARAMS = load_builtin_cell()
AREA_M2 = PARAMS.area_m2


async def until(clock: BenchClock, at_s: float) -> None:
    """Let the jig's task run until the virtual clock reaches ``at_s``."""
    while clock.now_s() < at_s:
        await asyncio.sleep(0)


class Swelling:
    """A swell set by the test, read by the gauge's force."""

    def __init__(self) -> None:
        self.swell_m = 0.0


@dataclass
class Pneumatic:
    """A pneumatic jig on the jig model, with what it reports."""

    clock: BenchClock
    gauge: ModelForceGauge
    jig: PneumaticJig
    readings: list[JigReading] = field(default_factory=list)
    events: list[AlarmEvent] = field(default_factory=list)


def pneumatic(start_pa: float, gauge: ForceGaugePort | None = None) -> Pneumatic:
    clock = BenchClock()
    model = pneumatic_jig(PARAMS, start_pa)
    geometry = JigGeometry(cell_area_m2=AREA_M2, piston_area_m2=model.piston_area_m2,
                           max_force_n=100e3)
    model_gauge = ModelForceGauge(
        lambda: float(model.measure_force(np.array([clock.now_s()]), np.zeros(1))[0]))
    readings: list[JigReading] = []
    events: list[AlarmEvent] = []
    jig = PneumaticJig("jig-1", geometry, ModelRegulator(model, clock.now_s),
                       gauge or model_gauge, clock=clock.now_s, sleep=clock.sleep,
                       on_reading=readings.append, on_event=events.append)
    return Pneumatic(clock, model_gauge, jig, readings, events)


async def test_pneumatic_jig_sets_holds_and_records() -> None:
    made = pneumatic(1e6)
    jig = made.jig
    assert jig.kind is JigKind.CONTROLLED
    assert jig.max_pressure_pa == pytest.approx(100e3 / AREA_M2)
    async with jig:
        await jig.set_pressure(3e6)
        await until(made.clock, 60.0)
        assert await jig.read_pressure() == pytest.approx(3e6, rel=0.02)
        assert await jig.alarms() == []
        with pytest.raises(JigRefused):
            await jig.set_pressure(20e6)
        task = jig._owner.task
        assert task is not None and task.get_name() == "jig-1.pressure-loop"
    assert task.cancelled()
    assert len(made.readings) >= 59
    assert made.readings[-1].pressure_pa == pytest.approx(3e6, rel=0.02)


async def test_pneumatic_jig_alarm_events_reach_the_station() -> None:
    made = pneumatic(2e6)
    async with made.jig:
        await made.jig.set_pressure(2e6)
        await until(made.clock, 10.0)
        made.gauge.failing = True
        await until(made.clock, 30.0)
        assert any(message.startswith("gauge lost") for message in await made.jig.alarms())
        with pytest.raises(InstrumentTimeout):
            await made.jig.read_pressure()         # stale: asks the gauge, which is silent
    assert [(e.alarm, e.active) for e in made.events] == [(JigAlarm.GAUGE_LOST, True)]


async def test_pneumatic_jig_reports_a_crashed_loop() -> None:
    class BrokenGauge:
        async def read_force_n(self) -> float:
            raise ZeroDivisionError("a bug, not a wire problem")

    made = pneumatic(2e6, BrokenGauge())
    async with made.jig:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert any(message.startswith("loop stopped") for message in await made.jig.alarms())


async def test_pneumatic_jig_is_not_reentrant_but_reusable() -> None:
    made = pneumatic(2e6)
    async with made.jig:
        with pytest.raises(RuntimeError, match="not reentrant"):
            await made.jig.__aenter__()
    async with made.jig:
        await until(made.clock, 4.0)
    assert made.readings[-1].time_s >= 3.0


def test_pneumatic_jig_needs_a_piston() -> None:
    with pytest.raises(ValueError, match="piston"):
        PneumaticJig("jig-1", JigGeometry(cell_area_m2=AREA_M2, max_force_n=1e3),
                     ModelRegulator(pneumatic_jig(PARAMS, 1e6), lambda: 0.0),
                     ModelForceGauge(lambda: 0.0))


async def test_bolted_jig_measures_interlocks_and_refuses_setpoints() -> None:
    clock = BenchClock()
    model = bolted_jig(PARAMS, preload_pa=2e6, stiffness_n_per_m=5e8)
    swelling = Swelling()
    gauge = ModelForceGauge(lambda: float(model.measure_force(
        np.array([clock.now_s()]), np.array([swelling.swell_m]))[0]))
    geometry = JigGeometry(cell_area_m2=AREA_M2, max_force_n=25e3)
    readings: list[JigReading] = []
    jig = BoltedJig("bolted-1", geometry, gauge, clock=clock.now_s, sleep=clock.sleep,
                    on_reading=readings.append)
    assert jig.kind is JigKind.MEASURE_ONLY
    async with jig:
        await until(clock, 5.0)
        assert await jig.read_pressure() == pytest.approx(2e6)
        with pytest.raises(JigRefused, match="bolted jig"):
            await jig.set_pressure(2e6)
        swelling.swell_m = 10e-6                   # +5 kN: 23.7 kN, under the maximum
        await until(clock, 10.0)
        assert await jig.read_pressure() == pytest.approx((18_656.0 + 5e3) / AREA_M2)
        assert await jig.alarms() == []
        swelling.swell_m = 20e-6                   # +10 kN: 28.7 kN, over 25 kN
        await until(clock, 15.0)
        assert any(message.startswith("over force") for message in await jig.alarms())
        swelling.swell_m = 0.0
        await until(clock, 20.0)
        assert await jig.alarms() == []
        jig.set_ceiling(1.9e6)                     # the protocol's limit, below the preload
        await until(clock, 25.0)
        assert [m.split(":")[0] for m in await jig.alarms()] == ["over pressure"]
    assert [reading.time_s for reading in readings[:3]] == [0.0, 1.0, 2.0]

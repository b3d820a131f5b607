"""A station of ``driver = "model"`` instruments: what ``open_station`` builds (channels, shared
chamber, jigs, the bench behind them, time that follows the bench), the registry's helpers,
and why a program is refused on a channel. Nothing here runs a job: building a model station
opens no socket and sleeps nowhere."""

from __future__ import annotations

import contextlib
import math

import pytest

from cellrig.daemon.environment import SystemTimer
from cellrig.daemon.station import StationChannel, open_station
from cellrig.daemon.station_build import supervisor_settings
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.station_config_model import StationConfig
from cellrig.daemon.station_instruments import OPENERS, ChannelUnavailable, channel_limits
from cellrig.daemon.station_model import BenchTimer, ModelBench, ModelError, scaled_period_s
from cellrig.protocols.document import load_protocol_text
from cellrig.protocols.program import Program
from cellrig.protocols.resolve import resolve
from cellrig.protocols.rig import JigKind
from cellrig.simulators.bench import BenchClock
from cellrig.simulators.bench_ports import BenchPotentiostat

PNEUMATIC = ('jig = { kind = "pneumatic", regulator = "bench", gauge = "bench", '
             'cell_area = "93.28 cm^2", piston_area = "0.1 m^2", max_force = "100 kN" }')
BOLTED = ('jig = { kind = "bolted", gauge = "bench", cell_area = "93.28 cm^2", '
          'max_pressure = "10 MPa" }')
LIMITS = ('limits = { voltage = ["0 V", "4.4 V"], current = "0.8 A", '
          'temperature = ["-20 degC", "80 degC"], pressure = ["0.5 MPa", "8 MPa"] }')
STATION = f"""
[station]
name = "model-station"
data_folder = "data"

[instruments.bench]
driver = "model"
options = {{ time_scale = 500, temperature_range = ["-40 degC", "120 degC"] }}

[channels.A1]
potentiostat = "bench"
chamber = "bench"
eis = "bench"
{PNEUMATIC}
{LIMITS}

[channels.A2]
potentiostat = {{ instrument = "bench", channel = 2 }}
chamber = "bench"
{BOLTED}
{LIMITS}

[channels.A3]
potentiostat = {{ instrument = "bench", channel = 3 }}
limits = {{ voltage = ["0 V", "4.4 V"], current = "50 mA" }}
"""


def config(text: str = STATION) -> StationConfig:
    return load_station_text(text, "station.toml")


def program(steps: str, limits: str = "{voltage: [0 V, 4.35 V]}") -> Program:
    text = (f"cellrig: 1\nname: p\ncell: {{capacity: 600 mAh}}\nlimits: {limits}\n"
            f"record: {{every: 10 s}}\nsteps:\n{steps}")
    return resolve(load_protocol_text(text, "p.yaml"))


async def test_every_channel_is_built_on_one_bench_with_a_shared_chamber() -> None:
    async with open_station(config()) as station:
        assert list(station.channels) == ["A1", "A2", "A3"]
        assert station.unavailable == {} and station.failures == {}
        assert list(station.chambers) == ["bench"]
        chamber = station.chambers["bench"]
        assert station.channels["A1"].chamber is chamber is station.channels["A2"].chamber
        assert station.channels["A3"].chamber is None and station.channels["A3"].jig is None
        assert chamber.port.temperature_range_c == (-40.0, 120.0)
        assert station.model is not None
        assert sorted(station.model.bench.cells) == ["A1", "A2", "A3"]
        # the cells without a model chamber sit in the room
        assert set(station.model.bench.chambers) == {"bench", "room"}
        assert {name: jig.kind for name, jig in station.jigs.items()} == {
            "A1": JigKind.CONTROLLED, "A2": JigKind.MEASURE_ONLY}
        capabilities = station.channels["A1"].rig.capabilities
        assert capabilities.eis and capabilities.chamber
        assert not station.channels["A2"].rig.capabilities.eis
        # every supervisor is tapped into its rig and listens to its environment
        for channel in station.channels.values():
            assert channel.rig.tap is channel.supervisor
        assert len(chamber.listeners) == 2


async def test_time_follows_the_bench_clock() -> None:
    async with open_station(config()) as station:
        assert isinstance(station.timer, BenchTimer)
        assert station.clock is station.timer
        assert station.model is not None
        assert station.timer.speed == 500.0 == station.model.bench.clock.scale
        before_s = station.timer.now_s()
        unix_before = station.clock.unix_now()
        await station.timer.sleep(50.0)  # 0.1 s of real time at 500 times
        elapsed_s = station.timer.now_s() - before_s
        assert 50.0 <= elapsed_s < 50.0 + 500.0  # at most a second of scheduling late
        assert station.clock.unix_now() - unix_before == pytest.approx(elapsed_s, abs=1.0)
        # the supervisors' and pollers' periods are stretched to the speed
        settings = station.supervisors[0].settings
        assert settings.tick_s == pytest.approx(0.1 * 500.0)
        assert settings.watchdog_floor_s == pytest.approx(2.0 * 500.0)
        assert station.chambers["bench"].poll_period_s == pytest.approx(0.1 * 500.0)


async def test_a_timer_given_replaces_the_bench_time() -> None:
    timer = SystemTimer()
    async with open_station(config(), timer=timer) as station:
        assert station.timer is timer and station.clock is timer
        assert station.supervisors[0].settings == supervisor_settings(1.0)


async def test_the_model_jig_starts_inside_the_pressure_window() -> None:
    text = STATION.replace('pressure = ["0.5 MPa", "8 MPa"]', 'pressure = ["3 MPa", "5 MPa"]')
    async with open_station(config(text)) as station:
        assert station.model is not None
        pressure_pa = station.model.cell("A1").measure().pressure_pa
        assert pressure_pa == pytest.approx(4e6, rel=1e-3)
        assert await station.jigs["A2"].port.read_pressure() == pytest.approx(4e6, rel=0.05)


def test_model_instruments_must_share_one_speed() -> None:
    text = STATION + """
[instruments.oven]
driver = "model"
options = { time_scale = 20 }
"""
    text = text.replace('[channels.A3]\npotentiostat = { instrument = "bench", channel = 3 }',
                        '[channels.A3]\npotentiostat = { instrument = "bench", channel = 3 }\n'
                        'chamber = "oven"')
    with pytest.raises(ModelError, match=r"same time_scale.*bench: 500, oven: 20"):
        ModelBench.build(config(text))


def test_a_virtual_bench_clock_can_be_given() -> None:
    bench = ModelBench.build(config(), clock=BenchClock())
    assert bench.speed == 1.0 and bench.bench.clock.virtual
    assert isinstance(bench.potentiostats["A1"], BenchPotentiostat)
    assert set(bench.eis_units) == {"A1"} and set(bench.jigs) == {"A1", "A2"}


def test_the_registry_opens_every_driver() -> None:
    from cellrig.daemon.station_config_model import Driver

    assert set(OPENERS) == set(Driver)


def test_a_channel_s_hard_limits_become_the_instrument_s_protection() -> None:
    channel = config().channels["A1"]
    limits = channel_limits(channel)
    assert (limits.max_voltage_v, limits.max_current_a, limits.min_voltage_v) == (4.4, 0.8, 0.0)
    text = STATION.replace('voltage = ["0 V", "4.4 V"], current = "50 mA"',
                           'voltage = ["2.5 V", "4.4 V"], current = "50 mA"')
    assert channel_limits(config(text).channels["A3"]).min_voltage_v == 2.5


def test_a_period_is_never_shorter_than_its_real_minimum() -> None:
    assert scaled_period_s(2.0, 1.0, 0.1) == 2.0
    assert scaled_period_s(2.0, 1000.0, 0.1) == 100.0
    assert not math.isinf(supervisor_settings(1e6).tick_s)


# -- refusals ------------------------------------------------------------------------------


async def refusals(channel: str, steps: str, **kwargs: str) -> list[str]:
    async with open_station(config()) as station:
        built: StationChannel = station.channels[channel]
        return built.refusals(program(steps, **kwargs))


async def test_a_program_that_fits_is_not_refused() -> None:
    steps = ("  - set: {temperature: 60 degC, pressure: 2 MPa}\n"
             "  - eis: {start: 100 kHz, stop: 1 Hz, amplitude: 10 mV, per_decade: 5}\n"
             "  - Charge at 0.5C until 4.2 V\n")
    assert await refusals("A1", steps) == []


async def test_a_current_above_the_channel_s_hard_limit_is_refused() -> None:
    found = await refusals("A3", "  - Charge at 0.5C until 4.2 V\n")
    assert found == ["step 1 (Charge at 0.5C until 4.2 V [300 mA]): current 300 mA is outside the "
                     "channel's hard limit (at most 50 mA)"]


async def test_chamber_and_jig_setpoints_the_channel_cannot_take_are_refused() -> None:
    no_chamber = await refusals("A3", "  - set: {temperature: 60 degC, pressure: 2 MPa}\n")
    assert any("has no chamber to set 60 °C" in problem for problem in no_chamber)
    assert any("has no jig to set 2 MPa" in problem for problem in no_chamber)
    bolted = await refusals("A2", "  - set: {pressure: 2 MPa}\n")
    assert len(bolted) == 1 and "jig A2-jig is bolted" in bolted[0]
    hot = await refusals("A1", "  - set: {temperature: 150 degC}\n")
    assert any("150 °C is outside the -40 to 120 °C of chamber bench" in p for p in hot)
    assert any("temperature 150 °C is outside the channel's hard limit (-20 to 80 °C)" in p
               for p in hot)
    pressed = await refusals("A1", "  - set: {pressure: 12 MPa}\n")
    assert any("12 MPa is above the" in p and "jig A1-jig may apply" in p for p in pressed)
    assert any("pressure 12 MPa is outside the channel's hard limit (500 kPa to 8 MPa)" in p
               for p in pressed)


async def test_instrument_capabilities_are_checked() -> None:
    no_eis = await refusals("A2", "  - eis: {start: 100 kHz, stop: 1 Hz, amplitude: 10 mV}\n")
    assert len(no_eis) == 1 and "bench (model) cannot measure impedance" in no_eis[0]
    power = await refusals("A1", "  - Discharge at 1 W until 3 V\n")
    assert power == ["step 1 (Discharge at 1 W until 3 V): bench (model) has no "
                     "constant-power mode"]


async def test_limits_that_leave_no_window_inside_the_channel_s_are_refused() -> None:
    found = await refusals("A1", "  - Rest for 1 minute\n", limits="{voltage: [4.5 V, 5 V]}")
    assert len(found) == 1
    assert found[0].startswith("the protocol's limits leave nothing inside the channel's: "
                               "no voltage window is left")


async def test_a_channel_whose_port_is_missing_is_unavailable() -> None:
    bench = ModelBench.build(config(), clock=BenchClock())
    from cellrig.daemon.station_instruments import OpenContext, open_model

    async with contextlib.AsyncExitStack() as stack:
        opened = await open_model(config().instruments["bench"],
                                  OpenContext(config(), bench), stack)
    assert opened.eis is not None
    with pytest.raises(ChannelUnavailable, match="channel A2: the model bench has no cell"):
        opened.eis(config().channels["A2"])

"""The channel rig: merged capabilities, delegation, environment columns that go stale as NaN,
the shared-chamber rule, a bolted jig refusing a setpoint, and EIS at open circuit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_supervisor_fakes import (
    FakeChamber,
    FakeEis,
    FakeJig,
    FakePotentiostat,
    VirtualTimer,
    make_channel,
    shared_chamber,
    wire_error,
)

from cellrig.daemon.channel_rig import ChannelRig, nominal_sweep_s
from cellrig.daemon.environment import (
    ChamberBusy,
    EnvironmentRefused,
    PressureNotControlled,
    SetpointOutOfRange,
    StackJig,
)
from cellrig.errors import InstrumentTimeout
from cellrig.protocols.program import EisMode, EisStep
from cellrig.protocols.rig import Command, JigKind, Mode

SWEEP = EisStep(id=3, label="eis", mode=EisMode.POTENTIOSTATIC, start_hz=1e5, stop_hz=0.1,
                points_per_decade=10, amplitude=0.01)


class TestCapabilities:
    def test_source_part_from_the_potentiostat_the_rest_from_the_other_instruments(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, chamber=shared_chamber(timer),
                               jig=FakeJig(kind=JigKind.MEASURE_ONLY), with_eis=True)
        capabilities = channel.rig.capabilities
        assert (capabilities.max_current_a, capabilities.min_voltage_v,
                capabilities.max_voltage_v) == (5.0, 0.0, 5.0)
        assert not capabilities.constant_power and capabilities.min_sample_interval_s == 0.1
        assert capabilities.eis and capabilities.eis_frequency_hz == (1e-3, 1e6)
        assert capabilities.chamber and capabilities.jig is JigKind.MEASURE_ONLY

    def test_a_bare_potentiostat_has_no_eis_chamber_or_jig(self) -> None:
        capabilities = ChannelRig("A1", FakePotentiostat()).capabilities
        assert not capabilities.eis and not capabilities.chamber
        assert capabilities.jig is JigKind.NONE
        assert capabilities.eis_frequency_hz == (0.0, math.inf)


class TestDelegation:
    async def test_apply_read_end_step_and_safe_go_to_the_potentiostat(self) -> None:
        source = FakePotentiostat(time_s=10.0, block_size=3)
        rig = ChannelRig("A1", source)
        assert await rig.apply(Command(Mode.CURRENT, current_a=0.5)) == 10.0
        block = await rig.read()
        assert list(block.time_s) == [11.0, 12.0, 13.0]
        assert list(block.current_a) == [0.5] * 3
        assert block.pressure_pa is not None and np.isnan(block.pressure_pa).all()
        await rig.end_step(12.0)
        await rig.safe()
        assert source.ended_at == [12.0] and source.safe_calls == 1
        assert source.command.mode is Mode.OFF


class TestEnvironmentColumns:
    async def test_fresh_values_fill_the_block(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer, FakeChamber(temperature_c=59.8))
        channel = make_channel("A1", timer, chamber=chamber, jig=FakeJig(pressure_pa=2.1e6))
        assert channel.rig.jig is not None
        await chamber.poll()
        await channel.rig.jig.poll()
        block = await channel.rig.read()
        assert list(block.temperature_c or []) == [59.8]
        assert list(block.pressure_pa or []) == [2.1e6]

    async def test_values_older_than_three_poll_periods_become_nan(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)  # polled every 2 s
        channel = make_channel("A1", timer, chamber=chamber, jig=FakeJig())
        jig = channel.rig.jig
        assert jig is not None  # polled every 1 s
        await chamber.poll()
        await jig.poll()
        timer.advance(3.0)  # exactly three periods of the jig: still fresh
        block = await channel.rig.read()
        assert block.pressure_pa is not None and block.pressure_pa[0] == 2e6
        timer.advance(0.5)
        block = await channel.rig.read()
        assert block.temperature_c is not None and block.temperature_c[0] == 25.0
        assert block.pressure_pa is not None and math.isnan(block.pressure_pa[0])
        timer.advance(2.6)
        block = await channel.rig.read()
        assert block.temperature_c is not None and math.isnan(block.temperature_c[0])

    async def test_a_failing_poll_lets_the_value_go_stale(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber(temperature_c=60.0)
        chamber = shared_chamber(timer, port)
        channel = make_channel("A1", timer, chamber=chamber)
        assert await chamber.poll() is not None
        port.read_error = wire_error(InstrumentTimeout, "espec-sh242", "TEMP?")
        for _ in range(4):
            timer.advance(2.0)
            assert await chamber.poll() is None
        block = await channel.rig.read()
        assert block.temperature_c is not None and math.isnan(block.temperature_c[0])

    async def test_never_read_is_nan(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, chamber=shared_chamber(timer))
        block = await channel.rig.read()
        assert block.temperature_c is not None and math.isnan(block.temperature_c[0])

    async def test_the_potentiostats_own_temperature_is_kept(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)
        channel = make_channel("A1", timer, chamber=chamber,
                               potentiostat=FakePotentiostat(temperature_c=31.5))
        await chamber.poll()
        block = await channel.rig.read()
        assert block.temperature_c is not None and block.temperature_c[0] == 31.5


class TestSharedChamber:
    async def test_one_setpoint_for_every_channel_in_the_chamber(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)
        one, two = (make_channel(name, timer, chamber=chamber) for name in ("A1", "A2"))
        await one.rig.set_environment(60.0, None)
        await two.rig.set_environment(60.0, None)  # joins at the same setpoint
        assert chamber.holders == {"A1": 60.0, "A2": 60.0}
        with pytest.raises(ChamberBusy, match=r"chamber chamber-1 is held by A1 at 60 °C: "
                                              r"channel A2 cannot set -10 °C") as caught:
            await two.rig.set_environment(-10.0, None)
        assert caught.value.holders == {"A1": 60.0}
        assert one.chamber is not None and one.chamber.setpoints == [60.0]
        one.rig.release_environment()
        assert chamber.can_take("A2", -10.0)
        await two.rig.set_environment(-10.0, None)
        assert one.chamber.setpoints == [60.0, -10.0]
        assert chamber.holders == {"A2": -10.0}

    async def test_the_holder_itself_may_move_the_setpoint(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)
        channel = make_channel("A1", timer, chamber=chamber)
        await channel.rig.set_environment(60.0, None)
        await channel.rig.set_environment(45.0, None)
        assert chamber.holders == {"A1": 45.0} and chamber.setpoint_c == 45.0

    async def test_a_setpoint_outside_the_chamber_range_is_refused(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, chamber=shared_chamber(timer))
        with pytest.raises(SetpointOutOfRange, match=r"accepts -40 to 180 °C, not 200 °C"):
            await channel.rig.set_environment(200.0, None)

    async def test_a_failed_send_holds_nothing(self) -> None:
        timer = VirtualTimer()
        port = FakeChamber(set_error=wire_error(InstrumentTimeout, "espec", "TEMP, S60.0"))
        chamber = shared_chamber(timer, port)
        channel = make_channel("A1", timer, chamber=chamber)
        with pytest.raises(InstrumentTimeout):
            await channel.rig.set_environment(60.0, None)
        assert chamber.holders == {} and chamber.setpoint_c is None


class TestJig:
    async def test_a_controlled_jig_takes_the_pressure(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, jig=FakeJig())
        await channel.rig.set_environment(None, 2e6)
        assert channel.jig is not None and channel.jig.setpoints == [2e6]

    async def test_a_bolted_jig_refuses_and_nothing_is_sent(self) -> None:
        timer = VirtualTimer()
        chamber = shared_chamber(timer)
        channel = make_channel("A1", timer, chamber=chamber,
                               jig=FakeJig(kind=JigKind.MEASURE_ONLY))
        with pytest.raises(PressureNotControlled,
                           match=r"jig A1-jig only measures the stack pressure \(bolted\); it "
                                 r"cannot be set to 2 MPa"):
            await channel.rig.set_environment(60.0, 2e6)
        assert channel.chamber is not None and channel.chamber.setpoints == []
        assert chamber.holders == {}

    async def test_above_the_jig_maximum_is_refused(self) -> None:
        timer = VirtualTimer()
        jig = StackJig("J", FakeJig(max_pressure_pa=5e6), timer)
        with pytest.raises(SetpointOutOfRange, match="0 to 5 MPa, not 8 MPa"):
            await jig.set_pressure(8e6)

    async def test_no_chamber_or_jig_to_set(self) -> None:
        rig = ChannelRig("A1", FakePotentiostat())
        with pytest.raises(EnvironmentRefused, match="channel A1 has no chamber"):
            await rig.set_environment(25.0, None)
        with pytest.raises(EnvironmentRefused, match="channel A1 has no jig"):
            await rig.set_environment(None, 1e6)


class TestEis:
    async def test_output_off_around_the_sweep_and_time_on_the_potentiostat_clock(self) -> None:
        timer = VirtualTimer()
        channel = make_channel("A1", timer, with_eis=True,
                               potentiostat=FakePotentiostat(time_s=500.0))
        await channel.rig.apply(Command(Mode.CURRENT, current_a=0.1))
        spectrum = await channel.rig.eis(SWEEP)
        eis_unit = channel.rig.eis_unit
        assert isinstance(eis_unit, FakeEis)
        assert eis_unit.commands_during_sweep == [Mode.OFF]
        assert spectrum.time_s == 620.0  # 500 s + the 120 s sweep, not the analyser's clock
        assert channel.potentiostat.command.mode is Mode.OFF

    async def test_no_eis_unit(self) -> None:
        with pytest.raises(EnvironmentRefused, match="no EIS unit"):
            await ChannelRig("A1", FakePotentiostat()).eis(SWEEP)

    def test_nominal_sweep_time_is_dominated_by_the_lowest_frequencies(self) -> None:
        # 1e5 .. 0.1 Hz, 10 per decade: 61 points; 2/f summed ≈ 2/0.1 / (1 - 10^-0.1)
        assert nominal_sweep_s(SWEEP) == pytest.approx(20 / (1 - 10 ** -0.1) + 30.5, rel=1e-3)

"""The Alicat driver's exact command strings and frame parsing, against a scripted link."""

from __future__ import annotations

import pytest

from cellrig.drivers.alicat import AlicatPressureController, parse_frame, pascals_per_unit
from cellrig.drivers.jig_errors import JigRefused
from cellrig.drivers.jig_link import ScriptedLink
from cellrig.errors import ConnectionLost, InstrumentReported, MalformedReply

PSI = 6894.757293168361


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def controller(script: list[tuple[str, str | BaseException | None]], **options: str | float
               ) -> tuple[AlicatPressureController, ScriptedLink]:
    link = ScriptedLink(script, url="/dev/ttyUSB3", instrument="alicat-1")
    return AlicatPressureController(link, **options), link  # type: ignore[arg-type]


def test_frame_with_pressure_setpoint_and_status() -> None:
    frame = parse_frame("A +027.06 +027.10 HLD POV", "A", PSI)
    assert frame.pressure_pa == pytest.approx(27.06 * PSI)
    assert frame.setpoint_pa == pytest.approx(27.10 * PSI)
    assert frame.status == {"HLD", "POV"} and frame.held


def test_frame_keeps_extra_columns() -> None:
    frame = parse_frame("B -000.50 +010.00 +045.2", "B", 1.0e3)
    assert (frame.pressure_pa, frame.setpoint_pa, frame.extra) == (-500.0, 10.0e3, (45.2,))
    assert not frame.held


@pytest.mark.parametrize(("line", "why"), [
    ("A +014.70", "pressure and a setpoint"),
    ("B +014.70 +014.70", "unit 'B'"),
    ("A +014.70 banana", "neither a number"),
    ("A +014.70 HLD +014.70", "after the status codes"),
    ("A nan +014.70", "finite"),
])
def test_frame_rejects(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_frame(line, "A", PSI)


def test_units() -> None:
    assert pascals_per_unit("psi") == pytest.approx(PSI)
    assert pascals_per_unit("kPa") == 1.0e3
    assert pascals_per_unit("bar") == 1.0e5
    with pytest.raises(ValueError, match="not a pressure unit"):
        pascals_per_unit("N")


async def test_poll_and_setpoint_command_strings() -> None:
    alicat, link = controller([("A", "A +014.70 +014.70"), ("AS27.10", "A +014.80 +027.10")])
    async with alicat:
        frame = await alicat.poll()
        assert frame.pressure_pa == pytest.approx(14.70 * PSI)
        frame = await alicat.set_pressure(27.1 * PSI)
        assert frame.setpoint_pa == pytest.approx(27.10 * PSI)
    link.assert_done()
    assert link.sent == ["A", "AS27.10"]


async def test_unit_id_units_and_decimals() -> None:
    alicat, link = controller([("CS186.56", "C +0186.40 +0186.56")], unit_id="c",
                              pressure_unit="kPa")
    async with alicat:
        await alicat.set_pressure(186_560.0)
    link.assert_done()


async def test_hold_cancel_and_firmware_strings() -> None:
    alicat, link = controller([
        ("AHP", "A +014.70 +020.00 HLD"), ("AHC", "A +014.70 +020.00 HLD"),
        ("AC", "A +014.70 +020.00"), ("AVE", "A 10v05.0-R24 Nov 11 2021"),
    ])
    async with alicat:
        assert (await alicat.hold_valves()).held
        assert (await alicat.close_valves()).held
        assert not (await alicat.cancel_hold()).held
        assert await alicat.firmware() == "10v05.0-R24 Nov 11 2021"
    link.assert_done()


async def test_refusal_is_reported_with_instrument_address_and_command() -> None:
    alicat, _link = controller([("AS10.00", "?")])
    async with alicat:
        with pytest.raises(InstrumentReported) as caught:
            await alicat.set_pressure(10.0 * PSI)
    error = caught.value
    assert (error.instrument, error.address, error.command) == ("alicat-1", "/dev/ttyUSB3",
                                                                "AS10.00")


async def test_setpoint_not_echoed_is_an_error() -> None:
    alicat, _link = controller([("AS10.00", "A +014.70 +014.70")])
    async with alicat:
        with pytest.raises(InstrumentReported, match="setpoint not accepted"):
            await alicat.set_pressure(10.0 * PSI)


async def test_setpoint_outside_range_refused_before_sending() -> None:
    alicat, link = controller([], full_scale_pa=1.0e6)
    async with alicat:
        with pytest.raises(JigRefused):
            await alicat.set_pressure(1.1e6)
        with pytest.raises(JigRefused):
            await alicat.set_pressure(-1.0)
    assert link.sent == []


async def test_garbage_is_malformed() -> None:
    alicat, _link = controller([("A", "A +01\x154.70")])
    async with alicat:
        with pytest.raises(MalformedReply, match="not a data frame") as caught:
            await alicat.poll()
    assert caught.value.command == "A"


async def test_dropped_link_reopens_on_next_exchange_with_backoff() -> None:
    clock = Clock()
    lost = ConnectionLost("reset by peer", instrument="alicat-1", address="/dev/ttyUSB3")
    link = ScriptedLink([("A", lost), ("A", "A +014.70 +014.70")], url="/dev/ttyUSB3",
                        instrument="alicat-1")
    alicat = AlicatPressureController(link, clock=clock)
    async with alicat:
        with pytest.raises(ConnectionLost):
            await alicat.poll()
        assert not link.is_open
        link.refuse_open = True
        with pytest.raises(ConnectionLost, match="refused"):
            await alicat.poll()                       # first reconnect attempt fails
        link.refuse_open = False
        with pytest.raises(ConnectionLost, match="next reconnect attempt"):
            await alicat.poll()                       # too early for the next attempt
        clock.now_s += 10.0
        assert (await alicat.poll()).pressure_pa == pytest.approx(14.70 * PSI)
    assert link.opened == 2
    link.assert_done()

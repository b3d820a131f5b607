"""The Mark-10 driver's exact command strings and reply parsing, against a scripted link."""

from __future__ import annotations

import pytest

from cellrig.drivers.jig_link import ScriptedLink
from cellrig.drivers.mark10 import Mark10ForceGauge, parse_reading
from cellrig.errors import InstrumentReported, InstrumentTimeout, MalformedReply

LBF_N = 4.4482216152605


def gauge(script: list[tuple[str, str | BaseException | None]], *,
          compression_positive: bool = True, bare_unit: str | None = None
          ) -> tuple[Mark10ForceGauge, ScriptedLink]:
    link = ScriptedLink(script, url="socket://10.0.0.7:4001", instrument="mark10-1")
    return Mark10ForceGauge(link, compression_positive=compression_positive,
                            bare_unit=bare_unit), link


@pytest.mark.parametrize(("line", "newtons"), [
    ("4.285 N", 4.285),
    ("-18.78 lbF", -18.78 * LBF_N),
    ("18.66 kN", 18_660.0),
    ("1.5 kgF", 1.5 * 9.80665),
    ("250 gF", 0.25 * 9.80665),
    ("+3 ozF", 3 * LBF_N / 16),
    ("2.0 klbF", 2000 * LBF_N),
    ("  12.0 N ", 12.0),
])
def test_readings_in_every_unit(line: str, newtons: float) -> None:
    assert parse_reading(line) == pytest.approx(newtons)


@pytest.mark.parametrize(("line", "why"), [
    ("12.3 furlongs", "unknown force unit"),
    ("12.3", "no unit"),
    ("N 12.3", "expected a number"),
    ("", "expected a number"),
])
def test_bad_readings(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_reading(line)


async def test_reading_commands() -> None:
    mark10, link = gauge([("?", "18656.0 N"), ("?C", "18.70 kN"), ("?PC", "19000.0 N")])
    async with mark10:
        assert await mark10.read_force_n() == 18656.0
        assert await mark10.read_current_force_n() == pytest.approx(18700.0)
        assert await mark10.peak_compression_n() == 19000.0
    assert link.sent == ["?", "?C", "?PC"]
    link.assert_done()


async def test_inverted_polarity_and_numeric_only_output() -> None:
    mark10, link = gauge([("?", "-12.5")], compression_positive=False, bare_unit="lbF")
    async with mark10:
        assert await mark10.read_force_n() == pytest.approx(12.5 * LBF_N)
    link.assert_done()


async def test_identity_commands() -> None:
    mark10, link = gauge([("RM", "M5-500"), ("RS", "1234567"), ("RV", "V1.00")])
    async with mark10:
        identity = await mark10.identify()
    assert (identity.manufacturer, identity.model, identity.serial_number,
            identity.firmware) == ("Mark-10", "M5-500", "1234567", "V1.00")
    link.assert_done()


@pytest.mark.parametrize(("reply", "code", "meaning"), [
    ("*10", 10, "illegal command"), ("*11", 11, "not applicable"),
    ("*12", 12, "invalid specifier"), ("*22", 22, "value too large"), ("*99", 99, "unknown"),
])
async def test_error_codes(reply: str, code: int, meaning: str) -> None:
    mark10, _link = gauge([("?", reply)])
    async with mark10:
        with pytest.raises(InstrumentReported, match=meaning) as caught:
            await mark10.read_force_n()
    assert caught.value.code == code
    assert (caught.value.instrument, caught.value.command) == ("mark10-1", "?")
    assert "mark10-1 at socket://10.0.0.7:4001" in str(caught.value)


async def test_garbage_and_silence() -> None:
    mark10, _link = gauge([("?", "\x15?#N 0.21"), ("?", None), ("?", "1.0 N")])
    async with mark10:
        with pytest.raises(MalformedReply, match="not a force reading"):
            await mark10.read_force_n()
        with pytest.raises(InstrumentTimeout):
            await mark10.read_force_n()
        assert await mark10.read_force_n() == 1.0


def test_unknown_bare_unit_refused() -> None:
    with pytest.raises(ValueError, match="not a Mark-10 force unit"):
        gauge([], bare_unit="stone")

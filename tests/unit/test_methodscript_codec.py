"""MethodSCRIPT wire format: literals, packet values, packets, reply lines and error lines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellrig.drivers.methodscript_codec import (
    PACKET_OFFSET,
    LineKind,
    PacketError,
    classify,
    decode_packet,
    decode_value,
    encode_packet,
    encode_value,
    error_text,
    format_error,
    integer_literal,
    parse_error_line,
    parse_literal,
    si_literal,
)


@pytest.mark.parametrize(("value", "text"), [
    (0.0, "0"),
    (4.25, "4250m"),
    (-2.5, "-2500m"),
    (0.1, "100m"),
    (10.0, "10"),
    (1e6, "1M"),
    (0.01, "10m"),
    (0.07, "70m"),
    (0.0634304, "63430400n"),
    (1e-9, "1n"),
    (3.7654321987, "3765432u"),
    (200e3, "200k"),
])
def test_si_literals(value: float, text: str) -> None:
    assert si_literal(value) == text


def test_literals_refuse_what_the_device_cannot_take() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        si_literal(math.nan)
    assert integer_literal(71) == "71i"


@pytest.mark.parametrize(("token", "value"), [
    ("4250m", 4.25), ("-2", -2.0), ("71i", 71.0), ("1M", 1e6), ("10u", 1e-5),
])
def test_parse_literal(token: str, value: float) -> None:
    assert parse_literal(token) == pytest.approx(value)


@pytest.mark.parametrize("token", ["p", "4.25", "1x", "", "m10"])
def test_parse_literal_rejects_non_literals(token: str) -> None:
    assert parse_literal(token) is None


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_literal_round_trip_keeps_six_digits(value: float) -> None:
    back = parse_literal(si_literal(value))
    assert back is not None
    assert back == pytest.approx(value, rel=7.5e-6, abs=1e-18)


def test_palmsens_example_packet() -> None:
    """The packet in PalmSens' data-package description: applied potential and current,
    with status and range metadata on the current."""
    packet = decode_packet("Pda7F85E3Fu;ba48D503Dp,10,288")
    assert packet.types() == ("da", "ba")
    potential, current = packet.variables
    assert potential.value == pytest.approx(-500161e-6)
    assert current.value == pytest.approx(-57847747e-12)
    assert (current.status, current.range_index) == (0, 0x88)
    assert potential.range_index is None


def test_value_fields() -> None:
    assert decode_value("8000000 ") == 0.0
    assert decode_value(f"{PACKET_OFFSET + 4250:07X}m") == pytest.approx(4.25)
    assert math.isnan(decode_value("     nan"))
    assert encode_value(math.nan) == "     nan"
    assert encode_value(4.25)[-1] in "unp"


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_value_round_trip(value: float) -> None:
    assert decode_value(encode_value(value)) == pytest.approx(value, rel=7.5e-6, abs=1e-17)


def test_packet_round_trip_in_order() -> None:
    line = encode_packet([("eb", 12.5), ("ab", 3.7012), ("ba", -0.0634)])
    decoded = decode_packet(line)
    assert decoded.types() == ("eb", "ab", "ba")
    assert [v.value for v in decoded.variables] == pytest.approx([12.5, 3.7012, -0.0634])


@pytest.mark.parametrize("line", [
    "P", "Pxx", "Pab8000000", "PAB8000000 ", "Pab80000Z0 ", "Pab8000000x",
    "Pab8000000 ;ba", "Pab8000000 ,1Z", "hello",
])
def test_malformed_packets(line: str) -> None:
    with pytest.raises(PacketError):
        decode_packet(line)


@pytest.mark.parametrize(("line", "kind"), [
    ("", LineKind.END),
    ("Peb8000000 ;ab8000000 ", LineKind.PACKET),
    ("M000A", LineKind.LOOP_START),
    ("*", LineKind.LOOP_END),
    ("L", LineKind.BLOCK_START),
    ("+", LineKind.BLOCK_END),
    ("C0001", LineKind.SCAN_START),
    ("-", LineKind.SCAN_END),
    ("Tcut-off", LineKind.TEXT),
    ("!0032: Line 17", LineKind.ERROR),
    ("e!4001: Line 3, Col 1", LineKind.ERROR),
    ("Z!0006", LineKind.ERROR),
    ("e", LineKind.OTHER),
    ("\x15?#oops", LineKind.OTHER),
])
def test_classify(line: str, kind: LineKind) -> None:
    assert classify(line) is kind


def test_error_lines() -> None:
    upload = parse_error_line("e!4001: Line 3, Col 1")
    assert upload is not None
    assert (upload.command, upload.code, upload.script_line, upload.script_column) == (
        "e", 0x4001, 3, 1)
    assert upload.message == ("MethodSCRIPT error 0x4001: the script command is unknown at "
                              "script line 3, column 1")
    running = parse_error_line("!0032: Line 17")
    assert running is not None
    assert (running.command, running.code, running.script_line) == ("", 0x32, 17)
    assert parse_error_line("Z!0006") == parse_error_line(format_error(6, "Z"))
    assert parse_error_line("Pab8000000 ") is None
    assert format_error(0x4001, "e", 3, 1) == "e!4001: Line 3, Col 1"
    assert "0x7A7A" in error_text(0x7A7A)

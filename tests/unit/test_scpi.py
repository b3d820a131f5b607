"""The SCPI parser of the emulators: header forms, program messages, parameters, errors."""

from __future__ import annotations

import pytest

from cellrig.simulators.scpi import (
    Arguments,
    CommandTable,
    ErrorQueue,
    ScpiError,
    compile_header,
    header_matches,
    short_form,
    split_outside_quotes,
)


def matches(pattern: str, header: str) -> bool:
    return header_matches(compile_header(pattern), header.lstrip(":").split(":"))


class TestHeaders:
    @pytest.mark.parametrize("header", [
        ":SOUR:CURR", ":SOURce:CURRent", ":sour:curr", ":Source:Current:Level",
        ":SOUR1:CURR:LEV:IMM:AMPL", "SOUR:CURR:AMPL", ":SOURCE:CURRENT:IMMEDIATE",
    ])
    def test_short_long_case_and_optional_nodes(self, header: str) -> None:
        assert matches(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", header)

    @pytest.mark.parametrize("header", [
        ":SOURC:CURR", ":SOUR2:CURR", ":SOUR:CURR:VLIM", ":CURR", ":SOUR:CURR:LEV:LEV",
    ])
    def test_what_is_not_the_header(self, header: str) -> None:
        assert not matches(":SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", header)

    def test_an_optional_first_node(self) -> None:
        pattern = "[:SENSe[1]]:VOLTage:NPLCycles"
        assert matches(pattern, ":SENS:VOLT:NPLC")
        assert matches(pattern, ":VOLT:NPLC")
        assert matches(pattern, ":SENSe1:VOLTage:NPLCycles")

    def test_short_forms_are_the_capitals(self) -> None:
        assert short_form("HIMPedance") == "HIMP"
        assert short_form("NPLCycles") == "NPLC"
        assert short_form("READ") == "READ"

    def test_a_malformed_pattern_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a header pattern"):
            compile_header("SOURce:CURRent")


class TestParameters:
    def test_quotes_protect_separators(self) -> None:
        assert split_outside_quotes('"a;b", \'c,d\', e', ",") == ['"a;b"', " 'c,d'", " e"]
        with pytest.raises(ScpiError) as caught:
            split_outside_quotes('"open', ",")
        assert caught.value.code == -102

    def test_numbers_with_bounds_and_names(self) -> None:
        args = Arguments("0.25, MAX, def, min, 2e-3")
        assert args.number(0, low=0, high=1) == 0.25
        assert args.number(1, low=0, high=1.05) == 1.05
        assert args.number(2, default=21.0) == 21.0
        assert args.number(3, low=-1.05) == -1.05
        assert args.number(4) == 0.002

    @pytest.mark.parametrize(("text", "code"), [
        ("5", -222), ("abc", -104), ("nan", -104), ("DEF", -224),
    ])
    def test_bad_numbers(self, text: str, code: int) -> None:
        with pytest.raises(ScpiError) as caught:
            Arguments(text).number(0, low=0, high=1)
        assert caught.value.code == code

    def test_booleans_choices_and_strings(self) -> None:
        args = Arguments("on, 0, himp, \"def\"\"buffer\"")
        assert args.boolean(0) is True
        assert args.boolean(1) is False
        assert args.choice(2, ("NORMal", "HIMPedance")) == "HIMPedance"
        assert args.string(3) == 'def"buffer'
        with pytest.raises(ScpiError) as caught:
            args.choice(0, ("NORMal", "HIMPedance"))
        assert caught.value.code == -224
        with pytest.raises(ScpiError) as caught:
            args.string(0)
        assert caught.value.code == -104

    def test_counts(self) -> None:
        with pytest.raises(ScpiError) as caught:
            Arguments("").expect(1)
        assert caught.value.code == -109
        with pytest.raises(ScpiError) as caught:
            Arguments("1, 2").expect(1)
        assert caught.value.code == -108
        with pytest.raises(ScpiError) as caught:
            Arguments("1,,2")
        assert caught.value.code == -102


class TestErrorQueue:
    def test_first_in_first_out_with_overflow(self) -> None:
        queue = ErrorQueue(capacity=3)
        for code in (-113, -222, -224, -109):
            queue.push(code, "x", 0.0)
        assert [queue.next().code for _ in range(3)] == [-113, -222, -350]  # type: ignore[union-attr]
        assert queue.next() is None


class Device:
    """A table with a level, a flag, a query-only and a command-only header."""

    def __init__(self) -> None:
        self.level = 0.0
        self.flag = False
        self.errors: list[int] = []
        self.table = CommandTable()
        self.table.add(":SOURce[1]:LEVel", self.set_level, lambda args: f"{self.level:g}")
        self.table.add(":SOURce[1]:FLAG", self.set_flag, lambda args: str(int(self.flag)))
        self.table.add(":TRACe:ACTual:STARt", getter=lambda args: "1")
        self.table.add(":TRACe:ACTual:END", getter=lambda args: "6")
        self.table.add("*RST", setter=lambda args: None)

    def set_level(self, args: Arguments) -> None:
        args.expect(1)
        self.level = args.number(0, low=-1, high=1)

    def set_flag(self, args: Arguments) -> None:
        args.expect(1)
        self.flag = args.boolean(0)

    async def run(self, message: str) -> str | None:
        return await self.table.execute(message, lambda error: self.errors.append(error.code))


class TestMessages:
    async def test_queries_answer_in_one_line(self) -> None:
        device = Device()
        assert await device.run(":SOUR:LEV 0.5;:SOUR:LEV?;:SOUR:FLAG ON;FLAG?") == "0.5;1"
        assert device.errors == []

    async def test_a_header_without_colon_follows_the_previous_path(self) -> None:
        device = Device()
        assert await device.run(':TRAC:ACT:STAR? ; END?') == "1;6"
        assert await device.run(":SOUR:FLAG 1;*RST;LEV -0.5;:SOUR:LEV?") == "-0.5"

    async def test_a_command_error_ends_the_message(self) -> None:
        device = Device()
        assert await device.run(":SOUR:NOPE 1;:SOUR:LEV 0.5;:SOUR:LEV?") is None
        assert device.errors == [-113]
        assert device.level == 0.0

    async def test_an_execution_error_skips_only_its_command(self) -> None:
        device = Device()
        assert await device.run(":SOUR:LEV 5;:SOUR:FLAG 1;:SOUR:FLAG?") == "1"
        assert device.errors == [-222]

    async def test_query_and_command_forms_are_separate(self) -> None:
        device = Device()
        assert await device.run(":TRAC:ACT:END 3") is None
        assert await device.run("*RST?") is None
        assert device.errors == [-113, -113]

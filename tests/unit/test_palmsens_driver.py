"""Scripted exchanges of the PalmSens MethodSCRIPT driver: every line it sends, in order, and
how it takes each reply — packets, loop ends, error lines, garbage, silence, a lost line."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

import numpy as np
import pytest

from cellrig.drivers.backoff import Backoff
from cellrig.drivers.methodscript_codec import encode_packet
from cellrig.drivers.methodscript_scripts import (
    Cutoff,
    Ranges,
    chronoamperometry,
    chronopotentiometry,
    impedance_sweep,
    open_circuit,
)
from cellrig.drivers.palmsens import LONG_RUN_S, PalmSens
from cellrig.drivers.palmsens_ranges import EMSTAT4_HR
from cellrig.drivers.palmsens_wire import Wire
from cellrig.errors import (
    ConnectionLost,
    InstrumentError,
    InstrumentReported,
    InstrumentTimeout,
    MalformedReply,
    UnsupportedInstrument,
)
from cellrig.protocols.program import Condition, EisMode, EisStep, Operator, Quantity
from cellrig.protocols.rig import Command, Mode

URL = "socket://palmsens.test:4001"
Reply = str | InstrumentError


class ScriptedLink:
    """A line link that plays a conversation: each line the driver must write, with what the
    instrument answers after it; reading past the answers times out, as the real link does."""

    def __init__(self, exchanges: Iterable[tuple[str, list[Reply]]] = ()) -> None:
        self.url = URL
        self.instrument = "palmsens"
        self.timeout_s = 1.0
        self.lock = asyncio.Lock()
        self.expected: deque[tuple[str, list[Reply]]] = deque(exchanges)
        self.pending: deque[Reply] = deque()
        self.written: list[str] = []
        self.reopened = 0
        self.discarded = 0

    def expect(self, exchanges: Iterable[tuple[str, list[Reply]]]) -> None:
        self.expected.extend(exchanges)

    def answer(self, *lines: Reply) -> None:
        self.pending.extend(lines)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def reopen(self, backoff: Backoff | None = None, *, attempts: int = 5) -> None:
        self.reopened += 1
        self.pending.clear()

    async def write_line(self, text: str) -> None:
        self.written.append(text)
        assert self.expected, f"unexpected write {text!r}"
        wanted, replies = self.expected.popleft()
        assert text == wanted, f"sent {text!r}, expected {wanted!r}"
        self.pending.extend(replies)

    async def read_line(self, *, command: str | None = None,
                        timeout_s: float | None = None) -> str:
        if not self.pending:
            raise InstrumentTimeout("no reply within 1 s", instrument=self.instrument,
                                    address=self.url, command=command)
        item = self.pending.popleft()
        if isinstance(item, InstrumentError):
            raise item
        return item

    async def discard_input(self) -> int:
        self.discarded += 1
        return 0

    @property
    def done(self) -> bool:
        return not self.expected and not self.pending


def upload(script: list[str], *replies: Reply) -> list[tuple[str, list[Reply]]]:
    return [("e", []), *[(line, []) for line in script], ("", list(replies))]


def abort(*replies: Reply) -> list[tuple[str, list[Reply]]]:
    return [("", []), ("Z", list(replies))]


OPEN = [*abort("Z!0006"), ("t", ["tnexus114#Sep 30 2025 12:00:00", "R*"]),
        ("i", ["iNX24A0042"])]
SWITCH_OFF = upload(["cell_off"], "e", "")
NEXUS_RANGES = Ranges(1.0, 10.0)


def packet(time_s: float, voltage_v: float, current_a: float | None = None) -> str:
    variables = [("eb", time_s), ("ab", voltage_v)]
    if current_a is not None:
        variables.append(("ba", current_a))
    return encode_packet(variables)


async def opened(link: ScriptedLink) -> PalmSens:
    link.expect(OPEN)
    channel = PalmSens(URL, link=link, error_pause_s=0.0)
    await channel.open()
    return channel


async def test_open_aborts_identifies_and_takes_the_models_ranges() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    assert link.written == ["", "Z", "t", "i"]
    assert channel.identity is not None
    assert (channel.identity.model, channel.identity.serial_number) == ("Nexus", "NX24A0042")
    assert channel.identity.firmware == "14#Sep 30 2025 12:00:00 R"
    capabilities = channel.capabilities
    assert capabilities.max_current_a == 1.0 and capabilities.max_voltage_v == 10.0
    assert capabilities.eis and capabilities.device_cutoffs
    assert not capabilities.constant_power and not capabilities.constant_resistance
    assert channel.frequency_range_hz == (10e-6, 1e6)


async def test_open_drains_a_script_left_running() -> None:
    link = ScriptedLink([*abort(packet(3.0, 3.9, 0.1), "Z", "*", ""),
                         ("t", ["tes4_hr13#Mar 25 2024", "R*"]), ("i", ["iES4HR0007"])])
    channel = PalmSens(URL, link=link, error_pause_s=0.0)
    await channel.open()
    assert channel.model is EMSTAT4_HR and link.done


async def test_open_refuses_an_unknown_device() -> None:
    link = ScriptedLink([*abort("Z!0006"), ("t", ["tespico12#Jun 29 2020", "R*"]),
                         ("i", ["iESP0001"])])
    with pytest.raises(UnsupportedInstrument, match="'espico'"):
        await PalmSens(URL, link=link, error_pause_s=0.0).open()


async def test_constant_current_with_a_cutoff_streams_readings_until_the_loop_ends() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    command = Command(Mode.CURRENT, current_a=0.5, voltage_limit_v=4.4, sample_interval_s=2.0,
                      until=(Condition(Quantity.VOLTAGE, Operator.AT_LEAST, 4.25),
                             Condition(Quantity.TIME, Operator.AT_LEAST, 3600.0)),
                      elapsed_s=600.0)
    script = chronopotentiometry(0.5, 2.0, 3000.0, NEXUS_RANGES,
                                 (Cutoff(4.25, True), Cutoff(4.4, True)))
    link.expect(upload(script, "e", "M000A", packet(2.0, 4.1, 0.5), packet(4.0, 4.26, 0.5),
                       "*", ""))
    started = await channel.apply(command)
    first = await channel.read()
    assert (first.time_s[0], first.voltage_v[0], first.current_a[0]) == (
        pytest.approx(started + 2.0), pytest.approx(4.1), pytest.approx(0.5))
    assert not first.done and first.temperature_c is None
    second = await channel.read()
    assert second.voltage_v[0] == pytest.approx(4.26)
    end = await channel.read()
    assert end.done and len(end) == 0
    assert (await channel.read()).done
    assert link.done


async def test_rest_reads_the_open_circuit_potential_with_zero_current() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B",
                       packet(1.0, 3.71)))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    block = await channel.read()
    assert block.current_a[0] == 0.0 and block.voltage_v[0] == pytest.approx(3.71)


async def test_constant_voltage_hold_and_end_step_aborts() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    command = Command(Mode.VOLTAGE, voltage_v=4.25, current_limit_a=0.06, sample_interval_s=10.0,
                      until=(Condition(Quantity.CURRENT, Operator.AT_MOST, 0.03),))
    link.expect(upload(chronoamperometry(4.25, 10.0, LONG_RUN_S, Ranges(0.1, 10.0)), "e",
                       "M0007", encode_packet([("eb", 10.0), ("da", 4.25), ("ba", 0.029)])))
    await channel.apply(command)
    block = await channel.read()
    assert block.current_a[0] == pytest.approx(0.029)
    link.expect(abort("Z", "*", ""))
    await channel.end_step(float(block.time_s[0]))
    assert link.done
    assert (await channel.read()).done


async def test_a_new_command_aborts_the_running_script_first() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B"))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    link.expect([*abort(packet(1.0, 3.7), "Z", "*", ""),
                 *upload(chronopotentiometry(-0.1, 1.0, LONG_RUN_S, Ranges(0.1, 10.0),
                                             (Cutoff(2.5, False),)), "e")])
    await channel.apply(Command(Mode.CURRENT, current_a=-0.1, voltage_limit_v=2.5,
                                sample_interval_s=1.0))
    assert link.done


async def test_safe_switches_the_cell_off_even_when_nothing_runs() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(SWITCH_OFF)
    await channel.safe()
    link.expect(SWITCH_OFF)
    assert await channel.apply(Command(Mode.OFF)) >= 0.0
    assert link.done


async def test_an_error_line_while_running_is_reported_with_its_code() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B",
                       "!0032: Line 10"))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    with pytest.raises(InstrumentReported) as caught:
        await channel.read()
    error = caught.value
    assert error.code == 0x0032 and error.command == "meas_loop_ocp" and error.address == URL
    assert "critical cell overload" in str(error) and "script line 10" in str(error)
    assert link.discarded == 1 and link.done
    assert (await channel.read()).done


async def test_a_refused_upload_is_reported_and_nothing_runs() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e!4001: Line 3, Col 1"))
    with pytest.raises(InstrumentReported) as caught:
        await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    assert caught.value.code == 0x4001
    assert (await channel.read()).done and link.done


async def test_garbage_is_malformed_and_the_cell_is_switched_off() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B",
                       "Pab80F42?6u"))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    link.expect([*abort(packet(2.0, 3.7), "Z", "*", ""), *SWITCH_OFF])
    with pytest.raises(MalformedReply) as caught:
        await channel.read()
    assert caught.value.command == "meas_loop_ocp"
    assert link.done


async def test_a_packet_of_the_wrong_shape_is_malformed() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e",
                       encode_packet([("eb", 1.0), ("cc", 3.0)])))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    link.expect([*abort("Z", ""), *SWITCH_OFF])
    with pytest.raises(MalformedReply, match="does not carry time"):
        await channel.read()


async def test_silence_times_out_and_the_abort_is_still_sent() -> None:
    link = ScriptedLink()
    link.expect(OPEN)
    channel = PalmSens(URL, link=link, error_pause_s=0.0, abort_timeout_s=0.05)
    await channel.open()
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B"))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    link.expect(abort())
    with pytest.raises(InstrumentTimeout):
        await channel.read()
    assert link.written[-2:] == ["", "Z"] and link.done


async def test_a_lost_connection_is_reopened_aborted_and_switched_off() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    lost = ConnectionLost("connection lost: reset by peer", instrument="palmsens", address=URL,
                          command="meas_loop_ocp")
    link.expect(upload(open_circuit(1.0, LONG_RUN_S, NEXUS_RANGES), "e", "M000B", lost))
    await channel.apply(Command(Mode.REST, sample_interval_s=1.0))
    link.expect([*abort("Z", "*", ""), *SWITCH_OFF])
    with pytest.raises(ConnectionLost):
        await channel.read()
    assert link.reopened == 1 and link.done


async def test_commands_beyond_the_instrument_are_refused_before_any_wire_traffic() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    written = len(link.written)
    with pytest.raises(UnsupportedInstrument, match="no power mode"):
        await channel.apply(Command(Mode.POWER, power_w=1.0))
    with pytest.raises(UnsupportedInstrument, match="exceeds"):
        await channel.apply(Command(Mode.CURRENT, current_a=1.5))
    with pytest.raises(UnsupportedInstrument, match="only potentiostatic EIS"):
        await channel.eis(EisStep(id=1, label="geis", mode=EisMode.GALVANOSTATIC,
                                  start_hz=1e3, stop_hz=1.0, points_per_decade=5,
                                  amplitude=1e-3))
    assert len(link.written) == written


async def test_eis_at_open_circuit_returns_the_spectrum_and_the_ocv() -> None:
    link = ScriptedLink()
    channel = await opened(link)
    step = EisStep(id=4, label="eis", mode=EisMode.POTENTIOSTATIC, start_hz=1e4, stop_hz=1.0,
                   points_per_decade=1, amplitude=0.01)
    points = [encode_packet([("eb", 2.0 + k), ("dc", f), ("cc", 0.1 * (k + 1)),
                             ("cd", -0.01 * (k + 1))])
              for k, f in enumerate([1e4, 1e3, 1e2, 1e1, 1.0])]
    link.expect(upload(impedance_sweep(1e4, 1.0, 5, 0.01, NEXUS_RANGES), "e", "M000B",
                       encode_packet([("ab", 3.81)]), "*", "M000D", *points, "*", ""))
    spectrum = await channel.eis(step)
    assert spectrum.frequency_hz == pytest.approx([1e4, 1e3, 1e2, 1e1, 1.0])
    assert spectrum.z_real_ohm == pytest.approx(0.1 * np.arange(1, 6))
    assert spectrum.z_imag_ohm == pytest.approx(-0.01 * np.arange(1, 6))
    assert spectrum.meta["ocv_v"] == pytest.approx(3.81)
    assert spectrum.time_s > 6.0 and link.done


async def test_a_configured_model_may_narrow_the_ranges_but_not_widen_them() -> None:
    link = ScriptedLink(OPEN)
    narrowed = PalmSens(URL, link=link, model=EMSTAT4_HR, error_pause_s=0.0)
    await narrowed.open()
    assert narrowed.capabilities.max_current_a == pytest.approx(0.1)
    link = ScriptedLink([*abort("Z!0006"), ("t", ["tes4_lr13#Mar 25 2024", "R*"]),
                         ("i", ["iES4LR0001"])])
    with pytest.raises(UnsupportedInstrument, match="narrower ranges"):
        await PalmSens(URL, link=link, model=EMSTAT4_HR, error_pause_s=0.0).open()


class StreamingLink(ScriptedLink):
    """A line that never stops sending packets (a script that will not end)."""

    async def read_line(self, *, command: str | None = None,
                        timeout_s: float | None = None) -> str:
        if self.pending:
            return await super().read_line(command=command, timeout_s=timeout_s)
        await asyncio.sleep(0.01)
        return encode_packet([("da", 3.7)])


async def test_switching_off_waits_for_the_end_of_the_script_only_so_long() -> None:
    wire = Wire(StreamingLink(upload(["cell_off"], "e")), Backoff(), 1, abort_timeout_s=0.2)
    with pytest.raises(InstrumentTimeout, match=r"no end of cell_off within 0\.2 s"):
        async with asyncio.timeout(5.0):
            await wire.run_to_end(["cell_off"], "cell_off")

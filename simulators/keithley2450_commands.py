"""The SCPI commands of the emulated Keithley 2450, each as its reference manual defines it.

Headers are written as in the manual (2450-901-01 section 6, "SCPI command reference"; the
2461's 2461-901-01 for ``:TRIGger:LOAD "<template>"``, ``:SYSTem:ERRor:COUNt?`` and the event
log's reply format). Settings are answered in the instrument's ``%e`` form (``2.600000e+01``),
readings as ``-1.375422E-11``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .keithley2450_buffer import ReadingBuffer, parse_elements
from .scpi import (
    ILLEGAL_PARAMETER_VALUE,
    SETTINGS_CONFLICT,
    Arguments,
    CommandTable,
    Handler,
    ScpiError,
)

if TYPE_CHECKING:
    from .keithley2450_emulator import Keithley2450Emulator

CURRENT = "CURRent"
VOLTAGE = "VOLTage"
FUNCTIONS = (CURRENT, VOLTAGE)
OFF_MODES = ("NORMal", "HIMPedance", "ZERO", "GUARd")
TEMPLATES = ("SimpleLoop", "DurationLoop", "Empty")


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _setting(value: float) -> str:
    return f"{value:.6e}"


def register_commands(k: Keithley2450Emulator, table: CommandTable,
                      common_only: CommandTable) -> None:
    """Define every command the emulator answers on ``table``; the common (``*``) ones also on
    ``common_only`` (the commands a TSP-mode instrument still takes)."""
    def common(pattern: str, setter: Handler | None = None,
               getter: Handler | None = None) -> None:
        table.add(pattern, setter, getter)
        common_only.add(pattern, setter, getter)

    # -- common commands (manual appendix B) ------------------------------------------------
    def reset(args: Arguments) -> None:
        args.expect(0)
        k.reset_settings()

    def clear_status(args: Arguments) -> None:
        args.expect(0)
        k.errors.clear()

    async def operation_complete(args: Arguments) -> str:
        args.expect(0)
        await k.wait_trigger_model()
        return "1"

    async def wait(args: Arguments) -> None:
        args.expect(0)
        await k.wait_trigger_model()

    def set_language(args: Arguments) -> None:
        args.expect(1)
        args.choice(0, ("SCPI", "TSP", "SCPI2400"))  # takes effect after a power cycle

    def answer(text: Callable[[], str]) -> Handler:
        def handler(args: Arguments) -> str:
            args.expect(0)
            return text()
        return handler

    common("*IDN", getter=answer(lambda: k.identity))
    common("*RST", setter=reset)
    common("*CLS", setter=clear_status)
    common("*OPC", setter=lambda args: args.expect(0), getter=operation_complete)
    common("*WAI", setter=wait)
    common("*TST", getter=answer(lambda: "0"))
    common("*LANG", setter=set_language, getter=answer(lambda: k.language))

    # -- OUTPut -------------------------------------------------------------------------------
    def output(args: Arguments) -> None:
        args.expect(1)
        k.output_on = args.boolean(0)
        k.drive()

    table.add(":OUTPut[1][:STATe]", output, lambda args: _flag(k.output_on))

    def off_mode_setter(functions: tuple[str, ...]) -> Handler:
        def handler(args: Arguments) -> None:
            args.expect(1)
            mode = args.choice(0, OFF_MODES)
            for function in functions:
                k.off_modes[function] = mode
            k.drive()
        return handler

    def off_mode_getter(function: str | None) -> Handler:
        def handler(args: Arguments) -> str:
            args.expect(0)
            mode = k.off_modes[function or k.source_function]
            return "".join(c for c in mode if c.isupper())
        return handler

    table.add(":OUTPut[1]:SMODe", off_mode_setter(FUNCTIONS), off_mode_getter(None))
    for function in FUNCTIONS:
        table.add(f":OUTPut[1]:{function}:SMODe", off_mode_setter((function,)),
                  off_mode_getter(function))

    # -- SOURce -------------------------------------------------------------------------------
    def source_function(args: Arguments) -> None:
        args.expect(1)
        k.source_function = args.choice(0, FUNCTIONS)
        k.drive()

    table.add(":SOURce[1]:FUNCtion[:MODE]", source_function,
              lambda args: "CURR" if k.source_function == CURRENT else "VOLT")

    def level_setter(function: str) -> Handler:
        maximum = k.rating.max_current_a if function == CURRENT else k.rating.max_voltage_v

        def handler(args: Arguments) -> None:
            args.expect(1)
            k.levels[function] = args.number(0, low=-maximum, high=maximum, default=0.0)
            if k.source_function == function:
                k.drive()
        return handler

    def level_getter(function: str) -> Handler:
        return answer(lambda: _setting(k.levels[function]))

    for function in FUNCTIONS:
        table.add(f":SOURce[1]:{function}[:LEVel][:IMMediate][:AMPLitude]",
                  level_setter(function), level_getter(function))

    def voltage_limit(args: Arguments) -> None:
        args.expect(1)
        k.voltage_limit_v = args.number(0, low=0.02, high=k.rating.max_voltage_v, default=21.0)
        k.drive()

    def current_limit(args: Arguments) -> None:
        args.expect(1)
        k.current_limit_a = args.number(0, low=1e-9, high=k.rating.max_current_a,
                                        default=105e-6)
        k.drive()

    table.add(":SOURce[1]:CURRent:VLIMit[:LEVel]", voltage_limit,
              lambda args: _setting(k.voltage_limit_v))
    table.add(":SOURce[1]:VOLTage:ILIMit[:LEVel]", current_limit,
              lambda args: _setting(k.current_limit_a))
    table.add(":SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped", getter=lambda args: _flag(
        k.source_function == CURRENT and k.in_compliance))
    table.add(":SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped", getter=lambda args: _flag(
        k.source_function == VOLTAGE and k.in_compliance))

    protection_words = (*(f"PROT{level}" for level in k.rating.protection_levels_v), "NONE")

    def protection(args: Arguments) -> None:
        args.expect(1)
        word = args.choice(0, protection_words)
        k.protection_v = None if word == "NONE" else int(word[4:])
        k.drive()

    def protection_tripped(args: Arguments) -> str:
        if not k.output_on or k.protection_v is None:
            return "0"
        if k.source_function == VOLTAGE:
            return _flag(abs(k.levels[VOLTAGE]) > k.protection_v)
        return _flag(k.voltage_limit_v > k.protection_v and k.in_compliance)

    table.add(":SOURce[1]:VOLTage:PROTection[:LEVel]", protection, lambda args: (
        "NONE" if k.protection_v is None else f"PROT{k.protection_v}"))
    table.add(":SOURce[1]:VOLTage:PROTection[:LEVel]:TRIPped", getter=protection_tripped)

    for function in FUNCTIONS:
        _per_function_settings(k, table, function)

    # -- SENSe ----------------------------------------------------------------------------------
    def sense_function(args: Arguments) -> None:
        args.expect(1)
        name = args.string(0).upper()
        for function in FUNCTIONS:
            if name in (function[:4].upper(), function.upper(), f"{function[:4].upper()}:DC"):
                k.sense_function = function
                return
        raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"no measure function {name!r}")

    table.add("[:SENSe[1]]:FUNCtion[:ON]", sense_function,
              lambda args: f'"{k.sense_function[:4].upper()}:DC"')

    def count(args: Arguments) -> None:
        args.expect(1)
        k.count = args.integer(0, low=1, high=300_000)

    table.add("[:SENSe[1]]:COUNt", count, lambda args: str(k.count))

    # -- READ? and TRACe ------------------------------------------------------------------------
    async def read(args: Arguments) -> str:
        name = args.string(0) if len(args) else "defbuffer1"
        buffer = k.buffer(name)
        elements = parse_elements(args, 1)
        reading = None
        for _ in range(k.count):
            reading = await k.measure()
            buffer.append(reading)
        assert reading is not None
        return buffer.format([reading], elements, k.epoch_unix_s)

    table.add(":READ", getter=read)

    def optional_buffer(args: Arguments, index: int) -> str:
        return args.string(index) if len(args) > index else "defbuffer1"

    def trace_clear(args: Arguments) -> None:
        args.expect(0, 1)
        k.buffer(optional_buffer(args, 0)).clear()

    def trace_points(args: Arguments) -> None:
        args.expect(1, 2)
        size = args.integer(0, low=1, high=11_000_000)
        k.buffer(optional_buffer(args, 1)).resize(size)

    def trace_data(args: Arguments) -> str:
        args.expect(2, 17)
        start = args.integer(0, low=1, high=11_000_000)
        end = args.integer(1, low=1, high=11_000_000)
        buffer = k.buffer(optional_buffer(args, 2))
        return buffer.format(buffer.between(start, end), parse_elements(args, 3),
                             k.epoch_unix_s)

    def trace_make(args: Arguments) -> None:
        args.expect(2, 3)
        name = args.string(0)
        if name in k.buffers:
            raise ScpiError(SETTINGS_CONFLICT, f"reading buffer {name!r} exists")
        k.buffers[name] = ReadingBuffer(name, args.integer(1, low=1, high=11_000_000))

    def trace_delete(args: Arguments) -> None:
        args.expect(1)
        name = args.string(0)
        if name in ("defbuffer1", "defbuffer2"):
            raise ScpiError(SETTINGS_CONFLICT, "the default buffers cannot be deleted")
        k.buffer(name)
        del k.buffers[name]

    table.add(":TRACe:CLEar", trace_clear)
    table.add(":TRACe:POINts", trace_points,
              lambda args: str(k.buffer(optional_buffer(args, 0)).capacity))
    table.add(":TRACe:ACTual", getter=lambda args: str(len(k.buffer(optional_buffer(args, 0)))))
    table.add(":TRACe:ACTual:STARt", getter=lambda args: str(
        min(1, len(k.buffer(optional_buffer(args, 0))))))
    table.add(":TRACe:ACTual:END", getter=lambda args: str(
        len(k.buffer(optional_buffer(args, 0)))))
    table.add(":TRACe:DATA", getter=trace_data)
    table.add(":TRACe:MAKE", trace_make)
    table.add(":TRACe:DELete", trace_delete)

    # -- trigger model ---------------------------------------------------------------------------
    def load(template: str | None) -> Handler:
        def handler(args: Arguments) -> None:
            first = 0 if template is not None else 1
            name = template or _template_name(args)
            if k.trigger.state == "RUNNING":
                raise ScpiError(SETTINGS_CONFLICT, "the trigger model is running")
            if name == "Empty":
                args.expect(first)
                k.trigger.template, k.trigger.state, k.trigger.block = "Empty", "EMPTY", 0
                return
            args.expect(first + 1, first + 3)
            if name == "SimpleLoop":
                k.trigger.count = args.integer(first, low=1, high=268_435_455)
            else:
                k.trigger.duration_s = args.number(first, low=0.0, high=100_000.0)
            delay = args.number(first + 1, low=0.0, high=10_000.0) if len(args) > first + 1 \
                else 0.0
            buffer = args.string(first + 2) if len(args) > first + 2 else "defbuffer1"
            k.buffer(buffer)
            k.trigger.template, k.trigger.delay_s, k.trigger.buffer = name, delay, buffer
            k.trigger.state, k.trigger.block = "IDLE", 0
        return handler

    def initiate(args: Arguments) -> None:
        args.expect(0)
        if k.trigger.template == "Empty":
            raise ScpiError(SETTINGS_CONFLICT, "no trigger model is loaded")
        if k.trigger.state == "RUNNING":
            raise ScpiError(SETTINGS_CONFLICT, "the trigger model is running")
        k.start_trigger_model()

    def abort(args: Arguments) -> None:
        args.expect(0)
        k.stop_trigger_model()

    table.add(":TRIGger:LOAD", load(None))
    table.add(":TRIGger:LOAD:LOOP:SIMPle", load("SimpleLoop"))
    table.add(":TRIGger:LOAD:LOOP:DURation", load("DurationLoop"))
    table.add(":TRIGger:STATe", getter=lambda args: k.trigger.status)
    table.add(":INITiate[:IMMediate]", initiate)
    table.add(":ABORt", abort)

    # -- SYSTem ----------------------------------------------------------------------------------
    def next_code(args: Arguments) -> str:
        entry = k.errors.next()
        return "0" if entry is None else str(entry.code)

    def system_clear(args: Arguments) -> None:
        args.expect(0)
        k.errors.clear()

    table.add(":SYSTem:ERRor[:NEXT]", getter=lambda args: k.next_error())
    table.add(":SYSTem:ERRor:CODE[:NEXT]", getter=next_code)
    table.add(":SYSTem:ERRor:COUNt", getter=lambda args: str(len(k.errors)))
    table.add(":SYSTem:CLEar", system_clear)
    table.add(":SYSTem:LFRequency", getter=lambda args: f"{k.line_frequency_hz:g}")


def _template_name(args: Arguments) -> str:
    name = args.string(0) if len(args) else ""
    for template in TEMPLATES:
        if name.upper() == template.upper():
            return template
    raise ScpiError(ILLEGAL_PARAMETER_VALUE, f"no trigger model template {name!r}")


def _per_function_settings(k: Keithley2450Emulator, table: CommandTable, function: str) -> None:
    """Ranges, readback, 4-wire sense and NPLC: kept per source or measure function."""
    maximum = k.rating.max_current_a if function == CURRENT else k.rating.max_voltage_v

    def source_range(args: Arguments) -> None:
        args.expect(1)
        k.source_range[function] = args.number(0, low=-maximum, high=maximum)
        k.source_auto_range[function] = False

    def source_auto(args: Arguments) -> None:
        args.expect(1)
        k.source_auto_range[function] = args.boolean(0)

    def read_back(args: Arguments) -> None:
        args.expect(1)
        k.read_back[function] = args.boolean(0)

    def sense_range(args: Arguments) -> None:
        args.expect(1)
        k.sense_range[function] = abs(args.number(0, low=-maximum, high=maximum))
        k.sense_auto_range[function] = False

    def sense_auto(args: Arguments) -> None:
        args.expect(1)
        k.sense_auto_range[function] = args.boolean(0)

    def four_wire(args: Arguments) -> None:
        args.expect(1)
        k.four_wire[function] = args.boolean(0)

    def nplc(args: Arguments) -> None:
        args.expect(1)
        k.nplc[function] = args.number(0, low=0.01, high=10.0, default=1.0)

    source = f":SOURce[1]:{function}"
    sense = f"[:SENSe[1]]:{function}"
    table.add(f"{source}:RANGe", source_range, lambda args: _setting(k.source_range[function]))
    table.add(f"{source}:RANGe:AUTO", source_auto,
              lambda args: _flag(k.source_auto_range[function]))
    table.add(f"{source}:READ:BACK", read_back, lambda args: _flag(k.read_back[function]))
    table.add(f"{sense}:RANGe[:UPPer]", sense_range,
              lambda args: _setting(k.sense_range[function]))
    table.add(f"{sense}:RANGe:AUTO", sense_auto, lambda args: _flag(k.sense_auto_range[function]))
    table.add(f"{sense}:RSENse", four_wire, lambda args: _flag(k.four_wire[function]))
    table.add(f"{sense}:NPLCycles", nplc, lambda args: _setting(k.nplc[function]))

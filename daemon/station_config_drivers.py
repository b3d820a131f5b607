"""What ``station.toml`` may say about each driver: the roles it can play, the form of its
address and its options (with units, parsed to the SI names the drivers take).

Addresses, by transport:

- VISA resources for the Keithley 2450 family: ``TCPIP::192.0.2.11::5025::SOCKET`` (the raw
  SCPI socket), ``TCPIP::host::INSTR``, ``USB0::0x05E6::0x2450::04512345::INSTR``,
  ``GPIB0::18::INSTR``;
- serial lines for PalmSens, ESPEC, Alicat and Mark-10: a device path (``/dev/ttyUSB0``,
  ``/dev/serial/by-id/…``), ``COM3``, or a terminal server as ``socket://host:port`` or
  ``rfc2217://host:port``;
- Modbus TCP for the Watlow F4T: ``host`` or ``host:port`` (port 502 by default);
- the model needs none (it runs in the daemon).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cellrig.drivers.jig_geometry import unit_factor
from cellrig.drivers.keithley2450_models import MODELS as KEITHLEY_MODELS
from cellrig.drivers.mark10 import NEWTONS_PER_UNIT
from cellrig.drivers.palmsens_ranges import MODELS as PALMSENS_MODELS
from cellrig.drivers.watlow_registers import WordOrder
from cellrig.protocols.quantities import Kind
from cellrig.protocols.suggest import did_you_mean
from cellrig.simulators.cell_params import builtin_cells

from .station_config_fields import Section
from .station_config_model import Driver, Role

_VISA_RE = re.compile(
    r"(?i)(TCPIP\d*::[^:\s]+::(\d+::SOCKET|([^:\s]+::)?INSTR)"
    r"|USB\d*::[^\s]+::INSTR|GPIB\d*::\d+(::\d+)?::INSTR|ASRL[^\s]+::INSTR)")
_SERIAL_RE = re.compile(r"(/\S+|COM\d+|(socket|rfc2217)://[A-Za-z0-9_.-]+:\d{1,5})")
_HOST_PORT_RE = re.compile(r"[A-Za-z0-9_.-]+(:\d{1,5})?")
_UNIT_ID_RE = re.compile(r"[A-Za-z]")
_CELL_NAME_RE = re.compile(r"[A-Za-z0-9_.\-/]+")


@dataclass(frozen=True, slots=True)
class AddressForm:
    """How a driver's address is written."""

    pattern: re.Pattern[str] | None
    expected: str
    example: str


VISA = AddressForm(_VISA_RE, "a VISA resource (TCPIP::<host>::5025::SOCKET, USB…::INSTR, "
                   "GPIB0::<n>::INSTR)", 'address = "TCPIP::192.0.2.11::5025::SOCKET"')
SERIAL = AddressForm(_SERIAL_RE, "a serial device (/dev/ttyUSB0, COM3) or "
                     "socket://<host>:<port>", 'address = "/dev/ttyUSB0"')
MODBUS_TCP = AddressForm(_HOST_PORT_RE, "a host or host:port (Modbus TCP)",
                         'address = "192.0.2.40:502"')
IN_PROCESS = AddressForm(None, "nothing (the model runs in the daemon)", 'driver = "model"')


@dataclass(frozen=True, slots=True)
class Option:
    """One driver option: how it is read and the name the driver takes it under."""

    name: str
    read: Callable[[Section, str], Any]
    required: bool = False
    what: str = ""


def _duration(section: Section, key: str) -> float | None:
    return section.quantity(key, Kind.TIME, what=key, positive=True)


def _pressure(section: Section, key: str) -> float | None:
    return section.quantity(key, Kind.PRESSURE, what=key, positive=True)


def _baudrate(section: Section, key: str) -> int | None:
    return section.integer(key, 300, 4_000_000, what="a baud rate",
                           example=f"{key} = 115200")


def _temperature_range(section: Section, key: str) -> tuple[float, float] | None:
    return section.pair(key, Kind.TEMPERATURE, label=key,
                        example=f'{key} = ["-40 degC", "180 degC"]')


def _choice(*choices: str, what: str) -> Callable[[Section, str], str | None]:
    def read(section: Section, key: str) -> str | None:
        return section.choice(key, choices, what=what, example=f'{key} = "{choices[0]}"')
    return read


def _integer(low: int, high: int, what: str) -> Callable[[Section, str], int | None]:
    def read(section: Section, key: str) -> int | None:
        return section.integer(key, low, high, what=what, example=f"{key} = {low}")
    return read


def _boolean(what: str) -> Callable[[Section, str], bool | None]:
    def read(section: Section, key: str) -> bool | None:
        return section.boolean(key, what=what, example=f"{key} = true")
    return read


def _number(low: float, high: float, what: str) -> Callable[[Section, str], float | None]:
    def read(section: Section, key: str) -> float | None:
        return section.number(key, low, high, what=what, example=f"{key} = {low:g}")
    return read


def _alarms(section: Section, key: str) -> tuple[int, ...] | None:
    value = section.mapping.get(key)
    if not isinstance(value, list) or not all(
            isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 8
            for item in value):
        section.wrong(key, f"{key} must list alarm numbers", "alarm numbers 1 to 8",
                      f"{key} = [1, 2]")
        return None
    return tuple(value)


def _pressure_unit(section: Section, key: str) -> str | None:
    value = section.text(key, required=False, what="a pressure unit", example=f'{key} = "psi"')
    if value is not None and unit_factor(value, "Pa") is None:
        section.wrong(key, f"{key} = \"{value}\" is not a pressure unit",
                      "psi, kPa, bar, mbar or Pa", f'{key} = "psi"')
        return None
    return value


def _unit_id(section: Section, key: str) -> str | None:
    value = section.text(key, required=False, what="an Alicat unit ID", example=f'{key} = "A"',
                         pattern=_UNIT_ID_RE, expected="one letter, A to Z")
    return None if value is None else value.upper()


def _cell(section: Section, key: str) -> str | None:
    """A built-in cell definition's name, or a path to a definition file."""
    value = section.text(key, required=False, what="a cell definition",
                         example=f'{key} = "paper-pouch-0.6Ah"', pattern=_CELL_NAME_RE,
                         expected="the name of a cell definition or a path to one")
    if value is None or "/" in value or value.endswith(".yaml"):
        return value
    names = list(builtin_cells())
    if value not in names:
        section.wrong(key, f"there is no built-in cell {value!r}{did_you_mean(value, names)}",
                      f"one of {', '.join(names)}, or a path to a cell definition",
                      f'{key} = "{names[0]}"')
        return None
    return value


_TIMEOUT = Option("timeout_s", _duration, what="how long to wait for a reply")
_POLL = Option("poll_period_s", _duration, what="how often the daemon reads it")
_BAUD = Option("baudrate", _baudrate)
_TIME_SCALE = Option("time_scale", _number(1e-3, 1e6, "a speed-up factor"),
                     what="how much faster than real time an emulated instrument's clock runs "
                          "(1 on hardware)")
_CHAMBER_RANGE = Option("temperature_range_c", _temperature_range, required=True,
                        what="the temperatures the chamber is rated for")


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """A driver's roles, address form, options and an example table."""

    roles: frozenset[Role]
    address: AddressForm
    options: dict[str, Option]
    example: str


DRIVERS: dict[Driver, DriverSpec] = {
    Driver.KEITHLEY2450: DriverSpec(
        frozenset({Role.POTENTIOSTAT}), VISA,
        {"model": Option("model", _choice(*KEITHLEY_MODELS, what="a 2450-family model")),
         "nplc": Option("nplc", _number(0.01, 10.0, "an integration time in power-line "
                                                     "cycles")),
         "four_wire": Option("four_wire", _boolean("true or false (remote sense)")),
         "timeout": _TIMEOUT, "time_scale": _TIME_SCALE},
        '[instruments.smu-a1]\ndriver = "keithley2450"\n'
        'address = "TCPIP::192.0.2.11::5025::SOCKET"\noptions = { model = "2450" }'),
    Driver.PALMSENS: DriverSpec(
        frozenset({Role.POTENTIOSTAT, Role.EIS}), SERIAL,
        {"model": Option("model", _choice(*PALMSENS_MODELS, what="a PalmSens model code")),
         "channels": Option("channels", _integer(1, 16, "a channel count")),
         "baudrate": _BAUD, "timeout": _TIMEOUT, "time_scale": _TIME_SCALE},
        '[instruments.eis]\ndriver = "palmsens"\naddress = "/dev/ttyACM0"\n'
        'options = { model = "nexus1" }'),
    Driver.ESPEC: DriverSpec(
        frozenset({Role.CHAMBER}), SERIAL,
        {"temperature_range": _CHAMBER_RANGE,
         "rs485_address": Option("rs485_address", _integer(1, 16, "an RS-485 address")),
         "baudrate": _BAUD, "timeout": _TIMEOUT, "poll_period": _POLL},
        '[instruments.chamber]\ndriver = "espec"\naddress = "/dev/ttyUSB0"\n'
        'options = { temperature_range = ["-40 degC", "180 degC"] }'),
    Driver.WATLOW_F4T: DriverSpec(
        frozenset({Role.CHAMBER}), MODBUS_TCP,
        {"temperature_range": _CHAMBER_RANGE,
         "device_id": Option("device_id", _integer(1, 247, "a Modbus device id")),
         "loop": Option("loop", _integer(1, 4, "a control loop number")),
         "alarms": Option("alarms", _alarms),
         "word_order": Option("word_order", _choice(*(order.value for order in WordOrder),
                                                    what="a Modbus word order")),
         "timeout": _TIMEOUT, "poll_period": _POLL},
        '[instruments.chamber]\ndriver = "watlow-f4t"\naddress = "192.0.2.40:502"\n'
        'options = { temperature_range = ["-40 degC", "180 degC"] }'),
    Driver.ALICAT: DriverSpec(
        frozenset({Role.REGULATOR}), SERIAL,
        {"full_scale": Option("full_scale_pa", _pressure, required=True,
                              what="the controller's pressure range"),
         "pressure_unit": Option("pressure_unit", _pressure_unit),
         "unit_id": Option("unit_id", _unit_id), "baudrate": _BAUD, "timeout": _TIMEOUT},
        '[instruments.regulator-a1]\ndriver = "alicat"\naddress = "/dev/ttyUSB1"\n'
        'options = { full_scale = "150 psi", pressure_unit = "psi" }'),
    Driver.MARK10: DriverSpec(
        frozenset({Role.GAUGE}), SERIAL,
        {"compression_positive": Option("compression_positive",
                                        _boolean("true or false (the gauge's polarity)")),
         "bare_unit": Option("bare_unit", _choice(*NEWTONS_PER_UNIT,
                                                  what="a Mark-10 force unit")),
         "baudrate": _BAUD, "timeout": _TIMEOUT, "poll_period": _POLL},
        '[instruments.gauge-a1]\ndriver = "mark10"\naddress = "/dev/ttyUSB2"'),
    Driver.MODEL: DriverSpec(
        frozenset(Role), IN_PROCESS,
        {"cell": Option("cell", _cell),
         "time_scale": _TIME_SCALE,
         "temperature_range": Option("temperature_range_c", _temperature_range),
         "full_scale": Option("full_scale_pa", _pressure)},
        '[instruments.bench]\ndriver = "model"\noptions = { time_scale = 100 }'),
}


def potentiostat_channels(driver: Driver, options: dict[str, Any]) -> int:
    """How many potentiostat channels an instrument has (for the bindings' check)."""
    if driver is Driver.PALMSENS:
        return int(options.get("channels", 1))
    return 1_000_000 if driver is Driver.MODEL else 1

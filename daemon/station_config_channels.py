"""Reading ``[channels.*]``: each cell position's potentiostat channel, chamber, EIS unit, jig
and hard limits, and the rules on sharing instruments between channels.

Sharing: a potentiostat channel serves one cell position; a jig's regulator and gauge belong
to that jig; chambers and EIS units may serve any number of channels (the daemon's
shared-chamber rule, docs/safety.md, keeps them consistent). An instrument that is one
channel's potentiostat may be that channel's EIS unit, and no other channel's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.drivers.keithley2450_models import MODELS as KEITHLEY_MODELS
from cellrig.protocols.program import Limit, Limits
from cellrig.protocols.quantities import Kind
from cellrig.protocols.suggest import did_you_mean

from .station_config_drivers import DRIVERS, potentiostat_channels
from .station_config_fields import Findings, Section
from .station_config_model import (
    ChannelConfig,
    Driver,
    InstrumentConfig,
    JigConfig,
    JigType,
    PotentiostatBinding,
    Role,
)

CHANNEL_EXAMPLE = """[channels.A1]
potentiostat = "smu-a1"
chamber = "chamber"
eis = "eis"
limits = { voltage = ["2.0 V", "4.4 V"], current = "100 mA" }"""
JIG_EXAMPLE = """[channels.A1.jig]
kind = "pneumatic"
regulator = "regulator-a1"
gauge = "gauge-a1"
cell_area = "93.28 cm^2"
piston_area = "0.1 m^2"
preload = "150 N"
max_force = "100 kN\""""
LIMITS_EXAMPLE = """[channels.A1.limits]
voltage = ["2.0 V", "4.4 V"]
current = "100 mA"
temperature = ["-20 degC", "80 degC"]
pressure = ["0.5 MPa", "8 MPa"]"""
_WINDOW_KINDS = {"voltage": Kind.VOLTAGE, "temperature": Kind.TEMPERATURE,
                 "pressure": Kind.PRESSURE}
_LONG_EXAMPLES = {
    "voltage": 'voltage = { range = ["2.0 V", "4.4 V"], warn = ["2.1 V", "4.3 V"], '
               'delay = "2 s" }',
    "temperature": 'temperature = { range = ["-20 degC", "80 degC"], warn = ["-10 degC", '
                   '"70 degC"], delay = "30 s" }',
    "pressure": 'pressure = { range = ["0.5 MPa", "8 MPa"], warn = ["1 MPa", "6 MPa"], '
                'delay = "5 s" }',
}


_CHANNEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED_CHANNEL_NAMES = frozenset({"cmd", "reply"})


class ChannelReader:
    """Reads every channel against the instruments already read."""

    def __init__(self, findings: Findings, drivers: Mapping[str, Driver],
                 instruments: Mapping[str, InstrumentConfig], declared: set[str]) -> None:
        self.findings = findings
        self.drivers = drivers
        self.instruments = instruments
        self.declared = declared
        """every instrument name of the file, valid or not"""
        self.referenced: set[str] = set()
        self.potentiostats: dict[tuple[str, int], str] = {}
        self.jig_parts: dict[str, str] = {}
        self.eis_users: dict[str, list[tuple[str, Section]]] = {}

    def read(self, table: Mapping[str, Any]) -> dict[str, ChannelConfig]:
        channels: dict[str, ChannelConfig] = {}
        for name, value in table.items():
            path = ("channels", name)
            if not isinstance(value, dict):
                self.findings.error(path, f"channel {name!r} must be a table, not a value",
                                    expected="a [channels.NAME] table", example=CHANNEL_EXAMPLE)
                continue
            if not _CHANNEL_NAME_RE.fullmatch(name) or name in _RESERVED_CHANNEL_NAMES:
                # channel names are MQTT topic levels and export file names
                self.findings.error(path, f"{name!r} cannot name a channel",
                                    expected="letters, digits, '_', '.' and '-', starting with a "
                                    "letter or digit; not 'cmd' or 'reply' (MQTT topic levels "
                                    "of the station)", example=CHANNEL_EXAMPLE)
                continue
            channel = self.channel(Section(self.findings, path, value, f"[channels.{name}]",
                                           CHANNEL_EXAMPLE), name)
            if channel is not None:
                channels[name] = channel
        self.check_eis_sharing()
        return channels

    def channel(self, section: Section, name: str) -> ChannelConfig | None:
        section.check_keys(("potentiostat", "chamber", "eis", "jig", "limits",
                            "reference_offset"))
        binding = self.binding(section, name)
        chamber = self.reference(section, "chamber", Role.CHAMBER)
        eis = self.reference(section, "eis", Role.EIS)
        if eis is not None:
            self.eis_users.setdefault(eis, []).append((name, section))
        jig_table = section.table("jig", example=JIG_EXAMPLE)
        jig = None if jig_table is None else self.jig(
            Section(self.findings, section.at("jig"), jig_table, f"[channels.{name}.jig]",
                    JIG_EXAMPLE), name)
        limits_table = section.table("limits", required=True, example=LIMITS_EXAMPLE,
                                     what="the channel's hard limits")
        limits = None if limits_table is None else self.limits(
            Section(self.findings, section.at("limits"), limits_table,
                    f"[channels.{name}.limits]", LIMITS_EXAMPLE), binding)
        offset = section.quantity("reference_offset", Kind.VOLTAGE, what="reference_offset",
                                  example='reference_offset = "0.62 V"')
        if binding is None or limits is None or (jig_table is not None and jig is None):
            return None
        if any(key in section.mapping and value is None
               for key, value in (("chamber", chamber), ("eis", eis),
                                  ("reference_offset", offset))):
            return None
        return ChannelConfig(name=name, potentiostat=binding, limits=limits, chamber=chamber,
                             eis=eis, jig=jig, reference_offset_v=offset or 0.0)

    # -- instruments a channel uses ---------------------------------------------------------

    def reference(self, section: Section, key: str, role: Role, *,
                  value: object = None, path_key: str | None = None) -> str | None:
        """An instrument's name for ``role``; None (with an error) if it cannot play it."""
        raw = section.mapping.get(key) if value is None else value
        if raw is None:
            return None
        able = [name for name, driver in self.drivers.items() if role in DRIVERS[driver].roles]
        example = f'{key} = "{able[0]}"' if able else section.example
        where = path_key or key
        if not isinstance(raw, str):
            section.wrong(where, f"{key} must name an instrument, not {raw!r}",
                          f"the name of an instrument ({role.value})", example)
            return None
        self.referenced.add(raw)
        if raw in self.declared and raw not in self.drivers:
            return None  # its own table is wrong, and said so
        if raw not in self.drivers:
            section.wrong(where, f"there is no instrument {raw!r}{did_you_mean(raw, able)}",
                          f"an [instruments.*] name: {', '.join(able) or 'none fits'}", example)
            return None
        driver = self.drivers[raw]
        if role not in DRIVERS[driver].roles:
            fitting = sorted(d.value for d, spec in DRIVERS.items() if role in spec.roles)
            section.wrong(where, f"instrument {raw!r} ({driver.value}) cannot be a {role.value}",
                          f"an instrument whose driver is {', '.join(fitting)}", example)
            return None
        return raw

    def binding(self, section: Section, channel: str) -> PotentiostatBinding | None:
        raw = section.mapping.get("potentiostat")
        if raw is None:
            section.missing("potentiostat", "the instrument the cell is connected to")
            return None
        number = 1
        if isinstance(raw, dict):
            inner = Section(self.findings, section.at("potentiostat"), raw,
                            f"the potentiostat of [channels.{channel}]",
                            'potentiostat = { instrument = "mes", channel = 2 }')
            inner.check_keys(("instrument", "channel"))
            number = inner.integer("channel", 1, 64, what="a potentiostat channel number",
                                   example="channel = 2") or 0
            if "instrument" not in raw:
                inner.missing("instrument", "the instrument's name")
                return None
            instrument = self.reference(inner, "instrument", Role.POTENTIOSTAT)
        else:
            instrument = self.reference(section, "potentiostat", Role.POTENTIOSTAT)
        if instrument is None or number == 0:
            return None
        config = self.instruments.get(instrument)
        available = potentiostat_channels(self.drivers[instrument],
                                          dict(config.options) if config else {})
        if number > available:
            section.wrong("potentiostat", f"instrument {instrument!r} has {available} "
                          f"channel(s), not {number}", f"a channel from 1 to {available}",
                          'potentiostat = { instrument = "mes", channel = 2 }')
            return None
        taken = self.potentiostats.get((instrument, number))
        if taken is not None:
            section.wrong("potentiostat", f"channel {channel!r} uses {instrument!r} channel "
                          f"{number}, which channel {taken!r} uses already",
                          "one cell position per potentiostat channel", section.example)
            return None
        self.potentiostats[(instrument, number)] = channel
        return PotentiostatBinding(instrument, number)

    def check_eis_sharing(self) -> None:
        """An EIS unit that is also a potentiostat serves only the channel it is wired to."""
        for instrument, users in self.eis_users.items():
            if self.drivers.get(instrument) is Driver.MODEL:
                continue
            owners = [channel for (name, _), channel in self.potentiostats.items()
                      if name == instrument]
            for channel, section in users:
                if owners and channel not in owners:
                    section.wrong("eis", f"instrument {instrument!r} is the potentiostat of "
                                  f"channel {owners[0]!r}; it cannot measure the impedance of "
                                  f"channel {channel!r}", "a separate EIS unit",
                                  'eis = "eis"')

    # -- the jig ----------------------------------------------------------------------------

    def jig(self, section: Section, channel: str) -> JigConfig | None:
        section.check_keys(("kind", "regulator", "gauge", "cell_area", "piston_area", "preload",
                            "max_force", "max_pressure"))
        kind_text = section.choice("kind", [kind.value for kind in JigType],
                                   what="a kind of jig", example='kind = "pneumatic"')
        if "kind" not in section.mapping:
            section.missing("kind", "pneumatic or bolted")
        kind = None if kind_text is None else JigType(kind_text)
        gauge = self.jig_part(section, "gauge", Role.GAUGE, channel, required=True)
        regulator = None
        if kind is JigType.PNEUMATIC:
            regulator = self.jig_part(section, "regulator", Role.REGULATOR, channel,
                                      required=True)
        elif kind is JigType.BOLTED:
            if isinstance(section.mapping.get("regulator"), str):
                self.referenced.add(section.mapping["regulator"])
            for key in ("regulator", "piston_area", "preload"):
                if key in section.mapping:
                    section.findings.error(section.at(key), f"a bolted jig has no {key}",
                                           key=True, expected="kind = \"pneumatic\" for a "
                                           "jig with a regulator and piston",
                                           example=section.example)
        area = section.quantity("cell_area", Kind.AREA, what="cell_area", required=True,
                                positive=True, example='cell_area = "93.28 cm^2"',
                                meaning="the cell's active area")
        piston = None
        if kind is JigType.PNEUMATIC:
            piston = section.quantity("piston_area", Kind.AREA, what="piston_area",
                                      required=True, positive=True,
                                      example='piston_area = "0.1 m^2"',
                                      meaning="the area the gas pressure acts on")
        preload = section.force("preload", what="preload") if kind is JigType.PNEUMATIC else 0.0
        max_force = section.force("max_force", what="max_force")
        max_pressure = section.quantity("max_pressure", Kind.PRESSURE, what="max_pressure",
                                        positive=True, example='max_pressure = "10 MPa"')
        if "max_force" not in section.mapping and "max_pressure" not in section.mapping:
            section.missing("max_force", "or max_pressure: the jig's interlock",
                            'max_force = "100 kN"')
        if max_force == 0.0:
            section.wrong("max_force", "max_force must be more than zero", "a positive force",
                          'max_force = "100 kN"')
            return None
        needed = [kind, gauge, area] + ([regulator, piston] if kind is JigType.PNEUMATIC else [])
        if any(value is None for value in needed) or (
                max_force is None and max_pressure is None):
            return None
        assert kind is not None and gauge is not None and area is not None
        geometry = JigGeometry(cell_area_m2=area,
                               max_force_n=math.inf if max_force is None else max_force,
                               max_stack_pressure_pa=math.inf if max_pressure is None
                               else max_pressure,
                               piston_area_m2=piston, preload_n=preload or 0.0)
        return JigConfig(type=kind, gauge=gauge, geometry=geometry, regulator=regulator)

    def jig_part(self, section: Section, key: str, role: Role, channel: str, *,
                 required: bool) -> str | None:
        if key not in section.mapping:
            if required:
                section.missing(key, f"the {role.value}'s instrument")
            return None
        name = self.reference(section, key, role)
        if name is None or self.drivers[name] is Driver.MODEL:
            return name
        owner = self.jig_parts.get(name)
        if owner is not None:
            section.wrong(key, f"{role.value} {name!r} belongs to the jig of channel {owner!r}",
                          f"one {role.value} per jig", section.example)
            return None
        self.jig_parts[name] = channel
        return name

    # -- hard limits ------------------------------------------------------------------------

    def limits(self, section: Section, binding: PotentiostatBinding | None) -> Limits | None:
        section.check_keys(("voltage", "current", "temperature", "pressure"))
        for key in ("voltage", "current"):
            if key not in section.mapping:
                section.missing(key, f"the channel's {key} limit")
        voltage = self.window(section, "voltage")
        current = self.maximum(section, "current")
        temperature = self.window(section, "temperature")
        pressure = self.window(section, "pressure")
        self.within_instrument(section, binding, voltage, current)
        found = {"voltage": voltage, "current": current, "temperature": temperature,
                 "pressure": pressure}
        if any(key in section.mapping and value is None for key, value in found.items()):
            return None
        if voltage is None or current is None:
            return None
        return Limits(voltage_v=voltage, current_a=current, temperature_c=temperature,
                      pressure_pa=pressure)

    def window(self, section: Section, key: str) -> Limit | None:
        raw = section.mapping.get(key)
        if raw is None:
            return None
        kind = _WINDOW_KINDS[key]
        example = LIMITS_EXAMPLE.splitlines()[("voltage", "current", "temperature",
                                               "pressure").index(key) + 1]
        delay = 0.0
        warn: tuple[float, float] | None = None
        if isinstance(raw, dict):
            inner = Section(self.findings, section.at(key), raw, f"the {key} limit",
                            _LONG_EXAMPLES[key])
            inner.check_keys(("range", "warn", "delay"))
            if "range" not in raw:
                inner.missing("range", "[low, high]")
                return None
            pair = inner.pair("range", kind, label=f"{key} range", example=example)
            warn = (inner.pair("warn", kind, label=f"{key} warning", example=example)
                    if "warn" in raw else None)
            delay = inner.quantity("delay", Kind.TIME, what="delay",
                                   example='delay = "2 s"') or 0.0
            if pair is not None and warn is not None and not (
                    pair[0] <= warn[0] < warn[1] <= pair[1]):
                inner.wrong("warn", f"the {key} warning levels must lie inside the range",
                            "warn = [low, high] within range", inner.example)
                return None
        else:
            pair = section.pair(key, kind, label=f"{key} limit", example=example)
        if pair is None:
            return None
        return Limit(pair[0], pair[1], None if warn is None else warn[0],
                     None if warn is None else warn[1], delay)

    def maximum(self, section: Section, key: str) -> Limit | None:
        raw = section.mapping.get(key)
        if raw is None:
            return None
        example = 'current = "100 mA"'
        if isinstance(raw, dict):
            inner = Section(self.findings, section.at(key), raw, f"the {key} limit",
                            'current = { max = "100 mA", warn = "90 mA", delay = "1 s" }')
            inner.check_keys(("max", "warn", "delay"))
            if "max" not in raw:
                inner.missing("max", "the largest current")
                return None
            high = inner.quantity("max", Kind.CURRENT, what="current limit", positive=True,
                                  example=example)
            warn = inner.quantity("warn", Kind.CURRENT, what="current warning", positive=True,
                                  example=example)
            delay = inner.quantity("delay", Kind.TIME, what="delay",
                                   example='delay = "2 s"') or 0.0
            if high is not None and warn is not None and warn > high:
                inner.wrong("warn", "the current warning level must not exceed the maximum",
                            "warn below max", inner.example)
                return None
            return None if high is None else Limit(None, high, None, warn, delay)
        high = section.quantity(key, Kind.CURRENT, what="current limit", positive=True,
                                example=example)
        return None if high is None else Limit(None, high)

    def within_instrument(self, section: Section, binding: PotentiostatBinding | None,
                          voltage: Limit | None, current: Limit | None) -> None:
        """Hard limits a Keithley cannot source are refused: the channel's limits are set in
        the instrument as its own protection."""
        if binding is None or self.drivers.get(binding.instrument) is not Driver.KEITHLEY2450:
            return
        config = self.instruments.get(binding.instrument)
        model = KEITHLEY_MODELS[str(config.options.get("model", "2450")) if config else "2450"]
        if voltage is not None and voltage.high is not None and (
                max(abs(voltage.high), abs(voltage.low or 0.0)) > model.max_voltage_v):
            section.wrong("voltage", f"the voltage limit is beyond the {model.max_voltage_v:g} V "
                          f"of a Keithley {model.model}",
                          f"within ±{model.max_voltage_v:g} V", 'voltage = ["2.0 V", "4.4 V"]')
        if current is not None and current.high is not None and (
                current.high > model.max_current_a):
            section.wrong("current", f"the current limit {current.high:g} A is more than a "
                          f"Keithley {model.model} can source ({model.max_current_a:g} A)",
                          f"at most {model.max_current_a:g} A", 'current = "1 A"')

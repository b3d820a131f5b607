"""``station.toml``: the station's name and data folder, its instruments, its channels with
their hard limits, and the sinks; read with ``tomllib`` and checked at once.

Every problem of the file is reported in one :class:`~cellrig.errors.ConfigError`, each a
:class:`~cellrig.errors.Diagnostic` naming the file, the line and column of the key or value
it is about (:mod:`~cellrig.daemon.station_config_locate` finds them, since ``tomllib`` keeps
no positions), what was expected and a correct example. Values with units are written as in
protocols (``"4.4 V"``, ``"100 mA"``, ``"2 MPa"``, ``"60 degC"``) and parsed with the same
parser. docs/station.md is the reference of every key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellrig.errors import ConfigError, Diagnostic, Severity, SourceLocation
from cellrig.protocols.quantities import Kind

from .station_config_channels import CHANNEL_EXAMPLE, ChannelReader
from .station_config_drivers import DRIVERS, IN_PROCESS
from .station_config_fields import Findings, Section
from .station_config_influx import read_influxdb
from .station_config_locate import TomlPlaces
from .station_config_model import (
    ChannelConfig,
    Driver,
    InfluxDbSinkConfig,
    InstrumentConfig,
    MqttSinkConfig,
    StationConfig,
)

__all__ = ["StationConfig", "load_station", "load_station_text"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MQTT_RE = re.compile(r"mqtts?://[A-Za-z0-9_.-]+(:\d{1,5})?")
_TOPIC_RE = re.compile(r"[^#+/\s][^#+\s]*")
_TOML_ERROR_RE = re.compile(
    r"^(?P<message>.*?)\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")

TOP_EXAMPLE = """[station]
name = "assb-lab-3"
data_folder = "data"
[instruments.smu-a1]
driver = "keithley2450"
address = "TCPIP::192.0.2.11::5025::SOCKET"
[channels.A1]
potentiostat = "smu-a1"
limits = { voltage = ["2.0 V", "4.4 V"], current = "100 mA" }"""
STATION_EXAMPLE = '[station]\nname = "assb-lab-3"\ndata_folder = "/var/lib/cellrig"'
INSTRUMENT_EXAMPLE = ('[instruments.smu-a1]\ndriver = "keithley2450"\n'
                      'address = "TCPIP::192.0.2.11::5025::SOCKET"')
SINKS_EXAMPLE = """[sinks.influxdb]
url = "http://localhost:8086"
org = "lab"
bucket = "cellrig"
token_file = "/etc/cellrig/influxdb.token"

[sinks.mqtt]
url = "mqtts://broker.lab.example:8883"
topic_prefix = "cellrig"
username = "assb-lab-3"
password_file = "/etc/cellrig/mqtt.password\""""


def load_station(path: str | Path) -> StationConfig:
    """Read and check a station configuration file; raises :class:`ConfigError` listing
    every problem (warnings are kept in ``StationConfig.warnings``)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(SourceLocation(str(path), 1, 1),
                                      f"cannot read the station configuration: {exc}")]
                          ) from exc
    return load_station_text(text, str(path), folder=source.resolve().parent, source=source)


def load_station_text(text: str, filename: str = "station.toml", *,
                      folder: Path | None = None, source: Path | None = None) -> StationConfig:
    """Check a station configuration given as text; relative paths in it are taken from
    ``folder`` (the current folder if None)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_error(exc, text, filename)]) from None
    findings = Findings(filename, text, TomlPlaces(text))
    config = _StationReader(findings, folder or Path.cwd()).read(data, source)
    errors = [d for d in findings.diagnostics if d.severity is Severity.ERROR]
    if errors or config is None:
        raise ConfigError(findings.diagnostics)
    return dataclasses.replace(config, warnings=tuple(findings.diagnostics))


def _syntax_error(error: tomllib.TOMLDecodeError, text: str, filename: str) -> Diagnostic:
    """A TOML syntax error at the line and column ``tomllib`` names in its message."""
    message = str(error)
    match = _TOML_ERROR_RE.match(message)
    lines = text.splitlines()
    if match is None:
        line, column = max(1, len(lines)), 1
    else:
        message = match.group("message")
        line, column = int(match.group("line")), int(match.group("column"))
    source_line = lines[line - 1] if 0 < line <= len(lines) else None
    return Diagnostic(SourceLocation(filename, line, column),
                      f"not valid TOML: {message[:1].lower()}{message[1:]}",
                      expected="TOML: key = value lines under [table] headers; text in quotes",
                      example=STATION_EXAMPLE, source_line=source_line)


class _StationReader:
    def __init__(self, findings: Findings, folder: Path) -> None:
        self.findings = findings
        self.folder = folder
        self.written: dict[Path, str] = {}

    def read(self, data: Mapping[str, Any], source: Path | None) -> StationConfig | None:
        top = Section(self.findings, (), data, "the station configuration", TOP_EXAMPLE)
        top.check_keys(("station", "instruments", "channels", "sinks"))
        station = self.table(top, "station", "the station's name and data folder",
                             STATION_EXAMPLE)
        name, data_folder = self.station(station) if station is not None else (None, None)
        instruments_table = self.table(top, "instruments", "the instruments", INSTRUMENT_EXAMPLE)
        drivers, instruments = self.instruments(instruments_table or {})
        channels_table = self.table(top, "channels", "at least one channel", CHANNEL_EXAMPLE)
        reader = ChannelReader(self.findings, drivers, instruments,
                               set(instruments_table or {}))
        channels = reader.read(channels_table or {})
        if channels_table == {}:
            self.findings.error(("channels",), "a station needs at least one channel",
                                key=True, example=CHANNEL_EXAMPLE)
        sinks = top.table("sinks", example=SINKS_EXAMPLE)
        influxdb, mqtt = self.sinks(sinks) if sinks is not None else (None, None)
        self.unused(drivers, reader.referenced)
        if name is None or data_folder is None:
            return None
        folder = self.path(data_folder)
        normalised = _normalised(name, folder, instruments, channels, influxdb, mqtt,
                                 self.written)
        return StationConfig(
            name=name, data_folder=folder, instruments=instruments,
            channels=channels, influxdb=influxdb, mqtt=mqtt,
            sha256=hashlib.sha256(normalised.encode()).hexdigest(), source=source)

    def table(self, top: Section, key: str, what: str, example: str) -> Mapping[str, Any] | None:
        if key not in top.mapping:
            self.findings.error((key,), f"the file needs a [{key}] table ({what})",
                                example=example)
            return None
        return top.table(key, example=example)

    def path(self, text: str) -> Path:
        """A path from the file, relative ones taken from the file's folder."""
        path = Path(text).expanduser()
        resolved = path if path.is_absolute() else self.folder / path
        self.written[resolved] = text
        return resolved

    def station(self, table: Mapping[str, Any]) -> tuple[str | None, str | None]:
        section = Section(self.findings, ("station",), table, "[station]", STATION_EXAMPLE)
        section.check_keys(("name", "data_folder"))
        name = section.text("name", required=True, what="a station name",
                            example='name = "assb-lab-3"', pattern=_NAME_RE,
                            expected="letters, digits, '-', '_' and '.' (it names MQTT "
                                     "topics and files)")
        folder = section.text("data_folder", required=True,
                              what="the folder for the store and exports",
                              example='data_folder = "/var/lib/cellrig"')
        return name, folder

    def instruments(self, table: Mapping[str, Any]
                    ) -> tuple[dict[str, Driver], dict[str, InstrumentConfig]]:
        """Every instrument: ``drivers`` has each one whose driver is known (for the
        channels' checks), ``configs`` each one that is wholly valid."""
        drivers: dict[str, Driver] = {}
        configs: dict[str, InstrumentConfig] = {}
        for name, value in table.items():
            path = ("instruments", name)
            if not isinstance(value, dict):
                self.findings.error(path, f"instrument {name!r} must be a table, not a value",
                                    expected="an [instruments.NAME] table",
                                    example=INSTRUMENT_EXAMPLE)
                continue
            if not _NAME_RE.fullmatch(name):
                self.findings.error(path, f"{name!r} cannot name an instrument", key=True,
                                    expected="letters, digits, '-', '_' and '.'",
                                    example=INSTRUMENT_EXAMPLE)
            section = Section(self.findings, path, value, f"instrument {name!r}",
                              INSTRUMENT_EXAMPLE)
            config = self.instrument(section, name, drivers)
            if config is not None:
                configs[name] = config
        return drivers, configs

    def instrument(self, section: Section, name: str,
                   drivers: dict[str, Driver]) -> InstrumentConfig | None:
        section.check_keys(("driver", "address", "options"))
        if "driver" not in section.mapping:
            section.missing("driver", "which driver talks to it")
            return None
        text = section.choice("driver", [driver.value for driver in Driver],
                              what="a driver cellrig has", example='driver = "keithley2450"')
        if text is None:
            return None
        driver = Driver(text)
        drivers[name] = driver
        spec = DRIVERS[driver]
        section.example = spec.example
        address: str | None = "model"
        if spec.address is not IN_PROCESS:
            address = section.text("address", required=True, what=spec.address.expected,
                                   example=spec.address.example, pattern=spec.address.pattern,
                                   expected=spec.address.expected)
        elif "address" in section.mapping:
            address = section.text("address", required=False, what="a name for the model",
                                   example='address = "bench"')
        options = self.options(section, name, driver)
        if address is None or options is None:
            return None
        return InstrumentConfig(name, driver, address, options)

    def options(self, section: Section, name: str, driver: Driver) -> dict[str, Any] | None:
        spec = DRIVERS[driver]
        raw = section.table("options", example=spec.example)
        if raw is None and "options" in section.mapping:
            return None
        options = Section(self.findings, section.at("options"), raw or {},
                          f"the options of {name!r} ({driver.value})", spec.example)
        options.check_keys(spec.options)
        parsed: dict[str, Any] = {}
        complete = all(key in spec.options for key in options.mapping)
        for key, option in spec.options.items():
            if key not in options.mapping:
                if option.required:
                    section.missing(f"options.{key}", option.what)
                    complete = False
                continue
            value = option.read(options, key)
            if value is None:
                complete = False
            else:
                parsed[option.name] = value
        return parsed if complete else None

    def sinks(self, table: Mapping[str, Any]
              ) -> tuple[InfluxDbSinkConfig | None, MqttSinkConfig | None]:
        section = Section(self.findings, ("sinks",), table, "[sinks]", SINKS_EXAMPLE)
        section.check_keys(("influxdb", "mqtt"))
        influxdb = mqtt = None
        influx_table = section.table("influxdb", example=SINKS_EXAMPLE)
        if influx_table is not None:
            influxdb = read_influxdb(self.findings, influx_table, self.path)
        mqtt_table = section.table("mqtt", example=SINKS_EXAMPLE)
        if mqtt_table is not None:
            broker = Section(self.findings, ("sinks", "mqtt"), mqtt_table, "[sinks.mqtt]",
                             SINKS_EXAMPLE.split("\n\n")[1])
            broker.check_keys(("url", "topic_prefix", "username", "password_file", "ca_file",
                               "cert_file", "key_file", "telemetry_interval"))
            url = broker.text("url", required=True, what="an mqtt:// or mqtts:// URL",
                              example='url = "mqtts://broker.lab.example:8883"',
                              pattern=_MQTT_RE)
            prefix = broker.text("topic_prefix", required=False, what="an MQTT topic prefix",
                                 example='topic_prefix = "cellrig"', pattern=_TOPIC_RE,
                                 expected="topic levels without '#', '+' or a leading '/'")
            username = broker.text("username", required=False, what="a user name",
                                   example='username = "assb-lab-3"')
            password = broker.text("password_file", required=False,
                                   what="the file holding the password",
                                   example='password_file = "/etc/cellrig/mqtt.password"')
            tls = self.mqtt_tls(broker, url)
            interval_s = broker.quantity("telemetry_interval", Kind.TIME, positive=True,
                                         what="telemetry_interval",
                                         example='telemetry_interval = "1 s"')
            if (url and (prefix or "topic_prefix" not in mqtt_table) and tls is not None
                    and (interval_s is not None or "telemetry_interval" not in mqtt_table)):
                mqtt = MqttSinkConfig(url, prefix or "cellrig", username,
                                      None if password is None else self.path(password),
                                      *tls, telemetry_interval_s=interval_s or 1.0)
        return influxdb, mqtt

    def mqtt_tls(self, broker: Section, url: str | None
                 ) -> tuple[Path | None, Path | None, Path | None] | None:
        """``ca_file``, ``cert_file`` and ``key_file`` of [sinks.mqtt] (None if one is wrong):
        TLS files need an ``mqtts://`` URL, and a client certificate needs its key."""
        files: list[Path | None] = []
        complete = True
        for key in ("ca_file", "cert_file", "key_file"):
            text = broker.text(key, required=False, what="a PEM file",
                               example=f'{key} = "/etc/cellrig/mqtt-{key[:-5]}.pem"')
            complete = complete and (text is not None or key not in broker.mapping)
            if text is not None and url is not None and not url.startswith("mqtts://"):
                broker.wrong(key, f"{key} is for TLS, which needs an mqtts:// url",
                             "url = \"mqtts://HOST:8883\" with TLS files, or no TLS files",
                             'url = "mqtts://broker.lab.example:8883"')
                complete = False
            files.append(None if text is None else self.path(text))
        if (files[1] is None) != (files[2] is None) and complete:
            missing = "key_file" if files[2] is None else "cert_file"
            broker.missing(missing, "a client certificate needs both cert_file and key_file")
            complete = False
        return (files[0], files[1], files[2]) if complete else None

    def unused(self, drivers: Mapping[str, Driver], referenced: set[str]) -> None:
        for name in drivers:
            if name not in referenced:
                self.findings.warning(("instruments", name),
                                      f"instrument {name!r} is not used by any channel",
                                      key=True)


def _normalised(name: str, data_folder: Path, instruments: Mapping[str, InstrumentConfig],
                channels: Mapping[str, ChannelConfig], influxdb: InfluxDbSinkConfig | None,
                mqtt: MqttSinkConfig | None, written: Mapping[Path, str]) -> str:
    """The configuration as canonical JSON: what the hash is taken of. Values are in SI
    units, paths as written (the same file hashes the same wherever it lies)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {field.name: plain(getattr(value, field.name))
                    for field in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, Path):
            return written.get(value, str(value))
        return value

    document = {
        "station": {"name": name, "data_folder": plain(data_folder)},
        "instruments": plain(dict(instruments)),
        "channels": plain(dict(channels)),
        "sinks": {"influxdb": plain(influxdb), "mqtt": plain(mqtt)},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))

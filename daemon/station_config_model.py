"""The station configuration once read and checked: plain values in SI units.

:func:`~cellrig.daemon.station_config.load_station` builds a :class:`StationConfig` from
``station.toml``; the daemon builds its instruments, channels, rigs and supervisors from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cellrig.drivers.jig_geometry import JigGeometry
from cellrig.errors import Diagnostic
from cellrig.protocols.program import Limits


class Driver(StrEnum):
    """The instrument drivers a station can name."""

    KEITHLEY2450 = "keithley2450"
    PALMSENS = "palmsens"
    ESPEC = "espec"
    WATLOW_F4T = "watlow-f4t"
    ALICAT = "alicat"
    MARK10 = "mark10"
    MODEL = "model"
    """the simulated bench, in-process (no wire)"""


class Role(StrEnum):
    """What an instrument does for a channel."""

    POTENTIOSTAT = "potentiostat"
    EIS = "EIS unit"
    CHAMBER = "chamber"
    REGULATOR = "pressure regulator"
    GAUGE = "force gauge"


class JigType(StrEnum):
    """How a jig holds the stack."""

    PNEUMATIC = "pneumatic"
    """an Alicat regulator drives a piston; a Mark-10 gauge closes the loop"""
    BOLTED = "bolted"
    """screws hold the stack; a Mark-10 gauge only measures"""


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    """One instrument: its driver, address and driver options (SI values, ``_s``, ``_pa``
    and ``_c`` names, as the driver takes them)."""

    name: str
    driver: Driver
    address: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PotentiostatBinding:
    """Which potentiostat channel a cell position uses (1 on a single-channel instrument)."""

    instrument: str
    channel: int = 1


@dataclass(frozen=True, slots=True)
class JigConfig:
    """A channel's stack-pressure jig: its instruments and geometry."""

    type: JigType
    gauge: str
    geometry: JigGeometry
    regulator: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """One cell position: its potentiostat channel, the chamber, jig and EIS unit it uses, its
    hard limits, and the offset that converts its voltages to the reference (a Li-In counter
    electrode sits about 0.62 V above Li+/Li)."""

    name: str
    potentiostat: PotentiostatBinding
    limits: Limits
    chamber: str | None = None
    eis: str | None = None
    jig: JigConfig | None = None
    reference_offset_v: float = 0.0


class InfluxApi(StrEnum):
    """Which InfluxDB write API a station uses."""

    V1 = "v1"
    """InfluxDB 1.x: database, retention policy, user name and password (``/write``)"""
    V2 = "v2"
    """InfluxDB 2.x/3.x (and VictoriaMetrics): org, bucket and token (``/api/v2/write``)"""


@dataclass(frozen=True, slots=True)
class InfluxDbSinkConfig:
    """Where the forwarder streams the store for Grafana (docs/influxdb.md). The 1.x API
    uses ``database``, ``retention_policy`` (the database's default when None),
    ``username`` and ``password_file``; the 2.x API ``org``, ``bucket`` and ``token_file``.
    Secrets may come from the environment instead (``CELLRIG_INFLUXDB_PASSWORD``,
    ``CELLRIG_INFLUXDB_TOKEN``)."""

    url: str
    api: InfluxApi = InfluxApi.V2
    org: str | None = None
    bucket: str | None = None
    token_file: Path | None = None
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    """the authority that signed an https server's certificate (the system's when None)"""


@dataclass(frozen=True, slots=True)
class MqttSinkConfig:
    """The broker live values and commands go through (docs/mqtt.md). ``mqtts://`` URLs use
    TLS: ``ca_file`` names the authority that signed the broker's certificate (the system's
    authorities when None), ``cert_file`` and ``key_file`` a client certificate for brokers
    that ask for one. Telemetry goes out at most once per ``telemetry_interval_s`` per
    channel, with the latest values."""

    url: str
    topic_prefix: str = "cellrig"
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    telemetry_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class StationConfig:
    """A whole station, checked. ``sha256`` is the hash of the normalised configuration
    (independent of comments, layout, key order and how units are written): the value a
    job's provenance records."""

    name: str
    data_folder: Path
    instruments: Mapping[str, InstrumentConfig]
    channels: Mapping[str, ChannelConfig]
    influxdb: InfluxDbSinkConfig | None
    mqtt: MqttSinkConfig | None
    sha256: str
    source: Path | None = None
    warnings: tuple[Diagnostic, ...] = ()
    """findings that do not stop the station (an instrument no channel uses, …)"""

    def users(self, instrument: str) -> list[str]:
        """The channels that use an instrument, in any role."""
        found = []
        for channel in self.channels.values():
            jig = channel.jig
            names = {channel.potentiostat.instrument, channel.chamber, channel.eis,
                     None if jig is None else jig.gauge, None if jig is None else jig.regulator}
            if instrument in names:
                found.append(channel.name)
        return found

"""How cellrig reaches an MQTT broker: the URL, the account, TLS, and an aiomqtt client for
MQTT 5 (request/response needs its response-topic and correlation-data properties).

The station's bridge (:mod:`~cellrig.daemon.mqtt_bridge`) and the fleet client
(:mod:`~cellrig.daemon.fleet`) both build their clients here, so both read passwords the same
way (from a file, never from the command line or the station file) and both check the
broker's certificate the same way.
"""

from __future__ import annotations

import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from cellrig.errors import CellrigError

from .station_config_model import MqttSinkConfig

_URL_RE = re.compile(r"(?P<scheme>mqtts?)://(?:(?P<user>[^@/:\s]+)@)?"
                     r"(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?/?")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: Publishes in flight at once before aiomqtt warns that the broker is slow to acknowledge.
PENDING_CALLS_WARNING = 10_000


class BrokerError(CellrigError):
    """The broker cannot be reached, refused us, or a setting to reach it is wrong."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything needed to connect. The password is kept out of ``repr`` (and so out of
    logs and tracebacks)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def url(self) -> str:
        """The broker as a URL, without the account (for messages and logs)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str, *, username: str | None = None, password_file: Path | None = None,
              ca_file: Path | None = None, cert_file: Path | None = None,
              key_file: Path | None = None) -> BrokerSettings:
    """Settings from ``mqtt[s]://[user@]host[:port]`` and the account's password file; a user
    in the URL is used when ``username`` is None. Raises :class:`BrokerError`."""
    match = _URL_RE.fullmatch(url.strip())
    if match is None:
        raise BrokerError(f"{url!r} is not a broker URL: expected mqtt://HOST[:PORT] or "
                          "mqtts://HOST[:PORT] (TLS), e.g. mqtts://broker.lab.example:8883")
    scheme = match.group("scheme")
    port = int(match.group("port") or DEFAULT_PORTS[scheme])
    if not 0 < port < 65536:
        raise BrokerError(f"{url!r}: port {port} is not between 1 and 65535")
    tls = scheme == "mqtts"
    if not tls and (ca_file or cert_file or key_file):
        raise BrokerError(f"{url!r}: TLS files need an mqtts:// URL")
    if (cert_file is None) != (key_file is None):
        raise BrokerError("a client certificate needs both its certificate and its key file")
    for path in (ca_file, cert_file, key_file):
        if path is not None and not path.is_file():
            raise BrokerError(f"{path}: no such file (a PEM file for TLS)")
    return BrokerSettings(host=match.group("host").strip("[]"), port=port, tls=tls,
                          username=username or match.group("user"),
                          password=None if password_file is None else read_password(password_file),
                          ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def settings_of(config: MqttSinkConfig) -> BrokerSettings:
    """The settings a station's ``[sinks.mqtt]`` names."""
    return parse_url(config.url, username=config.username, password_file=config.password_file,
                     ca_file=config.ca_file, cert_file=config.cert_file,
                     key_file=config.key_file)


def read_password(path: Path) -> str:
    """A password file's first line (a trailing newline is not part of the password)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BrokerError(f"{path}: cannot read the broker password: {exc}") from exc
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise BrokerError(f"{path}: the broker password file is empty")
    return lines[0]


def client_id(prefix: str) -> str:
    """A client id unique on the broker: a second connection with the same id would make the
    broker drop the first one."""
    return f"{prefix}-{secrets.token_hex(4)}"


def make_client(settings: BrokerSettings, *, identifier: str, will: aiomqtt.Will | None = None,
                keepalive_s: int = 30, timeout_s: float = 10.0) -> aiomqtt.Client:
    """An MQTT 5 client (connect with ``async with``). With TLS the broker's certificate is
    checked against ``ca_file`` (or the system's authorities) and its host name."""
    tls_context = None
    if settings.tls:
        try:
            tls_context = ssl.create_default_context(
                cafile=None if settings.ca_file is None else str(settings.ca_file))
            if settings.cert_file is not None and settings.key_file is not None:
                tls_context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"cannot load the TLS files for {settings.url}: {exc}") from exc
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, will=will,
        keepalive=keepalive_s, timeout=timeout_s, tls_context=tls_context)
    # a station publishes a message per channel at once (256 channels, 256 publishes in
    # flight): aiomqtt would log a warning for each one beyond 10
    client.pending_calls_threshold = PENDING_CALLS_WARNING
    return client

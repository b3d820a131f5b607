"""Writing line protocol to InfluxDB: the 2.x/3.x API (token, org, bucket) through
influxdb-client's async client, and the 1.x API (database, retention policy, user name and
password; ``POST /write``) with aiohttp. Both sit behind :class:`PointWriter`, so the
forwarder neither knows nor cares which one it has.

Every failure becomes one of three errors, which tell the forwarder what to do:

- :class:`InfluxUnavailable`: the server cannot be reached, times out or answers 5xx/429 —
  retry the same batch later;
- :class:`InfluxRefused`: the server refuses the credentials, the permission or the
  database/bucket (401, 403, 404) — nothing gets through until someone fixes it;
- :class:`InfluxRejected`: the server refuses the data itself (400, 413, 422).

Secrets (the token, the password) come from an environment variable or a file, are read
again on every connection (a rotated token takes effect without a restart) and never appear
in a message: every message is built here from the status and the server's answer, with any
secret in it replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import aiohttp
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision

from cellrig.errors import CellrigError

from .station_config_model import InfluxApi, InfluxDbSinkConfig

log = logging.getLogger("cellrig.influxdb")

#: Environment variables that hold the secrets (they win over the files in station.toml).
TOKEN_ENV = "CELLRIG_INFLUXDB_TOKEN"
PASSWORD_ENV = "CELLRIG_INFLUXDB_PASSWORD"
REQUEST_TIMEOUT_S = 30.0
_ANSWER_CHARS = 300


class InfluxError(CellrigError):
    """A write to InfluxDB did not succeed (the message never holds a secret)."""


class InfluxUnavailable(InfluxError):
    """The server could not be reached or could not take the write now: try again later."""


class InfluxRefused(InfluxError):
    """The server refuses the credentials, the permission or the database/bucket."""


class InfluxRejected(InfluxError):
    """The server refuses the data of the write itself."""


class PointWriter(Protocol):
    """Writes a body of line protocol (nanosecond timestamps) to one InfluxDB target."""

    @property
    def description(self) -> str:
        """Where the points go, for logs (no secret)."""
        ...

    async def write(self, body: bytes) -> None:
        """Write; returns once the server acknowledged, or raises an :class:`InfluxError`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def read_secret(environment_name: str, path: Path | None,
                environment: Mapping[str, str] | None = None) -> str | None:
    """A secret from the environment variable, else from the file (stripped of surrounding
    whitespace); None when neither is given. A file that cannot be read is an
    :class:`InfluxRefused` naming the file, never its content."""
    source = os.environ if environment is None else environment
    value = source.get(environment_name)
    if value:
        return value.strip()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InfluxRefused(f"cannot read the InfluxDB secret file {path}: "
                            f"{exc.strerror if isinstance(exc, OSError) else 'not UTF-8 text'}"
                            ) from None


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every secret in it replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _classify(status: int, answer: str, where: str) -> InfluxError:
    answer = " ".join(answer.split())[:_ANSWER_CHARS]
    said = f": {answer}" if answer else ""
    if status in (401, 403):
        return InfluxRefused(f"{where} refused the credentials (HTTP {status}{said}); check the "
                             "user name and password or token, and its write permission")
    if status == 404:
        return InfluxRefused(f"{where} has no such database or bucket (HTTP 404{said})")
    if status in (400, 413, 422):
        return InfluxRejected(f"{where} rejected the data (HTTP {status}{said})")
    return InfluxUnavailable(f"{where} answered HTTP {status}{said}")


@dataclass(frozen=True, slots=True)
class _V1Target:
    url: str
    database: str
    retention_policy: str | None
    username: str | None
    password_file: Path | None


class InfluxV1Writer:
    """The InfluxDB 1.x HTTP API: ``POST /write?db=…&rp=…&precision=ns`` with HTTP basic
    authentication (never ``u``/``p`` in the URL, which proxies and logs keep)."""

    def __init__(self, config: InfluxDbSinkConfig, *, timeout_s: float = REQUEST_TIMEOUT_S,
                 environment: Mapping[str, str] | None = None) -> None:
        if config.database is None:
            raise InfluxRefused("the InfluxDB 1.x API needs a database")
        self._target = _V1Target(config.url.rstrip("/"), config.database,
                                 config.retention_policy, config.username,
                                 config.password_file)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ca_file = config.ca_file
        self._environment = environment
        self._session: aiohttp.ClientSession | None = None
        self._secrets: tuple[str, ...] = ()
        """the password and the header made of it, to keep out of messages"""

    @property
    def description(self) -> str:
        target = self._target
        policy = f", retention policy {target.retention_policy}" if target.retention_policy \
            else ""
        return f"InfluxDB 1.x at {target.url}, database {target.database}{policy}"

    def _headers(self) -> dict[str, str]:
        target = self._target
        password = read_secret(PASSWORD_ENV, target.password_file, self._environment)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if target.username is not None or password is not None:
            pair = f"{target.username or ''}:{password or ''}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            headers["Authorization"] = "Basic " + encoded
            self._secrets = (password, encoded) if password else ()
        return headers

    async def write(self, body: bytes) -> None:
        target = self._target
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self._ca_file))
            self._session = aiohttp.ClientSession(headers=self._headers(),
                                                  timeout=self._timeout, connector=connector)
        parameters = {"db": target.database, "precision": "ns"}
        if target.retention_policy:
            parameters["rp"] = target.retention_policy
        try:
            async with self._session.post(f"{target.url}/write", params=parameters,
                                          data=body) as response:
                if response.status == 204:
                    return
                answer = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unreachable(exc, self.description, *self._secrets) from None
        error = _classify(status, scrub(answer, *self._secrets), self.description)
        if isinstance(error, InfluxRefused):
            await self.close()  # the next attempt reads the password file again
        raise error

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxV2Writer:
    """The InfluxDB 2.x/3.x write API (``/api/v2/write``, token, org, bucket) through
    influxdb-client's async client (VictoriaMetrics accepts it too)."""

    def __init__(self, config: InfluxDbSinkConfig, *, timeout_s: float = REQUEST_TIMEOUT_S,
                 environment: Mapping[str, str] | None = None) -> None:
        if config.bucket is None or config.org is None:
            raise InfluxRefused("the InfluxDB 2.x API needs an org and a bucket")
        self._config = config
        self._org: str = config.org
        self._bucket: str = config.bucket
        self._timeout_ms = int(timeout_s * 1000)
        self._environment = environment
        self._client: InfluxDBClientAsync | None = None
        self._token: str | None = None

    @property
    def description(self) -> str:
        config = self._config
        return f"InfluxDB at {config.url.rstrip('/')}, org {config.org}, bucket {config.bucket}"

    async def write(self, body: bytes) -> None:
        config = self._config
        if self._client is None:
            self._token = read_secret(TOKEN_ENV, config.token_file, self._environment)
            try:
                self._client = InfluxDBClientAsync(
                    url=config.url, token=self._token or "", org=self._org,
                    timeout=self._timeout_ms,
                    ssl_ca_cert=None if config.ca_file is None else str(config.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise InfluxRefused(f"cannot use the InfluxDB ca_file {config.ca_file}: "
                                    f"{_reason(exc)}") from None
        try:
            await self._client.write_api().write(
                bucket=self._bucket, org=self._org, record=body,
                write_precision=cast(WritePrecision, WritePrecision.NS))
            return
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int) or status == 0:
                raise _unreachable(exc, self.description, self._token) from None
            answer = _answer(exc)
            error = _classify(status, scrub(answer, self._token), self.description)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _unreachable(exc, self.description, self._token) from None
        if isinstance(error, InfluxRefused):
            await self.close()  # the next attempt reads the token again
        raise error

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()  # type: ignore[no-untyped-call]


def _ssl_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    """Certificates checked against ``ca_file``, or the system's authorities."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise InfluxRefused(f"cannot use the InfluxDB ca_file {ca_file}: {_reason(exc)}"
                            ) from None


def _unreachable(error: BaseException, description: str,
                 *secrets: str | None) -> InfluxError:
    """A failed connection: an untrusted certificate needs someone to act (refused), anything
    else may pass (unavailable)."""
    if isinstance(error, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError):
        return InfluxRefused(scrub(f"{description}: the server's certificate is not trusted "
                                   f"({_reason(error)}); name the authority that signed it "
                                   "in ca_file", *secrets))
    return InfluxUnavailable(scrub(f"{description} cannot be reached: {_reason(error)}",
                                   *secrets))


def _answer(error: InfluxDBError) -> str:
    body = getattr(error, "body", None) or getattr(error, "message", None) or ""
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body)


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:_ANSWER_CHARS]


def make_writer(config: InfluxDbSinkConfig, *, timeout_s: float = REQUEST_TIMEOUT_S,
                environment: Mapping[str, str] | None = None) -> PointWriter:
    """The writer for the API the station configuration names."""
    if config.api is InfluxApi.V1:
        return InfluxV1Writer(config, timeout_s=timeout_s, environment=environment)
    return InfluxV2Writer(config, timeout_s=timeout_s, environment=environment)

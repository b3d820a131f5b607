"""Real InfluxDB 1.x and VictoriaMetrics servers for the integration tests.

Each server runs as a child process on a free loopback port with its data in a temporary
folder, and can be stopped and started again on the same port and data (an outage). The
binaries come from Debian's ``influxdb`` and ``victoria-metrics`` packages
(deploy/install-servers.sh). Where one is missing, :func:`require` skips the test with the
reason, or fails it when ``CI=true``: CI must never pass by skipping.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

STARTUP_TIMEOUT_S = 30.0


def require(binary: str, package: str) -> str:
    """The path of ``binary``; skips (locally) or fails (CI) the test when it is missing."""
    found = shutil.which(binary) or next(
        (str(path) for path in (Path("/usr/bin") / binary, Path("/usr/sbin") / binary)
         if path.is_file()), None)
    if found is None:
        message = (f"{binary} is not installed (Debian package {package}; "
                   "deploy/install-servers.sh installs it)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + ": CI needs it", pytrace=False)
        pytest.skip(message)
    return found


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 signed by it, made
    with the openssl command: (authority, certificate, key) PEM files."""
    openssl = require("openssl", "openssl")
    folder.mkdir(parents=True, exist_ok=True)
    authority, authority_key = folder / "ca.pem", folder / "ca.key"
    certificate, key, request = folder / "server.pem", folder / "server.key", folder / "server.csr"
    extensions = folder / "server.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", authority_key, "-out",
         authority, "-days", "2", "-subj", "/CN=cellrig test authority"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj",
         "/CN=127.0.0.1"],
        ["x509", "-req", "-in", request, "-CA", authority, "-CAkey", authority_key,
         "-CAcreateserial", "-out", certificate, "-days", "2", "-extfile", extensions],
    ):
        subprocess.run([openssl, *map(str, command)], check=True, capture_output=True)
    return authority, certificate, key


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for any status, raises OSError when the
    server does not answer. An https server's certificate is not checked (the tests'
    servers have certificates of their own making)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


class ServerProcess:
    """A server binary run as a child process; ``start()`` waits until ``ready_url``
    answers, ``stop()`` ends it (SIGTERM, then SIGKILL) and keeps its data."""

    def __init__(self, command: list[str], ready_url: str, log_path: Path) -> None:
        self.command = command
        self.ready_url = ready_url
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                status, _ = http("GET", self.ready_url, timeout_s=1.0)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command[0]} did not answer within {STARTUP_TIMEOUT_S} s: "
                           f"{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, characters: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""


class InfluxDb1(ServerProcess):
    """``influxd`` (1.x) with its own config, data, WAL and meta folders. With ``auth``,
    HTTP authentication is on and ``admin_user`` / ``admin_password`` is the admin."""

    admin_user = "admin"
    admin_password = "admin-secret-7Qx"

    def __init__(self, binary: str, folder: Path, *, auth: bool = False,
                 tls: tuple[Path, Path] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.auth = auth
        https = "" if tls is None else (f'  https-enabled = true\n  https-certificate = "{tls[0]}"'
                                        f'\n  https-private-key = "{tls[1]}"\n')
        config = folder / "influxdb.conf"
        config.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{folder / 'meta'}"
  logging-enabled = false
[data]
  dir = "{folder / 'data'}"
  wal-dir = "{folder / 'wal'}"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {'true' if auth else 'false'}
  log-enabled = false
  pprof-enabled = false
{https}[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
""")
        super().__init__([binary, "-config", str(config)], f"{self.url}/ping",
                         folder / "influxd.log")

    def start(self) -> None:
        super().start()
        if self.auth:  # the first admin may be created without credentials
            self.query(f"CREATE USER {self.admin_user} WITH PASSWORD "
                       f"'{self.admin_password}' WITH ALL PRIVILEGES", method="POST",
                       authenticate=False)

    def query(self, text: str, database: str | None = None, *, method: str = "GET",
              authenticate: bool = True, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL; returns the decoded JSON answer (raises on an HTTP error)."""
        parameters = {"q": text}
        if database:
            parameters["db"] = database
        if epoch:
            parameters["epoch"] = epoch
        headers = {}
        if self.auth and authenticate:
            pair = f"{self.admin_user}:{self.admin_password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        encoded = urllib.parse.urlencode(parameters)
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            status, body = http("POST", f"{self.url}/query", encoded.encode(), headers)
        else:
            status, body = http("GET", f"{self.url}/query?{encoded}", None, headers)
        if status != 200:
            raise RuntimeError(f"InfluxQL {text!r} failed: HTTP {status} {body[:500]!r}")
        answer: dict[str, Any] = json.loads(body)
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL {text!r} failed: {result['error']}")
        return answer

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def count(self, measurement: str, field: str, database: str,
              where: str = "") -> int:
        """How many points ``measurement`` has with ``field`` set."""
        clause = f" WHERE {where}" if where else ""
        answer = self.query(f'SELECT count("{field}") FROM "{measurement}"{clause}', database)
        series = answer["results"][0].get("series")
        return 0 if not series else int(series[0]["values"][0][1])


class VictoriaMetrics(ServerProcess):
    """``victoria-metrics`` (single node): accepts InfluxDB line protocol on ``/write`` and
    ``/api/v2/write``; queried through its export API. Queries see new data at once
    (``-search.latencyOffset=0``) once :meth:`flush` has run."""

    def __init__(self, binary: str, folder: Path,
                 tls: tuple[Path, Path] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        https = [] if tls is None else ["-tls", f"-tlsCertFile={tls[0]}",
                                        f"-tlsKeyFile={tls[1]}"]
        super().__init__([binary, f"-storageDataPath={folder / 'data'}",
                          f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
                          "-search.latencyOffset=0s", "-loggerLevel=WARN",
                          "-search.disableCache", "-dedup.minScrapeInterval=1ms", *https],
                         f"{self.url}/health", folder / "victoria-metrics.log")

    def flush(self) -> None:
        http("GET", f"{self.url}/internal/force_flush")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching a series selector, with its values and timestamps."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        status, body = http("GET", f"{self.url}/api/v1/export?{query}", timeout_s=60.0)
        if status != 200:
            raise RuntimeError(f"export {match} failed: HTTP {status} {body[:500]!r}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def count(self, metric: str) -> int:
        """How many points the series of ``metric`` hold together."""
        return sum(len(series["values"]) for series in self.export(f'{{__name__="{metric}"}}'))


@contextmanager
def influxdb1(folder: Path, *, auth: bool = False,
              tls: tuple[Path, Path] | None = None) -> Iterator[InfluxDb1]:
    """A running influxd 1.x (skipped or failed when not installed); with ``tls``
    (certificate and key files) it serves https."""
    server = InfluxDb1(require("influxd", "influxdb"), folder, auth=auth, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def victoria_metrics(folder: Path, *,
                     tls: tuple[Path, Path] | None = None) -> Iterator[VictoriaMetrics]:
    """A running VictoriaMetrics (skipped or failed when not installed); with ``tls``
    (certificate and key files) it serves https."""
    server = VictoriaMetrics(require("victoria-metrics", "victoria-metrics"), folder, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""A real mosquitto for the MQTT tests and benchmark: the configuration and ACL of
deploy/mosquitto/ on a free loopback port (and a TLS listener with a test authority when
asked), with a password file made by mosquitto_passwd for the accounts a test names. Missing
mosquitto skips a test locally and fails it in CI (``CI=true``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy" / "mosquitto"
#: The accounts the deploy ACL names: three stations, two researchers, a reader.
STATIONS = ("assb-lab-1", "assb-lab-2", "assb-lab-3")
ACCOUNTS = (*STATIONS, "alice", "bob", "grafana", "mallory")


def mosquitto_binary() -> str | None:
    """The broker's path, or None."""
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


def require_mosquitto() -> str:
    """The broker's path; skips the test (fails it when CI=true) if there is none."""
    binary = mosquitto_binary()
    if binary is None or shutil.which("mosquitto_passwd") is None:
        reason = ("mosquitto and mosquitto_passwd are not installed "
                  "(deploy/install-servers.sh installs them)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Account:
    """A broker account and the file its password is in."""

    name: str
    password_file: Path


class Broker:
    """mosquitto with the deploy configuration, on 127.0.0.1:``port``."""

    def __init__(self, folder: Path, accounts: Sequence[str] = ACCOUNTS, *,
                 tls: bool = False) -> None:
        self.binary = require_mosquitto()
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file = make_certificates(folder) if tls else None
        self.accounts: dict[str, Account] = {}
        passwords = folder / "passwords"
        for name in accounts:
            password = secrets.token_urlsafe(12)
            create = [] if passwords.exists() else ["-c"]
            subprocess.run(["mosquitto_passwd", *create, str(passwords), name],
                           input=f"{password}\n{password}\n", text=True, check=True,
                           capture_output=True)
            password_file = folder / f"{name}.password"
            password_file.write_text(password + "\n", encoding="utf-8")
            self.accounts[name] = Account(name, password_file)
        self.config = folder / "mosquitto.conf"
        self.config.write_text(self._config(passwords), encoding="utf-8")
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self, passwords: Path) -> str:
        """deploy/mosquitto/mosquitto.conf with this test's files and port."""
        lines = []
        for line in (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
            if line.startswith("password_file "):
                line = f"password_file {passwords}"
            elif line.startswith("acl_file "):
                line = f"acl_file {DEPLOY / 'acl'}"
            elif line.startswith("listener 1883"):
                line = f"listener {self.port} 127.0.0.1"
            lines.append(line)
        if self.tls_port is not None:  # the deploy file's TLS listener, uncommented
            lines += [f"listener {self.tls_port} 127.0.0.1",
                      f"certfile {self.folder / 'server.pem'}",
                      f"keyfile {self.folder / 'server.key'}"]
        # run as root (a container), mosquitto would switch to the mosquitto user, which
        # cannot read the test's private folder: stay the user who runs the tests
        lines.append(f"user {pwd.getpwuid(os.getuid()).pw_name}")
        return "\n".join(lines) + "\n"

    @property
    def url(self) -> str:
        """Where clients connect."""
        return f"mqtt://127.0.0.1:{self.port}"

    def password_file(self, name: str) -> Path:
        """An account's password file."""
        return self.accounts[name].password_file

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM), waiting for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5.0)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port (retained messages are not persisted)."""
        self.stop()
        self.start()


def make_certificates(folder: Path) -> Path:
    """A certificate authority and a certificate for localhost signed by it (openssl);
    returns the authority's certificate."""
    if shutil.which("openssl") is None:
        reason = "openssl is not installed (the TLS test makes its certificates with it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    names = folder / "names.ext"
    names.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n", encoding="utf-8")
    for command in (
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=cellrig test authority"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", str(names)],
    ):
        subprocess.run(["openssl", *command], cwd=folder, check=True, capture_output=True)
    return folder / "ca.pem"

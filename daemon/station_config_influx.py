"""``[sinks.influxdb]`` of ``station.toml``: the InfluxDB the forwarder writes to, through the
1.x API (database, retention policy, user name and password) or the 2.x API (org, bucket,
token). ``api`` names it; without it, the keys tell.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .station_config_fields import Findings, Section
from .station_config_model import InfluxApi, InfluxDbSinkConfig

_HTTP_RE = re.compile(r"https?://[A-Za-z0-9_.-]+(:\d{1,5})?(/\S*)?")
_NAME_RE = re.compile(r"[^\s\"'\\]+")

V2_EXAMPLE = """[sinks.influxdb]
url = "http://localhost:8086"
org = "lab"
bucket = "cellrig"
token_file = "/etc/cellrig/influxdb.token\""""
V1_EXAMPLE = """[sinks.influxdb]
url = "http://localhost:8086"
database = "cellrig"
username = "assb-lab-3"
password_file = "/etc/cellrig/influxdb.password\""""
V1_KEYS = ("database", "retention_policy", "username", "password_file")
V2_KEYS = ("org", "bucket", "token_file")
KEYS = ("url", "api", *V2_KEYS, *V1_KEYS, "ca_file")


def read_influxdb(findings: Findings, table: Mapping[str, Any],
                  path: Callable[[str], Path]) -> InfluxDbSinkConfig | None:
    """The sink, or None after reporting every problem of the table; ``path`` resolves a
    file name written in the configuration."""
    where = ("sinks", "influxdb")
    section = Section(findings, where, table, "[sinks.influxdb]", V2_EXAMPLE)
    section.check_keys(KEYS)
    url = section.text("url", required=True, what="an http(s) URL",
                       example='url = "http://localhost:8086"', pattern=_HTTP_RE)
    ca_file = _ca_file(section, url, path)
    api = _api(findings, section)
    if api is None or (ca_file is None and "ca_file" in table):
        return None
    section.example = V1_EXAMPLE if api is InfluxApi.V1 else V2_EXAMPLE
    if api is InfluxApi.V1:
        database = section.text("database", required=True, what="an InfluxDB database",
                                example='database = "cellrig"', pattern=_NAME_RE)
        policy = section.text("retention_policy", required=False,
                              what="a retention policy", example='retention_policy = "autogen"',
                              pattern=_NAME_RE)
        username = section.text("username", required=False, what="a user name",
                                example='username = "assb-lab-3"')
        password = section.text("password_file", required=False,
                                what="the file holding the password",
                                example='password_file = "/etc/cellrig/influxdb.password"')
        optional = {"retention_policy": policy, "username": username,
                    "password_file": password}
        if url is None or database is None or any(
                value is None and key in table for key, value in optional.items()):
            return None
        return InfluxDbSinkConfig(url, InfluxApi.V1, database=database, retention_policy=policy,
                                  username=username,
                                  password_file=None if password is None else path(password),
                                  ca_file=ca_file)
    org = section.text("org", required=True, what="an InfluxDB organisation",
                       example='org = "lab"')
    bucket = section.text("bucket", required=True, what="an InfluxDB bucket",
                          example='bucket = "cellrig"')
    token = section.text("token_file", required=False, what="the file holding the token",
                         example='token_file = "/etc/cellrig/influxdb.token"')
    if url is None or org is None or bucket is None or (token is None and "token_file" in table):
        return None
    return InfluxDbSinkConfig(url, InfluxApi.V2, org=org, bucket=bucket,
                              token_file=None if token is None else path(token), ca_file=ca_file)


def _ca_file(section: Section, url: str | None,
             path: Callable[[str], Path]) -> Path | None:
    """``ca_file``: a PEM file, for an https URL only."""
    text = section.text("ca_file", required=False, what="a PEM file",
                        example='ca_file = "/etc/cellrig/influxdb-ca.pem"')
    if text is None:
        return None
    if url is not None and not url.startswith("https://"):
        section.wrong("ca_file", "ca_file is for TLS, which needs an https:// url",
                      'url = "https://HOST:8086" with ca_file, or no ca_file',
                      'url = "https://influxdb.lab.example:8086"')
        return None
    return path(text)


def _api(findings: Findings, section: Section) -> InfluxApi | None:
    """The API the table names, or the one its keys belong to."""
    table = section.mapping
    v1 = [key for key in V1_KEYS if key in table]
    v2 = [key for key in V2_KEYS if key in table]
    if "api" in table:
        text = section.choice("api", [api.value for api in InfluxApi],
                              what="an InfluxDB API", example='api = "v1"')
        if text is None:
            return None
        api = InfluxApi(text)
        others = v2 if api is InfluxApi.V1 else v1
        for key in others:
            section.wrong(key, f"{key} belongs to the {'2.x' if key in V2_KEYS else '1.x'} "
                          f"API, but this table has api = \"{api.value}\"",
                          f"the keys of the {api.value} API",
                          V1_EXAMPLE if api is InfluxApi.V1 else V2_EXAMPLE)
        return None if others else api
    if v1 and v2:
        findings.error(section.path, "[sinks.influxdb] mixes keys of the 1.x API "
                       f"({', '.join(v1)}) and of the 2.x API ({', '.join(v2)})", key=True,
                       expected="database, retention_policy, username, password_file (1.x) "
                                "or org, bucket, token_file (2.x); api = \"v1\" or \"v2\" "
                                "says which", example=V1_EXAMPLE)
        return None
    if v1:
        return InfluxApi.V1
    if not v2:
        section.missing("bucket", "the 2.x API: org, bucket, token_file; or database for "
                        "the 1.x API", V2_EXAMPLE)
        return None
    return InfluxApi.V2

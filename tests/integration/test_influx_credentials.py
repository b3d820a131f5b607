"""Bad credentials give a clear error, never the secret: against a real influxd with
authentication on (1.x API), and against a stand-in for InfluxDB 2 (none is installed here)
that answers 401 and echoes the request's Authorization header back, which a careless
message would then show. A password file fixed while the forwarder runs is read again and
the data goes through."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from servers import free_port, influxdb1
from station_data import fill

from cellrig.daemon.influx_forwarder import ForwarderSettings, InfluxForwarder
from cellrig.daemon.influx_writers import (
    InfluxRefused,
    InfluxUnavailable,
    InfluxV1Writer,
    InfluxV2Writer,
    make_writer,
)
from cellrig.daemon.station_config_model import InfluxApi, InfluxDbSinkConfig
from cellrig.daemon.store import Store
from cellrig.drivers.backoff import Backoff

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "wrong-Pw-9zQ!secret"
TOKEN = "tok-3hG7-very-secret-token"
LINE = b"samples,station=s voltage_v=3.7 1700000000000000000\n"


def all_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])


def test_v1_wrong_password_then_fixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    password_file = tmp_path / "influxdb.password"
    password_file.write_text(WRONG_PASSWORD + "\n")
    with influxdb1(tmp_path / "influxdb", auth=True) as influx, \
            Store.open(tmp_path / "station.db") as store:
        influx.create_database("cellrig")
        totals = fill(store, channels=2, samples_per_channel=300, start_unix_s=1.7e9)
        config = InfluxDbSinkConfig(influx.url, InfluxApi.V1, database="cellrig",
                                    username=influx.admin_user, password_file=password_file)

        async def direct() -> str:
            writer = make_writer(config)
            try:
                with pytest.raises(InfluxRefused) as caught:
                    await writer.write(LINE)
            finally:
                await writer.close()
            return str(caught.value)

        message = asyncio.run(direct())
        assert "refused the credentials (HTTP 401" in message
        assert WRONG_PASSWORD not in message

        forwarder = InfluxForwarder(
            InfluxV1Writer(config), store, "assb-lab-3",
            settings=ForwarderSettings(poll_interval_s=0.05,
                                       backoff=Backoff(initial_s=0.05, max_s=0.2)))

        async def scenario() -> None:
            task = asyncio.create_task(forwarder.run())
            await asyncio.sleep(1.0)
            assert forwarder.positions["samples"] == 0  # nothing moves without the server
            assert forwarder.stats.failed_writes >= 3
            password_file.write_text(influx.admin_password)
            for _ in range(100):
                if forwarder.positions["samples"] == totals["samples"]:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert influx.count("samples", "voltage_v", "cellrig") == totals["samples"]
    text = all_text(caplog)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refused the credentials" in errors[0].getMessage()
    assert "takes writes again" in text
    assert WRONG_PASSWORD not in text and influx.admin_password not in text
    basic = base64.b64encode(f"admin:{WRONG_PASSWORD}".encode()).decode()
    assert basic not in text


def test_v1_missing_database_and_unreadable_password_file(tmp_path: Path) -> None:
    with influxdb1(tmp_path / "influxdb") as influx:
        async def attempt(config: InfluxDbSinkConfig) -> str:
            writer = make_writer(config)
            try:
                with pytest.raises(InfluxRefused) as caught:
                    await writer.write(LINE)
            finally:
                await writer.close()
            return str(caught.value)

        missing = asyncio.run(attempt(InfluxDbSinkConfig(influx.url, InfluxApi.V1,
                                                         database="nowhere")))
        assert "has no such database or bucket (HTTP 404" in missing and "nowhere" in missing
        unreadable = asyncio.run(attempt(InfluxDbSinkConfig(
            influx.url, InfluxApi.V1, database="cellrig", username="u",
            password_file=tmp_path / "absent.password")))
        assert "cannot read the InfluxDB secret file" in unreadable
        assert "absent.password" in unreadable


@pytest.fixture
async def echoing_server() -> AsyncIterator[str]:
    """An HTTP server that refuses every write with 401 and says what it was sent."""
    async def refuse(request: web.Request) -> web.Response:
        said = request.headers.get("Authorization", "")
        return web.json_response({"code": "unauthorized", "message": f"bad {said}"},
                                 status=401)

    app = web.Application()
    app.router.add_post("/api/v2/write", refuse)
    app.router.add_post("/write", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_v2_refused_token_is_never_shown(echoing_server: str, tmp_path: Path) -> None:
    token_file = tmp_path / "influxdb.token"
    token_file.write_text(TOKEN)
    config = InfluxDbSinkConfig(echoing_server, InfluxApi.V2, org="lab", bucket="cellrig",
                                token_file=token_file)
    writer = InfluxV2Writer(config)
    try:
        with pytest.raises(InfluxRefused) as caught:
            await writer.write(LINE)
    finally:
        await writer.close()
    message = str(caught.value)
    assert "refused the credentials (HTTP 401" in message and "bad Token ***" in message
    assert TOKEN not in message and TOKEN not in repr(caught.value)
    # the environment wins over the file, and is hidden the same way
    from_env = InfluxV2Writer(config, environment={"CELLRIG_INFLUXDB_TOKEN": "env-" + TOKEN})
    try:
        with pytest.raises(InfluxRefused) as caught:
            await from_env.write(LINE)
    finally:
        await from_env.close()
    assert "env-" not in str(caught.value) and TOKEN not in str(caught.value)


async def test_v1_refused_password_is_never_shown(echoing_server: str, tmp_path: Path) -> None:
    """The 1.x writer's Authorization header (base64 of user:password) is hidden too."""
    password_file = tmp_path / "influxdb.password"
    password_file.write_text(WRONG_PASSWORD)
    config = InfluxDbSinkConfig(echoing_server, InfluxApi.V1, database="cellrig",
                                username="lab", password_file=password_file)
    writer = InfluxV1Writer(config)
    try:
        with pytest.raises(InfluxRefused) as caught:
            await writer.write(LINE)
    finally:
        await writer.close()
    message = str(caught.value)
    basic = base64.b64encode(f"lab:{WRONG_PASSWORD}".encode()).decode()
    assert "bad Basic ***" in message
    assert basic not in message and WRONG_PASSWORD not in message


async def test_v2_unreachable_is_unavailable(tmp_path: Path) -> None:
    config = InfluxDbSinkConfig(f"http://127.0.0.1:{free_port()}", InfluxApi.V2, org="lab",
                                bucket="cellrig")
    writer = InfluxV2Writer(config, timeout_s=2.0)
    try:
        with pytest.raises(InfluxUnavailable, match="cannot be reached"):
            await writer.write(LINE)
    finally:
        await writer.close()

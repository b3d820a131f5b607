"""The control socket in front of the real job manager on a model station (the whole bench in
the daemon, 1000 times faster than real time): every verb through the client, refusals with
their codes, bad requests answered while the server keeps serving, the socket file's mode,
stale sockets, one daemon per store, and sd_notify on a datagram socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import socket
import stat
from pathlib import Path

import pytest
from daemon_fixtures import (
    CYCLING,
    SHORT,
    daemon_in_process,
    short_folder,
    wait_for_state,
    write_station,
)

from cellrig.daemon.control_api import ControlError, ErrorCode, SubmitRequest
from cellrig.daemon.control_client import ControlClient, StationUnreachable
from cellrig.daemon.control_server import MAX_CONNECTIONS, MAX_REQUEST_BYTES, SocketInUse
from cellrig.daemon.sd_notify import Notifier
from cellrig.daemon.service import DaemonHooks, StopTimedOut, run_daemon
from cellrig.daemon.service_lock import StoreLocked
from cellrig.daemon.station_config import load_station
from cellrig.daemon.store_read import StoreReader

pytestmark = pytest.mark.integration


@pytest.fixture
def station_toml() -> object:
    with short_folder() as folder:
        yield write_station(folder)


async def test_every_verb_through_the_client(station_toml: Path) -> None:
    async with daemon_in_process(station_toml) as daemon, \
            ControlClient(daemon.socket) as client:
        cell = {"id": "cell-7", "capacity": "600 mAh", "mass": "4.1 g"}
        long_job = await client.submit(SubmitRequest("A1", CYCLING, cell, source="cyc.yaml"))
        assert (long_job.channel, long_job.protocol_name, long_job.cell_id) == \
            ("A1", "short-cycling", "cell-7")
        await wait_for_state(client, long_job.id, {"running"})
        short = await client.submit(SubmitRequest("A2", SHORT, {}, parameters={}))

        status = await client.status()
        assert status.station == "model-test"
        a1 = next(c for c in status.channels if c.channel == "A1")
        assert a1.job_id == long_job.id and a1.job_state == "running"

        paused = await client.pause(long_job.id)
        assert paused.state == "paused"
        with pytest.raises(ControlError) as conflict:
            await client.pause(long_job.id)
        assert conflict.value.code is ErrorCode.CONFLICT
        assert (await client.resume(long_job.id)).state == "running"
        stopped = await client.stop(long_job.id, "enough")
        assert stopped.state == "stopped"
        assert stopped.reason == "enough"

        assert await wait_for_state(client, short.id, {"completed", "failed", "aborted"}) \
            == "completed"
        events = await client.events(long_job.id)
        kinds = [event.kind for event in events]
        assert kinds[0] == "job start" and "job end" in kinds
        later = await client.events(long_job.id, after_id=events[1].id)
        assert [e.id for e in later] == [e.id for e in events[2:]]
        assert [j.id for j in await client.jobs()] == [short.id, long_job.id]
        assert [j.id for j in await client.jobs(["stopped"])] == [long_job.id]
        assert (await client.job(short.id)).state == "completed"


async def test_a_held_job_stays_queued_until_a_later_submission_names_it(
        station_toml: Path) -> None:
    async with daemon_in_process(station_toml) as daemon, \
            ControlClient(daemon.socket) as client:
        held = await client.submit(SubmitRequest("A1", SHORT, {}, hold_for_group=True))
        await asyncio.sleep(0.3)
        assert (await client.job(held.id)).state == "queued"  # A1 is idle, yet it waits
        partner = await client.submit(SubmitRequest("A2", SHORT, {}, start_with=(held.id,)))
        await wait_for_state(client, held.id, {"running", "completed"})
        await wait_for_state(client, partner.id, {"running", "completed"})


async def test_refusals_arrive_with_their_codes(station_toml: Path) -> None:
    async with daemon_in_process(station_toml) as daemon, \
            ControlClient(daemon.socket) as client:
        cases = [
            (client.submit(SubmitRequest("Z9", SHORT, {})), ErrorCode.REFUSED, "no channel"),
            (client.submit(SubmitRequest("A1", "cellrig: 1\nname: x\nsteps: [Jump]\n", {},
                                         source="bad.yaml")), ErrorCode.INVALID, "bad.yaml:3"),
            (client.job(999), ErrorCode.NOT_FOUND, "no job 999"),
            (client.jobs(["sleeping"]), ErrorCode.INVALID, "job states are"),
            (client.request("stop", {"job": "one"}), ErrorCode.INVALID, "'job'"),
            (client.request("events", {"job": 1, "since": 3}), ErrorCode.INVALID, "since"),
            (client.request("reboot"), ErrorCode.INVALID, "unknown verb 'reboot'"),
        ]
        for call, code, text in cases:
            with pytest.raises(ControlError) as refused:
                await call
            assert refused.value.code is code, refused.value.message
            assert text in refused.value.message
        # the server knows who is asking: a stop without a reason says who stopped it
        job = await client.submit(SubmitRequest("A1", CYCLING, {}))
        stopped = await client.stop(job.id)
        assert stopped.state == "stopped"
        assert stopped.reason == f"stopped on request by {pwd.getpwuid(os.getuid()).pw_name}"
        with pytest.raises(ControlError) as again:
            await client.stop(job.id)
        assert again.value.code is ErrorCode.CONFLICT


async def _exchange(path: Path, payload: bytes) -> list[dict[str, object]]:
    """Send raw bytes on a new connection and read one reply per line sent."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 22)
    try:
        writer.write(payload)
        await writer.drain()
        replies = []
        for _ in range(payload.count(b"\n")):
            replies.append(json.loads(await reader.readline()))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


async def test_bad_requests_are_answered_and_the_server_keeps_serving(
        station_toml: Path) -> None:
    async with daemon_in_process(station_toml) as daemon:
        oversized = b'{"id": 5, "verb": "status", "args": {"x": "' \
            + b"y" * (MAX_REQUEST_BYTES + 10) + b'"}}\n'
        lines = [b"not json\n", b"[1, 2]\n", b'{"id": 2}\n', b'{"id": 3, "verb": "status", '
                 b'"args": []}\n', b"\xff\xfe\n", oversized, b'{"id": 9, "verb": "status"}\n']
        replies = await _exchange(daemon.socket, b"".join(lines))
        assert [r["ok"] for r in replies] == [False] * 6 + [True]
        assert [r["id"] for r in replies] == [None, None, 2, 3, None, None, 9]
        assert all(r["error"]["code"] == "invalid" for r in replies[:6])  # type: ignore[index]
        assert "larger than" in replies[5]["error"]["message"]  # type: ignore[index]
        # a connection that goes away mid-line harms no one
        _reader, writer = await asyncio.open_unix_connection(str(daemon.socket))
        writer.write(b'{"id": 1, "verb": "sta')
        writer.close()
        async with ControlClient(daemon.socket) as client:
            assert len((await client.status()).channels) == 2


async def test_socket_mode_stale_socket_and_cleanup(station_toml: Path) -> None:
    config = load_station(station_toml)
    path = config.data_folder / "cellrig.sock"
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a killed daemon leaves
    stale.close()
    async with daemon_in_process(station_toml) as daemon:
        mode = daemon.socket.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
        async with ControlClient(daemon.socket) as client:
            await client.status()
    assert not path.exists()
    with pytest.raises(StationUnreachable, match="no station is listening"):
        async with ControlClient(path):
            pass


async def test_a_second_daemon_on_the_same_store_or_socket_refuses_to_start(
        station_toml: Path) -> None:
    config = load_station(station_toml)
    async with daemon_in_process(station_toml) as daemon:
        with pytest.raises(StoreLocked, match=f"process {os.getpid()}"):
            await run_daemon(config, socket=daemon.socket.with_name("other.sock"),
                             stop=asyncio.Event())
        other = station_toml.parent / "other"
        other.mkdir()
        other_toml = write_station(other)
        with pytest.raises(SocketInUse, match="another process serves"):
            async with daemon_in_process(other_toml, socket=daemon.socket):
                pass
        async with ControlClient(daemon.socket) as client:  # the first one is unharmed
            await client.status()


async def test_a_regular_file_at_the_socket_path_is_not_replaced(station_toml: Path) -> None:
    config = load_station(station_toml)
    config.data_folder.mkdir(parents=True)
    path = config.data_folder / "cellrig.sock"
    path.write_text("precious")
    with pytest.raises(SocketInUse, match="not a socket"):
        async with daemon_in_process(station_toml):
            pass
    assert path.read_text() == "precious"


async def test_sd_notify_ready_watchdog_status_and_stopping(station_toml: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = station_toml.parent / "notify.sock"
    listener.bind(str(address))
    listener.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "200000"})
    assert notifier.watchdog_interval_s == pytest.approx(0.1)
    received: list[str] = []
    loop = asyncio.get_running_loop()

    async def collect(until: str) -> None:
        async with asyncio.timeout(10):
            while not any(until in message for message in received):
                received.append((await loop.sock_recv(listener, 4096)).decode())

    config = load_station(station_toml)
    stop = asyncio.Event()
    task = asyncio.create_task(run_daemon(config, socket=config.data_folder / "c.sock",
                                          stop=stop, notifier=notifier))
    try:
        await collect("READY=1")
        ready = next(m for m in received if "READY=1" in m)
        assert "STATUS=2 channels: idle" in ready
        count = len(received)
        async with asyncio.timeout(10):  # every 0.1 s: three come soon
            while sum("WATCHDOG=1" in m for m in received[count:]) < 3:
                received.append((await loop.sock_recv(listener, 4096)).decode())
        assert sum("WATCHDOG=1" in m for m in received[count:]) >= 3
    finally:
        stop.set()
        await task
    await collect("STOPPING=1")
    listener.close()


async def test_a_task_that_ignores_its_cancellation_does_not_hold_the_stop(
        station_toml: Path) -> None:
    """What a driver call that swallows a cancellation (asyncio.wait_for in Python 3.11)
    does to a stopping daemon: after the grace period the cells are made safe, the store
    closed, the socket removed, and StopTimedOut tells the caller to end the process."""
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    config = load_station(station_toml)
    socket_file = config.data_folder / "cellrig.sock"
    stop = asyncio.Event()
    hooks = DaemonHooks(started=lambda _control, _path: stop.set(), extra_tasks=[stubborn])
    try:
        with pytest.raises(StopTimedOut, match=r"did not stop within 0\.3 s"):
            await run_daemon(config, socket=socket_file, stop=stop, hooks=hooks,
                             stop_grace_s=0.3)
    finally:
        release.set()
        for task in asyncio.all_tasks():
            if task.get_name() in ("extra", "daemon.tasks"):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert not socket_file.exists()
    with StoreReader(config.data_folder / "station.db") as reader:  # closed, readable
        assert reader.jobs() == []
    async with daemon_in_process(station_toml):  # the lock was released
        pass


async def test_connections_beyond_the_limit_are_told_so_and_closed(station_toml: Path) -> None:
    async with daemon_in_process(station_toml) as daemon:
        held = [await asyncio.open_unix_connection(str(daemon.socket))
                for _ in range(MAX_CONNECTIONS)]
        try:
            async with ControlClient(daemon.socket) as client:
                with pytest.raises(ControlError, match="connections already; try again"):
                    await client.status()
            _reader, writer = held.pop()
            writer.close()
            await writer.wait_closed()
            async with asyncio.timeout(5):
                while True:  # the server notices the closed connection at its next read
                    try:
                        async with ControlClient(daemon.socket) as client:
                            assert len((await client.status()).channels) == 2
                        break
                    except ControlError:
                        await asyncio.sleep(0.02)
        finally:
            for _reader, writer in held:
                writer.close()

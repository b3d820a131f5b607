"""Submission: every reason a job is refused, with the code a client acts on, and nothing
recorded for a refused job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from job_fixtures import request, running
from model_station import build_station

from cellrig.daemon.control_api import ControlError, ErrorCode
from cellrig.daemon.store_read import StoreReader

pytestmark = pytest.mark.integration

BROKEN = """cellrig: 1
name: broken
cell: {capacity: 600 mAh}
steps:
  - Charge at 0.1C until 4.2 V
  - Discharge at 0.2 parsecs until 2.5 V
"""
TOO_HOT = """cellrig: 1
name: too-hot
cell: {capacity: 600 mAh}
steps:
  - set: {temperature: 92 degC}
  - Rest for 1 minute
"""
TOO_HOT_FOR_THE_CHANNEL = TOO_HOT.replace("92 degC", "120 degC")
REST = """cellrig: 1
name: rest
cell: {capacity: 600 mAh}
steps:
  - Rest for 1 minute
"""
NEEDS_A_CELL = """cellrig: 1
name: needs-a-cell
steps:
  - Charge at 0.1C until 4.2 V
"""


async def refusal(tmp_path: Path, *args: object, **fields: object) -> ControlError:
    station = build_station(["A1", "A2"])
    async with running(station, tmp_path / "station.db") as manager:
        with pytest.raises(ControlError) as caught:
            await manager.submit(request(*args, **fields))  # type: ignore[arg-type]
        assert await manager.jobs() == []  # nothing recorded
    return caught.value


async def test_an_unknown_channel_is_refused(tmp_path: Path) -> None:
    error = await refusal(tmp_path, "B7")
    assert error.code is ErrorCode.REFUSED
    assert "no channel 'B7'" in error.message and "A1, A2" in error.message


async def test_a_protocol_error_names_file_line_and_column(tmp_path: Path) -> None:
    error = await refusal(tmp_path, "A1", BROKEN, source="broken.yaml")
    assert error.code is ErrorCode.INVALID
    assert "broken.yaml:6:" in error.message, error.message


async def test_a_bad_cell_and_an_unknown_parameter_are_invalid(tmp_path: Path) -> None:
    error = await refusal(tmp_path, "A1", cell={"capacity": "lots"})
    assert error.code is ErrorCode.INVALID and "capacity" in error.message
    error = await refusal(tmp_path, "A1", parameters={"uper": "4.2 V"})
    assert error.code is ErrorCode.INVALID and "uper" in error.message
    error = await refusal(tmp_path, "A1", NEEDS_A_CELL)
    assert error.code is ErrorCode.INVALID


async def test_currents_beyond_the_hard_limits_are_refused(tmp_path: Path) -> None:
    # 4 C of the 0.634 Ah cell is 2.5 A, above the channel's 2 A
    error = await refusal(tmp_path, "A1", parameters={"charge_rate": "4C"})
    assert error.code is ErrorCode.REFUSED
    assert "exceeds the 2 A of the channel's hard limits" in error.message, error.message


async def test_a_voltage_beyond_the_hard_limits_is_refused(tmp_path: Path) -> None:
    error = await refusal(tmp_path, "A1", parameters={"upper": "4.6 V"})
    assert error.code is ErrorCode.REFUSED
    assert "4.6 V is outside" in error.message, error.message


async def test_a_temperature_the_shared_chamber_never_takes_is_refused(tmp_path: Path) -> None:
    error = await refusal(tmp_path, "A1", TOO_HOT)
    assert error.code is ErrorCode.REFUSED
    assert "chamber chamber accepts -20 to 90 °C, so it can never be held at 92 °C" in \
        error.message, error.message
    error = await refusal(tmp_path, "A1", TOO_HOT_FOR_THE_CHANNEL)
    assert "120 °C is outside the channel's hard limits" in error.message, error.message


async def test_start_with_needs_a_queued_job_on_another_channel(tmp_path: Path) -> None:
    station = build_station(["A1", "A2"])
    async with running(station, tmp_path / "station.db") as manager:
        with pytest.raises(ControlError, match="job 41 is not queued"):
            await manager.submit(request("A1", start_with=(41,)))
        assert await manager.jobs() == []


async def test_a_refused_job_leaves_the_store_untouched(tmp_path: Path) -> None:
    await refusal(tmp_path, "A1", BROKEN)
    with StoreReader(tmp_path / "station.db") as reader:
        assert reader.jobs() == []


async def test_start_with_refuses_two_members_on_one_channel_and_unshared_chambers(
        tmp_path: Path) -> None:
    station = build_station(["A1", "A2", "A3"])
    lone = station.channels["A3"]
    lone.config = dataclasses.replace(lone.config, chamber=None)
    async with running(station, tmp_path / "station.db") as manager:
        first = await manager.submit(request("A1", REST, hold_for_group=True))
        second = await manager.submit(request("A2", REST, start_with=(first.id,),
                                              hold_for_group=True))
        with pytest.raises(ControlError, match="already has a job in the group") as caught:
            await manager.submit(request("A1", REST, start_with=(second.id,)))
        assert caught.value.code is ErrorCode.REFUSED
        with pytest.raises(ControlError, match="does not share a chamber"):
            await manager.submit(request("A3", REST, start_with=(first.id,)))
        assert [job.id for job in await manager.jobs()] == [second.id, first.id]
        assert {(await manager.job(job.id)).state for job in (first, second)} == {"queued"}
        await manager.stop(first.id)
        await manager.stop(second.id)


async def test_what_the_channel_instruments_cannot_do_is_refused(tmp_path: Path) -> None:
    # the model channels have no EIS unit: the instruments' own refusal
    error = await refusal(tmp_path, "A1", "eis-open-circuit")
    assert error.code is ErrorCode.REFUSED
    assert "cannot measure impedance" in error.message, error.message


async def test_a_pressure_on_a_channel_without_a_jig_is_refused(tmp_path: Path) -> None:
    station = build_station(["A1"])
    station.channels["A1"].jig = None
    async with running(station, tmp_path / "station.db") as manager:
        with pytest.raises(ControlError, match="has no jig, so it cannot set 2 MPa"):
            await manager.submit(request("A1"))

"""The CLI's plain-text tables: units in the headers, values scaled to them, unknowns as '-'."""

from __future__ import annotations

from cellrig.daemon.cli_format import (
    MISSING,
    duration,
    event_line,
    events_header,
    events_table,
    job_line,
    jobs_table,
    number,
    status_table,
    table,
)
from cellrig.daemon.control_api import ChannelStatus, EventView, JobView, StationStatus


def _channel(name: str, **values: object) -> ChannelStatus:
    fields: dict[str, object] = {
        "channel": name, "job_id": None, "job_state": None, "protocol_name": None,
        "step": None, "step_count": None, "cycle": None, "voltage_v": None, "current_a": None,
        "temperature_c": None, "pressure_pa": None, "charge_capacity_ah": None,
        "discharge_capacity_ah": None, "test_time_s": None,
    }
    fields.update(values)
    return ChannelStatus(**fields)  # type: ignore[arg-type]


def test_table_pads_columns_and_aligns_numbers_right() -> None:
    text = table(("NAME", "N"), [["a", "1"], ["long name", "100"]], [False, True])
    assert text.splitlines() == ["NAME         N", "a            1", "long name  100"]


def test_numbers_are_scaled_and_unknowns_shown_as_dash() -> None:
    assert number(0.0634, 3, 1000.0) == "63.400"
    assert number(None, 2) == MISSING
    assert number(float("nan"), 2) == MISSING
    assert duration(3 * 3600 + 7 * 60 + 12) == "3:07:12"
    assert duration(2 * 86_400 + 5) == "2d 00:00:05"
    assert duration(None) == MISSING


def test_status_shows_every_quantity_in_the_unit_of_its_header() -> None:
    status = StationStatus("assb-lab-3", "0.1.0", 0.0, [
        _channel("A1", job_id=7, job_state="running", step="CC charge 63.4 mA to 4.25 V",
                 step_count=2, cycle=1, voltage_v=3.71234, current_a=0.0634,
                 temperature_c=59.96, pressure_pa=2.01e6, charge_capacity_ah=0.1234,
                 discharge_capacity_ah=0.0, test_time_s=5400.0, queued=1),
        _channel("A2", latched="pressure 0.2 MPa below 0.5 MPa"),
    ])
    lines = status_table(status).splitlines()
    assert lines[0] == "station assb-lab-3  cellrig 0.1.0  1970-01-01 00:00:00 UTC"
    for unit in ("V", "I / mA", "T / degC", "P / MPa", "QCHG / mAh", "QDIS / mAh"):
        assert unit in lines[2]
    a1 = lines[3]
    for shown in ("7", "running", "2: CC charge 63.4 mA to 4.25 V", "3.7123", "63.400",
                  "60.0", "2.010", "123.40", "0.00", "1:30:00"):
        assert shown in a1, shown
    a2 = lines[4].split()
    assert a2[:3] == ["A2", MISSING, "LATCHED"]
    assert lines[-1] == "A2 latched safe: pressure 0.2 MPa below 0.5 MPa"


def test_compact_status_leaves_out_the_step() -> None:
    status = StationStatus("s", "1", 0.0, [_channel("A1", step="Rest for 10 min")])
    assert "Rest" not in status_table(status, compact=True)
    assert "Rest" in status_table(status)


def test_jobs_show_how_long_they_ran() -> None:
    jobs = [JobView(2, "A1", "running", "", "formation", "pouch-7", 0.0, 100.0, None),
            JobView(1, "A2", "completed", "the protocol ended", "rate", "", 0.0, 0.0, 7200.0)]
    lines = jobs_table(jobs, now_unix_s=3700.0).splitlines()
    assert lines[0].split()[:3] == ["JOB", "CHANNEL", "STATE"]
    assert "1:00:00" in lines[1] and "pouch-7" in lines[1]
    assert "2:00:00" in lines[2] and "the protocol ended" in lines[2]
    assert jobs_table([], 0.0) == "no jobs"
    assert job_line(jobs[0]) == "job 2 on A1: running (formation, cell pouch-7)"


def test_event_lines_stay_under_the_header() -> None:
    event = EventView(12, 3, "step start", 3725.0, 0.0, 1, 4, 4, "CC  discharge\n0.2C")
    header, line = events_header(), event_line(event)
    assert line.index("step start") == header.index("KIND")
    assert line.endswith("CC discharge 0.2C")
    assert events_table([event]).splitlines() == [header, line]
    assert events_table([]) == "no events"

"""Which instruments the station-health dashboard shows as answering: those that opened, until
a channel's supervisor finds one silent past its watchdog timeout."""

from __future__ import annotations

from test_station_model import STATION

from cellrig.daemon.channel_rig import POTENTIOSTAT
from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.station_health import instrument_states
from cellrig.daemon.supervisor import EIS


async def test_every_opened_instrument_answers_until_its_watchdog_is_overdue() -> None:
    config = load_station_text(STATION, "station.toml")
    async with open_station(config) as station:
        assert instrument_states(station) == {"bench": True}
        watchdog = station.channels["A1"].supervisor.watchdogs[POTENTIOSTAT]
        now_s = station.timer.now_s()
        watchdog.arm(now_s - 100.0, 1.0)
        assert instrument_states(station) == {"bench": False}
        watchdog.feed(station.timer.now_s())
        assert instrument_states(station) == {"bench": True}
        station.channels["A1"].supervisor.watchdogs[EIS].arm(now_s - 100.0, 1.0)
        assert instrument_states(station) == {"bench": False}


"""An instrument that cannot be opened shows as down on the station-health dashboard, beside
the instruments that opened."""

from __future__ import annotations

import socket

import pytest

from cellrig.daemon.station import open_station
from cellrig.daemon.station_config import load_station_text
from cellrig.daemon.station_health import instrument_states

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_instrument_that_did_not_open_is_down() -> None:
    text = f"""
[station]
name = "health"
data_folder = "data"

[instruments.bench]
driver = "model"
options = {{ time_scale = 100 }}

[instruments.smu]
driver = "keithley2450"
address = "TCPIP::127.0.0.1::{closed_port()}::SOCKET"

[channels.A1]
potentiostat = "bench"
limits = {{ voltage = ["0 V", "4.4 V"], current = "50 mA" }}

[channels.B1]
potentiostat = "smu"
limits = {{ voltage = ["0 V", "4.4 V"], current = "50 mA" }}
"""
    async with open_station(load_station_text(text, "station.toml")) as station:
        assert list(station.unavailable) == ["B1"]
        assert instrument_states(station) == {"bench": True, "smu": False}

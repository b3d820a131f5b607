"""Station configurations that are valid: the example in deploy/, what a valid file reads to
(SI values, resolved paths, shared chambers and EIS units), the stable hash, warnings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cellrig.daemon.station_config import load_station, load_station_text
from cellrig.daemon.station_config_model import Driver, JigType, PotentiostatBinding
from cellrig.errors import ConfigError, Severity
from cellrig.protocols.program import Limit

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "station.example.toml"

SMALL = """
[station]
name = "bench-1"
data_folder = "data"

[instruments.bench]
driver = "model"
options = { time_scale = 100, cell = "paper-pouch-0.6Ah" }

[instruments.mes]
driver = "palmsens"
address = "socket://127.0.0.1:4100"
options = { model = "mes4hr", channels = 2 }

[channels.B1]
potentiostat = { instrument = "mes", channel = 1 }
eis = "mes"
chamber = "bench"
reference_offset = "620 mV"
limits = { voltage = ["1.5 V", "4.4 V"], current = { max = "5 mA", warn = "4 mA", delay = "1 s" } }

[channels.B2]
potentiostat = { instrument = "mes", channel = 2 }
chamber = "bench"

[channels.B2.jig]
kind = "bolted"
gauge = "bench"
cell_area = "78.5 mm^2"
max_pressure = "300 MPa"

[channels.B2.limits]
voltage = ["1.5 V", "4.4 V"]
current = "5 mA"
pressure = ["20 MPa", "250 MPa"]
"""


def test_the_example_station_is_valid() -> None:
    config = load_station(EXAMPLE)
    assert config.name == "assb-lab-3"
    assert config.data_folder == Path("/var/lib/cellrig")
    assert list(config.channels) == ["A1", "A2", "A3", "A4"]
    assert config.warnings == ()
    for number, channel in enumerate(config.channels.values(), start=1):
        assert channel.potentiostat == PotentiostatBinding(f"smu-a{number}")
        assert config.instruments[f"smu-a{number}"].driver is Driver.KEITHLEY2450
        assert (channel.chamber, channel.eis) == ("chamber", "eis")
        assert channel.jig is not None and channel.jig.type is JigType.PNEUMATIC
        assert (channel.jig.regulator, channel.jig.gauge) == (f"regulator-a{number}",
                                                              f"gauge-a{number}")
        geometry = channel.jig.geometry
        assert geometry.cell_area_m2 == pytest.approx(93.28e-4)
        assert geometry.piston_area_m2 == pytest.approx(0.1)
        assert (geometry.preload_n, geometry.max_force_n) == (150.0, 100_000.0)
        assert channel.limits.voltage_v == Limit(2.0, 4.4)
        assert channel.limits.current_a == Limit(None, 0.8)
        assert channel.limits.pressure_pa == Limit(0.5e6, 8e6, 1e6, 6e6, 5.0)
    assert config.users("chamber") == ["A1", "A2", "A3", "A4"]
    assert config.users("eis") == ["A1", "A2", "A3", "A4"]
    assert config.users("gauge-a3") == ["A3"]
    chamber = config.instruments["chamber"]
    assert chamber.driver is Driver.ESPEC
    assert chamber.options == {"temperature_range_c": (-40.0, 150.0), "poll_period_s": 2.0}
    assert config.instruments["regulator-a1"].options["full_scale_pa"] == pytest.approx(
        150 * 6894.757, rel=1e-6)
    assert config.influxdb is not None and config.influxdb.bucket == "cellrig"
    assert config.mqtt is not None and config.mqtt.topic_prefix == "cellrig"
    assert len(config.sha256) == 64


def test_a_small_station_reads_to_si_values(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(SMALL, encoding="utf-8")
    config = load_station(path)
    assert config.data_folder == tmp_path / "data"
    assert config.source == path
    first, second = config.channels["B1"], config.channels["B2"]
    assert first.potentiostat == PotentiostatBinding("mes", 1)
    assert second.potentiostat == PotentiostatBinding("mes", 2)
    assert first.eis == "mes"
    assert first.reference_offset_v == pytest.approx(0.62)
    assert first.limits.current_a == Limit(None, 0.005, None, 0.004, 1.0)
    assert first.limits.temperature_c is None
    assert second.jig is not None and second.jig.type is JigType.BOLTED
    assert second.jig.regulator is None
    assert second.jig.geometry.piston_area_m2 is None
    assert second.jig.geometry.max_pressure_pa == pytest.approx(300e6)
    assert math.isinf(second.jig.geometry.max_force_n)
    assert config.instruments["bench"].options == {"time_scale": 100.0,
                                                   "cell": "paper-pouch-0.6Ah"}
    assert config.instruments["bench"].address == "model"
    assert config.influxdb is None and config.mqtt is None


def test_the_hash_ignores_layout_comments_order_and_unit_spelling() -> None:
    base = load_station_text(SMALL).sha256
    reordered = SMALL.replace('max_pressure = "300 MPa"', '# interlock\nmax_pressure="0.3 GPa"')
    reordered = reordered.replace('current = "5 mA"\npressure', 'pressure = ["20 MPa", '
                                  '"250 MPa"]\ncurrent = "0.005 A"\n#pressure')
    assert reordered != SMALL
    assert load_station_text(reordered).sha256 == base
    assert load_station_text(SMALL, folder=Path("/elsewhere")).sha256 == base


@pytest.mark.parametrize(("old", "new"), [
    ('current = "5 mA"\npressure', 'current = "6 mA"\npressure'),
    ('cell = "paper-pouch-0.6Ah"', 'cell = "pouch-2x2cm"'),
    ('name = "bench-1"', 'name = "bench-2"'),
    ('chamber = "bench"\n\n[channels.B2.jig]', '\n[channels.B2.jig]'),
])
def test_the_hash_changes_with_what_the_station_does(old: str, new: str) -> None:
    changed = SMALL.replace(old, new, 1)
    assert changed != SMALL
    assert load_station_text(changed).sha256 != load_station_text(SMALL).sha256


def test_an_unused_instrument_is_a_warning() -> None:
    text = SMALL + '\n[instruments.spare]\ndriver = "mark10"\naddress = "COM4"\n'
    config = load_station_text(text, "station.toml")
    (warning,) = config.warnings
    assert warning.severity is Severity.WARNING
    assert warning.message == "instrument 'spare' is not used by any channel"
    assert (warning.location.line, warning.location.column) == (
        text.splitlines().index("[instruments.spare]") + 1, 14)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the station configuration"):
        load_station(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match="cannot read"):
        load_station(binary)


@pytest.mark.parametrize("address", [
    "TCPIP::192.0.2.11::5025::SOCKET", "TCPIP0::k-2450-04512345.lab::inst0::INSTR",
    "TCPIP::192.0.2.11::INSTR", "USB0::0x05E6::0x2450::04512345::INSTR", "GPIB0::18::INSTR",
    "ASRL/dev/ttyUSB0::INSTR",
])
def test_visa_addresses_a_keithley_may_have(address: str) -> None:
    text = SMALL.replace('driver = "model"\noptions = { time_scale = 100, '
                         'cell = "paper-pouch-0.6Ah" }',
                         f'driver = "keithley2450"\naddress = "{address}"')
    text = text.replace('potentiostat = { instrument = "mes", channel = 2 }',
                        'potentiostat = "bench"').replace('chamber = "bench"\n', "")
    text = text.replace('gauge = "bench"', 'gauge = "g"') + (
        '[instruments.g]\ndriver = "mark10"\naddress = "COM4"\n')
    config = load_station_text(text)
    assert config.instruments["bench"].address == address


@pytest.mark.parametrize("address", ["192.0.2.11:5025", "TCPIP::192.0.2.11", "/dev/ttyUSB0"])
def test_addresses_that_are_no_visa_resource(address: str) -> None:
    text = SMALL.replace('driver = "model"\noptions = { time_scale = 100, '
                         'cell = "paper-pouch-0.6Ah" }',
                         f'driver = "keithley2450"\naddress = "{address}"')
    with pytest.raises(ConfigError, match="is not a VISA resource"):
        load_station_text(text)


def test_the_model_names_a_built_in_cell_or_a_file() -> None:
    with pytest.raises(ConfigError, match=r"there is no built-in cell 'paper-pouch' \(did you "
                                          r"mean 'paper-pouch-0.6Ah'\?\)"):
        load_station_text(SMALL.replace('"paper-pouch-0.6Ah"', '"paper-pouch"'))
    config = load_station_text(SMALL.replace('"paper-pouch-0.6Ah"', '"cells/my-cell.yaml"'))
    assert config.instruments["bench"].options["cell"] == "cells/my-cell.yaml"


@pytest.mark.parametrize("name", ["cmd", "reply", "A+1", "#", "-A1"])
def test_a_channel_name_that_cannot_be_a_topic_level_is_refused(name: str) -> None:
    text = SMALL.replace("[channels.B1]", f'[channels."{name}"]')
    with pytest.raises(ConfigError, match="cannot name a channel"):
        load_station_text(text, "station.toml")

"""The TOML locator: the line and column of every key and value, by key path, for every way
TOML writes tables, keys and values."""

from __future__ import annotations

import tomllib

import pytest

from cellrig.daemon.station_config_locate import KeyPath, Place, TomlPlaces

TEXT = "\n".join([
    '# a comment with [brackets] and = signs',
    'title = "a # that is no comment"',
    '[station]',
    "name = 'lab'   # trailing comment",
    '"quoted key" = 1',
    'a.b . c = true',
    '',
    '[channels.A1]',
    'limits = { voltage = ["2 V", "4 V"], current = "1 A" }',
    'notes = """',
    '[not.a.table]',
    'name = "not a key"',
    '"""',
    'list = [',
    '  "one",   # first',
    '  [2, 3],',
    '  { x = 1 },',
    ']',
    '',
    '[ channels . "A 2" ]',
    '  potentiostat="smu"',
    '[[runs]]',
    'id = 1',
    '[[runs]]',
    'id = 2',
    "text = '''' literal with ''quotes'' '''",
    'last = "é\\u00e9"',
    '',
])


def place_of(text: str, token: str, occurrence: int = 1) -> Place:
    """Where the ``occurrence``-th ``token`` is in ``text``."""
    at = -1
    for _ in range(occurrence):
        at = text.index(token, at + 1)
    line = text.count("\n", 0, at) + 1
    return Place(line, at - (text.rfind("\n", 0, at) + 1) + 1)


KEYS: list[tuple[KeyPath, str, int]] = [
    (("title",), "title", 1),
    (("station",), "station", 1),
    (("station", "name"), "name", 1),
    (("station", "quoted key"), '"quoted key"', 1),
    (("station", "a"), "a.b", 1),
    (("station", "a", "b", "c"), "c = true", 1),
    (("channels",), "channels", 1),
    (("channels", "A1"), "A1", 1),
    (("channels", "A1", "limits", "current"), "current", 1),
    (("channels", "A1", "list"), "list", 1),
    (("channels", "A 2"), '"A 2"', 1),
    (("channels", "A 2", "potentiostat"), "potentiostat", 1),
    (("runs",), "runs", 1),
    (("runs", 1), "runs", 2),
    (("runs", 1, "id"), "id = 2", 1),
    (("runs", 1, "last"), "last", 1),
]
VALUES: list[tuple[KeyPath, str, int]] = [
    (("title",), '"a # that', 1),
    (("station", "name"), "'lab'", 1),
    (("station", "a", "b", "c"), "true", 1),
    (("channels", "A1", "limits"), "{ voltage", 1),
    (("channels", "A1", "limits", "voltage"), '["2 V"', 1),
    (("channels", "A1", "limits", "voltage", 1), '"4 V"', 1),
    (("channels", "A1", "limits", "current"), '"1 A"', 1),
    (("channels", "A1", "notes"), '"""\n[not', 1),
    (("channels", "A1", "list", 0), '"one"', 1),
    (("channels", "A1", "list", 1), "[2, 3]", 1),
    (("channels", "A1", "list", 1, 1), "3]", 1),
    (("channels", "A1", "list", 2, "x"), "1 }", 1),
    (("channels", "A 2", "potentiostat"), '"smu"', 1),
    (("runs", 0, "id"), "1\n[[runs]]", 1),
    (("runs", 1, "text"), "'''' literal", 1),
    (("runs", 1, "last"), '"é', 1),
]


def test_the_text_is_valid_toml() -> None:
    data = tomllib.loads(TEXT)
    assert data["channels"]["A 2"]["potentiostat"] == "smu"


@pytest.mark.parametrize(("path", "token", "occurrence"), KEYS)
def test_keys_are_located(path: KeyPath, token: str, occurrence: int) -> None:
    assert TomlPlaces(TEXT).key(path) == place_of(TEXT, token, occurrence)


@pytest.mark.parametrize(("path", "token", "occurrence"), VALUES)
def test_values_are_located(path: KeyPath, token: str, occurrence: int) -> None:
    assert TomlPlaces(TEXT).value(path) == place_of(TEXT, token, occurrence)


def test_nothing_inside_strings_is_taken_for_a_key() -> None:
    places = TomlPlaces(TEXT)
    assert ("not", "a", "table") not in places.keys
    assert not any("not a key" in str(path) for path in places.keys)
    assert ("channels", "A1", "name") not in places.keys


def test_a_missing_key_is_located_at_its_nearest_ancestor() -> None:
    places = TomlPlaces(TEXT)
    assert places.key(("channels", "A1", "jig", "kind")) == place_of(TEXT, "A1")
    assert places.value(("channels", "A1", "jig")) == place_of(TEXT, "A1")
    assert places.key(("nowhere",)) == Place(1, 1)


def test_columns_count_characters_not_bytes() -> None:
    text = 'name = "Zürich-Ω"\nnext = 1\n'
    assert TomlPlaces(text).value(("next",)) == Place(2, 8)
    assert TomlPlaces('ä = "x"\nk = "é"  \n').value(("k",)) == Place(2, 5)

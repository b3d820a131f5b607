"""Where each key and value of a TOML file is written: line and column by key path.

``tomllib`` parses a file into plain dictionaries and keeps no positions, so a configuration
error could not point at the text that is wrong. :class:`TomlPlaces` scans the same text a
second time (after ``tomllib`` has accepted it, so it can be lenient about malformed input)
and records, for every key path, where its key is written and where its value starts:

- ``("channels", "A1", "jig")`` for the header ``[channels.A1.jig]`` (and its prefixes);
- ``("channels", "A1", "limits", "voltage", 1)`` for the second element of an array;
- ``("jobs", 2, "name")`` for ``name`` in the third ``[[jobs]]`` table;
- keys inside inline tables and dotted keys (``a.b = 1``) alike.

Lines and columns are 1-based, columns counted in characters, as editors show them.
"""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

KeyPath = tuple[str | int, ...]
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\",
            "e": "\x1b"}


class Place(NamedTuple):
    """A 1-based line and column."""

    line: int
    column: int


class TomlPlaces:
    """Key and value positions of one TOML text, by key path."""

    def __init__(self, text: str) -> None:
        self.keys: dict[KeyPath, Place] = {}
        self.values: dict[KeyPath, Place] = {}
        _Scanner(text, self).run()

    def key(self, path: KeyPath) -> Place:
        """Where the key of ``path`` is written; for a path that is not in the file (a
        missing key), where its nearest written ancestor is; the file's start otherwise."""
        for length in range(len(path), 0, -1):
            place = self.keys.get(path[:length])
            if place is not None:
                return place
        return Place(1, 1)

    def value(self, path: KeyPath) -> Place:
        """Where the value of ``path`` starts (its key's place for a table)."""
        place = self.values.get(path)
        return place if place is not None else self.key(path)


class _Scanner:
    """A single pass over the text, recording places into ``places``."""

    def __init__(self, text: str, places: TomlPlaces) -> None:
        self.text = text
        self.at = 0
        self.places = places
        self.line_starts = [0, *(match.end() for match in re.finditer("\n", text))]
        self.array_tables: dict[KeyPath, int] = {}

    def place(self, offset: int) -> Place:
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return Place(line + 1, offset - self.line_starts[line] + 1)

    def peek(self, count: int = 1) -> str:
        return self.text[self.at:self.at + count]

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces and tabs (and newlines and comments, if ``newlines``)."""
        text = self.text
        while self.at < len(text):
            char = text[self.at]
            if char in " \t" or (newlines and char in "\r\n"):
                self.at += 1
            elif char == "#" and newlines:
                end = text.find("\n", self.at)
                self.at = len(text) if end < 0 else end
            else:
                return

    def skip_line(self) -> None:
        end = self.text.find("\n", self.at)
        self.at = len(self.text) if end < 0 else end + 1

    def run(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank(newlines=True)
            if self.at >= len(self.text):
                return
            if self.peek(2) == "[[":
                self.at += 2
                segments = self.key_path()
                base = tuple(name for name, _ in segments)
                index = self.array_tables.get(base, -1) + 1
                self.array_tables[base] = index
                self.record_prefixes((), segments)
                table = (*base, index)
                self.places.keys[table] = self.place(segments[-1][1])
            elif self.peek() == "[":
                self.at += 1
                segments = self.key_path()
                table = tuple(name for name, _ in segments)
                self.record_prefixes((), segments)
                self.places.keys[table] = self.place(segments[-1][1])
            else:
                self.key_value(table)
            self.skip_line()

    def record_prefixes(self, table: KeyPath, segments: list[tuple[str, int]]) -> None:
        for length in range(1, len(segments) + 1):
            path = (*table, *(name for name, _ in segments[:length]))
            self.places.keys.setdefault(path, self.place(segments[length - 1][1]))

    def key_path(self) -> list[tuple[str, int]]:
        segments: list[tuple[str, int]] = []
        while True:
            self.skip_blank(newlines=False)
            start = self.at
            char = self.peek()
            if char == '"':
                name = self.basic_string()
            elif char == "'":
                name = self.literal_string()
            else:
                match = _BARE_KEY_RE.match(self.text, self.at)
                name = match.group() if match else ""
                self.at = match.end() if match else self.at + 1
            segments.append((name, start))
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return segments
            self.at += 1

    def key_value(self, table: KeyPath) -> None:
        segments = self.key_path()
        self.skip_blank(newlines=False)
        if self.peek() == "=":
            self.at += 1
        self.skip_blank(newlines=False)
        path = (*table, *(name for name, _ in segments))
        self.record_prefixes(table, segments)
        self.places.keys[path] = self.place(segments[-1][1])
        self.value(path)

    def value(self, path: KeyPath) -> None:
        self.places.values[path] = self.place(self.at)
        char = self.peek()
        if self.peek(3) in ('"""', "'''"):
            self.multiline_string(self.peek(3))
        elif char == '"':
            self.basic_string()
        elif char == "'":
            self.literal_string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        else:
            while self.at < len(self.text) and self.text[self.at] not in ",]}\r\n#":
                self.at += 1

    def array(self, path: KeyPath) -> None:
        self.at += 1
        index = 0
        while self.at < len(self.text):
            self.skip_blank(newlines=True)
            if self.peek() in ("]", ""):
                self.at += 1
                return
            self.value((*path, index))
            index += 1
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.at += 1

    def inline_table(self, path: KeyPath) -> None:
        self.at += 1
        while self.at < len(self.text):
            self.skip_blank(newlines=True)
            if self.peek() in ("}", ""):
                self.at += 1
                return
            self.key_value(path)
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.at += 1

    def basic_string(self) -> str:
        """Read a "..." string (the cursor on its quote); returns its text."""
        self.at += 1
        out: list[str] = []
        text = self.text
        while self.at < len(text) and text[self.at] not in '"\n':
            char = text[self.at]
            if char == "\\" and self.at + 1 < len(text):
                code = text[self.at + 1]
                if code in "uU":
                    digits = 4 if code == "u" else 8
                    hex_digits = text[self.at + 2:self.at + 2 + digits]
                    out.append(chr(int(hex_digits, 16)) if _is_hex(hex_digits) else "?")
                    self.at += 2 + digits
                    continue
                out.append(_ESCAPES.get(code, code))
                self.at += 2
                continue
            out.append(char)
            self.at += 1
        self.at += 1
        return "".join(out)

    def literal_string(self) -> str:
        """Read a '...' string (the cursor on its quote); returns its text."""
        end = self.text.find("'", self.at + 1)
        end = len(self.text) if end < 0 else end
        name = self.text[self.at + 1:end]
        self.at = end + 1
        return name

    def multiline_string(self, quotes: str) -> None:
        """Skip a triple-quoted string (up to two quotes may end its content)."""
        self.at += 3
        text = self.text
        while self.at < len(text):
            if quotes == '"""' and text[self.at] == "\\":
                self.at += 2
                continue
            if text.startswith(quotes, self.at):
                self.at += 3
                while self.at < len(text) and text[self.at] == quotes[0]:
                    self.at += 1
                return
            self.at += 1


def _is_hex(text: str) -> bool:
    return bool(text) and all(char in "0123456789abcdefABCDEF" for char in text)

"""The error a jig raises when it refuses a request (not a wire problem: the request itself)."""

from __future__ import annotations

from cellrig.errors import CellrigError


class JigRefused(CellrigError, ValueError):
    """A jig or its regulator refuses a request: a setpoint outside its range or above the
    pressure ceiling, or any setpoint at all on a measure-only (bolted) jig."""

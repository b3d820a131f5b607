"""What the station store keeps about jobs, and the records its readers return."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cellrig import __version__
from cellrig.protocols.engine.output import Event
from cellrig.protocols.program import Program
from cellrig.protocols.rig import Spectrum

from .store_schema import JobState


def sha256_text(text: str) -> str:
    """The sha256 of a text's UTF-8 bytes, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Provenance:
    """Everything needed to know, and redo, what a job ran: the protocol as written, the
    program it resolved to for the cell, the cell, the parameter overrides, the software
    version and the station configuration's hash."""

    protocol_name: str
    protocol_text: str
    program_json: str
    cell: Mapping[str, Any]
    parameters: Mapping[str, Any]
    station_config_sha256: str
    software_version: str = __version__

    @property
    def protocol_sha256(self) -> str:
        """The hash of the protocol text as submitted."""
        return sha256_text(self.protocol_text)

    @property
    def program_sha256(self) -> str:
        """The hash of the resolved program (the same as ``Program.sha256``)."""
        return sha256_text(self.program_json)

    @classmethod
    def of(cls, protocol_text: str, program: Program, *,
           parameters: Mapping[str, Any] | None = None,
           station_config_sha256: str) -> Provenance:
        """The provenance of a job that runs ``program`` (resolved from ``protocol_text``)."""
        return cls(protocol_name=program.name, protocol_text=protocol_text,
                   program_json=program.to_json(), cell=dataclasses.asdict(program.cell),
                   parameters=dict(parameters or {}),
                   station_config_sha256=station_config_sha256)

    def program(self) -> Program:
        """The resolved program, rebuilt from its JSON."""
        return Program.from_json(self.program_json)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: the same mapping always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the store has it."""

    id: int
    channel: str
    state: JobState
    reason: str
    queued_unix_s: float
    started_unix_s: float | None
    ended_unix_s: float | None
    updated_unix_s: float
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with its store id and job."""

    id: int
    job_id: int
    event: Event


@dataclass(frozen=True, slots=True)
class StoredSpectrum:
    """An impedance spectrum with its store id, job and step."""

    id: int
    job_id: int
    step_id: int
    step_count: int
    unix_time_s: float | None
    spectrum: Spectrum


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A job's latest checkpoint: the engine's state, the id of the last sample the job had
    sent before it and how many samples that makes."""

    job_id: int
    last_sample_id: int
    samples: int
    unix_time_s: float
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """Samples as numpy columns (Battery Data Format names), with their store ids and jobs."""

    ids: npt.NDArray[np.int64]
    job_ids: npt.NDArray[np.int64]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

"""Picking jobs up again after a crash or a power loss.

When the daemon starts, every job the store has as running or paused is continued from its
last checkpoint: the same step, with the step's elapsed time, charge and energy. The store
commits a job's samples and its checkpoints in the order the engine sent them, so the samples
committed after the last checkpoint are real readings the checkpoint does not cover. They are
not thrown away and not produced again: :func:`fold_samples` moves the checkpoint forward to
the last of them — test time, the test's, cycle's and step's charge and energy, the step's
elapsed time and last reading, the CV share, the cycle's temperature and pressure range, the
recording grid and the dV/dt window — so the resumed engine carries on from the last stored
reading. Only samples of the checkpoint's own step are folded (a step start always sends a
checkpoint, so later samples can only belong to it).

What a restart cannot know from the store: readings the recording rules did not store
between the last stored sample and the crash, and what the instrument did while the daemon
was gone. ``job_reconcile`` asks the instrument: one that kept sourcing the step has the
outage accounted, any other is made safe (output off) and the engine applies the step's
command again; the gap is recorded in a ``job resume`` event.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellrig.daemon.store_read import StoreReader
from cellrig.daemon.store_records import JobRecord, SampleColumns
from cellrig.daemon.store_schema import JobState
from cellrig.daemon.store_writer import StoreError
from cellrig.protocols.engine import Event, EventKind
from cellrig.protocols.engine.blocks import grid_sizes
from cellrig.protocols.engine.process import keep_history
from cellrig.protocols.engine.state import StepProgress
from cellrig.protocols.program import Program

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveredJob:
    """A job to continue: its program, its checkpoint with the later samples folded in."""

    record: JobRecord
    program: Program
    checkpoint: dict[str, Any] | None
    paused: bool
    folded_samples: int
    last_unix_s: float | None
    """when the job last stored something (its last sample or checkpoint), UTC"""


def _cell(value: float, size: float | None) -> float:
    if size is None:
        return 0.0
    scaled = value / size
    return float(math.floor(scaled)) if math.isfinite(scaled) else scaled


def _float(value: Any, default: float) -> float:
    return default if value is None else float(value)


def fold_samples(state: dict[str, Any], samples: SampleColumns,
                 program: Program) -> tuple[dict[str, Any], int]:
    """The checkpoint ``state`` moved forward to the last of ``samples`` (stored after it);
    returns the new state and how many samples were folded in (0: left as it was)."""
    if len(samples) == 0 or state.get("ended") is not None or state.get("step") is None:
        return state, 0
    columns = samples.columns
    step = state["step"]
    counts = columns["Step Count / 1"]
    step_ids = columns["Step ID"]
    if not (np.all(counts == state["step_count"]) and np.all(step_ids == step["step_id"])):
        log.warning("samples after the checkpoint belong to another step; not folded")
        return state, 0
    folded = copy.deepcopy(state)
    step = folded["step"]

    def last(name: str) -> float:
        return float(columns[name][-1])

    folded["test_time_s"] = last("Test Time / s")
    folded["test"] = {"charge_ah": last("Charging Capacity / Ah"),
                      "discharge_ah": last("Discharging Capacity / Ah"),
                      "charge_wh": last("Charging Energy / Wh"),
                      "discharge_wh": last("Discharging Energy / Wh")}
    cycle = folded["cycle"]
    cycle["totals"] = {"charge_ah": last("Cycle Charging Capacity / Ah"),
                       "discharge_ah": last("Cycle Discharging Capacity / Ah"),
                       "charge_wh": last("Cycle Charging Energy / Wh"),
                       "discharge_wh": last("Cycle Discharging Energy / Wh")}
    step_charge = columns["Step Charging Capacity / Ah"]
    before = np.concatenate(([float(step["totals"]["charge_ah"])], step_charge[:-1]))
    cv = np.char.startswith(columns["Step Type"].astype(str), "CV")
    cycle["cv_charge_ah"] = float(cycle["cv_charge_ah"]) + float(
        np.sum((step_charge - before)[cv]))
    for name, low, high in (("Ambient Temperature / degC", "min_temperature_c",
                             "max_temperature_c"),
                            ("Applied Pressure / Pa", "min_pressure_pa", "max_pressure_pa")):
        values = columns[name][np.isfinite(columns[name])]
        if values.shape[0]:
            cycle[low] = min(_float(cycle[low], math.inf), float(values.min()))
            cycle[high] = max(_float(cycle[high], -math.inf), float(values.max()))
    step["elapsed_s"] = last("Step Time / s")
    step["totals"] = {"charge_ah": last("Step Charging Capacity / Ah"),
                      "discharge_ah": last("Step Discharging Capacity / Ah"),
                      "charge_wh": last("Step Charging Energy / Wh"),
                      "discharge_wh": last("Step Discharging Energy / Wh")}
    step["last_current_a"] = last("Current / A")
    step["last_voltage_v"] = last("Voltage / V")
    definition = next((s for s in program.iter_steps() if s.id == step["step_id"]), None)
    record = (definition.record if definition is not None and definition.record is not None
              else program.record)
    sizes = grid_sizes(record)
    step["record_cells"] = [_cell(step["elapsed_s"], sizes[0]),
                            _cell(step["last_voltage_v"], sizes[1]),
                            _cell(step["last_current_a"], sizes[2])]
    progress = StepProgress(step_id=step["step_id"],
                            history_time_s=list(step["history_time_s"]),
                            history_voltage_v=list(step["history_voltage_v"]))
    keep_history(progress, columns["Step Time / s"].tolist(), columns["Voltage / V"].tolist())
    step["history_time_s"] = progress.history_time_s
    step["history_voltage_v"] = progress.history_voltage_v
    return folded, len(samples)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """What a starting daemon does with the store's unfinished jobs."""

    queued: list[tuple[JobRecord, Program]]
    """queued jobs, in submission order"""
    continued: list[RecoveredJob]
    """running and paused jobs"""
    broken: list[tuple[JobRecord, str]]
    """jobs that cannot be picked up again (their stored program or checkpoint cannot be
    read), with the reason: they fail"""


def resume_note(job: RecoveredJob, now_unix_s: float,
                instrument: dict[str, Any] | None = None) -> Event:
    """The ``job resume`` event that says the job was picked up after a restart, with the
    gap since it last stored anything, how many samples were folded in and, in
    ``instrument``, what reconciliation found (``outage_s`` and ``outage_charge_ah`` when
    the instrument kept sourcing the step and the outage was accounted)."""
    gap_s = None if job.last_unix_s is None else max(now_unix_s - job.last_unix_s, 0.0)
    state = job.checkpoint or {}
    step = state.get("step") or {}
    message = "resumed after restart"
    if gap_s is not None:
        message += f"; {gap_s:.3g} s since the job last stored anything"
    found = dict(instrument or {})
    if "outage_charge_ah" in found:
        message += (f"; the instrument kept sourcing the step: {found['outage_s']:.6g} s of "
                    f"instrument time and {found['outage_charge_ah']:.6g} Ah accounted")
        if found.get("cutoff_passed"):
            message += f" (its cut-off, {found['cutoff_passed']}, was passed meanwhile)"
    elif "instrument" in found:
        message += f"; the instrument was {found['instrument']}: made safe"
        if "outage_s" in found:
            message += f"; test time moved on by {found['outage_s']:.6g} s"
    return Event(EventKind.JOB_RESUME, float(state.get("test_time_s", 0.0)), now_unix_s,
                 int(state.get("cycle", {}).get("number", 1)), int(state.get("step_count", 0)),
                 step.get("step_id"), message,
                 {"gap_s": gap_s, "folded_samples": job.folded_samples, "paused": job.paused,
                  **found})


def _continued(reader: StoreReader, record: JobRecord) -> RecoveredJob:
    program = record.provenance.program()
    stored = reader.checkpoint(record.id)
    checkpoint = None if stored is None else stored.state
    folded = 0
    last_unix_s = None if stored is None else stored.unix_time_s
    after_id = 0 if stored is None else stored.last_sample_id
    later = reader.samples(record.id, after_id=after_id)
    if len(later):
        last_unix_s = float(later.columns["Unix Time / s"][-1])
    if checkpoint is not None:
        checkpoint, folded = fold_samples(checkpoint, later, program)
    return RecoveredJob(record, program, checkpoint, record.state is JobState.PAUSED, folded,
                        last_unix_s)


def plan_recovery(reader: StoreReader) -> RecoveryPlan:
    """Read the unfinished jobs and prepare each one (a job that cannot be read is
    ``broken``, never a reason to stop the others)."""
    plan = RecoveryPlan([], [], [])
    for record in reader.unfinished_jobs():
        try:
            if record.state is JobState.QUEUED:
                plan.queued.append((record, record.provenance.program()))
            else:
                plan.continued.append(_continued(reader, record))
        except StoreError:
            raise  # the store itself failed: nothing can be recovered now
        except Exception as exc:  # a stored program or checkpoint this version cannot read
            log.exception("job %d cannot be picked up again", record.id)
            plan.broken.append((record, f"cannot be picked up again after a restart: "
                                        f"{exc or type(exc).__name__}"))
    return plan

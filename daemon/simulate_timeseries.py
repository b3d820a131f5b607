"""The time series file of a simulated job, written while the job runs.

Each sample block is copied, as it comes, into the column buffers of the current row group of
:data:`ROWS_PER_GROUP` samples (``Step Type`` as int8 codes). A full group becomes an Arrow
table over those buffers (no further copy) and is encoded and written — Parquet or CSV — by a
worker thread, which pyarrow lets run without the interpreter lock: the file is written on the
machine's other core while the job goes on, only the last partial group is left for the end,
and memory stays bounded however long the run.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cellrig.protocols.engine.output import COLUMNS, SampleBlock, StepType

#: Step Type values, in the order of their codes.
STEP_TYPES = tuple(kind.value for kind in StepType)
_STEP_CODES = {name: code for code, name in enumerate(STEP_TYPES)}
#: Columns whose values repeat in long runs: dictionary-encoded in Parquet.
DICTIONARY_COLUMNS = ("Step Type", "Cycle Count / 1", "Step Count / 1", "Step ID")
#: Samples per Parquet row group (and per write).
ROWS_PER_GROUP = 1 << 17


def step_codes(values: np.ndarray) -> np.ndarray:
    """A block's Step Type strings as int8 codes into :data:`STEP_TYPES` (a block is nearly
    always of one step type, so that case is one count: ``list.count`` compares by identity
    first, and the engine fills a block with one string object)."""
    strings = values.tolist()
    if strings and strings.count(strings[0]) == len(strings):
        return np.full(len(strings), _STEP_CODES[strings[0]], dtype=np.int8)
    return np.array([_STEP_CODES[value] for value in strings], dtype=np.int8)


def columns(blocks: list[SampleBlock]) -> dict[str, np.ndarray]:
    """The samples of the blocks, one array per column; ``Step Type`` as codes."""
    data = {name: np.concatenate([block.columns[name] for block in blocks])
            if blocks else np.zeros(0) for name in COLUMNS if name != "Step Type"}
    data["Step Type"] = (np.concatenate([step_codes(block.columns["Step Type"])
                                         for block in blocks])
                         if blocks else np.zeros(0, dtype=np.int8))
    return {name: data[name] for name in COLUMNS}


def _wrap(values: np.ndarray) -> Any:
    """A contiguous numpy array as an Arrow array, sharing its memory. (Built from buffers:
    ``pyarrow.array`` would also import pandas, half a second, to check for its types.)"""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(np.ascontiguousarray(values))])


def _step_dictionary() -> Any:
    """:data:`STEP_TYPES` as an Arrow string array (from buffers, as in :func:`_wrap`)."""
    import pyarrow as pa

    offsets = np.cumsum([0, *(len(name) for name in STEP_TYPES)], dtype=np.int32)
    text = "".join(STEP_TYPES).encode()
    return pa.Array.from_buffers(pa.string(), len(STEP_TYPES),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(text)])


class TimeSeriesWriter:
    """Writes sample blocks to ``timeseries.parquet`` (or ``.csv``) in ``folder`` as they come;
    :meth:`close` writes the rest and returns the path."""

    def __init__(self, folder: Path, file_format: str) -> None:
        self.path = folder / ("timeseries.csv" if file_format == "csv" else "timeseries.parquet")
        self.file_format = file_format
        self.rows = 0
        self._group: dict[str, np.ndarray] | None = None
        self._filled = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timeseries")
        self._writes: list[tuple[Future[None], dict[str, np.ndarray]]] = []
        self._spare: list[dict[str, np.ndarray]] = []
        self._writer: Any = None

    def add(self, block: SampleBlock) -> None:
        """Copy a block into the row group's buffers; hand each full group to the worker."""
        count = len(block)
        codes = step_codes(block.columns["Step Type"])
        done = 0
        while done < count:
            group = self._group if self._group is not None else self._new_group(block)
            take = min(count - done, ROWS_PER_GROUP - self._filled)
            end = self._filled + take
            whole = take == count  # the whole block: no views of it to make
            for name, buffer in group.items():
                source = codes if name == "Step Type" else block.columns[name]
                buffer[self._filled:end] = source if whole else source[done:done + take]
            self._filled = end
            done += take
            if end == ROWS_PER_GROUP:
                self._flush()

    def _new_group(self, block: SampleBlock) -> dict[str, np.ndarray]:
        """Buffers for the next group: those of a group already written if there is one
        (fresh memory costs a page fault every 4 kB on first use), else new ones."""
        self._collect()
        if self._spare:
            self._group = self._spare.pop()
        else:
            self._group = {name: np.empty(ROWS_PER_GROUP, dtype=np.int8 if name == "Step Type"
                                          else block.columns[name].dtype) for name in COLUMNS}
        self._filled = 0
        return self._group

    def _collect(self) -> None:
        """Take the buffers of finished writes back (a failed write fails the job now)."""
        for done in [entry for entry in self._writes if entry[0].done()]:
            done[0].result()
            self._writes.remove(done)
            if len(next(iter(done[1].values()))) == ROWS_PER_GROUP:
                self._spare.append(done[1])

    def _flush(self) -> None:
        """Hand the group's filled rows to the worker (an empty table if none ever came)."""
        group, filled = self._group, self._filled
        self._group, self._filled = None, 0
        if group is None:
            group = {name: np.zeros(0, dtype=np.int8 if name == "Step Type" else float)
                     for name in COLUMNS}
        self.rows += filled
        table = self._table({name: values[:filled] for name, values in group.items()})
        # encoding: the worker; the buffers are reused once it has written them
        self._writes.append((self._pool.submit(self._write, table), group))
        self._collect()

    def _table(self, data: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        arrays = {name: _wrap(values) for name, values in data.items()}
        step_type = pa.DictionaryArray.from_arrays(arrays["Step Type"], _step_dictionary())
        arrays["Step Type"] = (step_type.cast(pa.string()) if self.file_format == "csv"
                               else step_type)
        return pa.table({name: arrays[name] for name in COLUMNS})

    def _write(self, table: Any) -> None:
        if self._writer is None:
            if self.file_format == "csv":
                from pyarrow import csv as pa_csv

                self._writer = pa_csv.CSVWriter(self.path, table.schema)
            else:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.path, table.schema, compression="snappy",
                                                use_dictionary=list(DICTIONARY_COLUMNS))
        self._writer.write_table(table)

    def close(self) -> Path:
        """Write what is left, wait for the worker, close the file."""
        try:
            if self._filled or (self._writer is None and not self._writes):
                self._flush()
            for future, _ in self._writes:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()
        return self.path

"""A large table's chunks as fast as its reader gives them, for the passes that never hold it
whole (`scan.py`, `onepass.py`): each file of the table read by the fastest reader that reads it
as pandas would (`arrowcsv` for a plain CSV when PREFER_ARROW, else pandas' chunks), in a thread
of its own, so the next chunk is parsed while the caller learns from and writes the last one.

    for where, start, chunk in table_chunks(table, used, chunk_rows, decimal, Reading(progress=...)):
        ...

`mapped(function, items)` works items out in a few threads, in order (the pass's pieces
finished while the last is written). `attempts(run)` runs a pass with `Reading()`, and again when pyarrow gives up part way (a column
read as floats, or pandas from the start): a pass is a function of its Reading, holding nothing
from an earlier try.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from . import arrowcsv
from .tables import parquet_chunks, read_table, table_parts

# pyarrow's reader, given every column's type and parsing a slab's blocks on every core at once
# (arrowcsv.py), costs about the CPU a byte of pandas' C parser (docs/large-data.md); but its
# chunks are slabs of bytes, not the budget's rows, so a scaler merged over them differs in its
# last bits from a compressed copy's read by pandas, and a column's kind comes from the file's
# first megabyte. True reads plain CSV files with pyarrow.
PREFER_ARROW = False


@dataclass(frozen=True)
class Reading:
    """How a pass reads: with pyarrow where it can (`arrow`; `attempts` tries it first when
    PREFER_ARROW), which columns pyarrow reads as
    floats from the start (`as_float`), and whom to tell how far it got (`progress`, called with
    {"file", "rows", "fraction"} after each chunk; fraction None when it cannot be known)."""
    arrow: bool = False
    as_float: frozenset = frozenset()
    progress: Callable | None = field(default=None, compare=False)


def attempts(run: Callable, progress: Callable | None = None):
    """run(reading)'s result, with pyarrow first, then with what its Fallback asks for."""
    reading = Reading(PREFER_ARROW, frozenset(), progress)
    for _ in range(arrowcsv.RETYPES + 1):
        try:
            return run(reading)
        except arrowcsv.Retype as retype:
            reading = Reading(True, reading.as_float | {retype.column}, progress)
        except arrowcsv.Fallback:
            break
    return run(Reading(False, frozenset(), progress))


def table_chunks(table, used: list, chunk_rows: int, decimal: str, reading: Reading):
    """(file's name, first row's number in the whole table, chunk indexed by row in its file)."""
    parts = table_parts(table)
    sizes = [_size(part) for part in parts]
    offset = 0
    for k, part in enumerate(parts):
        rows = 0
        before, total = sum(sizes[:k]), sum(sizes)
        if reading.arrow and arrowcsv.usable(part, decimal):
            for chunk, at in ahead(arrowcsv.chunks(part, used, reading.as_float)):
                yield part.where, offset + rows, chunk
                rows += len(chunk)
                _tell(reading, part.where, offset + rows, (before + at) / total if total else None)
        else:
            estimate = _rows_estimate(part)
            for chunk in ahead(_chunks(part, used, chunk_rows, decimal)):
                yield part.where, offset + rows, chunk
                rows += len(chunk)
                done = (before + sizes[k] * min(rows / estimate, 1.0)) / total if estimate and total else None
                _tell(reading, part.where, offset + rows, done)
        offset += rows


def _chunks(part, used: list, chunk_rows: int, decimal: str):
    """A file's chunks; a Parquet file's text columns as categories (`parquetfile.read_parquet`)."""
    if part.kind == "parquet":
        return parquet_chunks(part, used, chunk_rows)
    return read_table(part, columns=used, chunksize=chunk_rows, decimal=decimal)


def _tell(reading: Reading, where: str, rows: int, fraction) -> None:
    if reading.progress is not None:
        reading.progress({"file": where, "rows": rows, "fraction": fraction})


def _size(part) -> int:
    import os

    try:
        return os.stat(part.source if part.kind == "csv" else part.path).st_size
    except (OSError, TypeError, AttributeError):
        return 0


def _rows_estimate(part) -> float | None:
    from .scan import _rows_of

    try:
        return _rows_of(part) or None
    except Exception:  # an estimate only: the pass itself says what is wrong with the file
        return None


DONE = object()


def ahead(iterable, depth: int = 1):
    """The iterable's items, produced `depth` ahead in a thread of their own: pandas' tokenizer
    and pyarrow's readers let go of the GIL, so the next chunk is parsed while this one is used.
    An exception in the thread is raised here; leaving early stops the thread."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((DONE, None))
        except BaseException as exc:  # handed to the consumer, which raises it as its own
            items.put((DONE, exc))

    thread = threading.Thread(target=produce, daemon=True, name="nnctl-read-ahead")
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                items.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


def mapped(function, items, workers: int = 2):
    """function(item) for each item, in order, worked out by `workers` threads at once, at most
    `workers` ahead of the caller (NumPy lets go of the GIL, so pieces are finished on every
    core while the caller writes the last one). An exception is raised here; leaving early
    waits for the items in hand and drops the rest."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pending: deque = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="nnctl-finish") as pool:
        try:
            for item in items:
                if len(pending) >= workers:
                    yield pending.popleft().result()
                pending.append(pool.submit(function, item))
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


"""Reading Parquet files with pyarrow (the optional `parquet` extra). Column types are used as
the file stores them: nothing is sniffed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import NnctlError

MAGIC = b"PAR1"  # a Parquet file's first bytes
INSTALL_HINT = "install the parquet extra: pip install 'nnctl[parquet]' (or pip install pyarrow)"


@dataclass
class ParquetFile:
    where: str
    path: Path
    header: list[str]
    kind: ClassVar[str] = "parquet"  # its reader in tables.READERS


def _pyarrow(where: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise NnctlError("reading Parquet files needs pyarrow, which is not installed", where, INSTALL_HINT)
    return pq


def open_parquet(path: Path, where: str) -> ParquetFile:
    pq = _pyarrow(where)
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise NnctlError(f"cannot read the Parquet file: {exc}", where)
    header = [str(name).strip() for name in schema.names]
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise NnctlError(f"the file names the columns {', '.join(repr(d) for d in dupes)} more than once", where)
    return ParquetFile(where, path, header)


def read_parquet(table: ParquetFile, columns=None, chunksize=None):
    """A DataFrame, or an iterator of them with `chunksize` (rows per batch, so memory stays
    bounded however large the file is)."""
    pq = _pyarrow(table.where)
    try:
        if chunksize is None:
            frame = pq.read_table(table.path, columns=columns).to_pandas()
            if len(frame) == 0:
                raise NnctlError("data file has no rows", table.where)
            return frame
        # pre_buffer would read ahead and keep the whole file's column chunks: memory as large as
        # the file, which chunks are meant to avoid
        source = pq.ParquetFile(table.path, pre_buffer=False, buffer_size=1 << 20)
        return _numbered(source.iter_batches(batch_size=chunksize, columns=columns), table.where)
    except NnctlError:
        raise
    except Exception as exc:
        raise NnctlError(f"cannot read the Parquet file: {exc}", table.where)


def _numbered(batches, where: str):
    """DataFrames of the batches, indexed by their rows' place in the file, as CSV chunks are
    (a message's data row is then the file's); pyarrow reads one row group at a time, so memory
    is bounded by the file's largest row group."""
    start = 0
    try:
        for batch in batches:
            frame = batch.to_pandas()
            frame.index = range(start, start + len(frame))
            start += len(frame)
            yield frame
    except Exception as exc:  # pyarrow's own errors for a file damaged past its header
        raise NnctlError(f"cannot read the Parquet file: {exc}", where)

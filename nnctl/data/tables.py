"""One way to open a table, whatever file holds it: CSV (plain, compressed, or a stream) or
Parquet. `open_table` finds out which and reads its header; `read_table` reads its rows."""
from __future__ import annotations

from pathlib import Path

from .csvfile import STDIN, CsvFile, read_csv, require_columns, sniff
from .parquetfile import ParquetFile, open_parquet, read_parquet

PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"


def is_parquet(path) -> bool:
    if str(path) == STDIN:
        return False
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    try:
        if not path.is_file():  # a stream is read once, by the CSV reader: never peek into it
            return False
        with open(path, "rb") as fh:
            return fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def open_table(path, delimiter: str | None = None, given_as: str = "data.path") -> CsvFile | ParquetFile:
    """The file's kind and header; errors name the file and say how to fix it."""
    if is_parquet(path):
        sniff_missing(path, given_as)
        return open_parquet(Path(path), str(path))
    return sniff(path, delimiter, given_as)


def sniff_missing(path, given_as: str) -> None:
    """The same 'not found' / 'is a folder' errors for Parquet paths as for CSV ones."""
    from .csvfile import _open

    if not Path(path).is_file():
        _open(path, str(path), given_as)


def read_table(table, columns=None, chunksize=None, decimal: str = ".", as_text=()):
    """A DataFrame (or an iterator of them with `chunksize`) of the table's `columns`.
    `as_text`: CSV columns to keep exactly as written (IDs such as 007), not parsed."""
    if isinstance(table, ParquetFile):
        if columns is not None:
            require_columns(table.header, columns, table.where)
        return read_parquet(table, list(columns) if columns is not None else None, chunksize)
    return read_csv(table, columns, chunksize, decimal, as_text)

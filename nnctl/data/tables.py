"""One way to open a table, whatever file holds it: CSV (plain, compressed, or a stream) or
Parquet. `FORMATS` maps a file's suffix to its reader; `open_table` picks one and reads the
header, `read_table` reads the rows with the reader that opened the table. A new format is one
reader and its suffixes here. A folder or glob of files is one table (`multifile.py`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import NnctlError
from . import csvfile, multifile, parquetfile
from .csvfile import STDIN, require_columns, require_regular


@dataclass(frozen=True)
class Reader:
    """`open(path, delimiter, where)` -> a table with `.header` and `.where`;
    `read(table, columns, chunksize, decimal, as_text)` -> a DataFrame or an iterator of them."""
    kind: str
    open: Callable
    read: Callable


def _open_csv(path, delimiter, given_as):
    return csvfile.sniff(path, delimiter, given_as)


def _read_csv(table, columns, chunksize, decimal, as_text):
    return csvfile.read_csv(table, columns, chunksize, decimal, as_text)


def _open_parquet(path, delimiter, given_as):
    # the same 'not found' / 'is a folder' errors as CSV; Parquet's index is at the file's end
    require_regular(path, str(path), given_as, "a Parquet file is read from its end, so it must be a file on disk")
    return parquetfile.open_parquet(Path(path), str(path))


def _read_parquet(table, columns, chunksize, decimal, as_text, categories: bool = False):
    # Parquet stores types, so decimal marks and text columns need no parsing choices
    if columns is not None:
        require_columns(table.header, columns, table.where)
    _refuse_nested(table, columns)
    return parquetfile.read_parquet(table, list(columns) if columns is not None else None, chunksize, categories)


def parquet_chunks(table, columns, chunksize: int):
    """A Parquet table's chunks as the passes read them: checked as `read_table` checks them,
    its text columns as categories (`parquetfile.read_parquet`)."""
    return _read_parquet(table, columns, chunksize, ".", (), categories=True)


def _refuse_nested(table, columns) -> None:
    """A Parquet column of lists, structs or maps holds no number or category: refused by name
    before it is read (pandas makes its cells arrays and dicts, which no encoder can hash)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(table.path)  # the footer only; the header is its names, stripped
    for name in columns if columns is not None else table.header:
        kind = schema.field(table.header.index(name)).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_nested(kind):
            raise NnctlError(f"column '{name}' holds nested values ({kind}), which cannot be numbers or categories",
                             table.where, f"flatten it into plain columns first, or leave '{name}' out "
                             f"(data.exclude: [{name}])")


def _open_many(path, delimiter, given_as):
    return multifile.open_many(path, lambda f, given: reader_for(f).open(f, delimiter, given), given_as)


def _read_many(table, columns, chunksize, decimal, as_text):
    return multifile.read_many(table, lambda part, *args: READERS[part.kind].read(part, *args), columns, chunksize,
                               decimal, as_text)


CSV = Reader("csv", _open_csv, _read_csv)
PARQUET = Reader("parquet", _open_parquet, _read_parquet)
MANY = Reader("many", _open_many, _read_many)
READERS = {reader.kind: reader for reader in (CSV, PARQUET, MANY)}
# CSV's compressions are found from their magic bytes, so any other suffix is read as CSV too
FORMATS = {".parquet": PARQUET, ".pq": PARQUET,
           ".csv": CSV, ".tsv": CSV, ".txt": CSV, ".gz": CSV, ".bz2": CSV, ".xz": CSV, ".zip": CSV}
# a file named otherwise (data.bin, a file without a suffix) is known by its first bytes
MAGIC = {parquetfile.MAGIC: PARQUET}


def reader_for(path) -> Reader:
    """The reader of a path: by suffix, else by magic bytes, else CSV. A stream is read once,
    by the CSV reader: nothing peeks into it."""
    if str(path) == STDIN:
        return CSV
    if multifile.is_many(path):
        return MANY
    path = Path(path)
    if path.suffix.lower() in FORMATS:
        return FORMATS[path.suffix.lower()]
    try:
        if not path.is_file():
            return CSV
        with open(path, "rb") as fh:
            head = fh.read(max(len(m) for m in MAGIC))
    except OSError:
        return CSV
    return next((reader for magic, reader in MAGIC.items() if head.startswith(magic)), CSV)


def is_parquet(path) -> bool:
    return reader_for(path) is PARQUET


def table_parts(table) -> list:
    """The one-file tables a table is made of, in order: itself, or a folder's or glob's files."""
    return list(table.parts) if table.kind == MANY.kind else [table]


def require_rereadable(path, given_as: str, why: str) -> None:
    """An NnctlError unless `path` can be read more than once: a file on disk, or a folder or
    glob (whose members are files); not stdin, a FIFO or a device."""
    if str(path) == STDIN:
        raise NnctlError(f"{given_as} cannot be stdin: {why}", given_as, "save the data to a file first")
    if not multifile.is_many(path):
        require_regular(path, str(path), given_as, why)


def open_table(path, delimiter: str | None = None, given_as: str = "data.path"):
    """The file's table and header; errors name the file and say how to fix it. A folder or a
    glob is one table of several files (`multifile`)."""
    reader = reader_for(path)
    return reader.open(path, delimiter, given_as)


def read_table(table, columns=None, chunksize=None, decimal: str = ".", as_text=()):
    """A DataFrame (or an iterator of them with `chunksize`) of the table's `columns`.
    `as_text`: CSV columns to keep exactly as written (IDs such as 007), not parsed."""
    return READERS[table.kind].read(table, columns, chunksize, decimal, as_text)

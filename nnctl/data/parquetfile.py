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


def read_parquet(table: ParquetFile, columns=None, chunksize=None, categories: bool = False):
    """A DataFrame, or an iterator of them with `chunksize` (rows per batch, so memory stays
    bounded however large the file is). `categories`: text columns come as pandas categories,
    read from the file's dictionaries (each distinct text decoded once a row group, not once a
    row: the first pass then finds a chunk's categories among a few names, not in every row)."""
    pq = _pyarrow(table.where)
    try:
        if chunksize is None:
            frame = pq.read_table(table.path, columns=columns).to_pandas()
            if len(frame) == 0:
                raise NnctlError("data file has no rows", table.where)
            return frame
        # pre_buffer would read ahead and keep the whole file's column chunks: memory as large as
        # the file, which chunks are meant to avoid
        source = pq.ParquetFile(table.path, pre_buffer=False, buffer_size=READ_BUFFER,
                                read_dictionary=_text_columns(pq.read_schema(table.path), columns) if categories else None)
        return _numbered(_row_group_chunks(source, columns, chunksize), chunksize, table.where)
    except NnctlError:
        raise
    except Exception as exc:
        raise NnctlError(f"cannot read the Parquet file: {exc}", table.where)


def _text_columns(schema, columns) -> list:
    """The names of the string columns among `columns` (every column for None)."""
    import pyarrow as pa

    wanted = None if columns is None else set(columns)
    return [field.name for field in schema if (wanted is None or field.name in wanted)
            and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))]


READ_BUFFER = 64 << 10  # bytes each column's reader buffers: pyarrow keeps one per column
PAGE_COST = 3 << 20  # what pyarrow holds per column reading in batches: a page as read and decompressed, a dictionary


def _row_group_chunks(source, columns, chunksize):
    """(record batch, whether its DataFrame may share its buffers), one row group after another,
    cut where the table's chunks of `chunksize` rows end (`_numbered` joins the pieces a row
    group's end splits). A row group is
    read whole, one column at a time, when that takes less memory than pyarrow's batched reader,
    which keeps a decoded page and dictionary (PAGE_COST) and a buffer for every column at once:
    150 MB for 60 columns, more than a row group of 250,000 rows holds. When both fit in a
    quarter of the budget, the row group's columns are read at once, in parallel, and its chunks'
    DataFrames share its buffers (numbers not copied: a fifth of the reader's CPU), which keeps the
    row group alive while any of them is; otherwise they are copies, and the row group goes as
    soon as it is cut. Freed memory goes back to the system (pyarrow's pool would keep it) after
    each row group read in a budget that is tight for it, else once the file is read: the next row
    group's columns, read at once, take the same memory again without the kernel's fresh pages
    (a half to a tenth of the page faults of reading the 124 MB benchmark file)."""
    import pyarrow as pa

    from ..resources import memory_budget

    meta, pool = source.metadata, pa.default_memory_pool()
    names = list(columns) if columns is not None else source.schema_arrow.names
    share, done = memory_budget() // 4, 0
    for r in range(meta.num_row_groups):
        whole, batched = _row_group_costs(meta.row_group(r), source.schema_arrow, names, chunksize)
        shared = whole + batched <= share
        if shared:  # affordable at once: pyarrow decodes the columns in parallel
            group = source.read_row_group(r, columns=names)
        elif whole <= max(batched, share):
            group = pa.Table.from_arrays(
                [source.read_row_group(r, columns=[name], use_threads=False).column(0) for name in names], names=names)
        else:
            group = None
        if group is not None:
            start = 0
            while start < group.num_rows:
                piece = group.slice(start, chunksize - (done + start) % chunksize)
                start += piece.num_rows
                yield piece, shared
            done += group.num_rows
            del group, piece
        else:
            for batch in source.iter_batches(batch_size=chunksize, row_groups=[r], columns=columns, use_threads=False):
                done += batch.num_rows
                yield batch, False
        if not shared:
            pool.release_unused()
    pool.release_unused()


def _row_group_costs(group, schema, names: list, chunksize: int) -> tuple[int, int]:
    """(bytes of the row group's `names` columns decoded, bytes pyarrow's batched reader holds
    to read them `chunksize` rows at a time), estimated from the file's metadata."""
    import pyarrow as pa

    stored = {group.column(i).path_in_schema: group.column(i).total_uncompressed_size
              for i in range(group.num_columns)}
    whole = batched = 0
    for name in names:
        kind = schema.field(name).type
        width = kind.bit_width // 8 if pa.types.is_primitive(kind) and kind.bit_width >= 8 else 8
        text = 0 if pa.types.is_primitive(kind) else stored.get(name, 0)  # strings: their bytes too
        whole += group.num_rows * width + text
        batched += min(stored.get(name, 0), PAGE_COST) + READ_BUFFER + chunksize * width
    return whole, batched


def _numbered(batches, chunksize: int, where: str):
    """DataFrames of `chunksize` rows (the last one shorter) from the batches, indexed by their
    rows' place in the file, as CSV chunks are (a message's data row is then the file's). A
    chunk that a row group's end splits is joined as Arrow data and made a DataFrame once (not
    two DataFrames joined by pandas, which copies every column again); batches that may not
    share their buffers become DataFrames at once, so that no slice keeps a row group alive."""
    start, pending, held = 0, [], 0
    try:
        for batch, shared in batches:
            pending.append(batch if shared else batch.to_pandas())
            held += batch.num_rows
            del batch  # a slice of a whole row group keeps it alive while the next one is read
            while held >= chunksize:
                taken, pending = _first_rows(pending, chunksize)
                held -= chunksize
                yield _frame(taken, start)
                start += chunksize
        if held:
            yield _frame(pending, start)
    except Exception as exc:  # pyarrow's own errors for a file damaged past its header
        raise NnctlError(f"cannot read the Parquet file: {exc}", where)


def _first_rows(pieces: list, n: int) -> tuple[list, list]:
    """(the pieces holding the first n rows, the pieces of the rest): Arrow tables or DataFrames."""
    taken, rest = [], list(pieces)
    while n > 0:
        piece = rest.pop(0)
        size = len(piece)
        if size > n:
            head, tail = (piece.slice(0, n), piece.slice(n)) if not hasattr(piece, "iloc") else \
                (piece.iloc[:n], piece.iloc[n:])
            taken.append(head)
            rest.insert(0, tail)
            break
        taken.append(piece)
        n -= size
    return taken, rest


def _frame(pieces: list, start: int):
    """One DataFrame of the pieces' rows, indexed from `start`."""
    import pandas as pd
    import pyarrow as pa

    if len(pieces) == 1:
        frame = pieces[0] if hasattr(pieces[0], "iloc") else pieces[0].to_pandas(split_blocks=True)
    elif not any(hasattr(p, "iloc") for p in pieces):
        frame = pa.concat_tables([p if isinstance(p, pa.Table) else pa.Table.from_batches([p])
                                  for p in pieces]).to_pandas(split_blocks=True)
    else:
        frame = pd.concat([p if hasattr(p, "iloc") else p.to_pandas(split_blocks=True) for p in pieces],
                          ignore_index=True)
    frame.index = range(start, start + len(frame))
    return frame

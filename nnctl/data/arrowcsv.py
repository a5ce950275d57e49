"""A plain CSV file read at pyarrow's speed: its multithreaded streaming reader
(`pyarrow.csv.open_csv`) parses blocks on every core while the caller works on the last one,
and each block comes out as the DataFrame chunk `csvfile.read_csv(chunksize=...)` would give:
stripped names, pandas' missing-value strings, and an index that is the row's place in the file.

Only the plain case is read so: pyarrow installed, an uncompressed UTF-8 regular file, decimal
points. pyarrow fixes each column's type from the first block, where pandas decides chunk by
chunk; a later block that does not fit is `Fallback`: an integer column that turns out to hold
decimals is read again as floats (`retyped`), and anything else (text in a number column, ragged
rows, bytes that are not UTF-8) sends the caller back to pandas from the start, whose reading
gives today's results and messages. Nothing of a fallen-back read is kept.
"""
from __future__ import annotations

import re
from pathlib import Path

from .csvfile import NA_STRINGS

MIN_BLOCK, MAX_BLOCK = 1 << 20, 16 << 20  # bytes parsed at a time, from the budget between these
BLOCK_SHARE = 48  # a block is held about 3 times (text, parsed, as a DataFrame), a few blocks at once
PROBE_BLOCK = 1 << 20  # bytes the columns' types are inferred from (see _opened)
SLAB_BLOCKS = 4  # blocks a slab is parsed in, on the cores at once
RETYPES = 4  # integer columns read again as floats before giving up on pyarrow


class Fallback(Exception):
    """pyarrow cannot read this file as pandas would: read it with pandas."""


def usable(part, decimal: str) -> bool:
    """Whether `part` (a table of one file) is a CSV that pyarrow reads as pandas would."""
    if getattr(part, "kind", None) != "csv" or not isinstance(part.source, Path) or part.compression is not None:
        return False
    if part.encoding != "utf-8-sig" or (decimal != "." and decimal != part.delimiter):
        return False
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def block_bytes() -> int:
    from ..resources import memory_budget

    return int(min(max(memory_budget() // BLOCK_SHARE, MIN_BLOCK), MAX_BLOCK))


def chunks(part, columns: list, as_float=frozenset()):
    """(DataFrame of `part`'s `columns`, bytes of the file read so far), one a block, indexed by
    row in the file. Raises Fallback (see module docstring); `as_float`: columns to read as
    float64 whatever the first block holds."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # internal names for every column: the header may hold "" for unnamed ones
    names = [f"c{i}" for i in range(len(part.header))]
    wanted = {part.header.index(c): c for c in columns}
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_bytes(), use_threads=True)
    parse = pacsv.ParseOptions(delimiter=part.delimiter)
    types = {names[i]: pa.float64() for i, c in wanted.items() if c in as_float}
    convert = pacsv.ConvertOptions(include_columns=[names[i] for i in sorted(wanted)], null_values=NA_STRINGS,
                                   strings_can_be_null=True, true_values=["True", "TRUE", "true"],
                                   false_values=["False", "FALSE", "false"], column_types=types)
    source = pa.OSFile(str(part.source))
    try:
        schema = _typed(source, read, parse, convert, pacsv)
    finally:
        source.close()
    order = [wanted[int(f.name[1:])] for f in schema]
    start = 0
    for body, at, first in _slabs(part.source, read.block_size):
        # a slab's blocks are parsed on every core at once: pyarrow's streaming reader parses
        # one block at a time, most of it in the calling thread
        options = pacsv.ReadOptions(column_names=names, skip_rows=1 if first else 0, use_threads=True,
                                    block_size=max(len(body) // SLAB_BLOCKS, MIN_BLOCK // 16))
        try:
            table = pacsv.read_csv(pa.py_buffer(body), read_options=options, parse_options=parse,
                                   convert_options=convert)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise _fallback(exc, wanted) from exc
        del body
        if not table.num_rows:
            continue
        frame = table.to_pandas(split_blocks=True)  # a block per column: numbers are not copied
        del table
        frame.columns = order
        frame.index = range(start, start + len(frame))
        start += len(frame)
        yield (frame[columns] if order != columns else frame), at


def _slabs(path, size: int):
    """(bytes, file offset of their end, whether they are the first) of the file in slabs of
    about `size` bytes, each cut after its last line break: pyarrow reads values without line
    breaks in them (newlines_in_values), so a line break always ends a row. The first slabs are
    smaller (an eighth, a quarter, a half), so the caller's work starts while the next is parsed."""
    with open(path, "rb") as fh:
        first, now = True, min(size, max(size // 8, MIN_BLOCK // 16))
        while True:
            start, held = fh.tell(), fh.read(now)
            now = min(now * 2, size)
            if not held:
                return
            cut = max(held.rfind(b"\n"), held.rfind(b"\r")) + 1
            while not cut:  # a line longer than the slab: read on to its end
                more = fh.read(size)
                if not more:
                    cut = len(held)
                    break
                held += more
                cut = max(held.rfind(b"\n"), held.rfind(b"\r")) + 1
            if cut < len(held):  # the cut line's start is read again with the next slab, not copied
                fh.seek(start + cut)
            yield (memoryview(held)[:cut] if cut < len(held) else held), start + cut, first
            first = False


SIMPLE = ("int64", "double", "bool", "string", "large_string")


def _typed(source, read, parse, convert, pacsv):
    """The file's schema, with every column's type set in `convert`: pyarrow infers them from a first block of
    at most PROBE_BLOCK bytes, read alone, and the whole file is read with those types, since
    inferring a type on every block (trying int64 first) took pyarrow 1.6 to 2 times the CPU of
    reading with the types known. A column pyarrow reads as something pandas does not (a date, a
    time, nothing at all in the first block) is read as text or as float64."""
    import pyarrow as pa

    try:
        probe = pacsv.ReadOptions(column_names=read.column_names, skip_rows=read.skip_rows, use_threads=False,
                                  block_size=min(read.block_size, PROBE_BLOCK))
        schema = pacsv.open_csv(source, read_options=probe, parse_options=parse, convert_options=convert).schema
        convert.column_types = {f.name: f.type if str(f.type) in SIMPLE else
                                pa.float64() if pa.types.is_null(f.type) else pa.string() for f in schema}
        return schema
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise Fallback(str(exc)) from exc


CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to int64")


class Retype(Fallback):
    """An integer column holds decimals further on: read it as float64 from the start."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


def _fallback(exc, wanted: dict) -> Fallback:
    found = CONVERSION.search(str(exc))
    if found and "invalid value" in str(exc) and int(found.group(1)) in wanted:
        return Retype(wanted[int(found.group(1))])  # the column's place in the file, header included
    return Fallback(str(exc))

"""Several files as one table: `data.path` (or a DATA argument) may be a glob such as
`data/part-*.parquet` or a folder (its files named .parquet, .csv, .csv.gz, ...). The files are
read in sorted name order, one after another, and must have the same columns (in any order); a
table's row numbers run on through them."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import NnctlError

GLOB_CHARS = "*?["


def is_many(path) -> bool:
    """Whether a path names several files: a folder, or a glob that is not itself a file's name."""
    text = str(path)
    if text == "-":
        return False
    if os.path.isdir(text):
        return True
    return any(c in text for c in GLOB_CHARS) and not os.path.exists(text)


def _data_file(path: Path) -> bool:
    # files a writer leaves beside its parts (Spark's _SUCCESS, .crc checksums) are not rows
    return path.is_file() and not path.name.startswith((".", "_")) and not path.name.endswith(".crc")


def member_files(path, given_as: str = "data.path") -> list[Path]:
    """The files of a folder or glob, sorted by name; an NnctlError when there are none."""
    from .tables import FORMATS

    text = str(path)
    if os.path.isdir(text):
        # a folder's tables are its files named as tables are; a pattern's, whatever it matches
        files = sorted((f for f in Path(text).iterdir() if _data_file(f) and f.suffix.lower() in FORMATS),
                       key=lambda f: f.name)
        what = f"data path is a folder without data files ({', '.join(sorted(FORMATS))})"
    else:
        files = sorted((Path(f) for f in glob.glob(text, recursive=True) if _data_file(Path(f))), key=str)
        what = "no file matches this pattern"
    if not files:
        raise NnctlError(what, text, f"check {given_as}: a file, a folder of files, or a pattern such as "
                                     "data/part-*.parquet")
    return files


@dataclass
class ManyFiles:
    """A table made of `parts` (each an opened CSV or Parquet table) with one header."""
    where: str
    parts: list
    header: list[str]
    kind: ClassVar[str] = "many"  # its reader in tables.READERS


def open_many(path, open_one, given_as: str) -> ManyFiles:
    """Open every file (headers only) and check that each has the first file's columns."""
    parts = [open_one(f, given_as) for f in member_files(path, given_as)]
    first = parts[0]
    names = [h for h in first.header if h]
    for part in parts[1:]:
        other = [h for h in part.header if h]
        lacking = [c for c in names if c not in other]
        extra = [c for c in other if c not in names]
        if lacking or extra:
            what = f"lacks column '{lacking[0]}'" if lacking else f"has column '{extra[0]}'"
            raise NnctlError(f"this file {what}, unlike the first file of the table ({first.where}): every file "
                             "of a table needs the same columns", part.where,
                             "fix its columns, or move it out of the folder (or the pattern)")
    return ManyFiles(str(path), parts, list(first.header))


def read_many(table: ManyFiles, read_one, columns, chunksize, decimal, as_text):
    """One DataFrame of every file's rows, or with `chunksize` an iterator of chunks whose index
    is the row's number in the whole table."""
    import pandas as pd

    if chunksize is None:
        frames = [read_one(part, columns, None, decimal, as_text) for part in table.parts]
        return pd.concat(frames, ignore_index=True)
    return _chained(table, read_one, columns, chunksize, decimal, as_text)


def _chained(table, read_one, columns, chunksize, decimal, as_text):
    offset = 0
    for part in table.parts:
        rows = 0
        for chunk in read_one(part, columns, chunksize, decimal, as_text):
            chunk.index = range(offset + rows, offset + rows + len(chunk))
            rows += len(chunk)
            yield chunk
        offset += rows


def total_size(path) -> int:
    """Bytes on disk of a file, or of every file of a folder or glob."""
    files = member_files(path) if is_many(path) else [Path(path)]
    return sum(f.stat().st_size for f in files)

"""Reading CSV files as they come: a path, a compressed file (.gz .bz2 .xz .zip), or a stream
(`-` for stdin, /dev/stdin, a shell's <(...)); sniffed delimiter, byte-order mark, Latin-1,
quoted fields. Problems (missing, another format, binary, empty, repeated header names, ragged
rows) are NnctlErrors that name the file and say what to fix."""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import stat
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import NnctlError, did_you_mean

SNIFFED_DELIMITERS = ",;\t|"
STDIN = "-"
HEAD_BYTES = 65536
HEADER_BYTES = 64 << 20  # a header line longer than this is not a table's (1M columns of 60 characters)
SCAN_BYTES = 1 << 20  # bytes decoded at a time when a file's encoding is checked
# a character of two to four bytes as UTF-8 writes it; Latin-1 text almost never holds these pairs
# (an accented capital followed by a symbol such as ©), so a file with them and with bytes that are
# not UTF-8 mixes the two encodings
UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")

# magic bytes -> (compression pandas understands, opener of the decompressed stream)
def _gunzip(source):
    # GzipFile's first argument is a file name: a stream read into memory goes in as fileobj
    return gzip.GzipFile(fileobj=source) if isinstance(source, io.IOBase) else gzip.GzipFile(source)


COMPRESSIONS = {
    b"\x1f\x8b": ("gzip", _gunzip),
    b"BZh": ("bz2", bz2.BZ2File),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMAFile),
}
# what a damaged compressed file raises while it is read: a truncated stream (EOFError), a bad
# CRC or central directory, bytes after the end that are not another member (BadGzipFile, OSError)
DAMAGED = (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error)

CHECKERS = {"gzip": "gzip -t", "bz2": "bzip2 -t", "xz": "xz -t", "zip": "unzip -t"}  # each tests a whole file

# magic bytes of formats that are not CSV -> what to tell the user
OTHER_FORMATS = {
    b"\xd0\xcf\x11\xe0": "an Excel .xls workbook: export the sheet as CSV (File > Save As > CSV)",
    b"PAR1": "a Parquet file: give it as a file named .parquet (a stream or another suffix is read as CSV)",
    b"%PDF": "a PDF document, not a table",
    b"SQLite format 3": "an SQLite database: export the table as CSV",
}


@dataclass
class CsvFile:
    """A sniffed CSV: what to hand pandas (`source`: a path, or the stream's bytes read once)."""
    where: str  # the name in messages
    source: object
    compression: str | None
    encoding: str
    delimiter: str
    header: list[str]  # stripped names; "" for a column without a name
    kind: ClassVar[str] = "csv"  # its reader in tables.READERS


def sniff(path, delimiter: str | None = None, given_as: str = "data.path") -> CsvFile:
    """Find how to read a CSV: compression, encoding, delimiter and header names. `given_as`
    names where the path came from (a config key, or a command's argument) for the hints."""
    where = "stdin" if str(path) == STDIN else str(path)
    source, head = _open(path, where, given_as)
    return _sniffed(source, head, where, delimiter)


def sniff_bytes(data: bytes, where: str, delimiter: str | None = None) -> CsvFile:
    """`sniff` of a CSV already in memory (an HTTP request's body); `where` names it in errors."""
    return _sniffed(io.BytesIO(data), data[:HEAD_BYTES], where, delimiter)


def _sniffed(source, head: bytes, where: str, delimiter: str | None) -> CsvFile:
    compression, head = _decompressed_head(source, head, where)
    head = _whole_header(source, compression, head, where)
    if not head.strip():
        raise NnctlError("data file is empty", where)
    if b"\x00" in head:
        raise NnctlError("data file is not a text CSV file (it has binary content)", where,
                         "give a CSV file (it may be compressed as .gz, .bz2, .xz or .zip)")
    try:
        text, encoding = head.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError as exc:
        if len(head) == HEAD_BYTES and exc.start >= len(head) - 4:  # a character cut at the boundary
            text, encoding = head[: exc.start].decode("utf-8-sig"), "utf-8-sig"
        else:  # every byte is valid Latin-1, the usual encoding of CSVs that are not UTF-8
            text, encoding = head.decode("latin-1"), "latin-1"
            _refuse_mixed_encodings(source, compression, where)
    first_line = text.splitlines()[0] if text.splitlines() else ""
    if delimiter is None:
        counts = {d: _count_outside_quotes(first_line, d) for d in SNIFFED_DELIMITERS}
        delimiter = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    header = next(csv.reader(io.StringIO(first_line), delimiter=delimiter, skipinitialspace=True), [])
    header = [h.strip() for h in header]
    dupes = sorted(h for h, n in Counter(header).items() if h and n > 1)  # not header.count: 200,000 columns
    if dupes:
        raise NnctlError(f"the header names {', '.join(repr(d) for d in dupes)} more than once", where,
                         "rename the repeated columns")
    return CsvFile(where, source, compression, encoding, delimiter, header)


def _whole_header(source, compression, head: bytes, where: str) -> bytes:
    """`head`, or when it ends inside the header line (a table of many thousands of columns),
    the file's bytes up to the end of that line: a name cut in two would read as another."""
    if len(head) < HEAD_BYTES or b"\n" in head or b"\r" in head:
        return head
    line = bytearray()
    with _text_stream(source, compression) as fh:
        while len(line) <= HEADER_BYTES:
            chunk = fh.read(SCAN_BYTES)
            line += chunk
            end = max(chunk.find(b"\n"), chunk.find(b"\r"))
            if not chunk or end >= 0:
                return bytes(line)
    raise NnctlError(f"the header line is longer than {HEADER_BYTES >> 20} MB: this is not a table nnctl reads",
                     where, "give a CSV with a header row of column names")


def require_file(path, where: str, given_as: str) -> int:
    """The path's stat mode; a missing path or a folder is an NnctlError saying where the path
    came from (`given_as`: a config key or a command's argument)."""
    hint = f"check {given_as}" + (" (written in the config file: relative to that file; given with --set: "
                                  "relative to the current folder)" if given_as.startswith("data.") else "")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise NnctlError("data file not found", where, hint)
    if stat.S_ISDIR(mode):
        raise NnctlError("data path is a folder, not a data file", where, hint)
    return mode


def require_regular(path, where: str, given_as: str, why: str) -> None:
    """An NnctlError unless the path is a regular file: a FIFO, a device or a socket can be read
    once, as it comes, and opening one waits for a writer that may never come (through SIGTERM
    and Ctrl-C alike), so what must seek or read a file twice refuses them first."""
    if not stat.S_ISREG(require_file(path, where, given_as)):
        raise NnctlError(f"data path is not a regular file (a FIFO, a device or a socket), and {why}", where,
                         f"save the data to a file first and give that file as {given_as}")


def _open(path, where: str, given_as: str):
    """(what pandas reads, the first bytes). A regular file is read by path; a stream (stdin,
    a pipe) has no size and cannot be read twice, so it is read once into memory."""
    if where == "stdin":
        data = sys.stdin.buffer.read()
        return io.BytesIO(data), data[:HEAD_BYTES]
    path = Path(path)
    if not stat.S_ISREG(require_file(path, where, given_as)):
        with open(path, "rb") as fh:
            data = fh.read()
        return io.BytesIO(data), data[:HEAD_BYTES]
    with open(path, "rb") as fh:
        return path, fh.read(HEAD_BYTES)


def _decompressed_head(source, head: bytes, where: str) -> tuple[str | None, bytes]:
    """(compression, the first bytes of the text) — or an NnctlError naming a format that is
    not CSV."""
    for magic, what in OTHER_FORMATS.items():
        if head.startswith(magic):
            raise NnctlError(f"data file is {what.split(':')[0]}, not CSV", where, what.split(": ", 1)[-1])
    if head.startswith(b"PK\x03\x04"):
        try:
            return "zip", _zip_head(source, where)
        except DAMAGED as exc:
            raise damaged_error(exc, "zip", where)
    for magic, (compression, opener) in COMPRESSIONS.items():
        if head.startswith(magic):
            try:
                with opener(_rewound(source)) as fh:
                    return compression, fh.read(HEAD_BYTES)
            except DAMAGED as exc:
                raise damaged_error(exc, compression, where)
    return None, head


def _zip_head(source, where: str) -> bytes:
    """The first bytes of the one CSV in a .zip."""
    with zipfile.ZipFile(_rewound(source)) as archive:
        names = archive.namelist()
        if any(n.startswith("xl/") for n in names):
            raise NnctlError("data file is an Excel .xlsx workbook, not CSV", where,
                             "export the sheet as CSV (File > Save As > CSV)")
        members = [n for n in names if not n.endswith("/")]
        if len(members) != 1:
            raise NnctlError(f"a .zip holding {len(members)} files; nnctl reads a .zip with one CSV in it",
                             where, "unzip it and give the CSV file")
        with archive.open(members[0]) as fh:
            return fh.read(HEAD_BYTES)


def damaged_error(exc: BaseException, compression: str, where: str) -> NnctlError:
    """A compressed file that cannot be read to its end, as the user's problem it is."""
    if isinstance(exc, EOFError):
        what = "it ends before its compressed data does (a truncated file)"
    elif isinstance(exc, zipfile.BadZipFile) and "not a zip file" in str(exc).lower():
        what = "its table of contents is missing (a truncated or damaged .zip)"
    elif isinstance(exc, gzip.BadGzipFile) and "not a gzipped file" in str(exc).lower():
        what = "bytes after its compressed data are not gzip (trailing garbage, or a file cut and joined)"
    else:
        what = str(exc) or type(exc).__name__
    return NnctlError(f"cannot decompress the {compression} file: {what}", where,
                      f"the file is truncated or damaged: copy or download it again (check it with "
                      f"{CHECKERS[compression]} FILE)")


def _text_stream(source, compression):
    """The file's bytes after decompression, as a binary file object to read in chunks."""
    source = _rewound(source)
    if compression == "zip":
        archive = zipfile.ZipFile(source)
        return archive.open([n for n in archive.namelist() if not n.endswith("/")][0])
    if compression is not None:
        return dict(COMPRESSIONS.values())[compression](source)
    if isinstance(source, io.BytesIO):  # a stream read into memory: pandas reads it next, so it stays open
        return io.BytesIO(source.getvalue())
    return open(source, "rb")


def _scan_lines(source, compression, where: str):
    """(line number, bytes) of the file in chunks of whole lines (1-based number of each
    chunk's first line)."""
    try:
        yield from _lines(source, compression)
    except DAMAGED as exc:
        if compression is None:
            raise
        raise damaged_error(exc, compression, where)


def _lines(source, compression):
    with _text_stream(source, compression) as fh:
        line, carry = 1, b""
        while True:
            chunk = fh.read(SCAN_BYTES)
            data = carry + chunk
            if not chunk:
                if data:
                    yield line, data
                return
            cut = data.rfind(b"\n") + 1
            if cut:
                yield line, data[:cut]
                line += data.count(b"\n", 0, cut)
            carry = data[cut:]


def _first_lines(source, compression, where: str) -> tuple[int | None, int | None]:
    """(the first line that is not valid UTF-8, the first line with a UTF-8 character beyond
    ASCII): each None when there is none."""
    not_utf8 = utf8 = None
    for line, data in _scan_lines(source, compression, where):
        if not_utf8 is None:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                not_utf8 = line + data.count(b"\n", 0, exc.start)
        if utf8 is None:
            match = UTF8_MULTIBYTE.search(data)
            if match:
                utf8 = line + data.count(b"\n", 0, match.start())
        if not_utf8 is not None and utf8 is not None:
            break
    return not_utf8, utf8


def _refuse_mixed_encodings(source, compression, where: str) -> None:
    """A file that is not valid UTF-8 is read as Latin-1; if it also holds UTF-8 characters, the
    same word is spelt two ways and a label such as 'é' would become two classes."""
    not_utf8, utf8 = _first_lines(source, compression, where)
    if not_utf8 is not None and utf8 is not None:
        raise NnctlError(f"data file mixes text encodings: it is not valid UTF-8 from line {not_utf8} on, so it "
                         f"would be read as Latin-1, but line {utf8} is UTF-8 (the same label would be spelt two ways)",
                         where, "save the file in one encoding (UTF-8), e.g. iconv -f latin1 -t utf-8 on the "
                                "rows that are Latin-1")


def _not_utf8_error(csv_file: CsvFile) -> NnctlError:
    """The file started as UTF-8 (its first bytes were read so) and stops being UTF-8 later."""
    not_utf8, _ = _first_lines(csv_file.source, csv_file.compression, csv_file.where)
    line = f"line {not_utf8}" if not_utf8 is not None else "a later line"
    return NnctlError(f"data file is read as UTF-8 (as its first {HEAD_BYTES // 1024} KB are), but {line} is not "
                      "valid UTF-8: the file mixes encodings, or is Latin-1 from there on", csv_file.where,
                      "save the whole file as UTF-8")


def _rewound(source):
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return source


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


# pandas' own list of cells read as missing; given per column, so that `as_text` columns can do without it
NA_STRINGS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def read_csv(csv_file: CsvFile, columns=None, chunksize=None, decimal: str = ".", as_text=()):
    """A DataFrame (or an iterator of them with `chunksize`) of the CSV; `columns` restricts
    which are kept, and `as_text` columns are kept exactly as written (no number parsing, no
    missing values). Parser errors become NnctlError naming the file and line."""
    import pandas as pd

    where = csv_file.where
    if columns is not None:
        require_columns(csv_file.header, columns, where)
    if decimal == csv_file.delimiter:  # a comma file cannot also use decimal commas
        decimal = "."
    text = {}
    if as_text:
        text = {"dtype": {c: str for c in as_text}, "keep_default_na": False,
                "na_values": {c: NA_STRINGS for c in csv_file.header if c not in as_text}}
    try:
        # every column is parsed (not `usecols`), so a row with too many fields is an error
        frame = pd.read_csv(_rewound(csv_file.source), sep=csv_file.delimiter, encoding=csv_file.encoding,
                            compression=csv_file.compression, skipinitialspace=True, chunksize=chunksize,
                            low_memory=False, decimal=decimal, **text)
        if chunksize is None:
            frame = _select(frame, columns, where)
        else:
            frame = (_select(chunk, columns, where) for chunk in _parsed(frame, csv_file))
    except pd.errors.EmptyDataError:
        raise NnctlError("data file is empty", where)
    except pd.errors.ParserError as exc:
        raise parse_error(exc, where)
    except UnicodeDecodeError:
        raise _not_utf8_error(csv_file)
    except DAMAGED as exc:
        if csv_file.compression is None:
            raise
        raise damaged_error(exc, csv_file.compression, where)
    if chunksize is None:
        if len(frame) == 0:
            raise NnctlError("data file has a header but no data rows", where)
    return frame


def parse_error(exc, where) -> NnctlError:
    """pandas' parser error as the user's mistake it is; its tokenizer runs out of memory on a
    file (a compressed one, often) that expands past what the machine holds, and then the
    delimiter has nothing to do with it."""
    text = str(exc).strip()
    if "out of memory" in text.lower():
        return NnctlError("not enough memory to read this file: it expands to more than this machine holds", where,
                          "use a smaller file or fewer columns (data.features), or more memory")
    return NnctlError(f"cannot parse the CSV: {text}", where, "check the delimiter (data.delimiter) and quoting")


def _select(frame, columns, where):
    import pandas as pd

    if not isinstance(frame.index, pd.RangeIndex):
        # rows with more fields than the header has names: pandas takes the first fields as an
        # index, silently shifting every column by them
        raise NnctlError(f"rows have more fields than the header's {len(frame.columns)} column names", where,
                         "check the delimiter (data.delimiter), or give every column a name in the header")
    names = [str(c).strip() for c in frame.columns]
    if names != list(frame.columns):
        frame.columns = names
    # a table of just the wanted columns is kept as parsed: selecting copies it, which costs a
    # small request (nnctl serve's CSV body) more than the model does
    return frame if columns is None or names == list(columns) else frame[list(columns)]


def _parsed(chunks, csv_file: CsvFile):
    """Chunks of a CSV, with parser errors in later chunks turned into NnctlError too."""
    import pandas as pd

    try:
        yield from chunks
    except pd.errors.ParserError as exc:
        raise parse_error(exc, csv_file.where)
    except UnicodeDecodeError:
        raise _not_utf8_error(csv_file)
    except DAMAGED as exc:
        if csv_file.compression is None:
            raise
        raise damaged_error(exc, csv_file.compression, csv_file.where)


def require_columns(header, columns, where):
    missing = [c for c in columns if c not in header]
    if missing:
        first = missing[0]
        named = [h for h in header if h]
        raise NnctlError(f"column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} not in the CSV"
                         f"{did_you_mean(first, named)}", where,
                         f"its columns: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}", column=first)

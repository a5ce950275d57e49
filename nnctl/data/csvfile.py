"""Reading CSV files as they come: sniffed delimiter, byte-order mark, Latin-1, quoted fields.
Problems (missing, binary, empty, blank or repeated header names, ragged rows) are NnctlErrors
that name the file and say what to fix."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import NnctlError, did_you_mean

SNIFFED_DELIMITERS = ",;\t|"


def sniff(path: Path, delimiter: str | None) -> tuple[str, str, list[str]]:
    """(encoding, delimiter, header names) of a CSV file, with clear errors for files that are
    missing, binary, empty, or whose header has blank or repeated names."""
    if not path.exists():
        raise NnctlError("data file not found", str(path), "check data.path (relative to the config file)")
    if path.is_dir():
        raise NnctlError("data path is a folder, not a CSV file", str(path))
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise NnctlError("data file is empty", str(path))
    if b"\x00" in head:
        raise NnctlError("data file is not a text CSV file (it has binary content)", str(path))
    try:
        text, encoding = head.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError as exc:
        if len(head) == 65536 and exc.start >= len(head) - 4:  # a character cut at the boundary
            text, encoding = head[: exc.start].decode("utf-8-sig"), "utf-8-sig"
        else:  # every byte is valid Latin-1, the usual encoding of CSVs that are not UTF-8
            text, encoding = head.decode("latin-1"), "latin-1"
    first_line = text.splitlines()[0] if text.splitlines() else ""
    if delimiter is None:
        counts = {d: _count_outside_quotes(first_line, d) for d in SNIFFED_DELIMITERS}
        delimiter = max(counts, key=counts.get) if max(counts.values()) > 0 else ","
    header = next(csv.reader(io.StringIO(first_line), delimiter=delimiter, skipinitialspace=True), [])
    header = [h.strip() for h in header]
    for i, name in enumerate(header):
        if not name:
            raise NnctlError(f"column {i + 1} of the header has no name", str(path), "give every column a name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise NnctlError(f"the header names {', '.join(repr(d) for d in dupes)} more than once", str(path),
                         "rename the repeated columns")
    return encoding, delimiter, header


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def read_csv(path, delimiter=None, columns=None, chunksize=None, sniffed=None):
    """A DataFrame (or an iterator of them with `chunksize`) of the CSV; `columns` restricts
    which are parsed. `sniffed` is `sniff(path, delimiter)` when the caller already has it.
    Parser errors become NnctlError naming the file and line."""
    import pandas as pd

    path = Path(path)
    encoding, delimiter, header = sniffed or sniff(path, delimiter)
    if columns is not None:
        _require_columns(header, columns, path)
    try:
        # every column is parsed (not `usecols`), so a row with too many fields is an error
        frame = pd.read_csv(path, sep=delimiter, encoding=encoding, skipinitialspace=True,
                            chunksize=chunksize, low_memory=False)
        if chunksize is None:
            frame = _select(frame, columns)
        else:
            frame = (_select(chunk, columns) for chunk in _parsed(frame, path))
    except pd.errors.EmptyDataError:
        raise NnctlError("data file is empty", str(path))
    except pd.errors.ParserError as exc:
        raise NnctlError(f"cannot parse the CSV: {str(exc).strip()}", str(path),
                         "check the delimiter (data.delimiter) and quoting")
    except UnicodeDecodeError:
        raise NnctlError("data file is not UTF-8 or Latin-1 text", str(path))
    if chunksize is None:
        if len(frame) == 0:
            raise NnctlError("data file has a header but no data rows", str(path))
    return frame


def _select(frame, columns):
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame if columns is None else frame[list(columns)]


def _parsed(chunks, path):
    """Chunks of a CSV, with parser errors in later chunks turned into NnctlError too."""
    import pandas as pd

    try:
        yield from chunks
    except pd.errors.ParserError as exc:
        raise NnctlError(f"cannot parse the CSV: {str(exc).strip()}", str(path),
                         "check the delimiter (data.delimiter) and quoting")


def _require_columns(header, columns, path):
    missing = [c for c in columns if c not in header]
    if missing:
        first = missing[0]
        raise NnctlError(f"column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} not in the CSV"
                         f"{did_you_mean(first, header)}", str(path),
                         f"its columns: {', '.join(header[:20])}{' ...' if len(header) > 20 else ''}")

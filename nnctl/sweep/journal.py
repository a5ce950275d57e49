"""Is a sweep's `study.journal` whole? Optuna appends each record as one JSON line and skips a
torn last line when it reads, but its next append would land on the end of that line and make
the whole journal unreadable; so a damaged journal is refused before a resumed sweep adds to it."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import NnctlError


def check_journal(path: Path) -> None:
    """An NnctlError naming `path` and the line when a record is not whole JSON."""
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    torn = lines.pop()  # what follows the last newline: empty in a whole journal
    if torn:
        raise NnctlError(f"study.journal's last line (line {len(lines) + 1}) is cut short: the sweep was stopped "
                         "while writing it", str(path),
                         f"remove that line to resume from the trials before it: sed -i '$d' {path}")
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise NnctlError(f"study.journal line {number} is not a JSON record: the journal is damaged",
                             str(path), "start the sweep again in a new folder")

"""A sweep folder's files read back for `--resume`, each checked, so a damaged or hand-edited
one is one error naming the file (and its line), never a crash inside the resumed sweep.

`study.journal`: Optuna appends each record as one JSON line and skips a torn last line when it
reads, but its next append would land on the end of that line and make the whole journal
unreadable; so a damaged journal is refused before a resumed sweep adds to it.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..config.validate import Checker
from ..config.yamlfile import read_yaml
from ..errors import NnctlError
from .spec import SWEEP

DAMAGED = "the sweep folder is damaged: restore the file, or start the sweep again in a new folder"


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


def read_saved_sweep(path: Path) -> dict:
    """The resolved sweep a sweep folder keeps in sweep.yaml, checked again like a sweep file
    (resolving is idempotent), with the base config it saved beside it."""
    raw, node = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("base"), dict) \
            or not isinstance(raw.get("base_overrides", []), list):
        raise NnctlError("sweep.yaml is not a sweep as nnctl saves it (a mapping with its base config)",
                         str(path), DAMAGED)
    rest = {k: v for k, v in raw.items() if k not in ("base", "base_overrides")}
    sweep = Checker(str(path), node, Path(path).resolve().parent, ()).section(rest, SWEEP, [])
    return {**sweep, "base": raw["base"], "base_overrides": raw.get("base_overrides", [])}


def read_trials(path: Path) -> dict[int, dict]:
    """{trial number: row} of a sweep's trials.csv (none when it is missing); an NnctlError
    naming the file and line for a row nnctl would not have written."""
    if not path.exists():
        return {}
    rows = {}
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                if None in row or None in row.values():
                    raise ValueError("its cells do not match the header")
                trial = int(row["trial"])
                int(row.get("epochs") or 0), float(row.get("seconds") or 0.0)
                if trial < 0:
                    raise ValueError("a negative trial number")
            except (KeyError, ValueError) as exc:
                raise NnctlError(f"trials.csv line {line} is not a trial's row ({exc})", str(path), DAMAGED)
            rows[trial] = row
    return rows

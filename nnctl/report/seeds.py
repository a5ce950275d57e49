"""The report of a `nnctl train --seeds N` folder: how much of each score is luck. Read from the
folder's seeds.csv and summary.json alone (each seed's run has its own `nnctl report`)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from .. import __version__
from ..errors import NnctlError
from .page import _html, _num, _table
from .svg import strip_chart

SEEDS_FILE, SUMMARY_FILE = "seeds.csv", "summary.json"
DAMAGED_HINT = "train the seeds again: nnctl train CONFIG --seeds N"


@dataclass
class SeedsData:
    path: Path
    summary: dict
    rows: list[dict]  # seeds.csv: seed, each final metric, run

    @property
    def metrics(self) -> list[str]:
        return [k for k, v in self.summary.items() if isinstance(v, dict) and "mean" in v]


def is_seeds_folder(path) -> bool:
    path = Path(path)
    return (path / SEEDS_FILE).is_file() and (path / SUMMARY_FILE).is_file()


def read_seeds(folder) -> SeedsData:
    """A seeds folder's files; an NnctlError naming the file when one is not what train wrote."""
    path = Path(folder)
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text())
        with open(path / SEEDS_FILE, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise NnctlError(f"cannot read this seeds folder: {exc}", str(path), DAMAGED_HINT)
    if not isinstance(summary, dict) or not isinstance(summary.get("representative"), dict) or not rows:
        raise NnctlError(f"{SUMMARY_FILE} or {SEEDS_FILE} is not what `train --seeds` writes", str(path), DAMAGED_HINT)
    data = SeedsData(path, summary, [])
    for metric in data.metrics:  # the page shows all four of each; a missing one is a damaged file
        spread = summary[metric]
        if not all(isinstance(spread.get(k), (int, float)) and not isinstance(spread.get(k), bool)
                   for k in ("mean", "std", "min", "max")):
            raise NnctlError(f"{SUMMARY_FILE}'s `{metric}` must hold the numbers mean, std, min and max",
                             str(path / SUMMARY_FILE), DAMAGED_HINT)
    for line, row in enumerate(rows, start=2):
        try:
            data.rows.append({"seed": int(row["seed"]), "run": row["run"],
                              **{m: float(row[m]) for m in data.metrics}})
        except (KeyError, TypeError, ValueError):
            raise NnctlError(f"{SEEDS_FILE} line {line} is not a seed with every metric of {SUMMARY_FILE}",
                             str(path / SEEDS_FILE), DAMAGED_HINT)
    return data


def _run_link(folder: Path, run: str) -> str:
    """The run's page (or else its folder), relative to this page when it lies inside the seeds
    folder, as `train --seeds` writes it."""
    name = Path(run).name
    page = "report.html" if (folder / name / "report.html").is_file() else ""
    href = f"{name}/{page}" if (folder / name).is_dir() else Path(run).as_uri() if Path(run).is_absolute() else run
    return f'<a href="{escape(href)}">{escape(name)}</a>'


def seeds_page(data: SeedsData) -> str:
    s, rows = data.summary, data.rows
    main, kept = s.get("metric"), s["representative"]
    seeds = [r["seed"] for r in rows]
    spread = [[escape(m) + (" (chooses the kept run)" if m == main else ""),
               f"{_num(s[m]['mean'])} ± {_num(s[m]['std'])}", f"{_num(s[m]['min'])} – {_num(s[m]['max'])}"]
              for m in data.metrics]
    kept_index = next((i for i, r in enumerate(rows) if r["seed"] == kept.get("seed")), None)
    charts = [strip_chart(seeds, [r[m] for r in rows], m, "seed", m, s[m]["mean"], s[m]["std"], kept_index)
              for m in data.metrics]
    per_seed = [[str(r["seed"])] + [_num(r[m]) for m in data.metrics]
                + [_run_link(data.path, r["run"]) + (" (kept)" if r["seed"] == kept.get("seed") else "")]
                for r in rows]
    note = f'<p class="note">{escape(s["note"])}</p>' if s.get("note") else ""
    kept_run = Path(str(kept.get("run", ""))).name
    kept_name = escape(kept_run)
    body = [f"<h1>{escape(data.path.name)}</h1>",
            f'<p class="muted">{len(rows)} seeds ({seeds[0]}–{seeds[-1]}) · kept: {kept_name}, the median by '
            f"{escape(str(main))} · nnctl {escape(__version__)}</p>", note,
            "<h2>Spread over the seeds</h2>",
            "<p class=muted>Each seed draws its own initial weights, shuffle and validation split. "
            "std is the population std (ddof=0). The kept run is the median by the main metric (the lower "
            "middle one for an even number of seeds); its own page: "
            f"<code>nnctl report {escape(str(data.path / kept_run))}</code>.</p>",
            _table(["metric", "mean ± std", "min – max"], spread, "summary"),
            f'<div class="grid2">{"".join(charts)}</div>',
            "<h2>Each seed</h2>", _table(["seed", *data.metrics, "run"], per_seed)]
    return _html(f"nnctl report: {data.path.name}", body)

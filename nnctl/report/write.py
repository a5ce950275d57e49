"""`report_runs`: the report of one run (into its folder) or a comparison of several."""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import NnctlError
from ..runs.folder import RunFolder
from .page import comparison_page, run_page
from .rundata import read_run
from .seeds import is_seeds_folder, read_seeds, seeds_page


def report_runs(runs, output=None) -> Path:
    """Write the report; returns its path. One run: `<run>/report.html` by default; several
    runs need `output`. A `train --seeds` folder (reported alone) gets the spread over its seeds."""
    runs = [Path(r) for r in runs]
    if len(runs) > 1 and output is None:
        raise NnctlError("several runs make one comparison page: say where it goes", "--output",
                         "e.g. --output compare.html")
    seeds = [r for r in runs if is_seeds_folder(r)]
    if seeds and len(runs) > 1:
        raise NnctlError("a seeds folder is reported alone", str(seeds[0]),
                         "report it on its own; to compare its runs, pass their seed_<N> folders")
    data = [read_seeds(r) if seeds else read_run(r) for r in runs]
    output = Path(output) if output is not None else RunFolder(runs[0]).file(RunFolder.REPORT)
    if output.is_dir():
        raise NnctlError("--output is a folder", str(output), "give a file name, e.g. report.html")
    html = seeds_page(data[0]) if seeds else run_page(data[0]) if len(data) == 1 else comparison_page(data)
    try:
        write_text_atomic(output, html)
    except (PermissionError, FileNotFoundError) as exc:
        raise NnctlError(f"cannot write there: {exc.strerror}", str(output), "give a writable --output path")
    return output

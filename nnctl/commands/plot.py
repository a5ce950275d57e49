"""Loss curves as PNG, with matplotlib from the optional `plot` extra (pip install nnctl[plot])."""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import NnctlError
from ..runs.folder import RunFolder

INSTALL_HINT = "install the plot extra: pip install 'nnctl[plot]' (or pip install matplotlib)"


def have_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def plot_histories(curves: list[tuple[str, list[dict]]], output) -> Path:
    """Draw train (solid) and validation (dashed) loss of each (label, history) on one axis,
    and the validation metric on a second panel when there is one; save a PNG to `output`."""
    if not have_matplotlib():
        raise NnctlError("plotting needs matplotlib, which is not installed", "nnctl plot", INSTALL_HINT)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image_format(output)
    metric = next((k for _, h in curves for k in (h[0] if h else {}) if k.startswith("val_") and k != "val_loss"), None)
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(11 if metric else 7, 4.2), squeeze=False)
    loss_ax = axes[0][0]
    for i, (label, history) in enumerate(curves):
        epochs = [row["epoch"] for row in history]
        color = f"C{i % 10}"
        loss_ax.plot(epochs, [row["train_loss"] for row in history], color=color, label=f"{label} train")
        if history and "val_loss" in history[0]:
            loss_ax.plot(epochs, [row["val_loss"] for row in history], color=color, linestyle="--",
                         label=f"{label} validation")
        if metric and history and metric in history[0]:
            axes[0][1].plot(epochs, [row[metric] for row in history], color=color, label=label)
    positive = all(row["train_loss"] > 0 for _, h in curves for row in h if math.isfinite(row["train_loss"]))
    if positive:
        loss_ax.set_yscale("log")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend(fontsize="small")
    if metric:
        axes[0][1].set(xlabel="epoch", ylabel=metric, title=metric)
        axes[0][1].legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, output)


def image_format(output) -> str:
    """The image format `output` names by its suffix (png without one, as `-o` means that very
    file); a folder or a suffix matplotlib cannot write is an NnctlError, before any drawing."""
    from matplotlib.backend_bases import FigureCanvasBase

    output = Path(output)
    if output.is_dir():
        raise NnctlError("--output is a folder", str(output), "give a file name, e.g. loss-curves.png")
    suffix = output.suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise NnctlError(f"cannot draw a '.{suffix}' image", str(output),
                         f"use one of: {', '.join(sorted(formats))} (e.g. loss-curves.png)")
    return suffix


def save_figure(fig, output) -> Path:
    """Save `fig` whole or not at all to exactly `output` (matplotlib alone would add `.png` to
    a name without a suffix), then close it; returns the path written."""
    import matplotlib.pyplot as plt

    from ..atomic import atomic_file

    output = Path(output)
    try:
        with atomic_file(output, "wb") as fh:
            fig.savefig(fh, format=image_format(output), dpi=100)
    finally:
        plt.close(fig)
    return output


def try_plot_run(folder, history: list[dict], label: str) -> bool:
    """Write `loss.png` into a run folder when matplotlib is installed; otherwise do nothing."""
    if not have_matplotlib() or not history:
        return False
    plot_histories([(label, history)], RunFolder(folder).file(RunFolder.PLOT))
    return True


def is_sweep(folder) -> bool:
    return (Path(folder) / "trials.csv").exists() and (Path(folder) / "summary.json").exists()


def plot_sweep(folder, output) -> Path:
    """A sweep's optimization history (each trial's value, and the best so far) and each
    parameter against the metric, one panel each, into a PNG."""

    if not have_matplotlib():
        raise NnctlError("plotting needs matplotlib, which is not installed", "nnctl plot", INSTALL_HINT)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image_format(output)
    folder = Path(folder)
    summary, rows = _sweep_summary(folder), _complete_trials(folder / "trials.csv")
    if not rows:
        raise NnctlError("the sweep has no complete trial to plot", str(folder))
    fixed = {"trial", "state", "value", "epochs", "seconds", "node", "run", "error"}
    params = [k for k in rows[0] if k not in fixed]
    values = [float(r["value"]) for r in rows]
    better = max if summary["goal"] == "maximize" else min
    fig, axes = plt.subplots(1, 1 + len(params), figsize=(4.2 * (1 + len(params)), 3.6), squeeze=False)
    history = axes[0][0]
    trials = [int(r["trial"]) for r in rows]
    history.scatter(trials, values, s=14, label="trial")
    history.plot(trials, [better(values[: i + 1]) for i in range(len(values))], color="C1", label="best so far")
    history.set(xlabel="trial", ylabel=summary["metric"], title="optimization history")
    from matplotlib.ticker import MaxNLocator

    history.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    logs = _log_uniform(folder)
    history.legend(fontsize="small")
    for ax, name in zip(axes[0][1:], params):
        shown = [r[name] for r in rows]
        try:
            xs = [float(v) for v in shown]
            ax.scatter(xs, values, s=14)
            if name in logs or (min(xs) > 0 and max(xs) / min(xs) > 100):
                ax.set_xscale("log")
        except ValueError:  # listed values such as [32, 16]: one column each
            labels = sorted(set(shown), key=shown.index)
            ax.scatter([labels.index(v) for v in shown], values, s=14)
            ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize="small")
        ax.set(xlabel=name, ylabel=summary["metric"], title=name)
    fig.tight_layout()
    return save_figure(fig, output)


DAMAGED_SWEEP = "the sweep folder is damaged: run the sweep again, or restore the file"


def _sweep_summary(folder: Path) -> dict:
    """summary.json with the `metric` and `goal` the plot needs; an NnctlError naming it."""
    import json

    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NnctlError("summary.json is not valid JSON", str(path), DAMAGED_SWEEP)
    if not isinstance(summary, dict) or not isinstance(summary.get("metric"), str) \
            or summary.get("goal") not in ("minimize", "maximize"):
        raise NnctlError("summary.json lacks the sweep's `metric` and `goal`", str(path), DAMAGED_SWEEP)
    return summary


def _complete_trials(path: Path) -> list[dict]:
    """The complete trials of trials.csv, each with a whole trial number and a numeric value;
    an NnctlError naming the file and line for a row nnctl would not have written."""
    import csv

    rows = []
    with open(path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            if None in row or None in row.values() or "state" not in row:
                raise NnctlError(f"trials.csv line {line} does not have its header's cells", str(path), DAMAGED_SWEEP)
            if row["state"] != "complete" or not row.get("value"):
                continue
            try:
                int(row["trial"]), float(row["value"])
            except (KeyError, ValueError):
                raise NnctlError(f"trials.csv line {line}: trial '{row.get('trial')}' or value '{row.get('value')}' "
                                 "is not a number", str(path), DAMAGED_SWEEP)
            rows.append(row)
    return rows


def _log_uniform(folder: Path) -> set:
    """The parameters the sweep drew on a log scale (sweep.yaml), drawn on log axes too."""
    import yaml

    try:
        sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
        return {name for name, p in sweep["parameters"].items() if p.get("distribution") == "log_uniform"}
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return set()  # an older or damaged sweep.yaml: the plot falls back to the range of the values

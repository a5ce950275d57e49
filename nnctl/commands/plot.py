"""Loss curves as PNG, with matplotlib from the optional `plot` extra (pip install nnctl[plot])."""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import NnctlError

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
    output = Path(output)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def try_plot_run(folder, history: list[dict], label: str) -> bool:
    """Write `loss.png` into a run folder when matplotlib is installed; otherwise do nothing."""
    if not have_matplotlib() or not history:
        return False
    plot_histories([(label, history)], Path(folder) / "loss.png")
    return True

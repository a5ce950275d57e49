"""Backprop's health in words, from a run's diagnostics: what a student or an engineer should
look at, each flag with the numbers behind it and what to try."""
from __future__ import annotations

import math

VANISHING = 1e-3  # the first layer's gradient norm below this share of the last's
EXPLODING = 1e3  # a layer's gradient norm grown by this factor since the first logged epoch
DEAD = 0.5  # more than this share of a ReLU layer's units dead
RATIO_LOW, RATIO_HIGH = 1e-5, 1e-1  # update ratios outside these are far from ~1e-3


def _by_layer(rows: list[dict]) -> dict[int, list[dict]]:
    layers: dict[int, list[dict]] = {}
    for row in rows:
        layers.setdefault(int(row["layer"]), []).append(row)
    return layers


def _median(values):
    values = sorted(v for v in values if v is not None and math.isfinite(v))
    return values[len(values) // 2] if values else None


def layer_name(i: int, trainable: list) -> str:
    """`layer 1 (batch norm)`: diagnostics count trainable layers, which are not all dense, so
    the kind is said when model.npz told it (`trainable`: blocks.Trainable per row)."""
    return f"layer {i} ({trainable[i].kind})" if i < len(trainable) else f"layer {i}"


def dead_name(i: int, trainable: list) -> str:
    """Where a row's dead units are: in the ReLU that trainable layer i feeds."""
    if i < len(trainable) and trainable[i].relu:
        return f"the {trainable[i].relu} after {layer_name(i, trainable)}"
    return f"layer {i}"


def flags(rows: list[dict], trainable: list = ()) -> list[tuple[str, str]]:
    """(severity, sentence) for each sign of trouble; ('ok', ...) when there is none."""
    if not rows:
        return []
    trainable = list(trainable)
    layers = _by_layer(rows)
    first, last = min(layers), max(layers)
    found = []
    final = {i: layer[-1] for i, layer in layers.items()}
    if len(layers) > 1 and final[last]["grad_norm"] and final[first]["grad_norm"] is not None:
        share = final[first]["grad_norm"] / final[last]["grad_norm"]
        if share < VANISHING:
            found.append(("warning", f"Vanishing gradients: at epoch {int(final[first]['epoch'])} the first layer's "
                                     f"gradient norm ({final[first]['grad_norm']:.2e}) is {share:.1e} of the last "
                                     f"layer's ({final[last]['grad_norm']:.2e}). Its weights barely learn; try relu "
                                     "activations, He initialization, or fewer layers."))
    for i, layer in layers.items():
        start, end = layer[0]["grad_norm"], layer[-1]["grad_norm"]
        if start and end is not None and (not math.isfinite(end) or end / start > EXPLODING):
            found.append(("warning", f"Exploding gradients in {layer_name(i, trainable)}: the gradient norm grew from {start:.2e} to "
                                     f"{end:.2e}. Try a lower learning rate, or l2."))
        dead = layer[-1].get("dead_fraction")
        if dead is not None and dead > DEAD:
            found.append(("warning", f"Dead units in {dead_name(i, trainable)}: {dead:.0%} of its units were ≤ 0 on every row of "
                                     "the last logged batch, so they pass no gradient back. Try a lower learning "
                                     "rate, leaky_relu, or a smaller init."))
        ratio = _median(r["update_ratio"] for r in layer)
        if ratio is not None and ratio < RATIO_LOW:
            found.append(("warning", f"Tiny updates in {layer_name(i, trainable)}: the median update is {ratio:.1e} of the weights "
                                     "(about 1e-3 is usual). The learning rate may be too low."))
        elif ratio is not None and ratio > RATIO_HIGH:
            found.append(("warning", f"Large updates in {layer_name(i, trainable)}: the median update is {ratio:.1e} of the weights "
                                     "(about 1e-3 is usual). The learning rate may be too high."))
    if not found:
        found.append(("ok", "No sign of vanishing or exploding gradients, dead units or badly sized updates."))
    return found


RISE_SHARE = 0.25  # validation loss above its lowest for at least this share of the epochs trained...
RISE_ROWS = 5  # ...over at least this many logged epochs...
RISE_FACTOR = 1.10  # ...and ending at least this factor above its lowest: overfitting worth a word


def validation_rise(history: list[dict], saved_epoch=None, few_rows: bool = False) -> str | None:
    """A sentence when validation loss rose for a long stretch at the end of training (the
    network overfits), saying from where to where and which weights were saved; else None.
    `few_rows`: a few validation rows carry most of the validation loss (`outliers.py`), so the
    rise may be theirs: it is reported without calling it overfitting or suggesting a remedy."""
    rows = [(r["epoch"], r["val_loss"]) for r in history
            if _finite(r.get("epoch")) and _finite(r.get("val_loss"))]
    if len(rows) <= RISE_ROWS:
        return None
    best = min(range(len(rows)), key=lambda i: rows[i][1])
    (best_epoch, lowest), (last_epoch, last) = rows[best], rows[-1]
    stretch = last_epoch - best_epoch
    if len(rows) - 1 - best < RISE_ROWS or stretch < RISE_SHARE * last_epoch or lowest <= 0 \
            or last < lowest * RISE_FACTOR:
        return None
    said = (f"Validation loss rose for {stretch:g} epochs: from its lowest, {lowest:.4g} at epoch {best_epoch:g}, "
            f"to {last:.4g} at epoch {last_epoch:g} ({last / lowest - 1:+.0%}). ")
    if few_rows:
        return said + ("A few validation rows carry most of that loss (named below): the rise may be theirs "
                       "rather than the network overfitting.")
    said += f"The network overfits after epoch {best_epoch:g}. "
    if saved_epoch is not None and saved_epoch == best_epoch:
        return said + f"The saved weights are epoch {best_epoch:g}'s, the best."
    return said + ((f"The saved weights are epoch {saved_epoch:g}'s. " if saved_epoch is not None else "")
                   + "Early stopping (training.early_stopping: {patience: 20}) would keep the best epoch's "
                   "weights; more l2 or a smaller network would overfit less.")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)

"""After training: `training.calibration: temperature` fits one temperature on the validation
part (nn/calibration.py), and the run keeps a reliability table for its report.

    check_calibration(cfg, dataset)            # before training: refuse what cannot be calibrated
    calibration = calibrate(network, dataset, cfg)   # {"temperature": T, ...} or None

The loss and metrics the loop logged are the uncalibrated network's; everything scored from
the saved model (validation.csv, test metrics, predict, evaluate) uses the temperature.
"""
from __future__ import annotations

import numpy as np

from ..config.typed import Config
from ..errors import NnctlError
from ..nn.calibration import T_RANGE, fit_temperature, temperature_loss
from ..nn.metrics import ECE_BINS, brier_score, expected_calibration_error, reliability_bins
from ..nn.network import Network

KEY = "training.calibration"
SEPARABLE_NOTE = ("every validation row was predicted right with room to spare, so no temperature fits them (the "
                  "validation loss keeps falling as T shrinks); T = 1 was kept: more validation rows, or a held-out "
                  "data.validation_path, give temperature scaling something to fit")


def check_calibration(cfg: Config, dataset) -> None:
    """What the config check could not know before the data was read: the task (model.task:
    auto) and whether the validation part has rows."""
    if cfg.training.calibration != "temperature":
        return
    if dataset.targets is not None:  # several targets: a temperature for each classification target
        if not any(t.task == "classification" for t in dataset.targets):
            raise NnctlError("temperature scales class probabilities, and none of these targets is a classification",
                             KEY, "set training.calibration: none")
    elif dataset.task != "classification":
        raise NnctlError(f"temperature scales class probabilities, but column '{dataset.target}' makes this "
                         "a regression", KEY, "set training.calibration: none")
    if len(dataset.parts["validation"]) == 0:
        raise NnctlError("temperature is fitted on the validation part, and it has no rows", KEY,
                         "hold out more rows (data.validation_split), or give data.validation_path")


def calibrate(network: Network, dataset, cfg: Config) -> dict | None:
    """{"temperature": T, "val_log_loss_before": ..., "val_log_loss_after": ...} for
    `training.calibration: temperature` (T minimizes the validation cross-entropy of
    softmax(z / T) or sigmoid(z / T)); None for `none`."""
    if cfg.training.calibration != "temperature":
        return None
    logits = network.predict_logits(dataset.X_val)
    y = np.asarray(dataset.y_val, dtype=np.int64).reshape(-1)
    t = fit_temperature(logits, y)
    before = temperature_loss(logits, y, 1.0)
    if t <= T_RANGE[0]:
        # every validation row is right with room to spare, so the loss keeps falling as T -> 0:
        # no optimum, and sharpening to the bound would turn every probability into 0 or 1 on the
        # evidence of a few rows (iris's 30, say). Keep the network's own probabilities.
        return {"temperature": 1.0, "val_log_loss_before": before, "val_log_loss_after": before,
                "note": SEPARABLE_NOTE}
    return {"temperature": t, "val_log_loss_before": before, "val_log_loss_after": temperature_loss(logits, y, 1.0 / t)}


def calibrate_targets(network: Network, meta: dict, dataset, cfg: Config) -> dict | None:
    """Several targets: `calibrate` of each classification target on its own block of the
    outputs (its logits recovered from its head's output, the members' mean with members), kept
    in its meta entry as `calibration: {"temperature": T}`; {target: calibrate's dict}, or None
    for `none`."""
    from ..nn.network import head_logits

    if cfg.training.calibration != "temperature":
        return None
    outputs, found = network.predict_output(dataset.X_val), {}
    y = np.asarray(dataset.y_val, dtype=np.float64).reshape(len(dataset.X_val), -1)
    for j, target in enumerate(meta["targets"]):
        if target["task"] != "classification":
            continue
        start, stop = target["columns"]
        logits = head_logits(target["output"], outputs[:, start:stop])
        truth = y[:, j].astype(np.int64)
        t = fit_temperature(logits, truth)
        before = temperature_loss(logits, truth, 1.0)
        if t <= T_RANGE[0]:  # see `calibrate`: no optimum, the network's own probabilities are kept
            found[target["name"]] = {"temperature": 1.0, "val_log_loss_before": before, "val_log_loss_after": before,
                                     "note": SEPARABLE_NOTE}
        else:
            found[target["name"]] = {"temperature": t, "val_log_loss_before": before,
                                     "val_log_loss_after": temperature_loss(logits, truth, 1.0 / t)}
        target["calibration"] = {"temperature": found[target["name"]]["temperature"]}
    return found


def reliability(part: str, y, proba) -> dict:
    """metrics.json's `reliability`: the part it was measured on, its Brier score and ECE, and
    the ECE_BINS confidence bins (lower, upper, count, confidence, accuracy; null when empty)."""
    bins = reliability_bins(y, proba)
    return {"part": part, "rows": int(len(y)), "brier": brier_score(y, proba),
            "ece": expected_calibration_error(y, proba), "n_bins": ECE_BINS,
            "bins": {name: [int(v) for v in values] if name == "count" else [None if v != v else float(v) for v in values]
                     for name, values in bins.items()}}

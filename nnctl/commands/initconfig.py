"""`nnctl init FILE --data DATA --target COL`: a config written for one table. The table is read
(at most INSPECT_ROWS rows), and the recipe (`config/recipe.py`) is adapted to what it holds,
each choice with its reason as a comment:

- the task: text or few whole-number values are classes, anything else a regression; a count
  (whole numbers from 0 with many values) is a regression, and says so;
- categoricals: every text column (`categorical: auto`);
- ID-like columns (a different value in every row, whole numbers or text) and free text are
  excluded;
- heavy tails: numeric columns whose values lie far outside their middle half keep the recipe's
  robust scaling, and are named; a regression target is standardized (a skewed one is named,
  with the transform that fits relative errors instead).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.recipe import recipe_config
from ..data.columns import ID_MIN_ROWS, MAX_AUTO_CLASSES
from ..errors import NnctlError, did_you_mean

INSPECT_ROWS = 200_000  # rows read to decide: enough for every statistic used here
TAIL_FACTOR = 10.0  # a column is heavy-tailed when a value lies this many IQRs beyond its quartiles
SKEWED = 2.0  # a regression target with |skewness| above this is transformed


def inspect_table(data_path: Path, target: str) -> dict:
    """What the config should say about a table: {"task", "extra": [((section, key), value,
    why)], "notes": [lines]}."""
    import pandas as pd

    from ..data.tables import open_table, read_table

    table = open_table(data_path, given_as="--data")
    header = table.header
    if target not in header:
        named = [h for h in header if h]
        raise NnctlError(f"--target names '{target}', which is not a column of the file{did_you_mean(target, named)}",
                         str(data_path), f"its columns: {', '.join(named[:20])}{' ...' if len(named) > 20 else ''}")
    frame = next(iter(read_table(table, chunksize=INSPECT_ROWS)))
    frame = frame[[c for c in frame.columns if c]]
    y = frame[target].dropna()
    if not len(y):
        raise NnctlError(f"target column '{target}' is empty", str(data_path), "choose another --target")
    extra, notes = [], []
    task = _task(y, target, extra, notes)
    features = [c for c in frame.columns if c != target]
    excluded = []
    for col in features:
        column = frame[col]
        distinct = column.nunique(dropna=True)
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        whole = numeric and bool(np.all(np.mod(column.dropna().to_numpy(dtype=float), 1) == 0))
        if len(frame) >= ID_MIN_ROWS and distinct == column.notna().sum() and (whole or not numeric):
            excluded.append((col, "a different value in every row: an ID"))
        elif not numeric and distinct > 0.5 * len(frame) and len(frame) >= ID_MIN_ROWS:
            excluded.append((col, f"text with {distinct} distinct values in {len(frame)} rows: free text or an ID"))
    if excluded:
        extra.append((("data", "exclude"), [c for c, _ in excluded],
                      "; ".join(f"'{c}': {why}" for c, why in excluded)))
    used = [c for c in features if c not in {c for c, _ in excluded}]
    text = [c for c in used if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        extra.append((("data", "categorical"), "auto", f"one-hot: {_names(text)}"))
    tails = [c for c in used if c not in text and _heavy_tailed(frame[c])]
    if tails:
        extra.append((("data", "scale"), "robust",
                      f"heavy tails in {_names(tails)}: median and IQR, then a smooth clip to ±3, keep outliers in bounds"))
    missing = [c for c in used if frame[c].isna().any()]
    if missing:
        extra.append((("data", "missing"), "mean", f"missing values in {_names(missing)}: filled from the training part"))
    if task == "regression":
        extra.append(_target_transform(y.to_numpy(dtype=float), target))
    return {"task": task, "extra": extra, "notes": notes}


def _task(y, target: str, extra: list, notes: list) -> str:
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if not numeric:
        counts = y.astype(str).value_counts()
        if counts.min() < 0.1 * counts.max():
            notes.append(f"'{target}' is imbalanced: its rarest class has {counts.min()} rows, its most common "
                         f"{counts.max()}; log loss and the class probabilities stay calibrated without class weights")
        return "classification"
    values = y.to_numpy(dtype=float)
    whole = bool(np.all(np.mod(values, 1) == 0))
    distinct = len(np.unique(values))
    if whole and distinct <= MAX_AUTO_CLASSES:
        if values.min() >= 0 and distinct > 2:
            notes.append(f"'{target}' holds {distinct} whole numbers from {values.min():g} to {values.max():g}: written "
                         "as classes; if it is a count or a score whose order matters, set model.task: regression")
        return "classification"
    if whole and values.min() >= 0:
        notes.append(f"'{target}' is a count (whole numbers from {values.min():g} to {values.max():g}): a regression")
    return "regression"


def _target_transform(y: np.ndarray, target: str):
    """Standardized in every case: log1p and quantile targets fit something nearer the median,
    which lost on RMSE on every benchmark table (docs/quality.md); a skewed target is named, with
    the transform to try when relative errors matter more than RMSE."""
    skew = _skewness(y)
    if abs(skew) > SKEWED:
        other = "log1p" if y.min() > -1 else "quantile"
        return (("data", "target_transform"), "standard",
                f"'{target}' is skewed (skewness {skew:.1f}); standardized fits the mean (best RMSE), "
                f"{other} fits relative errors (nearer the median)")
    return (("data", "target_transform"), "standard", f"'{target}' is not strongly skewed: standardized")


def _skewness(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    std = values.std()
    return float(np.mean(((values - values.mean()) / std) ** 3)) if std > 0 else 0.0


def _heavy_tailed(column) -> bool:
    values = column.dropna().to_numpy(dtype=float)
    if len(values) < ID_MIN_ROWS or len(np.unique(values)) <= 2:
        return False
    q25, q75 = np.quantile(values, [0.25, 0.75])
    spread = q75 - q25 if q75 > q25 else values.std()
    if spread <= 0:
        return False
    return bool(values.max() > q75 + TAIL_FACTOR * spread or values.min() < q25 - TAIL_FACTOR * spread
                or abs(_skewness(values)) > SKEWED)


def _names(columns: list) -> str:
    shown = ", ".join(f"'{c}'" for c in columns[:6])
    return shown + (f" and {len(columns) - 6} more" if len(columns) > 6 else "")


def config_for_table(config_path: Path, data_path: Path, target: str) -> str:
    """The config text for `data_path`, with data.path written relative to the config's folder
    when it can be."""
    import os

    found = inspect_table(data_path, target)
    try:
        relative = os.path.relpath(Path(data_path).resolve(), Path(config_path).resolve().parent)
    except ValueError:  # another drive
        relative = str(Path(data_path).resolve())
    return recipe_config(relative, target, task=found["task"], extra=found["extra"], notes=found["notes"])

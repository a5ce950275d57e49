"""Whether another stopping, calibration or pooling rule would make `model.ensemble` score better
than today's (each member keeps its own best epoch), scored offline (docs/quality.md, "An
ensemble of the recipe"). Asserts nothing.

    python benchmarks/ensemble_stops.py --tables heldout --seeds 0,1
    python benchmarks/ensemble_stops.py --tables dev --seeds 0,1 --epochs 80

For each table and split seed (benchmarks/quality.py's tables and parts, the defaults with
`model.ensemble: 8`), one run without early stopping records every member's validation and test
predictions at every epoch; the plateau schedule still acts per member, so a real run is a prefix
of it. Each rule then picks each member's epoch from the validation predictions alone, and the
table prints the test score of the members' mean as the geometric mean of its ratio to today's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402  (sets one BLAS thread before NumPy's first product)


def member_curves(table: str, seed: int, epochs: int, members: int, max_rows: int, work: Path):
    """(test, val) predictions (epochs, members, rows, outputs) in the network's units, their
    targets in the same units (class codes, or the standardized regression target), the task."""
    from nnctl.commands.train import RunOptions, train_config
    from nnctl.config import load_config
    from nnctl.config.recipe import recipe_config
    from nnctl.runs.model import load_model, padded_rows
    from nnctl.training import ensemble
    from nnctl.training.callbacks import Callback

    frame, target, task = quality.load_table(table)
    train, val, test = quality.split(frame.copy(), seed, max_rows)
    work.mkdir(parents=True, exist_ok=True)
    train.to_csv(work / "train.csv", index=False)
    val.to_csv(work / "val.csv", index=False)
    (work / "config.yaml").write_text(recipe_config("train.csv", target, task=task, validation_path="val.csv"))
    options = RunOptions(work / "runs", "stops", plot=False, cache=False, callback=Callback())
    sets = [f"model.ensemble={members}", "training.early_stopping=null", f"training.iterations={epochs}"]
    seen = {"test": [], "val": []}
    encoded = {}
    measure = ensemble.EnsembleLoop.measure

    def recording(loop, epoch, train_loss, start):  # every epoch's member predictions
        for name, X in encoded.items():
            seen[name].append(loop.network.predict_members(padded_rows(X))[:, :len(X)].astype(np.float32))
        return measure(loop, epoch, train_loss, start)

    encoder = load_model(train_config(load_config(work / "config.yaml", sets[:1] + ["training.iterations=1"]),
                                      options=options).run)  # the same encoding as the run's
    encoded.update(test=encoder.inputs(test.drop(columns=[target])), val=encoder.inputs(val.drop(columns=[target])))
    ensemble.EnsembleLoop.measure = recording
    try:
        model = load_model(train_config(load_config(work / "config.yaml", sets), options=options).run)
    finally:
        ensemble.EnsembleLoop.measure = measure
    if not seen["test"]:
        raise SystemExit("the run's members did not stop on their own (no plateau schedule or early stopping "
                         "in the config): nothing to compare")
    if task == "regression":
        scaler = model.meta["target_scaler"]
        y = [(part[target].to_numpy(float) - scaler["offset"][0]) / scaler["scale"][0] for part in (test, val)]
    else:
        codes = {str(c): i for i, c in enumerate(model.classes)}
        y = [np.array([codes[str(v)] for v in part[target]]) for part in (test, val)]
    return np.array(seen["test"], np.float64), np.array(seen["val"], np.float64), y[0], y[1], task


def loss(task: str, P, y):
    """Log loss or RMSE over the rows of predictions P (..., rows, outputs)."""
    if task == "regression":
        return np.sqrt(np.mean((P[..., 0] - y) ** 2, axis=-1))
    if P.shape[-1] == 1:  # two classes: the positive class's probability
        p = np.where(y == 1, P[..., 0], 1 - P[..., 0])
    else:
        p = np.take_along_axis(P, np.broadcast_to(y[:, None], P.shape[:-1] + (1,)), -1)[..., 0]
    return -np.mean(np.log(np.clip(p, 1e-15, 1)), axis=-1)


def best_epoch(curve, patience: int = 16) -> int:
    """The epoch early stopping (patience epochs) keeps on this validation curve."""
    best, kept = np.inf, 0
    for e, v in enumerate(curve):
        if v < best:
            best, kept = v, e
        elif e - kept >= patience:
            break
    return kept


def _logits(P):
    P = np.clip(P, 1e-12, 1)
    return np.log(P) if P.shape[-1] > 1 else np.log(P / np.clip(1 - P, 1e-12, 1))


def _head(z):
    if z.shape[-1] == 1:
        return 1 / (1 + np.exp(-z))
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _argmin(f, low: float, high: float, steps: int = 60) -> float:
    """Golden-section search for the minimum of a unimodal f on [low, high]."""
    g = (np.sqrt(5) - 1) / 2
    a, b = low, high
    for _ in range(steps):
        c, d = b - g * (b - a), a + g * (b - a)
        a, b = (a, d) if f(c) < f(d) else (c, b)
    return (a + b) / 2


def rules(test, val, yt, yv, task) -> dict:
    """{rule: the test score of the members' mean it gives}."""
    E, K = test.shape[:2]
    own = np.array([best_epoch(loss(task, val[:, k], yv)) for k in range(K)])
    at = lambda eps, P=test: P[np.minimum(eps, E - 1), np.arange(K)]  # noqa: E731
    mean_val = loss(task, val.mean(1), yv)
    out = {"today: each member its own best epoch": loss(task, at(own).mean(0), yt),
           "one stop for all on the mean's validation loss": loss(task, test[best_epoch(mean_val)].mean(0), yt),
           "each member 3 epochs past its own best": loss(task, at(own + 3).mean(0), yt),
           "each member 6 epochs past its own best": loss(task, at(own + 6).mean(0), yt),
           "the best common epoch on the test rows (not a rule)": loss(task, test.mean(1), yt).min(),
           "member 0 (seed 42 alone, to rounding)": loss(task, at(own)[0], yt)}
    if task != "regression":
        zv, zt = _logits(at(own, val).mean(0)), _logits(at(own).mean(0))
        T = _argmin(lambda T: loss(task, _head(zv / T), yv), 0.05, 20.0)  # log loss is unimodal in T
        out["one temperature on the mean (classification)"] = loss(task, _head(zt / T), yt)
        out["the mean of the members' logits (classification)"] = loss(task, _head(_logits(at(own)).mean(0)), yt)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="heldout")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=HERE / "data" / "ensemble-stops-work")
    args = parser.parse_args(argv)
    tables = quality.GROUPS.get(args.tables, args.tables.split(","))
    cells = []
    for table in tables:
        for seed in (int(s) for s in args.seeds.split(",")):
            scores = rules(*member_curves(table, seed, args.epochs, args.members, args.max_rows,
                                          args.work / f"{table}-{seed}"))
            cells.append(scores)
            print(f"{table} seed {seed}: " + ", ".join(f"{v:.4g}" for v in scores.values()), file=sys.stderr, flush=True)
    today = "today: each member its own best epoch"
    for rule in dict.fromkeys(r for c in cells for r in c):
        ratios = [c[rule] / c[today] for c in cells if rule in c]
        print(f"{rule:<55} x today {np.exp(np.mean(np.log(ratios))):.3f} ({len(ratios)} cells, lower in "
              f"{sum(r < 1 for r in ratios)})")


if __name__ == "__main__":
    main()

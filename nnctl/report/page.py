"""The report page: one self-contained HTML file (inline CSS and SVG, no script, nothing to
fetch) for one run, or comparing several."""
from __future__ import annotations

import math
from html import escape

from .. import __version__
from ..nn.metrics import roc_curve, pr_curve, roc_auc_binary, average_precision
from ..ui.fmt import format_number
from .calibration import calibration_section
from .health import dead_name, flags, layer_name, validation_rise
from .importance import importance_section
from .members import members_section
from .outliers import concentrated, sentence
from .rundata import RunData
from .svg import histogram, line_chart, scatter

CSS = """
:root { --bg: #ffffff; --fg: #1d2329; --muted: #5b6570; --grid: #e3e7eb; --panel: #f6f8fa; --warn: #9a5b00;
  --ok: #1f7a3d; --c0: #0072b2; --c1: #d55e00; --c2: #009e73; --c3: #cc79a7; --c4: #e69f00; --c5: #56b4e9;
  --c6: #7a5c00; --c7: #555555; color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #111418; --fg: #e4e8ec; --muted: #9aa5b1; --grid: #2a3036; --panel: #1a1f25; --warn: #f0b35a;
    --ok: #6cc38a; --c0: #56b4e9; --c1: #f08a4b; --c2: #3fcf9f; --c3: #e29ac9; --c4: #f0c04a; --c5: #9fd4f5;
    --c6: #d6b85a; --c7: #b0b0b0; } }
body { background: var(--bg); color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid var(--grid); }
.muted, figcaption, .tick, .axis { color: var(--muted); fill: var(--muted); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; }
.grid2.top { align-items: start; }
figure.chart { margin: 0; background: var(--panel); border-radius: 8px; padding: 8px; break-inside: avoid; }
figure.chart > svg { width: 100%; height: auto; display: block; }
.ctitle { font-size: 13px; font-weight: 600; padding: 2px 8px 4px; }
figcaption { font-size: 12px; display: flex; flex-wrap: wrap; gap: 12px; padding: 4px 8px 0; }
.key svg { vertical-align: middle; margin-right: 4px; }
.plot { fill: none; stroke: var(--grid); } .grid { stroke: var(--grid); stroke-width: 1; }
.tick { font-size: 11px; } .axis { font-size: 12px; }
polyline.mark, .key line { fill: none; stroke-width: 2; stroke-linejoin: round; }
.reference { stroke: var(--muted); stroke-dasharray: 2 4; stroke-width: 1.2; }
.dashed { stroke-dasharray: 6 4; } .dot { fill-opacity: 0.55; } .bar { fill: var(--c0); }
.s0 { stroke: var(--c0); fill: var(--c0); } .s1 { stroke: var(--c1); fill: var(--c1); }
.s2 { stroke: var(--c2); fill: var(--c2); } .s3 { stroke: var(--c3); fill: var(--c3); }
.s4 { stroke: var(--c4); fill: var(--c4); } .s5 { stroke: var(--c5); fill: var(--c5); }
.s6 { stroke: var(--c6); fill: var(--c6); } .s7 { stroke: var(--c7); fill: var(--c7); }
polyline.s0, polyline.s1, polyline.s2, polyline.s3, polyline.s4, polyline.s5, polyline.s6, polyline.s7 { fill: none; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--grid); text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.cell { text-align: center; min-width: 48px; }
.summary td:first-child { color: var(--muted); }
pre { background: var(--panel); padding: 12px; border-radius: 8px; overflow-x: auto; font-size: 13px; }
.flag { padding: 8px 12px; border-radius: 6px; margin: 6px 0; background: var(--panel);
  border-left: 4px solid var(--warn); } .flag.ok { border-left-color: var(--ok); }
.note { color: var(--muted); font-style: italic; }
@media print { body { max-width: none; padding: 0; font-size: 11px; } .grid2 { grid-template-columns: 1fr 1fr; }
  figure.chart { background: none; border: 1px solid #ccc; } h2 { break-after: avoid; } }
"""


def _num(v) -> str:
    """nnctl's one number format, with a dash for a value that is missing or not finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return escape(format_number(v))


def _table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _column(history: list[dict], key: str) -> list:
    return [row.get(key) for row in history]


def _metric_name(run: RunData) -> str:
    return "accuracy" if run.task == "classification" else "r2"


def _units(run: RunData):
    """For a regression whose loss can be put in the target's own units: (converter, measure,
    target), e.g. mse on a standardized target -> rmse in the target's units. None otherwise
    (classification, huber, or a run from before nnctl recorded the target's scale)."""
    units = run.metrics.get("target_units") if run.task == "regression" else None
    if not isinstance(units, dict) or units.get("loss") not in ("mse", "mae"):
        return None
    scale = units.get("scale") or 1.0
    if units["loss"] == "mse":
        return (lambda v: None if v is None or v < 0 else math.sqrt(v) * scale), "rmse", units.get("target", "target")
    return (lambda v: None if v is None else v * scale), "mae", units.get("target", "target")


def _loss_axis(runs: list[RunData]):
    """(per-run converter or None, the loss chart's y label): every regression's loss in its
    target's units when all runs can say them in one measure of one target, so the chart shows
    one unit; the loss as trained otherwise, labelled so."""
    found = [_units(r) for r in runs]
    kinds = {(u[1], u[2]) for u in found if u is not None}
    if all(u is not None for u in found) and len(kinds) == 1:
        measure, target = kinds.pop()
        return [u[0] for u in found], f"{measure}, in units of {target}"
    if any(r.task == "regression" for r in runs):
        return [None] * len(runs), "loss (standardized target where data.scale_target)"
    return [None] * len(runs), "loss"


# --- one run ------------------------------------------------------------------------------------
def _summary(run: RunData) -> str:
    m = run.metrics
    rows = [["status", escape(str(m.get("status", "?")).replace("_", " "))],
            ["epochs", _num(m.get("epochs"))], ["best epoch", _num(m.get("best_epoch"))],
            *([["weights saved", _saved(m)]] if m.get("saved_epoch") is not None else []),
            ["seconds", _num(m.get("seconds"))], ["task", escape(run.task)],
            ["architecture", escape(str(m.get("architecture", "")))],
            *([["blocks", escape(run.blocks)]] if run.blocks else []), ["created", escape(str(m.get("created", "")))]]
    if m.get("resumed_from"):
        rows.append(["resumed from", escape(m["resumed_from"])])
    if m.get("clipped_steps") is not None:
        rows.append(["gradient clipping", escape(clipping_sentence(m))])
    config = f"<details open><summary>resolved config</summary><pre>{escape(_config_as_written(run))}</pre></details>"
    return f'<h2>Summary</h2><div class="grid2"><div>{_table(["", ""], rows, "summary")}</div><div>{config}</div></div>'


def clipping_sentence(m: dict) -> str:
    """How often training.grad_clip scaled the gradient down, from metrics.json."""
    clipped, steps = m["clipped_steps"], m.get("steps") or 0
    share = f" ({clipped / steps:.0%})" if steps else ""
    return f"acted on {clipped:,} of {steps:,} steps{share}: the gradient's norm was above training.grad_clip"


def _saved(m: dict) -> str:
    """Which epoch's weights model.npz holds, and why."""
    why = str(m.get("saved_because", ""))
    said = f"the {why.replace('_', ' ')}" if why.startswith("best") else "the last trained"
    return f"epoch {_num(m['saved_epoch'])} ({escape(said)})"


def _config_as_written(run: RunData) -> str:
    """The resolved config with its paths as the user wrote them (metrics.json's
    `paths_as_written`); a path written by a run without them (a sweep's trial, an older nnctl)
    is shown relative to the run folder. Either way the page never carries an absolute path of
    the machine that trained, and config.yaml itself keeps the absolute paths that reproduce
    the run."""
    import os

    import yaml

    from ..config import dump_config
    from ..config.spec import Key, spec

    try:
        cfg = yaml.safe_load(run.config)
    except yaml.YAMLError:
        return run.config
    if not isinstance(cfg, dict):
        return run.config
    written = run.metrics.get("paths_as_written") or {}
    changed = False
    for section, table in spec().items():
        values = cfg.get(section)
        if not isinstance(table, dict) or not isinstance(values, dict):
            continue
        for key, entry in table.items():
            value, dotted = values.get(key), f"{section}.{key}"
            if not (isinstance(entry, Key) and entry.kind == "path" and isinstance(value, str)):
                continue
            if isinstance(written.get(dotted), str):
                values[key], changed = written[dotted], True
            elif os.path.isabs(value):
                values[key], changed = os.path.relpath(value, run.path), True
    return dump_config(cfg) if changed else run.config


def _curves(runs: list[RunData]) -> str:
    loss, metric, rate = [], [], []
    converters, loss_label = _loss_axis(runs)
    for i, (run, convert) in enumerate(zip(runs, converters)):
        epochs = _column(run.history, "epoch")
        prefix = f"{run.name} " if len(runs) > 1 else ""

        def losses(key):
            values = _column(run.history, key)
            return values if convert is None else [convert(v) for v in values]

        loss.append({"label": f"{prefix}train", "x": epochs, "y": losses("train_loss"), "color": i})
        if run.history and "val_loss" in run.history[0]:
            loss.append({"label": f"{prefix}validation", "x": epochs, "y": losses("val_loss"),
                         "dashed": True, "color": i})
        keys = [f"val_{_metric_name(run)}"] if not run.targets else \
            [f"val_{t.name}_{_metric_name(t)}" for t in _named(run)]
        for j, key in enumerate(keys):  # several targets: each target's own metric
            if run.history and key in run.history[0]:
                metric.append({"label": f"{prefix}{key.replace('_', ' ')}", "x": epochs,
                               "y": _column(run.history, key), "color": i + j})
        rate.append({"label": f"{prefix}learning rate", "x": epochs, "y": _column(run.history, "learning_rate"),
                     "color": i})
    positive = all(v is None or v > 0 for s in loss for v in s["y"])
    charts = [line_chart(loss, "loss per epoch", "epoch", loss_label, log_y=positive)]
    if metric:
        charts.append(line_chart(metric, "validation metric per epoch", "epoch", "metric"))
    charts.append(line_chart(rate, "learning rate per epoch", "epoch", "learning rate"))
    said = ""
    if len(runs) == 1:
        few = _few_rows(runs[0])
        rise = validation_rise(runs[0].history, runs[0].metrics.get("saved_epoch"), few_rows=few is not None)
        said = "".join(f'<div class="flag warning">{escape(text)}</div>' for text in (rise, few) if text)
    return f'<h2>Learning curves</h2>{said}<div class="grid2">{"".join(charts)}</div>'


def _few_rows(run: RunData) -> str | None:
    """The sentence naming the few validation rows that carry most of its loss, or None."""
    units = run.metrics.get("target_units") or {}
    found = concentrated(run.task, run.validation, run.classes, units.get("loss"))
    if found is None:
        return None
    return sentence(found, str(units.get("target") or "target" if run.task == "regression" else "class"))


def _final_metrics(run: RunData) -> str:
    if run.task == "regression":
        return _final_regression(run)
    rows = []
    for part in ("train", "validation", "test"):
        scores = run.metrics.get(part)
        if not scores:
            continue
        name = _metric_name(run)
        rows.append([part, _num(scores.get("loss", scores.get("log_loss", scores.get("mse")))), _num(scores.get(name)),
                     _num(scores.get("rows"))])
    return f'<h2>Final metrics</h2>{_table(["part", "loss", _metric_name(run), "rows"], rows)}'


def _final_regression(run: RunData) -> str:
    """Every part's errors in the target's own units (the test part's come from `evaluate`, the
    others from training; a run from before nnctl saved them gets its validation part's from
    validation.csv), so the table never mixes a standardized loss with original units."""
    target = (run.metrics.get("target_units") or {}).get("target", "the target")
    rows = []
    for part in ("train", "validation", "test"):
        scores = dict(run.metrics.get(part) or {})
        if not scores:
            continue
        if "rmse" not in scores and part == "validation" and run.validation:
            scores.update(_errors(run.validation))
        rows.append([part, _num(scores.get("rmse")), _num(scores.get("mae")), _num(scores.get("r2")),
                     _num(scores.get("rows"))])
    said = f"<p class=muted>rmse and mae in units of {escape(str(target))}; r2 has no unit.</p>"
    return f'<h2>Final metrics</h2>{said}{_table(["part", "rmse", "mae", "r2", "rows"], rows)}'


def _errors(rows: list[dict]) -> dict:
    pairs = [(float(r["target"]), float(r["prediction"])) for r in rows]
    if not pairs:
        return {}
    mse = sum((p - a) ** 2 for a, p in pairs) / len(pairs)
    return {"rmse": math.sqrt(mse), "mae": sum(abs(p - a) for a, p in pairs) / len(pairs)}


CM_CLASSES = 15  # a confusion matrix shows at most this many classes, the rest folded into "other"
PER_CLASS_ROWS = 30  # the per-class table lists at most this many classes, then the macro average
CONFUSIONS = 10  # with folded classes, this many of the most common confusions are listed
OTHER = "(other)"


def _parts(run: RunData) -> list[tuple[str, list[dict]]]:
    """The parts with saved predictions, shown side by side: validation, and test when the run
    had a data.test_path."""
    return [(part, rows) for part, rows in (("validation", run.validation), ("test", run.test)) if rows]


def _classification(run: RunData) -> str:
    return "".join(_classification_part(part, run.classes, rows) for part, rows in _parts(run))


def _classification_part(part: str, classes: list[str], rows: list[dict]) -> str:
    from collections import Counter

    pairs = Counter((r["target"], r["prediction"]) for r in rows)
    support, predicted = Counter(r["target"] for r in rows), Counter(r["prediction"] for r in rows)
    out = [f'<h2>Classification ({part} part)</h2><div class="grid2"><div>', _confusion(classes, pairs, support)]
    per, macro = [], [0.0, 0.0, 0.0]
    order = classes if len(classes) <= PER_CLASS_ROWS else sorted(classes, key=lambda c: -support[c])
    for c in order:
        tp = pairs[(c, c)]
        p = tp / predicted[c] if predicted[c] else 0.0
        rec = tp / support[c] if support[c] else 0.0
        f1 = 2 * p * rec / (p + rec) if p + rec else 0.0
        macro = [m + v / len(classes) for m, v in zip(macro, (p, rec, f1))]
        if len(per) < PER_CLASS_ROWS:
            per.append([escape(c), _num(p), _num(rec), _num(f1), str(support[c])])
    if len(classes) > PER_CLASS_ROWS:
        per.append([f"<em>all {len(classes)} classes, macro average</em>", _num(macro[0]), _num(macro[1]),
                    _num(macro[2]), str(len(rows))])
        out.append(f"<p class=muted>The {PER_CLASS_ROWS} classes with the most rows, of {len(classes)}.</p>")
    out.append(_table(["class", "precision", "recall", "f1", "support"], per))
    out.append("</div>")
    if len(classes) == 2:
        out.append(_roc_pr(part, classes, rows))
    out.append("</div>")
    return "".join(out)


def _confusion(classes: list[str], pairs, support) -> str:
    """The confusion matrix; with more than CM_CLASSES classes, the most frequent ones and the
    rest as one "other" row and column, and the most common confusions listed, so the page
    stays small whatever the number of classes."""
    said = "<p class=muted>Confusion matrix: rows are the true class, columns the predicted one.</p>"
    shown = classes
    if len(classes) > CM_CLASSES:
        shown = sorted(classes, key=lambda c: -support[c])[:CM_CLASSES]
        said += (f"<p class=muted>{len(classes)} classes: the {CM_CLASSES} with the most rows, the rest counted "
                 f"under {OTHER}.</p>")
    index = {c: i for i, c in enumerate(shown)}
    labels = shown + ([OTHER] if len(shown) < len(classes) else [])
    cm = [[0] * len(labels) for _ in labels]
    for (t, p), n in pairs.items():
        cm[index.get(t, len(shown))][index.get(p, len(shown))] += n
    peak = max(max(row) for row in cm) or 1
    cells = [[escape(c)] + [_shade(n, peak) for n in row] for c, row in zip(labels, cm)]
    table = _table(["true \\ predicted"] + labels, cells)
    if len(shown) < len(classes):
        worst = sorted(((n, t, p) for (t, p), n in pairs.items() if t != p), key=lambda x: (-x[0], x[1], x[2]))
        table += "<p class=muted>The most common confusions:</p>" + _table(
            ["true", "predicted", "rows"], [[escape(t), escape(p), str(n)] for n, t, p in worst[:CONFUSIONS]])
    return said + table


def _shade(n: int, peak: int) -> str:
    if not n:  # most cells of a large matrix: plain, so the page stays small
        return "0"
    return f'<span style="display:block;background:rgba(0,114,178,{0.08 + 0.7 * n / peak:.2f})">{n}</span>'


def _roc_pr(part: str, classes: list[str], rows: list[dict]) -> str:
    positive = [r["target"] == classes[1] for r in rows]
    score = [float(r[f"p_{classes[1]}"]) for r in rows]
    fpr, tpr = roc_curve(positive, score)
    recall, precision = pr_curve(positive, score)
    auc, ap = roc_auc_binary(positive, score), average_precision(positive, score)
    return (line_chart([{"label": f"ROC, AUC {auc:.3f} (positive: {classes[1]})", "x": list(fpr), "y": list(tpr)}],
                       f"ROC curve ({part})", "false positive rate", "true positive rate",
                       reference=None, y_from_zero=True)
            + line_chart([{"label": f"precision-recall, AP {ap:.3f}", "x": list(recall), "y": list(precision),
                           "color": 1}], f"precision-recall curve ({part})", "recall", "precision", y_from_zero=True))


def _regression(run: RunData) -> str:
    out = []
    for part, rows in _parts(run):
        actual = [float(r["target"]) for r in rows]
        predicted = [float(r["prediction"]) for r in rows]
        residuals = [p - a for p, a in zip(predicted, actual)]
        out.append(f'<h2>Regression ({part} part)</h2><div class="grid2">'
                   + scatter(actual, predicted, "predicted against actual", "actual", "predicted")
                   + histogram(residuals, "residuals (predicted − actual)", "residual") + "</div>")
    return "".join(out)


def _health(run: RunData) -> str:
    if not run.diagnostics:
        return ""
    layers = sorted({int(r["layer"]) for r in run.diagnostics})

    def series(key, name=layer_name):
        return [{"label": name(i, run.trainable), "x": [r["epoch"] for r in run.diagnostics if int(r["layer"]) == i],
                 "y": [r[key] for r in run.diagnostics if int(r["layer"]) == i], "color": i} for i in layers]

    charts = [line_chart(series("grad_norm"), "gradient norm per layer", "epoch", "‖∂L/∂W‖ (log)", log_y=True),
              line_chart(series("update_ratio"), "update-to-weight ratio per layer", "epoch", "‖ΔW‖ / ‖W‖ (log)",
                         log_y=True, reference=(1e-3, "1e-3")),
              line_chart(series("weight_norm"), "weight norm per layer", "epoch", "‖W‖")]
    dead = [s for s in series("dead_fraction", dead_name) if any(v is not None for v in s["y"])]
    if dead:
        charts.append(line_chart(dead, "dead units per ReLU layer", "epoch", "share of units", y_from_zero=True))
    said = "".join(f'<div class="flag {severity}">{escape(text)}</div>' for severity, text in flags(run.diagnostics, run.trainable))
    return (f"<h2>Backprop health</h2><p class=muted>Measured on the last batch of each logged epoch.</p>{said}"
            f'<div class="grid2">{"".join(charts)}</div>')


def _named(run: RunData) -> list:
    """Each target's RunData with its `name`: the target's column."""
    names = run.metrics.get("targets") or []
    return [_Target(name, target) for name, target in zip(names, run.targets)]


class _Target:
    def __init__(self, name: str, run: RunData):
        self.name, self.run, self.task = name, run, run.task


def _targets_page(run: RunData) -> list[str]:
    """The sections of a run of several targets: the weighted loss and each target's metric per
    part, then a section per target with what a run of that target alone shows."""
    targets, rows = _named(run), []
    for part in ("train", "validation", "test"):
        scores = run.metrics.get(part)
        if scores:
            rows.append([part, _num(scores.get("loss")),
                         *[_num(scores.get(f"{t.name}.{_metric_name(t)}")) for t in targets], _num(scores.get("rows"))])
    header = ["part", "loss (weighted sum)", *[f"{t.name} {_metric_name(t)}" for t in targets], "rows"]
    out = [f'<h2>Final metrics</h2>{_table(header, rows)}']
    for t in targets:
        own = [_final_metrics(t.run), _classification(t.run) if t.task == "classification" else _regression(t.run),
               calibration_section(t.run), importance_section(t.run), members_section(t.run)]
        out.append("".join(own).replace("<h2>", f"<h2>{escape(t.name)}: "))
    return out


def run_page(run: RunData) -> str:
    m = run.metrics
    if run.targets:
        part = m.get("validation") or m.get("train") or {}
        headline = ", ".join(f"{escape(t.name)} {_metric_name(t)} {_num(part.get(f'{t.name}.{_metric_name(t)}'))}"
                             for t in _named(run))
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in run.notes)
        body = [f"<h1>{escape(run.name)}</h1>",
                f'<p class="muted">{len(run.targets)} targets · {escape(str(m.get("status", "")).replace("_", " "))}'
                f" · {headline} · nnctl {escape(__version__)}</p>", notes,
                _summary(run), _curves([run]), *_targets_page(run), _health(run)]
        return _html(f"nnctl report: {run.name}", body)
    part = m.get("validation") or m.get("train") or {}
    headline = f"{_metric_name(run)} {_num(part.get(_metric_name(run)))}" if part else ""
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in run.notes)
    body = [f"<h1>{escape(run.name)}</h1>",
            f'<p class="muted">{escape(run.task)} · {escape(str(m.get("status", "")).replace("_", " "))} · '
            f"{escape(headline)} · nnctl {escape(__version__)}</p>", notes,
            _summary(run), _curves([run]), _final_metrics(run),
            _classification(run) if run.task == "classification" else _regression(run), calibration_section(run),
            importance_section(run), members_section(run),
            _health(run)]
    return _html(f"nnctl report: {run.name}", body)


# --- several runs -------------------------------------------------------------------------------
def _loss_cell(run: RunData, part: str) -> str:
    """A part's loss; a regression's as rmse in its target's units when the run saved it, as
    the test part's is, so one row never mixes a standardized loss with original units."""
    scores = run.metrics.get(part) or {}
    if run.task == "regression" and "rmse" in scores:
        return f"rmse {_num(scores['rmse'])}"
    return _num(scores.get("loss"))


def comparison_page(runs: list[RunData]) -> str:
    rows = []
    for run in runs:
        m = run.metrics
        # several targets: a row per target, its own metric beside the run's weighted loss
        named = [(f"{escape(run.name)} · {escape(t.name)}", f"{t.name}.{_metric_name(t)}", _metric_name(t))
                 for t in _named(run)] if run.targets else [(escape(run.name), _metric_name(run), _metric_name(run))]
        for label, key, name in named:
            rows.append([label, escape(str(m.get("status", ""))), _num(m.get("epochs")),
                         escape(run.blocks or str(m.get("architecture", ""))),
                         _loss_cell(run, "train"), _loss_cell(run, "validation"),
                         f"{escape(name)} {_num((m.get('validation') or m.get('train') or {}).get(key))}",
                         _num((m.get("test") or {}).get(key)), _num(m.get("seconds"))])
    table = _table(["run", "status", "epochs", "architecture", "train loss", "val loss", "val metric", "test metric",
                    "seconds"], rows)
    health = []
    for run in runs:
        said = flags(run.diagnostics, run.trainable)
        worst = next((t for s, t in said if s == "warning"), said[0][1] if said else "no diagnostics")
        health.append([escape(run.name), escape(worst)])
    body = [f"<h1>Comparing {len(runs)} runs</h1>", f'<p class="muted">nnctl {escape(__version__)}</p>',
            "<h2>Final metrics</h2>", table, _curves(runs), "<h2>Backprop health</h2>",
            _table(["run", "first thing to look at"], health)]
    return _html(f"nnctl report: {len(runs)} runs", body)


def _html(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")

"""What the commands print or write: CSV streams, rich tables, summaries.

Tables are data here, so they go to stdout; rich drops colour when stdout is not a terminal or
NO_COLOR is set.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..atomic import atomic_file
from ..jsonfmt import dumps
from .fmt import format_number


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 120,
                   no_color=bool(os.environ.get("NO_COLOR")) or None)


def write_csv_frames(frames, output=None) -> int:
    """Write DataFrames as one CSV (header once) to `output` atomically, or to stdout."""
    from ..errors import NnctlError

    if output is None:
        rows = _write_frames(frames, sys.stdout)
        sys.stdout.flush()
        return rows
    output = Path(output)
    check_output(output)
    try:
        with atomic_file(output, newline="") as fh:
            return _write_frames(frames, fh)
    except (PermissionError, FileNotFoundError) as exc:
        raise NnctlError(f"cannot write there: {exc.strerror}", str(output), "give a writable --output path")


def check_output(output, example: str = "predictions.csv") -> None:
    """An NnctlError when `output` is a folder or its folder is missing: called before a command's
    work too, so that a long computation does not end in an error it could have started with."""
    from ..errors import NnctlError

    output = Path(output)
    if output.is_dir():
        raise NnctlError("--output is a folder", str(output), f"give a file name, e.g. {example}")
    if not output.parent.is_dir():
        raise NnctlError(f"--output's folder {output.parent} does not exist", str(output),
                         f"create it first (mkdir -p {output.parent}), or give another --output")


def _write_frames(frames, fh) -> int:
    rows = 0
    for i, frame in enumerate(frames):
        frame.to_csv(fh, header=i == 0, index=False, lineterminator="\n")
        rows += len(frame)
    return rows


def print_evaluation(report: dict) -> None:
    from rich.table import Table

    console = _console()
    title = f"{report['task']} · {report['rows']} rows"
    if "positive_class" in report:
        title += f" · positive class {report['positive_class']}"
    if "threshold" in report:
        title += f" · threshold {report['threshold']:g}"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.items():
        # out_of_range: said on stderr as warnings, one per column; saved: said where it is written
        if key in ("task", "rows", "labels", "confusion_matrix", "per_class", "threshold", "positive_class",
                   "out_of_range", "saved") or isinstance(value, (list, dict)):
            continue
        table.add_row(key, "undefined" if value is None else format_number(value))
    console.print(table)
    if "per_class" in report:
        per_class = Table()
        for col in ("class", "precision", "recall", "f1", "support"):
            per_class.add_column(col, justify="left" if col == "class" else "right")
        for label, scores in report["per_class"].items():
            per_class.add_row(label, *(format_number(scores[k]) for k in ("precision", "recall", "f1")),
                              str(scores["support"]))
        console.print(per_class)
    if "confusion_matrix" in report:
        labels = [str(c) for c in report["labels"]]
        console.print("confusion matrix: rows are the true class, columns the predicted one")
        cm = Table()
        cm.add_column("")
        for label in labels:
            cm.add_column(label, justify="right")
        for label, row in zip(labels, report["confusion_matrix"]):
            cm.add_row(label, *[str(n) for n in row])
        console.print(cm)


# kind last: scripts that cut the first seven columns keep working
RUN_COLUMNS = ("run", "created", "task", "architecture", "epochs", "status", "val metric", "kind")


def run_cells(r: dict) -> list[str]:
    part = r.get("validation") or r.get("train") or {}
    metric = r.get("metric")
    shown = f"{metric} {format_number(part[metric])}" if metric and metric in part and isinstance(part, dict) else ""
    status = str(r.get("status", ""))
    if r.get("resumed_as"):
        status = f"resumed as {Path(r['resumed_as']).name}"
    # the folder's own name: for an incomplete run it is what `train --resume` takes
    return [Path(r["path"]).name, str(r.get("created", "")).replace("T", " "), str(r.get("task", "")),
            str(r.get("architecture", "")), str(r.get("epochs", "")), status, _summary(r.get("summary")) or shown,
            r.get("kind", "run")]


def _summary(said) -> str:
    """A sweep's best value or a cv's mean (± std), as `nnctl runs` shows them."""
    if not isinstance(said, dict) or not isinstance(said.get("value"), (int, float)):
        return ""
    spread = f" ± {format_number(said['std'])}" if isinstance(said.get("std"), (int, float)) else ""
    return f"{said['label']} {format_number(said['value'])}{spread}"


def print_runs(runs: list[dict]) -> None:
    """A table on a terminal; tab-separated lines with a header when piped, for `cut` and
    `awk`. The run name, the one thing people copy, is never cut short: other columns give way."""
    if not sys.stdout.isatty():
        for cells in [list(RUN_COLUMNS)] + [run_cells(r) for r in runs]:
            sys.stdout.write("\t".join(c.replace("\t", " ") for c in cells) + "\n")
        return
    from rich.table import Table

    table = Table(title_justify="left")
    for col in RUN_COLUMNS:
        if col == "run":
            table.add_column(col, no_wrap=True, min_width=max(len(Path(r["path"]).name) for r in runs))
        else:
            table.add_column(col, justify="right" if col in ("epochs", "val metric") else "left",
                             overflow="fold")
    for r in runs:
        table.add_row(*run_cells(r))
    _console().print(table)


def print_gradcheck(results, tol: float, as_json: bool) -> None:
    if as_json:
        print(dumps({"tol": tol, "passed": all(r.passed(tol) for r in results), "parameters": [
            {"name": r.name, "shape": list(r.shape), "checked": r.checked, "max_abs_error": r.max_abs,
             "max_rel_error": r.max_rel, "passed": r.passed(tol)} for r in results]}))
        return
    from rich.table import Table

    table = Table(title=f"backprop vs central finite differences (float64), tolerance {tol:g}", title_justify="left")
    for col in ("parameter", "shape", "checked", "max abs error", "max rel error", "result"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for r in results:
        table.add_row(r.name, "×".join(map(str, r.shape)), str(r.checked), f"{r.max_abs:.2e}", f"{r.max_rel:.2e}",
                      "pass" if r.passed(tol) else "FAIL")
    console = _console()
    console.print(table)
    failed = [r.name for r in results if not r.passed(tol)]
    console.print(f"FAILED: {', '.join(failed)}" if failed else "all gradients match")


def format_matrix(values, max_size: int = 48) -> str:
    """A small matrix in full; a large one as its shape, norm and top-left corner."""
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    opts = {"precision": 4, "suppress_small": True, "max_line_width": 100}
    if a.size <= max_size:
        return np.array2string(a, **opts)
    corner = np.array2string(a[:6] if a.ndim == 1 else a[:3, :6], **opts)
    return f"shape {'×'.join(map(str, a.shape))}, ‖·‖ = {np.linalg.norm(a):.4g}, first values:\n{corner} …"


# How each layer type reads in the trace: its forward rule, and what its backward does, in the
# trace's names (out{i}: the output of layer i, X its input for layer 0; delta{i} = ∂L/∂out{i}).
# A layer type without an entry is shown by its values alone.
TRACE_RULES = {
    "dense": ("out{i} = {x}·W + b", "∂L/∂W = {x}ᵀ · delta{i},  ∂L/∂b = Σ_rows delta{i},  delta{p} = delta{i} · Wᵀ"),
    "activation": ("out{i} = {name}({x})", "delta{p} = delta{i} ⊙ {name}'({x})"),
    "dropout": ("out{i} = {x} ⊙ m,  m = 1{{u ≥ p}} / (1 − p), u ~ U[0, 1)", "delta{p} = delta{i} ⊙ m"),
    "batch_norm": ("out{i} = γ ⊙ x̂ + β,  x̂ = ({x} - μ) / √(σ² + eps),  μ, σ² = each column's mean and variance over the rows",
                   "∂L/∂γ = Σ_rows delta{i} ⊙ x̂,  ∂L/∂β = Σ_rows delta{i},  "
                   "delta{p} = γ ⊙ (delta{i} - ∂L/∂β / rows - x̂ ⊙ ∂L/∂γ / rows) / √(σ² + eps)"),
    "layer_norm": ("out{i} = γ ⊙ x̂ + β,  x̂ = ({x} - μ) / √(σ² + eps),  μ, σ² = each row's mean and variance over its columns",
                   "∂L/∂γ = Σ_rows delta{i} ⊙ x̂,  ∂L/∂β = Σ_rows delta{i},  "
                   "delta{p} = (g - mean_cols(g) - x̂ ⊙ mean_cols(g ⊙ x̂)) / √(σ² + eps),  g = delta{i} ⊙ γ"),
    "residual": ("out{i} = {x} + f({x}),  f = its body's layers in order",
                 "∂L/∂(body arrays) as each of its layers gives them,  delta{p} = delta{i} + f'({x})ᵀ · delta{i}"),
    "periodic": ("out{i} = [{x}'s other columns, then per numeric column f: ReLU(v_f · W_f + b_f)],  "
                 "v_f = [cos(2π c_f x_f), sin(2π c_f x_f)]",
                 "∂L/∂W_f = v_fᵀ · g_f,  ∂L/∂b_f = Σ_rows g_f,  ∂L/∂c_f = 2π Σ_rows x_f ⊙ ∂L/∂a_f,  "
                 "g_f = delta{i}'s block f ⊙ 1{{out > 0}},  ∂L/∂a_f = (g_f · W_fᵀ) on sin ⊙ cos − on cos ⊙ sin,  "
                 "delta{p} = 2π Σ_k c_f ⊙ ∂L/∂a_f (other columns: delta{i} as it is)"),
    "piecewise_linear": ("out{i} = [{x}'s other columns, then per numeric column f and bin t: "
                         "clip((x_f − b_t) / (b_t+1 − b_t))]",
                         "delta{p} = Σ_t delta{i}'s block / (b_t+1 − b_t) where the clip passes "
                         "(other columns: delta{i} as it is)"),
}


def _trace_arrays(i: int, values: dict, prefix: str = "") -> str:
    """'layers.0.W =\n[[...]]' for each named array of layer i."""
    lines = []
    for name, value in values.items():
        matrix = format_matrix(value)
        lines.append(f"{prefix}layers.{i}.{name} =" + ("\n" if "\n" in matrix or "[[" in matrix else " ") + matrix)
    return "\n".join(lines)


def _trace_rule(layer: dict, which: int) -> str:
    i = layer["layer"]
    rule = TRACE_RULES.get(layer["type"], ("", ""))[which]
    if i == 0:  # nothing comes before the first layer: its ∂L/∂X is never computed
        rule = ",  ".join(part for part in rule.split(",  ") if "delta{p}" not in part)
    return rule.format(i=i, p=i - 1, x="X" if i == 0 else f"out{i - 1}", name=layer.get("name", ""))


def print_trace(record: dict) -> None:
    from rich.panel import Panel
    from rich.text import Text

    console = _console()
    layers = record["layers"]
    console.print(f"{record['architecture']} · {record['rows']} rows · layers {' → '.join(l['name'] for l in layers)} · "
                  f"output {record['output']}, loss {record['loss']} · {record['optimizer']}, "
                  f"learning rate {record['learning_rate']:g}" + (f", l2 {record['l2']:g}" if record["l2"] else ""))

    def panel(title, blocks):
        console.print(Panel(Text("\n\n".join(blocks)), title=title, title_align="left"))

    panel("1. initialize (from the seed, or model.init_from)",
          [_trace_arrays(l["layer"], l["params"]) for l in record["initial"]])
    last = len(layers) - 1
    for step in record["steps"]:
        s = f"step {step['step']}: "
        blocks = [f"X (scaled input rows) =\n{format_matrix(record['input'])}"]
        for f in step["forward"]:
            layer = layers[f["layer"]]
            rule = _trace_rule(layer, 0) or f"out{f['layer']}"
            # a dropout layer's, or one inside a residual block's (`body.3.mask_zeros`)
            masked = next((f[key] for key in f if key.split(".")[-1] == "mask_zeros"), None)
            zeros = f" (the mask zeroes {masked:.0%} of the values)" if masked is not None else ""
            zeros += f" ({f['relu_zeros']:.0%} of its ReLU outputs are 0)" if "relu_zeros" in f else ""
            zeros += f" ({f['outside']:.0%} of the numbers lie beyond the bin edges)" if "outside" in f else ""
            blocks.append(f"layer {f['layer']} ({layer['name']}){zeros}: {rule} =\n{format_matrix(f['output'])}")
        blocks.append(f"output: {record['output']}(out{last}) =\n{format_matrix(step['output'])}")
        panel(s + "2. forward propagation", blocks)
        console.print(f"{s}3. loss ({record['loss']}, mean over rows) = {step['loss']:.6g}")
        for head, value in zip(record.get("heads", ()), step.get("head_losses", ())):
            start, stop = head["columns"]
            console.print(f"   {head['target']}: {head['loss']} of {head['output']}(out{last}[:, {start}:{stop}]) = "
                          f"{value:.6g}, × λ {head['weight']:.4g}")
        blocks = []
        for b in step["backward"]:
            i, layer = b["layer"], layers[b["layer"]]
            arriving = (f"delta{i} = ∂L/∂out{i} (the output delta, fused {record['output']} + {record['loss']})"
                        if i == last else f"delta{i} = ∂L/∂out{i}")
            parts = [f"layer {i} ({layer['name']}): {arriving} =\n{format_matrix(b['delta'])}"]
            if _trace_rule(layer, 1):
                parts.append(_trace_rule(layer, 1))
            if b["grads"]:
                parts.append(_trace_arrays(i, b["grads"], "∂L/∂"))
            blocks.append("\n".join(parts))
        panel(s + "4. back-propagate the error", blocks)
        rule = "p ← p − lr · ∂L/∂p" if record["optimizer"] == "sgd" else f"{record['optimizer']} update"
        panel(s + f"5. update: {rule}",
              [f"before:\n{_trace_arrays(u['layer'], u['before'])}\nafter:\n{_trace_arrays(u['layer'], u['after'])}"
               for u in step["update"]])


def validation_summary(network, dataset) -> str:
    """What `nnctl validate` says about a config's network and data, for stderr."""
    from ..training.build import architecture
    from .progress import note_lines

    lines = [f"architecture  {architecture(network.sizes)}  ({network.n_params():,} parameters; "
             f"{' → '.join([layer.describe() for layer in network.layers] + [network.output_head])})",
             f"task          {dataset.task} (loss {network.loss_name})",
             f"rows          {dataset.rows_read} read"
             + (f", {dataset.rows_dropped} dropped for missing values" if dataset.rows_dropped else ""),
             f"features      {len(dataset.encoder.features)} columns → {dataset.n_inputs} inputs",
             f"split         {len(dataset.parts['train'])} train, {len(dataset.parts['validation'])} validation"]
    if dataset.classes:
        positive = f" · positive: {dataset.classes[1]}" if len(dataset.classes) == 2 else ""
        lines.insert(3, "classes       " + ", ".join(f"{c} ({n})" for c, n in dataset.class_counts.items()) + positive)
    return "\n".join(note_lines(dataset.notes) + lines)

"""The sweep file: one table of keys (W&B's sweep keys where they fit), checked by the same
checker as configs, with line numbers, "did you mean" and a JSON Schema."""
from __future__ import annotations

import copy
from pathlib import Path

from ..config.kinds import KINDS, Kind, section_schema, show
from ..config.spec import EARLY_STOPPING_METRICS, REQUIRED, Key, spec, suggest
from ..config.validate import Checker
from ..config.yamlfile import parse_override, read_yaml, set_override
from ..errors import NnctlError, did_you_mean
from .space import GRID_LIMIT, grid_size

METRICS = EARLY_STOPPING_METRICS
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform")


def _check_metric(checker, v, key, path):
    from ..training.stopping import maximized

    if isinstance(v, str):
        v = {"name": v}
    if not isinstance(v, dict):
        checker.fail(path, f"must be a mapping like {{name: val_loss, goal: minimize}}, got {show(v)}")
    if "goal" not in v and isinstance(v.get("name"), str) and maximized(v["name"]):
        v = {**v, "goal": "maximize"}  # higher is better for accuracy, r2, f1, ...: minimizing it would mislead
    return checker.section(v, key.sub, path)


def _check_parameters(checker, v, key, path):
    if not isinstance(v, dict) or not v:
        checker.fail(path, f"must map dotted config keys to their ranges, got {show(v)}",
                     "e.g. training.learning_rate: {distribution: log_uniform, min: 1.0e-4, max: 0.1}")
    known = _config_keys()
    out = {}
    for name, options in v.items():
        where = path + [str(name)]
        if name not in known:
            checker.fail(where, f"is not a config key{suggest(name, known)}", "parameters are dotted config keys, "
                         "e.g. training.learning_rate or model.layers")
        if not isinstance(options, dict):
            checker.fail(where, f"must be {{values: [...]}} or {{distribution: ..., min: ..., max: ...}}, got {show(options)}")
        if "values" in options:
            checker.reject_unknown(options, ("values",), where)
            values = options["values"]
            if not isinstance(values, list) or not values:
                checker.fail(where + ["values"], f"must be a non-empty list, got {show(values)}")
            out[name] = {"values": values}
            continue
        checker.reject_unknown(options, ("distribution", "min", "max"), where)
        for needed in ("distribution", "min", "max"):
            if needed not in options:
                checker.fail(where, f"needs `{needed}`", "e.g. {distribution: log_uniform, min: 1.0e-4, max: 0.1}")
        kind = options["distribution"]
        if kind not in DISTRIBUTIONS:
            checker.fail(where + ["distribution"], f"must be one of {', '.join(DISTRIBUTIONS)}; got {show(kind)}"
                                                   f"{did_you_mean(kind, DISTRIBUTIONS)}")
        number = KINDS["int" if kind == "int_uniform" else "float"].check
        low = number(checker, options["min"], Key(0, "float", ""), where + ["min"])
        high = number(checker, options["max"], Key(0, "float", ""), where + ["max"])
        if not low < high or (kind == "log_uniform" and low <= 0):
            checker.fail(where, f"needs min < max{' and min > 0 for log_uniform' if kind == 'log_uniform' else ''}, "
                                f"got {low} and {high}")
        out[name] = {"distribution": kind, "min": low, "max": high}
    return out


def _schema_parameters(key):
    number = {"type": "number"}
    return {"type": "object", "additionalProperties": {"anyOf": [
        {"type": "object", "properties": {"values": {"type": "array", "minItems": 1}}, "required": ["values"],
         "additionalProperties": False},
        {"type": "object", "properties": {"distribution": {"enum": list(DISTRIBUTIONS)}, "min": number, "max": number},
         "required": ["distribution", "min", "max"], "additionalProperties": False}]}}


def _check_mapping(checker, v, key, path):
    if not isinstance(v, dict):
        checker.fail(path, f"must be a mapping, got {show(v)}")
    return checker.section(v, key.sub, path)


KINDS.update({"sweep_metric": Kind(_check_metric, lambda key: {"anyOf": [{"enum": list(METRICS)},
                                                                         section_schema(key.sub)]}),
              "parameters": Kind(_check_parameters, _schema_parameters),
              "mapping": Kind(_check_mapping, lambda key: section_schema(key.sub))})

SWEEP = {
    "config": Key(REQUIRED, "path", "the base config, relative to this file"),
    "method": Key("tpe", "choice", "grid | random | tpe (Optuna's samplers)", ("grid", "random", "tpe")),
    "trials": Key(30, "int", "how many trials (grid runs every combination)", low=1),
    "metric": Key({"name": "val_loss", "goal": "minimize"}, "sweep_metric", "what a trial is scored by",
                  sub={"name": Key("val_loss", "metric", "a history column; several targets: also val_<target>_<metric>",
                                   METRICS),
                       "goal": Key("minimize", "choice", "minimize | maximize", ("minimize", "maximize"))}),
    "folds": Key(None, "int", "K: score each trial by K-fold cross-validation (the mean)", low=2, nullable=True),
    "seed": Key(0, "int", "the search's seed: the same file proposes the same trials", low=0),
    "early_terminate": Key(None, "mapping", "stop unpromising trials: {type: median | hyperband, min_epochs: 10}",
                           nullable=True, sub={"type": Key("median", "choice", "Optuna's pruner", ("median", "hyperband")),
                                               "min_epochs": Key(10, "int", "epochs before a trial may be stopped", low=1)}),
    "parameters": Key(REQUIRED, "parameters", "dotted config keys: {values: [...]} or {distribution, min, max}"),
}


def _config_keys(table=None, prefix="") -> list[str]:
    out = []
    for name, entry in (spec() if table is None else table).items():
        out += _config_keys(entry, f"{prefix}{name}.") if isinstance(entry, dict) else [f"{prefix}{name}"]
    return out


def load_sweep(path, overrides=()) -> dict:
    """The resolved sweep file: every default filled in, `config` made absolute, and `base`: the
    base config's raw mapping with the `--set` overrides applied (each trial adds its parameters
    and is checked like any config)."""
    path = Path(path)
    raw, node = read_yaml(path)
    if not isinstance(raw, dict):
        raise NnctlError("sweep file must be a mapping of keys" if raw is not None else "sweep file is empty",
                         str(path), "see `nnctl sweep --help` for an example")
    checker = Checker(str(path), node, path.resolve().parent, ())
    sweep = checker.section(raw, SWEEP, [])
    if sweep["method"] == "grid":
        ranged = [k for k, p in sweep["parameters"].items() if "values" not in p]
        if ranged:
            checker.fail(["parameters", ranged[0]], "needs `values`: a grid runs every combination of listed values")
        size = grid_size(sweep["parameters"])
        if size > GRID_LIMIT:
            checker.fail(["parameters"], f"make a grid of {size:,} combinations, more than the limit of {GRID_LIMIT:,}",
                         "list fewer values, or use method: random (or tpe) with trials: N")
    base, base_node = read_yaml(sweep["config"])
    if not isinstance(base, dict):
        raise NnctlError("the base config must be a mapping of keys", sweep["config"])
    for text in overrides:
        keys, value = parse_override(text)
        set_override(base, keys, value)
    sweep["base"] = base
    sweep["base_overrides"] = list(overrides)
    return sweep


def trial_config(sweep: dict, params: dict) -> dict:
    """The base config with a trial's parameters, checked and resolved like any config."""
    from ..config import resolve

    raw = copy.deepcopy(sweep["base"])
    for name, value in params.items():
        set_override(raw, name.split("."), value)
    return resolve(raw, base_dir=Path(sweep["config"]).parent, source=sweep["config"],
                   set_paths=[k.split(".") for k in params])


def sweep_schema() -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "nnctl sweep",
            **section_schema(SWEEP)}

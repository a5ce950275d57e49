"""Reading and checking configs. `load_config` reads YAML (safe_load only), applies `--set`
overrides, checks every key against the table in `spec.py` and returns the resolved config: a
plain nested dict with every default filled in and `data.path` / `model.init_from` made absolute.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import NnctlError, did_you_mean
from .spec import EARLY_STOPPING_DEFAULTS, EARLY_STOPPING_METRICS, REQUIRED, SCIENTIFIC, Key, spec

# --- reading ---------------------------------------------------------------------------------
def read_yaml(path: str | Path) -> tuple[Any, Any]:
    """(data, node tree) of a YAML file; errors name the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NnctlError("config file not found", str(path), "check the path, or create one with `nnctl init`")
    except IsADirectoryError:
        raise NnctlError("config path is a folder, not a file", str(path))
    except UnicodeDecodeError:
        raise NnctlError("config file is not UTF-8 text", str(path))
    except OSError as exc:
        raise NnctlError(f"cannot read config: {exc.strerror}", str(path))
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in str(exc):
            problem = "YAML tags that build objects are not allowed"
        raise NnctlError(f"invalid YAML: {problem}", where)
    except yaml.YAMLError as exc:
        raise NnctlError(f"invalid YAML: {exc}", str(path))
    return data, node


def _line_of(node, keys: list[str]) -> int | None:
    """1-based line of the key path in a composed YAML tree, or None."""
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return line
        for k, v in node.value:
            if k.value == key:
                line, node = k.start_mark.line + 1, v
                break
        else:
            return line
    return line


def parse_override(text: str) -> tuple[list[str], Any]:
    """'training.learning_rate=0.1' -> (['training', 'learning_rate'], 0.1); the value is read
    as a YAML scalar or flow list."""
    if "=" not in text:
        raise NnctlError(f"--set expects KEY=VALUE, got '{text}'", "--set", "e.g. --set training.learning_rate=0.1")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise NnctlError(f"cannot read the value '{raw}'", f"--set {key}", "quote strings with YAML quotes, lists as [a, b]")
    return [k for k in key.strip().split(".")], value


def load_config(path: str | Path, overrides: list[str] | tuple = ()) -> dict:
    """Read, override, validate and resolve a config file (see module docstring)."""
    path = Path(path)
    raw, node = read_yaml(path)
    if raw is None:
        raise NnctlError("config file is empty", str(path), "start from `nnctl init`")
    if not isinstance(raw, dict):
        raise NnctlError(f"config must be a mapping of keys, got a {type(raw).__name__}", str(path))
    set_paths = []
    for text in overrides:
        keys, value = parse_override(text)
        _set(raw, keys, value)
        set_paths.append(keys)
    return resolve(raw, base_dir=path.resolve().parent, source=str(path), node=node, set_paths=set_paths)


def _set(raw: dict, keys: list[str], value) -> None:
    """Put an override into the raw mapping; validation later names unknown keys."""
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if isinstance(child, str):  # `schedule: step` written short, overridden by a sub-key
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[keys[-1]] = value


# --- validation ------------------------------------------------------------------------------
class _Checker:
    def __init__(self, source: str, node, base_dir: Path, set_paths):
        self.source, self.node, self.base_dir = source, node, base_dir
        self.set_paths = [tuple(p) for p in set_paths]

    def where(self, keys: list[str]) -> str:
        for p in self.set_paths:
            if tuple(keys[: len(p)]) == p or tuple(p[: len(keys)]) == tuple(keys):
                return f"--set {'.'.join(keys)}"
        line = _line_of(self.node, keys) if self.node is not None else None
        loc = f"{self.source}, line {line}" if line else self.source
        return f"{loc}, key {'.'.join(keys)}"

    def fail(self, keys, message, hint=None):
        raise NnctlError(f"{'.'.join(keys)} {message}", self.where(keys), hint)

    def reject_unknown(self, raw: dict, known, keys: list[str], what: str = "a known key") -> None:
        for k in raw:
            if not isinstance(k, str) or k not in known:
                self.fail(keys + [str(k)], f"is not {what}{did_you_mean(k, known)}",
                          f"known keys here: {', '.join(known) or 'none'}")

    def section(self, raw, table: dict, keys: list[str]) -> dict:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(keys, f"must be a mapping of keys, got {_show(raw)}")
        self.reject_unknown(raw, table, keys)
        out = {}
        for name, entry in table.items():
            path = keys + [name]
            if isinstance(entry, dict):
                out[name] = self.section(raw.get(name), entry, path)
            elif name not in raw:
                if entry.default is REQUIRED:
                    self.fail(path, "is required", f"add `{name}:` under `{keys[-1]}:`" if keys else None)
                out[name] = self.value(_copy(entry.default), entry, path)
            else:
                out[name] = self.value(raw[name], entry, path)
        return out

    def value(self, v, key: Key, path):
        if v is None and key.nullable:
            return None
        method = getattr(self, f"kind_{key.kind}")
        return method(v, key, path)

    def kind_int(self, v, key, path):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                self.fail(path, f"must be an integer, got {_show(v)}")
        return self._range(v, key, path)

    def kind_float(self, v, key, path):
        if isinstance(v, str) and SCIENTIFIC.fullmatch(v.strip()):
            v = float(v)  # YAML 1.1 reads 1e-3 (no dot) as a string; users mean the number
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(path, f"must be a number, got {_show(v)}")
        if v != v or v in (float("inf"), float("-inf")):
            self.fail(path, f"must be a finite number, got {v}")
        return float(self._range(v, key, path))

    def _range(self, v, key, path):
        if key.low is not None and (v <= key.low if key.low_open else v < key.low):
            self.fail(path, f"must be {'>' if key.low_open else '>='} {key.low:g}, got {v}")
        if key.high is not None and v >= key.high:
            self.fail(path, f"must be < {key.high:g}, got {v}")
        return v

    def kind_bool(self, v, key, path):
        if not isinstance(v, bool):
            self.fail(path, f"must be true or false, got {_show(v)}")
        return v

    def kind_str(self, v, key, path):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)  # a column named 2024 is still a column name
        if not isinstance(v, str) or not v:
            self.fail(path, f"must be a non-empty string, got {_show(v)}")
        return v

    def kind_choice(self, v, key, path):
        if not isinstance(v, str) or v not in key.choices:
            self.fail(path, f"must be one of {', '.join(key.choices)}; got {_show(v)}{did_you_mean(v, key.choices)}")
        return v

    def kind_path(self, v, key, path):
        v = self.kind_str(v, key, path)
        base = Path.cwd() if self.where(path).startswith("--set") else self.base_dir
        return str((base / os.path.expanduser(v)).resolve())

    def kind_names(self, v, key, path):
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not v:
            self.fail(path, f"must be a list of column names, got {_show(v)}")
        names = [self.kind_str(x, key, path) for x in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            self.fail(path, f"lists {', '.join(dupes)} more than once")
        return names

    def kind_categorical(self, v, key, path):
        if v == "auto":
            return v
        if v is None or v == []:
            return []
        return self.kind_names(v, key, path)

    def kind_delimiter(self, v, key, path):
        named = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "space": " "}
        v = named.get(v, v) if isinstance(v, str) else v
        if not isinstance(v, str) or len(v) != 1:
            self.fail(path, f"must be one character (or comma, semicolon, tab, pipe, space), got {_show(v)}")
        return v

    def kind_layers(self, v, key, path):
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list):
            self.fail(path, f"must be a list of hidden layer sizes like [16, 16], got {_show(v)}")
        for size in v:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                self.fail(path, f"sizes must be integers >= 1, got {_show(size)}")
        return list(v)

    def kind_activation(self, v, key, path):
        items = v if isinstance(v, list) else [v]
        for name in items:
            if not isinstance(name, str) or name not in key.choices:
                self.fail(path, f"must name an activation ({', '.join(key.choices)}); got {_show(name)}{did_you_mean(name, key.choices)}")
        return v

    def kind_log_every(self, v, key, path):
        return v if v == "auto" else self.kind_int(v, key, path)

    def kind_schedule(self, v, key, path):
        from .optimizers import SCHEDULES

        if isinstance(v, str):
            v = {"name": v}
        if not isinstance(v, dict) or "name" not in v:
            self.fail(path, "must be a schedule name or a mapping with `name`", f"choices: {', '.join(key.choices)}")
        name = v["name"]
        if not isinstance(name, str) or name not in SCHEDULES:
            self.fail(path + ["name"], f"must be one of {', '.join(SCHEDULES)}; got {_show(name)}{did_you_mean(name, SCHEDULES)}")
        own = SCHEDULES[name][1]
        out = {"name": name}
        self.reject_unknown({k: x for k, x in v.items() if k != "name"}, own, path, f"a key of the {name} schedule")
        for k, default in own.items():
            val = v.get(k, default)
            if k == "step_size":
                out[k] = self.kind_int(val, Key(0, "int", "", low=1), path + [k])
            elif k == "gamma":
                out[k] = self.kind_float(val, Key(0, "float", "", low=0.0, low_open=True, high=1.0 + 1e-12), path + [k])
            else:
                out[k] = self.kind_float(val, Key(0, "float", "", low=0.0), path + [k])
        return out

    def kind_early_stopping(self, v, key, path):
        if v is False:
            return None
        if v is True:
            v = {}
        if not isinstance(v, dict):
            self.fail(path, f"must be null or a mapping like {{patience: 20}}, got {_show(v)}")
        self.reject_unknown(v, EARLY_STOPPING_DEFAULTS, path)
        merged = {**EARLY_STOPPING_DEFAULTS, **v}
        return {
            "patience": self.kind_int(merged["patience"], Key(0, "int", "", low=1), path + ["patience"]),
            "min_delta": self.kind_float(merged["min_delta"], Key(0, "float", "", low=0.0), path + ["min_delta"]),
            "metric": self.kind_choice(merged["metric"], Key(0, "choice", "", EARLY_STOPPING_METRICS), path + ["metric"]),
            "restore_best": self.kind_bool(merged["restore_best"], None, path + ["restore_best"]),
        }


def _show(v) -> str:
    if isinstance(v, str):
        return f"'{v}'"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return f"a {'list' if isinstance(v, list) else 'mapping'}"
    return repr(v)


def _copy(v):
    return [*v] if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def resolve(raw: dict, base_dir: Path, source: str = "config", node=None, set_paths=()) -> dict:
    """Validate a raw config mapping and fill every default; cross-key rules are checked too."""
    checker = _Checker(source, node, Path(base_dir), set_paths)
    cfg = checker.section(raw, spec(), [])
    model, training = cfg["model"], cfg["training"]
    if isinstance(model["activation"], list) and len(model["activation"]) != len(model["layers"]):
        checker.fail(["model", "activation"],
                     f"lists {len(model['activation'])} activations for {len(model['layers'])} hidden layers",
                     "give one name per hidden layer, or a single name for all")
    if training["batch_size"] == 0:
        training["batch_size"] = None
    stop = training["early_stopping"]
    if stop and stop["metric"].startswith("val_") and cfg["data"]["validation_split"] == 0:
        checker.fail(["training", "early_stopping", "metric"], f"{stop['metric']} needs a validation part",
                     "set data.validation_split > 0, or metric: train_loss")
    features = cfg["data"]["features"]
    if features and cfg["data"]["target"] in features:
        checker.fail(["data", "features"], f"includes the target column '{cfg['data']['target']}'")
    return cfg


def hidden_activations(cfg: dict) -> list[str]:
    act, layers = cfg["model"]["activation"], cfg["model"]["layers"]
    return list(act) if isinstance(act, list) else [act] * len(layers)


def dump_config(cfg: dict) -> str:
    """The resolved config as YAML, keys in the spec's order; loading it gives the same dict."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)

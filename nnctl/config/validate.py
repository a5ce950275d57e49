"""Checking a config against the key table. `load_config` reads YAML (safe_load only), applies
`--set` overrides, checks every key against `spec.spec()` and returns the resolved config: a
`Config` of frozen dataclasses (`config/typed.py`: `cfg.training.learning_rate`) with every default
filled in and `data.path` / `model.init_from` made absolute. `cfg.to_dict()` is its plain form.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import NnctlError
from .kinds import KINDS, show
from .spec import OTHER_NAMES, REQUIRED, Key, spec, suggest
from .typed import Config, from_dict, to_dict
from .yamlfile import line_of, parse_override, read_yaml, set_override


def load_config(path: str | Path, overrides: list[str] | tuple = ()) -> Config:
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
        set_override(raw, keys, value)
        set_paths.append(keys)
    return resolve(raw, base_dir=path.resolve().parent, source=str(path), node=node, set_paths=set_paths)


def written_paths(path: str | Path, overrides: list[str] | tuple = ()) -> dict:
    """{dotted key: value as written} for each path key the config file (or a --set) gives,
    before it is made absolute: what a report shows, so a page never carries the absolute
    paths of the machine that trained. Call it on a config that `load_config` accepted."""
    raw, _ = read_yaml(Path(path))
    for text in overrides:
        keys, value = parse_override(text)
        set_override(raw, keys, value)
    found = {}

    def walk(table: dict, node, keys: tuple):
        for k, entry in table.items():
            value = node.get(k) if isinstance(node, dict) else None
            if isinstance(entry, dict):
                walk(entry, value, keys + (k,))
            elif isinstance(entry, Key) and entry.kind == "path" and isinstance(value, str):
                found[".".join(keys + (k,))] = value

    walk(spec(), raw, ())
    return found


class Checker:
    """Walks a raw mapping against a table of Keys; `fail` raises an NnctlError that names the
    key and where it was written (the file and line, or the `--set` flag)."""

    def __init__(self, source: str, node, base_dir: Path, set_paths):
        self.source, self.node, self.base_dir = source, node, base_dir
        self.set_paths = [tuple(p) for p in set_paths]

    def _set_by_flag(self, keys: list[str]) -> bool:
        return any(tuple(keys[: len(p)]) == p or tuple(p[: len(keys)]) == tuple(keys) for p in self.set_paths)

    def where(self, keys: list[str]) -> str:
        if self._set_by_flag(keys):
            return f"--set {'.'.join(keys)}"
        line = line_of(self.node, keys) if self.node is not None else None
        loc = f"{self.source}, line {line}" if line else self.source
        return f"{loc}, key {'.'.join(keys)}"

    def base_for(self, keys: list[str]) -> Path:
        """Relative paths are relative to the config's folder, or to the working directory
        when given with --set."""
        return Path.cwd() if self._set_by_flag(keys) else self.base_dir

    def fail(self, keys, message, hint=None):
        raise NnctlError(f"{'.'.join(keys)} {message}", self.where(keys), hint)

    def reject_unknown(self, raw: dict, known, keys: list[str], what: str = "a known key") -> None:
        for k in raw:
            if not isinstance(k, str) or k not in known:
                homes = [h for h in key_homes(str(k)) or key_homes(OTHER_NAMES.get(str(k).lower(), ""))
                         if list(h[:-1]) != keys]
                if homes:
                    home = ".".join(homes[0])
                    section = ".".join(homes[0][:-1])
                    self.fail(keys + [str(k)], f"belongs under {section or 'the top level'}: write it as {home}",
                              f"known keys here: {', '.join(known) or 'none'}")
                self.fail(keys + [str(k)], f"is not {what}{suggest(k, known)}",
                          f"known keys here: {', '.join(known) or 'none'}")

    def section(self, raw, table: dict, keys: list[str], what: str = "a known key") -> dict:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(keys, f"must be a mapping of keys, got {show(raw)}")
        self.reject_unknown(raw, table, keys, what)
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
        return KINDS[key.kind].check(self, v, key, path)


def key_homes(name: str, table: dict | None = None, keys: tuple = ()) -> list[tuple]:
    """Every place in the key table where a key called `name` lives, as key paths."""
    table = spec() if table is None else table
    found = []
    for k, entry in table.items():
        if isinstance(entry, dict):
            found += key_homes(name, entry, keys + (k,))
        elif k == name:
            found.append(keys + (k,))
    return found


def _copy(v):
    return [*v] if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def resolve(raw: dict, base_dir: Path, source: str = "config", node=None, set_paths=()) -> Config:
    """Validate a raw config mapping and fill every default; cross-key rules are checked too.
    Returns the typed config."""
    checker = Checker(source, node, Path(base_dir), set_paths)
    cfg = checker.section(raw, spec(), [])
    model, training = cfg["model"], cfg["training"]
    if isinstance(model["activation"], list) and len(model["activation"]) != len(model["layers"]):
        checker.fail(["model", "activation"],
                     f"lists {len(model['activation'])} activations for {len(model['layers'])} hidden layers",
                     "give one name per hidden layer, or a single name for all")
    if isinstance(model["dropout"], list) and len(model["dropout"]) != len(model["layers"]):
        checker.fail(["model", "dropout"], f"lists {len(model['dropout'])} rates for {len(model['layers'])} hidden layers",
                     "give one rate per hidden layer, or a single rate for all")
    if training["batch_size"] == 0:
        training["batch_size"] = None
    _fit_defaults(raw, cfg)
    stop = training["early_stopping"]
    if stop and stop["metric"].startswith("val_") and cfg["data"]["validation_split"] == 0 \
            and not cfg["data"]["validation_path"]:
        checker.fail(["training", "early_stopping", "metric"], f"{stop['metric']} needs a validation part",
                     "set data.validation_split > 0 or data.validation_path, or metric: train_loss")
    schedule = training["schedule"]
    if schedule["name"] == "plateau" and stop and schedule["patience"] >= stop["patience"]:
        checker.fail(["training", "schedule", "patience"],
                     f"is {schedule['patience']}, not below early stopping's patience ({stop['patience']}): "
                     "training would stop before the learning rate is ever reduced",
                     "make the plateau patience smaller than training.early_stopping.patience, e.g. half of it")
    _check_calibration(checker, cfg)
    features, exclude, target = cfg["data"]["features"], cfg["data"]["exclude"], cfg["data"]["target"]
    for target in target_names(cfg["data"]["target"]):
        if features and target in features:
            checker.fail(["data", "features"], f"includes the target column '{target}'",
                         "a column is either a feature or a target: remove it from one of them")
        if target in exclude:
            checker.fail(["data", "exclude"], f"names the target column '{target}', which is never an input anyway",
                         "remove it from data.exclude")
    if features and exclude:
        checker.fail(["data", "exclude"], "is set together with data.features, which already lists every input",
                     "use one: data.features (the columns to use) or data.exclude (the columns to leave out)")
    _check_targets(checker, cfg)
    return from_dict(cfg)


def _fit_defaults(raw: dict, cfg: dict) -> None:
    """The defaults of early stopping and the plateau schedule yield to what the config writes,
    so that a key left out never fails a rule against a key written: without a validation part
    there is no early stopping; under a short early-stopping patience the plateau's is half of
    it (a constant rate when that leaves none), so the rate is reduced before training stops."""
    given = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    training, data = cfg["training"], cfg["data"]
    if "early_stopping" not in given and data["validation_split"] == 0 and not data["validation_path"]:
        training["early_stopping"] = None
    stop, schedule = training["early_stopping"], training["schedule"]
    if "schedule" not in given and stop and schedule["name"] == "plateau" and schedule["patience"] >= stop["patience"]:
        patience = stop["patience"] // 2
        training["schedule"] = {**schedule, "patience": patience} if patience else {"name": "constant"}


def target_names(target) -> list[str]:
    """data.target as a list: one column, or the several targets in order."""
    return list(target) if isinstance(target, list) else [target]


def _check_targets(checker: Checker, cfg: dict) -> None:
    """Per-target settings name targets; several targets take class weights and positive
    classes per target only (one setting for all of them would be ambiguous)."""
    data, training = cfg["data"], cfg["training"]
    names = target_names(data["target"])
    for key, mapping in ((["data", "targets"], data["targets"]), (["training", "target_weights"],
                                                                  training["target_weights"])):
        for column in mapping:
            if column not in names:
                checker.fail(key + [column], f"names '{column}', which is not a target{suggest(column, names)}",
                             f"the targets (data.target): {', '.join(names)}")
    if len(names) < 2:
        return
    for key, value, own in ((["data", "positive_class"], data["positive_class"], "positive_class"),
                            (["training", "class_weight"], training["class_weight"], "class_weight")):
        if value is not None:
            checker.fail(key, "is set for one target, and data.target lists several",
                         f"set it per target: data.targets: {{{names[0]}: {{{own}: ...}}}}")
    if training["loss"] != "auto":
        checker.fail(["training", "loss"], "is one loss, and data.target lists several",
                     "leave training.loss: auto: each target gets its task's loss")


PYTHON_SOURCE = "the config changed in Python"


def check_typed(obj, path: tuple) -> None:
    """Validate a typed config or section made in Python (`dataclasses.replace`) as its YAML
    would be: the whole config with every cross-key rule, a section against its keys, a
    sub-mapping (early_stopping, ...) as part of its section when that is replaced. An
    NnctlError naming the key otherwise. A field left at None counts as a key not written (a
    dataclass made with some fields only, `TrainingConfig(optimizer="adam")`, gets the defaults
    as a YAML file without those keys would); None is a value only where a key may be null."""
    values = _given(to_dict(obj))
    if not path:
        resolve(values, base_dir=Path.cwd(), source=PYTHON_SOURCE)
    elif len(path) == 1:
        Checker(PYTHON_SOURCE, None, Path.cwd(), ()).section(values, spec()[path[0]], [path[0]])


def _given(values):
    """A mapping without its None values, at every level: the keys a caller wrote."""
    if isinstance(values, dict):
        return {k: _given(v) for k, v in values.items() if v is not None}
    return values


def _check_calibration(checker: Checker, cfg: dict) -> None:
    """training.calibration: temperature fits on the validation part, and only a classification
    has logits to divide; a task or loss the data decides is checked once it is read."""
    if cfg["training"]["calibration"] != "temperature":
        return
    keys = ["training", "calibration"]
    if cfg["data"]["validation_split"] == 0 and not cfg["data"]["validation_path"]:
        checker.fail(keys, "temperature is fitted on the validation part, and this config has none",
                     "set data.validation_split > 0 or data.validation_path, or training.calibration: none")
    from ..nn.losses import LOSSES

    loss = LOSSES.get(cfg["training"]["loss"])
    if cfg["model"]["task"] == "regression" or (loss is not None and loss.task == "regression"):
        checker.fail(keys, "temperature scales class probabilities, but this model is a regression",
                     "set training.calibration: none")


def hidden_activations(cfg: Config) -> list[str]:
    act, layers = cfg.model.activation, cfg.model.layers
    return list(act) if isinstance(act, list) else [act] * len(layers)


class _BlockDumper(yaml.SafeDumper):
    """Mappings always in block style; a list of plain values on one line, as people write
    `layers: [16, 16]`."""


def _represent_list(dumper, values):
    flow = all(not isinstance(v, (list, dict)) for v in values)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", values, flow_style=flow)


_BlockDumper.add_representer(list, _represent_list)


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, keys in the spec's order and every section in block style;
    loading it gives the same config."""
    return yaml.dump(to_dict(cfg), Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)

"""The resolved config, typed: frozen dataclasses made from the key table in `spec.py`.

    cfg = load_config("configs/iris.yaml")
    cfg.training.learning_rate        # 0.01
    cfg.training.early_stopping       # None, or EarlyStoppingConfig(patience=20, ...)
    cfg.to_dict()                     # the plain mapping: YAML, JSON, checkpoints, --set

There is one class per section (`DataConfig`, `ModelConfig`, `TrainingConfig`) and one for
each sub-mapping whose keys are fixed (`EarlyStoppingConfig`). A mapping whose keys vary (a
schedule's own keys, class weights per label) stays a mapping. The classes are made at import
from `spec()`, so a key added to the table is a field here with no other edit. They are frozen:
a config is resolved once and then only read; `dataclasses.replace` gives a changed copy,
which is checked as a YAML file is: a section (`replace(cfg.training, learning_rate=-1)`) against
its keys, the whole config (`replace(cfg, training=...)`) with the cross-key rules too. An invalid
copy is the same `NnctlError` a config file with that value gets.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .spec import Key, spec


def _class_name(path: tuple) -> str:
    return (path[-1].title().replace("_", "") if path else "") + "Config"


_TRUSTED = [0]  # > 0 while `from_dict` builds a config that `resolve` has just checked


def _checked(self) -> None:
    """__post_init__: a config or section made in Python (`dataclasses.replace`) is validated
    as a YAML file would be; one that `resolve` made is not checked twice."""
    if _TRUSTED[0]:
        return
    from .validate import check_typed

    check_typed(self, _PATHS[type(self)])


def _make(path: tuple, table: dict) -> type:
    """A frozen dataclass with one field per key of `table` (a section of the spec), in the
    table's order; sub-mappings with fixed keys get their own class."""
    fields = []
    for name, entry in table.items():
        if isinstance(entry, dict):
            _make(path + (name,), entry)
        elif isinstance(entry, Key) and entry.sub and entry.kind not in ("schedule", "numeric_embedding"):
            _make(path + (name,), entry.sub)
        fields.append((name, Any, dataclasses.field(default=None)))
    cls = dataclasses.make_dataclass(_class_name(path), fields, frozen=True,
                                     namespace={"__post_init__": _checked})
    cls.__module__ = __name__
    cls.__doc__ = f"The resolved `{'.'.join(path) or 'config'}` section (fields from config/spec.py)."
    # module-level names, so that configs pickle into sweep workers and Ray tasks
    globals()[cls.__name__] = cls
    _CLASSES[path] = cls
    _PATHS[cls] = path
    return cls


_CLASSES: dict[tuple, type] = {}
_PATHS: dict[type, tuple] = {}
Config = _make((), spec())


def _typed(path: tuple, value):
    cls = _CLASSES.get(path)
    if cls is None or not isinstance(value, dict):
        return value
    return cls(**{k: _typed(path + (k,), v) for k, v in value.items()})


def from_dict(resolved: dict) -> "Config":
    """The typed form of a resolved config mapping (every key present, as `resolve` gives it)."""
    _TRUSTED[0] += 1
    try:
        return _typed((), resolved)
    finally:
        _TRUSTED[0] -= 1


def to_dict(cfg) -> dict:
    """The plain mapping of a typed config, keys in the table's order."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [to_dict(v) for v in cfg]
    return cfg


for _cls in _CLASSES.values():
    _cls.to_dict = to_dict

"""What each kind of config value accepts: its check beside its JSON Schema.

`KINDS[name].check(checker, value, key, path)` returns the resolved value or calls
`checker.fail`; `KINDS[name].schema(key)` is the JSON Schema of the same set of values. Ranges
(`Key.low`, `Key.high`) and sub-keys (`Key.sub`) are read from the key, so both sides follow the
table in `spec.py`.
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple

from ..errors import did_you_mean
from .spec import REQUIRED, SCIENTIFIC, Key


class Kind(NamedTuple):
    check: Callable
    schema: Callable


def show(v) -> str:
    """A value as a user wrote it in YAML, for messages."""
    if isinstance(v, str):
        return f"'{v}'"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return f"{'an empty' if not v else 'a'} {'list' if isinstance(v, list) else 'mapping'}"
    return repr(v)


# --- numbers ---------------------------------------------------------------------------------
def number_fix(key: Key, path) -> str:
    """The fix line of a number that is no number or out of range: the range and the default."""
    bounds = []
    if key.low is not None:
        bounds.append(f"{'>' if key.low_open else '>='} {key.low:g}")
    if key.high is not None:
        bounds.append(f"{'<=' if key.high_closed else '<'} {key.high:g}")
    default = key.default if isinstance(key.default, (int, float)) and not isinstance(key.default, bool) else None
    what = "a whole number" if "int" in key.kind else "a number"
    return (f"write {'.'.join(path)} as {what}{' ' + ' and '.join(bounds) if bounds else ''}"
            + (f", e.g. the default {default:g}" if default is not None else ""))


def _in_range(checker, v, key: Key, path):
    if key.low is not None and (v <= key.low if key.low_open else v < key.low):
        checker.fail(path, f"must be {'>' if key.low_open else '>='} {key.low:g}, got {v}", number_fix(key, path))
    if key.high is not None and (v > key.high if key.high_closed else v >= key.high):
        checker.fail(path, f"must be {'<=' if key.high_closed else '<'} {key.high:g}, got {v}", number_fix(key, path))
    return v


def _range_schema(key: Key, schema: dict) -> dict:
    if key.low is not None:
        schema["exclusiveMinimum" if key.low_open else "minimum"] = key.low
    if key.high is not None:
        schema["maximum" if key.high_closed else "exclusiveMaximum"] = key.high
    return schema


def check_int(checker, v, key, path):
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            checker.fail(path, f"must be an integer, got {show(v)}", number_fix(key, path))
    return _in_range(checker, v, key, path)


def schema_int(key):
    return _range_schema(key, {"type": "integer"})


def check_float(checker, v, key, path):
    if isinstance(v, str) and SCIENTIFIC.fullmatch(v.strip()):
        v = float(v)  # YAML 1.1 reads 1e-3 (no dot) as a string; users mean the number
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        checker.fail(path, f"must be a number, got {show(v)}", number_fix(key, path))
    if v != v or v in (float("inf"), float("-inf")):
        checker.fail(path, f"must be a finite number, got {v}", number_fix(key, path))
    return float(_in_range(checker, v, key, path))


def schema_float(key):
    return _range_schema(key, {"type": "number"})


def check_auto_int(checker, v, key, path):
    return v if v == "auto" else check_int(checker, v, key, path)


def schema_auto_int(key):
    return {"anyOf": [{"const": "auto"}, schema_int(key)]}


# --- scalars ---------------------------------------------------------------------------------
def check_bool(checker, v, key, path):
    if not isinstance(v, bool):
        checker.fail(path, f"must be true or false, got {show(v)}")
    return v


def check_auto_bool(checker, v, key, path):
    if v == "auto" or isinstance(v, bool):
        return v
    checker.fail(path, f"must be auto, true or false, got {show(v)}")


def schema_auto_bool(key):
    return {"anyOf": [{"const": "auto"}, {"type": "boolean"}]}


def check_str(checker, v, key, path):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)  # a column named 2024 is still a column name
    if not isinstance(v, str) or not v:
        checker.fail(path, f"must be a non-empty string, got {show(v)}")
    return v


def schema_str(key):
    return {"type": "string", "minLength": 1}


def check_path(checker, v, key, path):
    v = check_str(checker, v, key, path)
    return str((checker.base_for(path) / os.path.expanduser(v)).resolve())


def check_choice(checker, v, key, path):
    if not isinstance(v, str) or v not in key.choices:
        checker.fail(path, f"must be one of {', '.join(key.choices)}; got {show(v)}{did_you_mean(v, key.choices)}")
    return v


def schema_choice(key):
    return {"enum": list(key.choices)}


DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "space": " "}


def check_delimiter(checker, v, key, path):
    v = DELIMITER_NAMES.get(v, v) if isinstance(v, str) else v
    if not isinstance(v, str) or len(v) != 1:
        checker.fail(path, f"must be one character (or {', '.join(DELIMITER_NAMES)}), got {show(v)}")
    return v


def schema_delimiter(key):
    return {"type": "string"}


# --- lists -----------------------------------------------------------------------------------
def check_names(checker, v, key, path):
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        checker.fail(path, f"must be a list of column names, got {show(v)}")
    names = [check_str(checker, x, key, path) for x in v]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        checker.fail(path, f"lists {', '.join(dupes)} more than once")
    return names


def schema_names(key):
    return {"type": "array", "items": {"type": "string"}, "minItems": 1}


def check_label(checker, v, key, path):
    """A class label as the target column writes it: text, a number or a boolean."""
    if isinstance(v, (list, dict)) or v == "":
        checker.fail(path, f"must be one class label (text or a number), got {show(v)}")
    return v


def schema_label(key):
    return {"type": ["string", "number", "boolean"]}


def check_columns(checker, v, key, path):
    """A list of column names that may be empty (`exclude: []`)."""
    if v is None or v == []:
        return []
    return check_names(checker, v, key, path)


def schema_columns(key):
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def check_categorical(checker, v, key, path):
    if v == "auto":
        return v
    if v is None or v == []:
        return []
    return check_names(checker, v, key, path)


def schema_categorical(key):
    return {"anyOf": [{"const": "auto"}, {"type": "array", "items": {"type": "string"}}]}


def check_embedding(checker, v, key, path):
    if v == "auto":
        return v
    if v is None or v == {}:
        return {}
    if not isinstance(v, dict):
        checker.fail(path, f"must be auto or a mapping {{column: width}}, got {show(v)}")
    for column, width in v.items():
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            checker.fail(path + [str(column)], f"must be a width, an integer >= 1, got {show(width)}")
    return {str(column): int(width) for column, width in v.items()}


def schema_embedding(key):
    return {"anyOf": [{"const": "auto"},
                      {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}]}


def check_layers(checker, v, key, path):
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list):
        checker.fail(path, f"must be a list of hidden layer sizes like [16, 16], got {show(v)}")
    for size in v:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            checker.fail(path, f"sizes must be integers >= 1, got {show(size)}")
    return list(v)


def schema_layers(key):
    return {"type": "array", "items": {"type": "integer", "minimum": 1}}


def check_activation(checker, v, key, path):
    for name in v if isinstance(v, list) else [v]:
        if not isinstance(name, str) or name not in key.choices:
            checker.fail(path, f"must name an activation ({', '.join(key.choices)}); got {show(name)}"
                               f"{did_you_mean(name, key.choices)}")
    return v


def schema_activation(key):
    names = {"enum": list(key.choices)}
    return {"anyOf": [names, {"type": "array", "items": names}]}


def check_dropout(checker, v, key, path):
    if isinstance(v, list):
        return [check_float(checker, rate, key, path) for rate in v]
    return check_float(checker, v, key, path)


def schema_dropout(key):
    rate = schema_float(key)
    return {"anyOf": [rate, {"type": "array", "items": dict(rate)}]}


# --- mappings with their own keys ------------------------------------------------------------
def _check_tagged(checker, v, key, path, tag: str, what: str):
    """A name, or a mapping whose `tag` names a variant in `key.sub` beside that variant's own
    keys (defaults filled in): a schedule, a numeric embedding."""
    if isinstance(v, str):
        v = {tag: v}
    if not isinstance(v, dict) or tag not in v:
        checker.fail(path, f"must be a {what} name or a mapping with `{tag}`", f"choices: {', '.join(key.sub)}")
    name = v[tag]
    if not isinstance(name, str) or name not in key.sub:
        checker.fail(path + [tag], f"must be one of {', '.join(key.sub)}; got {show(name)}{did_you_mean(name, key.sub)}")
    own = {k: x for k, x in v.items() if k != tag}
    return {tag: name, **checker.section(own, key.sub[name], path, f"a key of the {name} {what}")}


def _schema_tagged(key, tag: str):
    variants = [{"enum": list(key.sub)}]
    for name, own in key.sub.items():
        variant = section_schema(own)
        variant["properties"] = {tag: {"const": name}, **variant["properties"]}
        variant["required"] = [tag]
        variants.append(variant)
    return {"anyOf": variants}


def check_schedule(checker, v, key, path):
    return _check_tagged(checker, v, key, path, "name", "schedule")


def schema_schedule(key):
    return _schema_tagged(key, "name")


def check_numeric_embedding(checker, v, key, path):
    """`none` (also null or false), a kind's name, or {kind: ..., its keys}; `none` stays a name."""
    if v is None or v is False or v == "none" or (isinstance(v, dict) and v.get("kind") == "none" and len(v) == 1):
        return "none"
    return _check_tagged(checker, v, key, path, "kind", "numeric embedding")


def schema_numeric_embedding(key):
    return _schema_tagged(key, "kind")


def check_early_stopping(checker, v, key, path):
    if v is False:
        return None
    if v is True:
        v = {}
    if not isinstance(v, dict):
        checker.fail(path, f"must be null or a mapping like {{patience: 20}}, got {show(v)}")
    return checker.section(v, key.sub, path)


def schema_early_stopping(key):
    return {"anyOf": [{"type": "boolean"}, section_schema(key.sub)]}


def check_class_weight(checker, v, key, path):
    if v == "balanced":
        return v
    if not isinstance(v, dict) or not v:
        checker.fail(path, f"must be null, balanced, or a mapping {{label: weight}}, got {show(v)}")
    weights = {}
    for label, weight in v.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0 or weight != weight \
                or weight == float("inf"):
            checker.fail(path + [str(label)], f"must be a positive number, got {show(weight)}")
        weights[str(label).strip()] = float(weight)  # labels compare as text, as the target column's
    return weights


def schema_class_weight(key):
    return {"anyOf": [{"const": "balanced"},
                      {"type": "object", "additionalProperties": {"type": "number", "exclusiveMinimum": 0}}]}


def check_tags(checker, v, key, path):
    """{name: text}: MLflow tags, whose values are strings; numbers and booleans are written as text."""
    if v is None or v == {}:
        return {}
    if not isinstance(v, dict):
        checker.fail(path, f"must be a mapping {{name: value}}, got {show(v)}")
    tags = {}
    for name, value in v.items():
        if isinstance(value, (dict, list)) or value is None:
            checker.fail(path + [str(name)], f"must be a text, a number or a boolean, got {show(value)}")
        tags[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
    return tags


def schema_tags(key):
    return {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}


# --- several targets -------------------------------------------------------------------------
def check_target(checker, v, key, path):
    """One column name, or a list of distinct ones (several targets); a list of one is that name."""
    if isinstance(v, list):
        if not v:
            checker.fail(path, "is an empty list", "name the column to predict, or a list of two or more columns")
        names = [check_str(checker, x, key, path) for x in v]
        dupes = [n for i, n in enumerate(names) if n in names[:i]]
        if dupes:
            checker.fail(path, f"lists the target '{dupes[0]}' twice", "list each target column once")
        return names[0] if len(names) == 1 else names
    return check_str(checker, v, key, path)


def schema_target(key):
    return {"anyOf": [schema_str(key), {"type": "array", "items": schema_str(key), "minItems": 1, "uniqueItems": True}]}


def check_targets(checker, v, key, path):
    """{column: {task, positive_class, class_weight, missing}}: only the keys written are kept,
    so that what a target leaves out can follow the single-target keys."""
    from .spec import TARGET_KEYS

    if v is None or v == {}:
        return {}
    if not isinstance(v, dict):
        checker.fail(path, f"must be a mapping {{column: {{task: ..., ...}}}}, got {show(v)}")
    out = {}
    for column, own in v.items():
        here = path + [str(column)]
        if own is None:
            own = {}
        if not isinstance(own, dict):
            checker.fail(here, f"must be a mapping of {', '.join(TARGET_KEYS)}, got {show(own)}")
        checker.reject_unknown(own, TARGET_KEYS, here, "a per-target key")
        out[str(column)] = {name: checker.value(own[name], TARGET_KEYS[name], here + [name])
                            for name in TARGET_KEYS if name in own}
    return out


def schema_targets(key):
    from .spec import TARGET_KEYS

    own = section_schema(TARGET_KEYS)
    for entry in own["properties"].values():
        entry.pop("default", None)
    return {"type": "object", "additionalProperties": own}


def check_target_weights(checker, v, key, path):
    if v is None or v == {}:
        return {}
    if not isinstance(v, dict):
        checker.fail(path, f"must be a mapping {{column: weight}}, got {show(v)}")
    weights = {}
    for column, weight in v.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight != weight \
                or weight == float("inf"):
            checker.fail(path + [str(column)], f"must be a number >= 0, got {show(weight)}")
        weights[str(column)] = float(weight)
    return weights


def schema_target_weights(key):
    return {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}


def check_metric(checker, v, key, path):
    """A history column: one of `key.choices`, or with several targets val_<target>_<metric>
    (which target names exist is known once the data is read)."""
    from .spec import TARGET_METRICS

    if isinstance(v, str) and (v in key.choices or (v.startswith("val_") and v.rsplit("_", 1)[0] != "val" and any(
            v.endswith(f"_{m}") and len(v) > len(m) + 5 for m in TARGET_METRICS))):
        return v
    checker.fail(path, f"must be one of {', '.join(key.choices)}, or with several targets val_<target>_<metric>; "
                       f"got {show(v)}{did_you_mean(v, key.choices) if isinstance(v, str) else ''}")


def schema_metric(key):
    return {"anyOf": [{"enum": list(key.choices)}, {"type": "string", "pattern": "^val_.+_.+$"}]}


def _schema_of(kind: str):
    return lambda key: {"type": kind}


KINDS: dict[str, Kind] = {
    "int": Kind(check_int, schema_int),
    "float": Kind(check_float, schema_float),
    "auto_int": Kind(check_auto_int, schema_auto_int),
    "bool": Kind(check_bool, _schema_of("boolean")),
    "auto_bool": Kind(check_auto_bool, schema_auto_bool),
    "str": Kind(check_str, schema_str),
    "path": Kind(check_path, schema_str),
    "choice": Kind(check_choice, schema_choice),
    "delimiter": Kind(check_delimiter, schema_delimiter),
    "names": Kind(check_names, schema_names),
    "columns": Kind(check_columns, schema_columns),
    "label": Kind(check_label, schema_label),
    "categorical": Kind(check_categorical, schema_categorical),
    "embedding": Kind(check_embedding, schema_embedding),
    "layers": Kind(check_layers, schema_layers),
    "activation": Kind(check_activation, schema_activation),
    "dropout": Kind(check_dropout, schema_dropout),
    "schedule": Kind(check_schedule, schema_schedule),
    "numeric_embedding": Kind(check_numeric_embedding, schema_numeric_embedding),
    "early_stopping": Kind(check_early_stopping, schema_early_stopping),
    "class_weight": Kind(check_class_weight, schema_class_weight),
    "tags": Kind(check_tags, schema_tags),
    "target": Kind(check_target, schema_target),
    "targets": Kind(check_targets, schema_targets),
    "target_weights": Kind(check_target_weights, schema_target_weights),
    "metric": Kind(check_metric, schema_metric),
}


# --- JSON Schema of a key and of a table -----------------------------------------------------
def key_schema(key: Key) -> dict:
    s = KINDS[key.kind].schema(key)
    if key.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    s["description"] = key.help
    if key.default is not REQUIRED:
        s["default"] = key.default
    return s


def section_schema(table: dict) -> dict:
    props, required = {}, []
    for name, entry in table.items():
        if isinstance(entry, dict):
            props[name] = section_schema(entry)
        else:
            props[name] = key_schema(entry)
            if entry.default is REQUIRED:
                required.append(name)
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out

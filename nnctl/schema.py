"""The config's JSON Schema and the commented starter config, both generated from
`spec.spec()` — the same table the validator reads."""
from __future__ import annotations

from .spec import EARLY_STOPPING_METRICS, REQUIRED, Key, spec

def _key_schema(key: Key) -> dict:
    from .optimizers import SCHEDULES

    kind = key.kind
    if kind in ("int", "float"):
        s = {"type": "integer" if kind == "int" else "number"}
        if key.low is not None:
            s["exclusiveMinimum" if key.low_open else "minimum"] = key.low
        if key.high is not None:
            s["exclusiveMaximum"] = key.high
    elif kind == "log_every":
        s = {"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1}]}
    elif kind == "bool":
        s = {"type": "boolean"}
    elif kind in ("str", "path"):
        s = {"type": "string", "minLength": 1}
    elif kind == "choice":
        s = {"enum": list(key.choices)}
    elif kind == "delimiter":
        s = {"type": "string"}
    elif kind == "names":
        s = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    elif kind == "categorical":
        s = {"anyOf": [{"const": "auto"}, {"type": "array", "items": {"type": "string"}}]}
    elif kind == "layers":
        s = {"type": "array", "items": {"type": "integer", "minimum": 1}}
    elif kind == "activation":
        names = {"enum": list(key.choices)}
        s = {"anyOf": [names, {"type": "array", "items": names}]}
    elif kind == "schedule":
        variants = [{"enum": list(SCHEDULES)}]
        for name, (_, own) in SCHEDULES.items():
            props = {"name": {"const": name}, **{k: {"type": "integer" if k == "step_size" else "number"} for k in own}}
            variants.append({"type": "object", "properties": props, "required": ["name"], "additionalProperties": False})
        s = {"anyOf": variants}
    elif kind == "early_stopping":
        s = {"anyOf": [{"type": "boolean"}, {"type": "object", "additionalProperties": False, "properties": {
            "patience": {"type": "integer", "minimum": 1},
            "min_delta": {"type": "number", "minimum": 0},
            "metric": {"enum": list(EARLY_STOPPING_METRICS)},
            "restore_best": {"type": "boolean"}}}]}
    else:  # pragma: no cover - every kind above
        raise ValueError(kind)
    if key.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    s["description"] = key.help
    if key.default is not REQUIRED:
        s["default"] = key.default
    return s


def _section(table: dict) -> dict:
    props, required = {}, []
    for name, entry in table.items():
        if isinstance(entry, dict):
            props[name] = _section(entry)
        else:
            props[name] = _key_schema(entry)
            if entry.default is REQUIRED:
                required.append(name)
    out = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def json_schema() -> dict:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "nnctl config",
              **_section(spec())}
    schema["required"] = ["data"]
    return schema


def starter_config(data_path: str, target: str) -> str:
    """A commented config that trains as-is: every key with its default and what it does."""
    import yaml

    lines = ["# nnctl config: `nnctl train THIS_FILE`. Every key is shown with its default;",
             "# delete what you do not change. `nnctl schema` gives the JSON Schema for editors.", ""]
    values = {("data", "path"): data_path, ("data", "target"): target, ("training", "optimizer"): "adam",
              ("training", "iterations"): 100, ("training", "batch_size"): 16}

    def emit(table, path, indent):
        for name, entry in table.items():
            pad = "  " * indent
            if isinstance(entry, dict):
                lines.append(f"{pad}{name}:")
                emit(entry, path + (name,), indent + 1)
                continue
            value = values.get(path + (name,), entry.default)
            text = yaml.safe_dump(value, default_flow_style=True).strip()
            text = text[:-4].strip() if text.endswith("\n...") or text.endswith(" ...") else text
            lines.append(f"{pad}{name}: {text}".ljust(34) + f"  # {entry.help}")

    emit(spec(), (), 0)
    return "\n".join(lines) + "\n"

"""Reading YAML safely, with errors that name the file, line and column; `--set` overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import NnctlError


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


def line_of(node, keys: list[str]) -> int | None:
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


def set_override(raw: dict, keys: list[str], value) -> None:
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

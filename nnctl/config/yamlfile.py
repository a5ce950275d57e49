"""Reading YAML safely, with errors that name the file, line and column; `--set` overrides."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import NnctlError


MAX_DEPTH = 50  # nesting deeper than any config needs; PyYAML would recurse past Python's limit


class _StrictLoader(yaml.SafeLoader):
    """safe_load's loader, but a key written twice in one mapping is an error (PyYAML keeps the
    last silently, so a second `training:` would drop the first)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<:` merges may repeat what they merge
            first = seen.setdefault(key_node.value, key_node.start_mark)
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key_node.value}' is written twice, at lines {first.line + 1} and "
                                f"{key_node.start_mark.line + 1} (keep one: the second would replace the first)",
                    key_node.start_mark)
        return super().construct_mapping(node, deep)


QUOTED = re.compile(r"'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"")


def _brackets_deeper_than(text: str, limit: int) -> bool:
    """Whether flow brackets outside quotes nest deeper than `limit`: PyYAML takes seconds to
    reach its recursion limit on thousands of them, so they are counted first."""
    depth = deepest = 0
    for char in QUOTED.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest > limit


def _depth(node, limit: int, level: int = 0) -> bool:
    """Whether a composed YAML tree is nested deeper than `limit`, without recursing past it."""
    stack = [(node, level)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return True
        if isinstance(node, yaml.SequenceNode):
            stack += [(child, level + 1) for child in node.value]
        elif isinstance(node, yaml.MappingNode):
            stack += [(child, level + 1) for pair in node.value for child in pair]
    return False


def load_text(text: str, where: str):
    """(data, node tree) of YAML text; errors name `where` (the file or flag), line and column."""
    too_deep = NnctlError(f"invalid YAML: nested more than {MAX_DEPTH} levels deep", where,
                          "no config key takes values nested that deeply; check the brackets")
    if _brackets_deeper_than(text, MAX_DEPTH):
        raise too_deep
    try:
        node = yaml.compose(text, Loader=_StrictLoader)
        if node is not None and _depth(node, MAX_DEPTH):
            raise too_deep
        loader = _StrictLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except RecursionError:  # block nesting: the composer recurses once per level
        raise too_deep
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{where}, line {mark.line + 1}, column {mark.column + 1}" if mark else where
        problem = exc.problem or exc.context or "invalid YAML"
        if "could not determine a constructor" in str(exc):
            problem = "YAML tags that build objects are not allowed"
        raise NnctlError(f"invalid YAML: {problem}", at)
    except yaml.YAMLError as exc:
        raise NnctlError(f"invalid YAML: {exc}", where)
    return data, node


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
    return load_text(text, str(path))


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
        value = load_text(raw, f"--set {key}")[0] if raw.strip() else None
    except NnctlError as exc:
        if raw.strip()[:1] in ("[", "{", '"', "'"):
            shown = raw if len(raw) <= 40 else raw[:40] + "..."
            raise NnctlError(f"cannot read the value '{shown}' ({exc.message})", f"--set {key}",
                             "quote strings with YAML quotes, lists as [a, b]")
        # a word YAML cannot read alone (`--set data.decimal=,`) is meant as that text, as a shell user writes it
        value = raw.strip()
    _refuse_colon_without_space(value, key, raw.strip())
    return [k for k in key.strip().split(".")], value


def _refuse_colon_without_space(value, key: str, raw: str) -> None:
    """`{country:16}` is, to YAML, the key 'country:16' without a value (a colon starts a value
    only when a space follows it): say so, rather than that no column 'country:16' exists."""
    if isinstance(value, list):
        for item in value:
            _refuse_colon_without_space(item, key, raw)
    if not isinstance(value, dict):
        return
    for name, item in value.items():
        if item is None and isinstance(name, str) and re.fullmatch(r"[^:\s]+:\S.*", name):
            left, _, right = name.partition(":")
            raise NnctlError(f"'{name}' reads as a key without a value: YAML needs a space after the colon",
                             f"--set {key}", f"write {left}: {right}, quoted for the shell: "
                                             f"--set '{key}={raw.replace(name, f'{left}: {right}')}'")
        _refuse_colon_without_space(item, key, raw)


def set_override(raw: dict, keys: list[str], value) -> None:
    """Put an override into the raw mapping; validation later names unknown keys."""
    node = raw
    for key in keys[:-1]:
        child = node.get(key)
        if isinstance(child, str):  # `schedule: step` written short, overridden by a sub-key
            child = {"kind" if key == "numeric_embedding" else "name": child}
        elif not isinstance(child, dict):
            child = {}
        node[key] = child
        node = child
    node[keys[-1]] = value

"""The config's JSON Schema and the commented starter config, both generated from
`spec.spec()`: the same table the validator walks."""
from __future__ import annotations

from .kinds import section_schema
from .spec import spec


def json_schema() -> dict:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "nnctl config",
              **section_schema(spec())}
    schema["required"] = ["data"]
    return schema


def starter_config(data_path: str, target: str) -> str:
    """A commented config that trains as-is: `data.path` and `data.target` as given, every
    other key with its default and what it does."""
    import yaml

    lines = ["# nnctl config: `nnctl train THIS_FILE`. Every key but data.path and data.target is shown",
             "# with its default; delete what you do not change. Relative paths are relative to this",
             "# file's folder. `nnctl schema` gives the JSON Schema for editors.", ""]
    values = {("data", "path"): data_path, ("data", "target"): target}

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

"""Configs: the key table (`spec`), what each kind of value accepts (`kinds`), reading YAML and
`--set` (`yamlfile`), checking and resolving (`validate`), the JSON Schema and starter config
(`schema`). Every check and the schema walk the one table in `spec.py`."""
from .validate import dump_config, hidden_activations, load_config, resolve

__all__ = ["load_config", "dump_config", "hidden_activations", "resolve"]

"""Every JSON nnctl prints or writes is strict JSON: NaN and infinities become null (Python's
json module would write the non-standard NaN and Infinity that strict parsers reject)."""
from __future__ import annotations

import dataclasses
import json
import math


def finite(value):
    """`value` with every non-finite float (NumPy's included) replaced by None, recursively;
    dataclasses (a typed config) as the mappings they hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, **options) -> str:
    return json.dumps(finite(value), allow_nan=False, **options)

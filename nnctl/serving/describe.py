"""What a client needs to know about the served model: `GET /model`'s answer, and the request
schema FastAPI shows at /docs, both read from the model's own meta."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Literal, Optional

from .. import __version__
from ..runs.folder import RunFolder


def model_info(model) -> dict:
    """`GET /model`: name, task, features (type, known categories), classes or target, the
    training metrics (metrics.json beside the model, or null) and nnctl's version."""
    encoder = model.encoder
    features = []
    for name in encoder.features:
        if name in encoder.categories:
            features.append({"name": name, "type": "category", "categories": list(encoder.categories[name])})
        else:
            features.append({"name": name, "type": "number"})
    info = {"name": run_name(model.path), "task": model.task, "features": features}
    if model.task == "classification":
        info["classes"] = list(model.classes)
    if model.targets is not None:
        info["targets"] = [{"name": v.name, "task": v.task, **({"classes": list(v.classes)} if v.classes else {})}
                           for v in model.targets]
    info["target"] = model.meta.get("target")
    info["metrics"] = training_metrics(model.path)
    info["nnctl_version"] = __version__
    return info


def run_name(path) -> str:
    """The run folder's name for its model.npz; a model file elsewhere is named by its stem."""
    path = Path(path)
    return path.parent.name if path.name == RunFolder.MODEL and path.parent.name else path.stem


def training_metrics(path) -> dict | None:
    """metrics.json of the run folder the model is in; None for a model file on its own, or
    when the file is damaged (the model itself loaded, and the server still serves it)."""
    from ..errors import NnctlError

    folder = RunFolder(Path(path).parent)
    if not folder.has(RunFolder.METRICS):
        return None
    try:
        return folder.read_metrics()
    except NnctlError:
        return None


def row_model(model):
    """A pydantic model with one field per input column, named as the column: numbers as
    numbers, categorical columns as the categories training saw. Only the OpenAPI page uses it:
    requests are read by `bodies.py`, so a row is judged by the same code as `nnctl predict`."""
    from pydantic import ConfigDict, Field, create_model

    encoder, fields = model.encoder, {}
    for i, name in enumerate(encoder.features):
        filled = encoder.fill is not None and encoder.fill.get(name) is not None
        missing = f"missing (null): filled with {encoder.fill[name]!r}" if filled else "required: no missing values"
        if name in encoder.categories:
            categories = tuple(encoder.categories[name])
            if encoder.unknown == "error":
                kind, what = Literal[categories], "one of the categories training saw"
            else:
                kind, what = str, f"a category ({', '.join(categories[:20])}); others count as unknown"
        else:
            kind, what = float, "a number"
        kind = Optional[kind] if filled else kind
        fields[f"field_{i}"] = (kind, Field(None if filled else ..., alias=name, description=f"{what}; {missing}"))
    return create_model("Row", __config__=ConfigDict(extra="allow", title="Row"), **fields)


def request_schemas(model) -> dict:
    """The OpenAPI components of POST /predict's JSON body: `PredictRequest` and its `Row`."""
    from pydantic import BaseModel, ConfigDict, Field

    Row = row_model(model)
    # several targets: each two-class target's value, named by it ({"sold": 0.3})
    several = getattr(model, "targets", None) is not None
    Threshold = Optional[Dict[str, float]] if several else Optional[float]
    Positive = Optional[Dict[str, str]] if several else Optional[str]
    per_target = "; an object of target: value, for the two-class targets it names" if several else ""

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        rows: list[Row] = Field(description="The rows to predict, each an object of column: value")
        proba: bool = Field(False, description="Add each row's class probabilities (classification)")
        threshold: Threshold = Field(None, description="Two classes: predict the positive class when its "
                                                       "probability is at least this" + per_target)
        positive: Positive = Field(None, description="Two classes: the class threshold refers to" + per_target)
        keep: list[str] = Field([], description="Columns of the rows to echo back in `kept`, unchanged")
        interval: Optional[float] = Field(None, description="Regression: add `lower` and `upper`, the "
                                                            "split-conformal interval at this level (e.g. 0.9)")
        sets: Optional[float] = Field(None, description="Classification: add `prediction_sets`, the "
                                                        "split-conformal set of labels at this level (e.g. 0.9)")

    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "PredictRequest": schema}

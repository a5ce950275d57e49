"""nnctl's MLflow pyfunc flavour: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`
loads model.npz with nnctl and predicts as `nnctl predict` does, column for column.

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    model.predict(pd.read_csv("iris.csv"))      # DataFrame with a `prediction` column
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import mlflow.pyfunc

MODEL_ARTIFACT = "model_npz"  # the artifact's key in the pyfunc: nnctl's model.npz, copied in


@contextmanager
def silenced():
    """MLflow's advice while the class is made and the model saved (type hints it would use to
    convert the input, an input example): nnctl reads the DataFrame itself. MLflow turns its own
    warning filter on around some of these checks, so their display is what is silenced."""
    shown = warnings.showwarning
    warnings.showwarning = lambda *args, **kwargs: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        warnings.showwarning = shown


def signature():
    """No input schema (nnctl checks the columns itself, by name); one param, `proba`."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    return ModelSignature(inputs=None, outputs=None, params=ParamSchema([ParamSpec("proba", "boolean", False)]))


with silenced():
    class NnctlModel(mlflow.pyfunc.PythonModel):
        """Loaded through `runs/model.py`, predicting through `commands/predict.py`'s
        `predict_chunk`: the same code path as `nnctl predict`, so the same answers."""

        def load_context(self, context):
            from ..runs.model import load_model

            self.model = load_model(context.artifacts[MODEL_ARTIFACT])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            from ..commands.predict import PredictOptions, check_options, predict_chunk

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            options = PredictOptions(proba=bool((params or {}).get("proba")))
            return predict_chunk(self.model, frame, "the model input", options, check_options(self.model, options))

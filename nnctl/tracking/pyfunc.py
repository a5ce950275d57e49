"""nnctl's MLflow pyfunc flavour: `mlflow.pyfunc.load_model("runs:/<id>/model").predict(df)`
loads model.npz with nnctl and predicts as `nnctl predict` does, column for column.

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    model.predict(pd.read_csv("iris.csv"))      # DataFrame with a `prediction` column
"""
from __future__ import annotations

import warnings

import mlflow.pyfunc

MODEL_ARTIFACT = "model_npz"  # the artifact's key in the pyfunc: nnctl's model.npz, copied in

# MLflow asks for type hints that it would use to convert the input; nnctl reads the DataFrame
# itself, so the advice (a warning each time the class is made, on every load) is left out.
# MLflow turns its own filter on around that check, so only the display can be silenced.
_shown, warnings.showwarning = warnings.showwarning, lambda *args, **kwargs: None
try:
    class NnctlModel(mlflow.pyfunc.PythonModel):
        """Loaded through `runs/model.py`, predicting through `commands/predict.py`'s
        `predict_frame`: the same code path as `nnctl predict`, so the same answers."""

        def load_context(self, context):
            from ..runs.model import load_model

            self.model = load_model(context.artifacts[MODEL_ARTIFACT])

        def predict(self, context, model_input, params=None):
            import pandas as pd

            from ..commands.predict import predict_frame

            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            return predict_frame(self.model, frame, "the model input", proba=bool((params or {}).get("proba")))
finally:
    warnings.showwarning = _shown

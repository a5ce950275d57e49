"""Tracking in MLflow (the optional extra `mlflow`): a copy of each run, sweep and cv in the
tracker teams already run. The run folder stays the source of truth; a server that is down
costs one warning, never a run.

- `client.py`: the extra, the URI (`env` = $MLFLOW_TRACKING_URI), short timeouts, `Target`
- `uris.py`: a URI's credentials (used, never stored or shown), a local store's place and artifacts
- `live.py`: `LiveRun`, a training Callback that sends epochs in batches from a thread
- `upload.py`: a finished run folder copied into an MLflow run
- `groups.py`: `ParentRun`, a parent with nested children (sweeps, cv, `train --seeds`)
- `sweeps.py`: the sweep's and cv's watchers, and their folders uploaded after the fact
- `track.py`: `nnctl track RUN... --uri URI`
- `pyfunc.py`: the pyfunc flavour, predicting through nnctl's own code
"""
from .client import Target, target_for

__all__ = ["Target", "target_for"]

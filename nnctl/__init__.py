"""nnctl: train multilayer perceptrons on CSV files from a YAML config, with NumPy backpropagation.

The Python API (what the command line calls): `load_config`, `load_dataset`, `train_config`
(with `RunOptions`), `resume_run`, `load_model`, `predict_csv`, `evaluate_csv`. Imported lazily so `nnctl --help` starts fast.
"""
__version__ = "0.1.0"

_API = {
    "load_config": "nnctl.config",
    "load_dataset": "nnctl.data",
    "Network": "nnctl.nn.network",
    "MLP": "nnctl.nn.network",
    "NnctlError": "nnctl.errors",
    "load_model": "nnctl.runs.model",
    "train": "nnctl.training",
    "train_config": "nnctl.commands.train",
    "RunOptions": "nnctl.commands.train",
    "resume_run": "nnctl.commands.train",
    "predict_csv": "nnctl.commands.predict",
    "evaluate_csv": "nnctl.commands.predict",
}


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nnctl' has no attribute {name!r}")


__all__ = list(_API) + ["__version__"]

"""nnctl: train multilayer perceptrons on CSV files from a YAML config, with NumPy backpropagation.

The Python API (what the command line calls): `load_config`, `load_dataset`, `train_config`,
`load_model`, `predict_csv`, `evaluate_csv`. Imported lazily so `nnctl --help` starts fast.
"""
__version__ = "0.1.0"

_API = {
    "load_config": "nnctl.config",
    "load_dataset": "nnctl.data",
    "MLP": "nnctl.network",
    "NnctlError": "nnctl.errors",
    "load_model": "nnctl.model",
    "train": "nnctl.trainer",
    "train_config": "nnctl.api",
    "predict_csv": "nnctl.api",
    "evaluate_csv": "nnctl.api",
}


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nnctl' has no attribute {name!r}")


__all__ = list(_API) + ["__version__"]

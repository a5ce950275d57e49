import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "datasets"
CONFIGS = ROOT / "configs"

# Plain output in every test, whatever terminal pytest runs in.
os.environ.setdefault("NO_COLOR", "1")


def pytest_collection_modifyitems(items):
    """Files whose tests are all `slow` run first, then files with some, each file's tests in their
    own order: under CI's `pytest -n 2 --dist loadfile --no-loadscope-reorder` the long files start
    at once instead of ending the run alone."""
    slow, fast = set(), set()
    for item in items:
        (slow if item.get_closest_marker("slow") else fast).add(item.path)
    items.sort(key=lambda item: (item.path in fast) + (item.path not in slow))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own dataset cache folder, never the user's."""
    monkeypatch.setenv("NNCTL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _file_writer(tmp_path, default_name):
    def write(text: str, name: str = default_name) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def write_config(tmp_path):
    """write_config(text, name='config.yaml') -> path of a config file in a temp folder."""
    return _file_writer(tmp_path, "config.yaml")


@pytest.fixture
def write_csv(tmp_path):
    """write_csv(text, name='data.csv') -> path of a CSV file in a temp folder."""
    return _file_writer(tmp_path, "data.csv")


@pytest.fixture
def iris_config(write_config):
    def make(extra: str = "") -> Path:
        return write_config(f"data:\n  path: {DATASETS / 'iris.csv'}\n  target: species\n{extra}")

    return make


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory):
    """A run folder (Path) trained by the command line on configs/iris.yaml, shared by every
    test that only reads it."""
    from .cli_helpers import cli

    runs = tmp_path_factory.mktemp("iris-runs")
    result = cli("train", CONFIGS / "iris.yaml", "--runs-dir", runs, "--quiet")
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def central_differences(f, z: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """∂f/∂z by central differences, one entry of z at a time: (f(z + h) − f(z − h)) / 2h."""
    numeric = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (f(up) - f(down)) / (2 * h)
    return numeric


def loss_targets(loss: str, rng, rows: int, outputs: int) -> np.ndarray:
    """Random targets (rows, outputs) in the form `loss` takes: one-hot rows for cross_entropy,
    a 0/1 column for binary_cross_entropy, normal values for regression losses."""
    if loss == "cross_entropy":
        return np.eye(outputs)[rng.integers(0, outputs, size=rows)]
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=(rows, 1)).astype(np.float64)
    return rng.normal(size=(rows, outputs))


def hide_package(monkeypatch, package: str) -> None:
    """Make `import package` (and its submodules) fail, as on a machine without that extra."""
    import builtins

    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)

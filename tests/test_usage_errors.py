"""Usage mistakes are `error:` lines with exit 2, whoever finds them: nnctl or the argument
parser."""
import pytest

from .cli_helpers import assert_clean_error, cli
from .conftest import CONFIGS, DATASETS


@pytest.mark.parametrize("flag, spec", [("--fail-under", "accuracy=nan"), ("--fail-over", "loss=inf"),
                                        ("--fail-under", "accuracy=-inf")])
def test_a_non_finite_gate_is_a_usage_error(iris_run, flag, spec):
    assert_clean_error(cli("evaluate", iris_run, DATASETS / "iris.csv", flag, spec),
                       f"{flag} needs a finite number, got '{spec}'")


@pytest.mark.parametrize("tol", ["nan", "-1", "0", "inf"])
def test_gradcheck_tolerance_must_be_positive(tol):
    assert_clean_error(cli("gradcheck", CONFIGS / "iris.yaml", "--tol", tol), "--tol must be a positive number")

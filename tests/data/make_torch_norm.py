"""Writes tests/data/torch_norm.npz: PyTorch's BatchNorm1d and LayerNorm on fixed inputs, in float64.

The reference values that tests/test_normalization.py compares nnctl's normalization layers with,
so that the tests run without PyTorch (it is not one of nnctl's dependencies). Run it again only
when the cases change, with torch installed:

    python tests/data/make_torch_norm.py

For each layer (`batch`, `layer`) and mode (`train`, `eval`), keys `<layer>_<mode>_<name>`:
inputs x (rows, units), gamma, beta, delta (the upstream gradient dL/dout) and, for batch norm,
the running statistics before the pass; outputs out, dx, dgamma, dbeta and, for batch norm, the
running statistics after it. `one_row_error`: PyTorch's message for batch norm on one row.
"""
from pathlib import Path

import numpy as np
import torch

ROWS, UNITS = 7, 5


def inputs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(1.0, 3.0, (ROWS, UNITS)), "gamma": rng.normal(1.0, 0.5, UNITS),
            "beta": rng.normal(0.0, 0.5, UNITS), "delta": rng.normal(0.0, 1.0, (ROWS, UNITS)),
            "running_mean": rng.normal(0.0, 1.0, UNITS), "running_var": rng.uniform(0.5, 2.0, UNITS)}


def case(kind: str, training: bool, seed: int) -> dict:
    values = inputs(seed)
    module = (torch.nn.BatchNorm1d(UNITS) if kind == "batch" else torch.nn.LayerNorm(UNITS)).double()
    module.train(training)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(values["gamma"]))
        module.bias.copy_(torch.from_numpy(values["beta"]))
        if kind == "batch":
            module.running_mean.copy_(torch.from_numpy(values["running_mean"]))
            module.running_var.copy_(torch.from_numpy(values["running_var"]))
    x = torch.from_numpy(values["x"]).requires_grad_(True)
    out = module(x)
    out.backward(torch.from_numpy(values["delta"]))
    result = {**values, "out": out.detach().numpy(), "dx": x.grad.numpy(),
              "dgamma": module.weight.grad.numpy(), "dbeta": module.bias.grad.numpy()}
    if kind == "batch":
        result["running_mean_after"] = module.running_mean.numpy().copy()
        result["running_var_after"] = module.running_var.numpy().copy()
    else:
        del result["running_mean"], result["running_var"]
    return result


def main() -> None:
    arrays = {}
    for seed, (kind, mode) in enumerate([(k, m) for k in ("batch", "layer") for m in ("train", "eval")]):
        for name, value in case(kind, mode == "train", seed).items():
            arrays[f"{kind}_{mode}_{name}"] = np.asarray(value, dtype=np.float64)
    try:
        torch.nn.BatchNorm1d(UNITS).train()(torch.zeros(1, UNITS))
        raise SystemExit("PyTorch normalized a batch of one row")
    except ValueError as exc:
        arrays["one_row_error"] = np.array(str(exc))
    arrays["torch_version"] = np.array(torch.__version__)
    np.savez(Path(__file__).with_name("torch_norm.npz"), **arrays)


if __name__ == "__main__":
    main()

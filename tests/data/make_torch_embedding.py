"""Writes tests/data/torch_embedding.npz: PyTorch's nn.Embedding on fixed codes, in float64.

The reference values that tests/test_embedding.py compares nnctl's embedding layer with, so that
the tests run without PyTorch (it is not one of nnctl's dependencies). Run it again only when the
case changes, with torch installed:

    python tests/data/make_torch_embedding.py

Keys: `x` (rows, 4) the layer's input: columns 1 and 3 hold category codes (codes repeat, and
the last row of each table, the unseen category, is used once), 0 and 2 are numbers;
`table_0`, `table_1` the tables; `delta` the upstream gradient dL/dout of the layer's output
[x[:, [0, 2]], T_0[c_0], T_1[c_1]]; outputs `out`, `dtable_0`, `dtable_1` (torch's gradients).
"""
from pathlib import Path

import numpy as np
import torch

ROWS = 9
SIZES = [(5, 3), (3, 2)]  # (categories, width): tables have categories + 1 rows


def case() -> dict:
    rng = np.random.default_rng(23)
    codes = [np.array([0, 2, 2, 4, 5, 1, 2, 0, 3]), np.array([1, 1, 0, 3, 2, 2, 1, 0, 1])]
    x = rng.normal(0.0, 2.0, (ROWS, 4))
    x[:, 1], x[:, 3] = codes
    values = {"x": x, "delta": rng.normal(0.0, 1.0, (ROWS, 2 + sum(w for _, w in SIZES)))}
    pieces = [torch.tensor(x[:, [0, 2]])]
    modules = []
    for k, (n, width) in enumerate(SIZES):
        table = rng.normal(0.0, 1.0, (n + 1, width))
        values[f"table_{k}"] = table
        module = torch.nn.Embedding(n + 1, width, dtype=torch.float64)
        with torch.no_grad():
            module.weight.copy_(torch.tensor(table))
        modules.append(module)
        pieces.append(module(torch.tensor(codes[k])))
    out = torch.cat(pieces, dim=1)
    out.backward(torch.tensor(values["delta"]))
    values["out"] = out.detach().numpy()
    for k, module in enumerate(modules):
        values[f"dtable_{k}"] = module.weight.grad.numpy()
    return values


if __name__ == "__main__":
    np.savez(Path(__file__).with_name("torch_embedding.npz"), **case())

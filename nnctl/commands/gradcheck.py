"""`nnctl gradcheck`: the config's own network and data, checked by `nn.gradcheck`."""
from __future__ import annotations

from ..nn.gradcheck import ParamCheck, check_gradients
from ..training.build import prepare_float64


def run_gradcheck(config, overrides=(), rows: int = 16, max_entries: int | None = 200) -> list[ParamCheck]:
    """check_gradients on the config's network (float64) and the first `rows` rows of its
    training part."""
    network, X, y, _, weights = prepare_float64(config, overrides, rows)
    return check_gradients(network, X, y, max_entries=max_entries, w=weights)

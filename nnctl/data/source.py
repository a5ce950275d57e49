"""The one protocol training reads data through, whether the rows are in memory or on disk.

A dataset's `parts["train"]` and `parts["validation"]` each are a *part*: rows in shards read a
window at a time. A part on disk (`shards.ShardPart`) has many shards; a part in memory
(`MemoryPart`, here) is one shard, the whole part, read without a copy. Both give:

- `len(part)`, `n_shards`, `shard_rows`;
- `window_buffers(shards)` (what `read` fills: nothing for a part in memory) and
  `read(shards, buffers)` → (X, y) of those shards' rows, valid until the next read;
- `chunks()` → (X, y) pieces in order (what scoring walks);
- `targets()` → y shard by shard (what class counts are made from);
- `head(n)`, `sample(n, seed)` → (X, y) of the first / a seeded random `n` rows.

The training loop visits the shards in a seeded order, `window` rows' worth at a time, permutes
each window's rows and cuts them at `batch_bounds`; a part in memory is then one window, so its
epoch is a permutation of all its rows, as it always was.
"""
from __future__ import annotations

import numpy as np


def batch_bounds(n: int, batch: int) -> list[int]:
    """Where a window of n rows is cut into batches of `batch` rows. A last batch of one row
    (which batch norm cannot normalize, and whose gradient is one row's noise) is avoided: the
    last two batches then share their rows."""
    bounds = list(range(0, n, batch)) + [n]
    if len(bounds) > 2 and n - bounds[-2] == 1:
        bounds[-2] = bounds[-3] + (n - bounds[-3]) // 2
    return bounds


class MemoryPart:
    """A part held in memory as arrays (X: (rows, inputs), y), as a one-shard part."""

    n_shards = 1

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    @property
    def shard_rows(self) -> int:
        return max(len(self.X), 1)

    def window_buffers(self, shards: int):
        return None

    def read(self, shards, buffers) -> tuple[np.ndarray, np.ndarray]:
        return self.X, self.y

    def chunks(self):
        return [(self.X, self.y)] if len(self.X) else []

    def targets(self):
        """Every row's y, shard by shard: here, one."""
        return [self.y]

    def head(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.X[:n], self.y[:n]

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` rows drawn at random from `seed` (without replacement, in their order), or all of
        them when the part has no more."""
        if n >= len(self.X):
            return self.X, self.y
        chosen = np.sort(np.random.default_rng(seed).choice(len(self.X), n, replace=False))
        return self.X[chosen], self.y[chosen]

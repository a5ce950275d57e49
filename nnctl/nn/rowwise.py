"""A bias row added to every row of K members' outputs, in few NumPy inner loops.

`out += b[:, None, :]` on (K, rows, units) runs one ufunc inner loop per member and row, each
only `units` long: on small layers (W1's 16 and 3 units, 8 members) the loops' overhead, not the
adds, was most of the time. Here the bias is first repeated `m` times side by side into a tile
(K, m·units), and the output is read as (K, rows / m, m·units): K·m + K·rows / m loops, each m
times longer. Every entry is the same float addition as the broadcast's, so the bits are the same.
"""
from __future__ import annotations

import functools

import numpy as np

TILE_ROWS = 16  # the most bias rows a tile holds: the tile is (K, TILE_ROWS·units)


@functools.lru_cache(maxsize=256)
def tile_rows(rows: int) -> int:
    """The rows `m` of a tile for a batch of `rows`: the divisor of `rows` up to TILE_ROWS
    nearest √rows (fewest loops, K·m + K·rows / m); 1 when only 1 divides it."""
    divisors = [m for m in range(1, min(rows, TILE_ROWS) + 1) if rows % m == 0]
    return min(divisors, key=lambda m: (m + rows // m, -m))


def add_bias(out: np.ndarray, b: np.ndarray, tile: np.ndarray, buf=None) -> np.ndarray:
    """out (K, rows, units) += b (K, units) for every row, in place; `tile`: scratch of at
    least (K, TILE_ROWS·units) of out's dtype. `buf`, when given, keeps the views this makes of
    `out` and `tile` for its next call with the same `out` (a workspace's batch of one size).
    Returns out."""
    views = None if buf is None else getattr(buf, "bias_views", None)
    if views is None or views[0] is not out:
        views = (out,) + _views(out, tile)
        if buf is not None:
            buf.bias_views = views
    _, fill, wide, side = views
    if fill is None:  # the plain broadcast
        out += b[:, None, :]
        return out
    np.copyto(fill, b[:, None, :])
    np.add(wide, side, out=wide)
    return out


def _views(out: np.ndarray, tile: np.ndarray) -> tuple:
    """(the tile as (K, m, units) to fill, out as (K, rows / m, m·units), the tile as (K, 1,
    m·units) to add), or three Nones when m is 1 or `out` is not contiguous (no reshape of it is
    a view)."""
    K, rows, units = out.shape
    m = tile_rows(rows)
    if m == 1 or not out.flags.c_contiguous:
        return None, None, None
    side = tile.reshape(K, -1)[:, :m * units]
    return side.reshape(K, m, units), out.reshape(K, rows // m, m * units), side[:, None, :]

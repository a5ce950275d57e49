"""Gradient clipping by the global norm, as torch.nn.utils.clip_grad_norm_:

    norm = ‖g‖₂ over every gradient (one flat array),   coef = max_norm / (norm + 1e-6),
    g ← g · coef   when coef < 1   (that is, when norm + 1e-6 > max_norm).

The direction of the step is kept; only its length is capped. A network with members clips
each member's gradient by its own norm, as each would be clipped alone.
"""
from __future__ import annotations

import math

import numpy as np

EPS = 1e-6  # PyTorch's, so a norm exactly at max_norm is scaled by just under 1 as it is there


def clip_grad_norm(grads: np.ndarray, max_norm: float, members: int | None = None):
    """Scale the flat gradient array `grads` in place to a norm of at most `max_norm`.
    Returns (the norm before clipping, whether it was scaled). With `members` (K), `grads` is
    member-major (K, P) read flat and each member is clipped alone: returns (the K norms, how
    many members were scaled)."""
    if members is not None:
        rows = grads.reshape(members, -1)
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        coef = max_norm / (norms + EPS)
        scaled = coef < 1.0
        if scaled.any():
            rows *= np.minimum(coef, 1.0).astype(rows.dtype)[:, None]
        return norms, int(np.count_nonzero(scaled))
    norm = math.sqrt(float(np.dot(grads, grads)))
    coef = max_norm / (norm + EPS)
    if coef < 1.0:
        grads *= coef
        return norm, True
    return norm, False

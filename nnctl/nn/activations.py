"""Hidden-layer activations: name -> (forward, backward), the derivative beside its function.

`forward(z, out, saved)` writes f(z) into `out` and returns it. `backward(delta, z, a, saved)`
multiplies `delta` in place by f'(z), using the pre-activation `z`, the output `a = f(z)` or what
forward kept in `saved`, whichever is cheapest (scikit-learn uses `z` or `a` the same way; `saved`
is autograd's "save for backward"). `saved` is a buffer shaped like `z`, or None when there will
be no backward pass (prediction). All arrays are (rows, units) and share one dtype.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

LEAKY_SLOPE = 0.01  # PyTorch's LeakyReLU default
ELU_ALPHA = 1.0


class Activation(NamedTuple):
    forward: Callable
    backward: Callable
    init: str  # the initializer `init: auto` picks for a layer with this activation


# --- relu -----------------------------------------------------------------------------------
def relu(z, out, saved=None):
    if saved is None:
        return np.maximum(z, 0, out=out)
    # keep f'(z), the 0/1 mask, for backward: then backward is one multiply instead of a
    # comparison and a bool -> float cast; and z * mask is no slower than np.maximum here
    np.greater(z, 0, out=saved, casting="unsafe")
    return np.multiply(z, saved, out=out)


def relu_backward(delta, z, a, saved=None):
    delta *= a > 0 if saved is None else saved


# --- leaky_relu -----------------------------------------------------------------------------
def leaky_relu(z, out, saved=None):
    np.multiply(z, LEAKY_SLOPE, out=out)
    return np.maximum(z, out, out=out)


def leaky_relu_backward(delta, z, a, saved=None):
    delta *= np.where(z > 0, 1.0, LEAKY_SLOPE).astype(delta.dtype, copy=False)


# --- elu ------------------------------------------------------------------------------------
def elu(z, out, saved=None):
    np.minimum(z, 0, out=out)
    np.expm1(out, out=out)
    out *= ELU_ALPHA
    np.copyto(out, z, where=z > 0)
    return out


def elu_backward(delta, z, a, saved=None):
    # f'(z) = 1 for z > 0, else alpha * exp(z) = a + alpha
    delta *= np.where(z > 0, 1.0, a + ELU_ALPHA).astype(delta.dtype, copy=False)


# --- gelu (exact, erf-based, as PyTorch's default) ------------------------------------------
# Cephes' rational approximations of erf/erfc: relative error ~1e-16, so float64 gradient checks
# of gelu see the true function, not an approximation of it.
_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
          7.00332514112805075473e3, 5.55923013010394962768e4)
_ERF_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFC_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
           4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
           9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFC_Q = (1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
           9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
           1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFC_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
           6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFC_S = (1.0, 2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
           1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)


def _poly(x, coefs):
    result = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        result *= x
        result += c
    return result


def erf(x):
    """Error function of a float array, to double precision (computed in float64)."""
    x64 = np.asarray(x, dtype=np.float64)
    ax = np.abs(x64)
    small = ax <= 1.0
    xx = x64 * x64
    inner = x64 * _poly(xx, _ERF_T) / _poly(xx, _ERF_U)
    axc = np.clip(ax, 1.0, 30.0)
    erfc = np.exp(-axc * axc) * np.where(
        axc < 8.0, _poly(axc, _ERFC_P) / _poly(axc, _ERFC_Q), _poly(axc, _ERFC_R) / _poly(axc, _ERFC_S)
    )
    outer = np.copysign(1.0 - erfc, x64)
    return np.where(small, inner, outer)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(z, out, saved=None):
    cdf = 0.5 * (1.0 + erf(z * _INV_SQRT2))
    return np.multiply(z, cdf, out=out, casting="unsafe")


def gelu_backward(delta, z, a, saved=None):
    # d/dz z*Phi(z) = Phi(z) + z*phi(z)
    z64 = z.astype(np.float64, copy=False)
    grad = 0.5 * (1.0 + erf(z64 * _INV_SQRT2)) + z64 * _INV_SQRT2PI * np.exp(-0.5 * z64 * z64)
    np.multiply(delta, grad, out=delta, casting="unsafe")


# --- tanh -----------------------------------------------------------------------------------
def tanh(z, out, saved=None):
    return np.tanh(z, out=out)


def tanh_backward(delta, z, a, saved=None):
    delta *= 1 - a * a


# --- sigmoid --------------------------------------------------------------------------------
def sigmoid(z, out, saved=None):
    # 0.5 * (1 + tanh(z / 2)) never overflows, unlike 1 / (1 + exp(-z))
    np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def sigmoid_backward(delta, z, a, saved=None):
    delta *= a * (1 - a)


# --- softplus -------------------------------------------------------------------------------
def softplus(z, out, saved=None):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|), stable for any z
    np.abs(z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(z, 0)
    return out


def softplus_backward(delta, z, a, saved=None):
    # softplus' = sigmoid(z) = 1 - exp(-a)
    delta *= -np.expm1(-a)


# --- identity -------------------------------------------------------------------------------
def identity(z, out, saved=None):
    np.copyto(out, z)
    return out


def identity_backward(delta, z, a, saved=None):
    pass


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_backward, "he"),
    "leaky_relu": Activation(leaky_relu, leaky_relu_backward, "he"),
    "elu": Activation(elu, elu_backward, "he"),
    "gelu": Activation(gelu, gelu_backward, "he"),
    "tanh": Activation(tanh, tanh_backward, "xavier"),
    "sigmoid": Activation(sigmoid, sigmoid_backward, "xavier"),
    "softplus": Activation(softplus, softplus_backward, "xavier"),
    "identity": Activation(identity, identity_backward, "xavier"),
}

"""The numeric embeddings against the reference implementation, rtdl_num_embeddings (Gorishniy
et al.), where it and torch are installed: the same parameters give the same outputs and, for
PLR, the same gradients; the same sample gives the same bins."""
import numpy as np
import pytest

from nnctl.nn.numeric import Periodic, PiecewiseLinear, quantile_edges

torch = pytest.importorskip("torch")
rtdl = pytest.importorskip("rtdl_num_embeddings")


def test_periodic_equals_rtdl_periodic_embeddings_with_lite_false():
    rng = np.random.default_rng(0)
    F, k, width, rows = 3, 4, 5, 11
    reference = rtdl.PeriodicEmbeddings(F, width, n_frequencies=k, frequency_init_scale=0.3, lite=False).double()
    c = reference.periodic.weight.detach().numpy()
    W, b = reference.linear.weight.detach().numpy(), reference.linear.bias.detach().numpy()
    layer = Periodic(F, [0, 1, 2], c.copy(), W.copy(), b.copy())
    x = rng.normal(size=(rows, F))
    xt = torch.tensor(x, requires_grad=True)
    theirs = reference(xt)  # (rows, F, width)
    ours = layer.forward(x, buf=layer.new_buffers(x))
    np.testing.assert_allclose(ours, theirs.detach().numpy().reshape(rows, F * width), rtol=1e-12, atol=1e-12)
    R = rng.normal(size=ours.shape)
    (theirs * torch.tensor(R.reshape(rows, F, width))).sum().backward()
    buf = layer.new_buffers(x)
    layer.forward(x, True, buf)
    dx = layer.backward(R.copy(), buf)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["frequencies"], reference.periodic.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], reference.linear.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], reference.linear.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_piecewise_linear_equals_rtdl_encoding_and_its_bins():
    rng = np.random.default_rng(1)
    # a continuous column, a heavy-tailed one, one of three values (fewer bins than asked)
    sample = np.column_stack([rng.normal(size=300), rng.exponential(size=300) ** 2, rng.integers(0, 3, 300)])
    bins = rtdl.compute_bins(torch.tensor(sample), n_bins=6)
    edges = quantile_edges(sample, 6)
    for f, theirs in enumerate(bins):  # torch takes the quantiles' probabilities in float32
        np.testing.assert_allclose(np.unique(edges[f]), theirs.numpy(), rtol=1e-6)
    reference = rtdl.PiecewiseLinearEncoding(bins)
    # the same bins, in nnctl's layout: each column's edges filled up with its last one
    same = np.stack([np.concatenate([b.numpy(), np.repeat(b.numpy()[-1:], 7 - len(b))]) for b in bins])
    layer = PiecewiseLinear(3, [0, 1, 2], same)
    x = rng.normal(size=(20, 3)) * 3  # values beyond the edges too
    ours = layer.forward(x)
    # rtdl drops the always-zero components of a column with fewer bins; nnctl keeps them at 0
    used = layer.coefficients()[0].reshape(-1) != 0
    assert not ours[:, ~used].any()
    # rtdl computes its scale and shift in float32 (its buffers' dtype): equal to that precision
    np.testing.assert_allclose(ours[:, used], reference(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)

"""max_unpool2d: _gather, _scatter_add, MaxUnpool2d.forward / backward (minicnn/ops/pool.py).

Unpooling puts each value back at the flat position max-pooling recorded (h·W + w in
its channel plane), zeros elsewhere, adding values that land on the same pixel; it is
the adjoint of selecting at those positions (``pool_select``):
<pool_select(x, idx), y> = <x, max_unpool2d(y, idx)>.
"""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.ops.pool import max_unpool2d, pool_select


def window_argmax(x, k):
    """Flat positions of the maxima of non-overlapping k×k windows (the oracle's indices)."""
    N, C, H, W = x.shape
    blocks = x.reshape(N, C, H // k, k, W // k, k).transpose(0, 1, 2, 4, 3, 5)
    u, v = np.divmod(blocks.reshape(N, C, H // k, W // k, k * k).argmax(-1), k)
    return (np.arange(H // k)[:, None] * k + u) * W + np.arange(W // k)[None, :] * k + v


def test_hand_example():
    y = np.array([[[[5.0, 7.0], [13.0, 15.0]]]])
    idx = np.array([[[[5, 7], [13, 15]]]])
    out = max_unpool2d(Tensor(y), idx, output_size=(4, 4))
    expected = np.zeros((1, 1, 4, 4))
    expected.reshape(-1)[[5, 7, 13, 15]] = [5.0, 7.0, 13.0, 15.0]
    np.testing.assert_array_equal(out.data, expected)


def test_unpooling_the_maxima_keeps_them_in_place():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 8))
    idx = window_argmax(x, 2)
    maxima = x.reshape(2, 3, 3, 2, 4, 2).max(axis=(3, 5))
    out = max_unpool2d(Tensor(maxima), idx, output_size=(6, 8)).data
    kept = out != 0
    assert kept.sum() == maxima.size                       # one value per window, rest zero
    np.testing.assert_array_equal(out[kept], x[kept])


def test_output_size_inferred_from_the_kernel():
    y = np.ones((1, 2, 3, 3))
    idx = window_argmax(np.random.default_rng(1).standard_normal((1, 2, 6, 6)), 2)
    assert max_unpool2d(Tensor(y), idx, kernel_size=2).shape == (1, 2, 6, 6)


def test_values_at_the_same_position_add_up():
    # overlapping windows may pick the same pixel: unpooling adds (that makes it the adjoint)
    y = np.array([[[[1.0, 2.0, 3.0]]]])
    idx = np.array([[[[4, 4, 0]]]])
    out = max_unpool2d(Tensor(y), idx, output_size=(3, 3)).data
    assert out[0, 0, 1, 1] == 3.0 and out[0, 0, 0, 0] == 3.0 and out.sum() == 6.0


def test_pool_select_gathers_at_the_indices():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    idx = np.array([[[[5, 0], [15, 6]]]])
    np.testing.assert_array_equal(pool_select(Tensor(x), idx).data, [[[[5.0, 0.0], [15.0, 6.0]]]])


@pytest.mark.parametrize("shape,small", [((2, 3, 6, 6), (3, 3)), ((1, 2, 5, 7), (4, 6))])
def test_unpool_is_the_adjoint_of_selection(shape, small):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    idx = rng.integers(0, shape[2] * shape[3], size=shape[:2] + small)   # repeats included
    y = rng.standard_normal(idx.shape)
    lhs = np.sum(pool_select(Tensor(x), idx).data * y)
    rhs = np.sum(x * max_unpool2d(Tensor(y), idx, output_size=shape[2:]).data)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 2, 3, 3))
    idx = window_argmax(rng.standard_normal((2, 2, 6, 6)), 2)
    report = gradcheck.check(lambda y: max_unpool2d(y, idx, output_size=(6, 6)), [y])
    assert report.ok, report
    x = rng.standard_normal((2, 2, 6, 6))
    report = gradcheck.check(lambda x: pool_select(x, idx), [x])
    assert report.ok, report

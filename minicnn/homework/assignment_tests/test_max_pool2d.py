"""max_pool2d: MaxPool2d.forward / backward and max_pool2d_naive (minicnn/ops/pool.py).

Checked on a hand example, against an oracle built from NumPy's sliding windows
(values and argmax positions, with padding, overlapping windows and ceil_mode), with
the numerical gradient check and the rule that the gradient goes to the argmax only.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.ops.pool import max_pool2d, max_pool2d_naive, pool_output_size

# (x shape, kernel, stride, padding, ceil_mode)
CASES = [
    ((2, 3, 6, 6), 2, 2, 0, False),
    ((1, 2, 7, 7), 3, 2, 0, False),        # overlapping windows
    ((2, 2, 5, 6), 3, 2, 1, False),        # padding (never chosen)
    ((1, 2, 7, 6), (3, 2), (2, 1), (1, 0), True),   # pairs, ceil_mode
    ((1, 1, 5, 5), 2, 2, 0, True),         # ceil_mode keeps the last, partial window
]
IDS = ["2x2", "3x3s2", "pad1", "pairs-ceil", "ceil"]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def oracle(x, kernel, stride, padding, ceil_mode):
    """(out, indices): window maxima and the flat position h·W + w of the first maximum."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    N, C, H, W = x.shape
    ho = pool_output_size(H, kh, sh, ph, ceil_mode)
    wo = pool_output_size(W, kw, sw, pw, ceil_mode)
    bottom = max(0, (ho - 1) * sh + kh - H - ph)
    right = max(0, (wo - 1) * sw + kw - W - pw)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, bottom), (pw, right)), constant_values=-np.inf)
    win = sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
    flat = win.reshape(N, C, ho, wo, kh * kw)
    arg = flat.argmax(axis=-1)                                   # the first maximum
    u, v = np.divmod(arg, kw)
    rows = np.arange(ho)[:, None] * sh - ph + u
    cols = np.arange(wo)[None, :] * sw - pw + v
    return flat.max(axis=-1), rows * W + cols


def distinct(seed, shape):
    """Random values without ties (a permutation), so the argmax is unambiguous."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 + rng.uniform(0, 0.01)


def test_hand_example():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, idx = max_pool2d(Tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(out.data, [[[[5.0, 7.0], [13.0, 15.0]]]])
    np.testing.assert_array_equal(idx, [[[[5, 7], [13, 15]]]])
    out_n, idx_n = max_pool2d_naive(x, 2)
    np.testing.assert_array_equal(out_n, out.data)
    np.testing.assert_array_equal(idx_n, idx)


@pytest.mark.parametrize("xs,k,s,p,ceil", CASES, ids=IDS)
def test_max_pool2d_matches_oracle(xs, k, s, p, ceil):
    x = np.random.default_rng(0).standard_normal(xs)
    out, idx = max_pool2d(Tensor(x), k, s, p, ceil_mode=ceil, return_indices=True)
    ref_out, ref_idx = oracle(x, k, s, p, ceil)
    np.testing.assert_array_equal(out.data, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)
    assert idx.dtype == np.int64


@pytest.mark.parametrize("xs,k,s,p,ceil", CASES, ids=IDS)
def test_naive_matches_oracle(xs, k, s, p, ceil):
    x = np.random.default_rng(1).standard_normal(xs)
    out, idx = max_pool2d_naive(x, k, s, p, ceil)
    ref_out, ref_idx = oracle(x, k, s, p, ceil)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(idx, ref_idx)


def test_ties_go_to_the_first_maximum():
    out, idx = max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, return_indices=True)
    np.testing.assert_array_equal(idx, [[[[0, 2], [8, 10]]]])        # each window's top-left
    _, idx_n = max_pool2d_naive(np.ones((1, 1, 4, 4)), 2)
    np.testing.assert_array_equal(idx_n, idx)


def test_gradient_goes_to_the_argmax_only():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    xt = Tensor(x, requires_grad=True)
    g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    max_pool2d(xt, 2).backward(g)
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 1::2, 1::2] = g[0, 0]                      # 5, 7, 13, 15: the maxima
    np.testing.assert_array_equal(xt.grad, expected)


def test_overlapping_windows_add_their_gradients():
    # one big pixel in the middle is the max of all four 3×3 windows (stride 1) on a 4×4 map
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = -1.0
    x[0, 0, 1, 2] = 5.0
    xt = Tensor(x, requires_grad=True)
    max_pool2d(xt, 3, 1).sum().backward()
    assert xt.grad[0, 0, 1, 2] == 4.0 and xt.grad.sum() == 4.0


@pytest.mark.parametrize("xs,k,s,p,ceil", CASES, ids=IDS)
def test_gradients_match_finite_differences(xs, k, s, p, ceil):
    x = distinct(2, xs)
    report = gradcheck.check(lambda x: max_pool2d(x, k, s, p, ceil_mode=ceil), [x])
    assert report.ok, report

"""conv_transpose2d: ConvTranspose2d.forward / backward and conv_transpose2d_naive
(minicnn/ops/conv.py).

Checked on a hand example, against an independent oracle (SciPy's full convolution of
the input spread out by the stride), with the numerical gradient check, and by the
identity that defines it: the adjoint of conv2d, <conv2d(y, w), x> = <y, conv_transpose2d(x, w)>.
"""
import numpy as np
import pytest
from scipy.signal import convolve

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.ops.conv import conv2d, conv_transpose2d, conv_transpose2d_naive

# (x shape, w shape (C_in, C_out/groups, kh, kw), stride, padding, output_padding, groups)
CASES = [
    ((2, 3, 4, 5), (3, 2, 3, 2), 1, 0, 0, 1),
    ((2, 4, 3, 4), (4, 3, 3, 3), 2, 1, 1, 1),          # the classic 2× upsampling
    ((1, 2, 3, 3), (2, 2, 4, 4), (2, 3), (1, 0), (1, 2), 1),
    ((1, 4, 3, 3), (4, 2, 4, 4), 2, 1, 0, 2),          # two groups
]
IDS = ["rect", "s2p1op1", "pairs", "groups2"]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def oracle(x, w, b, stride, padding, output_padding, groups):
    """Spread x out (s − 1 zeros between pixels), convolve fully with each kernel, crop p."""
    (sh, sw), (ph, pw), (oh, ow) = pair(stride), pair(padding), pair(output_padding)
    N, C, H, W = x.shape
    _, Og, kh, kw = w.shape
    Hy, Wy = (H - 1) * sh - 2 * ph + kh + oh, (W - 1) * sw - 2 * pw + kw + ow
    y = np.zeros((N, Og * groups, Hy + 2 * ph, Wy + 2 * pw))
    spread = np.zeros((N, C, (H - 1) * sh + 1, (W - 1) * sw + 1))
    spread[:, :, ::sh, ::sw] = x
    for n in range(N):
        for c in range(C):
            o0 = c // (C // groups) * Og
            for o in range(Og):
                full = convolve(spread[n, c], w[c, o], mode="full", method="direct")
                y[n, o0 + o, :full.shape[0], :full.shape[1]] += full
    return y[:, :, ph:ph + Hy, pw:pw + Wy] + b.reshape(1, -1, 1, 1)


def draw(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def test_hand_example():
    # stride 2, a 2×2 kernel of ones: each input pixel becomes a 2×2 block of itself
    x = np.array([[[[1.0, 2.0]]]])
    w = np.ones((1, 1, 2, 2))
    expected = np.array([[[[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]]])
    np.testing.assert_allclose(conv_transpose2d(Tensor(x), Tensor(w), stride=2).data, expected)
    np.testing.assert_allclose(conv_transpose2d_naive(x, w, stride=2), expected)


def test_overlapping_stamps_add_up():
    # stride 1, kernel ones 2×2 on [1, 2]: the middle column gets both stamps
    x = np.array([[[[1.0, 2.0]]]])
    expected = np.array([[[[1.0, 3.0, 2.0], [1.0, 3.0, 2.0]]]])
    np.testing.assert_allclose(conv_transpose2d(Tensor(x), Tensor(np.ones((1, 1, 2, 2)))).data,
                               expected)


@pytest.mark.parametrize("xs,ws,s,p,op,g", CASES, ids=IDS)
def test_naive_matches_oracle(xs, ws, s, p, op, g):
    x, w, b = draw(0, xs, ws, (ws[1] * g,))
    np.testing.assert_allclose(conv_transpose2d_naive(x, w, b, s, p, op, g),
                               oracle(x, w, b, s, p, op, g), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("xs,ws,s,p,op,g", CASES, ids=IDS)
def test_conv_transpose2d_matches_oracle(xs, ws, s, p, op, g, dtype, tol):
    x, w, b = draw(1, xs, ws, (ws[1] * g,))
    y = conv_transpose2d(Tensor(x.astype(dtype)), Tensor(w.astype(dtype)),
                         Tensor(b.astype(dtype)), stride=s, padding=p, output_padding=op, groups=g)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, oracle(x, w, b, s, p, op, g), rtol=tol, atol=tol)


def test_output_size_formula():
    # Ho = (H − 1)·s − 2p + kh + output_padding: 7 → 14 with a 4×4 kernel, stride 2, padding 1
    y = conv_transpose2d(Tensor(np.zeros((1, 3, 7, 7), np.float32)),
                         Tensor(np.zeros((3, 1, 4, 4), np.float32)), stride=2, padding=1)
    assert y.shape == (1, 1, 14, 14)


@pytest.mark.parametrize("xs,ws,s,p,op,g", CASES, ids=IDS)
def test_gradients_match_finite_differences(xs, ws, s, p, op, g):
    x, w, b = draw(2, xs, ws, (ws[1] * g,))
    report = gradcheck.check(lambda x, w, b: conv_transpose2d(x, w, b, s, p, op, g), [x, w, b])
    assert report.ok, report


@pytest.mark.parametrize("xs,ws,s,p,op,g", CASES, ids=IDS)
def test_adjoint_of_conv2d(xs, ws, s, p, op, g):
    x, w = draw(3, xs, ws)
    up = conv_transpose2d(Tensor(x), Tensor(w), stride=s, padding=p, output_padding=op, groups=g)
    (y,) = draw(4, up.shape)
    down = conv2d(Tensor(y), Tensor(w), stride=s, padding=p, groups=g)     # back to x's shape
    assert down.shape == x.shape
    np.testing.assert_allclose(np.sum(down.data * x), np.sum(y * up.data), rtol=1e-10)


def test_only_requested_gradients_are_computed():
    x, w, b = draw(5, (2, 3, 4, 4), (3, 2, 3, 3), (2,))
    xt, wt, bt = Tensor(x), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    conv_transpose2d(xt, wt, bt, stride=2, padding=1).sum().backward()
    assert xt.grad is None and wt.grad is not None
    np.testing.assert_allclose(bt.grad, np.full(2, 2 * 7 * 7.0))      # db = Σ_{n,i,j} g

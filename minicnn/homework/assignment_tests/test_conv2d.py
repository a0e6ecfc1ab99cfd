"""conv2d: the loops conv2d_naive, then im2col and col2im (minicnn/ops/im2col.py) and
conv2d_im2col, y = W ⋅ im2col(x) + b (minicnn/ops/conv.py).

Checked on an example small enough to do by hand, against an independent oracle
(SciPy's direct correlation), by the identity that makes col2im the adjoint of im2col,
and through conv2d, whose forward is W ⋅ im2col(x) and whose input gradient is
col2im(Wᵀ ⋅ g) for layers like these: with the numerical gradient check.
"""
import numpy as np
import pytest
from scipy.signal import correlate

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.ops.conv import conv2d, conv2d_im2col, conv2d_naive
from minicnn.ops.im2col import col2im, im2col

# (x shape, w shape, stride, padding, groups)
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 2), 1, 0, 1),              # non-square input and kernel
    ((2, 3, 6, 5), (2, 3, 3, 3), (1, 2), (1, 0), 1),    # different stride and padding per axis
    ((1, 2, 5, 5), (3, 2, 1, 1), 2, 0, 1),              # 1×1 kernel, stride skips pixels
    ((2, 4, 8, 7), (6, 2, 3, 3), 2, 1, 2),              # two groups of two channels
]
IDS = ["rect", "s12-p10", "1x1-s2", "groups2"]


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def oracle(x, w, b, stride, padding, groups):
    """y[n, f] = b[f] + correlation of f's channel group with w[f], every stride-th pixel."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    F, Cg = w.shape[:2]
    out = []
    for n in range(x.shape[0]):
        maps = []
        for f in range(F):
            c0 = f // (F // groups) * Cg
            full = correlate(x_pad[n, c0:c0 + Cg], w[f], mode="valid", method="direct")[0]
            maps.append(full[::sh, ::sw] + b[f])
        out.append(maps)
    return np.array(out)


def draw(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def test_hand_example():
    # y[i, j] = x[i, j] − x[i+1, j+1] + 1 = −5 + 1 everywhere on a 4×4 ramp
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    b = np.array([1.0])
    np.testing.assert_allclose(conv2d_naive(x, w, b), np.full((1, 1, 3, 3), -4.0))
    np.testing.assert_allclose(conv2d(Tensor(x), Tensor(w), Tensor(b)).data,
                               np.full((1, 1, 3, 3), -4.0))


def test_zero_padding_counts_as_zeros():
    # a 3×3 box filter on a 2×2 image of ones, padded by 1: every window holds all 4 pixels
    x, w = np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))
    np.testing.assert_allclose(conv2d(Tensor(x), Tensor(w), padding=1).data,
                               np.full((1, 1, 2, 2), 4.0))
    np.testing.assert_allclose(conv2d_naive(x, w, padding=1), np.full((1, 1, 2, 2), 4.0))


@pytest.mark.parametrize("xs,ws,s,p,g", CASES, ids=IDS)
def test_naive_matches_oracle(xs, ws, s, p, g):
    x, w, b = draw(0, xs, ws, (ws[0],))
    np.testing.assert_allclose(conv2d_naive(x, w, b, s, p, g), oracle(x, w, b, s, p, g),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("xs,ws,s,p,g", CASES, ids=IDS)
def test_im2col_version_matches_oracle(xs, ws, s, p, g, dtype, tol):
    # one matrix product per group over the receptive fields: the loops' numbers
    x, w, b = draw(8, xs, ws, (ws[0],))
    y = conv2d_im2col(x.astype(dtype), w.astype(dtype), b.astype(dtype), s, p, g)
    assert y.shape == oracle(x, w, b, s, p, g).shape and y.dtype == dtype
    np.testing.assert_allclose(y, oracle(x, w, b, s, p, g), rtol=tol, atol=tol)
    np.testing.assert_allclose(conv2d_im2col(x, w, None, s, p, g), oracle(x, w, 0 * b, s, p, g),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("xs,ws,s,p,g", CASES, ids=IDS)
def test_conv2d_matches_oracle(xs, ws, s, p, g, dtype, tol):
    x, w, b = draw(1, xs, ws, (ws[0],))
    y = conv2d(Tensor(x.astype(dtype)), Tensor(w.astype(dtype)), Tensor(b.astype(dtype)),
               stride=s, padding=p, groups=g)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, oracle(x, w, b, s, p, g), rtol=tol, atol=tol)


def test_output_size_formula():
    # Ho = ⌊(H + 2p − kh) / s⌋ + 1: AlexNet's first layer maps 224 to 55
    y = conv2d(Tensor(np.zeros((1, 1, 224, 224), np.float32)),
               Tensor(np.zeros((2, 1, 11, 11), np.float32)), stride=4, padding=2)
    assert y.shape == (1, 2, 55, 55)


@pytest.mark.parametrize("xs,ws,s,p,g", CASES, ids=IDS)
def test_gradients_match_finite_differences(xs, ws, s, p, g):
    x, w, b = draw(2, xs, ws, (ws[0],))
    report = gradcheck.check(lambda x, w, b: conv2d(x, w, b, s, p, g), [x, w, b])
    assert report.ok, report


def test_only_requested_gradients_are_computed():
    x, w, b = draw(3, (2, 3, 5, 5), (4, 3, 3, 3), (4,))
    xt, wt, bt = Tensor(x, requires_grad=True), Tensor(w), Tensor(b, requires_grad=True)
    conv2d(xt, wt, bt, padding=1).sum().backward()
    assert xt.grad is not None and bt.grad is not None and wt.grad is None
    np.testing.assert_allclose(bt.grad, np.full(4, 2 * 5 * 5.0))   # db = Σ_{n,i,j} g


def test_inputs_are_not_modified():
    x, w, b = draw(4, (2, 3, 5, 5), (4, 3, 3, 3), (4,))
    copies = [a.copy() for a in (x, w, b)]
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    conv2d(*ts, stride=2, padding=1).sum().backward()
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 1), (1, 2))])
def test_im2col_columns_are_the_receptive_fields(stride, padding):
    (x,) = draw(5, (2, 3, 6, 5))
    kh, kw = 3, 2
    cols = im2col(x, kh, kw, stride=stride, padding=padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    Ho = (x_pad.shape[2] - kh) // stride[0] + 1
    Wo = (x_pad.shape[3] - kw) // stride[1] + 1
    assert cols.shape == (3 * kh * kw, 2, Ho, Wo)
    for n in range(2):
        for i in range(Ho):
            for j in range(Wo):
                top, left = i * stride[0], j * stride[1]
                field = x_pad[n, :, top:top + kh, left:left + kw]        # (C, kh, kw)
                np.testing.assert_array_equal(cols[:, n, i, j], field.ravel())


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((1, 2), (2, 0))])
def test_col2im_is_the_adjoint_of_im2col(stride, padding):
    # <im2col(x), c> = <x, col2im(c)>: col2im sends every column entry back to its pixel
    x, = draw(6, (2, 3, 7, 6))
    cols = im2col(x, 3, 3, stride=stride, padding=padding)
    (c,) = draw(7, cols.shape)
    back = col2im(c, x.shape, 3, 3, stride=stride, padding=padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)

"""Pooling ops: naive-loop oracle, gradient checks, the select/unpool adjoint, PyTorch parity."""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.backend import as_backend, to_numpy
from minicnn.ops.pool import (adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d,
                              max_pool2d_naive, max_unpool2d, pool_output_size, pool_select)

# (input shape, kernel_size, stride, padding, ceil_mode)
CONFIGS = [
    ((2, 3, 8, 8), 2, None, 0, False),          # the classic 2×2 / 2
    ((1, 2, 9, 9), 3, 2, 0, True),              # SqueezeNet: overlapping 3×3 stride 2, ceil_mode
    ((2, 2, 7, 6), 3, 2, 1, False),             # padding (ResNet's stem pool)
    ((1, 2, 5, 7), (3, 2), (2, 1), (1, 1), True),  # rectangular everything
    ((1, 2, 5, 5), 2, 2, 1, True),              # ceil_mode: a 4th window would start in the padding
    ((1, 2, 4, 5), 2, 1, 1, False),             # stride 1: heavy overlap
    ((2, 2, 5, 7), 2, 2, 0, True),              # 2×2 / 2 with ceil_mode: edge windows hang over
    ((2, 2, 5, 7), 2, 2, 0, False),             # 2×2 / 2 on odd sizes: the last row, column unused
]
IDS = ["2x2s2", "3x3s2-ceil", "3x3s2-pad1", "rect-ceil", "ceil-drop", "2x2s1-pad1",
       "2x2s2-ceil-odd", "2x2s2-odd"]


def distinct(rng, shape, scale=0.1):
    """float64 values with no ties, spaced far apart compared with gradcheck's h = 1e-5."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) - size / 2) * scale


def on(backend_name, a):
    return as_backend(np.asarray(a), backend_name)


# ------------------------------------------------------------ forward vs naive

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_max_pool_matches_naive_loop(backend_name, dtype, shape, k, s, p, ceil, rng):
    x = on(backend_name, distinct(rng, shape).astype(dtype))
    out, idx = max_pool2d(Tensor(x), k, s, p, ceil, return_indices=True)
    ref_out, ref_idx = max_pool2d_naive(x, k, s, p, ceil)
    assert out.backend == backend_name and out.dtype == dtype
    assert idx.dtype == np.int64 and idx.shape == out.shape
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref_out))
    np.testing.assert_array_equal(to_numpy(idx), to_numpy(ref_idx))
    # the indices really point at the maxima
    np.testing.assert_array_equal(to_numpy(pool_select(x, idx)), to_numpy(out))


def test_ties_go_to_the_first_maximum_in_row_major_order(backend_name):
    x = on(backend_name, np.ones((1, 1, 4, 4)))
    out, idx = max_pool2d(Tensor(x), 2, 2, return_indices=True)
    np.testing.assert_array_equal(to_numpy(idx)[0, 0], [[0, 2], [8, 10]])  # window top-lefts
    np.testing.assert_array_equal(to_numpy(idx), to_numpy(max_pool2d_naive(x, 2, 2)[1]))


def test_output_size_formula():
    assert pool_output_size(224, 3, 2, 1) == 112               # ResNet stem
    assert pool_output_size(111, 3, 2, 0, ceil_mode=True) == 55  # SqueezeNet
    assert pool_output_size(111, 3, 2, 0, ceil_mode=False) == 55
    assert pool_output_size(6, 2, 2, 0, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3     # 4th window would start in padding


def test_avg_pool_known_values(backend_name):
    x = on(backend_name, np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_allclose(to_numpy(avg_pool2d(Tensor(x), 2)), [[[[2.5, 4.5], [10.5, 12.5]]]])
    corner = to_numpy(avg_pool2d(Tensor(x), 2, 2, padding=1, count_include_pad=False))[0, 0, 0, 0]
    assert corner == 0.0                                          # only x[0, 0] is real
    np.testing.assert_allclose(to_numpy(global_avg_pool2d(Tensor(x))), [[[[7.5]]]])
    np.testing.assert_allclose(to_numpy(adaptive_avg_pool2d(Tensor(x), 1)), [[[[7.5]]]])


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_gradcheck_max_pool(backend_name, shape, k, s, p, ceil, rng):
    x = on(backend_name, distinct(rng, shape))
    report = gradcheck.check(lambda t: max_pool2d(t, k, s, p, ceil), [x])
    assert report.ok, report


@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS[:4], ids=IDS[:4])
def test_gradcheck_max_unpool(backend_name, shape, k, s, p, ceil, rng):
    x = on(backend_name, distinct(rng, shape))
    _, idx = max_pool2d(Tensor(x), k, s, p, ceil, return_indices=True)
    y = on(backend_name, rng.standard_normal(idx.shape))
    report = gradcheck.check(lambda t: max_unpool2d(t, idx, shape[2:]), [y])
    assert report.ok, report


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_gradcheck_avg_pool(backend_name, shape, k, s, p, ceil, count_include_pad, rng):
    x = on(backend_name, rng.standard_normal(shape))
    report = gradcheck.check(lambda t: avg_pool2d(t, k, s, p, ceil, count_include_pad), [x])
    assert report.ok, report


@pytest.mark.parametrize("hw,out", [((7, 7), (3, 3)), ((5, 7), (2, 3)), ((3, 4), (5, 6))])
def test_gradcheck_adaptive_and_global_avg_pool(backend_name, hw, out, rng):
    x = on(backend_name, rng.standard_normal((2, 2) + hw))
    assert gradcheck.check(lambda t: adaptive_avg_pool2d(t, out), [x]).ok
    assert gradcheck.check(global_avg_pool2d, [x]).ok


def test_gradcheck_pool_select(backend_name, rng):
    x = on(backend_name, rng.standard_normal((2, 3, 5, 5)))
    idx = on(backend_name, rng.integers(0, 25, size=(2, 3, 3, 4)))
    assert gradcheck.check(lambda t: pool_select(t, idx), [x]).ok


# ------------------------------------------------------- select / unpool

@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_unpool_is_the_adjoint_of_selection(backend_name, shape, k, s, p, ceil, rng):
    """<pool_select(x, idx), y> == <x, max_unpool2d(y, idx)>, also where windows overlap
    and several outputs chose the same pixel (the unpool adds them up)."""
    x = on(backend_name, distinct(rng, shape))
    _, idx = max_pool2d(Tensor(x), k, s, p, ceil, return_indices=True)
    z = on(backend_name, rng.standard_normal(shape))          # any map, not only the pooled one
    y = on(backend_name, rng.standard_normal(idx.shape))
    lhs = float((pool_select(z, idx).data * y).sum())
    rhs = float((z * max_unpool2d(Tensor(y), idx, shape[2:]).data).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_unpool_puts_values_at_the_argmax_and_zeros_elsewhere(backend_name, rng):
    x = on(backend_name, distinct(rng, (2, 3, 6, 6)))
    out, idx = max_pool2d(Tensor(x), 2, return_indices=True)
    up = to_numpy(max_unpool2d(out, idx, (6, 6)))
    xn = to_numpy(x)
    is_max = xn == np.repeat(np.repeat(to_numpy(out), 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(up, np.where(is_max, xn, 0.0))
    assert (up != 0).sum() == out.size


def test_unpool_infers_output_size_from_kernel(backend_name, rng):
    x = on(backend_name, distinct(rng, (1, 2, 6, 8)))
    out, idx = max_pool2d(Tensor(x), 2, return_indices=True)
    a = max_unpool2d(out, idx, kernel_size=2)
    b = max_unpool2d(out, idx, (1, 2, 6, 8))                 # a full shape works too
    assert a.shape == b.shape == (1, 2, 6, 8)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("k,s,ceil", [(3, 2, True), (2, 2, False), (3, 3, False), ((2, 3), None, False)],
                         ids=["overlapping", "tiles-2x2", "tiles-3x3", "tiles-2x3"])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_backward_routes_the_gradient_to_the_argmax_only(backend_name, k, s, ceil,
                                                                  ties, rng):
    # windows that tile x (stride = kernel) take a masked-copy path, overlapping ones a
    # scatter-add: both must equal unpooling g at the forward's indices. 9×9 leaves rows
    # and columns outside every 2×2 tile (their gradient is 0); integer values make ties.
    x0 = rng.integers(0, 3, (2, 3, 9, 9)).astype(float) if ties else distinct(rng, (2, 3, 9, 9))
    x = Tensor(on(backend_name, x0), requires_grad=True)
    out, idx = max_pool2d(x, k, s, ceil_mode=ceil, return_indices=True)
    g = on(backend_name, rng.standard_normal(out.shape))
    out.backward(g)
    np.testing.assert_allclose(to_numpy(x.grad), to_numpy(max_unpool2d(Tensor(g), idx, (9, 9))))


def test_indices_are_made_only_when_asked_for_or_needed(backend_name, monkeypatch, rng):
    """Windows that tile x: the backward needs no indices, so a plain max_pool2d (training
    a net) makes none, and its gradient is still the one unpooling at the indices gives.
    Overlapping windows keep them for the scatter-add. A forward that always returns them
    still gives max_pool2d's caller a plain output."""
    from minicnn.ops.pool import MaxPool2d
    x0 = distinct(rng, (2, 3, 8, 8))
    x = Tensor(on(backend_name, x0), requires_grad=True)
    out = max_pool2d(x, 2)
    assert isinstance(out, Tensor) and not hasattr(out.creator.ctx, "indices")
    g = on(backend_name, rng.standard_normal(out.shape))
    out.backward(g)
    _, idx = max_pool2d(Tensor(on(backend_name, x0)), 2, return_indices=True)
    np.testing.assert_array_equal(to_numpy(x.grad), to_numpy(max_unpool2d(Tensor(g), idx, (8, 8))))
    assert hasattr(max_pool2d(x, 3, 2).creator.ctx, "indices")

    real = MaxPool2d.forward
    monkeypatch.setattr(MaxPool2d, "forward", staticmethod(
        lambda ctx, x, return_indices, **params: real(ctx, x, return_indices=True, **params)))
    out = max_pool2d(Tensor(on(backend_name, x0)), 2)
    assert isinstance(out, Tensor) and out.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(to_numpy(out), x0.reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))


def test_max_pool_of_a_filter_major_view_matches_the_contiguous_input(rng):
    # conv2d returns (N, F, H, W) views of filter-first memory; pooling keeps that layout
    x = distinct(rng, (3, 4, 8, 8)).astype(np.float32)
    x_fm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    x_fm[0, 1, 2, 3] = x[0, 1, 2, 3] = np.nan
    out, idx = max_pool2d(Tensor(x_fm), 2, return_indices=True)
    ref_out, ref_idx = max_pool2d(Tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref_out))
    np.testing.assert_array_equal(idx, ref_idx)
    assert np.isnan(to_numpy(out)[0, 1, 1, 1]) and idx[0, 1, 1, 1] == 2 * 8 + 3


# ------------------------------------------------------------- PyTorch parity

@pytest.mark.torch
@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_torch_parity_max_pool_and_unpool(shape, k, s, p, ceil, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x_np = distinct(rng, shape)
    x = Tensor(x_np.copy(), requires_grad=True)
    out, idx = max_pool2d(x, k, s, p, ceil, return_indices=True)
    g_np = rng.standard_normal(out.shape)
    out.backward(g_np)
    xt = torch.tensor(x_np, requires_grad=True)
    out_t, idx_t = F.max_pool2d(xt, k, s, p, ceil_mode=ceil, return_indices=True)
    out_t.backward(torch.tensor(g_np))
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    np.testing.assert_array_equal(idx, idx_t.numpy())
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=0, atol=1e-6)
    # PyTorch writes one value per index; minicnn adds: they agree where indices are distinct
    flat = idx.reshape(idx.shape[0], idx.shape[1], -1)
    if all(len(np.unique(f)) == f.size for f in flat.reshape(-1, flat.shape[-1])):
        up_t = F.max_unpool2d(torch.tensor(g_np), idx_t, k, s, p, output_size=shape[2:])
        np.testing.assert_allclose(max_unpool2d(Tensor(g_np), idx, shape[2:]).data,
                                   up_t.numpy(), rtol=0, atol=1e-12)


@pytest.mark.torch
def test_torch_parity_max_unpool_gradient(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x_np = distinct(rng, (2, 3, 8, 6))
    _, idx_t = F.max_pool2d(torch.tensor(x_np), 2, return_indices=True)
    y_np, g_np = rng.standard_normal(idx_t.shape), rng.standard_normal(x_np.shape)
    y = Tensor(y_np.copy(), requires_grad=True)
    up = max_unpool2d(y, idx_t.numpy(), kernel_size=2)
    up.backward(g_np)
    yt = torch.tensor(y_np, requires_grad=True)
    up_t = F.max_unpool2d(yt, idx_t, 2)
    up_t.backward(torch.tensor(g_np))
    np.testing.assert_array_equal(up.data, up_t.detach().numpy())
    np.testing.assert_allclose(y.grad, yt.grad.numpy(), rtol=0, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil", CONFIGS, ids=IDS)
def test_torch_parity_avg_pool(shape, k, s, p, ceil, count_include_pad, rng):
    torch = pytest.importorskip("torch")
    _parity(torch, rng, shape,
            lambda t: avg_pool2d(t, k, s, p, ceil, count_include_pad),
            lambda t: torch.nn.functional.avg_pool2d(t, k, s, p, ceil, count_include_pad))


@pytest.mark.torch
@pytest.mark.parametrize("hw,out", [((7, 7), (3, 3)), ((13, 13), (1, 1)), ((5, 7), (2, 3)),
                                    ((4, 6), (6, 4)), ((9, 9), (None, 4))])
def test_torch_parity_adaptive_avg_pool(hw, out, rng):
    torch = pytest.importorskip("torch")
    _parity(torch, rng, (2, 3) + hw, lambda t: adaptive_avg_pool2d(t, out),
            lambda t: torch.nn.functional.adaptive_avg_pool2d(t, out))


def _parity(torch, rng, shape, ours, theirs):
    x_np = rng.standard_normal(shape)
    x = Tensor(x_np.copy(), requires_grad=True)
    y = ours(x)
    xt = torch.tensor(x_np, requires_grad=True)
    yt = theirs(xt)
    assert y.shape == tuple(yt.shape)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=0, atol=1e-6)


# --------------------------------------------------------------- bad inputs

X = np.zeros((1, 2, 4, 4))
Y, IDX = np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), dtype=np.int64)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: max_pool2d(Tensor(np.zeros((2, 4, 4))), 2), ValueError,
     ["max_pool2d", "x", "4 dimensions", "(2, 4, 4)"]),
    (lambda: max_pool2d(Tensor(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2), TypeError,
     ["max_pool2d", "x", "floating-point", "int64", "(1, 1, 4, 4)"]),
    (lambda: max_pool2d(Tensor(X), 5), ValueError,
     ["max_pool2d", "kernel_size (5, 5)", "padded input (4, 4)", "(1, 2, 4, 4)"]),
    (lambda: avg_pool2d(Tensor(X), 3, padding=2), ValueError,
     ["avg_pool2d", "padding (2, 2)", "half of kernel_size (3, 3)", "(1, 2, 4, 4)"]),
    (lambda: max_pool2d(Tensor(X), 2, stride=0), ValueError, ["max_pool2d", "stride", ">= 1"]),
    (lambda: avg_pool2d(Tensor(X), 2, padding=-1), ValueError, ["avg_pool2d", "padding", ">= 0"]),
    (lambda: max_unpool2d(Tensor(Y), IDX[..., :1], (4, 4)), ValueError,
     ["max_unpool2d", "indices", "(1, 2, 2, 1)", "(1, 2, 2, 2)"]),
    (lambda: max_unpool2d(Tensor(Y), IDX + 16, (4, 4)), ValueError,
     ["max_unpool2d", "indices", "[0, 16)", "(4, 4)", "[16, 16]"]),
    (lambda: max_unpool2d(Tensor(Y), IDX.astype(np.float64), (4, 4)), TypeError,
     ["max_unpool2d", "indices", "integer", "float64"]),
    (lambda: max_unpool2d(Tensor(Y), IDX), TypeError,
     ["max_unpool2d", "output_size", "(1, 2, 2, 2)"]),
    (lambda: pool_select(X, np.full((1, 2, 2, 2), -1)), ValueError,
     ["pool_select", "indices", "[-1, -1]"]),
    (lambda: pool_select(X, np.zeros((1, 3, 2, 2), dtype=np.int64)), ValueError,
     ["pool_select", "(1, 3, 2, 2)", "(1, 2, 4, 4)"]),
    (lambda: adaptive_avg_pool2d(Tensor(X), 0), ValueError,
     ["adaptive_avg_pool2d", "output_size", ">= 1"]),
    (lambda: global_avg_pool2d(Tensor(np.zeros((4, 4)))), ValueError,
     ["global_avg_pool2d", "x", "(4, 4)"]),
], ids=["ndim", "int-dtype", "kernel-too-big", "padding-over-half", "stride-0", "negative-padding",
        "indices-shape", "indices-range", "indices-dtype", "no-output-size", "select-range",
        "select-batch", "adaptive-zero", "global-ndim"])
def test_bad_inputs_name_the_argument_and_shapes(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))

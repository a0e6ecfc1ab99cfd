"""conv2d / conv_transpose2d: naive-loop oracle, gradient checks, the adjoint identity,
PyTorch parity, and errors that name the argument and the shapes."""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.autograd import Tensor, no_grad
from minicnn.backend import as_backend, to_numpy
from minicnn.ops.conv import (conv2d, conv2d_im2col, conv2d_naive, conv_transpose2d,
                              conv_transpose2d_naive)
from minicnn.ops.conv_fast import choose_road, forced_road

# (x shape, w shape, stride, padding, groups)
CONV_CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 2), 1, 0, 1),            # non-square input and kernel
    ((2, 4, 8, 7), (6, 2, 3, 3), 2, 1, 2),            # stride 2, padding, 2 groups
    ((2, 4, 9, 9), (4, 1, 3, 3), 2, 1, 4),            # depthwise
    ((1, 3, 6, 6), (6, 1, 3, 3), 1, 2, 3),            # depthwise, channel multiplier 2
    ((2, 4, 6, 7), (2, 2, 3, 3), (1, 2), (1, 0), 2),  # one filter per group, pairs
    ((2, 2, 7, 8), (3, 2, 1, 1), 2, 0, 1),            # 1×1 kernel, stride skips pixels
]
CONV_IDS = ["rect", "s2p1g2", "depthwise", "depthwise-x2", "pairs-g2-1filter", "1x1s2"]

# (x shape, w shape (C_in, C_out/G, kh, kw), stride, padding, output_padding, groups)
TCONV_CASES = [
    ((2, 3, 4, 5), (3, 2, 3, 2), 1, 0, 0, 1),
    ((2, 4, 3, 4), (4, 3, 3, 3), 2, 1, 1, 1),         # the classic 2× upsampling
    ((1, 4, 3, 3), (4, 2, 4, 4), 2, 1, 0, 2),         # groups
    ((2, 3, 4, 3), (3, 1, 3, 3), (2, 3), (1, 0), (1, 2), 3),   # depthwise, pairs
    ((1, 2, 3, 3), (2, 3, 3, 3), 3, 0, 2, 2),         # one input channel per group
]
TCONV_IDS = ["rect", "s2p1op1", "g2k4", "depthwise-pairs", "g2-s3op2"]


def on(backend_name, a):
    return as_backend(np.asarray(a), backend_name)


def draw(rng, *shapes, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


# ------------------------------------------------------------ forward vs naive

@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("xs,ws,s,p,g", CONV_CASES, ids=CONV_IDS)
def test_conv2d_matches_naive_loops(backend_name, rng, dtype, tol, xs, ws, s, p, g):
    x, w, b = draw(rng, xs, ws, (ws[0],), dtype=dtype)
    y = conv2d(Tensor(on(backend_name, x)), Tensor(on(backend_name, w)),
               Tensor(on(backend_name, b)), stride=s, padding=p, groups=g)
    assert y.backend == backend_name and y.dtype == dtype
    np.testing.assert_allclose(to_numpy(y), conv2d_naive(x, w, b, s, p, g), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("xs,ws,s,p,op,g", TCONV_CASES, ids=TCONV_IDS)
def test_conv_transpose2d_matches_naive_loops(backend_name, rng, dtype, tol, xs, ws, s, p, op, g):
    x, w, b = draw(rng, xs, ws, (ws[1] * g,), dtype=dtype)
    y = conv_transpose2d(Tensor(on(backend_name, x)), Tensor(on(backend_name, w)),
                         Tensor(on(backend_name, b)), stride=s, padding=p, output_padding=op,
                         groups=g)
    assert y.backend == backend_name and y.dtype == dtype
    ref = conv_transpose2d_naive(x, w, b, s, p, op, g)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("xs,ws,s,p,g", CONV_CASES, ids=CONV_IDS)
def test_conv2d_im2col_equals_the_loops_and_conv2d(rng, dtype, tol, xs, ws, s, p, g):
    """The lesson's middle step, W ⋅ im2col(x) + b, gives the loops' numbers and conv2d's."""
    x, w, b = draw(rng, xs, ws, (ws[0],), dtype=dtype)
    y = conv2d_im2col(x, w, b, s, p, g)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, conv2d_naive(x, w, b, s, p, g), rtol=tol, atol=tol)
    np.testing.assert_allclose(y, conv2d(Tensor(x), Tensor(w), Tensor(b), s, p, g).data,
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(conv2d_im2col(x, w, None, s, p, g),
                               conv2d_naive(x, w, None, s, p, g), rtol=tol, atol=tol)


# (road, flip_dx): every road the chooser can take, dx by col2im and by the flipped kernel
FORCED = [("im2col", False), ("im2col", True), ("depthwise", None), ("blocked", True),
          ("blocked", False)]
ROAD_CASES = CONV_CASES + [((2, 4, 6, 6), (6, 4, 3, 3), 1, 1, 1),       # stride 1, blocks
                           ((2, 2, 6, 5), (3, 2, 5, 3), 1, (2, 0), 1),
                           # depthwise on the phase rows: 2×2 phases of odd sizes, a 5×5
                           # kernel reaching two frames on; strides (2, 1); 3 images
                           ((2, 6, 9, 8), (6, 1, 5, 5), 2, 2, 6),
                           ((2, 3, 8, 7), (3, 1, 3, 3), (2, 1), (1, 0), 3),
                           ((3, 4, 7, 7), (8, 1, 3, 3), 1, 1, 4),
                           # more channels than positions per channel: rows stored channels-last
                           ((1, 24, 3, 3), (24, 1, 3, 3), 1, 1, 24),
                           ((2, 40, 4, 5), (40, 1, 3, 3), 2, 1, 40)]
ROAD_IDS = CONV_IDS + ["s1p1", "5x3-p20", "depthwise-5x5s2", "depthwise-s21", "depthwise-n3x2",
                       "depthwise-channels-last", "depthwise-channels-last-s2"]


def _values_and_grads(fn, arrays, dout):
    """(the road the op took, [y, and the gradient of each input])."""
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    road = y.creator.ctx.road          # backward frees ctx
    y.backward(dout)
    return road, [y.data] + [t.grad for t in ts]


@pytest.mark.parametrize("road,flip_dx", FORCED, ids=[f"{r}-{f}" for r, f in FORCED])
@pytest.mark.parametrize("xs,ws,s,p,g", ROAD_CASES, ids=ROAD_IDS)
def test_every_road_gives_the_same_values_and_gradients(backend_name, rng, road, flip_dx,
                                                        xs, ws, s, p, g):
    """Forced through choose_road's setting, each road gives the naive loops' output and
    the same dx, dW, db as the usual road, for conv2d and conv_transpose2d (whose forward
    is conv2d's input gradient); the road is taken wherever it can be."""
    x, w, b = (on(backend_name, a) for a in draw(rng, xs, ws, (ws[0],)))
    dout = on(backend_name, rng.standard_normal(conv2d_naive(x, w, b, s, p, g).shape))
    conv = lambda x, w, b: conv2d(x, w, b, s, p, g)                       # noqa: E731
    _, usual = _values_and_grads(conv, [x, w, b], dout)
    with forced_road(road, flip_dx=flip_dx, block_bytes=SMALL_BLOCKS):
        taken, forced = _values_and_grads(conv, [x, w, b], dout)
    pp = (p, p) if isinstance(p, int) else p
    can = road != "blocked" or (s == 1 and ws[2] * ws[3] > 1 and pp[0] < ws[2]
                                and pp[1] < ws[3] and not (g > 1 and 1 in (ws[1], ws[0] // g)))
    assert (taken.name == road) is can
    np.testing.assert_allclose(to_numpy(forced[0]), conv2d_naive(x, w, b, s, p, g),
                               rtol=1e-12, atol=1e-12)
    for name, a, ref in zip(["y", "dx", "dw", "db"], forced, usual):
        np.testing.assert_allclose(to_numpy(a), to_numpy(ref), rtol=1e-11, atol=1e-11,
                                   err_msg=name)
    # conv_transpose2d of dout back to x's shape (output_padding picks x's size)
    sh, sw = (s, s) if isinstance(s, int) else s
    op = ((xs[2] + 2 * pp[0] - ws[2]) % sh, (xs[3] + 2 * pp[1] - ws[3]) % sw)
    tconv = lambda y, w, b: conv_transpose2d(y, w, b, s, p, op, g)        # noqa: E731
    bt, dx = on(backend_name, rng.standard_normal(xs[1])), on(backend_name, forced[1])
    _, usual = _values_and_grads(tconv, [dout, w, bt], dx)
    with forced_road(road, flip_dx=flip_dx, block_bytes=SMALL_BLOCKS):
        _, forced = _values_and_grads(tconv, [dout, w, bt], dx)
    np.testing.assert_allclose(to_numpy(forced[0]),
                               conv_transpose2d_naive(dout, w, bt, s, p, op, g),
                               rtol=1e-12, atol=1e-12)
    for name, a, ref in zip(["y", "dx", "dw", "db"], forced, usual):
        np.testing.assert_allclose(to_numpy(a), to_numpy(ref), rtol=1e-11, atol=1e-11,
                                   err_msg=f"conv_transpose2d {name}")


# (x shape, w shape, stride, padding, groups, block bytes, blocks): the depthwise road's
# passes run block by block; float64 blocks of whole channels, of runs of positions within
# one channel's row, and of runs of positions of every channel (channels-last rows)
DEPTHWISE_BLOCKS = [((2, 6, 9, 8), (6, 1, 3, 3), 1, 1, 6, 8 * 200 * 2, 3),
                    ((2, 3, 9, 8), (6, 1, 5, 5), 2, 2, 3, 8 * 2 * 7, 33),
                    ((2, 40, 4, 5), (40, 1, 3, 3), 2, 1, 40, 8 * 40 * 3, 7)]


@pytest.mark.parametrize("xs,ws,s,p,g,block_bytes,blocks", DEPTHWISE_BLOCKS,
                         ids=["channels", "positions-in-a-row", "positions-channels-last"])
def test_depthwise_blocks_give_the_same_values_and_gradients(backend_name, rng, xs, ws, s, p,
                                                             g, block_bytes, blocks):
    """Split into blocks (the count checked, so the split is the one named), the depthwise
    road gives the naive loops' output and the same dx, dW, db as the im2col road: a block
    boundary loses no position and counts none twice, in values and in both gradients."""
    from minicnn.ops.conv_depthwise import PhaseRows
    layout = PhaseRows(xs, (p, p), (s, s), ws[2:], block_bytes)
    assert len(list(layout.blocks(g, ws[0] // g, 8))) == blocks
    x, w, b = (on(backend_name, a) for a in draw(rng, xs, ws, (ws[0],)))
    dout = on(backend_name, rng.standard_normal(conv2d_naive(x, w, b, s, p, g).shape))
    conv = lambda x, w, b: conv2d(x, w, b, s, p, g)                       # noqa: E731
    with forced_road("im2col"):
        _, textbook = _values_and_grads(conv, [x, w, b], dout)
    with forced_road("depthwise", block_bytes=block_bytes):
        taken, blocked = _values_and_grads(conv, [x, w, b], dout)
    assert taken.name == "depthwise" and taken.block_bytes == block_bytes
    np.testing.assert_allclose(to_numpy(blocked[0]), conv2d_naive(x, w, b, s, p, g),
                               rtol=1e-12, atol=1e-12)
    for name, a, ref in zip(["y", "dx", "dw", "db"], blocked, textbook):
        np.testing.assert_allclose(to_numpy(a), to_numpy(ref), rtol=1e-11, atol=1e-11,
                                   err_msg=name)


def test_forcing_an_unknown_road_names_the_roads():
    with pytest.raises(ValueError, match=r"unknown road 'fast'.*'im2col', 'depthwise', 'blocked'"):
        with forced_road("fast"):
            pass


def test_output_sizes_follow_the_formulas():
    x = Tensor(np.zeros((1, 1, 224, 224), np.float32))
    assert conv2d(x, Tensor(np.zeros((2, 1, 11, 11), np.float32)), stride=4, padding=2).shape \
        == (1, 2, 55, 55)                                             # AlexNet conv1
    assert conv2d(x, Tensor(np.zeros((2, 1, 7, 7), np.float32)), stride=2, padding=3).shape \
        == (1, 2, 112, 112)                                           # ResNet stem
    y = Tensor(np.zeros((1, 3, 7, 7), np.float32))
    assert conv_transpose2d(y, Tensor(np.zeros((3, 1, 4, 4), np.float32)), stride=2,
                            padding=1).shape == (1, 1, 14, 14)        # (7−1)·2 − 2 + 4


# ------------------------------------------------------------ gradient checks

@pytest.mark.parametrize("xs,ws,s,p,g", CONV_CASES, ids=CONV_IDS)
def test_conv2d_gradients_match_finite_differences(backend_name, rng, xs, ws, s, p, g):
    x, w, b = (on(backend_name, a) for a in draw(rng, xs, ws, (ws[0],)))
    report = gradcheck.check(lambda x, w, b: conv2d(x, w, b, s, p, g), [x, w, b])
    assert report.ok, report


@pytest.mark.parametrize("xs,ws,s,p,op,g", TCONV_CASES, ids=TCONV_IDS)
def test_conv_transpose2d_gradients_match_finite_differences(backend_name, rng, xs, ws, s, p,
                                                             op, g):
    x, w, b = (on(backend_name, a) for a in draw(rng, xs, ws, (ws[1] * g,)))
    report = gradcheck.check(lambda x, w, b: conv_transpose2d(x, w, b, s, p, op, g), [x, w, b])
    assert report.ok, report


def test_stacked_convolutions_backpropagate_through_non_contiguous_outputs(backend_name, rng):
    # conv2d returns an (N, F, ...) view of an (F, N, ...) product; the next layer takes it as is
    x, w1, w2, wt = (on(backend_name, a)
                     for a in draw(rng, (3, 2, 6, 6), (4, 2, 3, 3), (4, 1, 3, 3), (4, 2, 2, 2)))

    def net(x, w1, w2, wt):
        h = conv2d(x, w1, padding=1)
        h = conv2d(h, w2, stride=2, padding=1, groups=4)
        return conv_transpose2d(h, wt, stride=2)
    report = gradcheck.check(net, [x, w1, w2, wt])
    assert report.ok, report


@pytest.mark.parametrize("grads", [(True, False, False), (False, True, True), (False, False, True)])
def test_only_requested_gradients_are_computed(rng, grads):
    arrays = draw(rng, (2, 3, 5, 5), (4, 3, 3, 3), (4,))
    full = [Tensor(a, requires_grad=True) for a in arrays]
    conv2d(*full, padding=1).sum().backward()
    part = [Tensor(a, requires_grad=r) for a, r in zip(arrays, grads)]
    conv2d(*part, padding=1).sum().backward()
    for t, ref, r in zip(part, full, grads):
        assert (t.grad is not None) == r
        if r:
            np.testing.assert_allclose(t.grad, ref.grad, rtol=1e-12)


def test_inputs_are_not_modified(rng):
    x, w, b = draw(rng, (2, 4, 6, 6), (4, 2, 3, 3), (4,))
    saved = [a.copy() for a in (x, w, b)]
    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    conv2d(*ts, 2, 1, 2).sum().backward()
    conv_transpose2d(*ts[:2], None, 2, 1, 1, 2).sum().backward()
    for a, s in zip((x, w, b), saved):
        np.testing.assert_array_equal(a, s)


def test_frozen_weights_keep_no_column_buffer(rng):
    x, w = draw(rng, (1, 2, 5, 5), (3, 2, 3, 3))
    y = conv2d(Tensor(x, requires_grad=True), Tensor(w), padding=1)
    assert y.creator.ctx.x_cols is None           # dx needs only w
    y = conv2d(Tensor(x), Tensor(w, requires_grad=True), padding=1)
    assert y.creator.ctx.x_cols is not None       # dW = g ⋅ colsᵀ
    with no_grad():
        assert conv2d(Tensor(x, requires_grad=True), Tensor(w), padding=1).creator is None


# ------------------------------------------------------------ adjoint identity

# (x shape, w shape, stride, padding): output_padding is chosen so the shapes match exactly
ADJOINT_CASES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), 1, 0, 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 2, 1, 1),     # (8 + 2 − 3) mod 2 = 1: output_padding 1
    ((1, 2, 9, 7), (3, 2, 3, 2), (2, 3), (1, 0), 1),
    ((2, 4, 11, 11), (6, 2, 5, 5), 3, 2, 2),   # output_padding (11 + 4 − 5) mod 3 = 1
    ((2, 4, 7, 7), (8, 1, 3, 3), 2, 1, 4),     # depthwise
]


@pytest.mark.parametrize("xs,ws,s,p,g", ADJOINT_CASES)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend_name, rng, xs, ws, s, p, g):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> for every x, y."""
    sh, sw = (s, s) if isinstance(s, int) else s
    ph, pw = (p, p) if isinstance(p, int) else p
    op = ((xs[2] + 2 * ph - ws[2]) % sh, (xs[3] + 2 * pw - ws[3]) % sw)
    x, w = (on(backend_name, a) for a in draw(rng, xs, ws))
    cx = conv2d(Tensor(x), Tensor(w), stride=s, padding=p, groups=g)
    y = on(backend_name, rng.standard_normal(cx.shape))
    ty = conv_transpose2d(Tensor(y), Tensor(w), stride=s, padding=p, output_padding=op, groups=g)
    assert ty.shape == xs
    lhs, rhs = float((cx.data * y).sum()), float((x * ty.data).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


# ------------------------------------------------------------ PyTorch parity

def _torch_parity(torch_fn, our_fn, arrays, rng, **kw):
    import torch
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref = torch_fn(*ts, **kw)
    dout = rng.standard_normal(tuple(ref.shape))
    ref.backward(torch.tensor(dout))
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    y = our_fn(*ours, **kw)
    y.backward(dout)
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=1e-6, atol=1e-6)
    for name, t, r in zip("xwb", ours, ts):
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=f"d{name}")


@pytest.mark.torch
@pytest.mark.parametrize("xs,ws,s,p,g", CONV_CASES + [((2, 8, 10, 10), (8, 1, 5, 5), 2, 2, 8)],
                         ids=CONV_IDS + ["depthwise-5x5s2"])
def test_conv2d_matches_pytorch(rng, xs, ws, s, p, g):
    torch = pytest.importorskip("torch")
    _torch_parity(torch.nn.functional.conv2d, conv2d, draw(rng, xs, ws, (ws[0],)), rng,
                  stride=s, padding=p, groups=g)


@pytest.mark.torch
@pytest.mark.parametrize("xs,ws,p", [((4, 16, 28, 28), (16, 16, 3, 3), 1),
                                     ((3, 8, 20, 24), (12, 8, 5, 3), (2, 1))])
def test_blocked_road_matches_pytorch(rng, xs, ws, p):
    """Layers big enough to take the blocked road by the shipped rule, in blocks of 64 kB."""
    torch = pytest.importorskip("torch")
    pp = (p, p) if isinstance(p, int) else p
    assert choose_road(xs, ws, stride=(1, 1), padding=pp, groups=1).name == "blocked"
    with forced_road(None, block_bytes=64 << 10):      # the usual choice, smaller blocks
        _torch_parity(torch.nn.functional.conv2d, conv2d, draw(rng, xs, ws, (ws[0],)), rng,
                      padding=p)


@pytest.mark.torch
@pytest.mark.parametrize("xs,ws,s,p,op,g", TCONV_CASES, ids=TCONV_IDS)
def test_conv_transpose2d_matches_pytorch(rng, xs, ws, s, p, op, g):
    torch = pytest.importorskip("torch")
    _torch_parity(torch.nn.functional.conv_transpose2d, conv_transpose2d,
                  draw(rng, xs, ws, (ws[1] * g,)), rng,
                  stride=s, padding=p, output_padding=op, groups=g)


# ------------------------------------------------------------ errors that teach

def _arr(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


BAD = [  # (function, kwargs, exception, regex the message must match)
    (conv2d, dict(x=_arr(3, 8, 8), w=_arr(4, 3, 3, 3)), ValueError,
     r"x must have 4 dimensions \(N, C, H, W\), got shape \(3, 8, 8\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 3, 3)), ValueError,
     r"w must have 4 dimensions .*got shape \(4, 3, 3\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 2, 3, 3)), ValueError,
     r"x has C=3 channels \(x shape \(1, 3, 8, 8\)\) but w of shape \(4, 2, 3, 3\) expects"),
    (conv2d, dict(x=_arr(1, 6, 8, 8), w=_arr(4, 2, 3, 3), groups=4), ValueError,
     r"groups=4 must divide .*C=6.*x shape \(1, 6, 8, 8\), w shape \(4, 2, 3, 3\)"),
    (conv2d, dict(x=_arr(1, 4, 8, 8), w=_arr(3, 2, 3, 3), groups=2), ValueError,
     r"groups=2 must divide .*F=3 filters.*w shape \(3, 2, 3, 3\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 3, 3, 3), b=_arr(3)), ValueError,
     r"b must have shape \(4,\).*got b shape \(3,\).*w shape \(4, 3, 3, 3\)"),
    (conv2d, dict(x=_arr(1, 3, 4, 4), w=_arr(4, 3, 7, 7), padding=1), ValueError,
     r"kernel 7×7 \(w shape \(4, 3, 7, 7\)\) is larger than the padded input 6×6 "
     r"\(x shape \(1, 3, 4, 4\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 3, 3, 3), padding=-1), ValueError,
     r"x shape \(1, 3, 8, 8\), w shape \(4, 3, 3, 3\)\): padding must be >= 0, got -1"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 3, 3, 3), stride=(1, 0)), ValueError,
     r"x shape \(1, 3, 8, 8\), w shape \(4, 3, 3, 3\)\): stride must be >= 1, got \(1, 0\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8, dtype=np.int64), w=_arr(4, 3, 3, 3)), TypeError,
     r"x must be a floating-point array, got dtype int64 with shape \(1, 3, 8, 8\)"),
    (conv2d, dict(x=_arr(1, 3, 8, 8), w=_arr(4, 3, 3, 3, dtype=np.int32)), TypeError,
     r"w must be a floating-point array, got dtype int32 with shape \(4, 3, 3, 3\)"),
    (conv_transpose2d, dict(x=_arr(1, 3, 4, 4), w=_arr(3, 2, 3, 3), stride=2, output_padding=2),
     ValueError, r"output_padding \(2, 2\) must be smaller than stride \(2, 2\) "
                 r"\(x shape \(1, 3, 4, 4\), w shape \(3, 2, 3, 3\)\)"),
    (conv_transpose2d, dict(x=_arr(1, 4, 4, 4), w=_arr(3, 2, 3, 3)), ValueError,
     r"x has C_in=4 channels \(x shape \(1, 4, 4, 4\)\) but w of shape \(3, 2, 3, 3\)"),
    (conv_transpose2d, dict(x=_arr(1, 3, 1, 1), w=_arr(3, 2, 3, 3), padding=2), ValueError,
     r"output size \(-1, -1\).*x shape \(1, 3, 1, 1\), w shape \(3, 2, 3, 3\)"),
]


@pytest.mark.parametrize("fn,kwargs,exc,msg", BAD, ids=[f"{f.__name__}-{i}" for i, (f, *_)
                                                       in enumerate(BAD)])
def test_bad_inputs_raise_errors_naming_argument_and_shapes(fn, kwargs, exc, msg):
    kwargs = {k: Tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(exc, match=msg):
        fn(**kwargs)


@pytest.mark.parametrize("n,c,f,k,p,groups", [(2, 4, 6, 3, 1, 1), (1, 6, 4, 3, 0, 2),
                                              (2, 3, 3, 5, 2, 1), (1, 4, 8, 2, 1, 4)])
def test_stride1_input_gradient_is_a_full_convolution_with_the_flipped_kernel(n, c, f, k, p,
                                                                             groups):
    """dx of a stride-1 conv = conv of g (padded by k − 1 − p) with the kernel flipped and its
    in/out channels swapped — the fast path — equals col2im(Wᵀ ⋅ g), the general one."""
    from minicnn.ops.conv_fast import Im2colRoad
    from minicnn.ops.im2col import col2im
    rng = np.random.default_rng(0)
    h = w_ = 7
    w = rng.standard_normal((f, c // groups, k, k))
    ho = h + 2 * p - k + 1
    g = rng.standard_normal((n, f, ho, ho))
    road = Im2colRoad(x_shape=(n, c, h, w_), w_shape=w.shape, stride=(1, 1), padding=(p, p),
                      groups=groups, flip_dx=True)
    fast = road.input_grad(g, w)
    w_t = w.reshape(groups, f // groups, -1).transpose(0, 2, 1)
    g_rows = g.transpose(1, 0, 2, 3).reshape(groups, f // groups, -1)
    cols = np.matmul(w_t, g_rows).reshape(-1, n, ho, ho)
    slow = col2im(cols, (n, c, h, w_), k, k, stride=(1, 1), padding=(p, p))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_padding_and_pool_gradients_keep_the_filter_first_memory_order(rng):
    """conv2d outputs are (N, F, H, W) views of (F, N, H, W) memory; the zero-padded copy
    the next conv makes and max-pool's input gradient keep that order (values unchanged),
    whatever order max-pool's output gradient comes in, so the passes over them read and
    write memory in the same order."""
    from minicnn.ops.im2col import pad_hw
    from minicnn.ops.pool import max_pool2d
    x = rng.standard_normal((3, 4, 6, 6)).astype(np.float32)
    x_fm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    padded = pad_hw(x_fm, (1, 2))
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2))))
    assert padded.transpose(1, 0, 2, 3).flags.c_contiguous
    assert pad_hw(x, (1, 1)).flags.c_contiguous                  # NCHW stays NCHW
    t = Tensor(x_fm, requires_grad=True)
    out = max_pool2d(t, 2)
    g = np.ascontiguousarray(rng.standard_normal(out.shape).astype(np.float32).transpose(1, 0, 2, 3))
    out.backward(g.transpose(1, 0, 2, 3))
    assert t.grad.transpose(1, 0, 2, 3).flags.c_contiguous
    t2 = Tensor(x, requires_grad=True)
    max_pool2d(t2, 2).backward(np.ascontiguousarray(g.transpose(1, 0, 2, 3)))
    np.testing.assert_array_equal(t.grad, t2.grad)
    assert t2.grad.flags.c_contiguous
    # the gradient follows x's order, not g's: an NCHW g (a Linear's, reshaped) into a
    # conv's filter-first output, and the other way round
    t3 = Tensor(x_fm, requires_grad=True)
    max_pool2d(t3, 2).backward(np.ascontiguousarray(g.transpose(1, 0, 2, 3)))
    assert t3.grad.transpose(1, 0, 2, 3).flags.c_contiguous
    np.testing.assert_array_equal(t3.grad, t2.grad)
    t4 = Tensor(x, requires_grad=True)
    max_pool2d(t4, 2).backward(g.transpose(1, 0, 2, 3))
    assert t4.grad.flags.c_contiguous
    np.testing.assert_array_equal(t4.grad, t2.grad)


# ------------------------------------------------- stride 1: the blocked road

BLOCKED_CASES = [  # (x shape, w shape, padding, groups): stride 1, kernels larger than 1×1
    ((2, 3, 7, 9), (4, 3, 3, 2), 0, 1),
    ((2, 4, 6, 6), (6, 4, 3, 3), 1, 1),
    ((1, 4, 5, 8), (6, 2, 3, 3), (2, 1), 2),
    ((2, 2, 6, 5), (3, 2, 5, 3), (2, 0), 1),
    ((2, 3, 5, 6), (4, 3, 1, 3), (0, 1), 1),          # 1×3: a single kernel row
    ((2, 3, 6, 5), (4, 3, 3, 1), (1, 0), 1),          # 3×1
]


SMALL_BLOCKS = 7 * 8 * 40     # a few float64 columns per block


@pytest.fixture
def blocked_road():
    """Every stride-1 conv (not 1×1, not depthwise) takes the blocked road, a few columns
    per block, so that blocks start and end inside rows and images and the last is ragged."""
    with forced_road("blocked", block_bytes=SMALL_BLOCKS):
        yield


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("xs,ws,p,g", BLOCKED_CASES)
def test_blocked_road_matches_naive_loops(blocked_road, backend_name, rng, dtype, tol, xs, ws,
                                          p, g):
    from minicnn.ops.conv_blocked import PaddedRows
    x, w, b = draw(rng, xs, ws, (ws[0],), dtype=dtype)
    y = conv2d(Tensor(on(backend_name, x)), Tensor(on(backend_name, w), requires_grad=True),
               Tensor(on(backend_name, b)), padding=p, groups=g)
    assert y.creator.ctx.road.name == "blocked"               # the road was taken
    assert isinstance(y.creator.ctx.x_cols, PaddedRows)
    assert y.backend == backend_name and y.dtype == dtype
    np.testing.assert_allclose(to_numpy(y), conv2d_naive(x, w, b, 1, p, g), rtol=tol, atol=tol)


@pytest.mark.parametrize("xs,ws,p,g", BLOCKED_CASES)
def test_blocked_road_gradients_match_finite_differences(blocked_road, backend_name, rng, xs,
                                                         ws, p, g):
    x, w, b = (on(backend_name, a) for a in draw(rng, xs, ws, (ws[0],)))
    report = gradcheck.check(lambda x, w, b: conv2d(x, w, b, 1, p, g), [x, w, b])
    assert report.ok, report
    # conv_transpose2d: its forward is conv2d's input gradient, its backward a conv2d forward
    wt = on(backend_name, rng.standard_normal((xs[1], ws[0] // g) + ws[2:]))
    report = gradcheck.check(lambda x, w: conv_transpose2d(x, w, None, 1, 0, 0, g), [x, wt])
    assert report.ok, report


@pytest.mark.parametrize("xs,ws,p,g", BLOCKED_CASES)
def test_both_gradients_from_the_blocks_of_g_columns(blocked_road, monkeypatch, backend_name,
                                                     rng, xs, ws, p, g):
    """blocked_grads makes dW from the columns of g that dx is made of (x's own columns are
    never built), blocked_weight_grad from x's: all equal the general road's col2im(Wᵀ ⋅ g)
    and g ⋅ im2col(x)ᵀ, and a conv2d whose x and w both need gradients takes it."""
    from minicnn.ops import conv_blocked, conv_fast
    from minicnn.ops.im2col import col2im, im2col
    pp = (p, p) if isinstance(p, int) else p
    x, w = draw(rng, xs, ws)
    y_shape = conv2d_naive(x, w, None, 1, pp, g).shape
    gy = rng.standard_normal(y_shape)
    gy_rows = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(g, ws[0] // g, -1)
    w_t = w.reshape(g, ws[0] // g, -1).transpose(0, 2, 1)
    dx_ref = col2im(np.matmul(w_t, gy_rows).reshape(-1, *y_shape[:1], *y_shape[2:]),
                    xs, ws[2], ws[3], stride=(1, 1), padding=pp)
    textbook = conv_fast.Im2colRoad(x_shape=xs, w_shape=ws, stride=(1, 1), padding=pp, groups=g)
    dw_ref = textbook.weight_grad(gy, im2col(x, ws[2], ws[3], stride=(1, 1), padding=pp))

    w_flip, _ = conv_fast._flipped(on(backend_name, w), pp, g)
    x_rows = conv_blocked.PaddedRows(on(backend_name, x), pp, SMALL_BLOCKS)
    dx, dw = conv_blocked.blocked_grads(conv_fast.filter_major(on(backend_name, gy)), w_flip,
                                        x_rows, groups=g, block_bytes=SMALL_BLOCKS)
    np.testing.assert_allclose(to_numpy(dx), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(dw), dw_ref, rtol=1e-12, atol=1e-12)
    # dW alone (x needs no gradient) rebuilds the columns of x instead
    dw = conv_blocked.blocked_weight_grad(on(backend_name, gy), x_rows, w_shape=ws, groups=g)
    np.testing.assert_allclose(to_numpy(dw), dw_ref, rtol=1e-12, atol=1e-12)

    taken, real = [], conv_blocked.blocked_grads
    monkeypatch.setattr(conv_fast, "blocked_grads",           # where BlockedRoad looks it up
                        lambda *a, **k: taken.append(1) or real(*a, **k))
    xt = Tensor(on(backend_name, x), requires_grad=True)
    wt = Tensor(on(backend_name, w), requires_grad=True)
    conv2d(xt, wt, None, 1, p, g).backward(on(backend_name, gy))
    assert taken, "conv2d's backward did not take blocked_grads"
    np.testing.assert_allclose(to_numpy(xt.grad), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(wt.grad), dw_ref, rtol=1e-12, atol=1e-12)


def _all_columns(rows, kh, kw):
    """im2col's (C·kh·kw, count) columns put together from ``PaddedRows.blocks``: kernel
    row u's columns of a block are the block's copy shifted by u·Wq."""
    c = rows.rows.shape[0]
    parts = []
    for start, stop, blk in rows.blocks(kh, kw):
        assert blk.shape == (c * kw, stop - start + (kh - 1) * rows.width)
        blk = blk.reshape(c, kw, -1)
        parts.append(np.stack([blk[:, :, u * rows.width:u * rows.width + stop - start]
                               for u in range(kh)], axis=1))
    return np.concatenate(parts, axis=3).reshape(c * kh * kw, -1)


def test_padded_rows_columns_are_the_im2col_columns(rng):
    """rows[c, q + u·Wq + v] at the flat index q = n·Hq·Wq + i·Wq + j of every valid output
    pixel (i < Ho, j < Wo) is im2col's entry — neighbouring rows and images share their
    zero padding — and block by block (small blocks, the last one ragged) all columns are
    there."""
    from minicnn.ops import im2col
    from minicnn.ops.conv_blocked import PaddedRows
    n, c, h, w, kh, kw, p = 3, 2, 6, 7, 3, 4, (1, 2)
    x = rng.standard_normal((n, c, h, w))
    rows = PaddedRows(x, p, block_bytes=2 * 4 * 8 * 40)      # blocks of 40 − 2·Wq columns
    hq, wq = h + p[0], w + p[1]                                 # one frame per image
    ho, wo = h + 2 * p[0] - kh + 1, w + 2 * p[1] - kw + 1
    assert rows.rows.shape == (c, n * hq * wq + p[0] * wq + p[1])
    assert len(list(rows.blocks(kh, kw))) > 3
    cols = _all_columns(rows, kh, kw)
    assert cols.shape == (c * kh * kw, rows.count(kh, kw))
    cols = np.pad(cols, ((0, 0), (0, n * hq * wq - cols.shape[1])))
    valid = cols.reshape(c * kh * kw, n, hq, wq)[:, :, :ho, :wo]
    np.testing.assert_array_equal(valid, im2col.im2col(x, kh, kw, stride=(1, 1), padding=p))
    # the forward keeps the padded input only: kh·kw times smaller than the columns
    assert rows.rows.size < x.size * 2 < cols.size
    # no padding and channel-first memory (a conv's output): the rows are x itself
    x_cf = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    assert np.shares_memory(PaddedRows(x_cf, (0, 0)).rows, x_cf)
    cols = _all_columns(PaddedRows(x_cf, (0, 0), block_bytes=2 * 4 * 8 * 40), kh, kw)
    cols = np.pad(cols, ((0, 0), (0, n * h * w - cols.shape[1])))
    np.testing.assert_array_equal(cols.reshape(c * kh * kw, n, h, w)[:, :, :h - kh + 1, :w - kw + 1],
                                  im2col.im2col(x, kh, kw, stride=(1, 1), padding=(0, 0)))


@pytest.mark.parametrize("xs,ws,s,p,g,blocked", [
    ((128, 16, 28, 28), (16, 16, 3, 3), 1, 1, 1, True),      # fashion_net's second conv
    ((1, 64, 224, 224), (64, 64, 3, 3), 1, 1, 1, True),      # VGG's second conv
    ((64, 128, 16, 16), (128, 128, 3, 3), 1, 1, 1, True),    # 1152 rows: still pays
    ((64, 128, 8, 8), (128, 128, 3, 3), 1, 1, 1, True),      # 9×9 frames: 27% wasted, pays
    ((64, 32, 4, 4), (32, 32, 3, 3), 1, 1, 1, False),        # 5×5 frames: 56% wasted
    ((64, 32, 32, 32), (64, 32, 3, 3), 1, 3, 1, False),      # padding 3 ≥ kernel 3
    ((1, 256, 56, 56), (256, 256, 3, 3), 1, 1, 1, False),    # 2304 rows of columns
    ((128, 1, 28, 28), (16, 1, 3, 3), 1, 1, 1, False),       # 9 rows: a first layer
    ((64, 32, 32, 32), (64, 32, 3, 3), 2, 1, 1, False),      # stride 2
    ((64, 32, 32, 32), (64, 32, 1, 1), 1, 0, 1, False),      # 1×1: the columns are x
    ((64, 32, 32, 32), (32, 1, 3, 3), 1, 1, 32, False),      # depthwise
])
def test_which_convolutions_take_the_blocked_road(xs, ws, s, p, g, blocked):
    road = choose_road(xs, ws, stride=(s, s), padding=(p, p), groups=g)
    assert (road.name == "blocked") is blocked

"""Convolution and transposed convolution: loops, im2col, and the differentiable ops.

    y = conv2d(x, w, b, stride=1, padding=0, groups=1)
    x = conv_transpose2d(y, w, b, stride=1, padding=0, output_padding=0, groups=1)

Read it as a lesson in three steps, at the bottom of this file and then at the top:
``conv2d_naive`` is the loop a student writes first; ``conv2d_im2col`` the same numbers
as one matrix product over the im2col columns (im2col.py); ``Conv2d`` that product with
its backward, taking for each layer the fastest road to the same numbers (conv_fast.py:
the textbook columns, or sums over kernel offsets, or columns built a block at a time,
conv_blocked.py).
The naive loops are the reference the tests compare everything against.
"""
import numpy as np

from ..autograd import Function
from ..backend import to_numpy
from ._util import as_int, check_batch, check_float, check_ndim, pair, shape_of
from .conv_fast import choose_road, filter_major
from .im2col import im2col, out_size

__all__ = ["conv2d", "conv_transpose2d", "Conv2d", "ConvTranspose2d",
           "conv2d_naive", "conv2d_im2col", "conv_transpose2d_naive"]


# ----------------------------------------------------------------------- conv2d

class Conv2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.Conv2d``.

    2-D convolution (cross-correlation) of a batch of images with F filters.

    Inputs:  x: (N, C, H, W); w: (F, C/groups, kh, kw); b: (F,) or None
             stride s, padding p (int or (h, w) pair); groups G divides C and F.
    Output:  y: (N, F, Ho, Wo),  Ho = ⌊(H + 2p − kh) / s⌋ + 1  (same for Wo)

        y[n, f, i, j] = b[f] + Σ_{c, u, v} w[f, c, u, v] · x_pad[n, c', s·i + u, s·j + v]

    where c' runs over the C/G input channels of filter f's group. Computed as
    y = W ⋅ cols with cols = im2col(x): (C·kh·kw, N·Ho·Wo), W: (F, C·kh·kw)
    (one batched matmul over the G groups), as in ``conv2d_im2col``.

    Backward, with g = dL/dy reshaped to (F, N·Ho·Wo):
        dW = g ⋅ colsᵀ                 (F, C·kh·kw) -> (F, C/G, kh, kw)
        dx = col2im(Wᵀ ⋅ g)            overlapping windows add up
             (stride 1: the same as a full convolution of g with the flipped kernel)
        db = Σ_{n, i, j} g[n, f, i, j]

    ``choose_road`` (conv_fast.py) picks how: the im2col columns; for depthwise layers
    sums over kernel offsets instead; for stride-1 layers the columns built a block at a
    time. Every road has the steps written below and gives the same numbers.

    Memory trade-off: where dW will be needed (w requires a gradient) ctx keeps the
    columns (kh·kw times the input: 115 MB for a 64-channel 224×224 float32 layer), so
    that dW needs no second im2col; the blocked road keeps only the padded input. A frozen
    network explained by its input gradient keeps nothing but w.
    """

    @staticmethod
    def forward(ctx, x, w, b=None, *, stride=(1, 1), padding=(0, 0), groups=1):
        road = choose_road(x.shape, w.shape, stride=stride, padding=padding, groups=groups)
        columns = road.unfold(x)                 # im2col(x), or what the road keeps instead
        y = road.apply_filters(columns, w, b)    # W ⋅ columns + b
        needs = ctx.needs_input_grad
        ctx.road = road
        ctx.w = w if needs[0] else None
        ctx.x_cols = columns if needs[1] else None
        ctx.stride, ctx.padding, ctx.groups = stride, padding, groups     # for exporters
        return y

    @staticmethod
    def backward(ctx, g):
        needs = ctx.needs_input_grad
        dx = dw = db = None
        road = ctx.road
        g = filter_major(g)        # one copy at most, shared by both matmuls
        if needs[0] and needs[1]:  # together: the blocked road shares the blocks of g's columns
            dx, dw = road.grads(g, ctx.w, ctx.x_cols)
        elif needs[0]:
            dx = road.input_grad(g, ctx.w)                  # col2im(Wᵀ ⋅ g)
        elif needs[1]:
            dw = road.weight_grad(g, ctx.x_cols)            # g ⋅ colsᵀ
        if needs[2]:
            db = g.sum(axis=(0, 2, 3))
        return dx, dw, db


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution of x: (N, C, H, W) with w: (F, C/groups, kh, kw) -> (N, F, Ho, Wo).

    stride, padding: int or (h, w) pair; Ho = ⌊(H + 2·padding − kh) / stride⌋ + 1.
    groups=C with w: (k·C, 1, kh, kw) is a depthwise convolution. See ``Conv2d``.
    """
    stride, padding, groups = _check_conv("conv2d", x, w, b, stride, padding, groups)
    _check_window("conv2d", x, w, padding)
    return Conv2d.apply(x, w, b, stride=stride, padding=padding, groups=groups)


# ------------------------------------------------------------- conv_transpose2d

class ConvTranspose2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.ConvTranspose2d``.

    Transposed convolution: the adjoint of conv2d ("deconvolution" layer).

    Inputs:  x: (N, C_in, H, W); w: (C_in, C_out/groups, kh, kw) (PyTorch's layout:
             the same array a conv2d from C_out to C_in channels would use);
             b: (C_out,) or None; stride s, padding p, output_padding op < s.
    Output:  y: (N, C_out, Ho, Wo),  Ho = (H − 1)·s − 2p + kh + op  (same for Wo)

    Each input pixel stamps its weighted kernel onto the output, s pixels apart:
        y_pad[n, o, s·i + u, s·j + v] += x[n, c, i, j] · w[c, o, u, v],  then crop p.
    Equivalently y = conv2d's input gradient, col2im(Wᵀ ⋅ x), so for every x and y'
        <conv2d(y', w), x> = <y', conv_transpose2d(x, w)>      (the adjoint).
    A stride-s conv2d maps s different input sizes to the same output size;
    output_padding picks which of them conv_transpose2d produces.
    This is what a "deconvolution" layer is (learned upsampling: FCN, DCGAN,
    U-Net decoders); nothing is inverted. Zeiler & Fergus's deconvnet projects
    a feature map down to pixels with exactly this op: each conv layer's own
    filters, transposed (flipped vertically and horizontally, input and output
    channels swapped), with max-unpooling and a ReLU in between.

    Backward is conv2d's forward, sharing one im2col of g = dL/dy:
        cols = im2col(g);   dx = W ⋅ cols;   dW = x ⋅ colsᵀ;   db = Σ_{n,i,j} g
    ctx keeps x and w only (no column buffer between forward and backward).
    """

    @staticmethod
    def forward(ctx, x, w, b=None, *, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                groups=1):
        # BEGIN SOLUTION
        N, _, H, W = x.shape
        kh, kw = w.shape[2:]
        C_out = w.shape[1] * groups
        y_shape = (N, C_out, (H - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0],
                   (W - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1])
        # w read as conv2d weights (F=C_in, C_out/G, kh, kw): the same array, no flip;
        # the road of the conv2d from y_shape to x's shape, whose input gradient this is
        road = choose_road(y_shape, w.shape, stride=stride, padding=padding, groups=groups)
        y = road.input_grad(x, w)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)   # y is a view of a fresh buffer: in place is safe
        needs = ctx.needs_input_grad
        ctx.x = x if needs[1] else None
        ctx.w = w
        ctx.road = road
        ctx.stride, ctx.padding, ctx.groups = stride, padding, groups
        return y
        # END SOLUTION

    @staticmethod
    def backward(ctx, g):
        # BEGIN SOLUTION
        needs = ctx.needs_input_grad
        dx = dw = db = None
        if needs[0] or needs[1]:
            g_cols = ctx.road.unfold(g)                     # im2col(g)
            if needs[0]:
                dx = ctx.road.apply_filters(g_cols, ctx.w)  # W ⋅ cols
            if needs[1]:
                dw = ctx.road.weight_grad(ctx.x, g_cols)    # x ⋅ colsᵀ
        if needs[2]:
            db = g.sum(axis=(0, 2, 3))
        return dx, dw, db
        # END SOLUTION


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1):
    """Transposed convolution of x: (N, C_in, H, W) with w: (C_in, C_out/groups, kh, kw).

    Output (N, C_out, Ho, Wo), Ho = (H − 1)·stride − 2·padding + kh + output_padding;
    output_padding < stride. The adjoint of conv2d; see ``ConvTranspose2d``.
    """
    op = "conv_transpose2d"
    stride, padding, groups = _check_conv(op, x, w, b, stride, padding, groups, transposed=True)
    output_padding = pair(op, "output_padding", output_padding, minimum=0)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than stride "
                         f"{stride} (x shape {shape_of(x)}, w shape {shape_of(w)}); it only picks "
                         "one of the stride-many sizes a conv2d maps to the input size")
    H, W = shape_of(x)[2:]
    kh, kw = shape_of(w)[2:]
    size = ((H - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0],
            (W - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1])
    if min(size) < 1:
        raise ValueError(f"{op}: output size {size} = (H − 1)·stride − 2·padding + kernel + "
                         f"output_padding is not positive for x shape {shape_of(x)}, "
                         f"w shape {shape_of(w)}, padding {padding}")
    return ConvTranspose2d.apply(x, w, b, stride=stride, padding=padding,
                                 output_padding=output_padding, groups=groups)


# ---------------------------------------------------------------------- checks

def _check_conv(op, x, w, b, stride, padding, groups, transposed=False):
    """Shared argument checks; returns (stride pair, padding pair, groups)."""
    for name, a in (("x", x), ("w", w), ("b", b)):
        check_float(op, name, a)
    check_ndim(op, "x", x, 4, "(N, C, H, W)")
    check_batch(op, "x", x)
    layout = "(C_in, C_out/groups, kh, kw)" if transposed else "(F, C/groups, kh, kw)"
    check_ndim(op, "w", w, 4, layout)
    xs, ws = shape_of(x), shape_of(w)
    where = f"x shape {xs}, w shape {ws}"
    groups = as_int(op, "groups", groups)
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r} ({where})")
    stride = pair(f"{op} ({where})", "stride", stride, minimum=1)
    padding = pair(f"{op} ({where})", "padding", padding, minimum=0)
    C = xs[1]
    if transposed:   # w: (C_in, C_out/G, kh, kw); x must have C_in channels
        if C != ws[0]:
            raise ValueError(f"{op}: x has C_in={C} channels (x shape {xs}) but w of shape {ws} "
                             f"expects w.shape[0] = {ws[0]} input channels")
        if C % groups:
            raise ValueError(f"{op}: groups={groups} must divide the C_in={C} channels of x "
                             f"({where})")
        F = ws[1] * groups
    else:            # w: (F, C/G, kh, kw)
        F = ws[0]
        if C % groups or F % groups:
            raise ValueError(f"{op}: groups={groups} must divide both the C={C} channels of x "
                             f"and the F={F} filters of w ({where})")
        if C != ws[1] * groups:
            raise ValueError(f"{op}: x has C={C} channels (x shape {xs}) but w of shape {ws} "
                             f"expects w.shape[1]·groups = {ws[1]}·{groups} = {ws[1] * groups}")
    if b is not None and shape_of(b) != (F,):
        raise ValueError(f"{op}: b must have shape ({F},), one bias per output channel, "
                         f"got b shape {shape_of(b)} ({where})")
    return stride, padding, groups


def _check_window(op, x, w, padding):
    """The kernel must fit inside the padded input."""
    H, W = shape_of(x)[2:]
    kh, kw = shape_of(w)[2:]
    Hp, Wp = H + 2 * padding[0], W + 2 * padding[1]
    if kh > Hp or kw > Wp:
        raise ValueError(f"{op}: kernel {kh}×{kw} (w shape {shape_of(w)}) is larger than the "
                         f"padded input {Hp}×{Wp} (x shape {shape_of(x)}, padding {padding})")


# --------------------------------------------------------- naive loop references

def _naive_args(x, w, b, stride, padding):
    x, w = np.asarray(to_numpy(x)), np.asarray(to_numpy(w))
    b = np.zeros(0) if b is None else np.asarray(to_numpy(b))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return x, w, b, sh, sw, ph, pw


def conv2d_naive(x, w, b=None, stride=1, padding=0, groups=1):
    """conv2d as four loops and a window dot product (plain NumPy; the test oracle)."""
    x, w, b, sh, sw, ph, pw = _naive_args(x, w, b, stride, padding)
    # BEGIN SOLUTION
    N, C, H, W = x.shape
    F, Cg, kh, kw = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    y = np.zeros((N, F, Ho, Wo), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            c0 = (f // (F // groups)) * Cg            # first input channel of f's group
            for i in range(Ho):
                for j in range(Wo):
                    window = x_pad[n, c0:c0 + Cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[n, f, i, j] = np.sum(window * w[f]) + (b[f] if b.size else 0)
    return y
    # END SOLUTION


def conv2d_im2col(x, w, b=None, stride=1, padding=0, groups=1):
    """conv2d as one matrix product per group, y = W ⋅ im2col(x) + b (plain NumPy).

    The middle step between the loops above and ``Conv2d``: im2col makes every receptive
    field a column, (C·kh·kw, N, Ho, Wo); filter f's weights are a row of W, (F, C/G·kh·kw);
    group g's filters multiply the rows of its C/G channels.
    """
    x, w, b, sh, sw, ph, pw = _naive_args(x, w, b, stride, padding)
    # BEGIN SOLUTION
    F, Cg, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride=(sh, sw), padding=(ph, pw))   # (C·kh·kw, N, Ho, Wo)
    K, N, Ho, Wo = cols.shape
    W_rows = w.reshape(groups, F // groups, Cg * kh * kw)       # one row per filter
    cols = cols.reshape(groups, K // groups, N * Ho * Wo)       # group g's channels' rows
    y = np.matmul(W_rows, cols).reshape(F, N, Ho, Wo)          # y = W ⋅ cols, per group
    if b.size:
        y = y + b.reshape(F, 1, 1, 1)
    return y.transpose(1, 0, 2, 3)                              # (N, F, Ho, Wo)
    # END SOLUTION


def conv_transpose2d_naive(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1):
    """conv_transpose2d as loops: every input pixel adds x·kernel to an output window."""
    x, w, b, sh, sw, ph, pw = _naive_args(x, w, b, stride, padding)
    oph, opw = (output_padding,) * 2 if isinstance(output_padding, int) else output_padding
    # BEGIN SOLUTION
    N, C, H, W = x.shape
    _, Og, kh, kw = w.shape
    Hy, Wy = (H - 1) * sh - 2 * ph + kh + oph, (W - 1) * sw - 2 * pw + kw + opw
    y_pad = np.zeros((N, Og * groups, Hy + 2 * ph, Wy + 2 * pw), dtype=np.result_type(x, w))
    for n in range(N):
        for c in range(C):
            o0 = (c // (C // groups)) * Og            # first output channel of c's group
            for i in range(H):
                for j in range(W):
                    stamp = x[n, c, i, j] * w[c]        # (C_out/G, kh, kw)
                    y_pad[n, o0:o0 + Og, i * sh:i * sh + kh, j * sw:j * sw + kw] += stamp
    y = y_pad[:, :, ph:ph + Hy, pw:pw + Wy]
    return y + b.reshape(1, -1, 1, 1) if b.size else y
    # END SOLUTION

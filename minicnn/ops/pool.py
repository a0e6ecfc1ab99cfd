"""Pooling: max (with argmax indices), max-unpooling, average, adaptive and global average.

Every pooled op slides a kh×kw window with stride (sh, sw) over x padded by
(ph, pw) on each side. Along one axis (PyTorch's rule, also for ceil_mode):

    Ho = floor((H + 2·ph − kh) / sh) + 1                      (ceil_mode=False)
    Ho = ceil ((H + 2·ph − kh) / sh) + 1, minus 1 if that last window would
         start in the bottom padding, i.e. if (Ho − 1)·sh ≥ H + ph   (ceil_mode=True)

Padding may be at most half the kernel, so every window holds a real pixel.
The fast versions never loop over pixels or the batch: they loop over the
kh·kw offsets (i, j) of the window, and for each offset take one strided view
``view[n, c, oh, ow] = x_padded[n, c, oh·sh + i, ow·sw + j]`` of every window
at once. ``max_pool2d_naive`` is the loop you would write first; it is the
oracle of the tests.

Max-pooling remembers *where* each maximum came from as a flat index into the
H·W plane of its input channel (PyTorch's layout). Three ops share those
indices: ``pool_select`` gathers at them, ``max_unpool2d`` scatters to them
(the adjoint of the gather), and the backward of ``max_pool2d`` is that scatter.
"""
from ..autograd import Function
from ..backend import get_array_module
from ._util import (check_float, check_ndim, data_of, in_order_of, pair, shape_of,
                    zeros_nchw_like)

__all__ = ["max_pool2d", "max_unpool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "global_avg_pool2d", "pool_select", "max_pool2d_naive", "pool_output_size",
           "MaxPool2d", "MaxUnpool2d", "PoolSelect", "AvgPool2d", "AdaptiveAvgPool2d",
           "GlobalAvgPool2d"]


# ------------------------------------------------------------------ helpers

def pool_output_size(size, kernel, stride, padding=0, ceil_mode=False):
    """Output length along one axis (see the module docstring); may be < 1 for a too-small input."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1        # the last window must start inside the input or the left padding
    return out


def _pool_args(op, x, kernel_size, stride, padding, ceil_mode):
    """Check x and the window arguments; return (k, s, p, (Ho, Wo)) as pairs of ints."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4, "(N, C, H, W)")
    k = pair(op, "kernel_size", kernel_size, minimum=1)
    s = k if stride is None else pair(op, "stride", stride, minimum=1)
    p = pair(op, "padding", padding, minimum=0)
    if 2 * p[0] > k[0] or 2 * p[1] > k[1]:
        raise ValueError(f"{op}: padding {p} must be at most half of kernel_size {k} "
                         f"(x has shape {shape_of(x)})")
    h, w = shape_of(x)[2:]
    out = tuple(pool_output_size(n, kk, ss, pp, ceil_mode)
                for n, kk, ss, pp in zip((h, w), k, s, p))
    if min(out) < 1:
        raise ValueError(f"{op}: kernel_size {k} is larger than the padded input "
                         f"{(h + 2 * p[0], w + 2 * p[1])} of x with shape {shape_of(x)} "
                         f"(stride {s}, padding {p}): the output would be {out}")
    return k, s, p, out


def _padded(x, k, s, p, out_hw, value):
    """x inside a (N, C, Hp, Wp) array filled with ``value``: p rows/cols on top/left and
    as many on the bottom/right as the last (possibly ceil-mode) window reaches (x itself,
    not a copy, when nothing needs padding)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    hp = max(p[0] + h, (out_hw[0] - 1) * s[0] + k[0])
    wp = max(p[1] + w, (out_hw[1] - 1) * s[1] + k[1])
    if (hp, wp) == (h, w):
        return x                     # no padding and every window inside: no copy
    xpad = xp.full((n, c, hp, wp), value, dtype=x.dtype)
    xpad[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    return xpad


def _windows(xpad, k, s, out_hw):
    """For each window offset (i, j), the view v[n, c, oh, ow] = xpad[n, c, oh·sh + i, ow·sw + j]."""
    (kh, kw), (sh, sw), (ho, wo) = k, s, out_hw
    for i in range(kh):
        for j in range(kw):
            yield i, j, xpad[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


def _gather(x, indices):
    """out[n, c, ...] = x[n, c].ravel()[indices[n, c, ...]]  — shape of indices."""
    # BEGIN SOLUTION
    xp = get_array_module(x)
    n, c = x.shape[:2]
    planes = x.reshape(n, c, -1)
    return xp.take_along_axis(planes, indices.reshape(n, c, -1), axis=2).reshape(indices.shape)
    # END SOLUTION


def _scatter_add(v, indices, hw):
    """A zero (N, C, H, W) map with out[n, c].ravel()[indices[n, c, ...]] += v[n, c, ...].

    Repeated indices add up. ``bincount`` over indices made global (n·C + c)·H·W + idx,
    weighted by v, is a scatter-add in one call on NumPy and CuPy alike.
    """
    # BEGIN SOLUTION
    xp = get_array_module(v)
    n, c = v.shape[:2]
    plane = hw[0] * hw[1]
    offsets = (xp.arange(n * c, dtype=xp.int64) * plane).reshape(n, c, 1)
    flat = (indices.reshape(n, c, -1) + offsets).ravel()
    out = xp.bincount(flat, weights=v.ravel(), minlength=n * c * plane)
    return out.astype(v.dtype, copy=False).reshape(n, c, *hw)
    # END SOLUTION


def _check_indices(op, indices, values, hw, values_name):
    """indices: integer, same shape as ``values``, every entry in [0, H·W)."""
    ind = data_of(indices)
    if ind.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array (as returned by "
                        f"max_pool2d(..., return_indices=True)), got dtype {ind.dtype} "
                        f"with shape {tuple(ind.shape)}")
    if tuple(ind.shape) != shape_of(values):
        raise ValueError(f"{op}: indices has shape {tuple(ind.shape)} but {values_name} has "
                         f"shape {shape_of(values)}; they must be equal")
    if ind.size and (int(ind.min()) < 0 or int(ind.max()) >= hw[0] * hw[1]):
        raise ValueError(f"{op}: indices must lie in [0, H·W) = [0, {hw[0] * hw[1]}) for a "
                         f"plane of size {tuple(hw)}, got values in "
                         f"[{int(ind.min())}, {int(ind.max())}] (indices shape {tuple(ind.shape)})")


# ---------------------------------------------------------------- max pool

class MaxPool2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.MaxPool2d``.

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), and indices: (N, C, Ho, Wo) int64 if asked.

    out[n, c, oh, ow]     = max of the window  x[n, c, oh·sh − ph + i, ow·sw − pw + j]
    indices[n, c, oh, ow] = flat position  h·W + w  of that maximum in x[n, c]
    Padding counts as −inf (never chosen). Ties go to the first maximum in
    row-major window order; a NaN wins over numbers (the last NaN, like PyTorch).

    Backward: dx[n, c].ravel()[indices[n, c, oh, ow]] += g[n, c, oh, ow] — the
    gradient goes only to the argmax, summed where overlapping windows chose
    the same pixel (a scatter-add: _scatter_add). When the windows tile x
    (stride = kernel, no padding) no two share a pixel, and the scatter is one
    masked copy per window offset: dx at offset (i, j) = g · (argmax is (i, j)) — unless
    ceil_mode adds windows that hang over the edge. Then the backward needs no indices,
    and they are made only if ``return_indices`` asks (int64: twice the output's size).
    """

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, return_indices=True):
        xp = get_array_module(x)
        k, s, p, (ho, wo) = _pool_args("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
        n, c, h, w = x.shape
        # BEGIN SOLUTION
        xpad = _padded(x, k, s, p, (ho, wo), -xp.inf)
        best = which = None            # running max, and which offset k = i·kw + j holds it
        for i, j, v in _windows(xpad, k, s, (ho, wo)):
            if best is None:           # offset (0, 0): the first candidate (copy keeps x's layout)
                best = v.copy(order="K")
                which = xp.zeros_like(best, dtype=xp.uint8 if k[0] * k[1] <= 256 else xp.int32)
                take, code = xp.empty_like(best, dtype=bool), xp.empty_like(which)
                continue
            xp.greater(v, best, out=take)                # strict '>': the first max wins
            xp.maximum(best, v, out=best)                # in place: no new arrays
            # which = k where take: the offsets only grow along the loop, so that is a max
            xp.maximum(which, xp.multiply(take, which.dtype.type(i * k[1] + j), out=code), out=which)
        if xp.isnan(best).any():       # maximum spread the NaN; point `which` at the last one
            for i, j, v in _windows(xpad, k, s, (ho, wo)):
                xp.copyto(which, i * k[1] + j, where=v != v)
        ctx.in_hw = (h, w)
        tiles = s == k and p == (0, 0) and ho * k[0] <= h and wo * k[1] <= w   # ceil_mode may
        ctx.kernel = k                                  # add windows hanging over the edge
        ctx.tile_argmax = which if tiles else None      # the offset of each tile's max
        if tiles and not return_indices:
            return best
        # flat position in x[n, c]: (window top + i)·W + (window left + j)
        top = (xp.arange(ho, dtype=xp.int64) * s[0] - p[0])[:, None]
        left = (xp.arange(wo, dtype=xp.int64) * s[1] - p[1])[None, :]
        if p == (0, 0):
            shift = xp.array([i * w + j for i in range(k[0]) for j in range(k[1])], dtype=xp.int64)
            indices = top * w + left + shift.take(which)
        else:                          # an all −inf window keeps offset (0, 0): clamp it into x
            di, dj = which // k[1], which % k[1]
            indices = xp.maximum(top + di, 0) * w + xp.maximum(left + dj, 0)
        ctx.indices = indices
        return (best, indices) if return_indices else best
        # END SOLUTION

    @staticmethod
    def backward(ctx, g):
        # BEGIN SOLUTION
        if ctx.tile_argmax is None:
            return _scatter_add(g, ctx.indices, ctx.in_hw)
        # windows that tile x (stride = kernel, no padding): each pixel lies in at most one
        # window, so the scatter-add is one masked copy per window offset
        which, k = ctx.tile_argmax, ctx.kernel
        xp = get_array_module(g)
        n, c, ho, wo = g.shape
        g = in_order_of(g, which)          # dx, g and which all in x's memory order
        dx = zeros_nchw_like(which, (n, c) + ctx.in_hw, dtype=g.dtype)
        for i, j, window in _windows(dx, k, k, (ho, wo)):
            xp.multiply(g, which == i * k[1] + j, out=window)
        return dx
        # END SOLUTION


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, return_indices=False):
    """Max-pooling with PyTorch semantics; ``(out, indices)`` if ``return_indices``.

    x: Tensor (N, C, H, W) float; kernel_size, stride (default: kernel_size), padding:
    int or (h, w) pair. indices is a plain int64 array (N, C, Ho, Wo) of flat positions
    in each H·W input plane — feed it to ``max_unpool2d`` or ``pool_select``.
    """
    result = MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                             ceil_mode=ceil_mode, return_indices=return_indices)
    if return_indices or not isinstance(result, tuple):
        return result
    return result[0]        # a forward may return the indices although not asked for them


def max_pool2d_naive(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """The loop version of max_pool2d (teaching reference, test oracle) -> (out, indices) arrays.

    For every output pixel, scan the window's real pixels in row-major order and keep
    the first largest value and its flat position h·W + w. Slow: tiny inputs only.
    """
    x = data_of(x)
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = _pool_args("max_pool2d_naive", x, kernel_size,
                                                        stride, padding, ceil_mode)
    # BEGIN SOLUTION
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((n, c, ho, wo), dtype=x.dtype)
    indices = xp.zeros((n, c, ho, wo), dtype=xp.int64)
    for b in range(n):
        for ch in range(c):
            for oh in range(ho):
                for ow in range(wo):
                    top, left = oh * sh - ph, ow * sw - pw
                    best, arg = None, None
                    for r in range(max(top, 0), min(top + kh, h)):
                        for q in range(max(left, 0), min(left + kw, w)):
                            v = float(x[b, ch, r, q])
                            if best is None or v > best:
                                best, arg = v, r * w + q
                    out[b, ch, oh, ow], indices[b, ch, oh, ow] = best, arg
    return out, indices
    # END SOLUTION


# ------------------------------------------------- selection and unpooling

class PoolSelect(Function):
    """x: (N, C, H, W), indices: (N, C, h, w) -> out: (N, C, h, w),
    out[n, c, i, j] = x[n, c].ravel()[indices[n, c, i, j]]  (a gather).

    Backward: scatter-add g back to the indexed positions — exactly max_unpool2d.
    """

    @staticmethod
    def forward(ctx, x, indices):
        ctx.indices, ctx.in_hw = indices, tuple(x.shape[2:])
        return _gather(x, indices)

    @staticmethod
    def backward(ctx, g):
        return _scatter_add(g, ctx.indices, ctx.in_hw), None


def pool_select(x, indices):
    """Gather x at flat plane indices: ``pool_select(x, idx)`` equals ``max_pool2d(x)`` when
    ``idx`` came from max-pooling that x. x: (N, C, H, W); indices: (N, C, h, w) ints."""
    check_ndim("pool_select", "x", x, 4, "(N, C, H, W)")
    check_ndim("pool_select", "indices", indices, 4, "(N, C, h, w)")
    if shape_of(indices)[:2] != shape_of(x)[:2]:
        raise ValueError(f"pool_select: indices has shape {shape_of(indices)} and x has shape "
                         f"{shape_of(x)}; their (N, C) must agree")
    _check_indices("pool_select", indices, indices, shape_of(x)[2:], "indices")
    return PoolSelect.apply(x, data_of(indices))


class MaxUnpool2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.MaxUnpool2d``.

    y: (N, C, h, w), indices: (N, C, h, w) -> out: (N, C, H, W), zero except
    out[n, c].ravel()[indices[n, c, i, j]] += y[n, c, i, j].

    The adjoint of pool_select:  <pool_select(x, idx), y> = <x, max_unpool2d(y, idx)>.
    Backward: gather g at the indices, dy = pool_select(g, indices).
    """

    @staticmethod
    def forward(ctx, y, indices, output_size):
        # BEGIN SOLUTION
        ctx.indices = indices
        return _scatter_add(y, indices, output_size)
        # END SOLUTION

    @staticmethod
    def backward(ctx, g):
        # BEGIN SOLUTION
        return _gather(g, ctx.indices), None
        # END SOLUTION


def max_unpool2d(y, indices, output_size=None, kernel_size=None, stride=None, padding=0):
    """Put each value of y back where max-pooling found it; zeros everywhere else.

    y:           Tensor (N, C, h, w), e.g. pooled (or reconstructed) feature maps
    indices:     int array (N, C, h, w) from ``max_pool2d(..., return_indices=True)``
    output_size: (H, W) (or (N, C, H, W)) of the map that was pooled. If omitted, it is
                 inferred like PyTorch from kernel_size, stride (default kernel_size), padding:
                 H = (h − 1)·sh − 2·ph + kh  — ambiguous when the pooled size was odd, so
                 prefer passing output_size.
    These are Zeiler & Fergus' "switches" (the deconvnet carries the max locations
    of the forward pass back up through the unpooling) and SegNet's decoder.

    Where overlapping windows (e.g. 3×3 stride 2) picked the same pixel, the values
    are *added*: that makes unpool the exact adjoint of selection. (PyTorch writes one
    of them instead; with distinct indices both agree.)
    """
    op = "max_unpool2d"
    check_float(op, "y", y)
    check_ndim(op, "y", y, 4, "(N, C, h, w)")
    if output_size is None:
        if kernel_size is None:
            raise TypeError(f"{op}: give output_size=(H, W) of the map that was pooled, or "
                            "kernel_size (and stride, padding) to infer it; "
                            f"y has shape {shape_of(y)}")
        k = pair(op, "kernel_size", kernel_size, minimum=1)
        s = k if stride is None else pair(op, "stride", stride, minimum=1)
        p = pair(op, "padding", padding, minimum=0)
        output_size = tuple((n - 1) * ss - 2 * pp + kk
                            for n, kk, ss, pp in zip(shape_of(y)[2:], k, s, p))
    output_size = tuple(output_size)[-2:]
    pair(op, "output_size", output_size, minimum=1)
    _check_indices(op, indices, y, output_size, "y")
    return MaxUnpool2d.apply(y, data_of(indices), output_size=output_size)


# ------------------------------------------------------------ average pools

def _window_counts(xp, size, kernel, stride, padding, out, count_include_pad):
    """How many rows (or columns) each window averages over, shape (out,).

    A window spans [start, start + k) clipped to the padded input [−p, size + p); without
    count_include_pad the padding is not counted either: clipped to [0, size).
    """
    start = xp.arange(out, dtype=xp.int64) * stride - padding
    end = xp.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


class AvgPool2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.AvgPool2d``.

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), out = (sum of the window) / divisor[oh, ow].

    divisor = window area inside the padded input (count_include_pad=True) or
    inside the real input (False); padding contributes zeros to the sum.
    Backward: every pixel of a window receives g[n, c, oh, ow] / divisor[oh, ow]
    (summed over the windows that contain it).
    """

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
        xp = get_array_module(x)
        k, s, p, out_hw = _pool_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
        h, w = x.shape[2:]
        rows = _window_counts(xp, h, k[0], s[0], p[0], out_hw[0], count_include_pad)
        cols = _window_counts(xp, w, k[1], s[1], p[1], out_hw[1], count_include_pad)
        total = xp.zeros(x.shape[:2] + out_hw, dtype=x.dtype)
        for _, _, v in _windows(_padded(x, k, s, p, out_hw, 0), k, s, out_hw):
            total = total + v
        ctx.divisor = (rows[:, None] * cols[None, :]).astype(x.dtype)
        ctx.x_shape, ctx.k, ctx.s, ctx.p, ctx.out_hw = x.shape, k, s, p, out_hw
        return total / ctx.divisor

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        n, c, h, w = ctx.x_shape
        (ph, pw), share = ctx.p, g / ctx.divisor
        gpad = _padded(xp.zeros(ctx.x_shape, dtype=g.dtype), ctx.k, ctx.s, ctx.p, ctx.out_hw, 0)
        for _, _, view in _windows(gpad, ctx.k, ctx.s, ctx.out_hw):
            view += share        # a view into gpad: each window offset adds its share
        return gpad[:, :, ph:ph + h, pw:pw + w].copy()


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling with PyTorch semantics. x: Tensor (N, C, H, W) -> (N, C, Ho, Wo)."""
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding,
                           ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def _bin_matrix(xp, size, out, dtype):
    """(out, size) averaging matrix of PyTorch's adaptive bins: row i is 1/len on
    [floor(i·size/out), ceil((i+1)·size/out)), zero elsewhere."""
    i = xp.arange(out, dtype=xp.int64)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    pos = xp.arange(size, dtype=xp.int64)[None, :]
    inside = (pos >= start[:, None]) & (pos < end[:, None])
    return inside.astype(dtype) / (end - start)[:, None].astype(dtype)


class AdaptiveAvgPool2d(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.AdaptiveAvgPool2d``.

    x: (N, C, H, W) -> out: (N, C, Ho, Wo) for any sizes; bins may overlap.

    out[n, c, i, j] = mean of x[n, c, hs(i):he(i), ws(j):we(j)],
    hs(i) = floor(i·H/Ho), he(i) = ceil((i+1)·H/Ho) (same for columns).
    A bin is a rectangle, so the mean factors into a row average and a column average:
    out = A_h @ x @ A_w^T with the (Ho, H) and (Wo, W) matrices of _bin_matrix.
    Backward: dx = A_h^T @ g @ A_w.
    """

    @staticmethod
    def forward(ctx, x, output_size):
        xp = get_array_module(x)
        (h, w), (ho, wo) = x.shape[2:], output_size
        ctx.a_h, ctx.a_w = _bin_matrix(xp, h, ho, x.dtype), _bin_matrix(xp, w, wo, x.dtype)
        return ctx.a_h @ x @ ctx.a_w.T

    @staticmethod
    def backward(ctx, g):
        return ctx.a_h.T @ g @ ctx.a_w


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size (Ho, Wo) (an int means square; None keeps
    that input size). x: Tensor (N, C, H, W) -> (N, C, Ho, Wo)."""
    op = "adaptive_avg_pool2d"
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4, "(N, C, H, W)")
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else output_size
    size = tuple(n if o is None else o for n, o in zip(shape_of(x)[2:], size))
    size = pair(op, "output_size", size, minimum=1)
    return AdaptiveAvgPool2d.apply(x, output_size=size)


class GlobalAvgPool2d(Function):
    """x: (N, C, H, W) -> out: (N, C, 1, 1), the mean of each channel plane.
    Backward: dx[n, c, h, w] = g[n, c, 0, 0] / (H·W)."""

    @staticmethod
    def forward(ctx, x):
        ctx.x_shape = x.shape
        return x.mean(axis=(2, 3), keepdims=True)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        h, w = ctx.x_shape[2:]
        return xp.broadcast_to(g / (h * w), ctx.x_shape).copy()


def global_avg_pool2d(x):
    """Mean over H and W, kept as (N, C, 1, 1) (the head of SqueezeNet and ResNet)."""
    check_float("global_avg_pool2d", "x", x)
    check_ndim("global_avg_pool2d", "x", x, 4, "(N, C, H, W)")
    return GlobalAvgPool2d.apply(x)

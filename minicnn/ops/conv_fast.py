"""The fast roads of conv2d / conv_transpose2d, all to the numbers of the textbook im2col.

Read im2col.py first: y = W ⋅ im2col(x), dW = g ⋅ colsᵀ, dx = col2im(Wᵀ ⋅ g). That is
the ``im2col`` road below, and any convolution may take it. ``choose_road`` picks, for
one convolution, the road that is fastest for its shape (measured with ``minicnn
bench``) and returns it; every road has the same four steps:

    columns = road.unfold(x)                     what the forward keeps for dW
    y       = road.apply_filters(columns, w, b)  conv2d forward
    dx      = road.input_grad(g, w)              conv2d backward; conv_transpose2d forward
    dW      = road.weight_grad(g, columns)       both backwards  (road.grads: dx and dW)

The roads:
  im2col     the textbook columns; with groups one batched matmul over the group axis.
             With ``flip_dx`` (stride 1, p ≤ k − 1) dx is the "full" convolution of g
             with the flipped kernel, one more unfold + matmul, instead of kh·kw
             overlapping col2im additions.
  depthwise  every group one input or one output channel: the columns would be mostly
             copies feeding tiny K×1 products, so sum over the kh·kw kernel offsets
             instead, y = Σ_{u,v} w[..., u, v] · (strided slice of x_pad at (u, v)), each
             slice one long flat run of x's stride phases (conv_depthwise.py).
  blocked    stride 1, 64 to 1152 rows of columns: the columns are built a few MB at
             a time from ``PaddedRows`` and used while they are in the cache
             (conv_blocked.py).

Tests force a road with ``with forced_road("blocked", block_bytes=...):`` (blocks of that
size on the blocked and the depthwise road) and check
every road against the naive loops, im2col and finite differences.

Memory order: conv2d's output is an (N, F, Ho, Wo) view of (F, N, Ho, Wo) memory, and
so is dx; ``filter_major`` copies a gradient only when it arrives in another order.
"""
import contextlib
import contextvars
from dataclasses import dataclass
from typing import ClassVar

from ..backend import get_array_module
from .conv_blocked import (BLOCK_BYTES, PaddedRows, blocked_filters, blocked_grads,
                           blocked_weight_grad)
from .conv_depthwise import BLOCK_BYTES as DEPTHWISE_BLOCK_BYTES
from .conv_depthwise import (PhaseRows, depthwise_filters, depthwise_grads,
                             depthwise_input_grad, depthwise_weight_grad)
from .im2col import col2im, im2col

__all__ = ["choose_road", "forced_road", "ROADS", "filter_major"]


def is_depthwise(w_shape, groups):
    """True where each group has one input or one output channel (the kernel-offset road)."""
    F, Cg = w_shape[:2]
    return groups > 1 and (Cg == 1 or F // groups == 1)


def filter_major(y):
    """The same (N, F, Ho, Wo) values, stored filter-first ((F, N, Ho, Wo) in memory).

    Then ``_rows`` (one row per filter) is a free reshape; no copy when ``y`` already is
    stored so — like conv2d's output and input gradient, and what elementwise ops (relu,
    add, their gradients) make of those.
    """
    xp = get_array_module(y)
    return xp.ascontiguousarray(y.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _rows(y, groups):
    """(N, F, Ho, Wo) -> (G, F/G, N·Ho·Wo): one row per filter, as the matmul wants it."""
    F = y.shape[1]
    return y.transpose(1, 0, 2, 3).reshape(groups, F // groups, -1)


# --------------------------------------------------------------------- the roads

@dataclass(frozen=True, kw_only=True)
class Im2colRoad:
    """The textbook road: columns = im2col(x); y = W ⋅ columns; dW = g ⋅ columnsᵀ;
    dx = col2im(Wᵀ ⋅ g), or with ``flip_dx`` the full convolution of g with the flipped
    kernel. One convolution: x_shape (N, C, H, W), w_shape (F, C/G, kh, kw), pairs."""
    name: ClassVar[str] = "im2col"
    x_shape: tuple
    w_shape: tuple
    stride: tuple
    padding: tuple
    groups: int
    flip_dx: bool = False

    def unfold(self, x):
        """x -> im2col columns (C·kh·kw, N, Ho, Wo)."""
        kh, kw = self.w_shape[2:]
        return im2col(x, kh, kw, stride=self.stride, padding=self.padding)

    def apply_filters(self, cols, w, b=None):
        """y = W ⋅ cols (+ b): (N, F, Ho, Wo), one matmul batched over the groups."""
        xp = get_array_module(cols, w)
        F, G = w.shape[0], self.groups
        K, N, Ho, Wo = cols.shape
        y = xp.matmul(w.reshape(G, F // G, -1), cols.reshape(G, K // G, N * Ho * Wo))
        if b is not None:
            y += b.reshape(G, F // G, 1)     # one contiguous row per filter
        return y.reshape(F, N, Ho, Wo).transpose(1, 0, 2, 3)   # a view: no copy back to NCHW

    def input_grad(self, g, w):
        """dx = col2im(Wᵀ ⋅ g): g (N, F, Ho, Wo) -> (N, C, H, W)."""
        if self.flip_dx:
            w_flip, pad = _flipped(w, self.padding, self.groups)
            road = choose_road(g.shape, w_flip.shape, stride=(1, 1), padding=pad,
                               groups=self.groups)
            return road.apply_filters(road.unfold(g), w_flip)
        xp = get_array_module(g, w)
        F, G = w.shape[0], self.groups
        N, _, Ho, Wo = g.shape
        w_t = w.reshape(G, F // G, -1).transpose(0, 2, 1)          # (G, C/G·kh·kw, F/G)
        g_cols = xp.matmul(w_t, _rows(g, G))                        # (G, C/G·kh·kw, N·Ho·Wo)
        kh, kw = w.shape[2:]
        return col2im(g_cols.reshape(-1, N, Ho, Wo), self.x_shape, kh, kw,
                      stride=self.stride, padding=self.padding)

    def weight_grad(self, g, cols):
        """dW = g ⋅ colsᵀ: (F, C/G, kh, kw), summed over the batch and all output pixels."""
        xp = get_array_module(g, cols)
        G = self.groups
        cols = cols.reshape(G, cols.shape[0] // G, -1)
        dw_t = xp.matmul(cols, _rows(g, G).transpose(0, 2, 1))   # dWᵀ = cols ⋅ gᵀ: BLAS is
        return dw_t.transpose(0, 2, 1).reshape(self.w_shape)     # faster this way round

    def grads(self, g, w, cols):
        """(dx, dW) together."""
        return self.input_grad(g, w), self.weight_grad(g, cols)


@dataclass(frozen=True, kw_only=True)
class DepthwiseRoad(Im2colRoad):
    """Sums over the kh·kw kernel offsets, no columns (conv_depthwise.py): x laid out in
    ``PhaseRows``, where every offset's slice is one long run; that is what it keeps for dW.
    The passes run ``block_bytes`` of outputs at a time."""
    name: ClassVar[str] = "depthwise"
    block_bytes: int = DEPTHWISE_BLOCK_BYTES

    def _layout(self):
        return PhaseRows(self.x_shape, self.padding, self.stride, self.w_shape[2:],
                         self.block_bytes)

    def unfold(self, x):
        return self._layout().fill(x)

    def apply_filters(self, x_rows, w, b=None):
        return depthwise_filters(x_rows, w, b, groups=self.groups)

    def input_grad(self, g, w):
        return depthwise_input_grad(g, w, self._layout(), groups=self.groups)

    def weight_grad(self, g, x_rows):
        return depthwise_weight_grad(g, x_rows, w_shape=self.w_shape, groups=self.groups)

    def grads(self, g, w, x_rows):
        """dx and dW from one pass over the blocks of g."""
        return depthwise_grads(g, x_rows, groups=self.groups, w=w)


@dataclass(frozen=True, kw_only=True)
class BlockedRoad(Im2colRoad):
    """Stride 1: the columns built ``block_bytes`` at a time from ``PaddedRows``
    (conv_blocked.py); what it keeps for dW is the padded input, not the columns."""
    name: ClassVar[str] = "blocked"
    block_bytes: int = BLOCK_BYTES

    def unfold(self, x):
        return PaddedRows(x, self.padding, self.block_bytes)

    def apply_filters(self, x_rows, w, b=None):
        return blocked_filters(x_rows, w, b, groups=self.groups)

    def weight_grad(self, g, x_rows):
        return blocked_weight_grad(g, x_rows, w_shape=self.w_shape, groups=self.groups)

    def grads(self, g, w, x_rows):
        """dx and dW from the same blocks of g's columns where dx's convolution is blocked."""
        if self.flip_dx:
            w_flip, pad = _flipped(w, self.padding, self.groups)
            road = choose_road(g.shape, w_flip.shape, stride=(1, 1), padding=pad,
                               groups=self.groups)
            if isinstance(road, BlockedRoad):
                return blocked_grads(g, w_flip, x_rows, groups=self.groups,
                                     block_bytes=road.block_bytes)
        return super().grads(g, w, x_rows)


ROADS = {road.name: road for road in (Im2colRoad, DepthwiseRoad, BlockedRoad)}


# ----------------------------------------------------------------- the chooser

@dataclass(frozen=True)
class _Forcing:
    """What ``forced_road`` asks of ``choose_road`` (None: the usual choice)."""
    name: str | None = None
    flip_dx: bool | None = None
    block_bytes: int | None = None     # None: each road's own


_FORCED = contextvars.ContextVar("minicnn_forced_conv_road", default=_Forcing())


def choose_road(x_shape, w_shape, *, stride, padding, groups):
    """The road one convolution takes (an ``Im2colRoad``, ``DepthwiseRoad`` or ``BlockedRoad``
    holding its shapes): depthwise where every group has one input or one output channel,
    blocked where ``uses_blocks``, else im2col; dx by the flipped kernel where
    ``flips_kernel``. Inside ``forced_road(name, ...)`` that road, where it can take the
    convolution (blocked: stride 1, a kernel larger than 1×1 and padding smaller, not
    depthwise; the others: any)."""
    x_shape, w_shape, stride, padding = (tuple(a) for a in (x_shape, w_shape, stride, padding))
    depthwise = is_depthwise(w_shape, groups)
    if depthwise:
        road = DepthwiseRoad
    elif uses_blocks(x_shape, w_shape, stride=stride, padding=padding, groups=groups):
        road = BlockedRoad
    else:
        road = Im2colRoad
    flip = flips_kernel(x_shape, w_shape, stride=stride, padding=padding)
    forced, options = _FORCED.get(), {}
    (kh, kw), (ph, pw) = w_shape[2:], padding
    can_block = stride == (1, 1) and kh * kw > 1 and ph < kh and pw < kw and not depthwise
    if forced.name is not None and (forced.name != "blocked" or can_block):
        road = ROADS[forced.name]
    if forced.flip_dx is not None:
        flip = forced.flip_dx and flips_kernel(x_shape, w_shape, stride=stride,
                                               padding=padding, any_width=True)
    if road in (BlockedRoad, DepthwiseRoad) and forced.block_bytes is not None:
        options["block_bytes"] = forced.block_bytes
    return road(x_shape=x_shape, w_shape=w_shape, stride=stride, padding=padding,
                groups=groups, flip_dx=flip, **options)


@contextlib.contextmanager
def forced_road(name=None, *, flip_dx=None, block_bytes=None):
    """Within the block, every convolution that can takes road ``name`` ("im2col",
    "depthwise", "blocked"; None: the usual choice), dx by the flipped kernel where
    possible if ``flip_dx`` (False: col2im; None: the usual choice), blocks of
    ``block_bytes`` on the blocked and the depthwise road (None: their usual size).
    For tests and benchmarks: the roads give the same numbers."""
    if name is not None and name not in ROADS:
        raise ValueError(f"forced_road: unknown road {name!r}; the roads are {list(ROADS)}")
    token = _FORCED.set(_Forcing(name, flip_dx, block_bytes))
    try:
        yield
    finally:
        _FORCED.reset(token)


def flips_kernel(x_shape, w_shape, *, stride, padding, any_width=False):
    """Whether dx is the full convolution with the flipped kernel: stride 1, p ≤ k − 1, and
    g not much wider than x (its columns have F·kh·kw rows, col2im's C·kh·kw: a first
    layer on C = 1 or 3 channels is better served by col2im) unless ``any_width``."""
    F, _, kh, kw = w_shape
    return (tuple(stride) == (1, 1) and padding[0] <= kh - 1 and padding[1] <= kw - 1
            and (any_width or F <= 2 * x_shape[1]))


def uses_blocks(x_shape, w_shape, *, stride, padding, groups):
    """Whether a convolution takes the blocked stride-1 road (measured with ``minicnn bench``).

    Stride 1 with a kernel larger than 1×1 (a 1×1 conv's columns are the input itself),
    padding smaller than the kernel (what ``PaddedRows`` needs; true of every "same" and
    "valid" convolution), not depthwise, and where blocks pay: 64 to 1152 rows of columns
    (C/G·kh·kw; 1152 is 128 channels of 3×3) — with fewer (a first layer on 1 or 3
    channels) the output, not the columns, is most of the memory traffic; with more, the
    arithmetic per column dwarfs the copy and the narrower matmuls of small blocks lose
    more than the cache saves — and frames at most 1.3 times the output (the dropped
    positions are wasted work: 28×28 maps in 29×29 frames waste 7%, 8×8 maps in 9×9
    frames 27%, which still pays: cifar_net's PGD runs 3% faster with its 8×8 layers in
    blocks; smaller maps waste more).
    """
    F, Cg, kh, kw = w_shape
    H, W = x_shape[2:]
    ph, pw = padding
    Ho, Wo = H + 2 * ph - kh + 1, W + 2 * pw - kw + 1
    frame = (H + ph) * (W + pw)                      # positions per image, see PaddedRows
    return (tuple(stride) == (1, 1) and kh * kw > 1 and not is_depthwise(w_shape, groups)
            and ph < kh and pw < kw and 64 <= Cg * kh * kw <= 1152 and frame <= 1.3 * Ho * Wo)


def _flipped(w, padding, groups):
    """The kernel of the full convolution that is dx, and the padding of g it needs:
    w_flip[c, f, u, v] = w[f, c, kh−1−u, kw−1−v] within each group; (kh−1−ph, kw−1−pw).

        dx[n, c, h, w] = Σ_{f, u, v} g_pad[n, f, h + u, w + v] · w[f, c, kh−1−u, kw−1−v]
    """
    F, Cg, kh, kw = w.shape
    G = groups
    w_flip = (w.reshape(G, F // G, Cg, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
              .reshape(G * Cg, F // G, kh, kw))                     # (C, F/G, kh, kw)
    return w_flip, (kh - 1 - padding[0], kw - 1 - padding[1])

"""The depthwise road of conv_fast.py: a sum over kernel offsets on long flat rows.

In a depthwise convolution (every group one input channel, as in MobileNet and
EfficientNet) a filter meets only its own channel, so there is no matrix product to
hand to BLAS: y is a sum over the kh·kw kernel offsets,

    y[n, f, i, j] = Σ_{u, v} w[f, 0, u, v] · x_pad[n, c(f), s·i + u, s·j + v],

one multiply-add of a whole strided slice of x_pad per offset. Taken on the (N, C, Ho,
Wo) slices themselves, every pass runs NumPy's inner loop Wo values at a time (7 on
EfficientNet's last maps), and the loop overhead, not the arithmetic, is the time.

``PhaseRows`` lays x_pad out so that each offset's slice is one long flat run instead.
With stride s the padded image splits into s×s phases, x_pad[a::s, b::s] (for stride 1
the one phase is x_pad itself); offset (u, v) reads phase (u mod s, v mod s) with stride
1, shifted by (u div s, v div s). Each phase is stored as one row per channel, its N
frames of Hq × Wq pixels one after the other, so that

    x_pad[n, c, s·i + u, s·j + v] = rows[u mod s, v mod s][c, q + (u div s)·Wq + (v div s)]
    at the flat output index q = n·Hq·Wq + i·Wq + j

and every offset's slice is rows[a, b][:, shift : shift + L]: a channel's whole output
in one run. The price is the q between valid outputs (j ≥ Wo, or i ≥ Ho between
images): computed and dropped (``off_grid``); a gradient is put back on the grid with
zeros there (``on_grid``), so they add nothing to dx or dW.

Each multiply-add pass reads and writes as much memory as it computes: on a map larger
than the cache (144 channels of 16 images of 28×28, 8 MB) all kh·kw passes run at the
speed of main memory. So the passes run block by block (``PhaseRows.blocks``): a few
channels at a time (or, channels-last, a few hundred positions), about ``block_bytes``
of outputs whose kh·kw passes stay in the cache.

What bounds this road: NumPy has no fused multiply-add, so an offset costs two passes
(multiply into a scratch block, add it to y), measured at about 4.7·10⁹ elements per
second per core in the cache — 32 channels of 112×112 (13 k positions each with the
dropped ones) take 9 offsets × 416 k elements ≈ 0.8 ms at best, where PyTorch's
vectorized kernel takes 0.2 ms. Blocks remove the memory traffic, not that floor.

Read ``DepthwiseRoad`` in conv_fast.py for the four steps; the tests hold this road to
the naive loops and to the im2col columns.
"""
from ..backend import get_array_module

__all__ = ["PhaseRows", "depthwise_filters", "depthwise_grads", "depthwise_input_grad",
           "depthwise_weight_grad", "BLOCK_BYTES"]

BLOCK_BYTES = 1 << 20      # outputs per block: its kh·kw multiply-add passes stay in the cache


def _phase_starts(size, pad, stride, phase):
    """For phase ``phase`` along one axis: (first phase index i0, first input index r0)
    of the input entries it holds (x_pad index phase + stride·i = r + pad)."""
    i0 = max(0, -(-(pad - phase) // stride))
    return i0, phase + stride * i0 - pad


class PhaseRows:
    """x: (N, C, H, W), zero-padded by ``padding`` and split into stride phases.

    ``rows``: (sh, sw, C, length); rows[a, b][c, n·Hq·Wq + i·Wq + j] = x_pad[n, c, a + sh·i,
    b + sw·j], zeros elsewhere. ``count`` flat positions hold the outputs of a kh×kw
    kernel, valid where i < Ho and j < Wo.
    """

    def __init__(self, x_shape, padding, stride, kernel, block_bytes=BLOCK_BYTES):
        N, C, H, W = x_shape
        (ph, pw), (sh, sw), (kh, kw) = padding, stride, kernel
        self.batch, self.channels, self.in_hw = N, C, (H, W)
        self.padding, self.stride, self.kernel = (ph, pw), (sh, sw), (kh, kw)
        self.out_hw = ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)
        self.height = -(-(H + 2 * ph) // sh)         # Hq: rows of the largest phase
        self.width = -(-(W + 2 * pw) // sw)          # Wq
        Ho = self.out_hw[0]
        self.count = (N - 1) * self.height * self.width + Ho * self.width
        reach = (kh - 1) // sh * self.width + (kw - 1) // sw
        self.length = max(N * self.height * self.width, self.count + reach)
        self.channels_last = 4 * C >= self.count      # measured: 240 channels of 28×28 gain
        self.block_bytes = block_bytes
        self.rows = None

    def blocks(self, groups, per_group, itemsize):
        """(group slice, position slice) of the (G, F/G, count) outputs, block by block, each
        about ``block_bytes``: whole channels where rows are channel-major (positions as well
        where one group's row is larger), a run of positions of every channel where they are
        channels-last — each block a few contiguous runs of memory."""
        G, L = groups, self.count
        per_position = per_group * itemsize
        if self.channels_last:
            n_g, n_q = G, max(1, self.block_bytes // (per_position * G))
        else:
            n_g = min(G, max(1, self.block_bytes // (per_position * L)))
            n_q = L if n_g > 1 else max(1, self.block_bytes // per_position)
        for g0 in range(0, G, n_g):
            for q0 in range(0, L, n_q):
                yield slice(g0, g0 + n_g), slice(q0, min(q0 + n_q, L))

    def array(self, like, lead, channels, length, *, zero=True):
        """A (*lead, channels, length) array on ``like``'s backend and dtype, stored with the
        positions outermost where a run of positions is shorter than four times the number of
        channels (``channels_last``: a multiply-add then runs over all channels of a position
        at once, 1152 values on EfficientNet's 7×7 maps, instead of 77 positions per channel;
        measured faster from 240 channels of 28×28 down, slower at 144 channels of 56×56)."""
        xp = get_array_module(like)
        make = xp.zeros if zero else xp.empty
        if self.channels_last:
            return make(lead + (length, channels), dtype=like.dtype).swapaxes(-1, -2)
        return make(lead + (channels, length), dtype=like.dtype)

    def shape_only(self):
        """This layout without x's rows (what dx alone needs)."""
        if self.rows is None:
            return self
        return PhaseRows((self.batch, self.channels) + self.in_hw, self.padding, self.stride,
                         self.kernel, self.block_bytes)

    def scratch(self, buffer, shape):
        """A (G, F/G, n) block-shaped array in ``buffer`` (flat, reused block after block, so
        it stays in the cache), stored like a block of ``array``'s rows."""
        G, Fg, n = shape
        if self.channels_last:
            return buffer[:n * G * Fg].reshape(n, G, Fg).transpose(1, 2, 0)
        return buffer[:G * Fg * n].reshape(G, Fg, n)

    def fill(self, x):
        """Lay x out in the phase rows (one copy of x, zeros around it); returns self."""
        self.rows = self.array(x, self.stride, self.channels, self.length)
        for a, b, rows_i, cols_j, x_slice in self._parts():
            self._frames(self.rows[a, b])[:, :, rows_i, cols_j] = x[x_slice].transpose(1, 0, 2, 3)
        return self

    def _parts(self):
        """(a, b, frame rows, frame columns, x's slice) for each phase: where x goes."""
        (H, W), (ph, pw), (sh, sw) = self.in_hw, self.padding, self.stride
        for a in range(sh):
            i0, r0 = _phase_starts(H, ph, sh, a)
            n_i = len(range(r0, H, sh))
            for b in range(sw):
                j0, c0 = _phase_starts(W, pw, sw, b)
                n_j = len(range(c0, W, sw))
                yield (a, b, slice(i0, i0 + n_i), slice(j0, j0 + n_j),
                       (slice(None), slice(None), slice(r0, H, sh), slice(c0, W, sw)))

    def _frames(self, rows):
        """(channels, N, Hq, Wq) frames at the start of a (channels, ≥ N·Hq·Wq) array."""
        frames = self.batch * self.height * self.width
        return rows[:, :frames].reshape(-1, self.batch, self.height, self.width)

    def offsets(self):
        """(u, v, a, b, shift) for every kernel offset: it reads rows[a, b] from ``shift`` on."""
        (kh, kw), (sh, sw) = self.kernel, self.stride
        for u in range(kh):
            for v in range(kw):
                yield u, v, u % sh, v % sw, (u // sh) * self.width + v // sw

    def to_image(self, rows):
        """The inverse of the layout: (sh, sw, C, length) phase rows -> (N, C, H, W), padding
        dropped, stored channel-first ((C, N, H, W) memory) like conv2d's dx."""
        xp = get_array_module(rows)
        N, (H, W) = self.batch, self.in_hw
        out = xp.empty((rows.shape[2], N, H, W), dtype=rows.dtype)
        for a, b, rows_i, cols_j, x_slice in self._parts():
            out[:, :, x_slice[2], x_slice[3]] = self._frames(rows[a, b])[:, :, rows_i, cols_j]
        return out.transpose(1, 0, 2, 3)

    def _outputs(self, grid):
        """The (F, N, Ho, Wo) valid outputs in an (F, count) grid (``array``), as a view."""
        xp = get_array_module(grid)
        (Ho, Wo), step = self.out_hw, grid.strides[1]
        return xp.lib.stride_tricks.as_strided(
            grid, shape=(grid.shape[0], self.batch, Ho, Wo),
            strides=(grid.strides[0], self.height * self.width * step, self.width * step, step))

    def on_grid(self, y):
        """y: (N, F, Ho, Wo) -> (F, count): at the flat positions of its pixels, zeros at the
        dropped positions."""
        grid = self.array(y, (), y.shape[1], self.count)
        self._outputs(grid)[...] = y.transpose(1, 0, 2, 3)
        return grid

    def off_grid(self, grid):
        """(F, count) -> the valid (N, F, Ho, Wo) outputs, copied out compact and stored
        filter-first (the elementwise ops after a conv then run on long rows)."""
        xp = get_array_module(grid)
        return xp.ascontiguousarray(self._outputs(grid)).transpose(1, 0, 2, 3)


def _per_group(w, groups):
    """w: (F, C/G, kh, kw) -> (G, F/G, C/G, kh, kw), stored offset-first so that one
    offset's weights, w5[..., u, v], are contiguous (as the channels-last rows are)."""
    xp = get_array_module(w)
    F, Cg, kh, kw = w.shape
    w_t = xp.ascontiguousarray(w.reshape(groups, F // groups, Cg, kh, kw).transpose(3, 4, 0, 1, 2))
    return w_t.transpose(2, 3, 4, 0, 1)


def depthwise_filters(x_rows, w, b=None, *, groups):
    """y = Σ_{u, v} w[..., u, v] · (offset (u, v)'s slice of the phase rows) + b, on the flat
    grid, then ``off_grid``: (N, F, Ho, Wo). One multiply and one add of (G, F/G, count) per
    offset and input channel of a group (one, in a depthwise layer), block by block."""
    xp = get_array_module(x_rows.rows, w)
    F, Cg = w.shape[:2]
    G, L = groups, x_rows.count
    w5 = _per_group(w, G)
    dtype = xp.result_type(x_rows.rows, w)
    y = x_rows.array(x_rows.rows.astype(dtype, copy=False), (), F, L, zero=False)
    y = y.reshape(G, F // G, L)
    blocks = list(x_rows.blocks(G, F // G, y.itemsize))
    buffer = xp.empty(max(y[gs, :, qs].size for gs, qs in blocks), dtype=dtype)
    for gs, qs in blocks:
        y_b = y[gs, :, qs]
        term = x_rows.scratch(buffer, y_b.shape)
        first = True
        for u, v, a, b_, shift in x_rows.offsets():
            x_g = x_rows.rows[a, b_].reshape(G, Cg, -1)[gs]
            for c in range(Cg):
                xp.multiply(x_g[:, c:c + 1, shift + qs.start:shift + qs.stop],
                            w5[gs, :, c, u, v, None], out=y_b if first else term)
                if not first:
                    y_b += term
                first = False
    y = x_rows.off_grid(y.reshape(F, L))
    if b is not None:
        y += b.reshape(1, F, 1, 1)
    return y


def depthwise_grads(g, layout, *, groups, w=None, w_shape=None):
    """dx (where ``w`` is given) and dW (where ``layout`` holds x's rows), one pass over the
    blocks of g on the grid (zeros at the dropped positions), each block used for both while
    it is in the cache:

        dx: every offset's slice of the phase rows receives w[..., u, v] · g — the adjoint of
            ``depthwise_filters``; (N, C, H, W), or None
        dW[f, c, u, v] = Σ_q g[f, q] · (offset (u, v)'s slice of channel c's rows)[q]: one dot
            product per filter, input channel of its group and offset; (F, C/G, kh, kw), or None
    """
    xp = get_array_module(g)
    F, Cg, kh, kw = w.shape if w is not None else w_shape
    G, L = groups, layout.count
    g_grid = layout.on_grid(g).reshape(G, F // G, L)
    blocks = list(layout.blocks(G, F // G, g_grid.itemsize))
    dx_rows = dw = None
    if w is not None:
        w5 = _per_group(w, G)
        dx_rows = layout.array(g_grid, layout.stride, G * Cg, layout.length)
        buffer = xp.empty(max(g_grid[gs, 0, qs].size for gs, qs in blocks), dtype=g_grid.dtype)
    if layout.rows is not None:
        dw = xp.empty((G, F // G, Cg, kh, kw), dtype=xp.result_type(g, layout.rows))
    for gs, qs in blocks:
        g_b = g_grid[gs, :, qs]
        if dx_rows is not None:
            term = layout.scratch(buffer, (g_b.shape[0], 1, g_b.shape[2]))[:, 0]
        for u, v, a, b, shift in layout.offsets():
            run = slice(shift + qs.start, shift + qs.stop)
            if dw is not None:
                x_b = layout.rows[a, b].reshape(G, Cg, -1)[gs, :, run]
                # dot products over q: one batched matmul (BLAS dots, twice einsum's speed
                # measured) along rows; channels-last (q strided) einsum, six times matmul's
                dots = (xp.einsum("gfq,gcq->gfc", g_b, x_b) if layout.channels_last
                        else xp.matmul(g_b, x_b.swapaxes(-1, -2)))
                if qs.start == 0:                 # a group's first block of positions
                    dw[gs, ..., u, v] = dots
                else:
                    dw[gs, ..., u, v] += dots
            if dx_rows is not None:
                dx_g = dx_rows[a, b].reshape(G, Cg, -1)[gs]
                for c in range(Cg):
                    for f in range(F // G):
                        xp.multiply(g_b[:, f], w5[gs, f, c, u, v, None], out=term)
                        dx_g[:, c, run] += term
    return (layout.to_image(dx_rows) if dx_rows is not None else None,
            dw.reshape(F, Cg, kh, kw) if dw is not None else None)


def depthwise_input_grad(g, w, layout, *, groups):
    """dx alone (``depthwise_grads``); ``layout``: the ``PhaseRows`` of x's shape, no data
    needed. (N, C, H, W)."""
    return depthwise_grads(g, layout.shape_only(), groups=groups, w=w)[0]


def depthwise_weight_grad(g, x_rows, *, w_shape, groups):
    """dW alone (``depthwise_grads``). (F, C/G, kh, kw)."""
    return depthwise_grads(g, x_rows, groups=groups, w_shape=w_shape)[1]

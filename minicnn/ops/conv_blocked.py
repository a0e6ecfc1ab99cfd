"""The blocked road of conv_fast.py: stride-1 columns built a few MB at a time.

The input is padded once into ``PaddedRows``: one row per channel, each image in a
frame of (H + ph) × (W + pw) pixels (neighbouring rows and images share their zero
padding), read at the flat index q = n·Hq·Wq + i·Wq + j. There x_pad[n, c,
i + u, j + v] = rows[c, q + u·Wq + v], so the column of output pixel q is rows[:, q +
u·Wq + v] over (c, u, v), and any run of consecutive columns is one strided view.
Kernel row u's columns are kernel row 0's read u·Wq positions on, so only kernel row
0's C·kw rows are copied, one block at a time reaching kh − 1 image rows past the block
(``PaddedRows.blocks``); the filters' kernel rows are stacked into one matrix and each
kernel row's products added back u·Wq positions on (``blocked_filters``): the sums of
W ⋅ im2col(x), kh times less copying, each block reused from the cache by its matmul.
The backward runs over blocks of g's columns, which give dx (a full convolution with
the flipped kernel) and dW alike (``blocked_grads``); dW alone rebuilds x's blocks from
the rows the forward kept (``blocked_weight_grad``). The price: q also runs over the
positions between valid pixels (windows that straddle two rows or two images); those
outputs are computed and dropped, (Hq·Wq)/(Ho·Wo) − 1 extra work (7% at 28×28, p = 1).

The flipped kernel of that full convolution is conv_fast.py's ``_flipped``; which
convolutions take this road is its ``uses_blocks``.
"""
from ..backend import get_array_module

__all__ = ["PaddedRows", "blocked_filters", "blocked_weight_grad", "blocked_grads",
           "BLOCK_BYTES"]

BLOCK_BYTES = 4 << 20    # one block of stride-1 columns: built, multiplied, overwritten


class PaddedRows:
    """x: (N, C, H, W) zero-padded and stored as one row per channel, padding shared.

    Each image sits in a frame of Hq × Wq = (H + ph) × (W + pw) pixels, data at offset
    (ph, pw): every row starts with pw zeros and every frame with ph zero rows; the frames
    follow each other, then ph·Wq + pw more zeros. In flat order the zeros that start a
    row come right after the row before, so they are its right padding as well, and the
    zero rows that start a frame are the bottom padding of the frame before: every padded
    window of x is there, with half the padding of separately padded images.

    ``rows``: (C, N·Hq·Wq + ph·Wq + pw), read at the flat index q = n·Hq·Wq + i·Wq + j.
    The im2col columns of a stride-1 convolution with a kh×kw kernel (kh > ph, kw > pw)
    are views into it:
        cols[(c, u, v), q] = x_pad[n, c, i + u, j + v] = rows[c, q + u·Wq + v]
    for every valid output pixel (i < Ho, j < Wo). The q between them are the dropped
    positions: windows that straddle two rows or two images.
    """

    def __init__(self, x, padding, block_bytes=BLOCK_BYTES):
        xp = get_array_module(x)
        N, C, H, W = x.shape
        ph, pw = padding
        self.batch, self.in_hw, self.padding = N, (H, W), (ph, pw)
        self.height, self.width = H + ph, W + pw                     # one frame
        self.block_bytes = block_bytes
        x_cf = x.transpose(1, 0, 2, 3)                               # (C, N, H, W): a view
        if ph == 0 and pw == 0 and x_cf.flags.c_contiguous:
            self.rows = x_cf.reshape(C, -1)                          # stored so: no copy
        else:
            frames = N * self.height * self.width
            self.rows = xp.zeros((C, frames + ph * self.width + pw), dtype=x.dtype)
            self._frames(self.rows)[:, :, ph:, pw:] = x_cf

    def _frames(self, rows):
        """The (channels, N, Hq, Wq) frames at the start of a rows-shaped array."""
        frames = self.batch * self.height * self.width
        return rows[:, :frames].reshape(-1, self.batch, self.height, self.width)

    def out_hw(self, kh, kw):
        """(Ho, Wo) of a stride-1 kh×kw convolution of the padded x."""
        (H, W), (ph, pw) = self.in_hw, self.padding
        return H + 2 * ph - kh + 1, W + 2 * pw - kw + 1

    def count(self, kh, kw):
        """How many columns a kh×kw kernel has: flat positions up to the last valid pixel."""
        Ho, Wo = self.out_hw(kh, kw)
        return (self.batch - 1) * self.height * self.width + (Ho - 1) * self.width + Wo

    def columns(self, kw, start, stop):
        """Kernel row 0's columns, cols[(c, 0, v), start:stop], as a (C, kw, stop − start) view.

        Kernel row u reads the same entries u·Wq positions on: cols[(c, u, v), q] =
        rows[c, q + u·Wq + v] = cols[(c, 0, v), q + u·Wq].
        """
        xp = get_array_module(self.rows)
        rows = self.rows[:, start:]
        step_c, step_q = rows.strides
        return xp.lib.stride_tricks.as_strided(
            rows, shape=(rows.shape[0], kw, stop - start), strides=(step_c, step_q, step_q))

    def blocks(self, kh, kw):
        """(start, stop, cols) for consecutive blocks of at most ``block_bytes`` of columns,
        all about the same size (a short last block would multiply slowly).

        cols: (C·kw, stop − start + (kh − 1)·Wq), kernel row 0's columns from ``start`` on,
        reaching kh − 1 image rows past the block, so that cols[:, u·Wq : u·Wq + stop − start]
        are kernel row u's columns of the block: kh times fewer rows to copy than im2col's.
        Every block is copied into the same buffer: it stays in the cache for the matmuls
        that use it, and the next block overwrites it.
        """
        xp = get_array_module(self.rows)
        C = self.rows.shape[0]
        count = self.count(kh, kw)
        reach = (kh - 1) * self.width
        size = max(1, min(count, self.block_bytes // (C * kw * self.rows.itemsize) - reach))
        size = -(-count // -(-count // size))      # as many blocks, sizes evened out
        buffer = xp.empty(C * kw * (size + reach), dtype=self.rows.dtype)
        for start in range(0, count, size):
            stop = min(start + size, count)
            cols = buffer[:C * kw * (stop - start + reach)].reshape(C, kw, -1)
            xp.copyto(cols, self.columns(kw, start, stop + reach))      # the one copy
            yield start, stop, cols.reshape(C * kw, -1)

    def on_grid(self, y):
        """y: (N, F, Ho, Wo) -> (F, len): y at the flat positions of its pixels, zeros at the
        dropped positions (so that they add nothing to dW)."""
        xp = get_array_module(y)
        _, F, Ho, Wo = y.shape
        grid = xp.zeros((F, self.rows.shape[1]), dtype=y.dtype)
        self._frames(grid)[:, :, :Ho, :Wo] = y.transpose(1, 0, 2, 3)
        return grid

    def off_grid(self, y_rows, kh, kw):
        """(F, len) -> the valid (N, F, Ho, Wo) outputs, as a view."""
        Ho, Wo = self.out_hw(kh, kw)
        return self._frames(y_rows)[:, :, :Ho, :Wo].transpose(1, 0, 2, 3)


def _by_kernel_row(w, groups):
    """w: (F, C/G, kh, kw) -> (G, kh·F/G, C/G·kw): the filters' kernel rows stacked, row u
    of every filter in the u-th F/G rows, to multiply kernel row 0's columns (``blocks``)."""
    F, Cg, kh, kw = w.shape
    G = groups
    w_rows = w.reshape(G, F // G, Cg, kh, kw).transpose(0, 3, 1, 2, 4)    # (G, kh, F/G, C/G, kw)
    return w_rows.reshape(G, kh * F // G, Cg * kw)


def _add_kernel_rows(z, out, kh, width):
    """out = Σ_u z[:, u-th group of out's rows, u·width : u·width + out's columns]: each kernel
    row's products, read u image rows later (where kernel row u's columns are)."""
    xp = get_array_module(z)
    F, n = out.shape[1:]
    if kh == 1:                                  # a 1×k kernel: one kernel row
        xp.copyto(out, z[:, :, :n])
        return
    xp.add(z[:, :F, :n], z[:, F:2 * F, width:width + n], out=out)
    for u in range(2, kh):
        out += z[:, u * F:(u + 1) * F, u * width:u * width + n]


def _add_kernel_row_products(dw_t, cols, other_t, width):
    """dw_t[:, u] += (kernel row u's columns of the block) ⋅ other_t for every kernel row u:
    the block's copy shifted by u·width, against the other factor's (block, ·) columns."""
    xp = get_array_module(cols)
    n = other_t.shape[1]
    for u in range(dw_t.shape[1]):
        dw_t[:, u] += xp.matmul(cols[..., u * width:u * width + n], other_t)


def blocked_filters(x_rows, w, b=None, *, groups):
    """y = W ⋅ cols (+ b), one block of columns at a time: (N, F, Ho, Wo) as a view.

    Per block, Z = W_rows ⋅ cols with the filters' kernel rows stacked (``_by_kernel_row``)
    and cols kernel row 0's columns (``PaddedRows.blocks``); then y[f, q] = Σ_u Z[(u, f),
    q + u·Wq], the same sum over (c, u, v) as W ⋅ im2col(x). y is computed at every flat
    position of the frames; ``off_grid`` drops the waste. The bias is added to each block
    while it is in the cache.
    """
    xp = get_array_module(x_rows.rows, w)
    F, Cg, kh, kw = w.shape
    G = groups
    w_rows = _by_kernel_row(w, G)
    y = xp.empty((G, F // G, x_rows.rows.shape[1]), dtype=xp.result_type(x_rows.rows, w))
    for start, stop, cols in x_rows.blocks(kh, kw):
        z = xp.matmul(w_rows, cols.reshape(G, Cg * kw, -1))
        _add_kernel_rows(z, y[..., start:stop], kh, x_rows.width)
        if b is not None:
            y[..., start:stop] += b.reshape(G, F // G, 1)
    return x_rows.off_grid(y.reshape(F, -1), kh, kw)


def blocked_weight_grad(g, x_rows, *, w_shape, groups):
    """dW = g ⋅ colsᵀ summed block by block (the columns rebuilt from x_rows), one kernel
    row u at a time: dW[:, :, u, :] from the block's columns shifted by u·Wq."""
    xp = get_array_module(g, x_rows.rows)
    F, Cg, kh, kw = w_shape
    G = groups
    g_rows = x_rows.on_grid(g).reshape(G, F // G, -1)
    dw_t = xp.zeros((G, kh, Cg * kw, F // G), dtype=xp.result_type(g, x_rows.rows))
    for start, stop, cols in x_rows.blocks(kh, kw):
        _add_kernel_row_products(dw_t, cols.reshape(G, Cg * kw, -1),
                                 g_rows[..., start:stop].transpose(0, 2, 1), x_rows.width)
    # dw_t[g, u, (c, v), f] -> dw[f, c, u, v]
    return dw_t.reshape(G, kh, Cg, kw, F // G).transpose(0, 4, 2, 1, 3).reshape(w_shape)


def blocked_grads(g, w_flip, x_rows, *, groups, block_bytes=BLOCK_BYTES):
    """dx and dW of a stride-1 convolution from the same blocks of g's columns.

    dx is the full convolution of g with the flipped kernel (``_flipped``): g is padded by
    (kh−1−ph, kw−1−pw) into ``PaddedRows`` whose frames, Ho + kh−1−ph = H + ph rows by
    W + pw columns, are x's frames; dx = W_flip ⋅ gcols at dx's flat index p. x's own rows
    read from ph·Wq + pw on put x[c] at those same flat indices (x_grid, a view, zero
    between the pixels), so the pairs g[n, f, h + ph − u, w + pw − v] · x[n, c, h, w] that
    make dW[f, c, u, v] meet in one column of g, at row (f, kh−1−u, kw−1−v):

        dW[f, c, u, v] = Σ_p gcols[(f, kh−1−u, kw−1−v), p] · x_grid[c, p]

    Each block of gcols, still in the cache, is multiplied for dx and for every kernel row
    of dW, and x's columns are never built.
    """
    xp = get_array_module(g, w_flip, x_rows.rows)
    C, Fg, kh, kw = w_flip.shape
    G = groups
    ph, pw = x_rows.padding
    width = x_rows.width
    g_rows = PaddedRows(g, (kh - 1 - ph, kw - 1 - pw), block_bytes)
    x_grid = x_rows.rows[:, ph * width + pw:].reshape(G, C // G, -1)
    w_rows = _by_kernel_row(w_flip, G)
    dtype = xp.result_type(g, w_flip, x_rows.rows)
    dx = xp.empty((G, C // G, g_rows.rows.shape[1]), dtype=dtype)
    dw_t = xp.zeros((G, kh, Fg * kw, C // G), dtype=dtype)    # [u', (f, v'), c]
    for start, stop, cols in g_rows.blocks(kh, kw):
        cols = cols.reshape(G, Fg * kw, -1)
        _add_kernel_rows(xp.matmul(w_rows, cols), dx[..., start:stop], kh, width)
        _add_kernel_row_products(dw_t, cols, x_grid[..., start:stop].transpose(0, 2, 1), width)
    # dw_t[g, u', (f, v'), c] -> dw[f, c, kh−1−u', kw−1−v']
    dw = dw_t.reshape(G, kh, Fg, kw, C // G)[:, ::-1, :, ::-1].transpose(0, 2, 4, 1, 3)
    return g_rows.off_grid(dx.reshape(C, -1), kh, kw), dw.reshape(G * Fg, C // G, kh, kw)

"""im2col and col2im: a convolution as one matrix product (the textbook version).

A 2-D convolution (cross-correlation, as in every deep-learning library) is

    y[n, f, i, j] = Σ_{c, u, v} w[f, c, u, v] · x_pad[n, c, s·i + u, s·j + v]

im2col copies every receptive field of ``x_pad`` into one column,

    cols[(c, u, v), (n, i, j)] = x_pad[n, c, s·i + u, s·j + v]        cols: (C·kh·kw, N·Ho·Wo)

so the whole layer is ONE matrix product  y = W ⋅ cols  with  W: (F, C·kh·kw)
(``conv2d_im2col`` in conv.py writes exactly that). The copy is made from a
*view*: ``as_strided`` presents the padded input as a 6-D array of sliding
windows without copying; reshaping that view to a matrix is the single copy.

col2im is the adjoint of im2col, <im2col(x), c> = <x, col2im(c)>: every column
entry goes back to the pixel it was copied from, and entries copied from the
same pixel (overlapping windows) are summed. It turns the gradient of the
columns into the gradient of the input: dx = col2im(Wᵀ ⋅ g).

cols keeps N, Ho, Wo as separate axes, (C·kh·kw, N, Ho, Wo), so the product
W ⋅ cols comes out filter-first, (F, N, Ho, Wo), and is returned as an
(N, F, Ho, Wo) view; col2im builds dx channel-first the same way.

Shapes: x (N, C, H, W), w (F, C, kh, kw), y and g (N, F, Ho, Wo). conv2d itself
takes these columns or, where they are faster, other roads to the same numbers:
see conv_fast.py, tested equal to this file.
"""
from ..backend import get_array_module
from ._util import zeros_nchw_like


def out_size(size, k, stride, padding):
    """Output length of a convolution along one axis: ⌊(size + 2p − k) / s⌋ + 1."""
    return (size + 2 * padding - k) // stride + 1


def pad_hw(x, padding):
    """Zero-pad the two spatial axes of (N, C, H, W) by (ph, pw); no copy when there is none."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    x_pad = zeros_nchw_like(x, (N, C, H + 2 * ph, W + 2 * pw))    # in x's memory order
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    return x_pad


def im2col(x, kh, kw, *, stride, padding):
    """x: (N, C, H, W) -> cols: (C·kh·kw, N, Ho, Wo), one copy of a sliding-window view.

    cols[(c, u, v), n, i, j] = x_pad[n, c, s·i + u, s·j + v]: column (n, i, j) is the
    receptive field of output pixel (i, j) of image n. stride, padding: (h, w) pairs.
    """
    # BEGIN SOLUTION
    xp = get_array_module(x)
    x_pad = pad_hw(x, padding)
    N, C, Hp, Wp = x_pad.shape
    sh, sw = stride
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    sN, sC, sH, sW = x_pad.strides
    windows = xp.lib.stride_tricks.as_strided(          # a view: nothing is copied yet
        x_pad, shape=(C, kh, kw, N, Ho, Wo), strides=(sC, sH, sW, sN, sH * sh, sW * sw))
    return windows.reshape(C * kh * kw, N, Ho, Wo)      # the one copy
    # END SOLUTION


def col2im(cols, x_shape, kh, kw, *, stride, padding):
    """The adjoint of im2col: cols (C·kh·kw, N, Ho, Wo) -> dx (N, C, H, W).

    dx_pad[:, :, u::s, v::s] += cols[(:, u, v)] for every kernel offset (u, v):
    kh·kw strided additions instead of a scatter (np.add.at is ~10x slower).
    dx is built channel-first, like cols, and returned as an (N, C, H, W) view.
    """
    # BEGIN SOLUTION
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = cols.shape[2:]
    dx_pad = xp.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    per_offset = cols.reshape(C, kh, kw, N, Ho, Wo)
    for u in range(kh):
        for v in range(kw):      # the pixels offset (u, v) read, a view: added to in place
            window = dx_pad[:, :, u:u + sh * Ho:sh, v:v + sw * Wo:sw]
            window += per_offset[:, u, v]
    return dx_pad[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)
    # END SOLUTION

"""Image statistics used as losses: the Gram matrix (style) and total variation (smoothness).

    gram_matrix(features)   (N, C, H, W) -> (N, C, C)   style representation (Gatys et al. 2016)
    total_variation(x)      (..., H, W)  -> ()          squared neighbour differences
    gram_matrix_naive       the double loop over channel pairs, the oracle for the fast version
"""
from ..autograd import Function
from ..backend import get_array_module
from ._util import data_of, shape_of, check_float, check_ndim

__all__ = ["gram_matrix", "gram_matrix_naive", "total_variation"]


class GramMatrix(Function):
    """Channel correlations of feature maps, summed over spatial positions.

    x: (N, C, H, W) -> G: (N, C, C).  With F = x[n] reshaped to (C, H*W):

        G[n] = F F^T / (C * H * W)

    Normalization: Gatys et al. use the unnormalized F F^T and put 1 / (4 C^2 (HW)^2)
    into the style loss; dividing G by C*H*W here keeps style losses of layers with
    different sizes comparable without that factor (as the PyTorch style-transfer tutorial).
    backward:  dF = (g + g^T) F / (C * H * W)    (G is quadratic in F; g need not be symmetric)
    """

    @staticmethod
    def forward(ctx, x):
        # BEGIN SOLUTION
        n, c, h, w = x.shape
        f = x.reshape(n, c, h * w)
        ctx.f, ctx.scale, ctx.shape = f, 1.0 / (c * h * w), x.shape
        return (f @ f.transpose(0, 2, 1)) * ctx.scale
        # END SOLUTION

    @staticmethod
    def backward(ctx, g):
        # BEGIN SOLUTION
        df = ((g + g.transpose(0, 2, 1)) @ ctx.f) * ctx.scale
        return df.reshape(ctx.shape)
        # END SOLUTION


def gram_matrix(features):
    """Gram matrices (N, C, C) of ``features`` (N, C, H, W), normalized by C*H*W."""
    check_float("gram_matrix", "features", features)
    check_ndim("gram_matrix", "features", features, 4, "(N, C, H, W)")
    return GramMatrix.apply(features)


def gram_matrix_naive(features):
    """The reference: G[n, i, j] = sum over positions of x[n, i] * x[n, j], / (C*H*W).

    features: (N, C, H, W) array or Tensor -> (N, C, C) array (no graph; a test oracle).
    """
    x = data_of(features)
    check_ndim("gram_matrix_naive", "features", x, 4, "(N, C, H, W)")
    # BEGIN SOLUTION
    xp = get_array_module(x)
    n, c, h, w = x.shape
    g = xp.zeros((n, c, c), dtype=x.dtype)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                g[b, i, j] = (x[b, i] * x[b, j]).sum() / (c * h * w)
    return g
    # END SOLUTION


class TotalVariation(Function):
    """Anisotropic squared total variation over the last two (spatial) axes.

    x: (..., H, W), usually (N, C, H, W) -> () summed over batch, channels and positions

        TV(x) = sum (x[..., i+1, j] - x[..., i, j])^2 + sum (x[..., i, j+1] - x[..., i, j])^2

    Only the squared form (beta = 2 in Mahendran & Vedaldi's TV^beta) is provided: it is
    smooth, so gradient ascent in feature visualization and style transfer behaves. No
    normalization: scale it with the regularizer weight.
    backward:  with dv = vertical and dh = horizontal differences, each difference
               d = x[b] - x[a] sends +2 g d to x[b] and -2 g d to x[a].
    """

    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        dv = x[..., 1:, :] - x[..., :-1, :]
        dh = x[..., :, 1:] - x[..., :, :-1]
        ctx.dv, ctx.dh, ctx.shape = dv, dh, x.shape
        return xp.asarray((dv * dv).sum() + (dh * dh).sum())

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(ctx.dv)
        dv, dh = 2 * g * ctx.dv, 2 * g * ctx.dh
        dx = xp.zeros(ctx.shape, dtype=dv.dtype)
        dx[..., 1:, :] += dv
        dx[..., :-1, :] -= dv
        dx[..., :, 1:] += dh
        dx[..., :, :-1] -= dh
        return dx


def total_variation(x):
    """Squared total variation (a scalar) of images x: (..., H, W), usually (N, C, H, W)."""
    check_float("total_variation", "x", x)
    if len(shape_of(x)) < 2:
        raise ValueError(f"total_variation: x must have at least the two spatial axes (H, W), "
                         f"got shape {shape_of(x)}")
    return TotalVariation.apply(x)

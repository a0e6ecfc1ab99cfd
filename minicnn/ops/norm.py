"""Normalization and regularization layers as ops: batch_norm (train and eval), dropout.

Both behave differently in training and in evaluation; the mode is an explicit
argument (``training``), never a global. Module state (BatchNorm's running
statistics) is updated by the ``batch_norm`` wrapper, outside the graph.
"""
from ..autograd import Function
from ..backend import get_array_module, backend_name, like
from ._util import data_of, shape_of, check_float

__all__ = ["batch_norm", "dropout"]


def _per_channel(a, ndim):
    """A (C,) array shaped to broadcast against (N, C, ...): (1, C) or (1, C, 1, 1)."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


# --------------------------------------------------------------- batch norm

class BatchNorm(Function):
    """Batch normalization over every axis but the channel axis 1.

    x: (N, C) or (N, C, H, W);  gamma, beta: (C,) or None (scale 1, shift 0)
    out: y of x's shape, plus the (C,) mean and biased variance used to normalize

        training:  mu, var = mean and biased variance of x over (N, H, W)   (m values each)
        eval:      mu, var = running_mean, running_var
        xhat = (x - mu) / sqrt(var + eps),    y = gamma * xhat + beta
        (eval computes it as y = x * scale + shift, scale = gamma / sqrt(var + eps),
         shift = beta - mu * scale: two passes over x)

    backward, training (mu and var depend on x; sums over the m values of a channel):
        dxhat = g * gamma
        dx     = 1 / (m sqrt(var + eps)) * (m dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    backward, eval (a fixed affine map):  dx = g * gamma / sqrt(var + eps)
    both:  dgamma = sum(g * xhat),   dbeta = sum(g)
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean=None, running_var=None, training=True, eps=1e-5):
        xp = get_array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))
        ctx.axes, ctx.training, ctx.gamma = axes, training, gamma
        if not training:                     # a fixed affine map, y = x · scale + shift
            mean, var = running_mean, running_var
            inv_std = 1 / xp.sqrt(var + eps)
            scale = inv_std if gamma is None else gamma * inv_std
            shift = -mean * scale if beta is None else beta - mean * scale
            y = x * _per_channel(scale, x.ndim)
            y += _per_channel(shift, x.ndim)                 # two passes over x, not four
            ctx.x = x if ctx.needs_input_grad[1] else None  # for dgamma only
            ctx.mean, ctx.inv_std, ctx.scale = mean, inv_std, scale
            return y, mean, var
        mean = x.mean(axis=axes)
        xc = x - _per_channel(mean, x.ndim)
        var = (xc * xc).mean(axis=axes)
        inv_std = 1 / xp.sqrt(var + eps)
        xhat = xc * _per_channel(inv_std, x.ndim)
        y = xhat if gamma is None else xhat * _per_channel(gamma, x.ndim)
        y = y if beta is None else y + _per_channel(beta, x.ndim)
        ctx.xhat, ctx.inv_std = xhat, inv_std
        return y, mean, var

    @staticmethod
    def backward(ctx, g):
        axes, ndim = ctx.axes, g.ndim
        if not ctx.training:
            dx = g * _per_channel(ctx.scale, ndim)           # gamma / sqrt(var + eps)
            dgamma = dbeta = None
            if ctx.needs_input_grad[1]:                      # xhat made only when asked for
                xhat = (ctx.x - _per_channel(ctx.mean, ndim)) * _per_channel(ctx.inv_std, ndim)
                dgamma = (g * xhat).sum(axis=axes)
            if ctx.needs_input_grad[2]:
                dbeta = g.sum(axis=axes)
            return dx, dgamma, dbeta
        xhat = ctx.xhat
        dxhat = g if ctx.gamma is None else g * _per_channel(ctx.gamma, ndim)
        m = g.size // g.shape[1]
        dx = _per_channel(ctx.inv_std / m, ndim) * (
            m * dxhat - dxhat.sum(axis=axes, keepdims=True)
            - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True))
        dgamma = (g * xhat).sum(axis=axes) if ctx.needs_input_grad[1] else None
        dbeta = g.sum(axis=axes) if ctx.needs_input_grad[2] else None
        return dx, dgamma, dbeta


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch normalization with PyTorch semantics (see ``BatchNorm`` for the formulas).

    x: (N, C) or (N, C, H, W);  gamma, beta: (C,) Tensors or None
    running_mean, running_var: (C,) arrays (or Tensors) on x's backend, or None
    training=True:  normalize with the batch statistics (biased variance) and, if the
        running buffers are given, update them IN PLACE — module state, not part of the graph:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...]  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)
        (the running variance uses the unbiased estimate, m = N*H*W values per channel).
    training=False: normalize with running_mean / running_var (both required); nothing changes.
    Returns y, a Tensor of x's shape.
    """
    op = "batch_norm"
    check_float(op, "x", x)
    shape = shape_of(x)
    if len(shape) < 2:
        raise ValueError(f"{op}: x must be (N, C) or (N, C, H, W), got shape {shape}")
    c, where = shape[1], backend_name(data_of(x))
    for name, a in (("gamma", gamma), ("beta", beta),
                    ("running_mean", running_mean), ("running_var", running_var)):
        if a is None:
            continue
        check_float(op, name, a)
        if shape_of(a) != (c,):
            raise ValueError(f"{op}: {name} has shape {shape_of(a)} but x of shape {shape} has "
                             f"C={c} channels; expected {name} of shape ({c},)")
        if backend_name(data_of(a)) != where:
            raise ValueError(f"{op}: {name} lives on backend {backend_name(data_of(a))!r} but x "
                             f"on {where!r}; move it with as_backend(array, {where!r})")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{op}: momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"{op}: eps must be > 0, got {eps!r}")
    m = data_of(x).size // max(c, 1)
    if training and m <= 1:
        raise ValueError(f"{op}: training needs more than 1 value per channel to compute a "
                         f"variance, got x of shape {shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: eval mode (training=False) normalizes with running_mean and "
                         "running_var; both must be given")
    rm, rv = data_of(running_mean), data_of(running_var)
    y, mean, var = BatchNorm.apply(x, gamma, beta, running_mean=rm, running_var=rv,
                                   training=bool(training), eps=eps)
    if training:   # module state: updated in place on the buffers passed in
        if rm is not None:
            rm[...] = (1 - momentum) * rm + momentum * mean
        if rv is not None:
            rv[...] = (1 - momentum) * rv + momentum * var * (m / (m - 1))
    return y


# ------------------------------------------------------------------ dropout

class Dropout(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.Dropout``.

    Inverted dropout with a given mask: y = x * mask.

    x: any shape;  mask: x's shape, entries 0 (dropped) or 1 / (1 - p) (kept), or None (identity)
    backward:  dx = g * mask
    """

    @staticmethod
    def forward(ctx, x, mask=None):
        ctx.mask = mask
        return x if mask is None else x * mask

    @staticmethod
    def backward(ctx, g):
        return g if ctx.mask is None else g * ctx.mask


def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout: zero each entry with probability p, scale the rest by 1 / (1 - p).

    x: any shape -> same shape. The expectation E[y] = x, so eval mode is the identity.
    training=False or p == 0: the identity (the output shares x's array; no mask drawn).
    rng: a ``numpy.random.Generator`` (or anything with ``.random(shape)``): the mask is
        drawn with it and then moved to x's backend, so a seed gives the same mask on
        every backend. rng=None draws from x's own module (``xp.random``), unseeded.
    p must be in [0, 1).
    """
    check_float("dropout", "x", x)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout: p is the probability of dropping an entry and must be in "
                         f"[0, 1), got {p!r} (p = 1 would drop everything)")
    if not training or p == 0:
        return Dropout.apply(x, mask=None)
    a = data_of(x)
    xp = get_array_module(a)
    if rng is None:
        keep = xp.random.random(a.shape) >= p
    else:
        keep = like(rng.random(a.shape) >= p, a)
    return Dropout.apply(x, mask=keep.astype(a.dtype) / (1 - p))

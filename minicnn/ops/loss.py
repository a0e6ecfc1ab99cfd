"""Losses and the softmax family: softmax, log_softmax, cross_entropy, binary_logistic_loss, mse.

Every formula is the numerically stable one:

    log_softmax(x) = z - log(sum(exp(z))),   z = x - max(x)      (log-sum-exp: exp(z) <= 1)
    softplus(s)    = max(s, 0) + log1p(exp(-|s|))                 (exp of a non-positive number)

so logits of size 1e4 give finite results. Losses take ``reduction``:
"mean" (default) | "sum" | "none" (one loss per sample / pixel).
Integer labels are not differentiable: backward returns None for them.
"""
import numpy as np

from ..autograd import Function
from .. import backend
from ..backend import get_array_module
from ._util import data_of, shape_of, check_float

__all__ = ["softmax", "log_softmax", "cross_entropy", "binary_logistic_loss", "mse"]

REDUCTIONS = ("mean", "sum", "none")


# ------------------------------------------------------------------ helpers

def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_axis(op, x, axis):
    ndim = len(shape_of(x))
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis!r} is not valid for an input of shape {shape_of(x)}")


def _check_same_shape(op, name_a, a, name_b, b):
    if shape_of(a) != shape_of(b):
        raise ValueError(f"{op}: {name_a} has shape {shape_of(a)} but {name_b} has shape "
                         f"{shape_of(b)}; they must have the same shape")


def _reduce(loss, reduction):
    """Per-element losses -> the requested reduction (a 0-d backend array unless "none")."""
    if reduction == "none":
        return loss
    xp = get_array_module(loss)
    total = loss.sum()
    return xp.asarray(total if reduction == "sum" else total / loss.size)


def _per_element(g, reduction, n):
    """dL/d(loss_i) from the upstream gradient g of the reduced loss (broadcasts if 0-d)."""
    return g / n if reduction == "mean" else g


def _log_softmax(x, axis):
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


# ------------------------------------------------------------ softmax family

class Softmax(Function):
    """y = exp(x - max x) / sum(exp(x - max x)) along ``axis``; any shape.

    backward:  dx = y * (g - sum(g * y, axis))          (the softmax Jacobian applied to g)
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        ctx.y, ctx.axis = e / e.sum(axis=axis, keepdims=True), axis
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return y * (g - (g * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis``; any shape.

    backward:  dx = g - softmax(x) * sum(g, axis)
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        y = _log_softmax(x, axis)
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        return g - xp.exp(ctx.y) * g.sum(axis=ctx.axis, keepdims=True)


def softmax(x, axis=-1):
    """Probabilities along ``axis`` (default: the last). x: any shape -> same shape."""
    check_float("softmax", "x", x)
    _check_axis("softmax", x, axis)
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    """Log-probabilities along ``axis``, stable for large logits. x: any shape -> same shape."""
    check_float("log_softmax", "x", x)
    _check_axis("log_softmax", x, axis)
    return LogSoftmax.apply(x, axis=axis)


# ------------------------------------------------------------- cross entropy

class CrossEntropy(Function):
    """Negative log-likelihood of integer labels under softmax(logits), class axis 1.

    logits: (N, K) or (N, K, H, W)      raw class scores
    labels: (N,)   or (N, H, W)         integers in [0, K), or ignore_index (skipped)
    out:    () for "mean"/"sum"; labels' shape for "none" (0 where ignored)

        loss_i = logsumexp(logits_i) - logits_i[y_i]  =  -log_softmax(logits_i)[y_i]
        "mean" = sum_i w_i loss_i / sum_i w_i,        w_i = [y_i != ignore_index]

    backward:  dlogits_i = g_i * w_i * (softmax(logits_i) - onehot(y_i))
               with g_i = g / sum_i w_i for "mean"; labels get None.
    "mean" over zero non-ignored targets is nan (as in PyTorch) and passes a zero gradient.
    """

    @staticmethod
    def forward(ctx, logits, labels, reduction="mean", ignore_index=None):
        xp = get_array_module(logits)
        valid = (labels != ignore_index) if ignore_index is not None \
            else xp.ones(labels.shape, dtype=bool)
        safe = xp.where(valid, labels, 0)                 # ignored -> any valid class
        logp = _log_softmax(logits, axis=1)
        picked = xp.take_along_axis(logp, xp.expand_dims(safe, 1), axis=1).squeeze(1)
        per = -picked * valid                             # (N,) or (N, H, W)
        count = int(valid.sum())
        if reduction == "none":
            out = per
        elif reduction == "sum":
            out = xp.asarray(per.sum())
        elif count == 0:
            out = xp.full((), xp.nan, dtype=logits.dtype)
        else:
            out = xp.asarray(per.sum() / count)
        ctx.probs, ctx.labels, ctx.valid = xp.exp(logp), safe, valid
        ctx.reduction, ctx.count = reduction, count
        return out

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(ctx.probs)
        k = ctx.probs.shape[1]
        classes = xp.arange(k).reshape((1, k) + (1,) * (ctx.probs.ndim - 2))
        onehot = classes == xp.expand_dims(ctx.labels, 1)
        w = g * ctx.valid
        if ctx.reduction == "mean":
            w = w / max(ctx.count, 1)
        return (ctx.probs - onehot) * xp.expand_dims(w, 1), None


def _as_labels(op, labels, like):
    """Labels as an integer array on the backend of ``like`` (an explicit, small transfer)."""
    labels = data_of(labels)
    if not hasattr(labels, "dtype"):
        labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integer class indices, got dtype {labels.dtype} "
                        f"with shape {tuple(labels.shape)}; convert them with .astype(np.int64)")
    return backend.like(labels, data_of(like))


def cross_entropy(logits, labels, reduction="mean", ignore_index=None):
    """Softmax cross-entropy of integer ``labels`` under ``logits`` (see ``CrossEntropy``).

    logits: (N, K) -> labels (N,);  logits (N, K, H, W) -> labels (N, H, W) (per pixel)
    reduction: "mean" (over non-ignored targets) | "sum" | "none"
    ignore_index: a label value whose targets contribute no loss and no gradient
    Labels on another backend than the logits are copied to the logits' backend.
    """
    op = "cross_entropy"
    check_float(op, "logits", logits)
    _check_reduction(op, reduction)
    shape = shape_of(logits)
    if len(shape) < 2:
        raise ValueError(f"{op}: logits must be (N, K) or (N, K, H, W), got shape {shape}")
    labels = _as_labels(op, labels, logits)
    expected = shape[:1] + shape[2:]
    if tuple(labels.shape) != expected:
        raise ValueError(f"{op}: labels have shape {tuple(labels.shape)} but logits have shape "
                         f"{shape}; expected labels of shape {expected} (one class index per "
                         f"{'sample' if len(shape) == 2 else 'position'})")
    k = shape[1]
    checked = labels if ignore_index is None else labels[labels != ignore_index]
    if checked.size:
        lo, hi = int(checked.min()), int(checked.max())
        if lo < 0 or hi >= k:
            also = "" if ignore_index is None else f", or ignore_index={ignore_index}"
            raise ValueError(f"{op}: label {lo if lo < 0 else hi} is out of range for K={k} "
                             f"classes (valid labels are 0..{k - 1}{also})")
    return CrossEntropy.apply(logits, labels, reduction=reduction, ignore_index=ignore_index)


# --------------------------------------------------------- logistic and mse

class BinaryLogisticLoss(Function):
    """Binary cross-entropy with logits: the logistic loss of scores s for targets t.

    scores, targets: same shape (any); targets in [0, 1] (usually 0./1. floats)

        loss = -t log sigmoid(s) - (1 - t) log(1 - sigmoid(s))
             = max(s, 0) - s t + log1p(exp(-|s|))                 (stable softplus form)

    backward:  ds = g * (sigmoid(s) - t),   dt = -g * s
    sigmoid is evaluated stably: 1 / (1 + e) for s >= 0 and e / (1 + e) otherwise, e = exp(-|s|).
    """

    @staticmethod
    def forward(ctx, s, t, reduction="mean"):
        xp = get_array_module(s)
        e = xp.exp(-xp.abs(s))
        loss = xp.maximum(s, 0) - s * t + xp.log1p(e)
        ctx.sigmoid = xp.where(s >= 0, 1 / (1 + e), e / (1 + e))
        ctx.s, ctx.t, ctx.reduction = s, t, reduction
        return _reduce(loss, reduction)

    @staticmethod
    def backward(ctx, g):
        w = _per_element(g, ctx.reduction, ctx.s.size)
        ds = w * (ctx.sigmoid - ctx.t) if ctx.needs_input_grad[0] else None
        dt = -w * ctx.s if ctx.needs_input_grad[1] else None
        return ds, dt


def binary_logistic_loss(scores, targets, reduction="mean"):
    """Logistic loss (BCE with logits) of raw ``scores`` for 0/1 ``targets``, same shape."""
    op = "binary_logistic_loss"
    check_float(op, "scores", scores)
    check_float(op, "targets", targets)
    _check_same_shape(op, "scores", scores, "targets", targets)
    _check_reduction(op, reduction)
    return BinaryLogisticLoss.apply(scores, targets, reduction=reduction)


class MSE(Function):
    """Mean squared error: loss_i = (a_i - b_i)^2, then reduced.

    a, b: same shape (any; no broadcasting)
    backward:  da = 2 g (a - b)  (g / size for "mean"),  db = -da
    """

    @staticmethod
    def forward(ctx, a, b, reduction="mean"):
        ctx.diff, ctx.reduction = a - b, reduction
        return _reduce(ctx.diff * ctx.diff, reduction)

    @staticmethod
    def backward(ctx, g):
        da = 2 * _per_element(g, ctx.reduction, ctx.diff.size) * ctx.diff
        return da, -da


def mse(a, b, reduction="mean"):
    """Squared error between ``a`` and ``b`` (same shape), "mean" | "sum" | "none"."""
    check_float("mse", "a", a)
    check_float("mse", "b", b)
    _check_same_shape("mse", "a", a, "b", b)
    _check_reduction("mse", reduction)
    return MSE.apply(a, b, reduction=reduction)

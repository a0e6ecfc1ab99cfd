"""Activations. ReLU, ReLU6 and clamp follow the backward pass's ReLU rule.

Forward is always the same: relu(x) = max(x, 0). What flows *back* through
it is chosen per backward pass (``score.backward(relu_rule="guided")``):

    standard    dx = g · (x > 0)                 the true gradient
    deconvnet   dx = g · (g > 0)                 Zeiler & Fergus 2014
    guided      dx = g · (x > 0) · (g > 0)       Springenberg et al. 2015
    redirected  see autograd.RELU_RULES          Lucid's fix for dead units

Because the rule is looked up inside ``backward`` every ReLU in the graph —
module or functional, feature extractor or classifier — obeys it.
"""
from ..autograd import Function, current_relu_rule
from ..backend import get_array_module
from ._util import check_float

__all__ = ["relu", "relu6", "clamp", "sigmoid", "tanh"]


class ReLU(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.ReLU``.

    y = max(x, 0).  x: any shape.   dx = rule(g, x > 0)  (standard: g · (x > 0))."""
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        y = xp.maximum(x, 0)            # in x's memory order, compact where x is a strided view
        if ctx.needs_input_grad[0]:     # the mask only where a backward will read it
            ctx.active = y > 0
        return y

    @staticmethod
    def backward(ctx, g):
        return (current_relu_rule()(g, ctx.active),)


class Clamp(Function):
    """y = min(max(x, lo), hi).   dx = rule(g, lo < x < hi)  (standard: g · (lo < x < hi)).

    ReLU6 is clamp(x, 0, 6); the ReLU rules generalize with "active" meaning
    the unit passes its input through.
    """
    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = get_array_module(x)
        if ctx.needs_input_grad[0]:
            ctx.active = (x > lo) & (x < hi)
        y = xp.maximum(x, lo)
        return xp.minimum(y, hi, out=y)

    @staticmethod
    def backward(ctx, g):
        return (current_relu_rule()(g, ctx.active),)


class Sigmoid(Function):
    """y = 1 / (1 + e^(−x)), computed stably for large |x|.   dx = g · y · (1 − y)."""
    @staticmethod
    def forward(ctx, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))                       # never overflows
        ctx.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.y * (1 - ctx.y),)


class Tanh(Function):
    """y = tanh(x).   dx = g · (1 − y²)."""
    @staticmethod
    def forward(ctx, x):
        ctx.y = get_array_module(x).tanh(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return (g * (1 - ctx.y * ctx.y),)


def relu(x):
    check_float("relu", "x", x)
    return ReLU.apply(x)


def clamp(x, lo, hi):
    check_float("clamp", "x", x)
    if not lo < hi:
        raise ValueError(f"clamp: needs lo < hi, got lo={lo}, hi={hi}")
    return Clamp.apply(x, lo=lo, hi=hi)


def relu6(x):
    """min(max(x, 0), 6) — MobileNet / EfficientNet-Lite's activation."""
    return clamp(x, 0.0, 6.0)


def sigmoid(x):
    check_float("sigmoid", "x", x)
    return Sigmoid.apply(x)


def tanh(x):
    check_float("tanh", "x", x)
    return Tanh.apply(x)

"""Elementwise arithmetic, reductions, shape ops and the linear layer.

Each op: a Function with forward/backward side by side, and a lowercase wrapper.
Broadcasting follows NumPy; backward sums the gradient back to each input's
shape (``unbroadcast``, the adjoint of broadcasting).
"""
from ..autograd import Function, Tensor
from ..backend import get_array_module
from ._util import check_float, check_ndim, data_of, shape_of, unbroadcast

__all__ = ["add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "sum", "mean",
           "reshape", "flatten", "transpose", "concat", "pad", "getitem", "matmul", "linear"]


def _lift(a, like):
    """Python numbers become 0-d arrays of the other operand's dtype and backend."""
    if isinstance(a, (int, float)):
        ref = data_of(like)
        return get_array_module(ref).asarray(a, dtype=ref.dtype)
    return a


def _binary(fn, a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        raise TypeError(f"{fn.__name__.lower()}: at least one operand must be a Tensor or array")
    return fn.apply(_lift(a, b), _lift(b, a))


# --------------------------------------------------------------- elementwise

class Add(Function):
    """y = a + b.   da = g, db = g (summed over broadcast axes)."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.a_shape), unbroadcast(g, ctx.b_shape)


class Sub(Function):
    """y = a − b.   da = g, db = −g."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.a_shape), unbroadcast(-g, ctx.b_shape)


class Mul(Function):
    """y = a · b.   da = g · b, db = g · a."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g * ctx.b, ctx.a.shape), unbroadcast(g * ctx.a, ctx.b.shape)


class Div(Function):
    """y = a / b.   da = g / b, db = −g · a / b²."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a / b

    @staticmethod
    def backward(ctx, g):
        return (unbroadcast(g / ctx.b, ctx.a.shape),
                unbroadcast(-g * ctx.a / (ctx.b * ctx.b), ctx.b.shape))


class Pow(Function):
    """y = x^p for a constant p.   dx = g · p · x^(p−1)."""
    @staticmethod
    def forward(ctx, x, p):
        ctx.x, ctx.p = x, p
        return x ** p

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.p * ctx.x ** (ctx.p - 1),)


class Exp(Function):
    """y = eˣ.   dx = g · y."""
    @staticmethod
    def forward(ctx, x):
        ctx.y = get_array_module(x).exp(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.y,)


class Log(Function):
    """y = ln x.   dx = g / x."""
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return get_array_module(x).log(x)

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.x,)


class Sqrt(Function):
    """y = √x.   dx = g / (2y)."""
    @staticmethod
    def forward(ctx, x):
        ctx.y = get_array_module(x).sqrt(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return (g / (2 * ctx.y),)


def add(a, b): return _binary(Add, a, b)
def sub(a, b): return _binary(Sub, a, b)
def mul(a, b): return _binary(Mul, a, b)
def div(a, b): return _binary(Div, a, b)
def neg(x): return mul(x, -1.0)


def pow(x, p):
    """x ** p for a constant exponent p (a Python number)."""
    if not isinstance(p, (int, float)):
        raise TypeError(f"pow: exponent must be a Python number, got {type(p).__name__}")
    check_float("pow", "x", x)
    return Pow.apply(x, p=p)


def exp(x): check_float("exp", "x", x); return Exp.apply(x)
def log(x): check_float("log", "x", x); return Log.apply(x)
def sqrt(x): check_float("sqrt", "x", x); return Sqrt.apply(x)


# ----------------------------------------------------------------- reductions

class Sum(Function):
    """y = Σ x over ``axis``.   dx = g broadcast back to x's shape."""
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.x_shape, ctx.axis, ctx.keepdims = x.shape, axis, keepdims
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        if ctx.axis is not None and not ctx.keepdims:
            g = xp.expand_dims(g, ctx.axis)
        return (xp.broadcast_to(g, ctx.x_shape),)


def _axes(axis, ndim):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axis=_axes(axis, len(shape_of(x))), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Σ x / n over ``axis`` (n = number of summed elements)."""
    shape = shape_of(x)
    axes = _axes(axis, len(shape))
    n = 1
    for a in (range(len(shape)) if axes is None else axes):
        n *= shape[a]
    return div(sum(x, axes, keepdims), float(n))


# ----------------------------------------------------------------- shape ops

class Reshape(Function):
    """y = x viewed with a new shape.   dx = g reshaped back."""
    @staticmethod
    def forward(ctx, x, shape):
        ctx.x_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.x_shape),)


def reshape(x, *shape):
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    size = data_of(x).size
    known = 1
    for s in shape:
        known *= s if s != -1 else 1
    if (-1 not in shape and known != size) or (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot view input of shape {shape_of(x)} ({size} values) "
                         f"as shape {shape}")
    return Reshape.apply(x, shape=shape)


def flatten(x, start_dim=1):
    """Merge dims start_dim.. into one: (N, C, H, W) -> (N, C·H·W)."""
    s = shape_of(x)
    return reshape(x, *s[:start_dim], -1)


class Transpose(Function):
    """y = x with axes permuted.   dx = g with the inverse permutation."""
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        inverse = [0] * len(ctx.axes)
        for i, a in enumerate(ctx.axes):
            inverse[a] = i
        return (g.transpose(inverse),)


def transpose(x, *axes):
    ndim = len(shape_of(x))
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = axes or tuple(reversed(range(ndim)))
    if sorted(a % ndim for a in axes) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {ndim} axes "
                         f"of the input of shape {shape_of(x)}")
    return Transpose.apply(x, axes=tuple(a % ndim for a in axes))


class Concat(Function):
    """y = [x₁, x₂, …] joined along ``axis``.   dxᵢ = the slice of g that came from xᵢ."""
    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis, ctx.sizes = axis, [x.shape[axis] for x in xs]
        return get_array_module(*xs).concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        grads, start = [], 0
        for n in ctx.sizes:
            index = [slice(None)] * g.ndim
            index[ctx.axis] = slice(start, start + n)
            grads.append(g[tuple(index)])
            start += n
        return tuple(grads)


def concat(xs, axis=1):
    """Join tensors along ``axis`` (default: channels, as in U-Net skips / SqueezeNet Fire)."""
    shapes = [shape_of(x) for x in xs]
    if not shapes:
        raise ValueError("concat: needs at least one tensor")
    ndim = len(shapes[0])
    axis %= ndim
    for i, s in enumerate(shapes):
        if len(s) != ndim or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ValueError(f"concat: tensor {i} has shape {s}, which does not match tensor 0 "
                             f"of shape {shapes[0]} outside axis {axis}")
    return Concat.apply(*xs, axis=axis)


class Pad(Function):
    """Zero (constant) padding of the last two axes: (N, C, H, W) -> (N, C, H+t+b, W+l+r).

    dx = g with the border cut away.
    """
    @staticmethod
    def forward(ctx, x, widths, value):
        ctx.widths = widths
        return get_array_module(x).pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, g):
        index = tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(ctx.widths))
        return (g[index],)


def pad(x, padding, value=0.0):
    """Pad the last two axes. ``padding`` = p, (ph, pw) or (top, bottom, left, right)."""
    p = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(p) == 2:
        p = (p[0], p[0], p[1], p[1])
    if len(p) != 4 or min(p) < 0:
        raise ValueError(f"pad: padding must be p, (ph, pw) or (top, bottom, left, right) with "
                         f"non-negative ints, got {padding!r} for input of shape {shape_of(x)}")
    ndim = len(shape_of(x))
    widths = ((0, 0),) * (ndim - 2) + ((p[0], p[1]), (p[2], p[3]))
    return Pad.apply(x, widths=widths, value=value)


class GetItem(Function):
    """y = x[key].   dx = zeros with g scattered back at key (summed where key repeats)."""
    @staticmethod
    def forward(ctx, x, key):
        ctx.x_shape, ctx.x_dtype, ctx.key = x.shape, x.dtype, key
        return x[key]

    @staticmethod
    def backward(ctx, g):
        xp = get_array_module(g)
        dx = xp.zeros(ctx.x_shape, dtype=ctx.x_dtype)
        xp.add.at(dx, ctx.key, g)   # repeated indices accumulate
        return (dx,)


def getitem(x, key):
    key = tuple(k.data if isinstance(k, Tensor) else k for k in key) if isinstance(key, tuple) \
        else (key.data if isinstance(key, Tensor) else key)
    return GetItem.apply(x, key=key)


# ------------------------------------------------------------- matmul, linear

class MatMul(Function):
    """y = a @ b for 2-D a (n, k), b (k, m).   da = g bᵀ, db = aᵀ g."""
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a @ b

    @staticmethod
    def backward(ctx, g):
        needs = ctx.needs_input_grad        # skip the products nobody asked for
        return (g @ ctx.b.T if needs[0] else None), (ctx.a.T @ g if needs[1] else None)


def matmul(a, b):
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != 2 or len(sb) != 2 or sa[1] != sb[0]:
        raise ValueError(f"matmul: needs 2-D operands (n, k) @ (k, m), got {sa} @ {sb}")
    return MatMul.apply(a, b)


class Linear(Function):
    """The Function (forward + backward); the layer is ``minicnn.nn.Linear``.

    Fully connected layer, PyTorch layout.

    x: (N, D_in), w: (D_out, D_in), b: (D_out,) -> y = x wᵀ + b: (N, D_out)
    dx = g w,   dw = gᵀ x,   db = Σ_n g
    Only the gradients some input needs are computed: for a frozen network explained
    by its input gradient, dw would be a (D_out, D_in) outer product thrown away
    (4096 × 25088 numbers in vgg16's first FC layer).
    """
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.x, ctx.w = x, w
        y = x @ w.T
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, g):
        needs = ctx.needs_input_grad
        dx = g @ ctx.w if needs[0] else None
        dw = g.T @ ctx.x if needs[1] else None
        db = g.sum(axis=0) if needs[2] else None
        return dx, dw, db


def linear(x, w, b=None):
    for name, a in (("x", x), ("w", w), ("b", b)):
        check_float("linear", name, a)
    check_ndim("linear", "x", x, 2, "(N, D_in)")
    check_ndim("linear", "w", w, 2, "(D_out, D_in)")
    (n, d_in), (d_out, d_w) = shape_of(x), shape_of(w)
    if d_in != d_w:
        raise ValueError(f"linear: x has {d_in} features (shape {shape_of(x)}) but w expects "
                         f"{d_w} (shape {shape_of(w)}); flatten the input or fix in_features")
    if b is not None and shape_of(b) != (d_out,):
        raise ValueError(f"linear: b must have shape ({d_out},), got {shape_of(b)}")
    return Linear.apply(x, w, b)

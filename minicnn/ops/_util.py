"""Small helpers shared by the ops: argument checks with teaching error messages."""
import operator

from ..autograd import Tensor
from ..backend import get_array_module


def data_of(x):
    """The backend array of a Tensor (or the array itself)."""
    return x.data if isinstance(x, Tensor) else x


def shape_of(x):
    return tuple(data_of(x).shape)


def check_float(op, name, x):
    """Differentiable ops take floating-point inputs: TypeError naming the argument otherwise."""
    if x is None:
        return
    dtype = data_of(x).dtype
    if dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating-point array, got dtype {dtype} "
                        f"with shape {shape_of(x)}; convert it with .astype(np.float32)")


def check_batch(op, name, x):
    """ValueError for an empty batch (N = 0): the fast roads need at least one image."""
    shape = shape_of(x)
    if shape and shape[0] == 0:
        raise ValueError(f"{op}: {name} is an empty batch (N = 0, shape {shape}); "
                         "pass at least one image")


def check_ndim(op, name, x, ndim, layout):
    """ValueError naming the argument, its shape and the expected layout, e.g. '(N, C, H, W)'."""
    shape = shape_of(x)
    if len(shape) != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions {layout}, got shape {shape}")


def as_int(op, name, v):
    """A Python int from an int-like value (int, np.int64, ...); TypeError naming the argument
    for anything else (a float, a bool, a string)."""
    if isinstance(v, bool) or getattr(v, "dtype", None) is not None and v.dtype.kind == "b":
        raise TypeError(f"{op}: {name} must be an int, got the bool {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {v!r} "
                        f"(type {type(v).__name__})") from None


def pair(op, name, v, minimum=0):
    """An int or a pair of ints (NumPy ints too) -> (a, b) of Python ints, each >= minimum."""
    try:
        t = (as_int(op, name, v),) * 2
    except TypeError:
        try:
            t = tuple(as_int(op, name, i) for i in v)
        except TypeError:
            raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}") from None
    if len(t) != 2:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if min(t) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return t


def unbroadcast(g, shape):
    """Sum a broadcast gradient back down to ``shape`` (the adjoint of broadcasting)."""
    shape = tuple(shape)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _filter_first(a):
    return a.ndim == 4 and a.strides[1] > a.strides[0]


def zeros_nchw_like(a, shape, dtype=None):
    """Zeros of ``shape`` (N, C, H, W), ``a``'s dtype (or ``dtype``), stored in ``a``'s axis order.

    conv2d returns its output as an (N, F, H, W) view of filter-first (F, N, H, W) memory
    (see ops/im2col.py), and so are the elementwise results made from it. A pass that
    reads one memory order and writes the other jumps through memory and runs several
    times slower, so padded copies and gradients are allocated to match.
    """
    xp = get_array_module(a)
    dtype = a.dtype if dtype is None else dtype
    if _filter_first(a):
        n, c = shape[:2]
        return xp.zeros((c, n) + tuple(shape[2:]), dtype=dtype).transpose(1, 0, 2, 3)
    return xp.zeros(shape, dtype=dtype)


def in_order_of(a, ref):
    """``a`` (N, C, H, W), copied into ``ref``'s axis order (NCHW or filter-first) if it is
    stored the other way; ``a`` itself otherwise."""
    xp = get_array_module(a)
    if _filter_first(a) == _filter_first(ref):
        return a
    if _filter_first(ref):
        return xp.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    return xp.ascontiguousarray(a)

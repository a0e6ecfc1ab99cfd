"""Reverse-mode automatic differentiation: Tensor, Function, backward().

A ``Tensor`` wraps a backend array (``.data``) and remembers the ``Function``
node that produced it. An op is a ``Function`` subclass with two static
methods side by side::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):          # arrays in, array out
            ctx.y = xp.exp(x)         # ctx keeps exactly what backward needs
            return ctx.y
        @staticmethod
        def backward(ctx, g):         # dL/dy in, dL/dx out (one per input)
            return g * ctx.y

``Exp.apply(t)`` unwraps Tensors, runs ``forward``, and links the output to
its inputs. ``loss.backward()`` visits the nodes in reverse topological order,
calls each ``backward`` once and accumulates gradients into ``.grad`` arrays.

The ReLU backward rule is a parameter of one backward pass, not of the
forward: ``score.backward(relu_rule="guided")`` or ``with relu_rule("guided"):``.
ReLU-like ops ask ``current_relu_rule()`` during their backward.
"""
import contextlib
import contextvars

import numpy as np

from .backend import get_array_module, backend_name, as_backend, default_backend

__all__ = ["Tensor", "Function", "tensor", "no_grad", "enable_grad", "is_grad_enabled",
           "relu_rule", "current_relu_rule", "RELU_RULES"]

_grad_enabled = contextvars.ContextVar("minicnn_grad_enabled", default=True)
_relu_rule = contextvars.ContextVar("minicnn_relu_rule", default="standard")


# ----------------------------------------------------------------- ReLU rules
# Each rule maps (g, active) -> gradient passed to the ReLU's input, where
# g = dL/d(output) and active = the forward mask (x > 0 for ReLU,
# lo < x < hi for clamp / ReLU6). Zeiler & Fergus 2014; Springenberg et al. 2015.

def _standard(g, active):
    """Standard backprop: g * (x > 0) — the true derivative."""
    # BEGIN SOLUTION
    return g * active
    # END SOLUTION


def _deconvnet(g, active):
    """Deconvnet (Zeiler & Fergus): g * (g > 0) — rectify the signal, ignore the forward mask."""
    # BEGIN SOLUTION
    return g * (g > 0)
    # END SOLUTION


def _guided(g, active):
    """Guided backprop (Springenberg): g * (x > 0) * (g > 0) — both masks."""
    # BEGIN SOLUTION
    return g * active * (g > 0)
    # END SOLUTION


def _redirected(g, active):
    """Redirected ReLU (Lucid, for feature visualization by gradient ascent).

    g * (x > 0) for every sample where that is not all zero; for a sample whose
    gradient would die entirely, g * ((x > 0) | (g > 0)): let through the
    signal that would raise a dead unit toward activation (ascent on the
    backpropagated scalar), so optimization from a dead start is not stuck.
    """
    xp = get_array_module(g)
    std = g * active
    axes = tuple(range(1, g.ndim))
    dead = ~(std != 0).any(axis=axes, keepdims=True) if g.ndim > 1 else ~(std != 0).any()
    return xp.where(dead, g * (active | (g > 0)), std)


RELU_RULES = {"standard": _standard, "deconvnet": _deconvnet,
              "guided": _guided, "redirected": _redirected}


def _check_rule(name):
    if name not in RELU_RULES:
        raise ValueError(f"unknown relu_rule {name!r}; valid rules: {sorted(RELU_RULES)}")
    return name


def current_relu_rule():
    """The function implementing the ReLU backward rule of the running backward pass."""
    return RELU_RULES[_relu_rule.get()]


@contextlib.contextmanager
def relu_rule(name):
    """``with relu_rule("guided"): score.backward()`` — the rule for backward passes in the block."""
    token = _relu_rule.set(_check_rule(name))
    try:
        yield
    finally:
        _relu_rule.reset(token)


@contextlib.contextmanager
def no_grad():
    """Inside the block no graph is recorded (inference, optimizer steps)."""
    token = _grad_enabled.set(False)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


@contextlib.contextmanager
def enable_grad():
    token = _grad_enabled.set(True)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


def is_grad_enabled():
    return _grad_enabled.get()


# --------------------------------------------------------------------- Tensor

class Tensor:
    """An array plus what is needed to differentiate through it.

    data          backend array (numpy.ndarray or cupy.ndarray)
    grad          array of dL/d(this), filled by backward() (leaves and retain_grad())
    requires_grad whether gradients flow to / through this tensor
    creator       the Node (Function + saved ctx + inputs) that produced it, None for leaves
    """
    __array_priority__ = 1000  # numpy_array * tensor -> Tensor.__rmul__

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            data = data.data
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, "
                            f"got dtype {data.dtype} with shape {tuple(data.shape)}")
        self.data = data
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.creator = None
        self.name = name
        self._retain = False

    # -- array-like facts
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))
    backend = property(lambda self: backend_name(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, backend={self.backend}{extra})"

    def numpy(self):
        from .backend import to_numpy
        return to_numpy(self.data)

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def retain_grad(self):
        """Keep ``.grad`` on this intermediate tensor after backward()."""
        self._retain = True
        return self

    def zero_grad(self):
        self.grad = None

    def to(self, backend):
        return Tensor(as_backend(self.data, backend), requires_grad=self.requires_grad)

    # -- backward
    def backward(self, grad=None, relu_rule=None, retain_graph=False):
        """Backpropagate from this tensor; accumulate dL/dx into ``x.grad`` of leaves.

        grad:        upstream gradient dL/d(self), required unless self is a scalar
        relu_rule:   "standard" | "deconvnet" | "guided" | "redirected", for this pass only
                     (default: the rule of an enclosing ``with relu_rule(...)``, else standard)
        retain_graph: keep saved buffers so backward can run through this graph again
        """
        if self.creator is None:
            what = ("it does not require grad" if not self.requires_grad
                    else "it was not produced by an op")
            raise RuntimeError(f"backward() called on a leaf tensor of shape {self.shape}: {what}; "
                               "call it on a result computed from tensors with requires_grad=True")
        xp = get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() on a non-scalar tensor of shape {self.shape} needs an "
                                 "explicit upstream gradient: t.backward(grad) with grad of that shape")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): upstream gradient has shape {tuple(grad.shape)}, "
                                 f"tensor has shape {self.shape}")
        token = _relu_rule.set(_check_rule(relu_rule)) if relu_rule is not None else None
        try:
            _run_backward(self, grad, retain_graph)
        finally:
            if token is not None:
                _relu_rule.reset(token)

    # -- operators (the ops live in ops/; imported lazily to keep layers pointing down)
    def __add__(self, o): return _ops().add(self, o)
    def __radd__(self, o): return _ops().add(o, self)
    def __sub__(self, o): return _ops().sub(self, o)
    def __rsub__(self, o): return _ops().sub(o, self)
    def __mul__(self, o): return _ops().mul(self, o)
    def __rmul__(self, o): return _ops().mul(o, self)
    def __truediv__(self, o): return _ops().div(self, o)
    def __rtruediv__(self, o): return _ops().div(o, self)
    def __pow__(self, p): return _ops().pow(self, p)
    def __neg__(self): return _ops().mul(self, -1.0)
    def __matmul__(self, o): return _ops().matmul(self, o)
    def __getitem__(self, key): return _ops().getitem(self, key)

    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def reshape(self, *shape): return _ops().reshape(self, *shape)
    def transpose(self, *axes): return _ops().transpose(self, *axes)
    def flatten(self, start_dim=1): return _ops().flatten(self, start_dim)
    def exp(self): return _ops().exp(self)
    def log(self): return _ops().log(self)
    def sqrt(self): return _ops().sqrt(self)


def _ops():
    from . import ops
    return ops


def tensor(data, requires_grad=False, dtype=None, backend=None):
    """A Tensor on the backend of ``data`` (Python data and NumPy go to the default backend).

    Integer / bool data stays integer unless ``dtype`` is given; requires_grad needs floats.
    """
    if isinstance(data, Tensor):
        data = data.data
    if not hasattr(data, "dtype") or isinstance(data, np.generic):
        data = np.asarray(data, dtype=dtype)
    if backend is None:
        backend = backend_name(data) if backend_name(data) != "numpy" else default_backend()
    data = as_backend(data, backend)
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


# ------------------------------------------------------------------- Function

class Context:
    """Per-call storage: forward puts exactly what backward needs here (ctx.x, ctx.indices).

    ``ctx.needs_input_grad``: per positional input, whether the backward will be asked for
    its gradient — all False when the call is not recorded (``no_grad``, or no input
    requires a gradient), so a forward keeps nothing then."""
    pass


class Node:
    """One recorded op call: the Function class, its ctx, its input Tensors, and its keyword
    settings (``params``: a pool's kernel_size, a clamp's bounds — what an exporter reads)."""
    __slots__ = ("fn", "ctx", "inputs", "params", "freed")

    def __init__(self, fn, ctx, inputs, params=None):
        self.fn, self.ctx, self.inputs, self.freed = fn, ctx, inputs, False
        self.params = params or {}


class Function:
    """Base class of ops. Subclasses define static ``forward(ctx, *arrays, **params)``
    and ``backward(ctx, grad_out) -> grad per positional input`` (None where no gradient).

    ``forward`` returns the output array, or a tuple ``(output, extra, ...)`` whose
    extras (e.g. pooling indices) are plain arrays returned beside the output Tensor.
    """

    @staticmethod
    def forward(ctx, *args, **params):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        needs = [isinstance(x, Tensor) and x.requires_grad for x in inputs]
        record = _grad_enabled.get() and any(needs)
        ctx = Context()
        ctx.needs_input_grad = tuple(n and record for n in needs)
        result = cls.forward(ctx, *arrays, **params)
        extras = ()
        if isinstance(result, tuple):
            result, *extras = result
        out = Tensor(result, requires_grad=record)
        if record:
            out.creator = Node(cls, ctx, tuple(inputs), params)
        return (out, *extras) if extras else out


# ------------------------------------------------------------------- backward

def _topological_order(root):
    """Nodes' output tensors, every tensor after all tensors computed from it (iterative DFS)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        for x in t.creator.inputs:
            if isinstance(x, Tensor) and x.creator is not None and id(x) not in seen:
                stack.append((x, False))
    return order[::-1]  # root first


def _accumulate(store, t, g):
    key = id(t)
    store[key] = g if key not in store else store[key] + g


def _run_backward(root, grad, retain_graph):
    grads = {id(root): grad}
    for t in _topological_order(root):
        node = t.creator
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._retain:
            t.grad = g if t.grad is None else t.grad + g
        if node.freed:
            raise RuntimeError(f"backward through {node.fn.__name__} a second time: its saved buffers "
                               "were freed after the first backward; call the first "
                               "backward(retain_graph=True) or recompute the forward")
        in_grads = node.fn.backward(node.ctx, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if len(in_grads) != len(node.inputs):
            raise RuntimeError(f"{node.fn.__name__}.backward returned {len(in_grads)} gradients "
                               f"for {len(node.inputs)} inputs")
        for x, gx in zip(node.inputs, in_grads):
            if gx is None or not isinstance(x, Tensor) or not x.requires_grad:
                continue
            if tuple(gx.shape) != x.shape:
                raise RuntimeError(f"{node.fn.__name__}.backward gave a gradient of shape "
                                   f"{tuple(gx.shape)} for an input of shape {x.shape}")
            if x.creator is None:
                x.grad = gx if x.grad is None else x.grad + gx
            else:
                _accumulate(grads, x, gx)
        if not retain_graph:
            node.ctx = None
            node.freed = True

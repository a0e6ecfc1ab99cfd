"""Numerical gradient checks — for the built-in ops and for students' own layers.

The analytic gradient of ``out = fn(*inputs)`` against an upstream gradient
``dout`` is ``backward(dout)``. Its numerical twin, for every input element
x_i, is the centred difference of the scalar L = <fn(x), dout>:

    dL/dx_i  ≈  ( L(x + h e_i) − L(x − h e_i) ) / 2h                 (error O(h²))

``check`` compares the two element by element (float64, h = 1e-5) and reports
the max relative error  |a − n| / max(|a| + |n|, 1e-3·s),  s = max(|a| + |n|):
plain relative error for every entry that matters, and error relative to the
gradient's scale for entries near zero (where rounding noise of the
difference quotient, ~1e-16·|L|/h, would otherwise dominate). Big inputs use a
random-direction check instead (Chainer's trick): for a random unit vector v,

    <∇L, v>  ≈  ( L(x + h v) − L(x − h v) ) / 2h

which costs two forward passes instead of two per element.

    report = mc.gradcheck.check(lambda x, w: mc.ops.conv2d(x, w, padding=1), [x, w])
    assert report.ok, report
"""
from dataclasses import dataclass, field

import numpy as np

from .autograd import Tensor, no_grad
from .backend import get_array_module, to_numpy

__all__ = ["check", "numerical_gradient", "GradcheckReport"]


@dataclass
class GradcheckReport:
    """Result of ``check``: per-input max relative errors and the verdict."""
    errors: dict = field(default_factory=dict)   # input index -> max relative error
    mode: str = "elementwise"
    tol: float = 1e-6

    @property
    def max_error(self):
        return max(self.errors.values(), default=0.0)

    @property
    def ok(self):
        return self.max_error < self.tol

    def __str__(self):
        rows = ", ".join(f"input {i}: {e:.2e}" for i, e in self.errors.items())
        return (f"gradcheck ({self.mode}) {'passed' if self.ok else 'FAILED'}: "
                f"max relative error {self.max_error:.2e} (tol {self.tol:.0e}); {rows}")


def _rel_error(a, n):
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    size = np.abs(a) + np.abs(n)
    floor = max(1e-3 * float(np.max(size, initial=0.0)), 1e-12)
    return float(np.max(np.abs(a - n) / np.maximum(size, floor), initial=0.0))


def _as_tensors(inputs):
    out = []
    for i, x in enumerate(inputs):
        if x is None or isinstance(x, (int, float)):
            out.append(x)
            continue
        data = x.data if isinstance(x, Tensor) else x
        if data.dtype != np.float64:
            raise TypeError(f"gradcheck input {i} has dtype {data.dtype}; use float64 "
                            "(float32 rounding swamps finite differences)")
        out.append(Tensor(data.copy(), requires_grad=True))
    return out


def _scalar_loss(fn, tensors, dout):
    with no_grad():
        out = fn(*tensors)
    out = out[0] if isinstance(out, tuple) else out
    return float(to_numpy((out.data * dout).sum()))


def numerical_gradient(fn, inputs, dout, index, h=1e-5):
    """Centred-difference d<fn(inputs), dout>/d inputs[index], element by element."""
    tensors = _as_tensors(inputs)
    x = tensors[index].data
    flat = x.reshape(-1)          # a view: writing into it perturbs x
    grad = np.zeros(x.size)
    for i in range(x.size):
        old = flat[i].item()
        flat[i] = old + h
        plus = _scalar_loss(fn, tensors, dout)
        flat[i] = old - h
        minus = _scalar_loss(fn, tensors, dout)
        flat[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(x.shape)


def check(fn, inputs, dout=None, *, h=1e-5, tol=1e-6, seed=0, max_elements=4096,
          directions=3, wrt=None):
    """Compare backward() of ``fn`` with centred differences; returns a GradcheckReport.

    fn:        callable taking Tensors (positionally, in ``inputs`` order) -> Tensor
    inputs:    float64 arrays (or Tensors); None / Python numbers are passed through
    dout:      upstream gradient for the output (default: random normal, fixed seed)
    wrt:       indices of inputs to check (default: every array input)
    An input with more than ``max_elements`` values is checked along ``directions``
    random unit directions instead of element by element.
    """
    rng = np.random.default_rng(seed)
    tensors = _as_tensors(inputs)
    out = fn(*tensors)
    out = out[0] if isinstance(out, tuple) else out
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    xp = get_array_module(out.data)
    if dout is None:
        dout = xp.asarray(rng.standard_normal(out.shape))
    if tuple(dout.shape) != out.shape:
        raise ValueError(f"gradcheck: dout has shape {tuple(dout.shape)}, output has shape {out.shape}")
    out.backward(dout)

    report = GradcheckReport(tol=tol)
    idx = [i for i, t in enumerate(tensors) if isinstance(t, Tensor)] if wrt is None else wrt
    for i in idx:
        analytic = to_numpy(tensors[i].grad) if tensors[i].grad is not None \
            else np.zeros(tensors[i].shape)
        if tensors[i].size <= max_elements:
            numeric = numerical_gradient(fn, tensors, dout, i, h)
            report.errors[i] = _rel_error(analytic, numeric)
        else:
            report.mode = "random-direction"
            report.errors[i] = _directional_error(fn, tensors, dout, i, analytic, h, rng, directions)
    return report


def _directional_error(fn, tensors, dout, i, analytic, h, rng, directions):
    x = tensors[i].data
    xp = get_array_module(x)
    worst = 0.0
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        saved = x.copy()
        x[...] = saved + xp.asarray(h * v)
        plus = _scalar_loss(fn, tensors, dout)
        x[...] = saved - xp.asarray(h * v)
        minus = _scalar_loss(fn, tensors, dout)
        x[...] = saved
        numeric = (plus - minus) / (2 * h)
        worst = max(worst, _rel_error(np.sum(analytic * v), numeric))
    return worst

"""One loop for every image-optimization technique: objectives, transforms, regularizers.

    obj = class_score(3) - 1e-3 * l2()                  # objectives compose with +, -, * scalar
    image, history = ascend(model, obj, x0, steps=200, lr=1.0,
                            transforms=[jitter(4)],          # random, differentiable, before
                            regularizers=[blur_every(0.5)])  # operators on the image, after
    image, history = ascend(model, -content_loss, x0, steps=50, optimizer="lbfgs")

Transforms and regularizers live in ``transforms.py`` (re-exported here).

Each step of ``ascend`` (Erhan et al. 2009; Simonyan et al. 2014; Yosinski et al. 2015;
Mordvintsev et al. 2015; Olah et al. 2017, whose Lucid library this API follows):

    1. t = T_k(…T_1(I))            transforms: jitter, scale, pad, blur — built from ops,
                                   so backward undoes them (a rolled image's gradient is
                                   rolled back)
    2. f = objective(model(t), I)   the scalar to MAXIMIZE (a loss L is maximized as −L)
    3. g = ∂f/∂I                    one backward pass (optionally with relu_rule="redirected")
    4. I ← I + update(g)            "sgd": lr·g · "normalized": lr·g / mean|g| (DeepDream)
                                   · "l2": lr·g / ‖g‖₂ · "adam"
    5. I ← r_k(…r_1(I))             regularizers: decay, periodic blur, clipping (Yosinski)
    6. I ← clip(I, lo, hi)          valid pixels: the preprocessed images of 0 and 255

``optimizer="lbfgs"`` hands the same objective and gradient, flattened to float64, to
``scipy.optimize.minimize(method="L-BFGS-B")``, with the pixel range as box bounds.
A NaN or inf in the objective, the gradient or the image stops either path with an
error naming the step. ``history`` maps each named term of the objective (and
"objective", the total) to its value per step, history[k][0] at the initial image.
"""
import contextlib

import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import as_backend, backend_name, get_array_module, like, to_numpy
from ..nn.capture import Activations, capture
from ..nn.optim import Adam
from .common import frozen
from .common import (as_input, check_layer, check_target, model_backend, model_dtype,
                     unit_score)
from .transforms import (blur, blur_every, clip_contribution, clip_norm, decay,  # noqa: F401
                         colour_correlated, gaussian_blur, jitter, pad, resize, resize_to,
                         roll, scale, spectral)

__all__ = ["Objective", "INPUT", "OUTPUT", "class_score", "neuron", "energy", "l2", "tv",
           "feature_distance", "gram_distance", "roll", "jitter", "pad", "scale", "resize_to",
           "blur", "resize", "gaussian_blur", "decay", "blur_every", "clip_norm",
           "clip_contribution", "spectral", "colour_correlated", "pixel_bounds", "clip_to_bounds",
           "ascend", "OPTIMIZERS"]

INPUT, OUTPUT = "input", "output"   # objective keys: the image I itself, the model's output
OPTIMIZERS = ("sgd", "normalized", "l2", "adam", "lbfgs")


# ================================================================ objectives
class Objective:
    """A scalar to maximize, read from ``acts``: acts["input"] is the image I (before the
    transforms), acts["output"] the model's output, acts[name] a layer's output.

    It is a weighted sum of named terms (coef, fn, layers, name); ``a + b``, ``a - b``,
    ``s * a`` and ``-a`` combine them, and the loop records each term under its name.
    """

    def __init__(self, fn, layers=(), name="objective"):
        self.terms = [(1.0, fn, tuple(layers), name)]

    @classmethod
    def _of(cls, terms):
        obj = cls.__new__(cls)
        obj.terms = terms
        return obj

    @property
    def layers(self):
        return list(dict.fromkeys(n for _, _, layers, _ in self.terms for n in layers))

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:     # lets sum([...]) work
            return self
        if not isinstance(other, Objective):
            raise TypeError(f"an Objective can only be added to an Objective, got {other!r}")
        return Objective._of(self.terms + other.terms)

    __radd__ = __add__

    def __mul__(self, s):
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise TypeError(f"an Objective can only be scaled by a number, got {s!r}")
        return Objective._of([(c * float(s), f, ly, n) for c, f, ly, n in self.terms])

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __call__(self, acts, record=None):
        """The total (a scalar Tensor); each term's unweighted value goes into ``record``."""
        total = None
        for coef, fn, _, name in self.terms:
            value = fn(acts)
            if record is not None:
                record[name] = record.get(name, 0.0) + float(to_numpy(value.data))
            value = value if coef == 1.0 else value * coef
            total = value if total is None else total + value
        return total

    def __repr__(self):
        return " + ".join(f"{c:g}·[{n}]" for c, _, _, n in self.terms)


def class_score(c):
    """S_c(I): the unnormalized score of class c (summed over the batch) — Simonyan et al. 2014."""
    def fn(acts):
        out = acts[OUTPUT]
        return out[:, check_target(out, c)].sum()
    return Objective(fn, [OUTPUT], f"class {c}")


def neuron(layer, channel, position=None):
    """One unit of a layer: a channel summed over its map, or (channel, i, j) at one position."""
    unit = channel if position is None else (channel, *position)
    return Objective(lambda acts: unit_score(acts[layer], unit), [layer], f"{layer} unit {unit}")


def energy(layer):
    """½‖a_l(I)‖²: its gradient with respect to a_l is a_l itself (DeepDream, Mordvintsev 2015)."""
    return Objective(lambda acts: 0.5 * (acts[layer] * acts[layer]).sum(), [layer],
                     f"energy {layer}")


def l2():
    """‖I‖² — with a negative weight, the L2 regularizer of Simonyan et al."""
    return Objective(lambda acts: (acts[INPUT] * acts[INPUT]).sum(), [INPUT], "l2")


def tv():
    """TV(I) = Σ (I[i+1, j] − I[i, j])² + (I[i, j+1] − I[i, j])² (squared total variation)."""
    return Objective(lambda acts: ops.total_variation(acts[INPUT]), [INPUT], "tv")


def feature_distance(layer, target, relative=False, name=None):
    """‖φ_l(I) − φ0‖², or ‖φ_l(I) − φ0‖² / ‖φ0‖² if ``relative`` (Mahendran & Vedaldi's code error).

    layer: a layer name, or "input" for the image itself; target: φ0, an array of its shape.
    """
    xp = get_array_module(target)
    denom = float(xp.sum(target * target)) if relative else 1.0
    if relative and denom == 0:
        raise ValueError(f"feature_distance: the target code at {layer!r} is all zeros, so the "
                         "relative error is undefined; use relative=False or another layer")

    def fn(acts):
        a = acts[layer]
        if a.shape[1:] != tuple(target.shape[1:]):
            raise ValueError(f"feature_distance at {layer!r}: activation of shape {a.shape} "
                             f"does not match the target of shape {tuple(target.shape)}")
        d = a - target
        return (d * d).sum() / denom
    return Objective(fn, [layer], name or f"distance {layer}")


def gram_distance(layer, target_gram, name=None):
    """‖G(φ_l(I)) − G_S‖² with G = F Fᵀ / (C·H·W) (Gatys et al. 2016's style loss of one layer)."""
    def fn(acts):
        d = ops.gram_matrix(acts[layer]) - target_gram
        return (d * d).sum()
    return Objective(fn, [layer], name or f"style {layer}")


# ====================================================================== loop
def pixel_bounds(model):
    """(lo, hi), each (1, C, 1, 1) on the model's backend: the preprocessed images of pixel
    values 0 and 255 (``model.preprocess``), or None for a model without one."""
    pp = getattr(model, "preprocess", None)
    if pp is None:
        return None
    c = pp.channels
    lo, hi = (as_backend(pp.preprocess(np.full((1, 1, c), v), dtype=model_dtype(model)),
                         model_backend(model)) for v in (0.0, 255.0))
    return lo, hi


def _resolve_bounds(model, bounds, x):
    if isinstance(bounds, str):
        if bounds != "pixels":
            raise ValueError(f"bounds must be 'pixels', None or (lo, hi), got {bounds!r}")
        return pixel_bounds(model)
    if bounds is None:
        return None
    xp = get_array_module(x)
    lo, hi = (like(xp.asarray(b, dtype=x.dtype) if not hasattr(b, "shape") else b, x)
              for b in bounds)
    return lo, hi


def clip_to_bounds(model, x, bounds="pixels"):
    """x clipped to ``bounds`` ("pixels": the model's valid range, None, or (lo, hi))."""
    box = _resolve_bounds(model, bounds, x)
    if box is None:
        return x
    xp = get_array_module(x)
    lo, hi = (like(b, x) for b in box)
    return xp.minimum(xp.maximum(x, lo), hi)


def _value_and_grad(model, objective, x, transforms, rng, relu_rule):
    """f(I), ∂f/∂I (array), the model output (array or None) and the terms' values."""
    img = Tensor(x, requires_grad=True)
    t = img
    for transform in transforms:
        t = transform(t, rng)
    layers = [n for n in objective.layers if n not in (INPUT, OUTPUT)]
    acts, out = Activations(), None
    if OUTPUT in objective.layers or layers:
        with (capture(model, layers, stop=OUTPUT not in objective.layers) if layers
              else contextlib.nullcontext({})) as got:
            out = model(t)
        acts.update(got)
        if out is not None:
            acts[OUTPUT] = out
    acts[INPUT] = img
    record = {}
    value = objective(acts, record)
    if value.requires_grad:
        value.backward(relu_rule=relu_rule)
    g = img.grad if img.grad is not None else get_array_module(x).zeros_like(x)
    return float(to_numpy(value.data)), g, (out.data if out is not None else None), record


def _check_finite(where, value, g, x):
    xp = get_array_module(x)
    for what, a in (("objective", value), ("gradient", g), ("image", x)):
        if a is not None and not bool(xp.isfinite(a).all() if hasattr(a, "shape")
                                      else np.isfinite(a)):
            raise FloatingPointError(f"{where}: the {what} is not finite (NaN or inf); lower the "
                                     "learning rate or check the input image")


def _update(x, g, optimizer, lr, adam):
    xp = get_array_module(x)
    axes = tuple(range(1, x.ndim))
    if optimizer == "sgd":
        return x + lr * g
    if optimizer == "normalized":                   # DeepDream: step / mean|g|, per image
        return x + lr * g / (xp.abs(g).mean(axis=axes, keepdims=True) + 1e-12)
    if optimizer == "l2":                           # fooling images: step / ‖g‖₂, per image
        return x + lr * g / (xp.sqrt((g * g).sum(axis=axes, keepdims=True)) + 1e-12)
    adam.params[0].data, adam.params[0].grad = x.copy(), -g     # Adam minimizes: descend on −f
    adam.step()
    return adam.params[0].data


def _check_args(objective, steps, lr, optimizer, transforms, regularizers, precondition=None):
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (class_score(3) - 1e-3 * l2(), ...), "
                        f"got {type(objective).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if optimizer != "lbfgs" and not bool(np.all(to_numpy(lr) > 0)):
        raise ValueError(f"lr must be > 0, got {lr}")
    if optimizer == "lbfgs" and (transforms or regularizers or precondition):
        raise ValueError("optimizer='lbfgs' needs one fixed objective: random transforms and "
                         "regularizer operators are for the gradient-ascent optimizers")


def ascend(model, objective, x0, steps=100, lr=1.0, *, optimizer="sgd", transforms=(),
           regularizers=(), precondition=None, bounds="pixels", relu_rule=None, seed=0,
           stop_when=None, lbfgs_memory=10, progress=False, desc="ascend"):
    """Maximize ``objective`` over the image, starting from ``x0`` (N, C, H, W) preprocessed.

    optimizer: "sgd" I += lr·g; "normalized" I += lr·g/mean|g|; "l2" I += lr·g/‖g‖₂;
        "adam" (lr is Adam's step); "lbfgs" (scipy L-BFGS-B, ``steps`` iterations, lr unused,
        remembering the last ``lbfgs_memory`` steps and gradients for its curvature model).
        For sgd/normalized/l2, ``lr`` may be an array broadcasting to (1, C, 1, 1).
    transforms: list of t(x, rng) -> Tensor, applied in order before the model.
    regularizers: list of r(x, g, step) -> array, applied in order after each update.
    precondition: p(g) -> g applied to the gradient before the update (e.g. ``spectral()``).
    bounds: "pixels" (the model's valid range, see ``pixel_bounds``; none without a
        ``preprocess``), None, or (lo, hi) broadcasting to x.
    relu_rule: backward rule for every ReLU ("redirected" revives dead units).
    seed: for the transforms' randomness. stop_when(step, image, output) -> bool is asked
        after each forward (output: the model's output array, None if not computed); True
        stops before the update, returning that image.
    Returns (image: NumPy (N, C, H, W), history: {term name: [value per step]}).
    """
    _check_args(objective, steps, lr, optimizer, transforms, regularizers, precondition)
    if isinstance(lbfgs_memory, bool) or not isinstance(lbfgs_memory, (int, np.integer)) \
            or lbfgs_memory < 1:
        raise ValueError(f"lbfgs_memory must be a positive int, got {lbfgs_memory!r}")
    for layer in objective.layers:
        if layer not in (INPUT, OUTPUT):
            check_layer(model, layer)
    x = as_input(model, x0, who="ascend: the start image x0").data
    _check_finite("ascend: the start image x0", None, None, x)
    box = _resolve_bounds(model, bounds, x)
    if box is not None:
        xp = get_array_module(x)
        x = xp.minimum(xp.maximum(x, box[0]), box[1])
    rng = np.random.default_rng(seed)
    history = {}
    from tqdm.auto import tqdm
    bar = tqdm(total=steps, disable=not progress, desc=desc, leave=False)
    try:
        with frozen(model, eval_mode=True):
            if optimizer == "lbfgs":
                x = _lbfgs(model, objective, x, steps=steps, box=box, relu_rule=relu_rule,
                           history=history, bar=bar, stop_when=stop_when, memory=lbfgs_memory)
            else:
                x = _ascent(model, objective, x, steps=steps, lr=lr, optimizer=optimizer,
                            transforms=transforms, regularizers=regularizers,
                            precondition=precondition, box=box,
                            relu_rule=relu_rule, rng=rng, history=history, bar=bar,
                            stop_when=stop_when)
    finally:
        bar.close()
    return to_numpy(x), history


def _record(history, value, terms):
    history.setdefault("objective", []).append(value)
    for name, v in terms.items():
        history.setdefault(name, []).append(v)


def _ascent(model, objective, x, *, steps, lr, optimizer, transforms, regularizers,
            precondition, box, relu_rule, rng, history, bar, stop_when):
    xp = get_array_module(x)
    if not np.isscalar(lr):
        lr = like(xp.asarray(lr, dtype=x.dtype) if not hasattr(lr, "shape") else lr, x)
    adam = Adam([Tensor(x.copy(), requires_grad=True)], lr=lr) if optimizer == "adam" else None
    for step in range(steps):
        value, g, out, terms = _value_and_grad(model, objective, x, transforms, rng, relu_rule)
        _check_finite(f"ascend: step {step}", value, g, x)
        _record(history, value, terms)
        if stop_when is not None and stop_when(step, x, out):
            break
        if precondition is not None:
            g = precondition(g)
        x = _update(x, g, optimizer, lr, adam)
        for regularize in regularizers:
            x = regularize(x, g, step)
        if box is not None:
            x = xp.minimum(xp.maximum(x, box[0]), box[1])
        _check_finite(f"ascend: step {step} (after the update)", None, None, x)
        bar.update(1)
        bar.set_postfix(objective=f"{value:.4g}", refresh=False)
    return x


def _lbfgs(model, objective, x, *, steps, box, relu_rule, history, bar, stop_when, memory):
    """minimize −f(I) with scipy's L-BFGS-B; the image is flattened to float64 and back."""
    from scipy.optimize import Bounds, minimize
    shape, dtype, backend = x.shape, x.dtype, backend_name(x)
    count, last = {"eval": 0, "iter": 0}, {}

    class _Stop(Exception):
        pass

    def fun(z):
        xb = as_backend(z.reshape(shape).astype(dtype), backend)
        value, g, out, terms = _value_and_grad(model, objective, xb, (), None, relu_rule)
        _check_finite(f"ascend (lbfgs): iteration {count['iter']} (function evaluation "
                      f"{count['eval']})", value, g, xb)
        if count["eval"] == 0:
            _record(history, value, terms)
        count["eval"] += 1
        last.update(value=value, terms=terms, x=z.copy(), out=out)
        return -value, -to_numpy(g).astype(np.float64).ravel()

    def callback(*_):
        count["iter"] += 1
        _record(history, last["value"], last["terms"])
        bar.update(1)
        bar.set_postfix(objective=f"{last['value']:.4g}", refresh=False)
        image = last["x"].reshape(shape)
        if stop_when is not None and stop_when(count["iter"], image, last["out"]):
            raise _Stop

    limits = None
    if box is not None:
        lo, hi = (np.broadcast_to(to_numpy(b).astype(np.float64), shape).ravel() for b in box)
        limits = Bounds(lo, hi)
    z0 = to_numpy(x).astype(np.float64).ravel()
    try:
        res = minimize(fun, z0, jac=True, method="L-BFGS-B", bounds=limits, callback=callback,
                       options=dict(maxiter=steps, maxfun=4 * steps + 20, ftol=1e-12, gtol=1e-12,
                                    maxcor=memory))
        z = res.x
    except _Stop:
        z = last["x"]
    return as_backend(z.reshape(shape).astype(dtype), backend)

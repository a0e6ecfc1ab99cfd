"""What the gradient says about the image: saliency, SmoothGrad, integrated gradients,
neuron gradients, guided backprop.

Each is one backward pass (or an average of several) from a chosen score to the image;
they differ only in *what* is differentiated, *where* and in the ReLU rule of the pass:

    saliency            S(x) = max_c |∂y_k / ∂x_c|     standard rule    Simonyan et al. 2014
    smoothgrad          mean over n noisy copies x + ε of ∂y_k/∂x         Smilkov et al. 2017
    integrated_gradients (x − x')·mean over the path x' → x of ∂y_k/∂x  Sundararajan et al. 2017
    adaptive_integrated_gradients  the same integral, steps placed where the score rises
    neuron_gradient     ∂a_u / ∂x  for one unit u of a layer                 (same pass)
    guided_backprop     g·(x > 0)·(g > 0) at every ReLU                 Springenberg et al. 2015
    deconvnet           g·(g > 0) at every ReLU (forward mask ignored)  Zeiler & Fergus 2014
                        (in deconvnet.py, beside its explicit construction)

The rule reaches *every* ReLU of the graph — module or functional, feature
extractor or classifier — because it is a parameter of the backward pass
(``score.backward(relu_rule="guided")``), not a hook on some layers.

    g = input_gradient(model, x, target=281)                  # signed: "what to change"
    s = saliency(model, x, target=281)                        # (H, W)
    sg = smoothgrad(model, x, 281, n_samples=25, seed=0)      # signed, shape of x
    ig = integrated_gradients(model, x, 281, steps=32)        # sums to y(x) − y(baseline)
    gb = guided_backprop(model, x, layer="features.7", unit=(3, 5, 5))

A target is a class index (one for all images, or one per image) or a function
``logits -> per-image scores`` (e.g. a summed probability over several classes).
Maps come back as NumPy arrays, without the batch axis when one (C, H, W) image
was given.
"""

import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module, like, to_numpy
from ..nn import capture
from .common import as_input, check_layer, check_target, frozen, unit_gradient

__all__ = ["input_gradient", "saliency", "smoothgrad", "integrated_gradients",
           "adaptive_integrated_gradients", "neuron_gradient",
           "guided_backprop", "class_gradient", "backward_from_target", "unit_signal",
           "image_batch"]


# ------------------------------------------------------------------ shared steps

def _channels(model):
    """Input channels the model expects (its preprocessing, else its first conv), or None."""
    pre = getattr(model, "preprocess", None)
    if pre is not None and hasattr(pre, "channels"):
        return pre.channels
    for _, m in model.named_modules():
        if hasattr(m, "in_channels"):
            return m.in_channels
    return None


def image_batch(model, x, requires_grad=False):
    """(Tensor (N, C, H, W) on the model's backend and dtype, single) where ``single`` says a
    (C, H, W) image was given (results then drop the batch axis). Wrong shapes are clear errors."""
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    return as_input(model, x, requires_grad, channels=_channels(model)), len(shape) == 3


def class_gradient(logits, target):
    """Upstream gradient for ``logits`` (N, K): 1 at [n, target_n], 0 elsewhere.
    target: one class index for every image, or a sequence of N indices."""
    if len(logits.shape) != 2:
        raise ValueError(f"a class target needs model outputs of shape (N, classes), got "
                         f"{logits.shape}; give a layer and unit instead")
    n = logits.shape[0]
    targets = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target] * n
    if len(targets) != n:
        raise ValueError(f"target: {len(targets)} class indices for a batch of {n} images")
    g = get_array_module(logits.data).zeros(logits.shape, dtype=logits.dtype)
    g[list(range(n)), [check_target(logits, t) for t in targets]] = 1
    return g


def backward_from_target(logits, target, relu_rule="standard"):
    """Backpropagate the score of ``target`` (class index(es) or fn(logits) -> scores)."""
    if callable(target):
        score = target(logits)
        if not isinstance(score, Tensor):
            raise TypeError(f"target function must return a Tensor of scores, got "
                            f"{type(score).__name__}")
        (score if score.size == 1 else score.sum()).backward(relu_rule=relu_rule)
    else:
        logits.backward(class_gradient(logits, target), relu_rule=relu_rule)


def unit_signal(act, unit=None, signal="one"):
    """The upstream gradient placed on a layer's output ``act`` to explain one of its units.

    signal "one":        1 at the unit (channel c: its whole map; (c, i, j): one position) —
                         the backward pass then computes ∂(Σ unit) / ∂x;
    signal "activation": the unit's own activation there, every other activation zero —
                         Zeiler & Fergus' choice for projecting a feature down to pixels;
    an array of act's shape: used as given (``unit`` must then be None).
    """
    if not isinstance(signal, str):
        s = signal.data if isinstance(signal, Tensor) else signal
        if unit is not None or tuple(s.shape) != act.shape:
            raise ValueError(f"an explicit signal must have the layer's output shape {act.shape} "
                             f"(got {tuple(np.shape(s))}) and comes without a unit")
        return like(s, act.data).astype(act.dtype, copy=False)
    if signal not in ("one", "activation"):
        raise ValueError(f"signal must be 'one', 'activation' or an array, got {signal!r}")
    if unit is None:
        raise ValueError("give the unit to explain: a channel c or a position (c, i, j)")
    g = unit_gradient(act, _check_unit(act, unit))
    return g if signal == "one" else g * act.data


def _check_unit(act, unit):
    c = unit if isinstance(unit, (int, np.integer)) else unit[0]
    if not 0 <= int(c) < act.shape[1]:
        raise ValueError(f"unit channel {c} is out of range for a layer output of shape "
                         f"{act.shape} ({act.shape[1]} channels)")
    if not isinstance(unit, (int, np.integer)):
        if len(unit) != 3 or len(act.shape) != 4:
            raise ValueError(f"unit {unit!r}: give a channel c or (c, i, j) for a 4-D output, "
                             f"the layer output has shape {act.shape}")
        if not (0 <= unit[1] < act.shape[2] and 0 <= unit[2] < act.shape[3]):
            raise ValueError(f"unit position {tuple(unit[1:])} is outside the layer's "
                             f"{act.shape[2]}×{act.shape[3]} map")
    return unit


def _squeeze(a, single):
    a = to_numpy(a)
    return a[0] if single else a


# -------------------------------------------------------------------- techniques

def input_gradient(model, x, target=None, layer=None, unit=None, signal="one",
                   relu_rule="standard"):
    """∂(score)/∂x, same shape as x: the one backward pass behind every map in this module.

    Either ``target`` (class index(es) or fn(logits) -> scores: differentiates the
    unnormalized class score y_k, before softmax), or ``layer`` with ``unit`` / ``signal``
    (see ``unit_signal``): the gradient of one neuron, every other unit of that layer 0.
    ``relu_rule``: "standard" | "guided" | "deconvnet" | "redirected", for this pass only.
    """
    if (target is None) == (layer is None):
        raise ValueError("give either target (a class) or layer (with unit or signal), not both")
    # BEGIN SOLUTION
    with frozen(model, eval_mode=False):
        xt, single = image_batch(model, x, requires_grad=True)
        if layer is None:
            backward_from_target(model(xt), target, relu_rule)
        else:
            with capture(model, [check_layer(model, layer)], stop=True) as acts:
                model(xt)
            act = acts[layer]
            act.backward(unit_signal(act, unit, signal), relu_rule=relu_rule)
    return _squeeze(xt.grad, single)
    # END SOLUTION


def saliency(model, x, target, reduce="max"):
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014):

        w = ∂y_k / ∂x   (unnormalized class score, standard backprop)
        S[i, j] = max_c |w[c, i, j]|      (reduce="max"; "sum": Σ_c |w[c, i, j]|)

    Returns (H, W), or (N, H, W) for a batch. ``input_gradient`` gives the signed w.
    """
    if reduce not in ("max", "sum"):
        raise ValueError(f"reduce must be 'max' or 'sum', got {reduce!r}")
    # BEGIN SOLUTION
    w = np.abs(input_gradient(model, x, target))
    return w.max(axis=-3) if reduce == "max" else w.sum(axis=-3)
    # END SOLUTION


def _one_image(model, x, what):
    """x (C, H, W) or (1, C, H, W) as a backend array (1, C, H, W) of the model's dtype."""
    xt, single = image_batch(model, x)
    if xt.shape[0] != 1:
        raise ValueError(f"{what} explains one image at a time; got a batch of shape {xt.shape}")
    return xt.data, single


def _check_count(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")


def _mean_gradient(model, inputs, target, batch_size, each=None):
    """(1 / n) Σ_k each(∂y/∂x) at the n images ``inputs`` (n, C, H, W), batch_size at a
    time: NumPy (C, H, W). ``each``: applied to every gradient before the mean (None: as is)."""
    total = 0
    for start in range(0, len(inputs), batch_size):
        g = input_gradient(model, inputs[start:start + batch_size], target)
        total = total + (g if each is None else each(g)).sum(axis=0)
    return total / len(inputs)


SMOOTHGRAD_KINDS = {"gradient": None, "magnitude": np.abs, "square": np.square}


def smoothgrad(model, x, target, n_samples=25, noise_level=0.15, batch_size=8, seed=0,
               kind="gradient"):
    """SmoothGrad (Smilkov, Thorat, Kim, Viégas & Wattenberg 2017): the gradient averaged over
    noisy copies of the image, which cancels the speckle of a single gradient:

        M(x) = (1 / n) Σ_{k=1..n} ∂y_c/∂x (x + ε_k),   ε_k ~ N(0, σ²),
        σ = noise_level · (max x − min x)                (the paper's 10–20% works best)

    kind: "gradient" (the formula above, signed), "magnitude" (the mean of |∂y_c/∂x|: on
    deep nets whose single gradient is sign-flipping speckle, the signed mean needs many
    samples to settle, the magnitudes few) or "square" (the mean of (∂y_c/∂x)²,
    SmoothGrad-Squared, Hooker et al. 2019).
    x: one image (C, H, W) or (1, C, H, W); target as for ``input_gradient``. The noise
    comes from ``np.random.default_rng(seed)`` (a seed or a Generator), the copies are
    evaluated ``batch_size`` at a time. Returns a map of x's shape; show it like
    saliency, ``np.abs(m).max(axis=-3)``.
    """
    if kind not in SMOOTHGRAD_KINDS:
        raise ValueError(f"kind must be one of {tuple(SMOOTHGRAD_KINDS)}, got {kind!r}")
    _check_count("n_samples", n_samples)
    _check_count("batch_size", batch_size)
    img, single = _one_image(model, x, "smoothgrad")
    sigma = noise_level * float(img.max() - img.min())
    noise = np.random.default_rng(seed).normal(0.0, sigma, (n_samples,) + img.shape[1:])
    noisy = img + like(noise, img).astype(img.dtype)   # (n, C, H, W)
    m = _mean_gradient(model, noisy, target, batch_size, SMOOTHGRAD_KINDS[kind])  # (C, H, W)
    return m if single else m[None]


def integrated_gradients(model, x, target, baseline=None, steps=32, batch_size=8):
    """Integrated gradients (Sundararajan, Taly & Yan 2017), by the midpoint rule:

        IG(x) = (x − x') ⊙ (1 / m) Σ_{k=1..m} ∂y_c/∂x (x' + (k − ½)/m · (x − x'))

    the gradient averaged along the straight path from the baseline x' to x, times the
    step x − x'. Completeness: Σ IG(x) = y_c(x) − y_c(x') up to the sum's error, which
    shrinks as ``steps`` grows (a test holds it within 1%).

    baseline: None (zeros in input space: for mean-subtracted inputs, the mean colour),
    a number, or an image of x's shape. The m path points are evaluated ``batch_size``
    at a time. Returns the signed attribution, shape of x.
    """
    _check_count("steps", steps)
    _check_count("batch_size", batch_size)
    img, single = _one_image(model, x, "integrated_gradients")
    xp = get_array_module(img)
    if baseline is None or isinstance(baseline, (int, float)):
        base = xp.full(img.shape, 0.0 if baseline is None else baseline, dtype=img.dtype)
    else:
        base, _ = _one_image(model, baseline, "integrated_gradients baseline")
        if base.shape != img.shape:
            raise ValueError(f"baseline of shape {base.shape} must match the image {img.shape}")
    alphas = (xp.arange(steps, dtype=img.dtype) + 0.5) / steps                 # (k − ½) / m
    path = base + alphas[:, None, None, None] * (img - base)                   # (m, C, H, W)
    ig = to_numpy(img - base)[0] * _mean_gradient(model, path, target, batch_size)
    return ig if single else ig[None]


def _scores_and_gradients(model, points, target):
    """(y_c (n,), ∂y_c/∂x (n, C, H, W)) at the images ``points``, from one forward and one
    backward pass: the path points of ``adaptive_integrated_gradients``."""
    with frozen(model, eval_mode=False):
        xt, _ = image_batch(model, points, requires_grad=True)
        logits = model(xt)
        y = to_numpy(logits.data)[:, check_target(logits, target)].astype(np.float64)
        backward_from_target(logits, target)
    return y, to_numpy(xt.grad)


def adaptive_integrated_gradients(model, x, target, baseline=None, steps=32, batch_size=8,
                                  start=8, rtol=0.005):
    """Integrated gradients with the steps placed where they are needed (the integral of
    ``integrated_gradients``, by the trapezoid rule on a refined grid of the path):

        IG(x) = (x − x') ⊙ Σ_k (α_{k+1} − α_k) · ½ (g_k + g_{k+1}),
        g_k = ∂y_c/∂x at x' + α_k (x − x')

    On a deep net the score often rises within the first few percent of the straight path
    (a grey or black image is no class; a faint copy of the photo already is), and evenly
    spaced steps miss that rise: Σ IG then misses y_c(x) − y_c(x') by 10–60%. Every
    pass that gives a gradient g_k also gives the score y_k, and completeness holds for each
    interval separately: its trapezoid ½ (s_k + s_{k+1}) (α_{k+1} − α_k), s_k = ⟨g_k, x − x'⟩,
    should equal the score's rise y_{k+1} − y_k. So: start from ``start`` even intervals,
    then halve the intervals whose trapezoid misses their rise most, ``batch_size`` at a time,
    until ``steps`` points are spent or the misses sum to less than ``rtol``·|y(x) − y(x')|.

    target: one class index. baseline as for ``integrated_gradients``. Returns (IG of x's
    shape, the completeness gap |Σ IG − (y_c(x) − y_c(x'))| / |y_c(x) − y_c(x')|).
    """
    _check_count("steps", steps)
    _check_count("batch_size", batch_size)
    _check_count("start", start)
    if callable(target) or isinstance(target, (list, tuple, np.ndarray)):
        raise ValueError("adaptive_integrated_gradients explains one class index; give an int")
    if steps < start + 1:
        raise ValueError(f"steps ({steps}) must be more than start ({start}): the first grid "
                         f"alone has start + 1 points")
    img, single = _one_image(model, x, "adaptive_integrated_gradients")
    if baseline is None or isinstance(baseline, (int, float)):
        base = np.full(img.shape, 0.0 if baseline is None else baseline)
    else:
        base, _ = _one_image(model, baseline, "adaptive_integrated_gradients baseline")
        if base.shape != img.shape:
            raise ValueError(f"baseline of shape {base.shape} must match the image {img.shape}")
    img_np = to_numpy(img)
    base = to_numpy(base).astype(img_np.dtype)
    d = (img_np - base)[0]                                                  # x − x'
    points = {}                                                             # α -> (y, g)

    def evaluate(alphas):
        for i in range(0, len(alphas), batch_size):
            a = np.asarray(alphas[i:i + batch_size], dtype=img_np.dtype)
            path = like(base + a[:, None, None, None] * d, img)              # (n, C, H, W)
            y, g = _scores_and_gradients(model, path, target)
            points.update((float(ak), (yk, gk)) for ak, yk, gk in zip(a, y, g))

    evaluate(list(np.linspace(0.0, 1.0, start + 1)))
    while True:
        alphas = sorted(points)
        y = np.array([points[a][0] for a in alphas])
        s = np.array([float((points[a][1].astype(np.float64) * d).sum()) for a in alphas])
        rise = np.diff(alphas) * (s[:-1] + s[1:]) / 2          # trapezoid of each interval
        miss = np.abs(rise - np.diff(y))
        total = abs(y[-1] - y[0])
        room = steps - len(alphas)
        if room <= 0 or miss.sum() <= rtol * total:
            break
        worst = np.argsort(-miss, kind="stable")[:min(room, batch_size)]
        evaluate([(alphas[k] + alphas[k + 1]) / 2 for k in worst])
        if len(points) == len(alphas):              # intervals below float precision: done
            break
    widths = np.diff(alphas)
    mean_g = sum(w * (points[a][1] + points[b][1]) / 2
                 for w, a, b in zip(widths, alphas[:-1], alphas[1:]))
    ig = d * mean_g
    gap = abs(float(ig.astype(np.float64).sum()) - (y[-1] - y[0])) / max(total, 1e-12)
    return (ig if single else ig[None]), gap


def neuron_gradient(model, x, layer, unit, relu_rule="standard"):
    """∂a_u / ∂x for unit u of ``layer``: a channel c (Σ over its map) or a position (c, i, j).
    The layer's upstream gradient is 1 at that unit and 0 elsewhere."""
    return input_gradient(model, x, layer=layer, unit=unit, relu_rule=relu_rule)


def guided_backprop(model, x, target=None, layer=None, unit=None, signal="one"):
    """Guided backpropagation (Springenberg et al. 2015, "Striving for simplicity"):

        at every ReLU:  R_in = R_out · (x > 0) · (R_out > 0)

    the forward mask of backprop *and* the rectified signal of the deconvnet, so only
    positive evidence flows back. For a class (``target``) or a unit (``layer``, ``unit``).
    Returns the signed map, shape of x.
    """
    # BEGIN SOLUTION
    return input_gradient(model, x, target, layer, unit, signal, relu_rule="guided")
    # END SOLUTION

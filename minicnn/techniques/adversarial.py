"""Adversarial examples: the linear 10-D example, FGSM, BIM/PGD (L∞ and L2), fooling images,
template mixing.

    linear_example()                                  # score −3 → 2, P 0.0474 → 0.8808
    x_adv = fgsm(model, x, label, eps=8/255)          # untargeted, one step
    x_adv = pgd(model, x, label, eps=0.1, steps=10)   # L∞ PGD with a random start (Madry)
    x_adv = pgd(model, x, None, eps=0.1, target=3)    # targeted: toward class 3
    eps, x_adv = smallest_eps(model, x, label, fgsm)  # the least ε that flips each label
    res = fooling_image(model, x, target=3)           # smallest-effort walk until fooled

Units. Every attack runs on the model's *preprocessed* input x = (p·scale − mean)/std
(p: 0–255 pixels, ``model.preprocess``), but ε is given in [0, 1] *pixel* units (ε = 8/255
means eight grey levels). One such unit is s_c = 255·scale/std_c preprocessed units in
channel c (``pixel_scale``): the L∞ ball is |x − x0| ≤ ε·s_c, L2 distances are ‖(x − x0)/s‖₂,
and valid images lie between the preprocessed images of 0 and 255 (``optimize.pixel_bounds``).
A model without ``preprocess`` uses s = 1 and no pixel bounds.

Papers: Szegedy et al. 2014 (adversarial examples exist); Goodfellow, Shlens & Szegedy 2015
(the linear explanation, FGSM); Nguyen, Yosinski & Clune 2015 (fooling images from noise);
Kurakin, Goodfellow & Bengio 2017 (BIM); Madry et al. 2018 (PGD with random start).
"""
import numpy as np

from .. import ops
from ..autograd import Tensor
from .. import backend
from ..backend import get_array_module, to_numpy
from .class_vis import ascend_class
from .common import as_input, check_target
from .common import frozen
from .optimize import clip_to_bounds

__all__ = ["linear_example", "required_eps", "pixel_scale", "loss_gradient", "fgsm", "pgd",
           "bim", "smallest_eps", "smallest_grey_levels", "fooling_image", "fooling_from_noise",
           "mixing_alpha", "mix_templates", "distortion"]

LINEAR_X = (2, -1, 3, -2, 2, 2, 1, -4, 5, 1)
LINEAR_W = (-1, -1, 1, -1, 1, -1, 1, 1, -1, 1)


# ============================================================ the linear view
def _sigmoid(s):
    return 1.0 / (1.0 + np.exp(-s))


def linear_example(eps=0.5, x=LINEAR_X, w=LINEAR_W):
    """Logistic regression P(class 1 | x) = σ(w·x), nudged by x' = x + ε·sign(w).

    The score moves by ε·Σ|w_i| = ε·‖w‖₁: each coordinate by only ε, all in the direction
    that helps. With the 10-D example (Goodfellow et al.'s argument, CS231n's numbers):
    w·x = −3, P = σ(−3) = 0.0474  →  w·x' = −3 + 0.5·10 = 2, P = σ(2) = 0.8808.
    Returns a dict: x, w, x_adv, score, prob, adv_score, adv_prob.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    x_adv = x + eps * np.sign(w)
    score, adv_score = float(w @ x), float(w @ x_adv)
    return dict(x=x, w=w, x_adv=x_adv, score=score, prob=float(_sigmoid(score)),
                adv_score=adv_score, adv_prob=float(_sigmoid(adv_score)))


def required_eps(dims, score_change=5.0, seed=0):
    """The per-coordinate nudge ε that moves a linear score by ``score_change`` in d dimensions.

    For w with i.i.d. N(0, 1) entries, x' = x + ε·sign(w) moves w·x by ε·‖w‖₁ ≈ ε·d·√(2/π),
    so ε = Δ / ‖w‖₁ falls like 1/d: in a 224×224×3 image an invisible ε suffices.
    Returns a dict: dims, l1 (‖w‖₁ per d), eps (Δ/‖w‖₁), moved (the score change measured
    by applying that ε to a random x — equal to Δ).
    """
    rng = np.random.default_rng(seed)
    dims = [int(d) for d in np.atleast_1d(dims)]
    if min(dims) < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    l1, eps, moved = [], [], []
    for d in dims:
        w, x = rng.standard_normal(d), rng.standard_normal(d)
        e = score_change / np.abs(w).sum()
        l1.append(np.abs(w).sum())
        eps.append(e)
        moved.append(w @ (x + e * np.sign(w)) - w @ x)
    return dict(dims=np.array(dims), l1=np.array(l1), eps=np.array(eps), moved=np.array(moved))


# ============================================================ shared pieces
def pixel_scale(model, like=None):
    """s (1, C, 1, 1): preprocessed units per [0, 1] pixel unit, s_c = 255·scale/std_c.
    On ``like``'s backend and dtype if given, else NumPy float64. 1 without a preprocess."""
    pp = getattr(model, "preprocess", None)
    s = np.ones(1) if pp is None else 255.0 * pp.scale / np.asarray(pp.std, np.float64)
    s = s.reshape(1, -1, 1, 1)
    return s if like is None else backend.like(s.astype(like.dtype), like)


def distortion(model, x0, x):
    """(L∞, L2) per image of x − x0 in [0, 1] pixel units: max|δ/s| and ‖δ/s‖₂ (float64)."""
    d = (np.asarray(to_numpy(x), np.float64) - np.asarray(to_numpy(x0), np.float64)) \
        / pixel_scale(model)
    d = d.reshape(d.shape[0], -1)
    return np.abs(d).max(axis=1), np.sqrt((d * d).sum(axis=1))


def _check_eps(eps, name="eps"):
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (in [0, 1] pixel units), got {eps}")
    return float(eps)


def _class_indices(v, n, name):
    """An int or N ints -> int64 array (N,); range is checked against the logits later."""
    a = np.asarray(to_numpy(v))
    if a.dtype.kind not in "iu" or a.ndim > 1 or (a.ndim == 1 and a.shape[0] != n):
        raise ValueError(f"{name} must be an int class index or {n} of them (one per image), "
                         f"got {v!r}")
    return np.broadcast_to(a.astype(np.int64), (n,)).copy()


def _labels(n, label, target):
    """The classes the loss is computed at: the target if given, else the true label."""
    if target is None:
        if label is None:
            raise ValueError("give the true label (untargeted attack) or a target class")
        return _class_indices(label, n, "label"), "label"
    t = _class_indices(target, n, "target")
    if label is not None:
        same = np.flatnonzero(_class_indices(label, n, "label") == t)
        if same.size:
            raise ValueError(f"target equals the true label for image(s) {same.tolist()}: a "
                             "targeted attack needs a different class")
    return t, "target"


def loss_gradient(model, x, labels, name="label"):
    """∇ₓ J with J = Σ_n CE(f(x_n), y_n) (summed, so each image gets its own gradient).
    x: backend array (N, C, H, W); labels (N,) ints. Returns (gradient, logits), backend arrays."""
    with frozen(model, eval_mode=True):
        t = Tensor(x, requires_grad=True)
        logits = model(t)
        for c in (int(labels.min()), int(labels.max())):
            check_target(logits, c, name)
        ops.cross_entropy(logits, labels, reduction="sum").backward()
    return t.grad, logits.data


# ============================================================ FGSM, BIM, PGD
def fgsm(model, x, label, eps, *, target=None, bounds="pixels"):
    """Fast gradient sign method (Goodfellow et al. 2015), one step of size ε (pixel units):

        untargeted   x' = x + ε·s·sign(∇ₓ J(x, y))       raise the loss of the true class
        targeted     x' = x − ε·s·sign(∇ₓ J(x, t))       lower the loss of the target class

    then clipped to ``bounds`` ("pixels", None or (lo, hi)). label / target: an int or one
    per image. Returns x' as a NumPy array (N, C, H, W).
    """
    eps = _check_eps(eps)
    x0 = as_input(model, x).data
    y, name = _labels(len(x0), label, target)
    # BEGIN SOLUTION
    g, _ = loss_gradient(model, x0, y, name)
    xp = get_array_module(x0)
    sign = -1.0 if target is not None else 1.0
    return to_numpy(clip_to_bounds(model, x0 + sign * eps * pixel_scale(model, x0) * xp.sign(g),
                                   bounds))
    # END SOLUTION


def _random_start(shape, eps, norm, rng, like):
    if norm == "inf":
        d = rng.uniform(-eps, eps, shape)
    else:      # a random direction, a random radius inside the ball
        d = rng.standard_normal(shape)
        n = np.sqrt((d * d).reshape(shape[0], -1).sum(1)).reshape(-1, 1, 1, 1)
        d = d / n * eps * rng.uniform(0, 1, (shape[0], 1, 1, 1))
    return backend.like(d.astype(like.dtype), like)


def _l2(xp, a):
    return xp.sqrt((a * a).reshape(a.shape[0], -1).sum(axis=1)).reshape(-1, 1, 1, 1)


def pgd(model, x, label, eps, *, target=None, steps=10, alpha=None, norm="inf",
        random_start=True, seed=0, bounds="pixels", callback=None):
    """Projected gradient descent on the loss (Madry et al. 2018; BIM without a random start).

    In pixel units δ = (x − x0)/s, starting from δ = 0 or a random point of the ball:

        g = s·∇ₓ J(x0 + s·δ, y)                  (−∇ for a targeted attack, J at the target)
        L∞:  δ ← clip(δ + α·sign(g), −ε, ε)      L2:  δ ← δ + α·g/‖g‖₂,  δ ← δ·min(1, ε/‖δ‖₂)
        x  ← clip(x0 + s·δ, lo, hi)              valid pixels (this only shrinks |δ|)

    alpha: step in pixel units (default 2.5·ε/steps). norm: "inf" or "2". The projection
    runs after every step; ``callback(step, x)`` (x NumPy) sees each iterate. Returns x (NumPy).
    """
    eps = _check_eps(eps)
    if norm not in ("inf", "2"):
        raise ValueError(f"norm must be 'inf' or '2', got {norm!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    alpha = 2.5 * eps / steps if alpha is None else _check_eps(alpha, "alpha")
    x0 = as_input(model, x).data
    y, name = _labels(len(x0), label, target)
    xp, s = get_array_module(x0), pixel_scale(model, x0)
    delta = _random_start(x0.shape, eps, norm, np.random.default_rng(seed), x0) \
        if random_start else xp.zeros_like(x0)
    x_adv = clip_to_bounds(model, x0 + s * delta, bounds)
    direction = -1.0 if target is not None else 1.0
    for step in range(steps):
        g, _ = loss_gradient(model, x_adv, y, name)
        g = direction * s * g
        delta = (x_adv - x0) / s
        if norm == "inf":
            delta = xp.clip(delta + alpha * xp.sign(g), -eps, eps)
        else:
            delta = delta + alpha * g / (_l2(xp, g) + 1e-12)
            delta = delta * xp.minimum(1.0, eps / (_l2(xp, delta) + 1e-12))
        x_adv = clip_to_bounds(model, x0 + s * delta, bounds)
        if callback is not None:
            callback(step, to_numpy(x_adv))
    return to_numpy(x_adv)


def bim(model, x, label, eps, *, target=None, steps=10, alpha=None, bounds="pixels",
        callback=None):
    """Basic iterative method (Kurakin et al. 2017): L∞ PGD from x itself, α = ε/steps."""
    return pgd(model, x, label, eps, target=target, steps=steps,
               alpha=eps / steps if alpha is None else alpha, random_start=False,
               bounds=bounds, callback=callback)


# ============================================================ the smallest ε
def smallest_eps(model, x, label, attack=fgsm, *, eps_start=1 / 255, eps_max=0.5, rtol=0.05,
                 **options):
    """The smallest ε (pixel units) at which ``attack`` changes the top-1 class, per image.

    ``attack(model, x, label, eps, **options)`` -> x_adv (``fgsm``, ``pgd``, ``bim``). For
    each image: double ε from ``eps_start`` until the attack flips the label (the ε before
    did not), then bisect between the last ε that did not flip and the first that did,
    until they are within ``rtol`` of each other. The attack's success need not be
    monotone in ε: the answer is an ε that flips with a tested ε within rtol below it
    that does not.
    label: the true class, an int or one per image (a misclassified image returns ε = 0).
    Returns (eps (N,) float64, nan where even ``eps_max`` does not flip; x_adv (N, C, H, W)
    at that ε, the clean image where nan).
    """
    x0 = to_numpy(as_input(model, x).data)
    y, _ = _labels(len(x0), label, None)
    if not 0 < eps_start <= eps_max or not 0 < rtol < 1:
        raise ValueError(f"smallest_eps: need 0 < eps_start <= eps_max and 0 < rtol < 1, got "
                         f"eps_start={eps_start}, eps_max={eps_max}, rtol={rtol}")
    eps, advs = np.full(len(x0), np.nan), x0.copy()
    for i in range(len(x0)):
        xi, yi = x0[i:i + 1], int(y[i])

        def flipped(e):
            adv = attack(model, xi, yi, e, **options)
            return int(_probabilities(model, adv).argmax()) != yi, adv
        if int(_probabilities(model, xi).argmax()) != yi:
            eps[i] = 0.0
            continue
        e, adv = _smallest_flip(flipped, float(eps_start), eps_max,
                                close=lambda lo, hi: hi - lo <= rtol * hi,
                                middle=lambda lo, hi: (lo + hi) / 2)
        if e is not None:
            eps[i], advs[i] = e, adv[0]
    return eps, advs


def _smallest_flip(flipped, start, limit, *, close, middle):
    """Double v from ``start`` until ``flipped(v)`` -> (flips, x_adv) flips (v ≤ ``limit``),
    then bisect between the last v that did not flip and the first that did until
    ``close(lo, hi)``. Returns (that v, its x_adv), or (None, None) if ``limit`` does not flip."""
    lo, hi = 0, start
    flips, adv = flipped(hi)
    while not flips and hi < limit:
        lo, hi = hi, min(2 * hi, limit)
        flips, adv = flipped(hi)
    if not flips:
        return None, None
    while not close(lo, hi):
        mid = middle(lo, hi)
        flips, adv_mid = flipped(mid)
        if flips:
            hi, adv = mid, adv_mid
        else:
            lo = mid
    return hi, adv


def smallest_grey_levels(model, x, label, attack=fgsm, *, max_levels=64, **options):
    """The least whole number of grey levels k ≥ 1 at which ``attack`` at ε = k/255, its
    result rounded to an 8-bit image, changes the top-1 class, per image.

    A photo is stored in 8 bits: a change below one grey level is no image at all, and
    rounding can undo a change that flipped the label in floating point. So ε runs over
    1/255, 2/255, … (doubling, then bisection over the integers) and each attacked image is
    rounded to whole pixels before it is classified — the adversarial example one could
    save as a PNG. Needs ``model.preprocess``. label: an int or one per image.
    Returns (levels (N,) int64: 0 for an image already misclassified, −1 where even
    ``max_levels`` does not flip; x_adv (N, C, H, W) NumPy, the rounded image at that k,
    the clean image where −1 or 0).
    """
    pre = getattr(model, "preprocess", None)
    if pre is None:
        raise ValueError("smallest_grey_levels needs model.preprocess to round to 8-bit pixels")
    if isinstance(max_levels, bool) or not isinstance(max_levels, (int, np.integer)) \
            or not 1 <= max_levels <= 255:
        raise ValueError(f"max_levels must be an int in 1..255, got {max_levels!r}")
    x0 = to_numpy(as_input(model, x).data)
    y, _ = _labels(len(x0), label, None)
    levels, advs = np.zeros(len(x0), np.int64), x0.copy()
    for i in range(len(x0)):
        xi, yi = x0[i:i + 1], int(y[i])

        def flipped(k):
            adv = attack(model, xi, yi, k / 255, **options)
            pixels = np.clip(np.round(pre.deprocess(adv)), 0, 255)
            adv = pre.preprocess(pixels, dtype=xi.dtype)
            return int(_probabilities(model, adv).argmax()) != yi, adv
        if int(_probabilities(model, xi).argmax()) != yi:
            continue                                  # misclassified: 0 grey levels
        k, adv = _smallest_flip(flipped, 1, max_levels, close=lambda lo, hi: hi - lo <= 1,
                                middle=lambda lo, hi: (lo + hi) // 2)
        if k is None:
            levels[i] = -1
        else:
            levels[i], advs[i] = k, adv[0]
    return levels, advs


# ============================================================ fooling images
def fooling_image(model, x, target, *, confidence=0.9, steps=200, lr=1.0, label=None,
                  score="logit", bounds="pixels"):
    """Walk each image toward class ``target`` until top-1 = target with p ≥ ``confidence``.

    Every step is I ← I + lr·∇S_t/‖∇S_t‖₂ (``class_vis.ascend_class``, the same loop as
    class visualization but from a real image), clipped to valid pixels. Images sharing a
    target walk together as one batch (each image's step depends on that image only); an
    image that fools the model is held there (a regularizer of the loop puts it back after
    every update) and the walk stops when all have. label: true class(es), checked ≠ target.
    Returns a dict of per-image arrays: image (N, C, H, W), success, iterations (gradient
    steps taken), confidence (p_target), prediction, linf and l2 (x − x0 in [0, 1] pixel
    units, measured on the returned image).
    """
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence must be in [0, 1), got {confidence}")
    x0 = to_numpy(as_input(model, x).data)
    targets, _ = _labels(len(x0), label, target)
    images, taken = x0.copy(), np.full(len(x0), steps)
    for t in np.unique(targets):
        group = np.flatnonzero(targets == t)
        done = np.zeros(len(group), bool)

        def fooled(step, image, output, t=int(t), group=group, done=done):
            p = to_numpy(ops.softmax(Tensor(output), axis=1).data)
            new = (p.argmax(axis=1) == t) & (p[:, t] >= confidence) & ~done
            images[group[new]] = to_numpy(image)[new]
            taken[group[new]] = step
            done |= new
            return bool(done.all())

        def hold(x, g, step, group=group, done=done):     # fooled images stay as they were
            if not done.any():
                return x
            xp = get_array_module(x)
            keep = backend.like(done.reshape(-1, 1, 1, 1), x)
            return xp.where(keep, backend.like(images[group].astype(x.dtype), x), x)
        img, _ = ascend_class(model, x0[group], int(t), steps, lr, score=score, stop_when=fooled,
                              regularizers=[hold], bounds=bounds)
        images[group[~done]] = img[~done]
    p = _probabilities(model, images)
    rows = np.arange(len(x0))
    hit = (p.argmax(axis=1) == targets) & (p[rows, targets] >= confidence)
    res = dict(image=images, success=hit, iterations=taken, confidence=p[rows, targets],
               prediction=p.argmax(axis=1))
    res["linf"], res["l2"] = distortion(model, x0, images)
    return res


def _probabilities(model, x):
    from ..autograd import no_grad
    with frozen(model, eval_mode=True), no_grad():
        return to_numpy(ops.softmax(model(as_input(model, x)), axis=1).data)


def fooling_from_noise(model, target, n=1, *, shape=None, seed=0, **options):
    """Fooling images from uniform noise over the valid pixel range (Nguyen et al. 2015: images
    unrecognizable to us, classified with high confidence). Options as ``fooling_image``."""
    pp = getattr(model, "preprocess", None)
    if shape is None:
        if pp is None or pp.input_size is None:
            raise ValueError("fooling_from_noise: give shape=(C, H, W) (the model has no "
                             "preprocess.input_size)")
        shape = (pp.channels, *pp.input_size)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (n, shape[1], shape[2], shape[0]))
    x0 = pp.preprocess(noise) if pp is not None else noise.transpose(0, 3, 1, 2) / 255
    return fooling_image(model, x0.astype(np.float32), target, **options)


# ============================================================ template mixing
def mixing_alpha(weight, bias, x, source, target):
    """Smallest α ≥ 0 with argmax_k (W·(x + α·(w_t − w_s)) + b)_k = t, for a linear classifier.

    With Δw = w_t − w_s the scores move linearly: s_k(α) = s_k + α·w_k·Δw, so t beats k for
    α > (s_k − s_t) / ((w_t − w_k)·Δw) when that rate is positive. Mixing a bit of the
    target's template (CS231n: "a bit of goldfish weights") flips the class at
    α* = max of those bounds; returns inf if some class can never be overtaken.
    weight (K, D), bias (K,), x: D values (any shape). Returns α* (float).
    """
    w, b, v, dw = _mixing_setup(weight, bias, x, source, target)
    s = w @ v + b
    rate = (w[target] - w) @ dw                       # d(s_t − s_k)/dα
    lag = s - s[target]                               # s_k − s_t
    lo, hi = 0.0, np.inf
    for k in range(len(s)):
        if k == target:
            continue
        if rate[k] > 0:
            lo = max(lo, lag[k] / rate[k])
        elif lag[k] >= 0:
            return float("inf")                       # k stays ahead for every α
        elif rate[k] < 0:
            hi = min(hi, lag[k] / rate[k])
    return float(lo) if lo < hi else float("inf")


def mix_templates(x, weight, source, target, alpha):
    """x + α·(w_t − w_s), shaped like x."""
    _, _, v, dw = _mixing_setup(weight, None, x, source, target)
    return (v + alpha * dw).reshape(np.shape(x))


def _mixing_setup(weight, bias, x, source, target):
    w = np.asarray(to_numpy(weight), np.float64)
    v = np.asarray(to_numpy(x), np.float64).ravel()
    if w.ndim != 2 or w.shape[1] != v.size:
        raise ValueError(f"weight must be (K, D) with D = x.size = {v.size}, got {w.shape}")
    for name, c in (("source", source), ("target", target)):
        check_target(w.T[:1], c, name)
    if source == target:
        raise ValueError(f"target equals source ({source}): template mixing needs another class")
    b = None if bias is None else np.asarray(to_numpy(bias), np.float64).reshape(-1)
    return w, b, v, w[target] - w[source]

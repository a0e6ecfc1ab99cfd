"""One-pixel attack (Su, Vargas & Sakurai 2019): change k pixels, found by differential evolution.

    res = one_pixel_attack(model, x, label=3, pixels=1, seed=0)
    res["success"], res["pixels"]        # [(row, col, (v_1, ..., v_C))], values 0–255
    rate = one_pixel_success_rate(model, xs, labels, pixels=1)

Black box: only the model's probabilities are read, never its gradient. A candidate is
z = (row, col, v_1..v_C) per changed pixel (v in 0–255 pixel values, model channel order);
differential evolution (scipy.optimize.differential_evolution, DE/rand/1 as in the paper,
F = 0.5, no crossover) minimizes

    untargeted:  p(label | x with the k pixels set)        targeted:  −p(target | ...)

The whole population of one generation is evaluated at once (``vectorized=True``): the
candidates become a batch of perturbed images, run through the model ``batch_size`` at a
time. It stops at the first candidate that fools the model (top-1 ≠ label, or = target) or
after ``maxiter`` generations. Deterministic given ``seed``. Pixel values are mapped to the
model's input through the valid range [lo, hi] of ``optimize.pixel_bounds``:
x = lo + (hi − lo)·v/255, i.e. exactly ``model.preprocess`` of v.
"""
import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import get_array_module, like, to_numpy
from .common import as_input, check_target
from .common import frozen
from .optimize import _resolve_bounds

__all__ = ["one_pixel_attack", "one_pixel_success_rate", "set_pixels"]


def set_pixels(x, z, lo, hi):
    """Copies of one image x (1, C, H, W) with pixels set by candidates z (P, k·(2 + C)).

    Each group (row, col, v_1..v_C) of z sets x[:, :, ⌊row⌋, ⌊col⌋] = lo + (hi − lo)·v/255.
    z, lo, hi on x's backend. Returns (P, C, H, W)."""
    xp = get_array_module(x)
    _, c, h, w = x.shape
    p = z.shape[0]
    batch = xp.repeat(x, p, axis=0)
    idx = xp.arange(p)
    for j in range(z.shape[1] // (2 + c)):
        g = z[:, j * (2 + c):(j + 1) * (2 + c)]
        rows = xp.clip(xp.floor(g[:, 0]), 0, h - 1).astype(xp.int64)
        cols = xp.clip(xp.floor(g[:, 1]), 0, w - 1).astype(xp.int64)
        values = lo.reshape(1, c) + (hi - lo).reshape(1, c) * g[:, 2:] / 255.0   # (P, C)
        for ch in range(c):
            batch[idx, ch, rows, cols] = values[:, ch].astype(x.dtype)
    return batch


def _probabilities(model, batch, batch_size):
    out = []
    with no_grad():
        for i in range(0, batch.shape[0], batch_size):
            out.append(ops.softmax(model(Tensor(batch[i:i + batch_size])), axis=1).data)
    return get_array_module(batch).concatenate(out, axis=0)


def _seeded(fn, seed):
    """The seed keyword of this SciPy: ``rng`` (>= 1.15) or ``seed`` (older)."""
    import inspect
    if "rng" in inspect.signature(fn).parameters:
        return {"rng": np.random.default_rng(seed)}
    return {"seed": np.random.default_rng(seed)}


def one_pixel_attack(model, x, label, pixels=1, *, target=None, maxiter=100, popsize=40,
                     seed=0, batch_size=256, bounds="pixels"):
    """Change ``pixels`` pixels of one image x ((C, H, W) or (1, C, H, W), preprocessed) so the
    model misclassifies it (or, with ``target``, calls it ``target``).

    maxiter: generations; popsize: scipy's multiplier (population = popsize·k·(2 + C)).
    Returns a dict: success, image (1, C, H, W) NumPy, pixels [(row, col, values)], label,
    prediction, probability (of the label, or of the target), evaluations, generations.
    """
    from scipy.optimize import differential_evolution
    x0 = as_input(model, x).data
    if x0.shape[0] != 1:
        raise ValueError(f"one_pixel_attack takes one image, got a batch of shape {x0.shape}")
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 1:
        raise ValueError(f"pixels must be a positive int, got {pixels!r}")
    if batch_size < 1 or maxiter < 1 or popsize < 1:
        raise ValueError(f"batch_size, maxiter and popsize must be >= 1, got "
                         f"{batch_size}, {maxiter}, {popsize}")
    box = _resolve_bounds(model, bounds, x0)
    if box is None:
        raise ValueError("one_pixel_attack needs the valid pixel range: a model with a "
                         "preprocess, or bounds=(lo, hi)")
    _, c, h, w = x0.shape
    xp = get_array_module(x0)
    lo, hi = (xp.broadcast_to(like(b, x0), (1, c, 1, 1)).reshape(c)
              for b in box)
    with frozen(model, eval_mode=True):
        p0 = _probabilities(model, x0, 1)
        label = check_target(p0, label, "label")
        if target is not None:
            target = check_target(p0, target, "target")
            if target == label:
                raise ValueError(f"target equals the label ({label}): a targeted attack needs "
                                 "a different class")
        found, count = {}, {"evaluations": 0}

        def fooled(p):
            top = p.argmax(axis=1)
            return top == target if target is not None else top != label

        def objective(z):                      # z (D, S): one column per candidate
            zb = like(np.ascontiguousarray(z.T), x0)
            p = _probabilities(model, set_pixels(x0, zb, lo, hi), batch_size)
            count["evaluations"] += z.shape[1]
            hit = to_numpy(fooled(p))
            if hit.any() and "z" not in found:
                found["z"] = z[:, int(np.flatnonzero(hit)[0])].copy()
            cls = label if target is None else target
            return to_numpy(p[:, cls]).astype(np.float64) * (1.0 if target is None else -1.0)

        limits = [(0, h), (0, w)] + [(0, 255)] * c
        res = differential_evolution(
            objective, limits * pixels, maxiter=maxiter, popsize=popsize, strategy="rand1bin",
            mutation=0.5, recombination=1.0, init="random", polish=False, tol=0, atol=-1,
            vectorized=True, updating="deferred", callback=lambda *_, **__: "z" in found,
            **_seeded(differential_evolution, seed))
        z = found.get("z", res.x)
        adv = set_pixels(x0, like(z[None].astype(np.float64), x0), lo, hi)
        p = to_numpy(_probabilities(model, adv, 1))[0]
    groups = z.reshape(pixels, 2 + c)
    coords = [(int(min(max(np.floor(g[0]), 0), h - 1)), int(min(max(np.floor(g[1]), 0), w - 1)),
               tuple(float(v) for v in g[2:])) for g in groups]
    success = bool(p.argmax() == target) if target is not None else bool(p.argmax() != label)
    return dict(success=success, image=to_numpy(adv), pixels=coords, label=label,
                prediction=int(p.argmax()),
                probability=float(p[label if target is None else target]),
                evaluations=count["evaluations"], generations=int(res.nit))


def one_pixel_success_rate(model, x, labels, pixels=1, *, progress=False, **options):
    """Attack each correctly classified image of x (N, C, H, W); the success rate is the share
    of those that the attack fools. Returns a dict: rate, attacked, fooled, skipped
    (misclassified to begin with), results (one dict per attacked image)."""
    from tqdm.auto import tqdm
    x = to_numpy(as_input(model, x).data)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"{len(labels)} labels for {len(x)} images")
    with frozen(model, eval_mode=True):
        clean = to_numpy(_probabilities(model, as_input(model, x).data, 256)).argmax(axis=1)
    results, skipped = [], int((clean != labels).sum())
    for n in tqdm(np.flatnonzero(clean == labels), disable=not progress, desc="one-pixel"):
        results.append(one_pixel_attack(model, x[n:n + 1], int(labels[n]), pixels, **options))
    fooled = sum(r["success"] for r in results)
    return dict(rate=fooled / max(len(results), 1), attacked=len(results), fooled=fooled,
                skipped=skipped, results=results)

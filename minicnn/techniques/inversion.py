"""Feature inversion: which images does a network map to the same code?

    recon, hist = invert(model, x, "features.4", steps=200)
    recons, errors = invert_layers(model, x, ["input", "features.1", "features.4", "features.9"])

Mahendran & Vedaldi 2015, "Understanding deep image representations by inverting them":
given the code φ0 = φ_l(I0) of an image at layer l, find

    I* = argmin_I  ‖φ_l(I) − φ0‖² / ‖φ0‖²  +  α·TV(I)/n  +  β·‖I‖²/n

(n = number of pixel values, so α and β do not depend on the image size). The first
term is the relative code error; TV (squared total variation) and the L2 term are the
image prior that picks a natural-looking answer among the many images with that code.
Reconstructions from deeper layers keep the layout less and less: that is the
information the network has thrown away. ``layer="input"`` inverts the identity (the
answer is I0 itself). The optimization is ``optimize.ascend`` (L-BFGS by default),
remembering the last 100 steps (``memory``) rather than scipy's 10: a deep code's error
surface is full of narrow valleys, and with 10 the error reached from noise after 500 steps
scattered from 1% to 4% with the start (or the machine's summation order); with 100 it
stays below 2% (fashion_net's features.8, 14 starts).
"""
import numpy as np

from ..autograd import no_grad
from ..nn.capture import capture
from . import optimize as opt
from .common import as_input, check_layer, frozen


__all__ = ["invert", "invert_layers", "code", "codes", "code_error"]


def codes(model, image, layers):
    """{layer: φ_l(I)} — output arrays of ``layers`` for ``image`` from one forward pass
    that stops after the last of them ("input" gives the image itself)."""
    x = as_input(model, image)
    names = [n for n in layers if n != opt.INPUT]
    for n in names:
        check_layer(model, n)
    out = {}
    if names:
        with frozen(model, eval_mode=True), no_grad(), capture(model, names, stop=True) as acts:
            model(x)
        out = {n: acts[n].data for n in names}
    return {n: x.data if n == opt.INPUT else out[n] for n in layers}


def code(model, image, layer):
    """φ_l(I): the output array of ``layer`` for ``image`` (the image itself for "input")."""
    return codes(model, image, [layer])[layer]


def code_error(model, image, reference, layer):
    """Relative code error ‖φ_l(I) − φ_l(I0)‖² / ‖φ_l(I0)‖² (a float)."""
    a, b = code(model, image, layer), code(model, reference, layer)
    return float(((a - b) ** 2).sum() / (b ** 2).sum())


def invert(model, image, layer, steps=200, *, alpha=0.1, beta=1e-3, optimizer="lbfgs", lr=0.05,
           init="noise", init_scale=0.1, seed=0, bounds="pixels", relu_rule=None,
           memory=100, progress=False):
    """Reconstruct ``image`` (1, C, H, W preprocessed) from its code at ``layer``.

    alpha, beta: weights of TV(I)/n and ‖I‖²/n (>= 0). optimizer: "lbfgs" (default, ``steps``
    iterations, the last ``memory`` of them kept for the curvature) or any of ascend's
    ("adam" with ``lr``...). init: "noise" (normal, std init_scale, seeded) or "zeros".
    Returns (reconstruction: NumPy (1, C, H, W), history) — history["code error"] is the
    relative code error per step.
    """
    if alpha < 0 or beta < 0:
        raise ValueError(f"invert: alpha and beta must be >= 0, got {alpha}, {beta}")
    target = code(model, image, layer)
    x0 = as_input(model, image).data
    n = x0.size
    objective = opt.feature_distance(layer, target, relative=True, name="code error")
    if alpha:
        objective = objective + alpha / n * opt.tv()
    if beta:
        objective = objective + beta / n * opt.l2()
    if init == "noise":
        start = np.random.default_rng(seed).normal(0, init_scale, x0.shape).astype(np.float32)
    elif init == "zeros":
        start = np.zeros(x0.shape, np.float32)
    else:
        raise ValueError(f"invert: init must be 'noise' or 'zeros', got {init!r}")
    return opt.ascend(model, -objective, start, steps, lr, optimizer=optimizer, bounds=bounds,
                      relu_rule=relu_rule, seed=seed, lbfgs_memory=memory, progress=progress,
                      desc=f"invert {layer}")


def invert_layers(model, image, layers, steps=200, **options):
    """Reconstructions of ``image`` from each of ``layers`` (same options as ``invert``).

    Returns ({layer: reconstruction (1, C, H, W)}, {layer: final relative code error}).
    """
    for layer in layers:
        if layer != opt.INPUT:
            check_layer(model, layer)
    recons, errors = {}, {}
    for layer in layers:
        recons[layer], _ = invert(model, image, layer, steps, **options)
        errors[layer] = code_error(model, recons[layer], image, layer)
    return recons, errors

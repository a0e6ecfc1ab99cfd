"""DeepDream: amplify whatever a layer already sees in an image.

    dream, hist = deepdream(model, x, "features.7", steps=10, step_size=1.5, octaves=4)
    hist["octave_images"], hist["energy_before"], hist["energy_after"]

Mordvintsev, Olah & Tyka 2015, "Inceptionism: going deeper into neural networks":
gradient ascent on the image with the objective ½‖a_l(I)‖², whose gradient with
respect to the activation is the activation itself ("set the gradient equal to the
activation": every feature the layer detects is made stronger). Each step

    g = ∂(½‖a_l‖²)/∂I  on a randomly rolled image (jitter, rolled back by autograd)
    I ← I + step · g / mean|g|       (normalized step: the same stride whatever |g| is)
    I ← clip(I, valid pixel range)

Octaves: the image is shrunk octave_scale× per octave into a pyramid; dreaming starts
on the smallest, and at each larger octave the detail the dream added so far
(dreamed − base, upsampled) is re-injected into that octave's base image. Large
patterns come from the small octaves, fine texture from the large ones.
``step_size`` is in pixel units (0–255), turned into preprocessed units per channel.
Deterministic for a given ``seed``.
"""
import numpy as np

from ..autograd import no_grad
from ..backend import to_numpy
from ..nn.capture import forward_to
from . import optimize as opt
from .common import as_input, check_layer, frozen

__all__ = ["deepdream", "layer_energy"]


def layer_energy(model, image, layer):
    """½‖a_l(I)‖² of one image batch at ``layer`` (a float)."""
    with frozen(model, eval_mode=True), no_grad():
        a = forward_to(model, as_input(model, image), layer).data
    return float((a * a).sum()) / 2


def _pixel_unit(model, channels):
    """One pixel step (1/255 of the range) in preprocessed units, per channel: (1, C, 1, 1)."""
    box = opt.pixel_bounds(model)
    if box is None:
        return np.ones((1, channels, 1, 1), np.float32)
    return to_numpy(box[1] - box[0]) / 255


def deepdream(model, image, layer, steps=10, step_size=1.5, *, octaves=4, octave_scale=1.4,
              jitter=32, relu_rule=None, seed=0, bounds="pixels", progress=False):
    """Dream ``image`` (1, C, H, W preprocessed) at ``layer``.

    steps: ascent steps per octave; step_size: pixels (0–255 scale) per normalized step;
    octaves, octave_scale: pyramid depth and ratio between sizes (smallest octave first);
    jitter: max random roll in pixels. Returns (dream: NumPy (1, C, H, W), history) with
    history["octave_images"] (the image after each octave, smallest first),
    history["energy_before"] / ["energy_after"] (½‖a‖² entering / leaving each octave,
    without jitter) and history["objective"] (every step).
    """
    check_layer(model, layer)
    if step_size <= 0 or octave_scale <= 1 or octaves < 1 or jitter < 0:
        raise ValueError(f"deepdream: need step_size > 0, octave_scale > 1, octaves >= 1, "
                         f"jitter >= 0; got {step_size}, {octave_scale}, {octaves}, {jitter}")
    x = to_numpy(as_input(model, image).data)
    lr = step_size * _pixel_unit(model, x.shape[1])
    pyramid = [x]
    for _ in range(octaves - 1):
        h, w = pyramid[-1].shape[-2:]
        pyramid.append(opt.resize(pyramid[-1], (round(h / octave_scale), round(w / octave_scale))))
    history = {"octave_images": [], "energy_before": [], "energy_after": [], "objective": []}
    detail = np.zeros_like(pyramid[-1])
    transforms = [opt.jitter(jitter)] if jitter else []
    for k, base in enumerate(reversed(pyramid)):
        if k:
            detail = opt.resize(detail, base.shape[-2:])
        start = opt.clip_to_bounds(model, base + detail, bounds)
        history["energy_before"].append(layer_energy(model, start, layer))
        dream, hist = opt.ascend(model, opt.energy(layer), start, steps, lr, optimizer="normalized",
                                 transforms=transforms, bounds=bounds, relu_rule=relu_rule,
                                 seed=seed + k, progress=progress, desc=f"dream octave {k + 1}/{octaves}")
        history["energy_after"].append(layer_energy(model, dream, layer))
        history["octave_images"].append(dream)
        history["objective"] += hist["objective"]
        detail = dream - base
    return dream, history

"""Class and neuron visualization by gradient ascent on the image, and its twin that starts
from a real image (fooling images).

    img, hist = class_visualization(model, target=130, steps=100, lr=0.05, l2=1e-3, jitter=4,
                                    blur_sigma=0.5, init="random", seed=[0, 1])  # ImageNet nets
    img, hist = class_visualization(model, target=(12, 5, 5), layer="features.7")  # one neuron
    adv, hist = ascend_class(model, x, target=7, stop_when=predicted_as(7))

Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks":

    I* = argmax_I  S_c(I) − λ‖I‖²        S_c the unnormalized class score (not the softmax:
                                         raising p_c could be done by lowering other scores)

(‖I − B‖² with ``background="black"`` for datasets of light objects on black, such as
Fashion-MNIST; ``tv`` adds Mahendran & Vedaldi's −μ·TV(I), which joins pixels into shapes.)

Yosinski et al. 2015, "Understanding neural networks through deep visualization", make
the images look natural with regularizers applied after every step, each a switch here:
L2 decay I ← (1−θ)I, a Gaussian blur every few steps, zeroing pixels of small norm or of
small contribution |Σ_c I ⊙ ∂S/∂I|, random jitter; plus coarse-to-fine octaves. Every
step runs ``optimize.ascend`` — the one loop — in the model's preprocessed space, clipped
to the valid pixel range.

Olah, Mordvintsev & Schubert 2017 ("Feature visualization") make the steps themselves look
like photos: optimizing the image's Fourier coefficients scaled by 1/f, in decorrelated
colours, amounts to filtering every step by 1/f² and ImageNet's colour correlation
(``spectrum_power``, ``decorrelate_colours`` here, as preconditioners of the plain loop).
"""
import numpy as np

from .. import ops
from ..backend import like, to_numpy
from . import optimize as opt
from .common import as_input, check_target

__all__ = ["class_visualization", "ascend_class", "predicted_as"]


def _input_shape(model, shape):
    if shape is not None:
        if len(shape) != 3:
            raise ValueError(f"shape must be (C, H, W), got {shape!r}")
        return tuple(int(s) for s in shape)
    pp = getattr(model, "preprocess", None)
    if pp is None or pp.input_size is None:
        raise ValueError("class_visualization: the model has no preprocess.input_size; "
                         "give shape=(C, H, W)")
    return (pp.channels, *pp.input_size)


def _initial(shape, init, seeds, init_scale, rest):
    if init == "zeros":
        return np.zeros((len(seeds), *shape), np.float32) + rest
    if init == "random":
        return np.stack([np.random.default_rng(s).normal(0, init_scale, shape)
                         for s in seeds]).astype(np.float32) + rest
    raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")


def _rest_image(model, background):
    """The image the L2 term pulls toward, (1, C, 1, 1): 0 in preprocessed space (the mean
    image, Simonyan's choice) or the preprocessed black image (a dark background)."""
    if background == "mean":
        return np.zeros((1, 1, 1, 1), np.float32)
    if background == "black":
        box = opt.pixel_bounds(model)
        if box is None:
            raise ValueError("class_visualization: background='black' needs a model with a "
                             "preprocess (to know which input is a black pixel)")
        return to_numpy(box[0]).astype(np.float32)
    raise ValueError(f"background must be 'mean' or 'black', got {background!r}")


def _l2_from(rest):
    """‖I − rest‖² (rest broadcasting to the image): the L2 term around the background."""
    def fn(acts):
        d = acts[opt.INPUT] - like(rest, acts[opt.INPUT].data)
        return (d * d).sum()
    return opt.Objective(fn, [opt.INPUT], "l2")


def _preconditioner(spectrum_power, decorrelate_colours):
    """The step filter g -> 1/f^power filtered, then colour-decorrelated g (None: neither)."""
    filters = ([opt.spectral(spectrum_power)] if spectrum_power else []) + \
        ([opt.colour_correlated()] if decorrelate_colours else [])
    if not filters:
        return None

    def precondition(g):
        for f in filters:
            g = f(g)
        return g
    return precondition


def class_visualization(model, target, steps=200, lr=0.05, *, layer=None, shape=None,
                        l2=1e-3, tv=0.0, background="mean", decay=0.0, blur_sigma=0.0,
                        blur_every=4, clip_norm=0.0,
                        clip_contribution=0.0, jitter=0, octaves=1, octave_scale=1.4,
                        octave_steps=None, upsample_octaves=True, spectrum_power=0.0,
                        decorrelate_colours=False, optimizer="normalized", relu_rule=None,
                        init="zeros", init_scale=0.1, seed=0, bounds="pixels", progress=False):
    """The image that maximizes a class score (or one neuron) minus λ‖I‖².

    target: a class index; or, with ``layer`` (a name from model.layer_names()), a channel
        c or (c, i, j) of that layer's output (any neuron, not only classes).
    l2: λ of the objective's −λ‖I − B‖² (Simonyan), around the background B: "mean" (0 in
        preprocessed space, the paper's) or "black" (pixel value 0: the background of
        Fashion-MNIST and MNIST, where the mean grey would be a foreground colour).
    tv: weight μ of a −μ·TV(I) term (squared total variation, Mahendran & Vedaldi's prior:
        neighbouring pixels alike, so the image shows shapes rather than pixel noise).
    Regularizer switches (Yosinski; 0 = off):
        decay θ: I ← (1−θ)I each step; blur_sigma: Gaussian blur every ``blur_every``
        steps; clip_norm / clip_contribution: percentile (0-100) of pixels zeroed by
        norm / contribution; jitter: random roll of up to that many pixels.
    octaves > 1: coarse to fine — the image is optimized at sizes H/octave_scale^k, resized
        up to the model's input for each forward, then upsampled for the next octave
        (``steps`` steps per octave, or ``octave_steps``: one count per octave, smallest
        first). upsample_octaves=False shows the model each octave at its own size instead
        (for nets that pool globally, e.g. EfficientNet): an octave of side s then costs
        (s/H)² of a full-size step, so the coarse octaves are cheap.
    spectrum_power > 0: each step's spatial frequencies f scaled by 1/f^power
        (``optimize.spectral``; 2 is Lucid's Fourier parameterization): shapes, not speckle.
    decorrelate_colours: steps in ImageNet's decorrelated colour space
        (``optimize.colour_correlated``): brightness more than hue, as in photos.
    optimizer: "normalized" (I += lr·g/mean|g|: lr is the mean step in preprocessed units,
        whatever the scale of the scores), "sgd" (I += lr·g, the paper's), "l2" or "adam".
    relu_rule: "redirected" lets gradient reach dead ReLUs (helps from a zero image).
    init: "zeros" or "random" (normal, std init_scale), both around the background.
    seed: int, or a list of ints for a batch of images (one random init per seed).
    Returns (images: NumPy (N, C, H, W) preprocessed, history of the loop; history["octave"]
    gives each step's octave).
    """
    c, h, w = _input_shape(model, shape)
    seeds = [seed] if np.ndim(seed) == 0 else list(seed)
    # BEGIN SOLUTION
    objective = opt.class_score(target) if layer is None else \
        opt.neuron(layer, *((target,) if np.ndim(target) == 0 else (target[0], target[1:])))
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if tv < 0:
        raise ValueError(f"tv must be >= 0, got {tv}")
    rest = _rest_image(model, background)
    if l2:
        objective = objective - l2 * (opt.l2() if background == "mean" else _l2_from(rest))
    if tv:
        objective = objective - tv * opt.tv()
    regularizers = ([opt.decay(decay)] if decay else []) + \
        ([opt.blur_every(blur_sigma, blur_every)] if blur_sigma else []) + \
        ([opt.clip_norm(clip_norm)] if clip_norm else []) + \
        ([opt.clip_contribution(clip_contribution)] if clip_contribution else [])
    if octaves < 1 or octave_scale <= 1:
        raise ValueError(f"need octaves >= 1 and octave_scale > 1, got {octaves}, {octave_scale}")
    octave_steps = [steps] * octaves if octave_steps is None else list(octave_steps)
    if len(octave_steps) != octaves:
        raise ValueError(f"octave_steps must give one step count per octave ({octaves}), "
                         f"got {octave_steps!r}")
    precondition = _preconditioner(spectrum_power, decorrelate_colours)
    x, history = None, {}
    for k, n_steps in enumerate(octave_steps):
        f = octave_scale ** (octaves - 1 - k)
        size = (max(1, round(h / f)), max(1, round(w / f)))
        x = _initial((c, *size), init, seeds, init_scale, rest) if x is None \
            else opt.resize(x, size)
        transforms = ([opt.jitter(jitter)] if jitter else []) + \
            ([opt.resize_to((h, w))] if size != (h, w) and upsample_octaves else [])
        x, hist = opt.ascend(model, objective, x, n_steps, lr, optimizer=optimizer,
                             transforms=transforms, regularizers=regularizers,
                             precondition=precondition,
                             bounds=bounds, relu_rule=relu_rule, seed=seeds[0] + k,
                             progress=progress,
                             desc=f"visualize {target} (octave {k + 1}/{octaves})")
        hist["octave"] = [k] * len(hist["objective"])
        for name, values in hist.items():
            history.setdefault(name, []).extend(values)
    return x, history
    # END SOLUTION


# ----------------------------------------------- toward a class from a real image
def predicted_as(target):
    """A ``stop_when`` for ``ascend_class``: stop once every image is classified as ``target``."""
    def stop(step, image, output):
        return output is not None and bool((output.argmax(axis=1) == target).all())
    return stop


def ascend_class(model, x0, target, steps=100, lr=1.0, *, score="logit", optimizer="l2",
                 proximity=0.0, transforms=(), regularizers=(), bounds="pixels",
                 relu_rule=None, seed=0, stop_when=None, progress=False):
    """Push a real image x0 (N, C, H, W, preprocessed) toward class ``target`` (fooling images).

        maximize  S_t(I) − proximity · ‖I − x0‖²          score="logit" (unnormalized score)
        maximize  log p(t | I) − proximity · ‖I − x0‖²    score="log_softmax"

    Default step I += lr · g / ‖g‖₂ (optimizer="l2"), clipped to valid pixels. Stop early with
    ``stop_when=predicted_as(target)`` or any stop_when(step, image, output) -> bool.
    Regularizers (e.g. a projection onto an ε-ball around x0) run after each step.
    Returns (image: NumPy (N, C, H, W), history) — history["objective"] per step.
    """
    if score == "logit":
        obj = opt.class_score(target)
    elif score == "log_softmax":
        def fn(acts):
            out = acts[opt.OUTPUT]
            return ops.log_softmax(out, axis=1)[:, check_target(out, target)].sum()
        obj = opt.Objective(fn, [opt.OUTPUT], f"log p(class {target})")
    else:
        raise ValueError(f"ascend_class: score must be 'logit' or 'log_softmax', got {score!r}")
    if proximity < 0:
        raise ValueError(f"ascend_class: proximity must be >= 0, got {proximity}")
    if proximity > 0:
        start = as_input(model, x0).data
        obj = obj - proximity * opt.feature_distance(opt.INPUT, start, name="proximity")
    return opt.ascend(model, obj, x0, steps, lr, optimizer=optimizer, transforms=transforms,
                      regularizers=regularizers, bounds=bounds, relu_rule=relu_rule, seed=seed,
                      stop_when=stop_when, progress=progress, desc=f"toward class {target}")

"""Neural style transfer and texture synthesis with Gram matrices.

    out, hist = style_transfer(model, content, style, content_layer="features.7",
                               style_layers=["features.1", "features.4", "features.7"])
    tex, hist = texture_synthesis(model, style, ["features.1", "features.4"], shape=(3, 128, 128))

Gatys, Ecker & Bethge 2015 ("Texture synthesis using convolutional neural networks")
and 2016 ("Image style transfer using convolutional neural networks"). With F_l(I)
the (C, H·W) feature map of layer l and G_l = F_l F_lᵀ / (C·H·W) its Gram matrix
(``mc.ops.gram_matrix``: which channels fire together, wherever they fire):

    L(I) = α · mean (F_c(I) − F_c(C))²                  content: the layout of the photo
         + β · Σ_l w_l ‖G_l(I) − G_l(S)‖²               style: feature statistics, no layout
         + γ · TV(I) / n                                smoothness (n = number of values)

minimized over the image I by ``optimize.ascend`` with L-BFGS (Gatys' choice, default)
or Adam, from the content image, the style image or white noise. Texture synthesis is
the style term alone from noise. ``octaves`` > 1 solves at reduced sizes first
(octave_scale× smaller each), upsampling the result as the start of the next size.
"""
import numpy as np

from .. import ops
from ..autograd import Tensor
from ..backend import to_numpy
from . import optimize as opt
from .common import as_input, check_layer
from .inversion import code, codes

__all__ = ["style_transfer", "texture_synthesis", "gram_targets", "style_loss", "content_loss",
           "tv_loss", "style_distance"]


def gram_targets(model, style, style_layers):
    """{layer: G_l(S)} — the style image's Gram matrices (1, C_l, C_l), on the model's backend."""
    return {layer: ops.gram_matrix(Tensor(a)).data
            for layer, a in codes(model, style, style_layers).items()}


def style_loss(grams, weights):
    """Objective Σ_l w_l ‖G_l(I) − G_l(S)‖² for grams {layer: G_l(S)} (a loss: minimize it)."""
    def fn(acts):
        # BEGIN SOLUTION
        total = None
        for (layer, g), w in zip(grams.items(), weights):
            d = ops.gram_matrix(acts[layer]) - g
            term = (d * d).sum() * w
            total = term if total is None else total + term
        return total
        # END SOLUTION
    return opt.Objective(fn, list(grams), "style")


def style_distance(model, image, style, style_layers, layer_weights=None):
    """Σ_l w_l ‖G_l(I) − G_l(S)‖² as a float (default w_l = 1/L): how far ``image`` is from
    the style's statistics — compare a result with its start (noise or the content)."""
    weights = [1.0 / len(style_layers)] * len(style_layers) if layer_weights is None \
        else list(layer_weights)
    mine, theirs = gram_targets(model, image, style_layers), gram_targets(model, style,
                                                                          style_layers)
    return float(sum(w * float(((mine[n] - theirs[n]) ** 2).sum())
                     for n, w in zip(style_layers, weights)))


def content_loss(layer, target):
    """Objective mean (F_l(I) − F_l(C))² for the content code ``target`` (a loss)."""
    return opt.Objective(lambda acts: ((acts[layer] - target) ** 2).mean(), [layer], "content")


def tv_loss(n):
    """Objective TV(I) / n (a loss)."""
    return opt.Objective(lambda acts: ops.total_variation(acts[opt.INPUT]) / n, [opt.INPUT], "tv")


def _check(model, content, style, *, style_layers, content_layer, style_weight, content_weight,
           tv_weight, layer_weights):
    if content is not None and content.shape[1] != style.shape[1]:
        raise ValueError(f"content has {content.shape[1]} channels (shape {tuple(content.shape)}) "
                         f"but style has {style.shape[1]} (shape {tuple(style.shape)})")
    if isinstance(style_layers, str) or not style_layers:
        raise ValueError(f"style_layers must be a non-empty list of layer names, "
                         f"got {style_layers!r}")
    for layer in list(style_layers) + ([content_layer] if content_layer else []):
        check_layer(model, layer)
    if style_weight <= 0:
        raise ValueError(f"style_weight must be > 0, got {style_weight}")
    if content_weight < 0 or tv_weight < 0:
        raise ValueError(f"content_weight and tv_weight must be >= 0, got "
                         f"{content_weight}, {tv_weight}")
    weights = [1.0 / len(style_layers)] * len(style_layers) if layer_weights is None \
        else [float(w) for w in layer_weights]
    if len(weights) != len(style_layers) or min(weights) <= 0:
        raise ValueError(f"layer_weights must be {len(style_layers)} positive numbers (one per "
                         f"style layer), got {layer_weights!r}")
    return weights


def _start(model, init, content, style, shape, seed, bounds):
    if init == "content":
        return content
    if init == "style":
        return opt.resize(style, shape[-2:])
    if init != "noise":
        raise ValueError(f"init must be 'content', 'style' or 'noise', got {init!r}")
    rng = np.random.default_rng(seed)
    box = opt._resolve_bounds(model, bounds, style)
    if box is None:
        return rng.normal(0, 1, shape).astype(np.float32)
    lo, hi = (to_numpy(b) for b in box)
    return (lo + (hi - lo) * rng.random(shape)).astype(np.float32)    # white noise image


def _synthesize(model, content, style, *, content_layer, style_layers, steps, shape,
                content_weight, style_weight, layer_weights, tv_weight, optimizer, lr, init,
                seed, octaves, octave_scale, bounds, progress):
    style = to_numpy(as_input(model, style).data)
    content = None if content is None else to_numpy(as_input(model, content).data)
    weights = _check(model, content, style, style_layers=style_layers,
                     content_layer=content_layer, style_weight=style_weight,
                     content_weight=content_weight, tv_weight=tv_weight,
                     layer_weights=layer_weights)
    if octaves < 1 or octave_scale <= 1:
        raise ValueError(f"need octaves >= 1 and octave_scale > 1, got {octaves}, {octave_scale}")
    x, history = None, {}
    for k in range(octaves):
        f = octave_scale ** (octaves - 1 - k)
        size = (round(shape[-2] / f), round(shape[-1] / f))
        c_k = None if content is None else opt.resize(content, size)
        s_k = style if f == 1 else opt.resize(style, (round(style.shape[-2] / f),
                                                      round(style.shape[-1] / f)))
        objective = style_weight * style_loss(gram_targets(model, s_k, style_layers), weights)
        if c_k is not None and content_weight:
            objective = objective + content_weight * content_loss(
                content_layer, code(model, c_k, content_layer))
        if tv_weight:
            objective = objective + tv_weight * tv_loss(int(np.prod(shape[:-2])) * size[0]
                                                              * size[1])
        x = _start(model, init, c_k, s_k, (1, shape[-3], *size), seed, bounds) if x is None \
            else opt.resize(x, size)
        x, hist = opt.ascend(model, -objective, x, steps, lr, optimizer=optimizer, bounds=bounds,
                             seed=seed + k, progress=progress,
                             desc=f"style (size {size[0]}x{size[1]})")
        hist["loss"] = [-v for v in hist["objective"]]
        hist["octave"] = [k] * len(hist["loss"])
        for name, values in hist.items():
            history.setdefault(name, []).extend(values)
    return x, history


def style_transfer(model, content, style, content_layer, style_layers, steps=50, *,
                   content_weight=1.0, style_weight=1e-2, layer_weights=None, tv_weight=0.0,
                   optimizer="lbfgs", lr=0.05, init="content", seed=0, octaves=1,
                   octave_scale=2.0, bounds="pixels", progress=False):
    """Paint ``content`` (1, C, H, W) in the style of ``style`` (1, C, H', W'), preprocessed.

    content_layer: one layer name; style_layers: a list of names; layer_weights: w_l
    (default 1/L each, all > 0). content_weight α >= 0, style_weight β > 0, tv_weight γ >= 0.
    The balance β/α depends on the network's activation scale (Gram entries grow as the
    square of the activations): 1e-2 suits ImageNet SqueezeNet; watch history["content"]
    and history["style"] and move β until both fall.
    optimizer: "lbfgs" (``steps`` iterations) or "adam" (with ``lr``). init: "content",
    "style" or "noise" (a white-noise image, seeded). octaves: multi-resolution.
    Returns (image: NumPy (1, C, H, W), history) — history["content"], ["style"], ["tv"]
    (unweighted terms), ["loss"] (the weighted total L) and ["octave"] (its index) per step.
    """
    if not isinstance(content_layer, str):
        raise ValueError(f"content_layer must be one layer name, got {content_layer!r}")
    content_shape = tuple(as_input(model, content).shape)
    return _synthesize(model, content, style, content_layer=content_layer,
                       style_layers=style_layers, steps=steps, shape=content_shape,
                       content_weight=content_weight, style_weight=style_weight,
                       layer_weights=layer_weights, tv_weight=tv_weight, optimizer=optimizer,
                       lr=lr, init=init, seed=seed, octaves=octaves, octave_scale=octave_scale,
                       bounds=bounds, progress=progress)


def texture_synthesis(model, style, style_layers, steps=50, *, shape=None, style_weight=1.0,
                      layer_weights=None, tv_weight=0.0, optimizer="lbfgs", lr=0.05, seed=0,
                      octaves=1, octave_scale=2.0, bounds="pixels", progress=False):
    """A new texture with the Gram statistics of ``style`` (style loss only, from noise).

    shape: (C, H, W) of the result (default: the style image's). Other options as in
    ``style_transfer``. Returns (image: NumPy (1, C, H, W), history).
    """
    shape = tuple(as_input(model, style).shape) if shape is None else (1, *shape)
    return _synthesize(model, None, style, content_layer=None, style_layers=style_layers,
                       steps=steps, shape=shape, content_weight=0.0, style_weight=style_weight,
                       layer_weights=layer_weights, tv_weight=tv_weight, optimizer=optimizer,
                       lr=lr, init="noise", seed=seed, octaves=octaves,
                       octave_scale=octave_scale, bounds=bounds, progress=progress)

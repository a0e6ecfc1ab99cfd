"""Looking at the weights and the activations themselves.

Filters (Krizhevsky et al. 2012, Fig. 3; CS231n "Visualizing what ConvNets learn"):
a first-layer filter W_f (C, kh, kw) acts directly on pixels, so drawn as a small
image it *is* the pattern it detects — oriented edges, colour blobs. Each filter is
min–max normalized on its own,

    show(W_f) = (W_f − min W_f) / (max W_f − min W_f),

in colour when the input has 3 channels, in grey otherwise. Deeper filters can be
drawn too, one grey map per input channel, but their inputs are the previous layer's
feature maps, not pixels: those pictures say little (smoothness at best, e.g. noisy
filters hint at too little regularization). Only the first layer is directly
interpretable; for deeper units look at their activations, their top images, or
their gradient / deconvnet projections instead.

Activation grids (Yosinski et al., "Understanding neural networks through deep
visualization", 2015; Karpathy's ConvNetJS): every channel of every layer for one
input, side by side — many are zero (ReLU), some respond to edges, some to parts.

    imgs = filter_images(model)                       # (F, kh, kw, 3) or (F, kh, kw), in [0, 1]
    probes = probe_responses(model)                   # what each RGB filter answers on two charts
    acts = activation_grids(model, image)             # {layer: (C, h, w) or (D,)}
"""
import numpy as np

from .. import nn
from ..autograd import no_grad
from ..backend import to_numpy
from ..nn import capture
from .common import as_input, check_layer

__all__ = ["first_conv_layer", "filter_images", "colour_parts", "probe_charts",
           "probe_responses", "activation_grids"]


def first_conv_layer(model):
    """Name of the first Conv2d in ``model.layer_names()`` order."""
    for name in model.layer_names():
        if isinstance(model.get_submodule(name), nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no Conv2d layer; layers: "
                     f"{', '.join(model.layer_names())}")


def _minmax(w, axes):
    lo = w.min(axis=axes, keepdims=True)
    hi = w.max(axis=axes, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (w - lo) / span


def filter_images(model, layer=None, per_channel=None):
    """A conv layer's filters as images in [0, 1] (NumPy), each filter min–max normalized.

    layer: a Conv2d name (default: the first one). per_channel: False gives one image per
    filter — (F, kh, kw, 3) RGB for 3 input channels (in RGB order even for a BGR model),
    (F, kh, kw) grey for 1 channel; True gives (F, C, kh, kw), one grey map per input
    channel (the only option for other channel counts; default: True iff C ∉ {1, 3}).
    The normalization is per filter over all its channels, so their relative strength
    shows. Caveat: only the first layer's filters see pixels; see the module docstring.
    """
    layer = first_conv_layer(model) if layer is None else check_layer(model, layer)
    m = model.get_submodule(layer)
    if not isinstance(m, nn.Conv2d):
        raise ValueError(f"layer {layer!r} is a {type(m).__name__}, not a Conv2d: "
                         f"it has no filters")
    w = np.asarray(to_numpy(m.weight.data), dtype=np.float64)        # (F, C, kh, kw)
    c = w.shape[1]
    if per_channel is None:
        per_channel = c not in (1, 3)
    w = _minmax(w, (1, 2, 3))
    if per_channel:
        return w
    if c == 1:
        return w[:, 0]
    if c != 3:
        raise ValueError(f"layer {layer!r} has {c} input channels: draw them with per_channel=True")
    pre = getattr(model, "preprocess", None)
    if getattr(pre, "channel_order", "RGB") == "BGR":
        w = w[:, ::-1]
    return w.transpose(0, 2, 3, 1)


def colour_parts(model, layer=None):
    """An RGB first-layer filter split into what every channel shares and what differs:

        W_f = L_f + C_f,   L_f[c] = mean over the 3 channels of W_f   (the luminance part)
                           C_f = W_f − L_f                             (the colour-opponent part)

    L_f responds to brightness patterns whatever their colour, C_f to colour contrasts
    (red against green, blue against yellow). Returns a dict: luminance (F, kh, kw) and
    colour (F, kh, kw, 3), both in the weights' own units (RGB order), and share, the
    fraction of each filter's energy ‖W_f‖² in its luminance part (F,)."""
    layer = first_conv_layer(model) if layer is None else check_layer(model, layer)
    m = model.get_submodule(layer)
    w = np.asarray(to_numpy(m.weight.data), dtype=np.float64)
    if not isinstance(m, nn.Conv2d) or w.shape[1] != 3:
        raise ValueError(f"colour_parts needs a Conv2d on 3 channels, {layer!r} has weights of "
                         f"shape {w.shape}")
    if getattr(getattr(model, "preprocess", None), "channel_order", "RGB") == "BGR":
        w = w[:, ::-1]
    lum = w.mean(axis=1, keepdims=True)
    colour = w - lum
    share = 3 * (lum ** 2).sum(axis=(1, 2, 3)) / (w ** 2).sum(axis=(1, 2, 3))
    return dict(luminance=lum[:, 0], colour=colour.transpose(0, 2, 3, 1), share=share)


def probe_charts(size=48):
    """Two test charts, (size, size, 3) float pixels 0–255, and their polar coordinates:

    disk:  a light grey disk on a dark ground — its rim is an edge of every orientation,
           dark outside, light inside (at angle θ the brightness rises toward the centre);
    wheel: the same disk painted with every hue (hue = angle θ, HSV saturation 1) on mid
           grey — inside, each small patch is one flat colour.
    Angles θ are in image coordinates: 0° to the right, 90° down. Returns a dict with
    disk, wheel, angle (size, size) in degrees [0, 360), radius (size, size) in pixels and
    r0, the disk's radius."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    radius, angle = np.hypot(yy, xx), np.degrees(np.arctan2(yy, xx)) % 360
    r0 = 0.38 * size
    inside = radius < r0
    disk = np.where(inside, 230.0, 25.0)[..., None].repeat(3, axis=-1)
    # HSV -> RGB at saturation 1, value 0.9: channel n is 0.9·(1 − clip(min(k, 4 − k), 0, 1)),
    # k = (n + θ/60) mod 6 with n = 5, 3, 1 for R, G, B
    k = (np.array([5, 3, 1]) + angle[..., None] / 60) % 6
    hues = 0.9 * (1 - np.clip(np.minimum(k, 4 - k), 0, 1))
    wheel = np.where(inside[..., None], 255 * hues, 128.0)
    return dict(disk=disk, wheel=wheel, angle=angle, radius=radius, r0=r0)


def _circular_mean(angles, weights):
    """(mean angle in degrees, vector strength in [0, 1]) of ``angles`` weighted by ``weights``
    (F, ...) over the last axes: strength 1 when all the weight sits at one angle, 0 when it
    spreads evenly around the circle."""
    z = np.exp(1j * np.radians(angles))
    total = weights.sum(axis=(1, 2))
    v = (weights * z).sum(axis=(1, 2)) / np.where(total > 0, total, 1)
    return np.degrees(np.angle(v)) % 360, np.abs(v)


def probe_responses(model, layer=None, size=48):
    """What each filter of an RGB conv layer answers: its rectified output max(0, W_f * I + b_f)
    on the two ``probe_charts`` (the net run up to that layer, in evaluation mode).

    On the disk only brightness changes, so only the rim can light, and where it lights says
    which edge direction the filter wants (a 3×3 filter's linear response to a smooth edge is
    m_f · ∇I, m_f = Σ_p L_f(p)·p the first moment of its luminance part: strongest where the
    edge's brightness rises along m_f). On the wheel each patch is a flat colour c, answered by
    s_f · c + b_f with s_f the filter's weights summed over its taps: a colour filter lights
    the sector of the hues it favours.
    Returns a dict: the charts (``probe_charts``), disk and wheel responses (F, size, size),
    rim_angle / rim_strength (F,): where on the rim the disk lights (circular mean, degrees,
    image coordinates) and how concentrated (1 = one point, 0 = evenly), hue / hue_strength
    (F,): the same over the wheel's interior — its preferred hue in degrees (0 red, 120
    green, 240 blue)."""
    layer = first_conv_layer(model) if layer is None else check_layer(model, layer)
    m = model.get_submodule(layer)
    if not isinstance(m, nn.Conv2d) or m.weight.shape[1] != 3:
        raise ValueError(f"probe_responses needs a Conv2d on 3 channels, {layer!r} has weights "
                         f"of shape {tuple(m.weight.shape)}")
    charts = probe_charts(size)
    pre = getattr(model, "preprocess", None)
    if pre is None:
        raise ValueError("probe_responses: the model has no preprocess, so the charts' pixels "
                         "cannot be turned into its inputs; set model.preprocess")
    x = np.concatenate([pre.preprocess(charts[k]) for k in ("disk", "wheel")])
    was_training = model.training
    model.eval()
    try:
        with no_grad(), capture(model, layer, stop=True) as acts:
            model(as_input(model, x))
    finally:
        model.train(was_training)
    out = np.maximum(np.asarray(to_numpy(acts[layer].data), dtype=np.float64), 0)
    if out.shape[-2:] != (size, size):
        raise ValueError(f"probe_responses: {layer!r} changes the image size ({size} -> "
                         f"{out.shape[-1]}): only 'same'-padded, stride-1 layers are probed")
    disk, wheel = out[0], out[1]
    radius, r0 = charts["radius"], charts["r0"]
    rim = (np.abs(radius - r0) < 2.5)[None]
    interior = ((radius > 4) & (radius < r0 - 3))[None]
    rim_angle, rim_strength = _circular_mean(charts["angle"], disk * rim)
    hue, hue_strength = _circular_mean(charts["angle"], wheel * interior)
    return dict(charts, layer=layer, disk_response=disk, wheel_response=wheel,
                rim_angle=rim_angle, rim_strength=rim_strength, hue=hue,
                hue_strength=hue_strength)


def activation_grids(model, image, layers=None):
    """Every channel of every named layer for one input image: {layer: (C, h, w) or (D,)}.

    image: one preprocessed image (C, H, W) (or a batch of one). layers: names (default:
    every leaf layer, in ``layer_names()`` order). Evaluation mode, no gradients.
    Returns NumPy arrays; the layer's output shape is ``(1, *array.shape)``.
    """
    x = as_input(model, image)
    if x.shape[0] != 1:
        raise ValueError(f"activation_grids takes one image, got a batch of shape {x.shape}")
    if layers is None:
        layers = [n for n in model.layer_names() if not model.get_submodule(n).children()]
    layers = [check_layer(model, n) for n in ([layers] if isinstance(layers, str) else layers)]
    was_training = model.training
    model.eval()
    try:
        with no_grad(), capture(model, layers) as acts:
            model(x)
    finally:
        model.train(was_training)
    return {n: to_numpy(acts[n].data[0]) for n in layers if n in acts}

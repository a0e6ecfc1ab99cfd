"""Receptive fields: which input pixels a unit can see (the geometric field, from the
layers' kernels, strides and paddings) and how much each of them matters (the effective
field, from gradients).

1. The geometric receptive field — ``receptive_field``, ``rf_box``, ``crop_receptive_field``.

Walking a chain of layers from the input, each conv or pooling layer with kernel k
(dilation d: effective kernel d(k − 1) + 1), stride s and padding p changes the
geometry of one unit's field, per spatial axis:

    size_out  = size_in + (k − 1) · jump_in           how many input pixels one unit spans
    jump_out  = jump_in · s                           input pixels between neighbouring units
    start_out = start_in − p · jump_in                first input pixel of unit 0 (may be < 0)

starting from size 1, jump 1, start 0 at the input. Unit i of the layer then covers
input pixels [start + i·jump, start + i·jump + size) — the part outside the image is
padding. Pointwise layers (ReLU, batch norm, dropout) change nothing; a Linear layer,
Flatten or an adaptive pool sees the whole input. (Dumoulin & Visin, "A guide to
convolution arithmetic for deep learning", 2016; Araujo, Norris & Sim, "Computing
receptive fields of convolutional neural networks", Distill 2019.)

    rf = receptive_field(fashion_net(), "features.5")
    # ReceptiveField(size=(10, 10), jump=(2, 2), start=(-4, -4))
    patch = crop_receptive_field(image, rf, (i, j))

2. The effective receptive field (Luo, Li, Urtasun & Zemel, NeurIPS 2016) —
``effective_receptive_field``, ``centre_signal``.

A unit's *theoretical* receptive field is every input pixel that can reach it; its
*effective* receptive field is how much each of those pixels actually matters. Luo
et al. place a gradient of 1 at the centre of a layer's output (every channel) and 0
elsewhere, backpropagate it to the input, and average the magnitude over inputs:

    ERF_l[i, j] = E_x [ Σ_c | ∂( Σ_k a_l[k, hc, wc] ) / ∂x[c, i, j] | ]

with (hc, wc) = (h // 2, w // 2) the centre of layer l's h × w map. The support is
the theoretical field ((2k+1)² pixels after k stacked 3×3 convs); the mass inside
it is roughly Gaussian and occupies a shrinking fraction of it as depth grows.

    maps = effective_receptive_field(model, ["features.1", "features.6"], (1, 28, 28))
"""
from collections import namedtuple

import numpy as np
from tqdm.auto import tqdm

from .. import nn
from ..autograd import Tensor
from ..backend import as_backend, get_array_module, to_numpy
from ..nn import capture
from .common import check_layer, frozen, model_backend, model_dtype

__all__ = ["ReceptiveField", "receptive_field", "rf_box", "crop_receptive_field",
           "effective_receptive_field", "centre_signal", "centre_unit_boxes", "mass_fraction"]

# ------------------------------------------------- the geometric receptive field
ReceptiveField = namedtuple("ReceptiveField", "size jump start")
ReceptiveField.__doc__ = """(size, jump, start), each an (h, w) pair of ints (module docstring)."""

_POINTWISE = tuple(getattr(nn, name) for name in ("ReLU", "ReLU6", "BatchNorm2d", "Dropout",
                                                  "Identity") if hasattr(nn, name))
_GLOBAL = tuple(getattr(nn, name) for name in ("Linear", "Flatten", "AdaptiveAvgPool2d")
                if hasattr(nn, name))


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _layer_geometry(name, m):
    """(kernel, stride, padding) pairs of one layer, None if pointwise, 'global' for dense."""
    if isinstance(m, _POINTWISE):
        return None
    if isinstance(m, _GLOBAL):
        return "global"
    if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
        d = _pair(getattr(m, "dilation", 1))
        return tuple(d[a] * (k[a] - 1) + 1 for a in range(2)), s, p
    raise ValueError(f"receptive_field: no geometry rule for {type(m).__name__} {name!r}; "
                     f"covered: Conv2d, MaxPool2d, AvgPool2d, pointwise layers "
                     f"({', '.join(c.__name__ for c in _POINTWISE)}) and dense ones")


def _chain(model, layer):
    """[(name, leaf module)] run from the input up to and including ``layer``.

    The model's own children and every Sequential run in order; any other container
    with several children (a Fire module, a residual block) has branches, not a chain.
    """
    out, module, prefix = [], model, ""
    parts = layer.split(".")
    for depth, part in enumerate(parts):
        if depth > 0 and not isinstance(module, nn.Sequential):
            raise ValueError(f"receptive_field: {type(module).__name__} {prefix!r} is not a chain "
                             f"of layers (it has branches); the arithmetic covers the model's "
                             f"top-level children and Sequential containers")
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if name == part:
                module, prefix = child, full
                break
            out += _leaves(child, full)
    return out + _leaves(module, prefix)


def _leaves(module, prefix):
    children = list(module.named_children())
    if not children:
        return [(prefix, module)]
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"receptive_field: {type(module).__name__} {prefix!r} is not a chain of "
                         f"layers (it has branches); the arithmetic covers Sequential chains")
    return [leaf for name, c in children for leaf in _leaves(c, f"{prefix}.{name}")]


def receptive_field(model, layer):
    """ReceptiveField(size, jump, start) of one unit of ``layer``'s output, from the layer
    geometry alone (see the module docstring). A layer after a Linear/Flatten/adaptive
    pool sees the whole input: that raises ValueError (there is nothing to crop)."""
    check_layer(model, layer)
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for name, m in _chain(model, layer):
        geo = _layer_geometry(name, m)
        if geo is None:
            continue
        if geo == "global":
            raise ValueError(f"layer {layer!r} comes after {type(m).__name__} {name!r}: each of "
                             f"its units sees the whole input, there is no receptive field to crop")
        k, s, p = geo
        for a in range(2):
            start[a] -= p[a] * jump[a]
            size[a] += (k[a] - 1) * jump[a]
            jump[a] *= s[a]
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def rf_box(rf, position):
    """(top, left, bottom, right), half-open, of unit ``position`` = (i, j) in input pixels
    (may extend past the image: that part is padding)."""
    i, j = position
    top, left = rf.start[0] + i * rf.jump[0], rf.start[1] + j * rf.jump[1]
    return top, left, top + rf.size[0], left + rf.size[1]


def crop_receptive_field(image, rf, position, fill=0):
    """The (C, size_h, size_w) patch of ``image`` (C, H, W) seen by unit ``position``;
    pixels of the field that fall outside the image are ``fill``."""
    if image.ndim != 3:
        raise ValueError(f"crop_receptive_field: image must be (C, H, W), got {image.shape}")
    xp = get_array_module(image)
    top, left, bottom, right = rf_box(rf, position)
    _, H, W = image.shape
    out = xp.full((image.shape[0], bottom - top, right - left), fill, dtype=image.dtype)
    r0, r1, c0, c1 = max(top, 0), min(bottom, H), max(left, 0), min(right, W)
    if r0 < r1 and c0 < c1:
        out[:, r0 - top:r1 - top, c0 - left:c1 - left] = image[:, r0:r1, c0:c1]
    return out


# ------------------------------------------------- the effective receptive field
def centre_signal(act):
    """Upstream gradient: 1 at the centre position of every channel of ``act`` (N, C, h, w)."""
    if len(act.shape) != 4:
        raise ValueError(f"the effective receptive field needs a spatial layer (N, C, h, w), "
                         f"got output shape {act.shape}")
    g = get_array_module(act.data).zeros(act.shape, dtype=act.dtype)
    g[:, :, act.shape[2] // 2, act.shape[3] // 2] = 1
    return g


def effective_receptive_field(model, layers, input_shape=None, n_samples=32, batch_size=16,
                              seed=0, progress=False):
    """One ERF map (H, W) per layer name, averaged over ``n_samples`` random inputs.

    input_shape: (C, H, W); default: the model's ``preprocess.input_size`` and channels.
    Inputs are standard normal (the scale of preprocessed images), drawn from ``seed``,
    the same inputs for every layer. Returns {layer: NumPy (H, W)}.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    for layer in layers:
        check_layer(model, layer)
    if input_shape is None:
        pre = getattr(model, "preprocess", None)
        if pre is None or pre.input_size is None:
            raise ValueError("give input_shape=(C, H, W): the model has no preprocess.input_size")
        input_shape = (pre.channels, *pre.input_size)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((n_samples, *input_shape)).astype(model_dtype(model))
    maps = {layer: np.zeros(input_shape[1:]) for layer in layers}
    with frozen(model, eval_mode=False):
        for start in tqdm(range(0, n_samples, batch_size), disable=not progress, desc="ERF"):
            for layer in layers:
                x = Tensor(as_backend(xs[start:start + batch_size], model_backend(model)),
                           requires_grad=True)
                with capture(model, [layer], stop=True) as acts:
                    model(x)
                acts[layer].backward(centre_signal(acts[layer]))
                maps[layer] += to_numpy(get_array_module(x.grad).abs(x.grad).sum(axis=(0, 1)))
    return {layer: m / n_samples for layer, m in maps.items()}


def centre_unit_boxes(model, layers, input_shape=None):
    """{layer: (top, left, bottom, right)}: the geometric receptive field of the unit that
    ``effective_receptive_field`` backpropagates from (the centre of the layer's map, on an
    input of ``input_shape`` (C, H, W), default the model's), clipped to the image."""
    from ..autograd import no_grad
    layers = [layers] if isinstance(layers, str) else list(layers)
    if input_shape is None:
        pre = model.preprocess
        input_shape = (pre.channels, *pre.input_size)
    x = Tensor(as_backend(np.zeros((1, *input_shape), model_dtype(model)), model_backend(model)))
    with frozen(model, eval_mode=True), no_grad(), capture(model, layers) as acts:
        model(x)
    boxes = {}
    for layer in layers:
        h, w = acts[layer].shape[2:]
        top, left, bottom, right = rf_box(receptive_field(model, layer), (h // 2, w // 2))
        boxes[layer] = (max(top, 0), max(left, 0), min(bottom, input_shape[1]),
                        min(right, input_shape[2]))
    return boxes


def mass_fraction(erf, box, mass=0.9):
    """How much of the geometric field the effective one fills: the fewest pixels holding
    ``mass`` of the ERF's total, divided by the area of ``box`` (top, left, bottom, right).
    Luo et al.: this falls with depth — the ERF is a Gaussian-like bump in a growing box."""
    v = np.sort(np.asarray(erf, np.float64).ravel())[::-1]
    count = int(np.searchsorted(np.cumsum(v), mass * v.sum())) + 1
    top, left, bottom, right = box
    return count / ((bottom - top) * (right - left))

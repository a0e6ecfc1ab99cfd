"""Receptive-field arithmetic: which input pixels a unit of a layer can see.

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
"""
from collections import namedtuple

import numpy as np

from .. import nn
from ..backend import get_array_module
from .common import check_layer

__all__ = ["ReceptiveField", "receptive_field", "rf_box", "crop_receptive_field"]

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

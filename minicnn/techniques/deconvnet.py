"""Zeiler & Fergus' deconvnet, built the way the paper draws it (ECCV 2014, Fig. 1).

"Visualizing and Understanding Convolutional Networks": to see what a unit
responds to, keep its activation, set every other activation of its layer to
zero, and send that map *down* the network, layer by layer, with each layer's
approximate inverse:

    max-pool  ->  max_unpool2d(R, switches)       the switches are the forward pass's argmax
                                                   positions: the value goes back where the
                                                   maximum came from, zeros elsewhere
    ReLU      ->  relu(R)                          rectification (the forward mask is ignored)
    conv      ->  conv_transpose2d(R, W)           the *same* filters W, transposed (no bias)
    linear    ->  R · W                            (the transpose of x · Wᵀ)

That is why minicnn has index-based unpooling and transposed convolution as ops
of their own. The result is identical to one backward pass with the "deconvnet"
ReLU rule (``deconvnet``, first below): max_unpool2d with the switches *is*
max-pooling's backward, conv_transpose2d *is* conv2d's input gradient, and the rule
g·(g > 0) is the rectification — a test checks the two agree to 1e-10 in float64.

    proj = deconvnet_projection(model, x, "features.7", unit=(5, 3, 4))     # (C, H, W)
    same = deconvnet(model, x, layer="features.7", unit=(5, 3, 4))          # by the rule

The top-9 panels of the paper (a unit's strongest activations over a dataset, each
projected down) combine this with ``top_activations.top_patches(..., project=...)``;
``plot.attribution.deconvnet_panel`` draws them.

What of the image reaches the picture: the down-pass is linear (transposed filters,
rectification of the *signal*) except for the max-pool switches — they are the
only place the input enters (besides the starting activation of a unit). A network
without max-pooling (EfficientNet: strided convs, BatchNorm, ReLU6) gives the same
deconvnet image for a class whatever the input (``has_switches`` tells which kind a
model is); on conv/ReLU/max-pool nets the projection follows the image's own edges
(``edge_correlation`` measures it).

Works on chains of Conv2d / ReLU / MaxPool2d / Linear / Flatten / Dropout (eval) /
Identity layers — the nets Zeiler & Fergus studied, like fashion_net and cifar_net.
Other layers (BatchNorm, average pools, branches) have no inverse here: for those
networks use the ReLU rule, which needs none.
"""
from typing import NamedTuple

import numpy as np

from .. import nn, ops
from ..autograd import Tensor, no_grad
from ..backend import get_array_module, to_numpy
from ..nn import capture
from .common import check_layer
from .gradients import image_batch, input_gradient, unit_signal

__all__ = ["deconvnet", "deconvnet_projection", "forward_chain", "has_switches",
           "edge_correlation", "strongest_activations", "edge_strength"]

_INVERTIBLE = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear, nn.Flatten, nn.Dropout, nn.Identity)


def deconvnet(model, x, target=None, layer=None, unit=None, signal="activation"):
    """Deconvnet projection by the ReLU rule (Zeiler & Fergus 2014), one backward pass with

        at every ReLU:  R_in = R_out · (R_out > 0)      (the forward mask is ignored)

    everything else (max-pool switches, transposed filters) is backprop's own
    backward. For a class (``target``) or a unit (``layer``, ``unit``; by default it
    starts from the unit's activation, all other units 0, like Zeiler & Fergus).
    Works on any network; ``deconvnet_projection`` below builds the same down-pass
    explicitly — and gives the same image. Returns the signed map, shape of x.
    """
    return input_gradient(model, x, target, layer, unit, signal, relu_rule="deconvnet")


def has_switches(model):
    """Whether the model has a max-pool layer: the deconvnet's one image-dependent step."""
    return any(isinstance(m, nn.MaxPool2d) for _, m in model.named_modules())


def strongest_activations(model, x, layer, fraction=0.01):
    """The signal that projects a layer's strongest activations at once: per image, the
    activations of ``layer`` in the top ``fraction`` of that image's whole layer output
    (all channels and positions), every other one 0. x: (N, C, H, W) or (C, H, W). Give it
    to ``deconvnet(model, x, layer=layer, signal=...)``: the picture of what the layer
    found most strongly in this image, wherever it lies."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    xt, _ = image_batch(model, x)
    with no_grad(), capture(model, [check_layer(model, layer)], stop=True) as acts:
        model(xt)
    a = to_numpy(acts[layer].data)
    flat = a.reshape(len(a), -1)
    keep = max(1, int(round(fraction * flat.shape[1])))
    threshold = np.sort(flat, axis=1)[:, -keep][:, None]               # the keep-th largest
    return np.where(flat >= threshold, flat, 0).reshape(a.shape).astype(a.dtype)


def edge_strength(pixels):
    """Edge strength of an image (H, W[, 3]): the norm of its finite-difference gradient,
    max over colours, (H, W)."""
    img = np.asarray(to_numpy(pixels), dtype=np.float64)
    img = img[..., None] if img.ndim == 2 else img
    gy, gx = np.gradient(img, axis=(0, 1))
    return np.hypot(gx, gy).max(axis=-1)


def edge_correlation(projection, pixels):
    """Pearson correlation of |projection| (C, H, W) (max over channels) with the image's edge
    strength: the norm of the finite-difference gradient of ``pixels`` (H, W[, 3]), max
    over colours. High: the projection draws this image's contours."""
    p = np.abs(np.asarray(to_numpy(projection), dtype=np.float64)).max(axis=0)
    return float(np.corrcoef(p.ravel(), edge_strength(pixels).ravel())[0, 1])


def _leaves(model):
    return [name for name, m in model.named_modules() if name and not m.children()]


class Step(NamedTuple):
    """One layer of the forward chain: what its step down needs."""
    name: str
    module: object        # the layer
    shape_in: tuple       # its input's shape
    output: object        # its output Tensor
    switches: object      # max-pool argmax indices, else None


def forward_chain(model, x):
    """Run the model as Zeiler & Fergus' forward pass: a list of ``Step``s, one per layer in
    the order the model calls them, each ``(name, module, shape_in, output, switches)``
    (switches: the max-pool argmax indices, else None).

    The order comes from capturing every leaf layer during one ``model(x)``; the chain is
    then recomputed layer by layer and must reproduce each captured output — so a model that
    is not a plain chain (branches, reused layers) is refused rather than misread.
    """
    names = _leaves(model)
    with no_grad(), capture(model, names) as acts:
        model(x)
    steps, h = [], x
    with no_grad():
        for name in acts:                                   # insertion order = call order
            m = model.get_submodule(name)
            if not isinstance(m, _INVERTIBLE) or (isinstance(m, nn.Dropout) and m.training):
                raise TypeError(
                    "deconvnet_projection needs a chain of "
                    f"{', '.join(c.__name__ for c in _INVERTIBLE)} layers (Dropout in eval "
                    f"mode); layer {name!r} is {m.label()}"
                    f"{' in training mode' if isinstance(m, nn.Dropout) else ''}. Use "
                    "deconvnet (the ReLU rule), which works on any network")
            shape_in, switches = h.shape, None
            if isinstance(m, nn.MaxPool2d):
                h, switches = ops.max_pool2d(h, m.kernel_size, m.stride, m.padding,
                                             ceil_mode=m.ceil_mode, return_indices=True)
            else:
                if isinstance(m, nn.Linear) and h.ndim > 2:
                    h = h.flatten(1)                      # the model's own .flatten(1)
                try:
                    h = m(h)
                except ValueError:
                    h = None
            if h is None or h.shape != acts[name].shape or not _close(h.data, acts[name].data):
                raise ValueError(f"deconvnet_projection: the model is not a plain chain of its "
                                 f"layers: {m.label()} applied to the previous layer's output "
                                 f"does not give its output {acts[name].shape}. Use "
                                 "deconvnet (the ReLU rule), which works on any network")
            steps.append(Step(name, m, shape_in, h, switches))
    return steps


def _close(a, b):
    xp = get_array_module(a)
    scale = float(xp.abs(b).max()) if b.size else 0.0
    return float(xp.abs(a - b).max()) <= 1e-5 * max(scale, 1e-30) if a.size else True


def _down(m, r, shape_in, switches):
    """One step down: the approximate inverse of layer ``m`` applied to the signal ``r``."""
    if isinstance(m, nn.ReLU):
        return ops.relu(r)                                                   # rectification
    if isinstance(m, nn.MaxPool2d):
        return ops.max_unpool2d(r, switches, output_size=shape_in[2:])      # switches
    if isinstance(m, nn.Conv2d):
        (sh, sw), (ph, pw), (kh, kw) = m.stride, m.padding, m.kernel_size
        h, w = r.shape[2:]
        extra = (shape_in[2] - ((h - 1) * sh - 2 * ph + kh),       # the rows a strided conv
                 shape_in[3] - ((w - 1) * sw - 2 * pw + kw))       # dropped at the edge
        return ops.conv_transpose2d(r, m.weight, None, stride=m.stride, padding=m.padding,
                                    output_padding=extra, groups=m.groups)   # same filters
    if isinstance(m, nn.Linear):
        r = ops.matmul(r, m.weight)                                          # Wᵀ applied
    return r.reshape(*shape_in)                            # Flatten, Dropout (eval), Identity


def deconvnet_projection(model, x, layer, unit=None, signal="activation"):
    """Project one unit of ``layer`` down to pixel space with the explicit deconvnet.

    x: (C, H, W) or (N, C, H, W); layer: a layer name of the chain (a container name
    means its last layer); unit: channel c or (c, i, j); signal: "activation" (Zeiler &
    Fergus: the unit's activation, all others 0), "one", or an array of the layer's
    output shape. Returns the reconstruction, shape of x (NumPy).
    """
    check_layer(model, layer)
    xt, single = image_batch(model, x)
    steps = forward_chain(model, xt)
    names = [s.name for s in steps]
    inside = [i for i, n in enumerate(names) if n == layer or n.startswith(layer + ".")]
    if not inside:
        raise ValueError(f"layer {layer!r} is not run by the forward pass; chain layers: "
                         f"{', '.join(names)}")
    top = inside[-1]
    r = Tensor(unit_signal(steps[top].output, unit, signal))
    with no_grad():
        for name, m, shape_in, _, switches in reversed(steps[:top + 1]):
            r = _down(m, r, shape_in, switches)
    out = to_numpy(r.reshape(*xt.shape).data)
    return out[0] if single else out

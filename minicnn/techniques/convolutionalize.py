"""Convolutionalization (Long, Shelhamer & Darrell 2015, "Fully Convolutional Networks"):
a classifier's fully connected layers are convolutions whose kernel covers their whole input.

    fcn = convolutionalize(model, input_size=(28, 28))
    scores = score_maps(fcn, canvas)        # (N, K, Ho, Wo): the classifier at every window
    labels = window_labels(scores[0], 0.8)  # (Ho, Wo): 1 + top class, 0 where p < 0.8

The first Linear reads the flattened last feature map (C, h, w) (PyTorch's flatten
order c·h·w + i·w + j), so with W1 of shape (D, C·h·w)

    Linear:  y_d = Σ_{c,i,j} W1[d, c·h·w + i·w + j] · a[c, i, j] + b_d
    Conv2d with kernel K1 = W1.reshape(D, C, h, w), no padding: the same sum, at offset (0, 0)

and every later Linear (E, D) is a 1×1 conv with kernel W.reshape(E, D, 1, 1).
ReLU and Dropout act per element and stay. On the original input size the
output is (N, K, 1, 1) — the same logits. On a larger input the feature map is
larger, the kernel slides over it, and output cell (u, v) is the classifier's
answer for the input window at rows s·u … s·u + H − 1, cols s·v … s·v + W − 1,
s = the body's total stride. The sliding is done once for all windows, sharing
the features of overlapping windows. (Exactly equal to running the classifier
on that crop when the body has no padding; with padded convs the crop would
see zeros at its border where the large image shows its neighbours.)
"""
import copy

import numpy as np

from .. import nn, ops
from ..autograd import Tensor, no_grad
from ..backend import as_backend, to_numpy
from .common import as_input, model_backend, model_dtype

__all__ = ["convolutionalize", "FullyConvolutional", "total_stride", "score_maps",
           "window_labels", "window_centers"]

_KEPT = (nn.ReLU, nn.ReLU6, nn.Dropout, nn.Identity)


def total_stride(module):
    """Product of the strides of every Conv2d and pooling layer in ``module`` -> (sh, sw)."""
    sh = sw = 1
    for _, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            s = m.stride if isinstance(m.stride, tuple) else (m.stride, m.stride)
            sh, sw = sh * s[0], sw * s[1]
    return sh, sw


class FullyConvolutional(nn.Module):
    """``features`` (a copy of the body) -> ``classifier`` (the head as convs).

    x (N, C, H', W') -> scores (N, K, Ho, Wo); ``stride`` (sh, sw) between windows,
    ``window`` (H, W) the input size the classifier was built for.
    """

    def __init__(self, features, classifier, stride, window):
        super().__init__()
        self.features, self.classifier = features, classifier
        self.stride, self.window = stride, window

    def forward(self, x):
        return self.classifier(self.features(x))


def _split(model, body, head):
    """(body module, [(name, head layer)]) — a Sequential splits at its Flatten."""
    if body is None and head is None and isinstance(model, nn.Sequential):
        children = model.named_children()
        cut = [i for i, (_, m) in enumerate(children) if isinstance(m, nn.Flatten)]
        if not cut:
            raise ValueError("convolutionalize: the Sequential model has no Flatten layer "
                             f"separating its conv body from its Linear head: {model.layer_names()}")
        return model[:cut[0]], children[cut[0]:]
    body, head = body or "features", head or "classifier"
    body_mod, head_mod = model.get_submodule(body), model.get_submodule(head)
    if isinstance(head_mod, nn.Sequential):
        layers = [(f"{head}.{n}", m) for n, m in head_mod.named_children()]
    else:
        layers = [(head, head_mod)]
    return body_mod, layers


def convolutionalize(model, input_size, body=None, head=None):
    """An equivalent fully convolutional net: every Linear of the head becomes a Conv2d.

    model: a Sequential (split at its first Flatten), or a model with a conv ``body``
    (default "features") and a ``head`` (default "classifier", a Sequential of Linear /
    ReLU / Dropout / Flatten) applied as ``head(body(x).flatten(1))``.
    input_size: (H, W) the classifier was trained at: it fixes the first kernel's size.
    Returns a FullyConvolutional with copies of the weights (the model is not changed).
    """
    body_mod, layers = _split(model, body, head)
    h, w = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
    convs = [m for _, m in body_mod.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("convolutionalize: the body has no Conv2d layer to read the input "
                         "channels from")
    probe = as_backend(np.zeros((1, convs[0].in_channels, h, w)), model_backend(model))
    was_training = model.training
    model.eval()
    with no_grad():
        fmap = body_mod(Tensor(probe.astype(model_dtype(model)))).shape[1:]   # (C, h', w')
    model.train(was_training)
    out, first, channels = [], True, fmap[0]
    for name, layer in layers:
        if isinstance(layer, nn.Flatten):
            continue
        if isinstance(layer, _KEPT):
            out.append(copy.deepcopy(layer))
            continue
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"convolutionalize: layer {name!r} is a {type(layer).__name__}; "
                             "the head may only hold Linear, ReLU, Dropout and Flatten layers")
        kernel = fmap[1:] if first else (1, 1)
        need = channels * kernel[0] * kernel[1]
        if layer.in_features != need:
            what = (f"the last feature map for input {h}×{w} is {tuple(fmap)} = {need} values"
                    if first else f"the previous layer gives {channels} channels")
            raise ValueError(f"convolutionalize: Linear {name!r} has {layer.in_features} input "
                             f"features but {what}")
        conv = nn.Conv2d(channels, layer.out_features, kernel, bias=layer.bias is not None)
        conv.weight.data = layer.weight.data.reshape(layer.out_features, channels, *kernel).copy()
        if layer.bias is not None:
            conv.bias.data = layer.bias.data.copy()
        out.append(conv)
        first, channels = False, layer.out_features
    if first:
        raise ValueError(f"convolutionalize: the head {[n for n, _ in layers]} has no Linear layer")
    fcn = FullyConvolutional(copy.deepcopy(body_mod), nn.Sequential(*out),
                             total_stride(body_mod), (h, w))
    for attr in ("preprocess", "labels", "arch"):
        if hasattr(model, attr):
            setattr(fcn, attr, getattr(model, attr))
    return fcn.train(was_training)


def score_maps(fcn, x, softmax=True, batch_size=16):
    """Class scores of every window: (N, K, Ho, Wo) NumPy (probabilities if ``softmax``).

    x: preprocessed input (N, C, H, W) or (C, H, W), H, W ≥ the fcn's window.
    """
    data = as_input(fcn, x).data
    if data.shape[2] < fcn.window[0] or data.shape[3] < fcn.window[1]:
        raise ValueError(f"score_maps: input of shape {tuple(data.shape)} is smaller than the "
                         f"classifier's window {fcn.window}")
    fcn.eval()
    out = []
    with no_grad():
        for i in range(0, data.shape[0], batch_size):
            s = fcn(Tensor(data[i:i + batch_size]))
            out.append(to_numpy((ops.softmax(s, axis=1) if softmax else s).data))
    return np.concatenate(out)


def window_centers(fcn, out_size):
    """Pixel rows and cols (float) of the centre of each score cell's window, for (Ho, Wo)."""
    (sh, sw), (h, w) = fcn.stride, fcn.window
    return (np.arange(out_size[0]) * sh + (h - 1) / 2, np.arange(out_size[1]) * sw + (w - 1) / 2)


def window_labels(probs, threshold):
    """A label map from one canvas' window probabilities (K, Ho, Wo): 1 + the top class
    where its probability is at least ``threshold``, 0 (background) elsewhere.

    A classifier has no background class: over empty canvas, or a window that cuts
    through two items, its softmax still sums to 1, spread over a few classes. The
    threshold keeps only the windows it is sure about."""
    probs = np.asarray(to_numpy(probs))
    if probs.ndim != 3:
        raise ValueError(f"window_labels: probs must be (K, Ho, Wo), got shape {probs.shape}")
    if not 0 < threshold <= 1:
        raise ValueError(f"window_labels: threshold must be in (0, 1], got {threshold}")
    return np.where(probs.max(axis=0) >= threshold, probs.argmax(axis=0) + 1, 0)

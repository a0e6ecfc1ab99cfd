"""Effective receptive field (Luo, Li, Urtasun & Zemel, NeurIPS 2016).

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
import numpy as np
from tqdm.auto import tqdm

from ..autograd import Tensor
from ..backend import as_backend, get_array_module, to_numpy
from ..nn import capture
from .common import check_layer, model_backend, model_dtype
from .gradients import frozen

__all__ = ["effective_receptive_field", "centre_signal"]


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
    with frozen(model):
        for start in tqdm(range(0, n_samples, batch_size), disable=not progress, desc="ERF"):
            for layer in layers:
                x = Tensor(as_backend(xs[start:start + batch_size], model_backend(model)),
                           requires_grad=True)
                with capture(model, [layer], stop=True) as acts:
                    model(x)
                acts[layer].backward(centre_signal(acts[layer]))
                maps[layer] += to_numpy(get_array_module(x.grad).abs(x.grad).sum(axis=(0, 1)))
    return {layer: m / n_samples for layer, m in maps.items()}

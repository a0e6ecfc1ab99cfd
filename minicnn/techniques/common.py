"""What every technique shares: inputs on the model's backend, targets checked, one unit picked.

    x = as_input(model, image)              # (N, C, H, W) Tensor, model's backend and dtype
    check_image(array, channels=3)          # what as_input refuses: see its docstring
    check_target(logits, target)            # clear error for an out-of-range class
    score = unit_score(act, unit)           # sum of one channel / one position of an activation
"""
import contextlib

import numpy as np

from ..autograd import Tensor
from ..backend import as_backend, backend_name, get_array_module
from ..nn.module import UnknownLayerError

__all__ = ["frozen", "model_backend", "model_dtype", "as_input", "check_target", "unit_score",
           "unit_gradient", "check_layer", "check_image", "NonFiniteInputError", "mass_in_box"]


def _first_parameter(model):
    for p in model.parameters():
        return p
    return None


def model_backend(model):
    """Backend name of the model's parameters ('numpy' for a parameter-free model)."""
    p = _first_parameter(model)
    return "numpy" if p is None else backend_name(p.data)


def model_dtype(model):
    p = _first_parameter(model)
    return np.float32 if p is None else p.data.dtype


class NonFiniteInputError(ValueError, FloatingPointError):
    """An input holding NaN or ±inf: a ValueError (a bad argument) and a FloatingPointError."""


def check_image(data, channels=None, who="the input image"):
    """Refuse, with a message saying what to do, an input no technique can explain:

    * not (N, C, H, W) or (C, H, W); an empty batch (N = 0);
    * channels last, (H, W, C) or (N, H, W, C), as a photo is loaded: it would be read as
      C·H images of width C, or a greyscale batch;
    * raw pixels: an integer dtype (uint8 0..255) instead of the model's preprocessed floats;
    * NaN or ±inf anywhere (the error gives how many and the index of the first).
    ``channels``: the C the model expects, checked if given; ``who`` starts the NaN message.
    """
    shape = tuple(data.shape)
    kind = data.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"the input image must be a float array, got dtype {data.dtype}")
    if kind in "iub":
        raise TypeError(f"the input image has dtype {data.dtype} (raw pixels?); techniques take "
                        "the model's input: preprocess it first, e.g. "
                        "model.preprocess.preprocess(pixels) -> float32 (N, C, H, W)")
    if len(shape) not in (3, 4):
        raise ValueError(f"expected an image batch (N, C, H, W) or one image (C, H, W), "
                         f"got shape {shape}")
    c = shape[-3]
    if channels is not None and c != channels:
        hint = ""
        if channels == 1 and 3 in (c, shape[-1]):
            hint = (" — an RGB image for a greyscale model: load it as greyscale, e.g. "
                    "model.preprocess.load(path), or convert it with load_image(path, 'L')")
        elif shape[-1] == channels:
            hint = (" — the channels come last, as in a loaded photo (H, W, C); preprocess it "
                    "(model.preprocess.preprocess) or transpose it to (C, H, W)")
        raise ValueError(f"the model expects {channels} input channels, got an image of "
                         f"shape {shape}{hint}")
    if len(shape) == 4 and shape[0] == 0:
        raise ValueError(f"the input is an empty batch (N = 0, shape {shape}); pass at least "
                         "one image")
    xp = get_array_module(data)
    finite = xp.isfinite(data)
    if not bool(finite.all()):
        bad = int(data.size - int(finite.sum()))
        first = tuple(int(i) for i in np.unravel_index(int(xp.argmin(finite.ravel())), shape))
        raise NonFiniteInputError(f"{who}: the image is not finite (NaN or ±inf) at {bad} "
                                  f"value(s), the first at index {first} of shape {shape} "
                                  f"(value {data[first]})")


def as_input(model, x, requires_grad=False, channels=None, who="the input image"):
    """An image batch as a fresh leaf Tensor on the model's backend and dtype.

    x: array or Tensor (N, C, H, W), or one image (C, H, W). The caller's array is
    never modified (a copy is made). ``channels``: expected C, checked if given.
    Bad inputs (empty, channels last, raw integer pixels, NaN/inf) are refused by
    ``check_image`` with an error saying what was received.
    """
    data = x.data if isinstance(x, Tensor) else x
    if not hasattr(data, "shape"):
        data = np.asarray(data)
    check_image(data, channels, who)
    if data.ndim == 3:
        data = data[None]
    data = as_backend(data, model_backend(model))
    data = data.astype(model_dtype(model), copy=True)
    return Tensor(data, requires_grad=requires_grad)


def check_target(logits, target, name="target"):
    """``target`` must be a class index in [0, K) for logits (N, K); returns it as int."""
    k = logits.shape[1]
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"{name} must be an int class index, got {target!r}")
    if not 0 <= int(target) < k:
        raise ValueError(f"{name} {int(target)} is out of range: the model has {k} classes "
                         f"(0..{k - 1})")
    return int(target)


def check_layer(model, layer):
    """``layer`` must be one of model.layer_names(); the error lists the valid ones."""
    names = model.layer_names()
    if not isinstance(layer, str) or not layer:      # "" would be the whole model
        raise UnknownLayerError(f"layer must be a layer's name, got {layer!r}. Valid layer "
                                f"names: {', '.join(names) or '(none)'}")
    if layer not in names:
        model.get_submodule(layer)     # raises the error that lists the valid names
    return layer


def unit_score(act, unit):
    """The scalar to differentiate for one unit of an activation ``act`` (N, C, H, W) or (N, D).

    unit: a channel c (sum over its whole map, batch summed), or (c, i, j) for one position.
    """
    if isinstance(unit, (int, np.integer)):
        c, pos = int(unit), None
    else:
        c, *pos = unit
    if not 0 <= c < act.shape[1]:
        raise ValueError(f"unit channel {c} is out of range for an activation of shape {act.shape}")
    if pos:
        if act.ndim != 4 or len(pos) != 2:
            raise ValueError(f"unit {unit!r}: (c, i, j) needs a 4-D activation, got {act.shape}")
        i, j = pos
        if not (0 <= i < act.shape[2] and 0 <= j < act.shape[3]):
            raise ValueError(f"unit position ({i}, {j}) is outside the activation map "
                             f"{act.shape[2]}×{act.shape[3]}")
        return act[:, c, i, j].sum()
    return act[:, c].sum()


def unit_gradient(act, unit):
    """The upstream gradient that is 1 at the chosen unit and 0 elsewhere (same shape as act)."""
    xp = get_array_module(act.data)
    g = xp.zeros(act.shape, dtype=act.dtype)
    if isinstance(unit, (int, np.integer)):
        g[:, int(unit)] = 1
    else:
        c, i, j = unit
        g[:, c, i, j] = 1
    return g


@contextlib.contextmanager
def frozen(model, *, eval_mode):
    """Freeze the parameters for the block: none requires a gradient (explaining or
    optimizing an input needs dL/dx only: no weight gradient is computed or kept).

    eval_mode: True also puts every module in eval mode (dropout off, batch norm on its
    running statistics) — the image-optimization loop and the attacks, which must see the
    deployed network; False leaves the modes as the caller set them — the explainers, which
    explain the model as given. Said at every call, so no reader guesses. The caller's
    ``requires_grad`` flags and train/eval modes come back afterwards, even on error."""
    if not isinstance(eval_mode, bool):
        raise TypeError(f"frozen: eval_mode must be True or False, got {eval_mode!r}")
    params = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()] if eval_mode else []
    try:
        for p, _ in params:
            p.requires_grad = False
        for m, _ in modes:
            m.training = False
        yield model
    finally:
        for p, flag in params:
            p.requires_grad = flag
        for m, flag in modes:
            m.training = flag


def mass_in_box(m, box):
    """The share of a map's mass inside a box: Σ |m| over m[top:bottom, left:right] ÷ Σ |m|.
    m: (H, W) or (C, H, W) (channels summed); box: (top, left, bottom, right) as
    ``data.samples.photo_box`` gives it. How well a map points at a known object: a map
    spread evenly scores the box's share of the image."""
    a = np.abs(np.asarray(m, dtype=np.float64))
    a = a.sum(axis=0) if a.ndim == 3 else a
    top, left, bottom, right = box
    if not (0 <= top < bottom <= a.shape[0] and 0 <= left < right <= a.shape[1]):
        raise ValueError(f"box {tuple(box)} (top, left, bottom, right) is not inside the "
                         f"{a.shape[0]}×{a.shape[1]} map")
    total = a.sum()
    return float(a[top:bottom, left:right].sum() / total) if total > 0 else 0.0

"""Occlusion sensitivity (Zeiler & Fergus 2014, section 4.2 and Fig. 7).

Slide a square patch over the image; at each position (r, c) replace the pixels under
it and ask the network again:

    prob[r, c]      = p(target | x with the patch at (r, c))
    top_class[r, c] = argmax_k p(k | same image)

Where covering a region makes the true class's probability collapse, the network
was looking there; the most-probable-class map shows what it sees instead.
Positions are r = 0, stride, 2·stride, … ≤ H − size (same for c). The occluded
copies are evaluated ``batch_size`` at a time, so memory stays bounded and the
result does not depend on the batch size.

    res = occlusion(model, x, target=281, size=32, stride=8, fill="gray")
    res.prob          # (25, 25) for 224×224 input
    res.pixel_map     # (224, 224): each pixel's mean prob over the patches covering it
"""
from collections import namedtuple

import numpy as np
from tqdm.auto import tqdm

from .. import ops
from ..autograd import no_grad
from ..backend import get_array_module, like, to_numpy
from .common import check_target
from .gradients import image_batch

__all__ = ["occlusion", "fill_image", "box_blur", "OcclusionResult", "FILLS"]

FILLS = ("zeros", "gray", "black", "mean", "blur")

OcclusionResult = namedtuple("OcclusionResult",
                             "prob top_class top_prob pixel_map base_prob target rows cols")
OcclusionResult.__doc__ = """Occlusion maps: ``prob`` (h, w) target probability per patch position,
``top_class`` / ``top_prob`` (h, w) most probable class and its probability, ``pixel_map`` (H, W)
mean of ``prob`` over the patches covering each pixel (``base_prob`` where none does),
``base_prob`` the unoccluded probability, ``target``, and the patch ``rows`` / ``cols``."""


def box_blur(x, size):
    """Mean over a size × size window around each pixel of x (N, C, H, W) (edges replicated),
    via an integral image: two cumulative sums, four lookups."""
    xp = get_array_module(x)
    a, b = size // 2, size - size // 2
    p = xp.pad(x, ((0, 0), (0, 0), (a + 1, b), (a + 1, b)), mode="edge")
    p[:, :, 0, :] = 0
    p[:, :, :, 0] = 0
    s = p.cumsum(axis=2).cumsum(axis=3)
    H, W = x.shape[2:]
    box = (s[:, :, size:size + H, size:size + W] - s[:, :, :H, size:size + W]
           - s[:, :, size:size + H, :W] + s[:, :, :H, :W])
    return box / (size * size)


def fill_image(model, x, fill, size):
    """What the patch shows, as a full image (1, C, H, W) in the model's input space:

    "zeros"  0 in input space (for mean-subtracted inputs: the training set's mean colour)
    "gray"   a mid-gray pixel (128 on 0–255) through ``model.preprocess``; without one,
             the middle of this image's value range
    "black"  a black pixel (0 on 0–255) through ``model.preprocess``; without one, this
             image's minimum — the background of Fashion-MNIST and MNIST, so the patch
             removes what it covers instead of adding a grey square to the picture
    "mean"   this image's own per-channel mean
    "blur"   this image blurred with a size × size box filter (removes detail, keeps colour)
    a number: that constant, in input space.
    """
    xp = get_array_module(x)
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return xp.full(x.shape, fill, dtype=x.dtype)
    if fill == "zeros":
        return xp.zeros(x.shape, dtype=x.dtype)
    if fill in ("gray", "black"):
        pre = getattr(model, "preprocess", None)
        if pre is not None and pre.channels == x.shape[1]:
            level = 128 if fill == "gray" else 0
            pixel = pre.preprocess(np.full((1, 1, x.shape[1]), level, np.uint8), dtype=x.dtype)
            return xp.broadcast_to(like(pixel, x), x.shape)
        low, high = float(x.min()), float(x.max())
        return xp.full(x.shape, 0.5 * (low + high) if fill == "gray" else low, dtype=x.dtype)
    if fill == "mean":
        return xp.broadcast_to(x.mean(axis=(2, 3), keepdims=True), x.shape)
    if fill == "blur":
        return box_blur(x, size).astype(x.dtype)
    raise ValueError(f"fill must be one of {FILLS} or a number, got {fill!r}")


def occlusion(model, x, target=None, size=8, stride=4, fill="gray", batch_size=32,
              progress=False):
    """Occlusion sensitivity of one image x (C, H, W) or (1, C, H, W) for class ``target``
    (default: the class the model predicts for x). Returns an ``OcclusionResult``."""
    xt, _ = image_batch(model, x)
    if xt.shape[0] != 1:
        raise ValueError(f"occlusion explains one image at a time; got a batch of shape {xt.shape}")
    for name, v in (("size", size), ("stride", stride), ("batch_size", batch_size)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    H, W = xt.shape[2:]
    if size > min(H, W):
        raise ValueError(f"patch size {size} is larger than the image {H}×{W}")
    img = xt.data
    xp = get_array_module(img)
    patch = fill_image(model, img, fill, size)
    rows, cols = np.arange(0, H - size + 1, stride), np.arange(0, W - size + 1, stride)
    r_all, c_all = (a.ravel() for a in np.meshgrid(rows, cols, indexing="ij"))
    ys, xs = xp.arange(H), xp.arange(W)
    with no_grad():
        base = to_numpy(ops.softmax(model(xt), axis=1).data)[0]
        target = int(base.argmax()) if target is None else check_target(base[None], target)
        probs, tops, top_probs = [], [], []
        for start in tqdm(range(0, len(r_all), batch_size), disable=not progress,
                          desc="occlusion", unit="batch"):
            r = like(r_all[start:start + batch_size], img)[:, None]
            c = like(c_all[start:start + batch_size], img)[:, None]
            inside = (((ys >= r) & (ys < r + size))[:, :, None]
                      & ((xs >= c) & (xs < c + size))[:, None, :])     # (B, H, W) patch masks
            batch = xp.where(inside[:, None], patch, img)               # (B, C, H, W)
            p = to_numpy(ops.softmax(model(batch), axis=1).data)
            probs.append(p[:, target])
            tops.append(p.argmax(axis=1))
            top_probs.append(p.max(axis=1))
    shape = (len(rows), len(cols))
    prob = np.concatenate(probs).reshape(shape)
    pixel_sum, count = np.zeros((H, W)), np.zeros((H, W))
    for (r, c), p in zip(zip(r_all, c_all), prob.ravel()):
        pixel_sum[r:r + size, c:c + size] += p
        count[r:r + size, c:c + size] += 1
    pixel_map = np.where(count > 0, pixel_sum / np.maximum(count, 1), base[target])
    return OcclusionResult(prob, np.concatenate(tops).reshape(shape),
                           np.concatenate(top_probs).reshape(shape), pixel_map,
                           float(base[target]), target, rows, cols)

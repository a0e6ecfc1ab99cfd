"""Maximally activating images and patches (Zeiler & Fergus, ECCV 2014; Girshick et al. 2014).

What does a unit respond to? Run a whole dataset through the network and keep, for
each channel c of a layer, the k images where the channel's strongest response

    s_c(x) = max_{i,j} a_c(x)[i, j]          (a Linear layer's unit: its value)

is largest, with the position (i, j) of that maximum. Cropping each image to the
receptive field of (i, j) (``receptive_field``) shows the patch the unit actually saw.

The dataset is streamed in batches and only a (units × k) table is kept: each
batch's scores are appended to the table and ``argpartition`` keeps the best k —
memory O(units·k + batch), whatever the dataset size; the result equals a full sort.

    top = top_activations(model, images, "features.7", k=9)            # every channel
    res = top_patches(model, images, "features.7", unit=5, k=9,
                      project=lambda x, unit: deconvnet_projection(model, x, "features.7", unit))
"""
from collections import namedtuple

import numpy as np
from tqdm.auto import tqdm

from ..autograd import no_grad
from ..backend import get_array_module, like, to_numpy
from ..nn import capture
from .common import as_input, check_layer
from .receptive_field import crop_receptive_field, receptive_field, rf_box

__all__ = ["TopActivations", "top_activations", "top_patches", "iterate_batches", "unit_scores",
           "merge_top_k"]

TopActivations = namedtuple("TopActivations", "units scores indices positions")
TopActivations.__doc__ = """units (U,); scores (U, k) best first; indices (U, k) into the dataset;
positions (U, k, 2) (i, j) of the maximum in the layer's map ((-1, -1) for a dense layer)."""


def iterate_batches(images, batch_size):
    """Yield (offset, batch) from an array (N, C, H, W) or from an iterable of batches."""
    if hasattr(images, "shape"):
        for s in range(0, images.shape[0], batch_size):
            yield s, images[s:s + batch_size]
        return
    offset = 0
    for batch in images:
        yield offset, batch
        offset += len(batch)


def unit_scores(act, units):
    """(B, U) max response of each chosen channel and (B, U, 2) where it occurs."""
    xp = get_array_module(act)
    a = act[:, units]
    if a.ndim == 2:
        return a, xp.full(a.shape + (2,), -1, dtype=xp.int64)
    flat = a.reshape(a.shape[0], a.shape[1], -1)
    arg = flat.argmax(axis=2)
    score = xp.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]
    return score, xp.stack([arg // a.shape[3], arg % a.shape[3]], axis=2).astype(xp.int64)


def top_activations(model, images, layer, units=None, k=9, batch_size=128, progress=False):
    """The k dataset images that most activate each unit (channel) of ``layer``.

    images: preprocessed (N, C, H, W) array, or any iterable of such batches (a generator
    streams a dataset that is never held in memory). units: channel indices (default all).
    Returns ``TopActivations`` (NumPy arrays); fewer than k images -> k is reduced.
    """
    check_layer(model, layer)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    was_training = model.training
    model.eval()
    best = None                       # (scores (U, k'), indices (U, k'), positions (U, k', 2))
    try:
        with no_grad():
            for offset, batch in tqdm(iterate_batches(images, batch_size), disable=not progress,
                                      desc=f"top activations {layer}"):
                x = as_input(model, batch)
                with capture(model, layer, stop=True) as acts:
                    model(x)
                act = acts[layer].data
                xp = get_array_module(act)
                if best is None:
                    units = _check_units(units, act.shape, layer)
                    unit_idx = like(units, act)
                    best = (xp.full((len(units), 0), -xp.inf), xp.zeros((len(units), 0), xp.int64),
                            xp.zeros((len(units), 0, 2), xp.int64))
                s, pos = unit_scores(act, unit_idx)
                idx = xp.broadcast_to(offset + xp.arange(s.shape[0]), (len(units), s.shape[0]))
                best = merge_top_k(best, (s.T.astype(xp.float64), idx, pos.transpose(1, 0, 2)), k)
    finally:
        model.train(was_training)
    if best is None:
        raise ValueError("top_activations: the dataset is empty")
    scores, idx, pos = best
    xp = get_array_module(scores)
    order = xp.argsort(-scores, axis=1, kind="stable")
    return TopActivations(units, to_numpy(xp.take_along_axis(scores, order, 1)),
                          to_numpy(xp.take_along_axis(idx, order, 1)),
                          to_numpy(xp.take_along_axis(pos, order[:, :, None], 1)))


def _check_units(units, shape, layer):
    n = shape[1]
    units = np.arange(n) if units is None else np.atleast_1d(np.asarray(units))
    if units.dtype.kind not in "iu" or units.ndim != 1 or units.size == 0 or \
            units.min() < 0 or units.max() >= n:
        raise ValueError(f"units must be channel indices in [0, {n}) of layer {layer!r} "
                         f"(output shape {tuple(shape)}), got {units.tolist()}")
    return units.astype(np.int64)


def merge_top_k(best, new, k):
    """Keep the k largest scores per row of the concatenation of two (U, ·) tables."""
    xp = get_array_module(best[0])
    s, i, p = (xp.concatenate([a, b], axis=1) for a, b in zip(best, new))
    if s.shape[1] <= k:
        return s, i, p
    keep = xp.argpartition(-s, k - 1, axis=1)[:, :k]
    return (xp.take_along_axis(s, keep, 1), xp.take_along_axis(i, keep, 1),
            xp.take_along_axis(p, keep[:, :, None], 1))


def top_patches(model, images, layer, unit, k=9, *, batch_size=128, project=None, fill=0,
                progress=False):
    """Top-k images of one channel ``unit`` with the patches its receptive field covers.

    images: preprocessed (N, C, H, W) array (indexed again for the crops). project:
    optional callback ``project(x (1, C, H, W), (unit, i, j)) -> map (C, H, W) or (H, W)``
    (e.g. a deconvnet or guided-backprop projection of that unit); each map is cropped to
    the same field and returned beside the patch.
    Returns a dict: scores, indices, positions, boxes (k, 4) (top, left, bottom, right),
    patches (k, C, h, w) NumPy (uncropped images for a dense layer), projections or None.
    """
    top = top_activations(model, images, layer, [unit], k, batch_size, progress)
    dense = bool((top.positions[0] < 0).all())
    rf = None if dense else receptive_field(model, layer)
    patches, projections, boxes = [], [] if project else None, []
    for idx, pos in zip(top.indices[0], top.positions[0]):
        img = images[int(idx)]
        if dense:
            patches.append(to_numpy(img))
            boxes.append((0, 0, img.shape[1], img.shape[2]))
        else:
            patches.append(to_numpy(crop_receptive_field(img, rf, tuple(pos), fill)))
            boxes.append(rf_box(rf, tuple(pos)))
        if project is not None:
            m = to_numpy(project(img[None], (int(unit), *map(int, pos))))
            m = m[None] if m.ndim == 2 else m.reshape(m.shape[-3:])
            projections.append(m if dense else crop_receptive_field(m, rf, tuple(pos), 0))
    return dict(scores=top.scores[0], indices=top.indices[0], positions=top.positions[0],
                boxes=np.array(boxes), patches=np.stack(patches),
                projections=np.stack(projections) if project else None, rf=rf)

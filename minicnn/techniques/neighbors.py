"""Nearest neighbours in a network's feature space versus in pixel space.

Krizhevsky, Sutskever & Hinton (NIPS 2012, Fig. 4) show that images whose
last-hidden-layer features are close are semantically alike even when their
pixels are far apart (different pose, colour, background); neighbours in pixel
space mostly share brightness and layout. Brute force, on whatever backend the
features live:

    ‖q − x‖² = ‖q‖² − 2 q·x + ‖x‖²                      (L2: one matmul per block of queries)
    1 − cos(q, x) = 1 − q·x / (‖q‖ ‖x‖)                  (cosine distance)

    feats = extract_features(model, images)               # penultimate layer, (N, D)
    idx, dist = nearest_neighbors(feats[:20], feats, k=8, exclude_self=True)
    label_agreement(idx, labels, labels[:20])     # share of neighbours with the query's label
"""
import numpy as np
from tqdm.auto import tqdm

from .. import nn
from ..autograd import no_grad
from ..backend import get_array_module, to_numpy
from ..nn import capture
from .common import as_input, check_layer

__all__ = ["penultimate_layer", "extract_features", "pairwise_distances", "nearest_neighbors",
           "label_agreement"]

METRICS = ("l2", "cosine")


def penultimate_layer(model):
    """Name of the layer whose output feeds the last Linear layer (the 'fc7' of the seeds).

    Layers are taken in ``model.layer_names()`` order, i.e. the order the model's
    modules are defined, which is the order they run in for chain-like models.
    """
    leaves = [n for n in model.layer_names() if not list(model.get_submodule(n).children())]
    linear = [i for i, n in enumerate(leaves) if isinstance(model.get_submodule(n), nn.Linear)]
    if not linear or linear[-1] == 0:
        raise ValueError(f"{type(model).__name__} has no Linear layer after another layer: pass "
                         f"layer= explicitly; valid names: {', '.join(model.layer_names())}")
    return leaves[linear[-1] - 1]


def extract_features(model, images, layer=None, batch_size=256, progress=False):
    """Flattened activations of ``layer`` (default: the penultimate layer) for every image.

    images: (N, C, H, W) preprocessed array on any backend. The model runs in eval mode,
    without gradients, in batches of ``batch_size`` and only as far as ``layer``.
    Returns (N, D) on the model's backend (float of the model's dtype).
    """
    layer = penultimate_layer(model) if layer is None else check_layer(model, layer)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    out = []
    try:
        with no_grad():
            for s in tqdm(range(0, len(images), batch_size), disable=not progress,
                          desc=f"features {layer}"):
                x = as_input(model, images[s:s + batch_size])
                with capture(model, layer, stop=True) as acts:
                    model(x)
                a = acts[layer].data
                out.append(a.reshape(a.shape[0], -1))
    finally:
        model.train(was_training)
    xp = get_array_module(out[0])
    return xp.concatenate(out, axis=0)


def _as_2d(a, name):
    if not hasattr(a, "shape"):
        a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} must be (N, D) features or an image batch, got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    xp = get_array_module(a)
    if a.dtype.kind != "f":
        a = a.astype(xp.float64)
    if not bool(xp.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or infinite values (shape {a.shape})")
    return a


def pairwise_distances(q, x, metric="l2"):
    """(Q, N) squared L2 distances or cosine distances between rows of q (Q, D) and x (N, D)."""
    xp = get_array_module(q)
    if metric == "l2":
        d = (q * q).sum(1)[:, None] - 2 * (q @ x.T) + (x * x).sum(1)[None, :]
        return xp.maximum(d, 0)
    if metric == "cosine":
        eps = xp.finfo(q.dtype).tiny
        qn = q / xp.maximum(xp.sqrt((q * q).sum(1, keepdims=True)), eps)
        xn = x / xp.maximum(xp.sqrt((x * x).sum(1, keepdims=True)), eps)
        return 1 - qn @ xn.T
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def nearest_neighbors(queries, database, k, metric="l2", exclude_self=False, batch_size=1024):
    """The k nearest rows of ``database`` for each row of ``queries``, by brute force.

    queries (Q, ...), database (N, ...): features or images (flattened), same backend.
    metric: "l2" (distances returned are Euclidean, not squared) or "cosine" (1 − cos).
    exclude_self: queries are database[:Q] (same order) and a point is not its own neighbour.
    Returns (indices (Q, k) int64, distances (Q, k)), nearest first, on the inputs' backend;
    queries are processed ``batch_size`` at a time, so memory is O(batch_size · N).
    """
    q, x = _as_2d(queries, "queries"), _as_2d(database, "database")
    xp = get_array_module(x)
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features per row, the database "
                         f"{x.shape[1]} (shapes {q.shape} and {x.shape})")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n_avail = x.shape[0] - (1 if exclude_self else 0)
    if not isinstance(k, (int, np.integer)) or k < 1 or k > n_avail:
        self_note = " (the query itself excluded)" if exclude_self else ""
        raise ValueError(f"k must be an int in [1, {n_avail}] for a database of {x.shape[0]} "
                         f"points{self_note}, got {k!r}")
    if exclude_self and q.shape[0] > x.shape[0]:
        raise ValueError(f"exclude_self needs queries = database[:Q], but Q={q.shape[0]} > "
                         f"N={x.shape[0]}")
    idx_out, dist_out = [], []
    for s in range(0, q.shape[0], batch_size):
        d = pairwise_distances(q[s:s + batch_size], x, metric)
        if exclude_self:
            r = xp.arange(d.shape[0])
            d[r, r + s] = xp.inf
        part = xp.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else \
            xp.broadcast_to(xp.arange(d.shape[1]), d.shape).copy()
        dk = xp.take_along_axis(d, part, axis=1)
        order = xp.argsort(dk, axis=1, kind="stable")
        idx_out.append(xp.take_along_axis(part, order, axis=1).astype(xp.int64))
        dist_out.append(xp.take_along_axis(dk, order, axis=1))
    dist = xp.concatenate(dist_out)
    return xp.concatenate(idx_out), (xp.sqrt(dist) if metric == "l2" else dist)


def label_agreement(indices, database_labels, query_labels):
    """Fraction of the neighbours (all queries, all k) that carry their query's label."""
    idx = to_numpy(indices)
    db, ql = np.asarray(to_numpy(database_labels)), np.asarray(to_numpy(query_labels))
    if idx.shape[0] != ql.shape[0]:
        raise ValueError(f"{idx.shape[0]} rows of neighbours but {ql.shape[0]} query labels")
    return float((db[idx] == ql[:, None]).mean())

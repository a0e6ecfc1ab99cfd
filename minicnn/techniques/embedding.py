"""Embeddings of a network's features: PCA, trustworthiness, and a grid-snapped layout.

t-SNE itself is in ``tsne.py`` (exact) and ``tsne_fft.py`` (FFT-accelerated).

PCA by the SVD of the centred data X̄ = X − mean = U S Vᵀ: the principal axes are the
rows of Vᵀ, the scores U S = X̄ V, and the variance along axis k is S_k² / (N − 1);
the explained-variance ratio S_k² / Σ S² sums to 1 over all axes.

Trustworthiness (Venna & Kaski, ICANN 2001): how many of a point's k nearest
neighbours in the embedding are intruders from far away in the original space,

    T(k) = 1 − 2 / (N k (2N − 3k − 1)) · Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k)

with U_k(i) the embedding's k nearest neighbours of i that are not among its k
nearest in input space, and r(i, j) the rank of j by input-space distance from i.
T = 1 when every embedding neighbourhood is a true one.

Grid layout (Karpathy's "t-SNE on a grid"): the embedding, scaled to the unit square,
is matched one-to-one to the cells of an n × n grid minimizing the total squared
distance between each point and its cell — a linear assignment problem
(``scipy.optimize.linear_sum_assignment``, Hungarian-type, O(N³)).
"""
from collections import namedtuple

import numpy as np

from ..backend import get_array_module, to_numpy
from .neighbors import nearest_neighbors, pairwise_distances

__all__ = ["pca", "PCAResult", "trustworthiness", "grid_assignment"]

PCAResult = namedtuple("PCAResult", "scores components explained_variance "
                                    "explained_variance_ratio mean")
PCAResult.__doc__ = """scores (N, k), components (k, D) (rows: unit axes), explained_variance (k,),
explained_variance_ratio (k,) (of the total over all axes), mean (D,)."""


def _features(X, name="X"):
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    xp = get_array_module(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features, got shape {X.shape}")
    X = X.astype(xp.float64)
    if not bool(xp.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinite values (shape {X.shape})")
    return X


def pca(X, n_components=None):
    """Principal component analysis of X (N, D) via the SVD of the centred data.

    Signs are fixed (each axis' largest-magnitude loading is positive) so the result is
    deterministic. n_components: how many axes to keep (default: min(N, D)).
    """
    X = _features(X)
    xp = get_array_module(X)
    n, d = X.shape
    r = min(n, d)
    k = r if n_components is None else n_components
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= r:
        raise ValueError(f"n_components must be an int in [1, {r}] for data of shape {X.shape}, "
                         f"got {n_components!r}")
    mean = X.mean(axis=0)
    Xc = X - mean
    _, S, Vt = xp.linalg.svd(Xc, full_matrices=False)
    rows = xp.arange(Vt.shape[0])
    sign = xp.sign(Vt[rows, xp.abs(Vt).argmax(axis=1)])
    Vt = Vt * xp.where(sign == 0, 1.0, sign)[:, None]
    var = S ** 2 / max(n - 1, 1)
    total = var.sum()
    ratio = var / total if float(total) > 0 else xp.zeros_like(var)
    return PCAResult(Xc @ Vt[:k].T, Vt[:k], var[:k], ratio[:k], mean)


def trustworthiness(X, Y, k=5, batch_size=256):
    """Trustworthiness T(k) ∈ [0, 1] of embedding Y (N, d) of data X (N, D), from scratch.

    Ranks are counted, not sorted: r(i, j) = 1 + #{l ≠ i : ‖x_i − x_l‖ < ‖x_i − x_j‖}, for
    the k embedding neighbours j of i only — O(N² k) comparisons in blocks of ``batch_size``
    rows, so memory is O(batch_size · k · N).
    """
    X, Y = _features(X, "X"), _features(Y, "Y")
    xp = get_array_module(X)
    n = X.shape[0]
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} rows but Y has {Y.shape[0]}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k < n / 2:
        raise ValueError(f"k must be an int in [1, N/2) = [1, {n / 2:g}) for N = {n}, got {k!r}")
    nbr, _ = nearest_neighbors(Y, Y, k, exclude_self=True)
    penalty = 0.0
    for s in range(0, n, batch_size):
        d = pairwise_distances(X[s:s + batch_size], X)
        r = xp.arange(d.shape[0])
        d[r, r + s] = xp.inf                        # i itself is never counted as closer
        dj = xp.take_along_axis(d, nbr[s:s + batch_size], axis=1)          # (b, k)
        rank = 1 + (d[:, None, :] < dj[:, :, None]).sum(axis=2)
        penalty += float(xp.maximum(rank - k, 0).sum())
    return 1.0 - 2.0 / (n * k * (2 * n - 3 * k - 1)) * penalty


def grid_assignment(Y, side=None):
    """Cell (row, col) of an side × side grid for each 2-D point, one point per cell.

    Y (N, 2); side defaults to √N, which must then be an integer (N = side²); with
    side given, N ≤ side² and some cells stay empty. Y is scaled to the unit square
    (each axis by its own range), cells are centred at ((c + ½)/side, (r + ½)/side) with
    the first axis horizontal and the second vertical (row 0 at the top = largest y²),
    and the assignment minimizes Σ ‖ŷ_i − cell_i‖². Returns (rows (N,), cols (N,)) int64.
    """
    from scipy.optimize import linear_sum_assignment
    Y = np.asarray(to_numpy(_features(Y, "Y")))
    n = Y.shape[0]
    if Y.shape[1] != 2:
        raise ValueError(f"grid_assignment needs a 2-D embedding (N, 2), got {Y.shape}")
    if side is None:
        side = int(round(np.sqrt(n)))
        if side * side != n:
            raise ValueError(f"N = {n} points do not fill a square grid; pass side= (side² ≥ N) "
                             f"or use {side * side} or {(side + 1) ** 2} points")
    if not isinstance(side, (int, np.integer)) or side < 1 or side * side < n:
        raise ValueError(f"side must be an int with side² ≥ N = {n}, got {side!r}")
    span = Y.max(axis=0) - Y.min(axis=0)
    u = (Y - Y.min(axis=0)) / np.where(span > 0, span, 1)
    c = (np.arange(side) + 0.5) / side
    cols, rows = np.meshgrid(np.arange(side), np.arange(side))
    cells = np.stack([c[cols.ravel()], 1 - c[rows.ravel()]], axis=1)      # row 0 at the top
    cost = ((u[:, None, :] - cells[None, :, :]) ** 2).sum(axis=2)
    point, cell = linear_sum_assignment(cost)
    out = np.empty(n, dtype=np.int64)
    out[point] = cell
    return out // side, out % side

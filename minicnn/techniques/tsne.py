"""t-SNE (van der Maaten & Hinton, JMLR 2008), from scratch on NumPy or CuPy.

High-dimensional affinities: for each point i a Gaussian whose width is set so that
the conditional distribution has a given perplexity (binary search on β_i = 1/2σ_i²):

    p_j|i = exp(−β_i ‖x_i − x_j‖²) / Σ_k≠i exp(−β_i ‖x_i − x_k‖²),    H(P_i) = log(perplexity)
    p_ij  = (p_j|i + p_i|j) / 2N                                    (symmetrized, Σ p_ij = 1)

Low-dimensional affinities: a Student-t with one degree of freedom,

    w_ij = 1 / (1 + ‖y_i − y_j‖²),   q_ij = w_ij / Z,   Z = Σ_k≠l w_kl

and the gradient of KL(P ‖ Q) = Σ p_ij log(p_ij / q_ij) is

    ∂KL/∂y_i = 4 Σ_j (p_ij − q_ij) w_ij (y_i − y_j)
             = 4 [ Σ_j p_ij w_ij (y_i − y_j)  −  (1/Z) Σ_j w_ij² (y_i − y_j) ]
                    attraction (sparse P)          repulsion (all pairs)

Optimization as in the paper: gradient descent with momentum (0.5, then 0.8) and
per-coordinate gains (+0.2 when the gradient changes sign, ×0.8 otherwise), with
P multiplied by an early exaggeration (12) for the first 250 iterations.

Two ways to evaluate the gradient, chosen by ``method="auto"``:
  * "exact": dense P (perplexity search against every point) and all N² pairs,
    processed in row blocks so every pass stays in cache;
  * "fft":   P on the 3·perplexity nearest neighbours only (Barnes-Hut-SNE's sparse P),
    and the repulsion interpolated on a grid and convolved with the FFT, as in FIt-SNE
    (Linderman et al., Nature Methods 2019) — see ``tsne_fft.py``.

    Y = tsne(features, perplexity=30, seed=0)          # (N, 2)
"""
import math
import warnings

import numpy as np
from tqdm.auto import tqdm

from ..backend import as_backend, backend_name, get_array_module, like, to_numpy
from .embedding import pca
from .neighbors import nearest_neighbors
from .tsne_fft import attraction_pairs, fft_gradient

__all__ = ["tsne", "calibrate_perplexity", "joint_probabilities", "exact_gradient", "knn_graph",
           "sparse_joint_probabilities", "fft_gradient", "EXACT_MAX_POINTS"]

KDTREE_MAX_DIM = 64        # k-nearest neighbours by k-d tree up to here, brute force above
EXACT_MAX_POINTS = 1500    # method="auto": exact O(N²) up to here (it is faster there), FFT above


def calibrate_perplexity(d2, perplexity, tol=1e-5, max_iter=200):
    """Row-wise conditional probabilities p_j|i with entropy log(perplexity) within ``tol``.

    d2: (N, M) squared distances from each point to its M candidates (itself excluded).
    Each β_i is found by a safeguarded Newton search on H(β) = log Σ_j e^(−β d_j) + β E_p[d]
    (dH/dβ = −β Var_p[d]), bisecting inside the bracket whenever Newton would leave it:
    all rows at once, iterating only on those not yet converged.
    Returns (P (N, M) rows summing to 1, beta (N,), entropy (N,)), entropy in nats.
    """
    xp = get_array_module(d2)
    n, m = d2.shape
    if not 0 < perplexity < m:
        raise ValueError(f"perplexity must be in (0, {m}) with {m} candidate neighbours per "
                         f"point, got {perplexity}")
    d = d2.astype(xp.float64)
    d = d - d.min(axis=1, keepdims=True)            # p is unchanged; exp cannot underflow to 0/0
    target = math.log(perplexity)
    beta = 1.0 / xp.maximum(d.mean(axis=1), 1e-12)
    lo, hi = xp.zeros(n), xp.full(n, xp.inf)
    P, H = xp.empty_like(d), xp.empty(n)
    active = xp.arange(n)
    for _ in range(max_iter):
        da, b = d[active], beta[active]
        e = xp.exp(-b[:, None] * da)
        s = e.sum(axis=1)
        p = e / s[:, None]
        mean = (p * da).sum(axis=1)
        h = xp.log(s) + b * mean
        P[active], H[active] = p, h
        err = h - target
        todo = xp.abs(err) >= tol
        if not bool(todo.any()):
            break
        active, err, b, h, mean = active[todo], err[todo], b[todo], h[todo], mean[todo]
        var = (p[todo] * (da[todo] - mean[:, None]) ** 2).sum(axis=1)
        lo_a = xp.where(err > 0, b, lo[active])     # entropy too high -> beta too small
        hi_a = xp.where(err > 0, hi[active], b)
        newton = b + err / xp.maximum(b * var, 1e-300)
        inside = (newton > lo_a) & (newton < hi_a) & xp.isfinite(newton)
        bisect = xp.where(xp.isfinite(hi_a), (lo_a + hi_a) / 2, b * 2)
        beta[active] = xp.where(inside, newton, bisect)
        lo[active], hi[active] = lo_a, hi_a
    else:
        warnings.warn(f"calibrate_perplexity: {len(active)} of {n} points did not reach the "
                      f"target entropy within {tol} in {max_iter} steps (duplicate points?)")
    return P, beta, H


def _check_points(X, perplexity):
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    xp = get_array_module(X)
    if X.ndim != 2:
        raise ValueError(f"t-SNE needs features of shape (N, D), got {X.shape}")
    if X.dtype.kind not in "fiu":
        raise TypeError(f"features must be numeric, got dtype {X.dtype}")
    X = X.astype(xp.float64)
    if not bool(xp.isfinite(X).all()):
        bad = int((~xp.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"features contain NaN or infinite values ({bad} of {X.shape[0]} rows)")
    n = X.shape[0]
    if not (isinstance(perplexity, (int, float, np.integer, np.floating)) and perplexity > 0):
        raise ValueError(f"perplexity must be a positive number, got {perplexity!r}")
    if perplexity >= n - 1:
        raise ValueError(f"perplexity must be smaller than the number of points minus one "
                         f"(N = {n}); got perplexity={perplexity} (typical: 5-50)")
    return X


def joint_probabilities(X, perplexity=30.0, tol=1e-5):
    """Dense symmetric P (N, N) with zero diagonal, Σ P = 1 (the exact method's affinities)."""
    X = _check_points(X, perplexity)
    xp = get_array_module(X)
    n = X.shape[0]
    sq = (X * X).sum(axis=1)
    d2 = xp.maximum(sq[:, None] - 2 * X @ X.T + sq[None, :], 0)
    off = ~xp.eye(n, dtype=bool)
    cond, _, _ = calibrate_perplexity(d2[off].reshape(n, n - 1), perplexity, tol)
    P = xp.zeros((n, n))
    P[off] = cond.ravel()
    return (P + P.T) / (2 * n)


def sparse_joint_probabilities(neighbors, d2, perplexity, tol=1e-5):
    """P on the k-nearest-neighbour graph: (rows, cols, values) of the symmetric (N, N) P.

    neighbors (N, k) indices and d2 (N, k) squared distances (self excluded). Each row's
    p_j|i is calibrated over its k neighbours only, then p_ij = (p_j|i + p_i|j) / 2N.
    Built with scipy.sparse on the host; returned arrays are on the inputs' backend.
    """
    from scipy import sparse

    if perplexity >= neighbors.shape[1]:
        raise ValueError(f"perplexity {perplexity} needs more than {neighbors.shape[1]} neighbours "
                         f"per point (use k ≈ 3·perplexity)")
    cond, _, _ = calibrate_perplexity(d2, perplexity, tol)
    n, k = neighbors.shape
    idx, val = to_numpy(neighbors).ravel(), to_numpy(cond).ravel()
    P = sparse.csr_matrix((val, (np.repeat(np.arange(n), k), idx)), shape=(n, n))
    P = ((P + P.T) / (2 * n)).tocoo()
    name = backend_name(neighbors)
    return (as_backend(P.row.astype(np.int64), name), as_backend(P.col.astype(np.int64), name),
            as_backend(P.data, name))


def exact_gradient(P, Y, exaggeration=1.0, compute_kl=False, block=256):
    """(gradient (N, d), KL or None) of KL(P‖Q) at Y, summing over all N² pairs.

    P: (N, N) dense, symmetric, zero diagonal; exaggeration α multiplies P.
    W is symmetric, so only blocks (I, J) with J ≥ I are formed, each serving rows I and J:
    with A = [y, ‖y‖², 1] and B = [−2y, 1, ‖y‖² + 1], A_I B_Jᵀ = 1 + ‖y_i − y_j‖² for the
    block; only Σ w, (P∘W)[Y 1] and (W∘W)[Y 1] are accumulated (Z is known only at the end):
        grad_i = 4 [ α(rowsum(P∘W)_i y_i − ((P∘W) Y)_i) − (rowsum(W²)_i y_i − (W² Y)_i) / Z ].
    Blocks stay small (``block`` = 256): every pass over a block stays in cache, and BLAS
    runs such thin products on one thread — threads gain nothing on a 3-column product
    and, on a busy machine, cost more to start than the product itself.
    """
    xp = get_array_module(Y)
    n, dim = Y.shape
    sq = (Y * Y).sum(axis=1, keepdims=True)
    ones = xp.ones((n, 1), dtype=Y.dtype)
    A = xp.concatenate([Y, sq, ones], axis=1)
    B = xp.concatenate([-2 * Y, ones, sq + 1], axis=1).T.copy()         # (dim + 2, N)
    Y1 = xp.concatenate([Y, ones], axis=1)
    att, rep = xp.zeros((n, dim + 1), Y.dtype), xp.zeros((n, dim + 1), Y.dtype)
    z, plogw = 0.0, 0.0
    starts = list(range(0, n, block))
    for s in starts:
        e = min(n, s + block)
        for t in starts[starts.index(s):]:
            f = min(n, t + block)
            W = A[s:e] @ B[:, t:f]              # 1 + ‖y_i − y_j‖²
            xp.reciprocal(W, out=W)
            twice = 2.0 if t != s else 1.0
            if t == s:
                r = xp.arange(e - s)
                W[r, r] = 0                                             # no self-pairs
            z += twice * float(W.sum())
            Pb = P[s:e, t:f]
            if compute_kl:
                plogw += twice * float((Pb * xp.log(xp.where(Pb > 0, W, 1))).sum())
            for M, acc in ((Pb * W, att), (W * W, rep)):
                acc[s:e] += M @ Y1[t:f]
                if t != s:
                    acc[t:f] += M.T @ Y1[s:e]
    grad = exaggeration * (att[:, dim:] * Y - att[:, :dim]) - (rep[:, dim:] * Y - rep[:, :dim]) / z
    kl = None
    if compute_kl:                                      # Σ p log p − Σ p log w + log Z (Σ p = 1)
        pos = P[P > 0]
        kl = float((pos * xp.log(pos)).sum()) - plogw + float(np.log(z))
    return 4 * grad, kl


def knn_graph(X, k):
    """(indices (N, k), Euclidean distances (N, k)) of each point's k nearest other points.

    Exact either way: scipy.spatial.cKDTree on the host for up to KDTREE_MAX_DIM features
    (a k-d tree prunes well in few dimensions), brute force in blocks on X's backend above
    (``neighbors.nearest_neighbors``: one matmul per block). A point's own index is
    dropped even when duplicates tie with it at distance 0.
    """
    if X.shape[1] > KDTREE_MAX_DIM:
        return nearest_neighbors(X, X, k, exclude_self=True)
    from scipy.spatial import cKDTree
    Xh = np.asarray(to_numpy(X), dtype=np.float64)
    dist, idx = cKDTree(Xh).query(Xh, k + 1, workers=-1)
    is_self = idx == np.arange(len(Xh))[:, None]
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]          # self (or the last) out
    idx, dist = np.take_along_axis(idx, keep, 1), np.take_along_axis(dist, keep, 1)
    name = backend_name(X)
    return as_backend(idx.astype(np.int64), name), as_backend(dist, name)


def _initial_embedding(X, n_components, init, seed, xp):
    """PCA scaled to std 1e-4 on the first axis (sklearn's default), or N(0, 1e-4²)."""
    if isinstance(init, str) and init == "pca":
        Y = pca(X, n_components).scores
        return Y / Y[:, 0].std() * 1e-4
    if isinstance(init, str) and init == "random":
        rng = np.random.default_rng(seed)
        return like(1e-4 * rng.standard_normal((X.shape[0], n_components)), X)
    Y = like(init if hasattr(init, "shape") else np.asarray(init), X)
    Y = Y.astype(xp.float64)
    if Y.shape != (X.shape[0], n_components):
        raise ValueError(f"init array must have shape {(X.shape[0], n_components)}, got {Y.shape}")
    return Y.copy()


def tsne(X, n_components=2, perplexity=30.0, *, n_iter=1000, method="auto", learning_rate="auto",
         early_exaggeration=12.0, exaggeration_iter=250, momentum=(0.5, 0.8), min_gain=0.01,
         init="pca", seed=0, progress=True, fft_options=None, return_info=False):
    """Embed features X (N, D) in ``n_components`` dimensions; returns Y (N, n_components).

    method: "exact", "fft" (2-D only) or "auto" (exact for N ≤ EXACT_MAX_POINTS).
    learning_rate "auto": max(N / early_exaggeration / 4, 50) (Belkina et al. 2019).
    init: "pca" (deterministic), "random" (from ``seed``) or an (N, n_components) array.
    Deterministic for a given input, seed and backend. The progress bar shows the KL
    divergence every 50 iterations; ``return_info=True`` also returns
    {"kl": [(iteration, KL), ...], "method": ...}.
    """
    X = _check_points(X, perplexity)
    xp = get_array_module(X)
    n = X.shape[0]
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_POINTS or n_components != 2 else "fft"
    if method not in ("exact", "fft"):
        raise ValueError(f"method must be 'auto', 'exact' or 'fft', got {method!r}")
    if method == "fft" and n_components != 2:
        raise ValueError(f"method='fft' embeds in 2 dimensions only, "
                         f"got n_components={n_components}")
    if learning_rate == "auto":
        learning_rate = max(n / early_exaggeration / 4, 50.0)
    Y = _initial_embedding(X, n_components, init, seed, xp)

    if method == "exact":
        P = joint_probabilities(X, perplexity).astype(xp.float32)

        def gradient(Y, alpha, kl):
            return exact_gradient(P, Y.astype(xp.float32), alpha, kl)
    else:
        k = min(n - 1, int(3 * perplexity) + 1)
        idx, dist = knn_graph(X, k)
        pairs = attraction_pairs(*sparse_joint_probabilities(idx, dist ** 2, perplexity), n)
        cache = {}                                      # the kernels' FFTs, while the grid holds

        def gradient(Y, alpha, kl):
            return fft_gradient(pairs, Y.astype(xp.float32), alpha, kl, cache=cache,
                                **(fft_options or {}))

    update, gains = xp.zeros_like(Y), xp.ones_like(Y)
    history = []
    bar = tqdm(range(n_iter), disable=not progress, desc=f"t-SNE ({method}, N={n})")
    for it in bar:
        early = it < exaggeration_iter
        report = (it + 1) % 50 == 0 or it == n_iter - 1
        grad, kl = gradient(Y, early_exaggeration if early else 1.0, report)
        grad = grad.astype(xp.float64)
        same_sign = (grad > 0) == (update > 0)
        gains = xp.maximum(xp.where(same_sign, gains * 0.8, gains + 0.2), min_gain)
        update = (momentum[0] if early else momentum[1]) * update - learning_rate * gains * grad
        Y = Y + update
        if report:
            history.append((it + 1, kl))
            bar.set_postfix(KL=f"{kl:.4f}")
    if return_info:
        return Y, {"kl": history, "method": method, "learning_rate": learning_rate}
    return Y

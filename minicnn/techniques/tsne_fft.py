"""t-SNE's gradient in O(N): sparse attraction + FFT-interpolated repulsion (FIt-SNE).

Linderman, Rachh, Hoskins, Steinerberger & Kluger, "Fast interpolation-based t-SNE
for improved visualization of single-cell RNA-seq data", Nature Methods 2019.

Attraction uses P restricted to each point's 3·perplexity nearest neighbours (the
sparse P of van der Maaten's Barnes-Hut-SNE, JMLR 2014): every unordered pair {i, j}
with p_ij > 0 is visited once and pushes i and j towards each other.

Repulsion needs, for every point, sums over *all* points. With K(Δ) = 1/(1 + ‖Δ‖²)
(so w_ij = K(y_i − y_j)) both are sums of a smooth kernel against a unit charge:

    Z = Σ_i Σ_j≠i K(y_i − y_j)
    Σ_j w_ij² (y_i − y_j) = −½ Σ_j ∇K(y_i − y_j),     ∇K(Δ) = −2 Δ / (1 + ‖Δ‖²)²

Because the kernels are smooth they are replaced by their interpolants on a regular
grid: the embedding's bounding square is cut into boxes (width ≤ 1, ≥ 50 per side),
each with p × p equispaced nodes; each point spreads its charge onto the nodes of its
box with Lagrange weights, the node-to-node sums are convolutions (a kernel depends only
on the node offset) done with one zero-padded 2-D FFT of the charges and three inverse
FFTs, and the node potentials are interpolated back with the same weights.
Cost: O(N p²) plus FFTs of (2 p · boxes)² — independent of how the points are spread.
(FIt-SNE convolves (1 + ‖Δ‖²)⁻² with four charges 1, y¹, y², ‖y‖²; the gradient form
above needs one charge and so half the FFTs.)
"""
from collections import namedtuple

import numpy as np

from ..backend import get_array_module

__all__ = ["attraction_pairs", "fft_gradient", "repulsion_fft",
           "Pairs"]

Pairs = namedtuple("Pairs", "i j p n plogp starts")
Pairs.__doc__ = """Unordered pairs i < j with p_ij > 0 (Σ over pairs of p = 1/2), sorted by i; N;
Σ_ij p log p over ordered pairs; starts (N + 1,): pairs of row r are starts[r]:starts[r+1]."""


def attraction_pairs(rows, cols, values, n=None):
    """The pairs i < j of a symmetric sparse P, sorted by i, in float32 (see ``Pairs``)."""
    xp = get_array_module(values)
    n = int(max(int(rows.max()), int(cols.max())) + 1) if n is None else n
    keep = (rows < cols) & (values > 0)
    i, j, p = rows[keep], cols[keep], values[keep]
    order = xp.argsort(i * n + j)
    plogp = float(2 * (p * xp.log(p)).sum())
    i = i[order]
    starts = xp.searchsorted(i, xp.arange(n + 1))
    return Pairs(i, j[order], p[order].astype(xp.float32), n, plogp, starts)


def _fft_module(xp):
    """scipy.fft for NumPy arrays (faster, any size), the array module's own fft otherwise."""
    if xp is np:
        try:
            import scipy.fft as sfft
            return sfft, sfft.next_fast_len
        except ImportError:
            pass
    return xp.fft, lambda m, real=True: int(2 ** np.ceil(np.log2(m)))


def _lagrange_weights(u, p, xp):
    """(N, p) weights of the p nodes t_k = (k + ½)/p of a unit box at positions u ∈ [0, 1]."""
    t = (np.arange(p) + 0.5) / p
    L = xp.ones((u.shape[0], p), dtype=u.dtype)
    for k in range(p):
        for m in range(p):
            if m != k:
                L[:, k] *= (u - t[m]) / (t[k] - t[m])
    return L


def _box_width(span, min_intervals, intervals_per_unit):
    """1 / intervals_per_unit, shrunk until the span holds ≥ min_intervals boxes.

    Widths come from a fixed ladder (steps of 2^¼), so the kernel on the node grid — and
    its FFT — change only when the embedding's span crosses a rung, not at every step."""
    bw = 1.0 / intervals_per_unit
    if span < min_intervals * bw:
        bw /= 2.0 ** (np.ceil(4 * np.log2(min_intervals * bw / span)) / 4)
    return bw


def _kernel_ffts(xp, fft, size, h, dtype, cache):
    """rfft2 of the three kernels on a size × size circular grid of node offsets (a, b)·h:
    K(Δ) = 1 / (1 + ‖Δ‖²) and its derivatives ∂K/∂Δ¹, ∂K/∂Δ² = −2 Δ / (1 + ‖Δ‖²)² (cached)."""
    key = (size, h, np.dtype(dtype).str)
    if cache is not None and key in cache:
        return cache[key]
    off = xp.arange(size)
    off = (xp.where(off <= size // 2, off, off - size) * h).astype(dtype)
    K = 1.0 / (1.0 + off[:, None] ** 2 + off[None, :] ** 2)
    kernels = xp.stack([K, -2 * off[:, None] * K * K, -2 * off[None, :] * K * K]).astype(dtype)
    K_hat = fft.rfft2(kernels)
    if cache is not None:
        cache.clear()                                 # keep only the latest grid's kernels
        cache[key] = K_hat
    return K_hat


def repulsion_fft(Y, n_interp=3, min_intervals=50, intervals_per_unit=1.0, cache=None,
                  dtype=None):
    """Σ_j w_ij (into Z) and the repulsive force Σ_j w_ij² (y_i − y_j) for every point of Y (N, 2).

    With K(Δ) = 1/(1 + ‖Δ‖²) = w, the force is half the gradient of a potential:
        Σ_j w_ij² (y_i − y_j) = −½ ∇_{y_i} Σ_j K(y_i − y_j)
    so one charge (1 per point) and three convolutions (K, ∂K/∂Δ¹, ∂K/∂Δ²) give everything.
    Returns (s (N,) = Σ_{j≠i} w_ij, force (N, 2)). The interpolated self-interaction
    K̃_ii = w_i K_box w_iᵀ is removed from s; for the odd derivative kernels it is exactly 0.
    cache: a dict kept between calls (reuses the kernels' FFTs while the grid is unchanged);
    dtype of the grid and FFTs (default float32: half the time of float64, and its ~1e-6
    relative round-off is far below the interpolation error).
    """
    xp = get_array_module(Y)
    dtype = dtype or xp.float32
    fft, fast_len = _fft_module(xp)
    n, p = Y.shape[0], n_interp
    lo, hi = float(Y.min()), float(Y.max())
    span = max(hi - lo, 1e-12)
    bw = _box_width(span, min_intervals, intervals_per_unit)
    n_boxes = int(np.floor(span / bw)) + 1                # the last box holds y = hi
    g = n_boxes * p                                       # interpolation nodes per side
    size = max(fast_len(2 * g - 1, real=True), 2 * g - 1)
    t = (Y - lo) / bw
    box = xp.floor(t)
    Lx = _lagrange_weights(t[:, 0] - box[:, 0], p, xp)
    Ly = _lagrange_weights(t[:, 1] - box[:, 1], p, xp)
    W = (Lx[:, :, None] * Ly[:, None, :]).reshape(n, p * p)             # (N, p²) weights
    corner = box.astype(xp.int64) * p                                 # first node of the box
    a = xp.arange(p)
    # spread a unit charge per point onto its box's p² nodes (grid g × g, row-major)
    nodes = (corner[:, 0] * g + corner[:, 1])[:, None] + (a[:, None] * g + a[None, :]).ravel()
    grid = xp.bincount(nodes.ravel(), W.ravel(), minlength=g * g).reshape(g, g).astype(dtype)
    # convolve with the three kernels: zero-padded FFTs (padding implicit in n=), computing
    # only what is needed: row transforms of the g non-zero rows, and the g output rows
    K_hat = _kernel_ffts(xp, fft, size, bw / p, dtype, cache)
    G = fft.fft(fft.rfft(grid, n=size, axis=1), n=size, axis=0)
    pot = fft.irfft(fft.ifft(G[None] * K_hat, axis=1)[:, :g], n=size, axis=2)   # (3, g, size)
    # interpolate back: node (r, c) of the g × g grid sits at r·size + c of each pot row
    nodes = (corner[:, 0] * size + corner[:, 1])[:, None] + (a[:, None] * size + a[None, :]).ravel()
    phi = xp.einsum("cnk,nk->cn", xp.take(pot.reshape(3, g * size), nodes, axis=1),
                    W.astype(pot.dtype)).astype(Y.dtype)                  # (3, N)
    # K̃_ii = w_i K_box w_iᵀ, with K_box the kernel between the p² nodes of one box
    ax, ay = (a[:, None] + 0 * a[None, :]).ravel(), (0 * a[:, None] + a[None, :]).ravel()
    d2 = ((ax[:, None] - ax[None, :]) ** 2 + (ay[:, None] - ay[None, :]) ** 2) * (bw / p) ** 2
    self_k = ((W @ (1.0 / (1.0 + d2))) * W).sum(axis=1)
    return phi[0] - self_k, -0.5 * phi[1:].T


def _segment_sum(values, index, n, starts):
    """Σ of values per row for pairs sorted by row: reduceat on NumPy, bincount elsewhere."""
    xp = get_array_module(values)
    reduceat = getattr(getattr(xp, "add", None), "reduceat", None)
    if reduceat is None or starts is None:
        return xp.bincount(index, values, minlength=n)
    counts = starts[1:] - starts[:-1]
    out = reduceat(values, xp.minimum(starts[:-1], values.shape[0] - 1))
    return xp.where(counts > 0, out, 0)


def fft_gradient(pairs, Y, exaggeration=1.0, compute_kl=False, *, n_interp=3, min_intervals=50,
                 intervals_per_unit=1.0, cache=None, dtype=None):
    """(gradient (N, 2), KL or None) of KL(P‖Q) with sparse attraction and FFT repulsion.

    grad_i = 4 [ α Σ_j p_ij w_ij (y_i − y_j) − Σ_j w_ij² (y_i − y_j) / Z ],  Z = Σ_i Σ_j≠i w_ij.
    """
    xp = get_array_module(Y)
    n = Y.shape[0]
    yx, yy = xp.ascontiguousarray(Y[:, 0]), xp.ascontiguousarray(Y[:, 1])
    dx = xp.take(yx, pairs.i)
    dx -= xp.take(yx, pairs.j)
    dy = xp.take(yy, pairs.i)
    dy -= xp.take(yy, pairs.j)
    w = dx * dx
    w += dy * dy
    w += 1
    xp.reciprocal(w, out=w)                               # w_ij = 1 / (1 + ‖y_i − y_j‖²)
    f = pairs.p * w
    dx *= f                                               # p_ij w_ij (y_i − y_j): +i, −j
    dy *= f
    att = xp.stack([_segment_sum(v, pairs.i, n, pairs.starts) - xp.bincount(pairs.j, v, minlength=n)
                    for v in (dx, dy)], axis=1)
    s, rep = repulsion_fft(Y.astype(xp.float64), n_interp, min_intervals, intervals_per_unit,
                           cache, dtype)
    z = float(s.sum())
    grad = 4 * (exaggeration * att - rep / z)
    kl = None
    if compute_kl:       # Σ_ij p log(p Z / w) over ordered pairs = 2 Σ_{i<j} (...)
        kl = pairs.plogp - 2 * float((pairs.p * xp.log(w)).sum()) + float(np.log(z))
    return grad, kl

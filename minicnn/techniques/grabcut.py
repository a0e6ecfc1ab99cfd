"""From a saliency map to an object mask with a graph cut (Simonyan et al. 2014, §3.1).

Simonyan, Vedaldi & Zisserman note that the class saliency map locates the object
well enough to *seed* GrabCut (Rother, Kolmogorov & Blake 2004):

1. seeds: pixels with saliency above its 95% quantile are foreground; background are
   those below its 5% quantile and a thin strip along the top, left and right edges
   (GrabCut's own assumption, that the frame's border is background — not the bottom
   edge, which a photo's subject often crosses: a portrait's shoulders, a sitting
   cat). Only the lowest 5%: on photos the gradient is also small on the flat, dark
   parts of the object (a dark uniform), and a wider low quantile seeds them as
   background;
2. colour models: a Gaussian mixture (5 components) fitted to the colours of each
   seed set (``fit_gmm``: EM, a few lines of NumPy) — the saliency map is box-blurred
   a little first (strided nets leave a checkerboard in raw gradients);
3. graph cut: the labelling L minimizing

       E(L) = Σ_p D_p(L_p)  +  λ Σ_{p~q 4-neighbours} [L_p ≠ L_q] · exp(−β ‖I_p − I_q‖²)

   with D_p(fg) = −log p(I_p | fg mixture), D_p(bg) likewise, seeds fixed and
   β = 1 / (2 ⟨‖I_p − I_q‖²⟩). E is a cut in a graph with a source s ("fg"), a sink t
   ("bg") and one node per pixel (Boykov & Jolly 2001): edge s→p costs what labelling p
   background costs, p→t what foreground costs, p↔q the pairwise term. The minimum cut
   is found as a maximum flow (``scipy.sparse.csgraph.maximum_flow``, integer
   capacities: costs in 1/100 nat); the pixels still reachable from s in the residual
   graph are the foreground.
4. repeat: refit the mixtures on the new labelling and cut again.

    mask = saliency_segmentation(image, saliency_map)       # bool (H, W)
    iou(mask, box=(x0, y0, x1, y1))
"""
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from ..backend import to_numpy
from .occlusion import box_blur

__all__ = ["saliency_segmentation", "graph_cut", "fit_gmm", "gmm_cost", "iou", "box_mask",
           "UNIT"]

UNIT = 100          # capacities are costs in units of 1/UNIT nat, rounded to integers
MAX_COST = 30.0     # unary cost differences are clipped to ±30 nats (e^-30: already certain)


def fit_gmm(pixels, k=5, iterations=10, rng=0):
    """Gaussian mixture of ``pixels`` (n, d) by EM: (weights (k,), means (k, d), covs (k, d, d)).

    Means start at a random pixel, then each next one at the pixel farthest from those
    chosen. E-step: r[n, j] ∝ π_j N(x_n | μ_j, Σ_j);  M-step: π_j, μ_j, Σ_j = the r-weighted
    count share, mean and covariance (plus a small ridge, so a flat region stays fine).
    """
    x = np.asarray(pixels, dtype=np.float64)
    n, d = x.shape
    k = max(1, min(k, n))
    rng = np.random.default_rng(rng)
    ridge = 1e-3 * (x.var(axis=0).sum() / d) + 1e-9
    means = x[[rng.integers(n)]]                        # start: one pixel, then the farthest
    for _ in range(k - 1):                              # from those chosen so far
        far = ((x[:, None] - means[None]) ** 2).sum(axis=-1).min(axis=1).argmax()
        means = np.concatenate([means, x[[far]]])
    covs = np.repeat((np.cov(x.T, bias=True).reshape(d, d) + ridge * np.eye(d))[None], k, axis=0)
    weights = np.full(k, 1.0 / k)
    for _ in range(iterations):
        log_r = -_component_cost(x, (weights, means, covs))               # (n, k)
        log_r -= log_r.max(axis=1, keepdims=True)
        r = np.exp(log_r)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0) + 1e-12
        weights, means = nk / n, (r.T @ x) / nk[:, None]
        diff = x[:, None, :] - means[None]                                 # (n, k, d)
        covs = np.einsum("nk,nki,nkj->kij", r, diff, diff) / nk[:, None, None]
        covs += ridge * np.eye(d)
    return weights, means, covs


def _component_cost(x, gmm):
    """−log(π_j N(x_n | μ_j, Σ_j)) for every pixel n and component j: (n, k)."""
    weights, means, covs = gmm
    d = x.shape[1]
    inv, (_, logdet) = np.linalg.inv(covs), np.linalg.slogdet(covs)
    diff = x[:, None, :] - means[None]
    maha = np.einsum("nki,kij,nkj->nk", diff, inv, diff)
    return 0.5 * (maha + logdet + d * np.log(2 * np.pi)) - np.log(weights + 1e-300)


def gmm_cost(pixels, gmm):
    """D(x) = −log p(x | mixture) for pixels (n, d): (n,), by log-sum-exp over components."""
    c = _component_cost(np.asarray(pixels, dtype=np.float64), gmm)
    low = c.min(axis=1)
    return low - np.log(np.exp(-(c - low[:, None])).sum(axis=1))


def _neighbour_weights(image, smoothness):
    """λ·exp(−β‖I_p − I_q‖²) for horizontal (H, W−1) and vertical (H−1, W) neighbour pairs."""
    dh = ((image[:, 1:] - image[:, :-1]) ** 2).sum(axis=-1)
    dv = ((image[1:] - image[:-1]) ** 2).sum(axis=-1)
    mean = (dh.sum() + dv.sum()) / max(dh.size + dv.size, 1)
    beta = 1.0 / (2 * mean) if mean > 0 else 0.0
    return smoothness * np.exp(-beta * dh), smoothness * np.exp(-beta * dv)


def graph_cut(cost_fg, cost_bg, image, smoothness=50.0, fg_seeds=None, bg_seeds=None):
    """Minimum-energy fg/bg labelling (the energy above) by max-flow / min-cut -> bool (H, W).

    cost_fg, cost_bg: (H, W) unary costs in nats of labelling each pixel fg / bg (their
    difference clipped to ±MAX_COST);
    image: (H, W, d) colours for the pairwise term; seeds: bool (H, W) hard labels.
    """
    H, W = cost_fg.shape
    P, s, t = H * W, H * W, H * W + 1
    idx = np.arange(P).reshape(H, W)
    wh, wv = (np.rint(UNIT * w).astype(np.int64)
              for w in _neighbour_weights(image, smoothness))
    # t-links: only the difference of the two costs matters for the minimum
    diff = np.rint(UNIT * np.clip(cost_bg - cost_fg, -MAX_COST, MAX_COST)).astype(np.int64)
    cap_s, cap_t = np.maximum(diff, 0), np.maximum(-diff, 0)   # s→p paid if p is bg, p→t if fg
    around = np.zeros((H, W), np.int64)                           # Σ_q w_pq around each pixel
    around[:, 1:] += wh
    around[:, :-1] += wh
    around[1:] += wv
    around[:-1] += wv
    hard = 1 + around + np.abs(diff)                              # more than any cut through p
    for seeds, keep, drop in ((fg_seeds, cap_s, cap_t), (bg_seeds, cap_t, cap_s)):
        if seeds is not None:
            keep[seeds], drop[seeds] = hard[seeds], 0
    rows = [np.full(P, s), idx.ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel(),
            idx[:-1].ravel(), idx[1:].ravel()]
    cols = [idx.ravel(), np.full(P, t), idx[:, 1:].ravel(), idx[:, :-1].ravel(),
            idx[1:].ravel(), idx[:-1].ravel()]
    caps = [cap_s.ravel(), cap_t.ravel(), wh.ravel(), wh.ravel(), wv.ravel(), wv.ravel()]
    caps = np.concatenate(caps)
    if min(cap_s.sum(), cap_t.sum()) >= 2 ** 31:       # bounds the flow value
        raise ValueError(f"graph_cut: the flow could overflow int32 on a {H}×{W} image; "
                         "lower smoothness or the image size")
    graph = coo_matrix((caps.astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(P + 2, P + 2)).tocsr()
    flow = maximum_flow(graph, s, t).flow
    residual = (graph - flow).tocsr()                  # what can still be pushed along each edge
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reachable = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    mask = np.zeros(P + 2, bool)
    mask[reachable] = True
    return mask[:P].reshape(H, W)


def saliency_segmentation(image, saliency, *, fg_quantile=0.95, bg_quantile=0.05,
                          border=None, border_sides="tlr", smoothness=50.0, components=5,
                          iterations=3, smooth=None, seed=0):
    """Object mask (bool (H, W)) from an image (H, W, 3) or (H, W) and its saliency map (H, W).

    The saliency map is first box-blurred over ``smooth`` pixels (default: about 1/32 of
    the short side, odd; 1 = off): raw gradients of strided nets carry a checkerboard
    that would scatter the seeds. Seeds: foreground above the ``fg_quantile`` of the
    blurred map; background below its ``bg_quantile`` (0: none) and in a strip ``border``
    pixels wide (default: 1/56 of the short side; 0: none) along the edges named in
    ``border_sides`` ("t", "b", "l", "r"; default top, left, right) — minus any
    foreground seed there. Colour mixtures from the seeds, then ``iterations`` rounds
    of graph cut and refitting on the current fg / bg.
    """
    img = np.asarray(to_numpy(image), dtype=np.float64)
    img = img[..., None] if img.ndim == 2 else img
    sal = np.asarray(to_numpy(saliency), dtype=np.float64)
    if img.ndim != 3 or sal.shape != img.shape[:2]:
        raise ValueError(f"saliency {sal.shape} must be (H, W) of the image {img.shape} "
                         "(H, W[, channels])")
    if set(border_sides) - set("tblr"):
        raise ValueError(f"border_sides names edges by 't', 'b', 'l', 'r', got {border_sides!r}")
    if not 0 <= bg_quantile < fg_quantile <= 1:
        raise ValueError(f"need 0 <= bg_quantile < fg_quantile <= 1, got {bg_quantile}, "
                         f"{fg_quantile}")
    smooth = smooth or max(1, min(sal.shape) // 64 * 2 + 1)
    if smooth > 1:
        sal = box_blur(sal[None, None], smooth)[0, 0]
    fg_seeds = sal > np.quantile(sal, fg_quantile)
    bg_seeds = sal < np.quantile(sal, bg_quantile) if bg_quantile > 0 else np.zeros_like(fg_seeds)
    b = max(1, min(sal.shape) // 56) if border is None else border
    if b > 0:
        strip = np.zeros_like(bg_seeds)
        for side, edge in (("t", np.s_[:b]), ("b", np.s_[-b:]), ("l", np.s_[:, :b]),
                           ("r", np.s_[:, -b:])):
            if side in border_sides:
                strip[edge] = True
        bg_seeds |= strip & ~fg_seeds
    if not fg_seeds.any() or not bg_seeds.any():
        raise ValueError("the saliency map is too flat to give both foreground and background "
                         "seeds; check it is not constant")
    pixels = img.reshape(-1, img.shape[2])
    fg, bg = fg_seeds, bg_seeds
    for _ in range(max(1, iterations)):
        cost = [gmm_cost(pixels, fit_gmm(pixels[m.ravel()], components, rng=seed))
                .reshape(sal.shape) for m in (fg, bg)]
        mask = graph_cut(cost[0], cost[1], img, smoothness, fg_seeds, bg_seeds)
        if not mask.any() or mask.all():
            break
        fg, bg = mask, ~mask
    return mask


def box_mask(shape, box):
    """Bool (H, W) mask of a box (x0, y0, x1, y1): columns x0..x1−1, rows y0..y1−1."""
    x0, y0, x1, y1 = box
    m = np.zeros(shape, bool)
    m[max(y0, 0):y1, max(x0, 0):x1] = True
    return m


def iou(mask, reference=None, box=None):
    """Intersection over union of a bool mask with a reference mask or a box (x0, y0, x1, y1)."""
    mask = np.asarray(mask, bool)
    if (reference is None) == (box is None):
        raise ValueError("give either a reference mask or a box")
    ref = box_mask(mask.shape, box) if box is not None else np.asarray(reference, bool)
    if ref.shape != mask.shape:
        raise ValueError(f"reference shape {ref.shape} differs from the mask's {mask.shape}")
    union = (mask | ref).sum()
    return float((mask & ref).sum() / union) if union else 1.0

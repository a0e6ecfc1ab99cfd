"""PCA, t-SNE (exact and FFT-accelerated), trustworthiness and the grid layout.

Each test names the property that makes the method what it is: PCA diagonalizes the
covariance; t-SNE's Gaussians have exactly the asked perplexity, its gradient is the
derivative of KL(P‖Q), it separates well-separated clusters, and the O(N) gradient
agrees with the O(N²) one; the grid layout is the optimal bijection.
"""
import itertools
import math

import numpy as np
import pytest

from minicnn.backend import as_backend, to_numpy
from minicnn.techniques.embedding import grid_assignment, pca, trustworthiness
from minicnn.techniques.tsne import (calibrate_perplexity, exact_gradient, joint_probabilities,
                                     knn_graph, sparse_joint_probabilities, tsne)
from minicnn.techniques.tsne_fft import attraction_pairs, fft_gradient, repulsion_fft
from tests.conftest import fashion_mnist_or_skip


def blobs(n_per, centres, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64)
    X = np.concatenate([c + scale * rng.standard_normal((n_per, centres.shape[1]))
                        for c in centres])
    return X, np.repeat(np.arange(len(centres)), n_per)


def knn_accuracy(Y, labels, k=5):
    """Leave-one-out k-NN classification accuracy in the embedding."""
    d = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nbr = np.argsort(d, axis=1)[:, :k]
    votes = labels[nbr]
    pred = np.array([np.bincount(v).argmax() for v in votes])
    return float((pred == labels).mean())


def kl_dense(P, Y):
    """KL(P‖Q) straight from the definition (the oracle for the gradient check)."""
    d = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    W = 1 / (1 + d)
    np.fill_diagonal(W, 0)
    Q = W / W.sum()
    m = P > 0
    return float((P[m] * np.log(P[m] / Q[m])).sum())


# ----------------------------------------------------------------------------- PCA
def test_pca_equals_eigh_of_covariance(backend_name):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 6)) @ rng.standard_normal((6, 6)) + 3.0
    res = pca(as_backend(X, backend_name))
    cov = np.cov(X, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(to_numpy(res.explained_variance), evals, rtol=1e-10, atol=1e-12)
    comps = to_numpy(res.components)
    for k in range(6):            # same axes up to sign
        assert abs(abs(comps[k] @ evecs[:, k]) - 1) < 1e-8
    ratio = to_numpy(res.explained_variance_ratio)
    assert abs(ratio.sum() - 1) < 1e-12
    np.testing.assert_allclose(ratio, evals / evals.sum(), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(res.scores), (X - X.mean(0)) @ comps.T, atol=1e-10)


def test_pca_keeps_the_requested_axes_and_rejects_bad_input():
    X = np.random.default_rng(0).standard_normal((20, 5))
    res = pca(X, 2)
    assert res.scores.shape == (20, 2) and res.components.shape == (2, 5)
    assert res.explained_variance_ratio.sum() < 1
    with pytest.raises(ValueError, match="n_components"):
        pca(X, 6)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pca(X)


# ------------------------------------------------------------ perplexity calibration
def test_perplexity_calibration_reaches_the_target_entropy_for_every_point(backend_name):
    # clusters of very different density: each point needs its own bandwidth
    rng = np.random.default_rng(0)
    X = np.concatenate([0.01 * rng.standard_normal((50, 5)), rng.standard_normal((50, 5)),
                        20 + 5 * rng.standard_normal((50, 5))])
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    n = len(X)
    d2 = d2[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    for perplexity in (5.0, 30.0):
        P, beta, H = calibrate_perplexity(as_backend(d2, backend_name), perplexity)
        P = to_numpy(P)
        entropy = -(P * np.log(np.where(P > 0, P, 1))).sum(1)     # recomputed from P
        assert np.abs(entropy - math.log(perplexity)).max() < 1e-5
        assert np.abs(to_numpy(H) - math.log(perplexity)).max() < 1e-5
        np.testing.assert_allclose(P.sum(1), 1, atol=1e-12)
        assert to_numpy(beta).std() > 0                          # bandwidths differ


def test_joint_probabilities_are_symmetric_and_sum_to_one():
    X, _ = blobs(30, [[0, 0, 0], [5, 5, 5]])
    P = joint_probabilities(X, 10)
    np.testing.assert_allclose(P, P.T)
    assert abs(P.sum() - 1) < 1e-12 and np.all(np.diag(P) == 0)
    # the sparse (kNN) version: every conditional row also has the exact perplexity
    idx, dist = knn_graph(X, 31)
    rows, cols, vals = sparse_joint_probabilities(idx, dist ** 2, 10)
    Ps = np.zeros_like(P)
    Ps[rows, cols] = vals
    np.testing.assert_allclose(Ps, Ps.T, atol=1e-15)
    assert abs(Ps.sum() - 1) < 1e-12


# ------------------------------------------------------------------ exact gradient
def test_exact_gradient_passes_finite_differences_on_20_points():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 4))
    P = joint_probabilities(X, 5)
    Y = rng.standard_normal((20, 2))
    grad, kl = exact_gradient(P, Y, compute_kl=True, block=7)      # several blocks, ragged
    assert abs(kl - kl_dense(P, Y)) < 1e-12
    num = np.zeros_like(Y)
    eps = 1e-6
    for i in range(20):
        for d in range(2):
            Yp, Ym = Y.copy(), Y.copy()
            Yp[i, d] += eps
            Ym[i, d] -= eps
            num[i, d] = (kl_dense(P, Yp) - kl_dense(P, Ym)) / (2 * eps)
    rel = np.abs(grad - num).max() / np.abs(num).max()
    assert rel < 1e-6, rel


def test_exact_gradient_is_backend_clean(backend_name):
    rng = np.random.default_rng(0)
    P = joint_probabilities(rng.standard_normal((30, 3)), 5)
    Y = rng.standard_normal((30, 2))
    g_np, kl_np = exact_gradient(P, Y, 4.0, compute_kl=True)
    g, kl = exact_gradient(as_backend(P, backend_name), as_backend(Y, backend_name), 4.0,
                           compute_kl=True)
    np.testing.assert_allclose(to_numpy(g), g_np, rtol=1e-12, atol=1e-15)
    assert abs(kl - kl_np) < 1e-12


# ------------------------------------------------------------------------ t-SNE
def test_tsne_separates_three_well_separated_blobs():
    X, labels = blobs(50, np.eye(3, 10) * 30)
    Y = tsne(X, perplexity=20, n_iter=400, method="exact", progress=False)
    assert Y.shape == (150, 2)
    assert knn_accuracy(Y, labels) == 1.0


def test_tsne_fft_path_separates_three_blobs_and_is_chosen_for_large_n():
    X, labels = blobs(300, np.eye(3, 10) * 30, seed=1)
    Y, info = tsne(X, perplexity=30, n_iter=350, method="fft", progress=False, return_info=True)
    assert info["method"] == "fft"
    assert knn_accuracy(Y, labels) == 1.0
    assert all(np.isfinite(kl) for _, kl in info["kl"])
    assert info["kl"][-1][1] < info["kl"][5][1]                   # KL went down after exaggeration
    # method="auto": exact up to EXACT_MAX_POINTS, the FFT approximation above
    from minicnn.techniques.tsne import EXACT_MAX_POINTS
    big = np.concatenate([X, X[:EXACT_MAX_POINTS + 1 - len(X)] + 1e-3])
    assert tsne(big, n_iter=1, progress=False, return_info=True)[1]["method"] == "fft"
    assert tsne(X[:300], n_iter=1, progress=False, return_info=True)[1]["method"] == "exact"


def test_tsne_is_deterministic_given_a_seed():
    X, _ = blobs(20, np.eye(3, 5) * 10)
    for init in ("pca", "random"):
        a = tsne(X, perplexity=10, n_iter=60, init=init, seed=7, progress=False)
        b = tsne(X, perplexity=10, n_iter=60, init=init, seed=7, progress=False)
        np.testing.assert_array_equal(a, b)
    c = tsne(X, perplexity=10, n_iter=60, init="random", seed=8, progress=False)
    assert not np.array_equal(a, c)


def test_tsne_runs_on_the_strict_backend(backend_name):
    X, labels = blobs(20, np.eye(3, 5) * 20)
    Y = tsne(as_backend(X, backend_name), perplexity=8, n_iter=100, method="exact", progress=False)
    Y2 = tsne(as_backend(X, backend_name), perplexity=8, n_iter=30, method="fft", progress=False)
    assert Y.shape == Y2.shape == (60, 2)
    np.testing.assert_allclose(to_numpy(Y), tsne(X, perplexity=8, n_iter=100, method="exact",
                                                 progress=False), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------- FFT approximation
def _sparse_problem(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 10, n)
    X = rng.standard_normal((n, 30)) + 3 * rng.standard_normal((10, 30))[c]
    idx, dist = knn_graph(X, 91)
    rows, cols, vals = sparse_joint_probabilities(idx, dist ** 2, 30)
    P = np.zeros((n, n))
    P[rows, cols] = vals
    return X, c, P, attraction_pairs(rows, cols, vals, n)


def test_fft_gradient_agrees_with_the_exact_gradient_on_1000_points():
    X, c, P, pairs = _sparse_problem()
    rng = np.random.default_rng(1)
    # an embedding the size of a real one: 10 clusters spread over ~60 units
    Y = (20 * rng.standard_normal((10, 2)))[c] + 2.5 * rng.standard_normal((1000, 2))
    for alpha in (1.0, 12.0):
        g_exact, kl_exact = exact_gradient(P, Y, alpha, compute_kl=True)
        g_fft, kl_fft = fft_gradient(pairs, Y.astype(np.float32), alpha, compute_kl=True)
        rel = np.linalg.norm(g_fft - g_exact) / np.linalg.norm(g_exact)
        assert rel < 0.05, (alpha, rel)
        assert abs(kl_fft - kl_exact) < 1e-2 * abs(kl_exact)
    # and the approximated parts on their own: Z and the repulsive forces
    d = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    W = 1 / (1 + d)
    np.fill_diagonal(W, 0)
    s, rep = repulsion_fft(Y)
    assert abs(s.sum() - W.sum()) < 1e-2 * W.sum()
    rep_exact = (W ** 2).sum(1)[:, None] * Y - (W ** 2) @ Y
    assert np.linalg.norm(rep - rep_exact) < 0.05 * np.linalg.norm(rep_exact)
    # a finer grid is more accurate (the error is the interpolation's, not the FFT's)
    s4, rep4 = repulsion_fft(Y, n_interp=5, dtype=np.float64)
    assert np.linalg.norm(rep4 - rep_exact) < 0.2 * np.linalg.norm(rep - rep_exact)


def test_fft_gradient_agrees_during_a_real_run():
    X, c, P, pairs = _sparse_problem(seed=2)
    Y = tsne(X, perplexity=30, n_iter=270, method="fft", progress=False)   # just after exaggeration
    g_exact, _ = exact_gradient(P, Y)
    g_fft, _ = fft_gradient(pairs, Y.astype(np.float32))
    assert np.linalg.norm(g_fft - g_exact) < 0.05 * np.linalg.norm(g_exact)


def test_fft_repulsion_is_backend_clean(backend_name):
    Y = np.random.default_rng(0).standard_normal((200, 2)) * 5
    s, rep = repulsion_fft(Y, dtype=np.float64)
    s2, rep2 = repulsion_fft(as_backend(Y, backend_name), dtype=np.float64)
    np.testing.assert_allclose(to_numpy(s2), s, rtol=1e-9)
    np.testing.assert_allclose(to_numpy(rep2), rep, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------- trustworthiness
def trustworthiness_naive(X, Y, k):
    n = len(X)
    dx = ((X[:, None] - X[None]) ** 2).sum(-1)
    dy = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    rank = np.empty((n, n), dtype=int)
    order = np.argsort(dx, axis=1)
    rank[np.arange(n)[:, None], order] = np.arange(1, n + 1)
    nx = order[:, :k]
    ny = np.argsort(dy, axis=1)[:, :k]
    t = 0
    for i in range(n):
        for j in set(ny[i]) - set(nx[i]):
            t += rank[i, j] - k
    return 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * t


def test_trustworthiness_matches_its_definition(backend_name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    Y = X[:, :2] + 0.3 * rng.standard_normal((80, 2))
    for k in (1, 5, 10):
        t = trustworthiness(as_backend(X, backend_name), as_backend(Y, backend_name), k,
                            batch_size=16)
        assert abs(t - trustworthiness_naive(X, Y, k)) < 1e-12
    assert trustworthiness(X[:, :2], X[:, :2], 5) == 1.0
    assert trustworthiness(X, rng.standard_normal((80, 2)), 5) < 0.7


def test_trustworthiness_agrees_with_sklearn_if_installed():
    manifold = pytest.importorskip("sklearn.manifold")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 8))
    Y = X[:, :2] + 0.5 * rng.standard_normal((120, 2))
    assert abs(trustworthiness(X, Y, 7) - manifold.trustworthiness(X, Y, n_neighbors=7)) < 1e-12


# -------------------------------------------------------------------- grid layout
def test_grid_assignment_is_an_optimal_bijection():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((9, 2))
    rows, cols = grid_assignment(Y)
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 9          # one point per cell
    assert rows.min() == cols.min() == 0 and rows.max() == cols.max() == 2
    # brute force over all 9! assignments, with the same unit-square scaling and cells
    u = (Y - Y.min(0)) / np.ptp(Y, 0)
    c = (np.arange(3) + 0.5) / 3
    cells = np.array([(c[j], 1 - c[i]) for i in range(3) for j in range(3)])
    cost = ((u[:, None] - cells[None]) ** 2).sum(-1)
    perms = np.array(list(itertools.permutations(range(9))))
    best = cost[np.arange(9), perms].sum(1).min()
    ours = cost[np.arange(9), rows * 3 + cols].sum()
    assert abs(ours - best) < 1e-12


def test_grid_assignment_keeps_the_layout():
    # points already on a 4×4 lattice go to their own cells (first axis -> column)
    g = np.stack(np.meshgrid(np.arange(4.0), np.arange(4.0)), -1).reshape(-1, 2)
    rows, cols = grid_assignment(g)
    np.testing.assert_array_equal(cols, g[:, 0].astype(int))
    np.testing.assert_array_equal(rows, 3 - g[:, 1].astype(int))
    r, c = grid_assignment(g[:10], side=4)                         # fewer points than cells
    assert len(set(zip(r.tolist(), c.tolist()))) == 10


def test_embedding_figures_place_each_image_where_it_belongs():
    from minicnn.plot import representations as R
    ims = np.stack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30, 40)])
    Y = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])   # TL, TR, BL, BR
    rows, cols = grid_assignment(Y)
    m = R.grid_mosaic(ims, rows, cols, 2)
    assert m.shape == (8, 8)
    assert (m[:4, :4] == 10).all() and (m[:4, 4:] == 20).all() and (m[4:, :4] == 30).all()
    canvas = R.thumbnail_canvas(Y, ims, canvas=12)
    assert canvas[0, 0] == 10 and canvas[0, 11] == 20
    assert canvas[11, 0] == 30 and canvas[11, 11] == 40
    assert canvas[6, 6] == 255                                        # background
    rgb = R.thumbnail_canvas(Y, np.zeros((4, 3, 4, 4)), canvas=12)   # (C, H, W) images too
    assert rgb.shape == (12, 12, 3)
    for fig in (R.plot_embedding(Y, np.array([0, 1, 1, 2]), ["a", "b", "c"], title="t"),
                R.plot_thumbnails(Y, ims, canvas=20), R.plot_grid_mosaic(ims, rows, cols, 2)):
        assert fig.axes
        R.plt.close(fig)


# ----------------------------------------------------------------------- bad input
def test_bad_inputs_give_clear_errors():
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="perplexity"):
        tsne(X, perplexity=20, progress=False)
    with pytest.raises(ValueError, match="perplexity"):
        tsne(X, perplexity=-1, progress=False)
    bad = X.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tsne(bad, perplexity=5, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        trustworthiness(X, X[:, :2], k=25)
    with pytest.raises(ValueError, match="rows"):
        trustworthiness(X, X[:10, :2], k=3)
    with pytest.raises(ValueError, match="square"):
        grid_assignment(X[:, :2])
    with pytest.raises(ValueError, match="side"):
        grid_assignment(X[:, :2], side=4)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        grid_assignment(X[:16])
    with pytest.raises(ValueError, match="method"):
        tsne(X, perplexity=5, method="barnes-hut", progress=False)
    with pytest.raises(ValueError, match="2 dimensions"):
        tsne(X, perplexity=5, method="fft", n_components=3, progress=False)


# ------------------------------------------------------- on a trained network (slow)
@pytest.mark.slow
def test_tsne_of_fashion_net_features_is_trustworthy():
    import minicnn as mc
    from minicnn.techniques.neighbors import extract_features
    try:
        model = mc.models.fashion_net(pretrained=True)
    except FileNotFoundError:
        pytest.skip("trained weights for fashion_net (weights/fashion_net.npz) are not present")
    images, labels = fashion_mnist_or_skip("test")
    x = model.preprocess.preprocess(images[:2000])
    feats = to_numpy(extract_features(model, x))
    Y = tsne(feats, perplexity=30, seed=0, progress=False)
    t = trustworthiness(feats, Y, 10)
    assert t >= 0.95, t
    assert knn_accuracy(Y, labels[:2000], 10) > 0.8

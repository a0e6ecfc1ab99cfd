"""Nearest neighbours: brute force is the definition; on a trained net, neighbours in
feature space share the query's class more often than neighbours in pixel space."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend, to_numpy
from minicnn.techniques.neighbors import (extract_features, label_agreement, nearest_neighbors,
                                          pairwise_distances, penultimate_layer)
from tests.conftest import fashion_mnist_or_skip


def brute_force(q, x, k, metric, exclude_self=False):
    if metric == "l2":
        d = np.sqrt(((q[:, None] - x[None]) ** 2).sum(-1))
    else:
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    if exclude_self:
        d[np.arange(len(q)), np.arange(len(q))] = np.inf
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_neighbors_equal_brute_force(metric, backend_name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((97, 12))
    q = rng.standard_normal((23, 12))
    for exclude_self, queries in ((False, q), (True, x[:23])):
        idx, dist = nearest_neighbors(as_backend(queries, backend_name),
                                      as_backend(x, backend_name), k=7, metric=metric,
                                      exclude_self=exclude_self, batch_size=5)
        ref_idx, ref_d = brute_force(queries, x, 7, metric, exclude_self)
        np.testing.assert_array_equal(to_numpy(idx), ref_idx)
        np.testing.assert_allclose(to_numpy(dist), ref_d, rtol=1e-9, atol=1e-9)
        if exclude_self:
            assert not (to_numpy(idx) == np.arange(23)[:, None]).any()
    # k = N: every point, sorted
    idx, _ = nearest_neighbors(q, x, k=97, metric=metric)
    np.testing.assert_array_equal(idx, brute_force(q, x, 97, metric)[0])


def test_images_are_flattened_and_distances_are_euclidean():
    a = np.zeros((2, 1, 2, 2))
    a[1] = 1.0                                  # ‖a1 − a0‖ = 2
    idx, d = nearest_neighbors(a, a, k=1, exclude_self=True)
    np.testing.assert_array_equal(idx[:, 0], [1, 0])
    np.testing.assert_allclose(d[:, 0], [2.0, 2.0])
    np.testing.assert_allclose(pairwise_distances(np.eye(2), np.eye(2), "cosine"), 1 - np.eye(2))


def test_neighbor_bad_input():
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(x, x, k=11)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(x, x, k=10, exclude_self=True)
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbors(x, x, k=0)
    with pytest.raises(ValueError, match="features per row"):
        nearest_neighbors(x[:, :2], x, k=2)
    with pytest.raises(ValueError, match="metric"):
        nearest_neighbors(x, x, k=2, metric="manhattan")
    bad = x.copy()
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbors(x, bad, k=2)


def test_penultimate_features_feed_the_last_linear_layer():
    model = mc.models.fashion_net()
    assert penultimate_layer(model) == "classifier.2"
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    model.train()
    f = extract_features(model, x, batch_size=2)
    assert f.shape == (5, 128) and model.training                 # mode restored
    model.eval()
    logits = to_numpy(model(mc.tensor(x)).data)
    last = model.get_submodule("classifier.3")
    np.testing.assert_allclose(to_numpy(f) @ to_numpy(last.weight.data).T
                               + to_numpy(last.bias.data), logits, rtol=1e-4, atol=1e-5)
    conv = extract_features(model, x, layer="features.4")
    assert conv.shape == (5, 16 * 14 * 14)
    with pytest.raises(ValueError, match="Linear"):
        penultimate_layer(nn.Sequential(nn.Conv2d(1, 2, 3)))


def test_label_agreement_counts_neighbours_with_the_query_label():
    assert label_agreement(np.array([[0, 1], [2, 3]]), np.array([0, 0, 1, 0]),
                           np.array([0, 1])) == 0.75


def test_feature_neighbours_share_labels_more_than_pixel_neighbours():
    try:
        model = mc.models.fashion_net(pretrained=True)
    except FileNotFoundError:
        pytest.skip("trained weights for fashion_net (weights/fashion_net.npz) are not present")
    images, labels = fashion_mnist_or_skip("test")
    images, labels = images[:2000], labels[:2000]
    x = model.preprocess.preprocess(images)
    feats = extract_features(model, x)
    q = 40                                                         # ≥ 20 queries
    agree = {}
    for name, data, metric in (("features L2", feats, "l2"), ("features cosine", feats, "cosine"),
                               ("pixels L2", x, "l2")):
        idx, _ = nearest_neighbors(data[:q], data, k=10, metric=metric, exclude_self=True)
        agree[name] = label_agreement(idx, labels, labels[:q])
    assert agree["features L2"] > agree["pixels L2"], agree
    assert agree["features cosine"] > agree["pixels L2"], agree
    assert agree["features L2"] > 0.75, agree


def test_neighbour_figure_builds():
    from minicnn.plot.representations import plot_neighbors, plt
    db = np.random.default_rng(0).integers(0, 255, (12, 8, 8)).astype(np.uint8)
    fig = plot_neighbors(db[:2], db, {"features": np.array([[1, 2, 3], [4, 5, 6]]),
                                      "pixels": np.array([[7, 8, 9], [10, 11, 0]])},
                         labels=(np.arange(12) % 2, np.array([0, 1])))
    assert len(fig.axes) == 4 * 4
    plt.close(fig)

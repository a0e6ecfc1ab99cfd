"""The explicit Zeiler–Fergus deconvnet (unpool with switches, rectify, transposed filters)
is the same computation as one backward pass with the "deconvnet" ReLU rule."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend
from minicnn.nn import UnknownLayerError
from minicnn.techniques.deconvnet import (deconvnet, deconvnet_projection, edge_correlation,
                                         forward_chain, has_switches)

LAYERS = {  # one of each kind: ReLU output, pool output, the default CAM layer, a container
    "fashion_net": ["features.1", "features.4", "features.7", "features", "classifier.1",
                    "classifier.3"],
    "cifar_net": ["features.3", "features.9", "features.14", "classifier.3"],
}


def model_and_images(name, n=2, seed=0):
    model = getattr(mc.models, name)().eval().double()
    pre = model.preprocess
    x = np.random.default_rng(seed).standard_normal((n, pre.channels, *pre.input_size))
    return model, x


@pytest.mark.parametrize("name, n", [("fashion_net", 2), ("cifar_net", 1)])
def test_explicit_deconvnet_equals_the_relu_rule_to_1e10(name, n):
    """(a) backward with relu_rule="deconvnet" and (b) max_unpool2d(switches) / relu /
    conv_transpose2d(same filters) / Wᵀ down the chain, from the same signal at the same
    layer, give the same image to 1e-10 in float64 — for a random signal and for the
    strongest unit's activation (Zeiler & Fergus); on fashion_net also for a unit's gradient."""
    model, x = model_and_images(name, n)
    rng = np.random.default_rng(1)
    for layer in LAYERS[name]:
        with mc.capture(model, [layer]) as acts:
            model(mc.tensor(x))
        act = acts[layer]
        strongest = np.unravel_index(np.argmax(act.data[0]), act.shape[1:])
        unit = tuple(int(v) for v in strongest) if act.ndim == 4 else int(strongest[0])
        cases = [dict(signal=rng.standard_normal(act.shape)), dict(unit=unit)]
        if name == "fashion_net":
            cases.append(dict(unit=3, signal="one"))
        for kw in cases:
            a = deconvnet(model, x, layer=layer, **kw)
            b = deconvnet_projection(model, x, layer, **kw)
            scale = np.abs(b).max()
            assert a.shape == b.shape == x.shape and scale > 0, (layer, kw)
            assert np.abs(a - b).max() <= 1e-10 * scale, (layer, kw, np.abs(a - b).max(), scale)


def test_projection_by_hand_unpools_to_the_switch_rectifies_and_transposes_the_filter():
    """x = [[1, 3], [2, −1]] -> conv 1×1 (w = 2) -> ReLU -> max-pool 2: the maximum 6 sits
    at position (0, 1). Projected down: unpool puts 6 back at (0, 1), ReLU keeps it, the
    transposed 1×1 filter doubles it: [[0, 12], [0, 0]]."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MaxPool2d(2)).double()
    net[0].weight.data = np.full((1, 1, 1, 1), 2.0)
    net[0].bias.data = np.zeros(1)
    x = np.array([[[1.0, 3.0], [2.0, -1.0]]])
    np.testing.assert_array_equal(deconvnet_projection(net, x, "2", (0, 0, 0)),
                                  [[[0.0, 12.0], [0.0, 0.0]]])
    # the rectification: a negative signal at the pool is stopped by the ReLU's inverse,
    # even though the forward unit was active
    np.testing.assert_array_equal(deconvnet_projection(net, x, "2", signal=-np.ones((1, 1, 1, 1))),
                                  np.zeros((1, 2, 2)))
    # the forward mask is ignored: a positive signal at the ReLU output of an *off* unit
    signal = np.zeros((1, 1, 2, 2))
    signal[0, 0, 1, 1] = 1.0                                  # conv output there was −2
    np.testing.assert_array_equal(deconvnet_projection(net, x, "1", signal=signal),
                                  [[[0.0, 0.0], [0.0, 2.0]]])


def test_the_chain_records_switches_and_input_shapes():
    model, x = model_and_images("fashion_net", n=1)
    steps = forward_chain(model, mc.tensor(x))
    assert [s[0] for s in steps] == [n for n in model.layer_names() if "." in n]
    pools = [s for s in steps if s[4] is not None]
    assert [s[0] for s in pools] == ["features.4", "features.9"]
    assert pools[0][2] == (1, 16, 28, 28) and pools[0][4].shape == (1, 16, 14, 14)
    with mc.no_grad():
        np.testing.assert_allclose(steps[-1][3].data, model(mc.tensor(x)).data, rtol=1e-12)


def test_projection_runs_on_the_strict_backend(backend_name):
    model, x = model_and_images("fashion_net", n=1)
    model.to(backend_name)
    xb = as_backend(x[0], backend_name)
    a = deconvnet(model, xb, layer="features.8", unit=(2, 3, 3))
    b = deconvnet_projection(model, xb, "features.8", (2, 3, 3))
    assert type(b) is np.ndarray and b.shape == (1, 28, 28)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_networks_that_are_not_plain_chains_are_refused_with_the_way_out():
    x = np.random.default_rng(0).standard_normal((3, 32, 32))
    with pytest.raises(TypeError, match=r"BatchNorm2d.*Use deconvnet \(the ReLU rule\)"):
        deconvnet_projection(mc.models.resnet18(rng=0).eval(), x, "layer1", 0)
    with pytest.raises(ValueError, match=r"not a plain chain.*Use deconvnet \(the ReLU rule\)"):
        deconvnet_projection(mc.models.squeezenet1_1(rng=0).eval(), x, "features.3", 0)
    model, xf = model_and_images("fashion_net", n=1)
    with pytest.raises(TypeError, match="training mode"):
        deconvnet_projection(model.train(), xf, "features.3", 0)


def test_bad_inputs_are_clear_errors():
    model, x = model_and_images("fashion_net", n=1)
    with pytest.raises(UnknownLayerError, match="Valid layer names: features, features.0"):
        deconvnet_projection(model, x, "conv5", 0)
    with pytest.raises(ValueError, match="unit channel 40 is out of range"):
        deconvnet_projection(model, x, "features.7", 40)
    with pytest.raises(ValueError, match="layer's output shape"):
        deconvnet_projection(model, x, "features.7", signal=np.ones((1, 3)))
    with pytest.raises(ValueError, match="expects 1 input channels"):
        deconvnet_projection(model, np.zeros((3, 28, 28)), "features.7", 0)


def test_deconvnet_panel_figure(tmp_path):
    from minicnn.plot.attribution import deconvnet_panel
    from minicnn.plot.core import save_figure
    model, x = model_and_images("fashion_net", n=10, seed=4)
    fig = deconvnet_panel(model, x, "features.8", channels=[0, 3], k=9, batch_size=4)
    assert len(fig.axes) == 4
    save_figure(fig, str(tmp_path / "panel.png"))
    fig = deconvnet_panel(model, x, "features.8", channels=[0, 3], k=9, batch_size=4,
                          crop=False)                 # the channel's map over whole images
    assert len(fig.axes) == 4
    save_figure(fig, str(tmp_path / "panel.png"))
    assert (tmp_path / "panel.png").stat().st_size > 0


# ------------------------------------------- what of the image reaches the projection

def test_projections_follow_the_image_edges_on_trained_fashion_net():
    """On the shipped fashion_net and its samples, the class deconvnet's |projection| tracks
    the image's own edges more than another image's (measured mean r 0.18 vs −0.01), the
    projections of different images differ, and so do those of different units."""
    from minicnn.data.samples import fashion_samples
    model = mc.models.fashion_net(pretrained=True)
    samples = fashion_samples()
    own, other, maps = [], [], []
    for i, (image, label) in enumerate(samples):
        d = deconvnet(model, model.preprocess.preprocess(image)[0], label)
        own.append(edge_correlation(d, image))
        other.append(edge_correlation(d, samples[(i + 3) % len(samples)][0]))
        maps.append(d.ravel())
    assert np.mean(own) > np.mean(other) + 0.1, (own, other)
    r = np.corrcoef(maps)
    assert r[~np.eye(len(maps), dtype=bool)].max() < 0.9
    x = model.preprocess.preprocess(samples[0][0])[0]
    units = [deconvnet_projection(model, x, "features.6", unit=c).ravel() for c in range(6)]
    r = np.corrcoef(units)
    assert r[~np.eye(6, dtype=bool)].max() < 0.9


def test_edge_correlation_by_construction():
    image = np.zeros((8, 8))
    image[2:6, 2:6] = 100                       # a square: edges on its border
    edges = np.zeros((1, 8, 8))
    edges[0, 1:7, 1:7] = 1
    edges[0, 3:5, 3:5] = 0                      # the ring where np.gradient sees the step
    assert edge_correlation(edges, image) > 0.8                    # corners are weaker
    assert edge_correlation(-edges, image) > 0.8                   # |projection|
    assert edge_correlation(1 - edges, image) < -0.8


def test_without_max_pool_the_deconvnet_image_ignores_the_input():
    """The reason the gallery shows no deconvnet for EfficientNet: with no switches, the
    down-pass (rectified signal, transposed convs, eval BatchNorm) never reads x — the class
    image is identical for any two inputs; one max-pool makes it depend on them."""
    rng = np.random.default_rng(0)
    strided = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=rng), nn.BatchNorm2d(4),
                            nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1, rng=rng),
                            nn.ReLU(), nn.Flatten(), nn.Linear(64, 3, rng=rng)).eval().double()
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(4),
                           nn.Flatten(), nn.Linear(64, 3, rng=rng)).eval().double()
    a, b = rng.standard_normal((2, 3, 16, 16))
    assert not has_switches(strided) and has_switches(pooled)
    np.testing.assert_allclose(deconvnet(strided, a, 1), deconvnet(strided, b, 1), atol=1e-12)
    assert not np.allclose(deconvnet(pooled, a, 1), deconvnet(pooled, b, 1))


def test_strongest_activations_keep_the_top_fraction_of_each_images_layer():
    """The signal keeps, per image, exactly the activations at or above its own k-th largest
    (k = fraction of the layer's size), unchanged, and zeros every other one."""
    from minicnn.nn import capture
    from minicnn.techniques.deconvnet import strongest_activations
    model, x = model_and_images("fashion_net", n=2)
    sig = strongest_activations(model, x, "features.6", fraction=0.05)
    with mc.no_grad(), capture(model, ["features.6"]) as acts:
        model(mc.tensor(x))
    a = acts["features.6"].numpy()
    k = int(round(0.05 * a[0].size))
    for s, ai in zip(sig, a):
        kept = s != 0
        assert kept.sum() == k
        np.testing.assert_array_equal(s[kept], ai[kept])
        assert ai[~kept].max() <= ai[kept].min()
    with pytest.raises(ValueError, match="fraction must be in"):
        strongest_activations(model, x, "features.6", fraction=0)


def test_gallery_deconvnet_of_the_strongest_middle_activations_draws_each_images_edges():
    """The gallery's deconvnet figure for fashion_net (features.6, its top 5% activations per
    image) over 100 Fashion-MNIST test images, as its title says: |projection| correlates
    with the image's own edges (measured mean r 0.32) far more than with another image's
    (0.02), and more for at least 80% of the images (measured 96%)."""
    from minicnn.data import load_fashion_mnist
    from minicnn.gallery.figure import ModelInfo
    from minicnn.gallery.sections.attribution import edge_agreement
    try:
        pix, _ = load_fashion_mnist("test", download=False)
    except (OSError, ValueError):
        pytest.skip("the Fashion-MNIST test set is not installed")
    model = mc.models.fashion_net(pretrained=True)
    info = ModelInfo("fashion_net", model, True, "", [], "small")
    order = np.sort(np.random.default_rng(0).permutation(len(pix))[:100])   # as ctx.dataset
    own, other, wins = edge_agreement(info, model.preprocess.preprocess(pix[order]), pix[order])
    assert own > other + 0.15, (own, other)
    assert wins >= 0.8, wins


@pytest.mark.parametrize("n", [1000, pytest.param(5000, marks=pytest.mark.slow)])
def test_gallery_panel_projections_of_the_channel_map_differ_between_the_top_images(n):
    """The gallery's panel at its quick (1000) and full (5000 test images, measured) settings
    (features.6, the 4 strongest channels, their top 9 images): one unit's projection cropped to its field is nearly the same picture for all
    nine (measured mean pairwise r 0.75-0.95), the projection of the channel's whole map
    differs from image to image (0.12-0.63, mean 0.31): below the cropped one by 0.2 or more
    for every channel, and below 0.5 on average."""
    from minicnn.data import load_fashion_mnist
    from minicnn.techniques.top_activations import top_activations, top_patches
    try:
        pix, _ = load_fashion_mnist("test", download=False)
    except (OSError, ValueError):
        pytest.skip("the Fashion-MNIST test set is not installed")
    model = mc.models.fashion_net(pretrained=True)
    order = np.sort(np.random.default_rng(0).permutation(len(pix))[:n])      # as ctx.dataset
    x = model.preprocess.preprocess(pix[order])
    best = top_activations(model, x, "features.6", k=9, batch_size=500)

    def mean_r(maps):
        r = np.corrcoef(np.array([np.ravel(m) for m in maps]))
        return r[~np.eye(len(maps), dtype=bool)].mean()
    whole_rs = []
    for c in best.units[np.argsort(-best.scores[:, 0], kind="stable")[:4]]:
        c = int(c)
        top = top_patches(model, x, "features.6", c, 9, batch_size=500, project=lambda xi, u:
                          deconvnet_projection(model, xi, "features.6", u))
        whole = deconvnet(model, x[top["indices"]], layer="features.6", unit=c)
        whole_rs.append(mean_r(whole))
        assert whole_rs[-1] < mean_r(top["projections"]) - 0.2, (c, whole_rs[-1])
    assert np.mean(whole_rs) < 0.5, whole_rs

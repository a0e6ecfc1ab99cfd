"""Filters, activation grids, receptive-field arithmetic and maximally activating patches.

The receptive field computed from kernel/stride/padding must be exactly the set of
input pixels a unit's gradient reaches when nothing can cancel (all weights positive,
pooling averaged so every pixel of a window counts); streaming top-k must equal a full
sort and keep memory flat however many batches come by.
"""
import tracemalloc

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend, to_numpy
from minicnn.techniques.filters import activation_grids, filter_images, first_conv_layer
from minicnn.techniques.receptive_field import (crop_receptive_field, effective_receptive_field,
                                                receptive_field, rf_box)
from minicnn.techniques.top_activations import top_activations, top_patches


# ------------------------------------------------------------ receptive fields
def geometry_twin(model):
    """The same geometry with nothing that can cancel or select: conv weights and biases
    positive, every max-pool an average pool of the same kernel/stride/padding."""
    for name in model.layer_names():
        m = model.get_submodule(name)
        if isinstance(m, nn.Conv2d):
            m.weight.data = np.abs(m.weight.data) + 0.05
            m.bias.data = np.abs(m.bias.data) + 0.05
        if isinstance(m, nn.Sequential):
            for key, child in m.named_children():
                if isinstance(child, nn.MaxPool2d):
                    setattr(m, key, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    return model


def gradient_support(model, layer, unit, shape):
    """Input pixels with a non-zero gradient of one unit (c, i, j) of ``layer``."""
    x = mc.tensor(np.ones((1, *shape), np.float32), requires_grad=True)
    with mc.capture(model, layer, stop=True) as acts:
        model(x)
    a = acts[layer]
    g = np.zeros(a.shape, np.float32)
    g[(0, *unit)] = 1
    a.backward(g)
    return to_numpy(x.grad)[0].any(axis=0)


def box_mask(rf, pos, H, W):
    top, left, bottom, right = rf_box(rf, pos)
    m = np.zeros((H, W), bool)
    m[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)] = True
    return m


@pytest.mark.parametrize("arch, layers, shape", [
    ("fashion_net", ["features.0", "features.3", "features.4", "features.7", "features.9"],
     (1, 28, 28)),
    ("cifar_net", ["features.2", "features.4", "features.6", "features.9", "features.12",
                   "features.14"], (3, 32, 32)),
])
def test_receptive_field_equals_the_gradient_support(arch, layers, shape):
    model = geometry_twin(getattr(mc.models, arch)())
    for layer in layers:
        rf = receptive_field(model, layer)
        with mc.capture(model, layer, stop=True) as acts:
            model(mc.tensor(np.zeros((1, *shape), np.float32)))
        _, c, h, w = acts[layer].shape
        for pos in {(0, 0), (h // 2, w // 2), (h - 1, w - 1), (1, w - 2)}:
            support = gradient_support(model, layer, (c - 1, *pos), shape)
            np.testing.assert_array_equal(support, box_mask(rf, pos, *shape[1:]),
                                          err_msg=f"{arch} {layer} unit at {pos}")


def test_receptive_field_of_the_small_nets_by_hand():
    m = mc.models.fashion_net()
    assert receptive_field(m, "features.0") == ((3, 3), (1, 1), (-1, -1))
    assert receptive_field(m, "features.3") == ((5, 5), (1, 1), (-2, -2))
    assert receptive_field(m, "features.4") == ((6, 6), (2, 2), (-2, -2))
    assert receptive_field(m, "features.9") == ((16, 16), (4, 4), (-6, -6))
    # AlexNet conv1: 11×11, stride 4, padding 2; then 3×3 / 2 max-pool
    a = mc.models.alexnet()
    assert receptive_field(a, "features.0") == ((11, 11), (4, 4), (-2, -2))
    assert receptive_field(a, "features.2") == ((19, 19), (8, 8), (-2, -2))


def test_receptive_field_agrees_with_the_effective_receptive_field_code():
    model = mc.models.fashion_net()
    layers = ["features.2", "features.7"]
    maps = effective_receptive_field(model, layers, (1, 28, 28), n_samples=8)
    for layer in layers:
        with mc.capture(model, layer, stop=True) as acts:
            model(mc.tensor(np.zeros((1, 1, 28, 28), np.float32)))
        h, w = acts[layer].shape[2:]
        box = box_mask(receptive_field(model, layer), (h // 2, w // 2), 28, 28)
        support = maps[layer] > 0
        assert support.any() and not (support & ~box).any()        # never outside the field
        if layer == "features.2":                                  # before any pooling: all of it
            np.testing.assert_array_equal(support, box)


def test_receptive_field_errors_name_the_problem():
    m = mc.models.fashion_net()
    with pytest.raises(ValueError, match="whole input"):
        receptive_field(m, "classifier.1")
    with pytest.raises(Exception, match="features.4"):
        receptive_field(m, "features.40")                          # lists the valid names
    with pytest.raises(ValueError, match="branches"):
        receptive_field(mc.models.squeezenet1_1(), "features.3.expand3x3")


def test_crop_pads_outside_the_image(backend_name):
    img = as_backend(np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6), backend_name)
    rf = receptive_field(mc.models.fashion_net(), "features.3")   # 5×5, start -2
    patch = to_numpy(crop_receptive_field(img, rf, (0, 0), fill=-1))
    assert patch.shape == (2, 5, 5)
    assert (patch[:, :2] == -1).all() and (patch[:, :, :2] == -1).all()
    np.testing.assert_array_equal(patch[:, 2:, 2:], to_numpy(img)[:, :3, :3])
    np.testing.assert_array_equal(to_numpy(crop_receptive_field(img, rf, (3, 3))),
                                  to_numpy(img)[:, 1:6, 1:6])


# ------------------------------------------------------------------ top-k streaming
def tiny_net(seed=0):
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 3, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 2 * 2, 5, rng=rng))
    return net


def full_sort_reference(net, images, layer, k):
    with mc.no_grad(), mc.capture(net, layer) as acts:
        net(mc.tensor(images))
    a = to_numpy(acts[layer].data)
    if a.ndim == 2:
        score = a
        pos = np.full(a.shape + (2,), -1)
    else:
        flat = a.reshape(a.shape[0], a.shape[1], -1)
        score = flat.max(2)
        arg = flat.argmax(2)
        pos = np.stack([arg // a.shape[3], arg % a.shape[3]], -1)
    order = np.argsort(-score, axis=0, kind="stable")[:k].T        # (U, k)
    return (np.take_along_axis(score.T, order, 1), order,
            pos.transpose(1, 0, 2)[np.arange(score.shape[1])[:, None], order])


@pytest.mark.parametrize("layer", ["0", "2", "3", "6"])      # no ReLU: no ties at 0
def test_streaming_top_k_equals_a_full_sort(layer, backend_name):
    net = tiny_net().to(backend_name)
    images = np.random.default_rng(1).standard_normal((53, 1, 8, 8)).astype(np.float32)
    scores, idx, pos = full_sort_reference(tiny_net(), images, layer, 6)
    for source in (as_backend(images, backend_name),
                   (images[s:s + 10] for s in range(0, 53, 10))):      # array, or a generator
        top = top_activations(net, source, layer, k=6, batch_size=7)
        np.testing.assert_array_equal(top.indices, idx)
        np.testing.assert_allclose(top.scores, scores, rtol=1e-5, atol=1e-6)   # batch round-off
        np.testing.assert_array_equal(top.positions, pos)
    some = top_activations(net, as_backend(images, backend_name), layer, units=[2, 0], k=3)
    np.testing.assert_array_equal(some.indices, idx[[2, 0], :3])


def test_streaming_memory_does_not_grow_with_the_dataset():
    net = tiny_net()

    def stream(n_batches):
        rng = np.random.default_rng(0)
        for _ in range(n_batches):
            yield rng.standard_normal((64, 1, 8, 8)).astype(np.float32)

    peaks = []
    for n_batches in (4, 40):
        tracemalloc.start()
        top = top_activations(net, stream(n_batches), "1", k=5, batch_size=64)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert top.indices.max() < 64 * n_batches
    assert peaks[1] < 1.3 * peaks[0] + 100_000, peaks            # 10× the data, same memory


def test_top_patches_crop_the_field_around_the_strongest_response():
    # one filter that answers a single bright pixel: the top image is the one with the
    # brightest dot, the maximum sits on the dot and the crop has the dot at its centre
    conv = nn.Conv2d(1, 1, 3, padding=1)
    conv.weight.data = np.zeros((1, 1, 3, 3), np.float32)
    conv.weight.data[0, 0, 1, 1] = 1
    conv.bias.data = np.zeros(1, np.float32)
    net = nn.Sequential(conv, nn.ReLU())
    images = np.zeros((5, 1, 9, 9), np.float32)
    for n, (r, c, v) in enumerate([(4, 4, 1), (0, 0, 5), (8, 3, 3), (2, 6, 4), (6, 1, 2)]):
        images[n, 0, r, c] = v
    calls = []

    def project(x, unit):
        calls.append((x.shape, unit))
        return np.full(x.shape[1:], float(unit[1]))
    res = top_patches(net, images, "1", unit=0, k=3, project=project, fill=-1)
    np.testing.assert_array_equal(res["indices"], [1, 3, 2])
    np.testing.assert_array_equal(res["positions"], [[0, 0], [2, 6], [8, 3]])
    assert res["patches"].shape == (3, 1, 3, 3)
    assert res["patches"][0, 0, 1, 1] == 5 and res["patches"][0, 0, 0, 0] == -1   # padding
    np.testing.assert_array_equal(res["patches"][1, 0], images[3, 0, 1:4, 5:8])
    assert [c[1] for c in calls] == [(0, 0, 0), (0, 2, 6), (0, 8, 3)]
    assert all(c[0] == (1, 1, 9, 9) for c in calls)
    assert res["projections"].shape == (3, 1, 3, 3) and res["projections"][2, 0, 0, 0] == 8
    np.testing.assert_array_equal(res["boxes"][1], [1, 5, 4, 8])


def test_top_activations_bad_input():
    net = tiny_net()
    images = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="units"):
        top_activations(net, images, "1", units=[4])
    with pytest.raises(ValueError, match="k must be"):
        top_activations(net, images, "1", k=0)
    with pytest.raises(Exception, match="Valid layer names"):
        top_activations(net, images, "conv9")


# ------------------------------------------------------------ filters and activations
def test_filter_images_are_min_max_normalized_per_filter():
    net = nn.Sequential(nn.Conv2d(3, 2, 2), nn.ReLU(), nn.Conv2d(2, 4, 3))
    w = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    w[1] *= -3
    net.get_submodule("0").weight.data = w
    imgs = filter_images(net)
    assert first_conv_layer(net) == "0" and imgs.shape == (2, 2, 2, 3)     # RGB, channels last
    for f in range(2):
        ref = (w[f] - w[f].min()) / (w[f].max() - w[f].min())
        np.testing.assert_allclose(imgs[f], ref.transpose(1, 2, 0))
    assert imgs.min() == 0 and imgs.max() == 1
    deep = filter_images(net, "2")                                     # per input channel
    assert deep.shape == (4, 2, 3, 3)
    assert np.allclose(deep.min(axis=(1, 2, 3)), 0) and np.allclose(deep.max(axis=(1, 2, 3)), 1)
    gray = filter_images(mc.models.fashion_net())
    assert gray.shape == (16, 3, 3)
    with pytest.raises(ValueError, match="not a Conv2d"):
        filter_images(net, "1")


def test_filter_images_undo_a_bgr_channel_order():
    from minicnn.data.images import Preprocess
    net = nn.Sequential(nn.Conv2d(3, 1, 1))
    net.get_submodule("0").weight.data = np.array([0, 1, 2], np.float32).reshape(1, 3, 1, 1)
    net.preprocess = Preprocess(mean=(0, 0, 0), std=(1, 1, 1), channel_order="BGR")
    np.testing.assert_allclose(filter_images(net)[0, 0, 0], [1, 0.5, 0])


def test_activation_grids_hold_every_layer_for_one_image():
    model = mc.models.fashion_net()
    x = np.random.default_rng(0).standard_normal((1, 28, 28)).astype(np.float32)
    acts = activation_grids(model, x)
    assert list(acts)[:3] == ["features.0", "features.1", "features.2"]
    assert acts["features.4"].shape == (16, 14, 14) and acts["classifier.3"].shape == (10,)
    ref = to_numpy(mc.nn.forward_to(model.eval(), mc.tensor(x[None]), "features.7").data[0])
    np.testing.assert_allclose(acts["features.7"], ref, rtol=1e-6)
    assert model.training is False or model.training is True
    with pytest.raises(ValueError, match="one image"):
        activation_grids(model, np.zeros((2, 1, 28, 28), np.float32))


def test_representation_figures_build():
    from minicnn.plot import representations as R
    model = mc.models.cifar_net()
    figs = [R.plot_filters(model), R.plot_filters(model, "features.2"),
            R.plot_filters(nn.Sequential(nn.Conv2d(3, 4, 3)), per_channel=True)]
    assert figs[1].axes[0].images[0].get_array().shape == (32 * 4 - 1, 16 * 4 - 1)   # grey
    assert figs[2].axes[0].images[0].get_array().shape == (4 * 4 - 1, 3 * 4 - 1)
    acts = activation_grids(model, np.zeros((3, 32, 32), np.float32),
                            ["features.1", "classifier.3"])
    figs += list(R.plot_activation_grids(acts).values())
    res = dict(patches=np.zeros((3, 3, 5, 5)), projections=np.ones((3, 3, 5, 5)),
               scores=np.arange(3.0))
    figs.append(R.plot_top_patches(res, title="unit 0"))
    for f in figs:
        assert f.axes
        R.plt.close(f)
    mosaic = R.tile(np.arange(12.0).reshape(3, 2, 2), ncols=2)
    assert mosaic.shape == (5, 5) and mosaic[3, 0] == 8 and np.isnan(mosaic[2, 0])


# ------------------------------------------------------------ probing RGB filters with charts
def _probe_net(weights, bias=0.0):
    """One 3×3 'same' conv on RGB pixels scaled to [0, 1] (mean 0, std 1: pixels / 255)."""
    from minicnn.data.images import Preprocess
    net = nn.Sequential(nn.Conv2d(3, len(weights), 3, padding=1,
                                  rng=np.random.default_rng(0)))
    net[0].weight.data = np.asarray(weights, np.float32)
    net[0].bias.data = np.full(len(weights), bias, np.float32)
    net.preprocess = Preprocess(mean=(0, 0, 0), std=(1, 1, 1))
    return net


def test_probes_of_hand_made_filters_light_the_rim_side_and_the_hue_they_were_made_for():
    """A grey filter rising to the right (columns −1, 0, +1) answers the disk where brightness
    rises to the right going inward: the left rim, 180°, with a concentrated answer; a filter
    summing the green channel only answers the wheel's green, 120°."""
    from minicnn.techniques.filters import probe_responses
    edge = np.tile(np.array([-1.0, 0.0, 1.0]), (3, 3, 1))       # (3, 3, 3): every channel
    green = np.zeros((3, 3, 3))
    green[1] = 1.0 / 9
    r = probe_responses(_probe_net([edge, green], bias=-0.3))
    assert abs((r["rim_angle"][0] - 180 + 180) % 360 - 180) < 5, r["rim_angle"]
    assert r["rim_strength"][0] > 0.8
    assert abs((r["hue"][1] - 120 + 180) % 360 - 180) < 5, r["hue"]
    assert r["hue_strength"][1] > 0.5
    with pytest.raises(ValueError, match="3 channels"):
        probe_responses(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)))
    with pytest.raises(ValueError, match="no preprocess"):
        probe_responses(nn.Sequential(nn.Conv2d(3, 2, 3, padding=1)))
    unpadded = _probe_net([edge])
    unpadded[0].padding = (0, 0)
    with pytest.raises(ValueError, match="changes the image size"):
        probe_responses(unpadded)


def _cifar_net_or_skip():
    try:
        return mc.models.cifar_net(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"cifar_net's shipped weights not found: {str(err).splitlines()[0]}")


def test_the_gallery_cifar_filter_probes_read_like_the_filters_linear_answers():
    """What the cifar_net filter figure claims, on the shipped weights: (1) where a filter
    lights the disk's rim is where the edge rises along its luminance part's first moment
    m_f = Σ_p L_f(p)·p (the linear answer to a smooth edge is m_f · ∇I) — within 30° for
    every filter with a concentrated rim answer (measured at most 14°); (2) the hue it lights
    on the wheel is the circular mean of its linear answer max(0, s_f · c(θ) + b_f) to flat
    colours c(θ) — within 25° for every filter (measured at most 10°); (3) most filters are
    colour detectors: at least 24 of 32 light one sector (measured 31), and at least 8 one
    side of the rim (measured 17)."""
    from minicnn.techniques.filters import colour_parts, probe_responses
    model = _cifar_net_or_skip()
    r = probe_responses(model)
    lum = colour_parts(model)["luminance"]                      # (F, 3, 3)
    yy, xx = np.mgrid[-1:2, -1:2]
    mx, my = (lum * xx).sum(axis=(1, 2)), (lum * yy).sum(axis=(1, 2))
    rises = np.degrees(np.arctan2(-my, -mx)) % 360              # rim angle where ∇I ∥ m_f
    concentrated = r["rim_strength"] >= 0.5
    off = np.abs((r["rim_angle"] - rises + 180) % 360 - 180)
    assert concentrated.sum() >= 8 and off[concentrated].max() < 30, off[concentrated]

    conv = model.get_submodule(r["layer"])
    w, b = (np.asarray(to_numpy(a), np.float64) for a in (conv.weight.data, conv.bias.data))
    pre = model.preprocess
    theta = np.arange(0, 360, 0.5)
    k = (np.array([5, 3, 1]) + theta[:, None] / 60) % 6
    rgb = 0.9 * (1 - np.clip(np.minimum(k, 4 - k), 0, 1))      # the wheel's hues in [0, 1]
    flat = (rgb * 255 * pre.scale - np.array(pre.mean)) / np.array(pre.std)
    answer = np.maximum(flat @ w.sum(axis=(2, 3)).T + b, 0)     # (angles, F)
    predicted = np.degrees(np.angle((answer * np.exp(1j * np.radians(theta))[:, None])
                                    .sum(axis=0))) % 360
    off = np.abs((r["hue"] - predicted + 180) % 360 - 180)
    assert off.max() < 25, off
    assert (r["hue_strength"] >= 0.5).sum() >= 24, r["hue_strength"]


def test_the_cifar_filter_figure_labels_each_filter_with_its_hue_and_edge_arrow():
    """The figure's titles are the probes' readings: a hue name for every filter, an arrow
    exactly for the filters whose rim answer is concentrated; the suptitle's counts match."""
    from minicnn.gallery.sections.representations import cifar_filter_probes
    from minicnn.plot.representations import edge_arrow, hue_name
    from minicnn.techniques.filters import probe_responses
    assert [hue_name(a) for a in (0, 59, 61, 179, 241, 331)] == \
        ["red", "yellow", "yellow", "cyan", "blue", "red"]
    assert [edge_arrow(a) for a in (0, 90, 180, 270, 315)] == ["→", "↓", "←", "↑", "↗"]
    model = _cifar_net_or_skip()
    r = probe_responses(model)
    fig = cifar_filter_probes(model)
    names = ("red", "yellow", "green", "cyan", "blue", "magenta")
    titles = [t for t in (ax.get_title() for ax in fig.axes) if t.split(" ")[0] in names]
    assert len(titles) == 32
    arrows = sum(any(a in t for a in "→↘↓↙←↖↑↗") for t in titles)
    assert arrows == int((r["rim_strength"] >= 0.5).sum())
    assert f"{int((r['hue_strength'] >= 0.5).sum())} of 32 filters" in fig._suptitle.get_text()
    from minicnn.plot.core import plt
    plt.close(fig)

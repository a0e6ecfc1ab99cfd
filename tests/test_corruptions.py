"""Corruptions: deterministic given the seed, shape/dtype/range kept, severity 0 the identity,
more change at higher severity, what each corruption must preserve, mCE by hand, and on
fashion_net accuracy that never rises from severity 1 to 5 (averaged over corruptions)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.techniques.corruptions import (CORRUPTIONS, _disk, _line, corrupt,
                                            corruption_accuracy, mean_corruption_error)
from tests.conftest import fashion_mnist_or_skip

ALL = pytest.mark.parametrize("name", CORRUPTIONS)


def images(kind="rgb", n=3, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "rgb":
        return rng.integers(0, 256, (n, 12, 12, 3)).astype(np.uint8)
    if kind == "grey":
        return rng.integers(0, 256, (n, 12, 12)).astype(np.uint8)
    return rng.uniform(0, 1, (12, 12, 3)).astype(np.float32)        # one float image


@ALL
def test_deterministic_given_the_seed(name):
    x = images()
    a, b = corrupt(x, name, 3, seed=5), corrupt(x, name, 3, seed=5)
    np.testing.assert_array_equal(a, b)
    if name in ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur"):
        assert not np.array_equal(a, corrupt(x, name, 3, seed=6))


@ALL
@pytest.mark.parametrize("kind", ["rgb", "grey", "float"])
def test_shape_dtype_and_range_are_kept(name, kind):
    x = images(kind)
    for s in range(1, 6):
        y = corrupt(x, name, s, seed=s)
        assert y.shape == x.shape and y.dtype == x.dtype
        top = 255 if x.dtype == np.uint8 else 1.0
        assert y.min() >= 0 and y.max() <= top
    single = corrupt(x[0], name, 2) if kind != "float" else corrupt(x[..., 0], name, 2)
    assert single.shape == (x[0] if kind != "float" else x[..., 0]).shape


@ALL
def test_severity_0_is_the_identity_and_a_copy(name):
    x = images()
    y = corrupt(x, name, 0)
    np.testing.assert_array_equal(y, x)
    y[0, 0, 0, 0] ^= 1
    assert not np.array_equal(y, x)


def smooth_images(n=8, size=16, seed=1):
    """Natural-looking test images: a bright square on smooth random waves (white noise
    would be no test for blurs: the first blur already removes almost all of it)."""
    rng = np.random.default_rng(seed)
    ii, jj = np.mgrid[:size, :size] / size
    out = []
    for _ in range(n):
        f = rng.uniform(0.5, 2, (2, 2))
        img = 0.3 + 0.15 * np.sin(2 * np.pi * (f[0, 0] * ii + f[0, 1] * jj)) \
            + 0.1 * np.cos(2 * np.pi * (f[1, 0] * ii - f[1, 1] * jj))
        r, c = rng.integers(2, size // 2, 2)
        img[r:r + size // 3, c:c + size // 3] = 0.9
        out.append(img)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


@ALL
def test_severity_5_changes_the_image_more_than_severity_1(name):
    x = smooth_images()
    change = [np.abs(corrupt(x, name, s, seed=0).astype(float) - x).mean() for s in (1, 5)]
    assert 0 < change[0] < change[1]


@pytest.mark.parametrize("name", ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
                                  "contrast"])
def test_a_constant_image_is_unchanged_by_blurs_and_contrast(name):
    x = np.full((2, 10, 10, 3), 0.3)
    np.testing.assert_allclose(corrupt(x, name, 5), x, atol=1e-12)


def test_blur_kernels_sum_to_one_and_are_centred():
    for k in (_disk(1.6), _line(7, 0.0), _line(9, 1.0)):
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(k, k[::-1, ::-1])              # symmetric about the centre
    line = _line(5, 0.0)
    assert np.count_nonzero(line.sum(axis=1)) == 1                 # horizontal: one row


def test_brightness_keeps_hue_and_saturation_and_contrast_keeps_the_mean():
    x = np.array([[[[0.2, 0.4, 0.1], [0.0, 0.0, 0.0]]]])           # a colour and black
    y = corrupt(x, "brightness", 2)                                  # V + 0.2
    np.testing.assert_allclose(y[0, 0, 0], x[0, 0, 0] * 0.6 / 0.4)  # RGB scaled by V'/V
    np.testing.assert_allclose(y[0, 0, 1], 0.2)                      # black becomes grey V'
    z = np.random.default_rng(0).uniform(0.2, 0.8, (2, 6, 6, 3))
    np.testing.assert_allclose(corrupt(z, "contrast", 4).mean(axis=(1, 2, 3)),
                               z.mean(axis=(1, 2, 3)))


def test_mean_corruption_error_by_hand():
    model = {"clean": 0.9, "a": [0.8, 0.6], "b": [0.7, 0.7]}      # errors a: .2 .4, b: .3 .3
    base = {"clean": 0.8, "a": [0.6, 0.4], "b": [0.7, 0.5]}       # errors a: .4 .6, b: .3 .5
    r = mean_corruption_error(model, base)
    assert r["ce"]["a"] == pytest.approx(0.6 / 1.0)
    assert r["ce"]["b"] == pytest.approx(0.6 / 0.8)
    assert r["mce"] == pytest.approx((0.6 + 0.75) / 2)
    assert r["relative_ce"]["a"] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert r["relative_ce"]["b"] == pytest.approx((0.2 + 0.2) / (0.1 + 0.3))


def test_bad_inputs_give_clear_errors():
    x = images()
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corrupt(x, "fog", 1)
    for bad in (6, -1, 1.5, True):
        with pytest.raises(ValueError, match="severity must be an int in 1..5"):
            corrupt(x, "contrast", bad)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        corrupt(np.full((4, 4), 2.0), "contrast", 1)
    with pytest.raises(TypeError, match="uint8"):
        corrupt(np.zeros((4, 4), np.int32), "contrast", 1)
    with pytest.raises(ValueError, match="expected images"):
        corrupt(np.zeros((2, 4, 4, 5), np.uint8), "contrast", 1)
    with pytest.raises(ValueError, match="same corruptions"):
        mean_corruption_error({"clean": 1, "a": [1]}, {"clean": 1, "b": [1]})


def test_accuracy_never_increases_from_severity_1_to_5_on_fashion_net():
    try:
        model = mc.models.fashion_net(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"needs the trained fashion_net weights: {err}")
    x, y = fashion_mnist_or_skip("test")
    table = corruption_accuracy(model, x[:200], y[:200], seed=0)
    mean = np.mean([table[n] for n in CORRUPTIONS], axis=0)
    print("\nmean accuracy by severity:", np.round(mean, 3), "clean", table["clean"])
    assert np.all(np.diff(mean) <= 0), mean
    assert table["clean"] >= mean[0]


def test_accuracy_table_and_figures_on_a_tiny_model():
    """A model that reads the mean brightness: dark vs bright images. Brightness at high
    severity turns dark images bright, so its accuracy must fall; the figures build."""
    from minicnn import nn
    from minicnn.data.images import Preprocess
    from minicnn.plot import adversarial as pa
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 2)).double()
    net[1].weight.data = np.stack([-np.ones(36), np.ones(36)]) / 36
    net[1].bias.data = np.array([0.5, -0.5])
    net.preprocess = Preprocess(mean=(0.0,), std=(1.0,), scale=1 / 255)
    x = np.concatenate([np.full((4, 6, 6), 40), np.full((4, 6, 6), 215)]).astype(np.uint8)
    y = np.array([0] * 4 + [1] * 4)
    table = corruption_accuracy(net, x, y, names=["brightness", "contrast"])
    assert table["clean"] == 1.0 and table["brightness"][-1] == 0.5
    assert set(table) == {"clean", "brightness", "contrast"} and len(table["contrast"]) == 5
    fig = pa.corruption_curves(table, baseline=table)
    assert len(fig.axes[0].lines) == 4
    fig2 = pa.corruption_examples(x[0], ["contrast", "zoom_blur"])
    assert len(fig2.axes) == 12
    pa.plt.close("all")
    del net.preprocess
    with pytest.raises(ValueError, match="needs model.preprocess"):
        corruption_accuracy(net, x, y)

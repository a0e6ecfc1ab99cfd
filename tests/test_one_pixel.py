"""One-pixel attack: differential evolution finds the one pixel a hand-built model looks at,
is deterministic given its seed, maps 0–255 values through the model's preprocess, and
reports only successes that re-running the model confirms."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend
from minicnn.data.images import Preprocess
from minicnn.techniques.one_pixel import one_pixel_attack, one_pixel_success_rate, set_pixels
from minicnn.training import predict
from tests.conftest import fashion_mnist_or_skip

R0, C0 = 5, 2


def deciding_net(h=8, w=8):
    """Class 1 score = Σ k_ij·red_ij − margin with a Gaussian k peaked at (R0, C0): on a grey
    image only a bright red pixel exactly at (R0, C0) overcomes the margin (a neighbour adds
    at most e^{-1/2}·0.5 < 0.4); nearby bright pixels get closer, guiding the search."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * h * w, 2)).double()
    ii, jj = np.mgrid[:h, :w]
    weight = np.zeros((2, 3, h, w))
    weight[1, 0] = np.exp(-((ii - R0) ** 2 + (jj - C0) ** 2) / 2.0)
    net[1].weight.data = weight.reshape(2, -1)
    net[1].bias.data = np.array([0.0, -0.4 - 0.5 * weight[1, 0].sum()])
    net.preprocess = Preprocess(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=1 / 255)
    return net


def grey(h=8, w=8):
    return np.full((1, 3, h, w), 0.5)


def test_the_attack_finds_the_deciding_pixel(backend_name):
    net = deciding_net().to(backend_name)
    res = one_pixel_attack(net, as_backend(grey(), backend_name), 0, seed=0, popsize=20,
                           maxiter=50)
    assert res["success"] and res["prediction"] == 1
    (row, col, values), = res["pixels"]
    assert (row, col) == (R0, C0)
    assert values[0] > 0.9 * 255
    changed = np.argwhere(np.abs(res["image"] - grey()) > 0)
    assert set(map(tuple, changed[:, 2:])) == {(R0, C0)}
    assert predict(net, res["image"]).argmax() == 1                  # the model agrees


def test_the_attack_is_deterministic_given_the_seed():
    net = deciding_net()
    runs = [one_pixel_attack(net, grey(), 0, seed=s, popsize=20, maxiter=50) for s in (7, 7, 8)]
    assert runs[0]["pixels"] == runs[1]["pixels"]
    assert runs[0]["evaluations"] == runs[1]["evaluations"]
    np.testing.assert_array_equal(runs[0]["image"], runs[1]["image"])
    assert runs[0]["pixels"] != runs[2]["pixels"]


def test_a_targeted_attack_with_two_pixels_and_small_batches():
    net = deciding_net()
    res = one_pixel_attack(net, grey(), 0, pixels=2, target=1, seed=1, popsize=15, maxiter=60,
                           batch_size=7)
    assert res["success"] and len(res["pixels"]) == 2
    assert (R0, C0) in [(r, c) for r, c, _ in res["pixels"]]


def test_set_pixels_writes_the_preprocessed_value_of_the_pixel():
    pp = Preprocess(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), scale=1 / 255)
    x = pp.preprocess(np.zeros((4, 5, 3), np.uint8), dtype=np.float64)
    lo, hi = (pp.preprocess(np.full((1, 1, 3), v), dtype=np.float64).reshape(3) for v in (0, 255))
    z = np.array([[1.7, 3.2, 10, 200, 255], [0, 0, 0, 0, 0]])
    out = set_pixels(x, z, lo, hi)
    expected = pp.preprocess(np.array([[[10, 200, 255]]], np.uint8), dtype=np.float64)[0, :, 0, 0]
    np.testing.assert_allclose(out[0, :, 1, 3], expected)
    np.testing.assert_allclose(np.delete(out[0].reshape(3, -1), 1 * 5 + 3, axis=1),
                               np.delete(x[0].reshape(3, -1), 1 * 5 + 3, axis=1))
    np.testing.assert_allclose(out[1, :, 0, 0], lo)


def test_success_rate_counts_only_correctly_classified_images():
    net = deciding_net()
    x = np.concatenate([grey(), grey(), grey()])
    x[2, 0, R0, C0] = 1.0                       # already class 1: misclassified if labelled 0
    r = one_pixel_success_rate(net, x, [0, 0, 0], seed=0, popsize=20, maxiter=30)
    assert r["skipped"] == 1 and r["attacked"] == 2 and r["fooled"] == 2 and r["rate"] == 1.0


def test_bad_inputs_give_clear_errors():
    net = deciding_net()
    with pytest.raises(ValueError, match="pixels must be"):
        one_pixel_attack(net, grey(), 0, pixels=0)
    with pytest.raises(ValueError, match="one image"):
        one_pixel_attack(net, np.concatenate([grey(), grey()]), 0)
    with pytest.raises(ValueError, match="target equals the label"):
        one_pixel_attack(net, grey(), 1, target=1)
    with pytest.raises(ValueError, match="out of range"):
        one_pixel_attack(net, grey(), 2)
    del net.preprocess
    with pytest.raises(ValueError, match="valid pixel range"):
        one_pixel_attack(net, grey(), 0)


@pytest.mark.slow
def test_one_pixel_success_rate_on_fashion_net():
    """A measurement (printed), checked for consistency: every reported success is a
    misclassification of the returned image, which differs from the original in 1 pixel."""
    try:
        model = mc.models.fashion_net(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"needs the trained fashion_net weights: {err}")
    x, y = fashion_mnist_or_skip("test")
    x, y = model.preprocess.preprocess(x[:30]), y[:30]
    r = one_pixel_success_rate(model, x, y, pixels=1, seed=0, popsize=40, maxiter=30)
    print(f"\nfashion_net one-pixel success: {r['fooled']}/{r['attacked']} = {r['rate']:.2f}")
    attacked = np.flatnonzero(predict(model, x).argmax(axis=1) == y)
    for n, res in zip(attacked, r["results"]):
        changed = np.argwhere((res["image"][0] != x[n]).any(axis=0))
        assert (predict(model, res["image"]).argmax() != y[n]) == res["success"]
        assert len(changed) <= 1

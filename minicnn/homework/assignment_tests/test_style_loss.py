"""style_loss (minicnn/techniques/style.py): the body of its objective ``fn(acts)``.

L_style = Σ_l w_l ‖G_l(I) − G_l(S)‖² (Gatys et al. 2016), with G = mc.ops.gram_matrix and
acts[layer] the image's features at that layer. Checked by hand, against an einsum
oracle, by its properties and with the numerical gradient check.
"""
import numpy as np

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.techniques.style import style_loss


def gram(a):
    n, c, h, w = a.shape
    f = a.reshape(n, c, -1)
    return np.einsum("ncp,ndp->ncd", f, f) / (c * h * w)


def features(seed):
    rng = np.random.default_rng(seed)
    return {"conv1": rng.standard_normal((1, 3, 4, 4)), "conv2": rng.standard_normal((1, 5, 2, 3))}


def value(objective, acts):
    return float(objective({k: Tensor(v) for k, v in acts.items()}).data)


def test_hand_example():
    # one channel [1, 2]: G = (1 + 4) / 2 = 2.5; target 0.5 → (2.5 − 0.5)² · w = 4 · 3
    obj = style_loss({"l": np.array([[[0.5]]])}, [3.0])
    assert np.isclose(value(obj, {"l": np.array([[[[1.0, 2.0]]]])}), 12.0)


def test_matches_oracle_with_layer_weights():
    style, img = features(0), features(1)
    grams = {k: gram(v) for k, v in style.items()}
    weights = [0.3, 2.0]
    expected = sum(wl * np.sum((gram(img[k]) - grams[k]) ** 2) for k, wl in zip(grams, weights))
    assert np.isclose(value(style_loss(grams, weights), img), expected, rtol=1e-12)


def test_zero_when_the_image_has_the_style_statistics():
    style = features(2)
    obj = style_loss({k: gram(v) for k, v in style.items()}, [1.0, 1.0])
    assert abs(value(obj, style)) < 1e-20
    # ... also with the positions shuffled: style has no layout
    rng = np.random.default_rng(3)
    moved = {k: v.reshape(1, v.shape[1], -1)[:, :, rng.permutation(v.shape[2] * v.shape[3])]
             .reshape(v.shape) for k, v in style.items()}
    assert abs(value(obj, moved)) < 1e-20


def test_linear_in_the_layer_weights():
    style, img = features(4), features(5)
    grams = {k: gram(v) for k, v in style.items()}
    one = value(style_loss(grams, [1.0, 0.0]), img) + value(style_loss(grams, [0.0, 1.0]), img)
    assert np.isclose(value(style_loss(grams, [1.0, 1.0]), img), one, rtol=1e-12)


def test_gradients_match_finite_differences():
    style, img = features(6), features(7)
    obj = style_loss({k: gram(v) for k, v in style.items()}, [0.5, 1.5])
    report = gradcheck.check(lambda a, b: obj({"conv1": a, "conv2": b}),
                             [img["conv1"], img["conv2"]])
    assert report.ok, report

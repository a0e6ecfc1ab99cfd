"""saliency: input_gradient and saliency (minicnn/techniques/gradients.py).

On a linear classifier y = W·vec(x) + b the gradient of class k's score is W[k] itself,
whatever the image — so every map here is known by hand. Saliency (Simonyan et al. 2014)
is max_c |∂y_k/∂x_c| at each pixel.
"""
import numpy as np
import pytest

from minicnn import nn
from minicnn.techniques.gradients import input_gradient, saliency

C, H, W, K = 3, 4, 5, 6


def linear_net(seed=0):
    """Flatten → Linear(C·H·W, K) with known weights, in float64."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()
    weight, bias = rng.standard_normal((K, C * H * W)), rng.standard_normal(K)
    model.load_state_dict({"1.weight": weight, "1.bias": bias})
    return model, weight.reshape(K, C, H, W)


def pooled_net(seed=1):
    """AvgPool2d(2) → Flatten → Linear: the gradient is W[k] spread over each 2×2 block / 4."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(C * 2 * 2, K)).double()
    weight = rng.standard_normal((K, C * 2 * 2))
    model.load_state_dict({"2.weight": weight, "2.bias": np.zeros(K)})
    return model, np.kron(weight.reshape(K, C, 2, 2), np.ones((2, 2))) / 4


def image(seed=2, n=None):
    shape = (C, H, W) if n is None else (n, C, H, W)
    return np.random.default_rng(seed).standard_normal(shape)


def test_input_gradient_of_a_linear_score_is_its_weight_row():
    model, w = linear_net()
    g = input_gradient(model, image(), target=2)
    assert g.shape == (C, H, W)                              # one image in, no batch axis out
    np.testing.assert_allclose(g, w[2], rtol=1e-12)


def test_input_gradient_through_pooling():
    model, w = pooled_net()
    x = np.random.default_rng(3).standard_normal((C, 4, 4))
    np.testing.assert_allclose(input_gradient(model, x, target=4), w[4], rtol=1e-12)


def test_saliency_is_the_max_over_channels_of_the_absolute_gradient():
    model, w = linear_net()
    s = saliency(model, image(), target=1)
    assert s.shape == (H, W)
    np.testing.assert_allclose(s, np.abs(w[1]).max(axis=0), rtol=1e-12)
    np.testing.assert_allclose(saliency(model, image(), 1, reduce="sum"),
                               np.abs(w[1]).sum(axis=0), rtol=1e-12)


def test_one_target_per_image_in_a_batch():
    model, w = linear_net()
    g = input_gradient(model, image(n=3), target=[0, 5, 3])
    assert g.shape == (3, C, H, W)
    for n, k in enumerate([0, 5, 3]):
        np.testing.assert_allclose(g[n], w[k], rtol=1e-12)
    s = saliency(model, image(n=3), target=[0, 5, 3])
    np.testing.assert_allclose(s[1], np.abs(w[5]).max(axis=0), rtol=1e-12)


def test_target_function_of_the_logits():
    model, w = linear_net()
    g = input_gradient(model, image(), target=lambda logits: logits[:, 0] - logits[:, 4])
    np.testing.assert_allclose(g, w[0] - w[4], rtol=1e-12)


def test_gradient_of_one_unit_of_a_layer():
    model, w = linear_net()
    np.testing.assert_allclose(input_gradient(model, image(), layer="1", unit=3), w[3],
                               rtol=1e-12)


def test_parameters_get_no_gradient_and_stay_trainable():
    model, _ = linear_net()
    x = image()
    before = x.copy()
    saliency(model, x, target=0)
    for p in model.parameters():
        assert p.grad is None and p.requires_grad
    np.testing.assert_array_equal(x, before)                 # the caller's image is untouched


def test_wrong_target_is_a_clear_error():
    model, _ = linear_net()
    with pytest.raises(ValueError, match="out of range"):
        saliency(model, image(), target=K)

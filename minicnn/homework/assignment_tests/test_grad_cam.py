"""grad_cam (minicnn/techniques/gradcam.py).

Grad-CAM (Selvaraju et al. 2017): α_k = mean over the map of ∂y^c/∂A^k, L = ReLU(Σ_k α_k A^k),
upsampled bilinearly to the input. On the net A = avg_pool(x) → global average →
linear, ∂y^c/∂A^k_ij = W[c, k] / (h·w) everywhere, so the map is known by hand.
"""
import numpy as np
import pytest

from minicnn import nn
from minicnn.techniques.gradcam import bilinear_resize, grad_cam

C, H, W, K = 3, 8, 6, 4
h, w = H // 2, W // 2


def cam_net(seed=0):
    """'0' AvgPool2d(2) → '1' global average → '2' Flatten → '3' Linear(C, K), float64."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(C, K)).double()
    weight = rng.standard_normal((K, C))
    model.load_state_dict({"3.weight": weight, "3.bias": rng.standard_normal(K)})
    return model, weight


def by_hand(weight, x, c):
    """Σ_k α_k A^k without the ReLU, at the layer's h × w."""
    a = x.reshape(x.shape[0], C, h, 2, w, 2).mean(axis=(3, 5))         # A = avg_pool(x)
    alpha = weight[c] / (h * w)
    return np.einsum("k,nkij->nij", alpha, a)


def images(n=2, seed=1):
    return np.random.default_rng(seed).standard_normal((n, C, H, W))


def test_map_at_the_layer_matches_the_hand_computation():
    model, weight = cam_net()
    x = images()
    raw = by_hand(weight, x, 2)
    np.testing.assert_allclose(grad_cam(model, x, 2, layer="0", relu=False, upsample=False), raw,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_cam(model, x, 2, layer="0", upsample=False),
                               np.maximum(raw, 0), rtol=1e-10, atol=1e-12)


def test_upsampled_to_the_input_size():
    model, weight = cam_net()
    x = images(1)
    cam = grad_cam(model, x[0], 1, layer="0")
    assert cam.shape == (H, W)                        # one image in: no batch axis out
    np.testing.assert_allclose(cam, bilinear_resize(np.maximum(by_hand(weight, x, 1), 0),
                                                    (H, W))[0], rtol=1e-10, atol=1e-12)


def test_one_target_per_image():
    model, weight = cam_net()
    x = images(3)
    cams = grad_cam(model, x, [0, 3, 1], layer="0", relu=False, upsample=False)
    for n, c in enumerate([0, 3, 1]):
        np.testing.assert_allclose(cams[n], by_hand(weight, x[n:n + 1], c)[0], rtol=1e-10,
                                   atol=1e-12)


def test_default_layer_is_the_models():
    model, _ = cam_net()
    model.default_cam_layer = "0"
    x = images()
    np.testing.assert_allclose(grad_cam(model, x, 0), grad_cam(model, x, 0, layer="0"))


def test_the_evidence_is_where_the_class_weight_is():
    # channel 0 bright in the top-left quarter only; class 0 likes channel 0, class 1 dislikes it
    model = nn.Sequential(nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(C, 2)).double()
    weight = np.zeros((2, C))
    weight[0, 0], weight[1, 0] = 1.0, -1.0
    model.load_state_dict({"3.weight": weight, "3.bias": np.zeros(2)})
    x = np.zeros((1, C, H, W))
    x[0, 0, :H // 2, :W // 2] = 1.0
    liked = grad_cam(model, x, 0, layer="0", upsample=False)[0]
    assert liked[:h // 2, :w // 2].min() > 0 and liked[h // 2:, :].max() == 0
    assert grad_cam(model, x, 1, layer="0", upsample=False).max() == 0        # ReLU drops it
    assert grad_cam(model, x, 1, layer="0", relu=False, upsample=False).min() < 0


def test_a_layer_without_maps_is_a_clear_error():
    model, _ = cam_net()
    with pytest.raises(ValueError, match="spatial"):
        grad_cam(model, images(), 0, layer="2")

"""class_visualization (minicnn/techniques/class_vis.py).

Gradient ascent on the image (Simonyan et al. 2014): I* = argmax S_c(I) − λ‖I‖². For a
linear classifier S_c(I) = W[c]·I + b[c] the gradient is W[c] − 2λI, so plain steps
(optimizer="sgd") can be followed by hand and the optimum is I* = W[c] / (2λ).
"""
import numpy as np

from minicnn import nn
from minicnn.techniques.class_vis import class_visualization

C, H, W, K = 2, 3, 4, 5
SHAPE = (C, H, W)


def linear_net(seed=0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()
    weight = rng.standard_normal((K, C * H * W))
    model.load_state_dict({"1.weight": weight, "1.bias": rng.standard_normal(K)})
    return model, weight.reshape(K, C, H, W)


def test_plain_steps_add_the_weight_row():
    # λ = 0: every sgd step adds lr · W[c]
    model, w = linear_net()
    img, hist = class_visualization(model, 3, steps=5, lr=0.1, shape=SHAPE, l2=0.0,
                                    optimizer="sgd", init="zeros")
    assert img.shape == (1, C, H, W)
    np.testing.assert_allclose(img[0], 5 * 0.1 * w[3], rtol=1e-10, atol=1e-12)


def test_converges_to_the_l2_regularized_optimum():
    model, w = linear_net()
    lam = 0.5
    img, hist = class_visualization(model, 1, steps=200, lr=0.1, shape=SHAPE, l2=lam,
                                    optimizer="sgd", init="zeros")
    np.testing.assert_allclose(img[0], w[1] / (2 * lam), rtol=1e-6, atol=1e-8)
    f = np.array(hist["objective"])
    assert np.all(np.diff(f) >= -1e-12) and f[-1] > f[0]     # uphill all the way


def test_a_neuron_of_a_layer_is_the_same_as_its_class():
    model, w = linear_net()
    by_class, _ = class_visualization(model, 2, steps=3, lr=0.1, shape=SHAPE, optimizer="sgd")
    by_unit, _ = class_visualization(model, 2, steps=3, lr=0.1, shape=SHAPE, optimizer="sgd",
                                     layer="1")
    np.testing.assert_allclose(by_unit, by_class, rtol=1e-12)


def test_decay_regularizer_shrinks_the_image():
    # I ← (1 − θ)(I + lr·W[c]) has the fixed point (1 − θ)·lr·W[c] / θ
    model, w = linear_net()
    img, _ = class_visualization(model, 0, steps=60, lr=0.1, shape=SHAPE, l2=0.0, decay=0.5,
                                 optimizer="sgd")
    np.testing.assert_allclose(img[0], 0.1 * w[0], rtol=1e-8, atol=1e-10)


def test_one_image_per_seed_reproducibly():
    model, _ = linear_net()
    a, _ = class_visualization(model, 0, steps=2, shape=SHAPE, init="random", seed=[0, 1])
    b, _ = class_visualization(model, 0, steps=2, shape=SHAPE, init="random", seed=[0, 1])
    assert a.shape == (2, C, H, W)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])

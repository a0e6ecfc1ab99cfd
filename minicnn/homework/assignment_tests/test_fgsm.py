"""fgsm (minicnn/techniques/adversarial.py).

The fast gradient sign method (Goodfellow, Shlens & Szegedy 2015): one step of size ε
along the sign of the loss gradient, x' = x + ε·sign(∇ₓ J(x, y)) (minus, at the target
class, for a targeted attack). For a linear classifier with cross-entropy,
∇ₓ J = Wᵀ (softmax(Wx + b) − onehot(y)), so the step is known by hand. A model without
``preprocess`` works in its own units (s = 1) and has no pixel bounds.
"""
import numpy as np

from minicnn import nn
from minicnn.techniques.adversarial import fgsm

C, H, W, K = 1, 3, 3, 4


def linear_net(seed=0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, K)).double()
    weight, bias = rng.standard_normal((K, C * H * W)), rng.standard_normal(K)
    model.load_state_dict({"1.weight": weight, "1.bias": bias})
    return model, weight, bias


def loss_and_gradient(weight, bias, x, y):
    """Cross-entropy of one image at class y and its gradient with respect to x."""
    z = weight @ x.ravel() + bias
    p = np.exp(z - z.max())
    p /= p.sum()
    onehot = np.eye(K)[y]
    return -np.log(p[y]), (weight.T @ (p - onehot)).reshape(x.shape)


def images(n=2, seed=1):
    return np.random.default_rng(seed).standard_normal((n, C, H, W))


def test_one_signed_step_up_the_loss():
    model, weight, bias = linear_net()
    x, eps = images(), 0.1
    adv = fgsm(model, x, [0, 2], eps)
    assert adv.shape == x.shape
    for n, y in enumerate([0, 2]):
        _, g = loss_and_gradient(weight, bias, x[n], y)
        np.testing.assert_allclose(adv[n], x[n] + eps * np.sign(g), rtol=1e-12)


def test_every_pixel_moves_by_exactly_eps():
    model, _, _ = linear_net()
    x = images(3, seed=2)
    adv = fgsm(model, x, 1, 0.05)
    np.testing.assert_allclose(np.abs(adv - x), 0.05, rtol=1e-10)


def test_the_loss_of_the_true_class_rises():
    model, weight, bias = linear_net()
    x = images(4, seed=3)
    labels = [0, 1, 2, 3]
    adv = fgsm(model, x, labels, 0.02)
    for n, y in enumerate(labels):
        assert loss_and_gradient(weight, bias, adv[n], y)[0] > loss_and_gradient(weight, bias,
                                                                                 x[n], y)[0]


def test_targeted_step_goes_down_the_loss_of_the_target():
    model, weight, bias = linear_net()
    x = images(1, seed=4)
    adv = fgsm(model, x, None, 0.1, target=3)
    _, g = loss_and_gradient(weight, bias, x[0], 3)
    np.testing.assert_allclose(adv[0], x[0] - 0.1 * np.sign(g), rtol=1e-12)
    assert loss_and_gradient(weight, bias, adv[0], 3)[0] < loss_and_gradient(weight, bias,
                                                                            x[0], 3)[0]


def test_clipped_to_the_bounds():
    model, weight, bias = linear_net()
    x = np.clip(images(2, seed=5), -0.5, 0.5)
    adv = fgsm(model, x, 0, 1.0, bounds=(-0.6, 0.6))
    assert adv.min() >= -0.6 and adv.max() <= 0.6
    _, g = loss_and_gradient(weight, bias, x[0], 0)
    np.testing.assert_allclose(adv[0], np.clip(x[0] + np.sign(g), -0.6, 0.6), rtol=1e-12)


def test_the_caller_image_and_the_model_are_untouched():
    model, _, _ = linear_net()
    x = images()
    before = x.copy()
    fgsm(model, x, 0, 0.1)
    np.testing.assert_array_equal(x, before)
    for p in model.parameters():
        assert p.grad is None and p.requires_grad

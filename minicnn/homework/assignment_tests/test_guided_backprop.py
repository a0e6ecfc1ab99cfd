"""guided_backprop (minicnn/techniques/gradients.py).

Guided backpropagation (Springenberg et al. 2015) is the input gradient with, at every
ReLU, R_in = R_out · (x > 0) · (R_out > 0). On a small fully connected ReLU net that is
a few masked matrix products, computed here by hand.
"""
import numpy as np

from minicnn import nn
from minicnn.techniques.gradients import guided_backprop, input_gradient

C, H, W = 2, 3, 3
D, HIDDEN, K = C * H * W, 7, 4


def relu_net(seed=0):
    """Flatten → Linear → ReLU → Linear → ReLU → Linear, float64, known weights."""
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, HIDDEN), nn.ReLU(),
                          nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, K)).double()
    ws = [rng.standard_normal((HIDDEN, D)), rng.standard_normal((HIDDEN, HIDDEN)),
          rng.standard_normal((K, HIDDEN))]
    bs = [rng.standard_normal(HIDDEN) * 0.5, rng.standard_normal(HIDDEN) * 0.5, np.zeros(K)]
    model.load_state_dict({"1.weight": ws[0], "1.bias": bs[0], "3.weight": ws[1],
                           "3.bias": bs[1], "5.weight": ws[2], "5.bias": bs[2]})
    return model, ws, bs


def by_hand(ws, bs, x, k, guided):
    """Backward from class k through both ReLUs with the standard or the guided rule."""
    h1 = ws[0] @ x.ravel() + bs[0]
    h2 = ws[1] @ np.maximum(h1, 0) + bs[1]
    r = ws[2][k]                                           # dy_k / d relu(h2)
    r = r * (h2 > 0) * ((r > 0) if guided else 1)
    r = ws[1].T @ r
    r = r * (h1 > 0) * ((r > 0) if guided else 1)
    return (ws[0].T @ r).reshape(x.shape)


def image(seed=1):
    return np.random.default_rng(seed).standard_normal((C, H, W))


def test_guided_backprop_matches_the_hand_computation():
    model, ws, bs = relu_net()
    x = image()
    for k in range(K):
        np.testing.assert_allclose(guided_backprop(model, x, target=k),
                                   by_hand(ws, bs, x, k, guided=True), rtol=1e-10, atol=1e-12)


def test_it_differs_from_the_plain_gradient_only_by_the_rule():
    model, ws, bs = relu_net()
    x = image()
    plain = input_gradient(model, x, target=0)
    np.testing.assert_allclose(plain, by_hand(ws, bs, x, 0, guided=False), rtol=1e-10, atol=1e-12)
    assert not np.allclose(guided_backprop(model, x, target=0), plain)


def test_only_positive_signal_passes_the_relus():
    # explain unit u after the second ReLU: the signal reaching the first ReLU is W2[u]
    # (if u is active), and only its positive entries at active units go on to the image
    model, ws, bs = relu_net()
    x = image()
    h1 = ws[0] @ x.ravel() + bs[0]
    h2 = ws[1] @ np.maximum(h1, 0) + bs[1]
    for u in range(HIDDEN):
        r = ws[1][u] * (h2[u] > 0)
        expected = ws[0].T @ (r * (h1 > 0) * (r > 0))
        np.testing.assert_allclose(guided_backprop(model, x, layer="4", unit=u),
                                   expected.reshape(x.shape), rtol=1e-10, atol=1e-12)


def test_batch_and_signed_map_shape():
    model, ws, bs = relu_net()
    xs = np.stack([image(2), image(3)])
    g = guided_backprop(model, xs, target=[1, 2])
    assert g.shape == xs.shape
    np.testing.assert_allclose(g[1], by_hand(ws, bs, xs[1], 2, guided=True), rtol=1e-10,
                               atol=1e-12)

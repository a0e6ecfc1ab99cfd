"""relu_rules: _standard, _deconvnet and _guided (minicnn/autograd.py).

Each rule maps (g = dL/d(output), active = forward mask) to what flows to the ReLU's
input. The backward of every ReLU, ReLU6 and clamp asks the rule of the running pass,
so ``y.backward(g, relu_rule="guided")`` changes every ReLU of the graph for that pass.
"""
import numpy as np
import pytest

from minicnn import gradcheck, ops
from minicnn.autograd import RELU_RULES, Tensor, relu_rule

X = np.array([-1.0, 2.0, 3.0, -4.0, 0.5])
G = np.array([1.0, -1.0, 2.0, -2.0, 0.0])
EXPECTED = {                           # by hand, from the rules' equations
    "standard": [0.0, -1.0, 2.0, 0.0, 0.0],     # g · (x > 0)
    "deconvnet": [1.0, 0.0, 2.0, 0.0, 0.0],     # g · (g > 0)
    "guided": [0.0, 0.0, 2.0, 0.0, 0.0],        # g · (x > 0) · (g > 0)
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rule_on_arrays(name):
    np.testing.assert_array_equal(RELU_RULES[name](G, X > 0), EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rule_through_relu(name):
    x = Tensor(X.copy(), requires_grad=True)
    ops.relu(x).backward(G, relu_rule=name)
    np.testing.assert_array_equal(x.grad, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rule_as_a_context(name):
    x = Tensor(X.copy(), requires_grad=True)
    with relu_rule(name):
        ops.relu(x).backward(G)
    np.testing.assert_array_equal(x.grad, EXPECTED[name])


def test_clamp_uses_the_rule_with_its_own_mask():
    # relu6: "active" means 0 < x < 6, the unit passes its input through
    x = Tensor(np.array([-1.0, 3.0, 7.0, 2.0]), requires_grad=True)
    ops.relu6(x).backward(np.array([1.0, 1.0, 1.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, -1.0])
    x.grad = None
    ops.relu6(x).backward(np.array([1.0, 1.0, 1.0, -1.0]), relu_rule="guided")
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 0.0])


def test_standard_rule_is_the_true_gradient():
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((4, 6)), rng.standard_normal((6, 3))
    x = rng.standard_normal((2, 4))
    x[np.abs(x) < 0.1] = 0.5                                # away from the kink
    report = gradcheck.check(lambda x, w1, w2: ops.relu(ops.relu(x @ w1) @ w2), [x, w1, w2])
    assert report.ok, report


def two_layer(rule):
    """∂(v · relu(W x)) / ∂x with the given rule, and the hidden pre-activation."""
    rng = np.random.default_rng(1)
    W, v, x = rng.standard_normal((5, 4)), rng.standard_normal(5), rng.standard_normal((4, 1))
    xt = Tensor(x, requires_grad=True)
    h = ops.matmul(Tensor(W), xt)                           # (5, 1)
    (ops.relu(h) * Tensor(v[:, None])).sum().backward(relu_rule=rule)
    return xt.grad[:, 0], W, v, (W @ x)[:, 0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rule_in_a_small_network(name):
    grad, W, v, h = two_layer(name)
    mask = {"standard": h > 0, "deconvnet": v > 0, "guided": (h > 0) & (v > 0)}[name]
    np.testing.assert_allclose(grad, W.T @ (v * mask), rtol=1e-12)


def test_the_rule_does_not_outlive_its_pass():
    two_layer("guided")
    grad, W, v, h = two_layer(None)                          # the next pass is standard again
    np.testing.assert_allclose(grad, W.T @ (v * (h > 0)), rtol=1e-12)

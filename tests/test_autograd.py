"""Autograd engine: graph walking, accumulation, guards, and the ReLU backward rules."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import ops
from minicnn.backend import as_backend, to_numpy


def T(a, backend="numpy", grad=True):
    return mc.Tensor(as_backend(np.asarray(a, dtype=np.float64), backend), requires_grad=grad)


# ----------------------------------------------------------------- the graph

def test_gradients_accumulate_over_every_path(backend_name):
    # y = x·x + x  ->  dy/dx = 2x + 1 ; x used three times
    x = T([1.5, -2.0], backend_name)
    y = (x * x + x).sum()
    y.backward()
    np.testing.assert_allclose(to_numpy(x.grad), [4.0, -3.0])


def test_diamond_graph_visits_each_node_once():
    # a -> b, c -> d = b*c : shared subexpression must be backpropagated exactly once
    a = T([3.0])
    b = a * 2.0
    c = b + 1.0
    d = (b * c).sum()        # d = 2a(2a+1) -> dd/da = 8a + 2 = 26
    d.backward()
    np.testing.assert_allclose(a.grad, [26.0])


def test_leaf_grads_accumulate_across_backward_calls():
    x = T([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])


def test_retain_grad_keeps_intermediate_gradient():
    x = T([1.0, -1.0])
    h = (x * 2.0).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, [4.0, -4.0])       # d(h²)/dh = 2h
    np.testing.assert_allclose(x.grad, [8.0, -8.0])


def test_deep_chain_does_not_hit_recursion_limit():
    x = T([1.0])
    y = x
    for _ in range(5000):
        y = y + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_no_grad_records_nothing():
    x = T([1.0])
    with mc.no_grad():
        y = x * 2.0
    assert y.creator is None and not y.requires_grad


def test_retain_graph_allows_second_backward():
    x = T([2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [8.0])


# -------------------------------------------------------------------- guards

def test_backward_on_leaf_is_a_clear_error():
    with pytest.raises(RuntimeError, match="leaf tensor of shape \\(2,\\)"):
        T([1.0, 2.0]).backward()


def test_backward_on_non_scalar_needs_gradient():
    y = T(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"non-scalar tensor of shape \(2, 3\)"):
        y.backward()


def test_upstream_gradient_shape_is_checked():
    y = T(np.ones((2, 3))) * 2.0
    with pytest.raises(ValueError, match=r"upstream gradient has shape \(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_twice_through_freed_buffers_is_a_clear_error():
    x = T([1.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64.*\\(3,\\)"):
        mc.tensor(np.arange(3), requires_grad=True)


def test_unknown_relu_rule_lists_the_valid_ones():
    y = ops.relu(T([1.0])).sum()
    with pytest.raises(ValueError, match="unknown relu_rule 'guidded'.*deconvnet.*guided.*standard"):
        y.backward(relu_rule="guidded")
    with pytest.raises(ValueError, match="unknown relu_rule"):
        with mc.relu_rule("nope"):
            pass


def test_non_float_input_to_relu():
    with pytest.raises(TypeError, match="relu: x must be a floating-point array, got dtype int"):
        ops.relu(np.arange(4))


# ---------------------------------------------------------------- ReLU rules
# Hand-written example: x = [-2, -1, 1, 2], upstream g = [1, -1, 1, -1].
X = [-2.0, -1.0, 1.0, 2.0]
G = [1.0, -1.0, 1.0, -1.0]
EXPECTED = {
    "standard": [0.0, 0.0, 1.0, -1.0],    # g · (x > 0)
    "deconvnet": [1.0, 0.0, 1.0, 0.0],    # g · (g > 0)
    "guided": [0.0, 0.0, 1.0, 0.0],       # g · (x > 0) · (g > 0)
}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_relu_rules_are_exactly_their_definitions(rule, backend_name):
    x = T(X, backend_name)
    ops.relu(x).backward(as_backend(np.array(G), backend_name), relu_rule=rule)
    np.testing.assert_array_equal(to_numpy(x.grad), EXPECTED[rule])


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_relu_rule_as_context_is_the_same(rule):
    x = T(X)
    with mc.relu_rule(rule):
        ops.relu(x).backward(np.array(G))
    np.testing.assert_array_equal(x.grad, EXPECTED[rule])


def test_relu_rule_does_not_leak_past_its_backward_pass():
    x = T(X)
    ops.relu(x).backward(np.array(G), relu_rule="guided")
    x.grad = None
    ops.relu(x).backward(np.array(G))                     # plain: must be standard again
    np.testing.assert_array_equal(x.grad, EXPECTED["standard"])
    assert mc.autograd._relu_rule.get() == "standard"


def test_relu_rule_is_reset_even_when_backward_fails():
    x = T(X)
    y = ops.relu(x)
    y.backward(np.array(G))
    with pytest.raises(RuntimeError):
        y.backward(np.array(G), relu_rule="deconvnet")    # freed buffers
    assert mc.autograd._relu_rule.get() == "standard"


def test_rule_covers_every_relu_in_a_chain():
    # two stacked ReLUs with a sign flip between them: guided must zero negatives at both
    x = T([1.0, 2.0, -1.0])
    h = ops.relu(x) * np.array([1.0, -1.0, 1.0])
    y = ops.relu(h + 0.5)                                  # active: [1.5, -1.5->0, 0.5]
    y.backward(np.array([1.0, 1.0, 1.0]), relu_rule="guided")
    # position 1: upstream through second relu is 0 (inactive) -> 0 ; position 2: x<0 -> 0
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 0.0])


def test_clamp_and_relu6_follow_the_rule():
    x = T([-1.0, 3.0, 7.0, 5.0])
    ops.relu6(x).backward(np.array([1.0, -1.0, 1.0, 1.0]), relu_rule="guided")
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 1.0])
    x.grad = None
    ops.relu6(x).backward(np.array([1.0, -1.0, 1.0, 1.0]), relu_rule="deconvnet")
    np.testing.assert_array_equal(x.grad, [1.0, 0.0, 1.0, 1.0])


def test_redirected_rule_only_changes_fully_dead_samples():
    # sample 0 has an active unit: standard gradient; sample 1 is all dead: positive g passes
    x = T([[1.0, -1.0], [-1.0, -2.0]])
    g = np.array([[1.0, 1.0], [1.0, -1.0]])
    ops.relu(x).backward(g, relu_rule="redirected")
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0], [1.0, 0.0]])


# ------------------------------------------------------------------- backend

def test_backend_follows_the_inputs(backend_name):
    x = T([1.0, 2.0], backend_name)
    y = ops.exp(x) * 2.0
    assert y.backend == backend_name
    assert mc.get_array_module(y.data) is mc.get_array_module(x.data)


def test_like_puts_an_array_on_the_backend_of_its_reference(backend_name):
    from minicnn.backend import backend_name as name_of, like
    ref = T([1.0, 2.0], backend_name)
    mask = like(np.array([True, False]), ref)                    # a Tensor as reference
    assert name_of(mask) == backend_name and mask.dtype == bool
    np.testing.assert_array_equal(to_numpy(mask), [True, False])
    assert like(mask, ref.data) is mask                          # already there: no copy
    assert name_of(like(ref.data, np.zeros(1))) == "numpy"       # and back to NumPy


def test_strict_backend_refuses_plain_numpy():
    x = T([1.0, 2.0], "strict")
    with pytest.raises(TypeError, match="plain numpy array"):
        ops.mul(x, np.array([1.0, 2.0]))


def test_cupy_request_without_gpu_is_one_clear_error():
    try:
        import cupy  # noqa: F401
        cupy.cuda.runtime.getDeviceCount()
        pytest.skip("a GPU is present")
    except Exception:
        pass
    with pytest.raises(RuntimeError, match="backend 'cupy' needs the cupy package and a CUDA GPU"):
        mc.use("cupy")
    assert mc.backend.default_backend() == "numpy"


def test_use_as_context_sets_and_resets_default():
    with mc.use("strict"):
        assert mc.tensor([1.0]).backend == "strict"
    assert mc.tensor([1.0]).backend == "numpy"

"""Elementwise, reduction, shape and linear ops: gradient checks, PyTorch parity, bad input."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import ops
from minicnn.backend import as_backend, to_numpy
from minicnn.gradcheck import check

R = np.random.default_rng(1)


def away_from_zero(*shape):
    """Values with |v| in [0.5, 1.5] — far from the kinks/poles of relu, log, sqrt, div."""
    return R.uniform(0.5, 1.5, shape) * R.choice([-1.0, 1.0], shape)


CASES = {
    "add (broadcast)": (lambda a, b: a + b, [(3, 4), (1, 4)]),
    "sub (broadcast)": (lambda a, b: a - b, [(2, 3, 4), (3, 1)]),
    "mul (broadcast)": (lambda a, b: a * b, [(3, 4), (4,)]),
    "div": (lambda a, b: a / b, [(3, 4), (3, 4)]),
    "pow": (lambda a: ops.pow(a, 3), [(3, 4)]),
    "exp": (ops.exp, [(3, 4)]),
    "log": (lambda a: ops.log(a * a), [(3, 4)]),
    "sqrt": (lambda a: ops.sqrt(a * a + 1.0), [(3, 4)]),
    "sum axis": (lambda a: a.sum(axis=(0, 2)), [(2, 3, 4)]),
    "sum keepdims": (lambda a: a.sum(axis=1, keepdims=True), [(2, 3, 4)]),
    "mean": (lambda a: a.mean(axis=-1), [(2, 3, 4)]),
    "reshape": (lambda a: a.reshape(4, 6), [(2, 3, 4)]),
    "flatten": (ops.flatten, [(2, 3, 2, 2)]),
    "transpose": (lambda a: ops.transpose(a, 2, 0, 1), [(2, 3, 4)]),
    "concat": (lambda a, b: ops.concat([a, b], axis=1), [(2, 3, 4), (2, 2, 4)]),
    "pad": (lambda a: ops.pad(a, (1, 0, 2, 1)), [(1, 2, 3, 3)]),
    "getitem": (lambda a: a[1:, ::2], [(3, 4)]),
    "getitem repeated": (lambda a: a[np.array([0, 0, 2])], [(3, 4)]),
    "matmul": (ops.matmul, [(3, 4), (4, 5)]),
    "linear": (ops.linear, [(5, 4), (3, 4), (3,)]),
    "relu": (ops.relu, [(3, 4)]),
    "relu6": (lambda a: ops.relu6(a * 4.0 + 1.0), [(3, 4)]),
    "sigmoid": (ops.sigmoid, [(3, 4)]),
    "tanh": (ops.tanh, [(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name, backend_name):
    fn, shapes = CASES[name]
    inputs = [as_backend(away_from_zero(*s), backend_name) for s in shapes]
    if name == "getitem repeated":    # index array must live on the same backend
        fn = (lambda idx: (lambda a: a[idx]))(as_backend(np.array([0, 0, 2]), backend_name))
    report = check(fn, inputs)
    assert report.ok, report


def test_repeated_index_gradients_accumulate():
    x = mc.tensor(np.zeros(3), requires_grad=True)
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])


@pytest.mark.torch
def test_parity_with_torch():
    torch = pytest.importorskip("torch")
    a, b = away_from_zero(4, 5), away_from_zero(1, 5)
    w, bias = away_from_zero(3, 5), away_from_zero(3)
    g = R.standard_normal((4, 3))

    def ours():
        ta, tb, tw, tbias = (mc.tensor(v, requires_grad=True) for v in (a, b, w, bias))
        h = ops.sigmoid(ta * tb) + ops.exp(ta / tb) - ops.relu(ta) ** 2
        y = ops.linear(ops.tanh(h), tw, tbias)
        y.backward(g)
        return [to_numpy(y.data)] + [t.grad for t in (ta, tb, tw, tbias)]

    def theirs():
        ta, tb, tw, tbias = (torch.tensor(v, requires_grad=True) for v in (a, b, w, bias))
        h = torch.sigmoid(ta * tb) + torch.exp(ta / tb) - torch.relu(ta) ** 2
        y = torch.nn.functional.linear(torch.tanh(h), tw, tbias)
        y.backward(torch.tensor(g))
        return [y.detach().numpy()] + [t.grad.numpy() for t in (ta, tb, tw, tbias)]

    for mine, ref in zip(ours(), theirs()):
        np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-10)


# ------------------------------------------------------------------ bad input

def test_linear_feature_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"x has 7 features \(shape \(2, 7\)\).*\(3, 4\)"):
        ops.linear(np.ones((2, 7)), np.ones((3, 4)))


def test_linear_wrong_rank():
    with pytest.raises(ValueError, match=r"linear: x must have 2 dimensions \(N, D_in\), got shape \(2, 3, 4\)"):
        ops.linear(np.ones((2, 3, 4)), np.ones((3, 4)))


def test_linear_bias_shape():
    with pytest.raises(ValueError, match=r"b must have shape \(3,\), got \(4,\)"):
        ops.linear(np.ones((2, 4)), np.ones((3, 4)), np.ones(4))


def test_reshape_size_mismatch():
    with pytest.raises(ValueError, match=r"cannot view input of shape \(2, 3\) \(6 values\) as shape \(4, 2\)"):
        ops.reshape(mc.tensor(np.ones((2, 3))), 4, 2)


def test_concat_shape_mismatch():
    with pytest.raises(ValueError, match=r"tensor 1 has shape \(2, 3, 5\).*\(2, 3, 4\)"):
        ops.concat([np.ones((2, 3, 4)), np.ones((2, 3, 5))], axis=1)


def test_negative_pad():
    with pytest.raises(ValueError, match="non-negative"):
        ops.pad(np.ones((1, 1, 2, 2)), -1)


def test_matmul_mismatch():
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        ops.matmul(np.ones((2, 3)), np.ones((4, 5)))

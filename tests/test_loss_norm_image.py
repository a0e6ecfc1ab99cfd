"""Losses (softmax family, cross-entropy, logistic, mse), batch_norm, dropout, gram matrix, TV.

Each op: a float64 gradient check on every backend, PyTorch parity where torch is
installed, the property that makes it useful, and clear errors for bad inputs.
"""
import warnings

import numpy as np
import pytest

import minicnn as mc
from minicnn import gradcheck
from minicnn.backend import as_backend, backend_name as backend_of
from minicnn.ops.image import gram_matrix, gram_matrix_naive, total_variation
from minicnn.ops.loss import softmax, log_softmax, cross_entropy, binary_logistic_loss, mse
from minicnn.ops.norm import batch_norm, dropout


def on(a, name):
    return as_backend(np.asarray(a), name)


def assert_gradcheck(fn, inputs, **kw):
    # seed 1: the upstream gradient must not be the inputs' own draw from the seed-0 ``rng``
    # fixture (for batch_norm that dout lies in span{1, xhat}, where the true dx is 0)
    report = gradcheck.check(fn, inputs, seed=1, **kw)
    assert report.ok, report


# ------------------------------------------------------------ gradient checks

@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("op", [softmax, log_softmax])
def test_softmax_family_gradcheck(backend_name, rng, op, axis):
    x = on(rng.standard_normal((2, 3, 4)), backend_name)
    assert_gradcheck(lambda t: op(t, axis=axis), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck_2d(backend_name, rng, reduction):
    logits = on(rng.standard_normal((5, 4)), backend_name)
    labels = on(rng.integers(0, 4, size=5), backend_name)
    assert_gradcheck(lambda t: cross_entropy(t, labels, reduction=reduction), [logits])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck_per_pixel_with_ignore(backend_name, rng, reduction):
    logits = on(rng.standard_normal((2, 3, 3, 4)), backend_name)
    labels = rng.integers(0, 3, size=(2, 3, 4))
    labels[0, 1, 2] = labels[1, 0, 0] = 255
    labels = on(labels, backend_name)
    assert_gradcheck(lambda t: cross_entropy(t, labels, reduction, ignore_index=255), [logits])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_logistic_loss_gradcheck(backend_name, rng, reduction):
    scores = on(3 * rng.standard_normal((4, 3)), backend_name)
    targets = on(rng.integers(0, 2, size=(4, 3)).astype(np.float64), backend_name)
    assert_gradcheck(lambda s, t: binary_logistic_loss(s, t, reduction), [scores, targets])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_gradcheck(backend_name, rng, reduction):
    a, b = (on(rng.standard_normal((3, 4)), backend_name) for _ in range(2))
    assert_gradcheck(lambda x, y: mse(x, y, reduction), [a, b])


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 3)])
def test_batch_norm_train_gradcheck(backend_name, rng, shape):
    c = shape[1]
    x = on(rng.standard_normal(shape) * 2 + 1, backend_name)
    gamma, beta = on(rng.standard_normal(c), backend_name), on(rng.standard_normal(c), backend_name)
    rm, rv = on(np.zeros(c), backend_name), on(np.ones(c), backend_name)
    assert_gradcheck(lambda t, g, b: batch_norm(t, g, b, rm, rv, training=True), [x, gamma, beta])


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 3)])
def test_batch_norm_eval_gradcheck(backend_name, rng, shape):
    c = shape[1]
    x = on(rng.standard_normal(shape), backend_name)
    gamma, beta = on(rng.standard_normal(c), backend_name), on(rng.standard_normal(c), backend_name)
    rm, rv = on(rng.standard_normal(c), backend_name), on(rng.uniform(0.5, 2, c), backend_name)
    assert_gradcheck(lambda t, g, b: batch_norm(t, g, b, rm, rv, training=False), [x, gamma, beta])


def test_dropout_gradcheck_with_fixed_mask(backend_name, rng):
    x = on(rng.standard_normal((4, 5)), backend_name)
    # a fresh generator with the same seed on every call: the same mask, a deterministic function
    assert_gradcheck(lambda t: dropout(t, 0.4, True, np.random.default_rng(7)), [x])


def test_gram_matrix_gradcheck(backend_name, rng):
    x = on(rng.standard_normal((2, 3, 2, 3)), backend_name)
    assert_gradcheck(gram_matrix, [x])


def test_total_variation_gradcheck(backend_name, rng):
    x = on(rng.standard_normal((2, 2, 3, 4)), backend_name)
    assert_gradcheck(total_variation, [x])


# ----------------------------------------------------------- PyTorch parity

def assert_parity(torch, mc_fn, torch_fn, arrays, seed=0):
    """Same forward and same gradients (against one random upstream gradient) to 1e-6."""
    ts = [mc.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = mc_fn(*ts)
    dout = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(dout)
    t_ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = torch_fn(*t_ts)
    t_out.backward(torch.tensor(dout))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-6, atol=1e-10)
    for t, tt in zip(ts, t_ts):
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-6, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((2, 3, 4), 1), ((2, 3, 4), 0)])
def test_softmax_family_matches_torch(rng, shape, axis):
    torch = pytest.importorskip("torch")
    x = 5 * rng.standard_normal(shape)
    assert_parity(torch, lambda t: softmax(t, axis), lambda t: torch.softmax(t, axis), [x])
    assert_parity(torch, lambda t: log_softmax(t, axis), lambda t: torch.log_softmax(t, axis), [x])


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 5)])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_matches_torch(rng, shape, reduction, ignore):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits = 3 * rng.standard_normal(shape)
    labels = rng.integers(0, shape[1], size=shape[:1] + shape[2:])
    kw = {}
    if ignore:
        labels.reshape(-1)[::3] = 7          # out of range, but ignored
        kw = {"ignore_index": 7}
    assert_parity(torch, lambda t: cross_entropy(t, labels, reduction, **kw),
                  lambda t: F.cross_entropy(t, torch.tensor(labels), reduction=reduction, **kw),
                  [logits])


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_logistic_loss_matches_torch(rng, reduction):
    torch = pytest.importorskip("torch")
    scores = 10 * rng.standard_normal((5, 3))
    scores[0, :2] = [60.0, -60.0]                      # saturated: still exact
    targets = rng.integers(0, 2, size=(5, 3)).astype(np.float64)
    assert_parity(torch, lambda s, t: binary_logistic_loss(s, t, reduction),
                  lambda s, t: torch.nn.functional.binary_cross_entropy_with_logits(
                      s, t, reduction=reduction), [scores, targets])


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(rng, reduction):
    torch = pytest.importorskip("torch")
    a, b = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    assert_parity(torch, lambda x, y: mse(x, y, reduction),
                  lambda x, y: torch.nn.functional.mse_loss(x, y, reduction=reduction), [a, b])


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch_including_running_stats(rng, shape, training):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x = 2 * rng.standard_normal(shape) + 0.5
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm0, rv0 = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    rm, rv = rm0.copy(), rv0.copy()
    t_rm, t_rv = torch.tensor(rm0), torch.tensor(rv0)
    assert_parity(
        torch,
        lambda t, g, b: batch_norm(t, g, b, rm, rv, training, momentum=0.2, eps=1e-4),
        lambda t, g, b: torch.nn.functional.batch_norm(t, t_rm, t_rv, g, b, training,
                                                       momentum=0.2, eps=1e-4),
        [x, gamma, beta])
    np.testing.assert_allclose(rm, t_rm.numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(rv, t_rv.numpy(), rtol=1e-6, atol=1e-12)
    if not training:
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)


# --------------------------------------------------- stability and properties

def test_softmax_is_stable_for_huge_logits(backend_name):
    x = on([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]], backend_name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = mc.to_numpy(softmax(mc.tensor(x)).data)
        lp = mc.to_numpy(log_softmax(mc.tensor(x)).data)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)
    np.testing.assert_allclose(lp[0, :2], [-np.log1p(np.exp(-1.0)), -1 - np.log1p(np.exp(-1.0))])


def test_cross_entropy_of_a_confident_correct_huge_logit_is_zero(backend_name):
    logits = mc.tensor(on([[1e4, 0.0, -1e4], [0.0, 2e4, 0.0]], backend_name), requires_grad=True)
    loss = cross_entropy(logits, on([0, 1], backend_name))
    loss.backward()
    assert float(loss.item()) == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(mc.to_numpy(logits.grad)))
    # and a confidently wrong one costs exactly the logit gap
    wrong = cross_entropy(mc.tensor(on([[1e4, 0.0]], backend_name)), on([1], backend_name))
    assert float(wrong.item()) == pytest.approx(1e4)


def test_binary_logistic_loss_is_stable_for_huge_scores(backend_name):
    s = mc.tensor(on([1e4, -1e4, 1e4, -1e4], backend_name))
    t = mc.tensor(on([1.0, 0.0, 0.0, 1.0], backend_name))
    out = mc.to_numpy(binary_logistic_loss(s, t, "none").data)
    np.testing.assert_allclose(out, [0.0, 0.0, 1e4, 1e4])


def test_cross_entropy_ignored_targets_cost_nothing_and_get_no_gradient(backend_name):
    logits = mc.tensor(on(np.arange(12.0).reshape(4, 3) / 5, backend_name), requires_grad=True)
    labels = on([0, -100, 2, -100], backend_name)
    per = cross_entropy(logits, labels, "none", ignore_index=-100)
    assert mc.to_numpy(per.data)[[1, 3]].tolist() == [0.0, 0.0]
    loss = cross_entropy(logits, labels, ignore_index=-100)
    assert loss.item() == pytest.approx(mc.to_numpy(per.data).sum() / 2)   # mean over 2 targets
    loss.backward()
    assert not mc.to_numpy(logits.grad)[[1, 3]].any()


def test_cross_entropy_mean_with_every_target_ignored_is_nan_like_pytorch():
    logits = mc.tensor(np.zeros((2, 3)), requires_grad=True)
    loss = cross_entropy(logits, np.array([5, 5]), ignore_index=5)
    assert np.isnan(loss.item())
    loss.backward()
    assert not logits.grad.any()


def test_gram_matrix_equals_naive_double_loop(backend_name, rng):
    x = on(rng.standard_normal((2, 4, 3, 5)), backend_name)
    fast = gram_matrix(mc.tensor(x)).data
    assert backend_of(fast) == backend_name
    np.testing.assert_allclose(mc.to_numpy(fast), mc.to_numpy(gram_matrix_naive(x)), rtol=1e-12)


def test_gram_matrix_forgets_where_features_are(rng):
    """Style, not layout: shuffling spatial positions leaves the Gram matrix unchanged."""
    x = rng.standard_normal((2, 3, 4, 5))
    perm = rng.permutation(20)
    shuffled = x.reshape(2, 3, 20)[:, :, perm].reshape(x.shape)
    np.testing.assert_allclose(gram_matrix(mc.tensor(shuffled)).data,
                               gram_matrix(mc.tensor(x)).data, rtol=1e-12)
    g = gram_matrix(mc.tensor(x)).data
    np.testing.assert_allclose(g, g.transpose(0, 2, 1))          # symmetric


def test_total_variation_by_hand(backend_name):
    x = on(np.array([[1.0, 2.0], [4.0, 8.0]]).reshape(1, 1, 2, 2), backend_name)
    # vertical (4-1)^2 + (8-2)^2 = 45, horizontal (2-1)^2 + (8-4)^2 = 17
    assert total_variation(mc.tensor(x)).item() == pytest.approx(62.0)
    y = on(np.array([[0.0, 1.0, 3.0]]).reshape(1, 1, 1, 3), backend_name)
    assert total_variation(mc.tensor(y)).item() == pytest.approx(1.0 + 4.0)


def test_total_variation_of_a_constant_image_is_zero(backend_name):
    x = mc.tensor(on(np.full((2, 3, 4, 5), 0.7), backend_name), requires_grad=True)
    tv = total_variation(x)
    tv.backward()
    assert tv.item() == 0.0
    assert not mc.to_numpy(x.grad).any()


def test_dropout_eval_and_p0_are_identity(backend_name, rng):
    x = mc.tensor(on(rng.standard_normal((3, 4)), backend_name))
    for y in (dropout(x, 0.5, training=False, rng=rng), dropout(x, 0.0, training=True, rng=rng)):
        np.testing.assert_array_equal(mc.to_numpy(y.data), mc.to_numpy(x.data))


def test_dropout_train_keeps_the_mean_and_zeros_about_p(backend_name):
    x = mc.tensor(on(np.ones((200, 200)), backend_name))
    y = mc.to_numpy(dropout(x, 0.3, True, np.random.default_rng(1)).data)
    assert abs(y.mean() - 1.0) < 0.02
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.7)


def test_dropout_same_seed_same_mask_and_rng_none_stays_on_backend(backend_name):
    x = mc.tensor(on(np.ones((10, 10)), backend_name))
    a = dropout(x, 0.5, True, np.random.default_rng(3)).data
    b = dropout(x, 0.5, True, np.random.default_rng(3)).data
    np.testing.assert_array_equal(mc.to_numpy(a), mc.to_numpy(b))
    assert backend_of(a) == backend_name
    assert backend_of(dropout(x, 0.5, True).data) == backend_name


def test_batch_norm_train_normalizes_and_updates_buffers_even_without_grad(backend_name, rng):
    x = on(3 * rng.standard_normal((16, 2, 3, 3)) + 5, backend_name)
    x_before = mc.to_numpy(x).copy()
    rm, rv = on(np.zeros(2), backend_name), on(np.ones(2), backend_name)
    with mc.no_grad():
        y = mc.to_numpy(batch_norm(mc.tensor(x), None, None, rm, rv, training=True).data)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-3)   # eps = 1e-5
    xn = mc.to_numpy(x)
    np.testing.assert_allclose(mc.to_numpy(rm), 0.1 * xn.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(mc.to_numpy(rv), 0.9 + 0.1 * xn.var(axis=(0, 2, 3), ddof=1))
    np.testing.assert_array_equal(mc.to_numpy(x), x_before)           # input untouched


# ---------------------------------------------------------------- bad inputs

def test_label_out_of_range_names_the_label_and_k():
    with pytest.raises(ValueError, match=r"label 5 .*K=5"):
        cross_entropy(mc.tensor(np.zeros((2, 5))), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"label -1 .*K=5"):
        cross_entropy(mc.tensor(np.zeros((2, 5))), np.array([-1, 0]), ignore_index=-100)


def test_float_labels_are_refused():
    with pytest.raises(TypeError, match=r"integer class indices.*float64"):
        cross_entropy(mc.tensor(np.zeros((2, 5))), np.array([0.0, 1.0]))


def test_label_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 5\)"):
        cross_entropy(mc.tensor(np.zeros((2, 5))), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*\(2, 5, 3, 3\).*\(2, 3, 3\)"):
        cross_entropy(mc.tensor(np.zeros((2, 5, 3, 3))), np.zeros((2, 4, 4), dtype=int))


def test_mse_and_logistic_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        mse(mc.tensor(np.zeros((2, 3))), mc.tensor(np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
        binary_logistic_loss(mc.tensor(np.zeros(4)), mc.tensor(np.zeros((4, 1))))


def test_bad_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction"):
        mse(mc.tensor(np.zeros(2)), mc.tensor(np.zeros(2)), reduction="average")


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_dropout_probability_outside_0_1(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(mc.tensor(np.ones(3)), p, True, np.random.default_rng(0))


def test_batch_norm_channel_mismatch_names_the_shapes():
    x = mc.tensor(np.zeros((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"gamma has shape \(3,\).*\(2, 4, 5, 5\).*C=4"):
        batch_norm(x, mc.tensor(np.ones(3)), mc.tensor(np.zeros(4)), None, None, True)
    with pytest.raises(ValueError, match=r"running_var has shape \(5,\)"):
        batch_norm(x, None, None, np.zeros(4), np.ones(5), False)


def test_batch_norm_eval_needs_running_stats_and_train_needs_two_values():
    with pytest.raises(ValueError, match="running_mean and running_var"):
        batch_norm(mc.tensor(np.zeros((2, 3))), None, None, None, None, False)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(mc.tensor(np.zeros((1, 3))), None, None, None, None, True)


def test_batch_norm_buffers_on_another_backend_are_refused():
    x = mc.tensor(on(np.zeros((2, 3)), "strict"))
    with pytest.raises(ValueError, match=r"running_mean lives on backend 'numpy'.*'strict'"):
        batch_norm(x, None, None, np.zeros(3), on(np.ones(3), "strict"), True)

"""gram_matrix: GramMatrix.forward / backward and gram_matrix_naive (minicnn/ops/image.py).

G[n] = F Fᵀ / (C·H·W) with F = x[n] as a (C, H·W) matrix: which channels fire together,
wherever they fire. Checked by hand, against an einsum oracle, by its properties
(symmetric, positive semi-definite, quadratic in x, blind to where things are) and by
the numerical gradient check.
"""
import numpy as np
import pytest

from minicnn import gradcheck
from minicnn.autograd import Tensor
from minicnn.ops import gram_matrix
from minicnn.ops.image import gram_matrix_naive


def oracle(x):
    n, c, h, w = x.shape
    return np.einsum("ncp,ndp->ncd", x.reshape(n, c, -1), x.reshape(n, c, -1)) / (c * h * w)


def test_hand_example():
    # channels [1, 2] and [3, 4]: F Fᵀ = [[5, 11], [11, 25]], divided by C·H·W = 4
    x = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = np.array([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    np.testing.assert_allclose(gram_matrix(Tensor(x)).data, expected)
    np.testing.assert_allclose(gram_matrix_naive(x), expected)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 6, 3, 3)])
def test_matches_oracle(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    g = gram_matrix(Tensor(x)).data
    assert g.shape == (shape[0], shape[1], shape[1])
    np.testing.assert_allclose(g, oracle(x), rtol=1e-12)
    np.testing.assert_allclose(gram_matrix_naive(x), oracle(x), rtol=1e-12)


def test_symmetric_and_positive_semidefinite():
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 4))
    g = gram_matrix(Tensor(x)).data
    np.testing.assert_allclose(g, g.transpose(0, 2, 1))
    assert np.linalg.eigvalsh(g).min() > -1e-12


def test_quadratic_in_the_features():
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 4))
    np.testing.assert_allclose(gram_matrix(Tensor(3 * x)).data, 9 * gram_matrix(Tensor(x)).data)


def test_blind_to_where_features_are():
    # moving every channel by the same permutation of positions leaves G unchanged (no layout)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 3, 5))
    shuffled = x.reshape(1, 4, -1)[:, :, rng.permutation(15)].reshape(x.shape)
    np.testing.assert_allclose(gram_matrix(Tensor(shuffled)).data, gram_matrix(Tensor(x)).data,
                               rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 1, 3)])
def test_gradients_match_finite_differences(shape):
    # the default upstream gradient is random, hence not symmetric: dF = (g + gᵀ) F / (C·H·W)
    x = np.random.default_rng(4).standard_normal(shape)
    report = gradcheck.check(gram_matrix, [x])
    assert report.ok, report

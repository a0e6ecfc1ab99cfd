"""Convolutionalization: the fully convolutional net gives the classifier's logits on the original
size, and on a larger input each score cell is the classifier applied to its window (crop)."""
import os

import numpy as np
import pytest

from minicnn import nn
from minicnn.autograd import Tensor, no_grad
from minicnn.backend import as_backend, to_numpy
from minicnn.models import cifar_net, fashion_net
from minicnn.techniques.convolutionalize import (convolutionalize, score_maps, total_stride,
                                                 window_centers)
from tests.conftest import fashion_mnist_or_skip

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")


def valid_net(seed=0):
    """10×10 -> conv 3×3 (valid) 8×8 -> pool 4×4 -> conv 3×3 2×2 -> Linear 16→5 -> ReLU ->
    Dropout -> Linear 5→3. No padding, so crops of a larger image see exactly what the
    large image shows; total stride 2."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16, 5, rng=rng), nn.ReLU(), nn.Dropout(0.5, rng=0),
                         nn.Linear(5, 3, rng=rng)).double().eval()


def run(model, x):
    with no_grad():
        return to_numpy(model(Tensor(x)).data)


def test_same_logits_on_the_original_size(backend_name):
    net = valid_net().to(backend_name)
    fcn = convolutionalize(net, (10, 10))
    x = as_backend(np.random.default_rng(1).standard_normal((4, 1, 10, 10)), backend_name)
    scores = run(fcn.eval(), x)
    assert scores.shape == (4, 3, 1, 1)
    np.testing.assert_allclose(scores[:, :, 0, 0], run(net, x), rtol=0, atol=1e-6)
    assert isinstance(fcn.classifier[0], nn.Conv2d) and fcn.classifier[0].kernel_size == (2, 2)
    assert fcn.classifier[3].kernel_size == (1, 1)       # the later FC: a 1×1 conv


def test_each_score_cell_is_the_classifier_on_its_crop(backend_name):
    net = valid_net().to(backend_name)
    fcn = convolutionalize(net, 10).eval()
    assert fcn.stride == (2, 2) == total_stride(net)
    big = np.random.default_rng(2).standard_normal((2, 1, 18, 24))
    grid = run(fcn, as_backend(big, backend_name))
    assert grid.shape == (2, 3, (18 - 10) // 2 + 1, (24 - 10) // 2 + 1)
    for u in range(grid.shape[2]):
        for v in range(grid.shape[3]):
            crop = big[:, :, 2 * u:2 * u + 10, 2 * v:2 * v + 10]
            np.testing.assert_allclose(grid[:, :, u, v], run(net, as_backend(crop, backend_name)),
                                       rtol=0, atol=1e-6)
    rows, cols = window_centers(fcn, grid.shape[2:])
    assert rows[0] == 4.5 and cols[1] == 6.5


@pytest.mark.parametrize("build, size", [(fashion_net, 28), (cifar_net, 32)])
def test_shipped_architectures_keep_their_logits(build, size):
    net = build(seed=3).double().eval()
    fcn = convolutionalize(net, size).eval()         # body "features", head "classifier"
    x = np.random.default_rng(4).standard_normal((3, net.preprocess.channels, size, size))
    np.testing.assert_allclose(run(fcn, x)[:, :, 0, 0], run(net, x), rtol=0, atol=1e-6)
    s = total_stride(net.features)[0]
    assert run(fcn, np.zeros((1, net.preprocess.channels, 3 * size, 2 * size))).shape == \
        (1, 10, 2 * size // s + 1, size // s + 1)


def test_the_original_model_is_not_changed():
    net = valid_net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    fcn = convolutionalize(net, 10)
    for p in fcn.parameters():
        p.data[...] = 0
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_score_maps_are_probabilities_per_window():
    fcn = convolutionalize(valid_net(), 10)
    probs = score_maps(fcn, np.random.default_rng(0).standard_normal((1, 14, 14)))
    assert probs.shape == (1, 3, 3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_bad_inputs_name_what_is_wrong():
    net = valid_net()
    with pytest.raises(ValueError, match=r"Linear '6' has 16 input features .* \(4, 1, 1\)"):
        convolutionalize(net, 8)
    with pytest.raises(ValueError, match="no Flatten"):
        convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), 5)
    odd = fashion_net()
    odd.classifier = nn.Sequential(nn.Linear(1568, 10), nn.Conv2d(10, 10, 1))
    with pytest.raises(ValueError, match=r"layer 'classifier.1' is a Conv2d"):
        convolutionalize(odd, 28)
    with pytest.raises(KeyError, match="Valid layer names"):
        convolutionalize(fashion_net(), 28, head="head")
    with pytest.raises(ValueError, match=r"smaller than the classifier's window \(10, 10\)"):
        score_maps(convolutionalize(net, 10), np.zeros((1, 1, 9, 12)))


def test_trained_fashion_net_heatmap_peaks_on_each_item():
    """On a canvas with two items, the window that sits on an item scores that item's class."""
    if not os.path.exists(os.path.join(WEIGHTS, "fashion_net.npz")):
        pytest.skip("weights/fashion_net.npz not present (train it: minicnn train fashion_net)")
    net = fashion_net(pretrained=True)
    images, labels = fashion_mnist_or_skip("test")
    pre = net.preprocess
    with no_grad():
        right = to_numpy(net(Tensor(pre.preprocess(images[:200]))).data).argmax(1) == labels[:200]
    i, j = [k for k in np.flatnonzero(right) if labels[k] in (1, 7)][:1] + \
        [k for k in np.flatnonzero(right) if labels[k] in (8,)][:1]    # a trouser/sneaker, a bag
    canvas = np.zeros((84, 84), np.uint8)
    canvas[4:32, 8:36] = images[i]
    canvas[48:76, 52:80] = images[j]
    fcn = convolutionalize(net, 28)
    probs = score_maps(fcn, pre.preprocess(canvas))[0]       # cells on a 4-pixel grid
    assert probs[:, 1, 2].argmax() == labels[i]
    assert probs[:, 12, 13].argmax() == labels[j]

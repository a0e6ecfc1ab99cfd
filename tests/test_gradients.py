"""Saliency, neuron gradients, guided backprop and the rule-based deconvnet: each by the
property that makes it that technique, on nets small enough to check by hand."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend, backend_name as name_of
from minicnn.nn import UnknownLayerError
from minicnn.techniques.deconvnet import deconvnet
from minicnn.techniques.gradients import (adaptive_integrated_gradients, guided_backprop,
                                          input_gradient, integrated_gradients,
                                          neuron_gradient, saliency, smoothgrad)


def set_weights(layer, w, b=None):
    layer.weight.data = np.asarray(w, dtype=np.float64)
    layer.bias.data = np.zeros(layer.weight.shape[0]) if b is None else np.asarray(b, np.float64)


def tiny_cnn(seed=0):
    """Conv-ReLU-Pool-Conv-ReLU-Flatten-Linear-ReLU-Linear on (2, 8, 8), float64."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 3, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                         nn.Linear(12, 6, rng=rng), nn.ReLU(), nn.Linear(6, 3, rng=rng)
                         ).eval().double()


def hand_net():
    """x (2 values as a 2×1×1 image) -> Linear 2→3 -> ReLU -> Linear 3→1, worked out by hand:

        x = (1, 2);  W1 = [[1, −1], [2, 1], [1, 1]]  ->  pre-activation (−1, 4, 3): unit 0 off
        W2 = [[3, −2, 1]]                            ->  g at the ReLU output = (3, −2, 1)
        standard   g·(x > 0)          = (0, −2, 1)   ->  dx = W1ᵀ (0, −2, 1) = (−3, −1)
        deconvnet  g·(g > 0)          = (3,  0, 1)   ->  dx = W1ᵀ (3,  0, 1) = ( 4, −2)
        guided     g·(x > 0)·(g > 0)  = (0,  0, 1)   ->  dx = W1ᵀ (0,  0, 1) = ( 1,  1)
    """
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)).double()
    set_weights(net[1], [[1, -1], [2, 1], [1, 1]])
    set_weights(net[3], [[3, -2, 1]])
    return net, np.array([1.0, 2.0]).reshape(2, 1, 1)


@pytest.mark.parametrize("rule, expected", [("standard", (-3, -1)), ("deconvnet", (4, -2)),
                                            ("guided", (1, 1))])
def test_the_three_relu_rules_on_a_hand_computed_two_layer_net(rule, expected):
    """Deconvnet ignores the forward mask (unit 0 is off yet passes 3·W1[0]); guided uses
    both masks; standard only the forward one."""
    net, x = hand_net()
    g = input_gradient(net, x, target=0, relu_rule=rule)
    np.testing.assert_allclose(g.ravel(), expected)
    named = {"standard": None, "deconvnet": deconvnet, "guided": guided_backprop}[rule]
    if named is not None:
        np.testing.assert_allclose(named(net, x, target=0).ravel(), expected)


def test_saliency_of_a_linear_model_is_abs_weights_max_over_channels(backend_name):
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 7, rng=rng)).to(backend_name)
    x = as_backend(rng.standard_normal((3, 4, 5)).astype(np.float32), backend_name)
    w = mc.to_numpy(net[1].weight.data)[2].reshape(3, 4, 5)
    s = saliency(net, x, target=2)
    assert s.shape == (4, 5) and type(s) is np.ndarray
    np.testing.assert_allclose(s, np.abs(w).max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(saliency(net, x, 2, reduce="sum"), np.abs(w).sum(axis=0), rtol=1e-6)


def finite_difference(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = h
        g[i] = (f(x + d) - f(x - d)) / (2 * h)
    return g


def test_saliency_of_a_tiny_conv_net_equals_the_finite_difference_gradient():
    net = tiny_cnn()
    x = np.random.default_rng(1).standard_normal((2, 8, 8))

    def score(xx):
        with mc.no_grad():
            return float(net(mc.tensor(xx[None])).data[0, 1])
    fd = finite_difference(score, x)
    g = input_gradient(net, x, target=1)
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(g, fd, atol=1e-7 * np.abs(fd).max())
    np.testing.assert_allclose(saliency(net, x, 1), np.abs(fd).max(axis=0), atol=1e-7)


def test_a_batch_gives_one_map_per_image_with_its_own_target():
    net, rng = tiny_cnn(), np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 8, 8))
    both = saliency(net, x, target=[0, 2, 1])
    assert both.shape == (3, 8, 8)
    for n, t in enumerate([0, 2, 1]):
        np.testing.assert_allclose(both[n], saliency(net, x[n], t), rtol=1e-12)


def test_a_target_function_backpropagates_a_combined_score():
    """target=fn(logits): e.g. the summed probability of a group of classes."""
    net, x = tiny_cnn(), np.random.default_rng(3).standard_normal((2, 8, 8))
    group = input_gradient(net, x, lambda z: mc.ops.softmax(z, axis=1)[:, 0:2].sum())
    with mc.no_grad():
        p = mc.ops.softmax(net(mc.tensor(x[None])), axis=1).data[0]
    by_class = [input_gradient(net, x, k) for k in range(3)]
    # ∂p_j/∂z_k = p_j (δ_jk − p_k), so d(p0 + p1)/dx = Σ_k p_k (1[k < 2] − p0 − p1) ∂z_k/∂x
    expected = sum(p[k] * ((k < 2) - p[0] - p[1]) * by_class[k] for k in range(3))
    np.testing.assert_allclose(group, expected, atol=1e-12)


def test_neuron_gradient_is_the_gradient_of_that_unit_alone():
    """A unit (c, i, j) of a padded 3×3 conv: its gradient is filter c placed on its window;
    a whole channel after the ReLU: the sum over the active positions of that channel."""
    net = tiny_cnn()
    x = np.random.default_rng(4).standard_normal((2, 8, 8))
    w = net[0].weight.data[1]                                   # (2, 3, 3)
    np.testing.assert_allclose(neuron_gradient(net, x, "0", (1, 3, 5)),
                               np.pad(w, ((0, 0), (2, 3), (4, 1))), rtol=1e-12)
    with mc.no_grad():
        active = net[0](mc.tensor(x[None])).data[0, 2] > 0
    assert 0 < active.sum() < active.size
    expected = sum(neuron_gradient(net, x, "0", (2, i, j)) for i, j in zip(*np.nonzero(active)))
    np.testing.assert_allclose(neuron_gradient(net, x, "1", 2), expected, rtol=1e-12)


def relu_inputs(model):
    """Names of the layers whose output feeds a ReLU (in these Sequentials: the one before)."""
    names = model.layer_names()
    return [names[i - 1] for i, n in enumerate(names)
            if isinstance(model.get_submodule(n), nn.ReLU)]


@pytest.mark.parametrize("build", ["tiny", "fashion_net", "cifar_net"])
def test_guided_backprop_passes_no_negative_gradient_through_any_relu(build):
    """Every ReLU — features and classifier — hands a gradient ≥ 0 to its input under the
    guided rule, for a class and for a neuron; plain backprop does not (the check bites)."""
    if build == "tiny":
        model, shape = tiny_cnn(), (2, 8, 8)
    else:
        model = getattr(mc.models, build)().eval().double()
        shape = (model.preprocess.channels, *model.preprocess.input_size)
    x = np.random.default_rng(5).standard_normal(shape)
    names = relu_inputs(model)
    assert any(n.startswith("classifier") for n in names) or build == "tiny"
    negative = {}
    for how in ("guided", "standard", "guided-neuron"):
        with mc.capture(model, names) as acts:
            if how == "guided":
                guided_backprop(model, x, target=3 if build != "tiny" else 1)
            elif how == "standard":
                input_gradient(model, x, target=3 if build != "tiny" else 1)
            else:
                guided_backprop(model, x, layer=names[-1], unit=0)
        grads = [acts[n].grad for n in names if acts[n].grad is not None]
        assert grads
        negative[how] = min(float(g.min()) for g in grads)
        assert max(float(g.max()) for g in grads) > 0
    assert negative["guided"] >= 0 and negative["guided-neuron"] >= 0
    assert negative["standard"] < 0


def positive_net(x, seed=0):
    """All weights > 0; each bias shifted so that about half of its ReLU's units are off for x."""
    net = tiny_cnn(seed)
    h = mc.tensor(x[None])
    with mc.no_grad():
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.data = np.abs(m.weight.data)
                pre = m(h).data
                per_unit = np.moveaxis(pre, 1, 0).reshape(pre.shape[1], -1)
                m.bias.data = m.bias.data - np.median(per_unit, axis=1)
            h = m(h)
    return net


def test_with_all_positive_weights_guided_equals_the_plain_gradient():
    """Every gradient reaching a ReLU from above is ≥ 0, so guided's extra mask (g > 0)
    removes nothing: guided backprop = the plain gradient, restricted to active paths by
    the forward masks. The deconvnet, with no forward mask, differs."""
    x = np.random.default_rng(6).standard_normal((2, 8, 8))
    net = positive_net(x)
    with mc.capture(net, ["1", "4", "7"]) as acts:
        net(mc.tensor(x[None]))
    assert all((acts[n].data == 0).any() for n in ("1", "4", "7"))     # some paths are off
    plain = input_gradient(net, x, target=2)
    np.testing.assert_allclose(guided_backprop(net, x, target=2), plain, rtol=1e-12)
    assert not np.allclose(deconvnet(net, x, target=2), plain)


def test_with_all_positive_weights_the_deconvnet_is_the_gradient_without_relus():
    """No pooling, weights > 0: the deconvnet's rectifications see only signals ≥ 0 and it
    ignores the forward masks, so it equals the gradient of the net with its ReLU removed."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(48, 2, rng=2)).double()
    for p in net.parameters():
        p.data = np.abs(p.data) if p.ndim > 1 else p.data - 0.5
    x = np.random.default_rng(7).standard_normal((2, 4, 4))
    without_relu = nn.Sequential(net[0], net[2], net[3])
    np.testing.assert_allclose(deconvnet(net, x, target=1),
                               input_gradient(without_relu, x, target=1), rtol=1e-12)
    assert not np.allclose(input_gradient(net, x, target=1),
                           input_gradient(without_relu, x, target=1))


def test_maps_stay_on_the_models_backend_until_the_numpy_result(backend_name):
    model = tiny_cnn().to(backend_name)
    x = as_backend(np.random.default_rng(8).standard_normal((2, 8, 8)), backend_name)
    for fn in (lambda: saliency(model, x, 0), lambda: guided_backprop(model, x, 1),
               lambda: deconvnet(model, x, layer="3", unit=(0, 1, 1)),
               lambda: neuron_gradient(model, x, "6", 2),
               lambda: smoothgrad(model, x, 1, n_samples=3, batch_size=2),
               lambda: integrated_gradients(model, x, 1, as_backend(np.ones((2, 8, 8)),
                                                                    backend_name), steps=3)):
        out = fn()
        assert type(out) is np.ndarray and np.isfinite(out).all()
    assert name_of(model[0].weight.data) == backend_name


def test_techniques_leave_the_model_as_they_found_it():
    """No weight gradient is computed or left behind, requires_grad is restored."""
    model = tiny_cnn()
    x = np.random.default_rng(9).standard_normal((2, 8, 8))
    saliency(model, x, 0)
    guided_backprop(model, x, layer="4", unit=1)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_bad_inputs_are_clear_errors():
    model = tiny_cnn()
    x = np.zeros((2, 8, 8))
    with pytest.raises(UnknownLayerError, match="Valid layer names: 0, 1, 2"):
        neuron_gradient(model, x, "features.3", 0)
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"):
        saliency(model, x, target=3)
    with pytest.raises(TypeError, match="int class index"):
        saliency(model, x, target=1.5)
    with pytest.raises(ValueError, match="3 class indices for a batch of 2"):
        saliency(model, np.zeros((2, 2, 8, 8)), target=[0, 1, 2])
    with pytest.raises(ValueError, match="expects 2 input channels"):
        saliency(model, np.zeros((3, 8, 8)), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or one image \(C, H, W\)"):
        saliency(model, np.zeros((8, 8)), 0)
    with pytest.raises(ValueError, match="unit channel 4 is out of range"):
        neuron_gradient(model, x, "0", (4, 0, 0))
    with pytest.raises(ValueError, match="outside the layer's 8×8 map"):
        neuron_gradient(model, x, "0", (1, 8, 0))
    with pytest.raises(ValueError, match="either target"):
        input_gradient(model, x, target=0, layer="0")
    with pytest.raises(ValueError, match="unknown relu_rule"):
        input_gradient(model, x, target=0, relu_rule="gentle")
    with pytest.raises(ValueError, match="reduce must be"):
        saliency(model, x, 0, reduce="mean")


@pytest.mark.torch
def test_gradient_and_guided_backprop_match_pytorch_hooks_on_squeezenet():
    """The rule reaches every ReLU exactly like the usual PyTorch recipe: backward hooks on
    each nn.ReLU clamping its input gradient at 0 (squeezenet1_1, random weights, 64×64)."""
    torch = pytest.importorskip("torch")
    from minicnn.bench.reference_torch import torch_model
    model = mc.models.squeezenet1_1(rng=0).eval()
    net = torch_model("squeezenet1_1").eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    net.requires_grad_(False)
    x = np.random.default_rng(10).standard_normal((1, 3, 64, 64)).astype(np.float32)
    for guided in (False, True):
        hooks = [m.register_full_backward_hook(lambda m, gin, gout: (gin[0].clamp(min=0),))
                 for m in net.modules() if isinstance(m, torch.nn.ReLU) and guided]
        xt = torch.from_numpy(x).requires_grad_()
        net(xt)[0, 7].backward()
        for h in hooks:
            h.remove()
        ours = (guided_backprop if guided else input_gradient)(model, x, 7)
        ref = xt.grad.numpy()
        assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


# ------------------------------------------------------- SmoothGrad, integrated gradients

def class_score(model, x, c):
    with mc.no_grad():
        return float(model(mc.tensor(np.asarray(x)[None])).numpy()[0, c])


def test_integrated_gradients_are_complete_on_a_relu_net():
    """Completeness (Sundararajan et al. 2017, Prop. 1): Σ_i IG_i = y(x) − y(x'), within 1%
    (measured 0.3%); the path's ReLU kinks are what the midpoint sum has to resolve."""
    net = tiny_cnn(seed=3)
    x = 3 * np.random.default_rng(0).normal(size=(2, 8, 8))
    c = int(np.argmax(net(mc.tensor(x[None])).numpy()[0]))
    ig = integrated_gradients(net, x, c, steps=256, batch_size=64)
    gap = class_score(net, x, c) - class_score(net, np.zeros_like(x), c)
    assert abs(ig.sum() - gap) < 0.01 * abs(gap), (ig.sum(), gap)


@pytest.mark.parametrize("baseline", ["zeros", "another image"])
def test_integrated_gradients_are_complete_on_trained_fashion_net(baseline):
    """On the shipped fashion_net (float32) with 64 steps, as in the gallery: Σ IG within 1%
    of y(x) − y(x'), from the zero input and from another sample as the baseline."""
    from minicnn.data.samples import fashion_samples
    model = mc.models.fashion_net(pretrained=True)
    (image, label), (other, _) = fashion_samples()[0], fashion_samples()[7]
    x = model.preprocess.preprocess(image)[0]
    base = np.zeros_like(x) if baseline == "zeros" else model.preprocess.preprocess(other)[0]
    ig = integrated_gradients(model, x, label, base, steps=64, batch_size=32)
    gap = class_score(model, x, label) - class_score(model, base, label)
    assert abs(ig.sum() - gap) < 0.01 * abs(gap), (ig.sum(), gap)


def test_adaptive_integrated_gradients_are_complete_and_report_their_gap_honestly():
    """The adaptive trapezoids on a ReLU net: Σ IG within 1% of y(x) − y(x') with 96 path
    points (measured 0.09%; 48: 1.4%), the returned gap is exactly |Σ IG − Δy| / |Δy|
    recomputed by hand, and on a linear model (constant gradient) the trapezoids are exact
    from the first grid."""
    net = tiny_cnn(seed=3)
    x = 3 * np.random.default_rng(0).normal(size=(2, 8, 8))
    base = np.zeros_like(x)
    c = int(np.argmax(net(mc.tensor(x[None])).numpy()[0]))
    ig, gap = adaptive_integrated_gradients(net, x, c, base, steps=96, batch_size=8, rtol=0)
    delta = class_score(net, x, c) - class_score(net, base, c)
    assert abs(ig.sum() - delta) < 0.01 * abs(delta), (ig.sum(), delta)
    assert gap == pytest.approx(abs(ig.sum() - delta) / abs(delta), rel=1e-6, abs=1e-9)
    rng = np.random.default_rng(1)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).double()
    set_weights(lin[1], rng.normal(size=(2, 12)))
    x, base = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2, 2))
    ig, gap = adaptive_integrated_gradients(lin, x, 1, base, steps=9, start=2)
    np.testing.assert_allclose(ig, (x - base) * lin[1].weight.data[1].reshape(3, 2, 2))
    assert gap < 1e-9
    with pytest.raises(ValueError, match="must be more than start"):
        adaptive_integrated_gradients(lin, x, 1, steps=4, start=8)
    with pytest.raises(ValueError, match="one class index"):
        adaptive_integrated_gradients(lin, x, [1])


def test_on_a_linear_model_ig_is_input_times_weight_and_smoothgrad_the_weight():
    """y = w·x: the gradient is w everywhere, so IG = (x − x')·w exactly and the noise of
    SmoothGrad changes nothing."""
    rng = np.random.default_rng(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).double()
    set_weights(net[1], rng.normal(size=(2, 12)))
    x, base = rng.normal(size=(3, 2, 2)), rng.normal(size=(3, 2, 2))
    w = net[1].weight.data[1].reshape(3, 2, 2)
    assert np.allclose(integrated_gradients(net, x, 1, base, steps=3), (x - base) * w)
    assert np.allclose(smoothgrad(net, x, 1, n_samples=5, noise_level=0.5), w)


def test_smoothgrad_is_the_mean_gradient_at_the_noisy_copies_seeded_and_batch_free():
    net = tiny_cnn(seed=4)
    x = np.random.default_rng(2).normal(size=(2, 8, 8))
    sg = smoothgrad(net, x, 1, n_samples=6, noise_level=0.2, batch_size=4, seed=7)
    sigma = 0.2 * (x.max() - x.min())
    noise = np.random.default_rng(7).normal(0.0, sigma, (6, 2, 8, 8))
    by_hand = np.mean([input_gradient(net, x + e, 1) for e in noise], axis=0)
    assert np.allclose(sg, by_hand)
    assert np.allclose(sg, smoothgrad(net, x, 1, n_samples=6, noise_level=0.2, batch_size=1,
                                      seed=7))
    assert not np.allclose(sg, smoothgrad(net, x, 1, n_samples=6, noise_level=0.2, seed=8))
    assert np.allclose(smoothgrad(net, x, 1, n_samples=3, noise_level=0.0),
                       input_gradient(net, x, 1))


def roughness(m):
    """Mean |difference of horizontal and vertical neighbours| over the mean |m|: speckle."""
    m = np.abs(m).max(axis=0)
    return (np.abs(np.diff(m, axis=0)).mean() + np.abs(np.diff(m, axis=1)).mean()) / m.mean()


def test_smoothgrad_is_less_speckled_than_the_plain_gradient_on_fashion_net():
    """Smilkov et al.'s point: averaging over noise removes the pixel-to-pixel speckle of
    one gradient. On every shipped sample the gallery's SmoothGrad (mean |∂y/∂x|, 32 copies)
    is less than 0.6 times as rough as the plain saliency (measured 0.30–0.46); the signed
    mean settles more slowly (0.75–1.07 at 32 copies)."""
    from minicnn.data.samples import fashion_samples
    model = mc.models.fashion_net(pretrained=True)
    for image, label in fashion_samples():
        x = model.preprocess.preprocess(image)[0]
        plain = input_gradient(model, x, label)
        smooth = smoothgrad(model, x, label, n_samples=32, batch_size=32, kind="magnitude")
        assert roughness(smooth) < 0.6 * roughness(plain), (roughness(smooth), roughness(plain))


def test_smoothgrad_kinds_average_the_gradient_its_magnitude_or_its_square():
    net = tiny_cnn(seed=5)
    x = np.random.default_rng(3).normal(size=(2, 8, 8))
    noise = np.random.default_rng(1).normal(0.0, 0.1 * (x.max() - x.min()), (4, 2, 8, 8))
    grads = np.stack([input_gradient(net, x + e, 2) for e in noise])
    for kind, each in (("gradient", grads), ("magnitude", np.abs(grads)),
                       ("square", grads ** 2)):
        sg = smoothgrad(net, x, 2, n_samples=4, noise_level=0.1, seed=1, kind=kind)
        assert np.allclose(sg, each.mean(axis=0)), kind
    with pytest.raises(ValueError, match="kind must be one of"):
        smoothgrad(net, x, 2, kind="abs")


def test_smoothgrad_and_ig_bad_inputs():
    net = tiny_cnn()
    x = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="n_samples"):
        smoothgrad(net, x, 0, n_samples=0)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(net, x, 0, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        integrated_gradients(net, x, 0, batch_size=-1)
    with pytest.raises(ValueError, match="one image at a time"):
        smoothgrad(net, np.zeros((2, 2, 8, 8)), 0)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(net, x, 0, baseline=np.zeros((2, 4, 4)))


def _flags(model):
    return ([p.requires_grad for p in model.parameters()], [m.training for m in model.modules()])


@pytest.mark.parametrize("eval_mode", [True, False])
def test_frozen_freezes_parameters_and_sets_eval_mode_only_when_asked(eval_mode):
    from minicnn.techniques.common import frozen
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    model[2].weight.requires_grad = False           # a caller's own mix of flags comes back
    before = _flags(model)
    with frozen(model, eval_mode=eval_mode):
        assert not any(p.requires_grad for p in model.parameters())
        assert [m.training for m in model.modules()] == \
            ([False] * len(before[1]) if eval_mode else before[1])
        x = mc.tensor(np.ones((5, 3)), requires_grad=True)
        model(x).sum().backward()
        assert all(p.grad is None for p in model.parameters())   # dL/dx only
        assert x.grad is not None and np.any(x.grad != 0)
    assert _flags(model) == before
    with pytest.raises(RuntimeError, match="inside"):
        with frozen(model, eval_mode=eval_mode):
            raise RuntimeError("inside")
    assert _flags(model) == before                  # restored on error too


def test_frozen_must_be_told_whether_to_switch_to_eval_mode():
    from minicnn.techniques.common import frozen
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="eval_mode"):
        with frozen(model):
            pass
    with pytest.raises(TypeError, match="eval_mode must be True or False, got 'yes'"):
        with frozen(model, eval_mode="yes"):
            pass

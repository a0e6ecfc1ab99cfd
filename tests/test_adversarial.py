"""Adversarial examples: the linear example to 4 decimals, FGSM's closed form on a linear
model, PGD inside the ε-ball and the pixel range at every step, targeted attacks and fooling
images that really fool, template mixing's exact α, and clear errors."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend
from minicnn.data.images import Preprocess
from minicnn.techniques import adversarial as adv
from minicnn.techniques.optimize import pixel_bounds
from minicnn.training import predict
from tests.conftest import fashion_mnist_or_skip


def fashion_net_trained():
    try:
        return mc.models.fashion_net(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"needs the trained fashion_net weights (weights/fashion_net.npz): {err}")


def he_init(model, seed=0):
    """Random weights at He scale (N(0, 2/fan_in), zero biases). PyTorch's default init makes
    a deep random net's output almost independent of its input; He init keeps the signal."""
    rng = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if type(m).__name__ in ("Conv2d", "Linear"):
            fan_in = int(np.prod(m.weight.shape[1:]))
            dtype = m.weight.data.dtype
            m.weight.data = (rng.standard_normal(m.weight.shape) * np.sqrt(2 / fan_in)
                             ).astype(dtype)
            m.bias.data = np.zeros(m.bias.shape, dtype)
    return model.eval()


def two_class_linear(d=12, seed=0, preprocess=None):
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, 2, rng=rng)).double()
    if preprocess is not None:
        net.preprocess = preprocess
    return net


def tiny_cnn(seed=0):
    """Conv-ReLU-Pool-Conv-ReLU-Flatten-Linear on RGB 8×8 with a per-channel preprocess."""
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 8, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 5, rng=rng)).double().eval()
    net.preprocess = Preprocess(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), scale=1 / 255)
    return net


def pixel_images(net, n=4, seed=0):
    """Images with many pixels at exactly 0 and 255, so the range clipping matters."""
    img = np.random.default_rng(seed).choice([0, 0, 40, 128, 255, 255], size=(n, 8, 8, 3))
    return net.preprocess.preprocess(img.astype(np.uint8), dtype=np.float64)


# ------------------------------------------------------------------ linear example
def test_the_linear_10d_example_prints_minus_3_to_2_and_0_0474_to_0_8808():
    r = adv.linear_example()
    assert f"{r['score']:.4f} -> {r['adv_score']:.4f}" == "-3.0000 -> 2.0000"
    assert f"{r['prob']:.4f} -> {r['adv_prob']:.4f}" == "0.0474 -> 0.8808"
    np.testing.assert_array_equal(r["x_adv"] - r["x"], 0.5 * np.sign(r["w"]))


def test_the_same_nudge_moves_the_score_by_eps_times_l1_so_required_eps_falls_like_1_over_d():
    r = adv.required_eps([10, 100, 1000, 10000], score_change=5.0)
    np.testing.assert_allclose(r["moved"], 5.0)
    np.testing.assert_allclose(r["eps"] * r["l1"], 5.0)
    assert np.all(np.diff(r["eps"]) < 0)
    # ‖w‖₁ ≈ d·√(2/π) for standard normal weights
    np.testing.assert_allclose(r["l1"][-1] / 10000, np.sqrt(2 / np.pi), rtol=0.03)


# ------------------------------------------------------------------ FGSM
def test_fgsm_on_a_two_class_linear_model_is_the_closed_form(backend_name):
    """J = CE(w_0·x, w_1·x; y) has ∇ₓJ = (p_y − 1)(w_y − w_other): its sign is sign(w_other − w_y),
    so FGSM is x + ε·s·sign(w_other − w_y) — the linear example in disguise. With std 0.5
    and scale 1/255 a [0, 1] pixel unit is s = 2 preprocessed units."""
    pp = Preprocess(mean=(0.0,), std=(0.5,), scale=1 / 255)
    net = two_class_linear(preprocess=pp).to(backend_name)
    w = mc.to_numpy(net[1].weight.data)
    x = np.random.default_rng(1).uniform(0.5, 1.5, (3, 1, 3, 4))      # inside [0, 2]: no clipping
    labels = np.array([0, 1, 0])
    eps = 0.05
    out = adv.fgsm(net, as_backend(x, backend_name), labels, eps)
    assert type(out) is np.ndarray and out.shape == x.shape
    for n, y in enumerate(labels):
        step = np.sign(w[1 - y] - w[y]).reshape(1, 3, 4)
        np.testing.assert_allclose(out[n], x[n] + eps * 2 * step)
    targeted = adv.fgsm(net, x, None, eps, target=1 - labels)          # toward the other class
    np.testing.assert_allclose(targeted, out)


def test_fgsm_clips_to_the_valid_pixel_range():
    net = tiny_cnn()
    x = pixel_images(net)
    lo, hi = (mc.to_numpy(b) for b in pixel_bounds(net))
    out = adv.fgsm(net, x, 0, 0.3)
    assert np.all(out >= lo - 1e-12) and np.all(out <= hi + 1e-12)
    assert np.any(out == lo) and np.any(out == hi)


# ------------------------------------------------------------------ PGD / BIM
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_stays_inside_the_eps_ball_and_the_pixel_range_at_every_step(norm, backend_name):
    net = tiny_cnn().to(backend_name)
    x = pixel_images(net)
    lo, hi = (mc.to_numpy(b) for b in pixel_bounds(net))
    eps = 0.05 if norm == "inf" else 0.5
    seen = []

    def check(step, x_adv):
        linf, l2 = adv.distortion(net, x, x_adv)
        assert (linf if norm == "inf" else l2).max() <= eps * (1 + 1e-9), step
        assert np.all(x_adv >= lo - 1e-12) and np.all(x_adv <= hi + 1e-12), step
        seen.append(step)
    out = adv.pgd(net, as_backend(x, backend_name), [0, 1, 2, 3], eps, steps=6, norm=norm,
                  alpha=eps / 2, callback=check, seed=3)
    assert seen == list(range(6))
    linf, l2 = adv.distortion(net, x, out)
    assert (linf if norm == "inf" else l2).max() > 0.5 * eps           # it did move


def test_pgd_raises_the_loss_and_is_deterministic_given_the_seed():
    net = tiny_cnn()
    x = pixel_images(net, seed=2)
    y = predict(net, x).argmax(axis=1)

    def loss(images):
        logits = predict(net, images)
        logits = logits - logits.max(axis=1, keepdims=True)
        return -(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1))).sum()
    a = adv.pgd(net, x, y, 0.05, steps=8, seed=1)
    np.testing.assert_array_equal(a, adv.pgd(net, x, y, 0.05, steps=8, seed=1))
    assert loss(a) > loss(adv.fgsm(net, x, y, 0.05 / 8)) > loss(x)


def test_bim_with_one_full_step_is_fgsm():
    net = tiny_cnn()
    x = pixel_images(net)
    np.testing.assert_allclose(adv.bim(net, x, 1, 0.03, steps=1), adv.fgsm(net, x, 1, 0.03))


def test_targeted_pgd_reaches_the_target_on_fashion_net_for_at_least_90_percent():
    model = fashion_net_trained()
    x, y = fashion_mnist_or_skip("test")
    x, y = model.preprocess.preprocess(x[:20]), y[:20]
    target = (y + 1 + np.arange(20) % 9) % 10
    out = adv.pgd(model, x, y, 0.1, target=target, steps=20, alpha=0.01)
    assert adv.distortion(model, x, out)[0].max() <= 0.1 + 1e-6
    assert (predict(model, out).argmax(axis=1) == target).mean() >= 0.9


# ------------------------------------------------------------------ fooling images
def test_fooling_images_succeed_for_10_random_pairs_and_report_the_measured_distortion():
    """The shipped cifar_net (its architecture with He-scaled random weights where the
    weights are absent): every (source image, target) pair ends top-1 = target, p >= 0.9."""
    from tests.conftest import shared_data
    from minicnn.data.cifar import load_cifar10
    from minicnn.models.registry import find_shipped
    model = (mc.models.cifar_net(pretrained=True) if find_shipped("cifar_net")
             else he_init(mc.models.cifar_net()))
    images, _ = load_cifar10("test", root=shared_data("cifar10"))
    rng = np.random.default_rng(0)
    idx = rng.choice(len(images), 10, replace=False)
    x = model.preprocess.preprocess(images[idx])
    source = predict(model, x).argmax(axis=1)
    target = (source + rng.integers(1, 10, 10)) % 10
    # log p(target): with the trained weights, ascending the raw cat logit from a bird
    # raised the dog logit with it and ended on dog; the log-softmax pushes the rivals down
    res = adv.fooling_image(model, x, target, confidence=0.9, steps=60, lr=2.0, label=source,
                            score="log_softmax")
    assert res["success"].all()
    p = predict(model, res["image"])
    p = np.exp(p - p.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_array_equal(p.argmax(1), target)
    assert np.all(p[np.arange(10), target] >= 0.9)
    pixels = (model.preprocess.deprocess(res["image"]) - model.preprocess.deprocess(x)) / 255
    flat = pixels.reshape(10, -1)
    np.testing.assert_allclose(res["linf"], np.abs(flat).max(1), rtol=1e-9)
    np.testing.assert_allclose(res["l2"], np.sqrt((flat ** 2).sum(1)), rtol=1e-9)
    assert np.all(res["iterations"] < 60) and np.all(res["linf"] > 0)


def test_fooling_from_noise_reaches_the_target():
    model = he_init(tiny_cnn())
    model.preprocess = Preprocess(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), scale=1 / 255,
                                  input_size=(8, 8))
    res = adv.fooling_from_noise(model, 3, n=2, confidence=0.9, steps=200, lr=0.5)
    assert res["success"].all() and np.all(res["prediction"] == 3), res


# ------------------------------------------------------------------ template mixing
def test_template_mixing_alpha_by_hand():
    """W = I, x = (2, 1): s(α) = (2 − α, 1 + α) with Δw = (−1, 1): the class flips at α = 0.5."""
    w, b, x = np.eye(2), np.zeros(2), np.array([2.0, 1.0])
    assert adv.mixing_alpha(w, b, x, 0, 1) == pytest.approx(0.5)
    np.testing.assert_allclose(adv.mix_templates(x, w, 0, 1, 0.5), [1.5, 1.5])


def test_template_mixing_flips_exactly_at_alpha_star():
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((6, 20)), rng.standard_normal(6)
    x = w[2] * 3.0                                      # clearly class 2
    assert np.argmax(w @ x + b) == 2
    a = adv.mixing_alpha(w, b, x, 2, 5)
    assert 0 < a < np.inf
    assert np.argmax(w @ adv.mix_templates(x, w, 2, 5, a * (1 + 1e-6)) + b) == 5
    assert np.argmax(w @ adv.mix_templates(x, w, 2, 5, a * (1 - 1e-3)) + b) != 5


# ------------------------------------------------------------------ figures
def test_figures_build():
    from minicnn.plot import adversarial as pa
    net = tiny_cnn()
    x = pixel_images(net, n=2)
    fig = pa.adversarial_panel(x, adv.fgsm(net, x, 0, 0.05), net.preprocess)
    assert len(fig.axes) == 8
    fig2 = pa.required_eps_plot(adv.required_eps([10, 100, 1000]), adv.linear_example())
    assert "0.0474" in fig2.axes[0].get_title()
    pa.plt.close("all")


# ------------------------------------------------------------------ bad inputs
def test_bad_inputs_give_clear_errors():
    net = tiny_cnn()
    x = pixel_images(net, n=2)
    with pytest.raises(ValueError, match="eps must be"):
        adv.fgsm(net, x, 0, -0.1)
    with pytest.raises(ValueError, match="eps must be"):
        adv.pgd(net, x, 0, -1e-3)
    with pytest.raises(ValueError, match="target equals the true label for image"):
        adv.pgd(net, x, [1, 2], 0.1, target=[3, 2])
    with pytest.raises(ValueError, match="target equals the true label"):
        adv.fooling_image(net, x[:1], 4, label=4)
    with pytest.raises(ValueError, match="target equals source"):
        adv.mixing_alpha(np.eye(3), np.zeros(3), np.ones(3), 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        adv.fgsm(net, x, 7, 0.1)
    with pytest.raises(ValueError, match="norm must be"):
        adv.pgd(net, x, 0, 0.1, norm="l1")
    with pytest.raises(ValueError, match="steps must be"):
        adv.pgd(net, x, 0, 0.1, steps=0)
    with pytest.raises(ValueError, match="label must be an int"):
        adv.fgsm(net, x, [0, 1, 2], 0.1)
    with pytest.raises(ValueError, match="give the true label"):
        adv.fgsm(net, x, None, 0.1)


@pytest.mark.torch
def test_the_benchmarked_torch_pgd_computes_the_same_attack():
    """The benchmark's PyTorch PGD is the same algorithm as ours: the gradients agree to float32
    rounding, so after 3 steps only the few pixels whose gradient is near 0 (sign decided
    by rounding) may differ."""
    torch = pytest.importorskip("torch")
    from minicnn.bench.adversarial import _torch_pgd
    from minicnn.bench.reference_torch import torch_small_vgg
    model = he_init(mc.models.cifar_net())
    rng = np.random.default_rng(0)
    x = model.preprocess.preprocess(rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8))
    y = rng.integers(0, 10, 2)
    ours = adv.pgd(model, x, y, 8 / 255, steps=3, alpha=2 / 255, random_start=False)
    net = torch_small_vgg(model).eval()
    net.requires_grad_(False)
    lo, hi = (torch.from_numpy(np.asarray(b)) for b in pixel_bounds(model))
    s = torch.from_numpy(adv.pixel_scale(model).astype(np.float32))
    theirs = _torch_pgd(torch, net, torch.from_numpy(x), torch.from_numpy(y), s, lo, hi, steps=3,
                        alpha=2 / 255, eps=8 / 255)().numpy()
    assert np.mean(np.abs(ours - theirs) > 1e-4) < 1e-2


# ------------------------------------------------------------------ adversarial training
def robust_vs_weak_features(n, seed):
    """Tsipras et al. 2019's toy, in pixels: pixel 0 gives the class 75% of the time, far from
    the boundary (0.1 vs 0.9) — robust; pixels 1..15 are 0.45 vs 0.55 (noise 0.05) — together
    almost perfectly predictive, but ε = 0.1 moves each across the boundary."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    robust = np.where(rng.random(n) < 0.75, y, 1 - y) * 0.8 + 0.1
    weak = 0.5 + (y[:, None] - 0.5) * 0.1 + rng.normal(0, 0.05, (n, 15))
    x = np.clip(np.concatenate([robust[:, None], weak], axis=1), 0, 1).reshape(n, 1, 4, 4)
    return x, y


def test_adversarial_training_trades_clean_accuracy_for_robustness():
    from minicnn.techniques.adv_training import adversarial_fit, robust_accuracy, robustness
    from minicnn.training import fit
    x, y = robust_vs_weak_features(2000, 0)
    xt, yt = robust_vs_weak_features(500, 1)
    net = two_class_linear(16, preprocess=Preprocess(mean=(0.0,), std=(1.0,), scale=1 / 255))
    fit(net, (x, y), epochs=20, batch_size=100, lr=0.05, progress=False)
    before = robustness(net, xt, yt, (0.1,), steps=10)
    assert robust_accuracy(net, xt, yt, 0.0) == before["clean"]          # ε = 0: no attack
    history = adversarial_fit(net, (x, y), eps=0.1, epochs=5, batch_size=100, lr=0.05, steps=5,
                              mix=1.0, progress=False)
    after = robustness(net, xt, yt, (0.1,), steps=10)
    assert len(history) == 5 and history[-1]["adv_acc"] > 0.7
    assert before[0.1] < 0.4 and after[0.1] > 0.7                      # robust now
    assert after["clean"] < before["clean"]                            # ... at a price
    w = np.abs(mc.to_numpy(net[1].weight.data))
    assert w[:, 0].min() > w[:, 1:].max()                              # it leans on pixel 0


def _flips(model, attack, x, label, eps, **options):
    return int(predict(model, attack(model, x, label, eps, **options)).argmax()) != label


@pytest.mark.parametrize("attack, options, images", [
    (adv.fgsm, {}, range(10)),
    (adv.pgd, dict(steps=5, seed=0), (0, 4, 9))])          # the quick gallery's PGD
def test_smallest_eps_flips_the_label_and_half_of_it_does_not(attack, options, images):
    """On the shipped Fashion-MNIST samples (one per class). Measured FGSM ε × 255 per class
    0..9: 5, 34, 6.75, 92, 3, 7, 6.75, 11.5, 12.5, 6.25 — the gallery's images (classes 0, 2,
    4, 7, 9) all under 12/255, where the old fixed ε = 0.1 was 25.5/255."""
    from minicnn.data.samples import fashion_samples
    model = fashion_net_trained()
    pairs = [fashion_samples()[i] for i in images]
    x = model.preprocess.preprocess(np.stack([p for p, _ in pairs]))
    labels = np.array([k for _, k in pairs])
    eps, x_adv = adv.smallest_eps(model, x, labels, attack, **options)
    assert np.all(np.isfinite(eps)) and np.all(eps > 0)
    for i, (e, label) in enumerate(zip(eps, labels)):
        assert int(predict(model, x_adv[i:i + 1]).argmax()) != label
        assert _flips(model, attack, x[i:i + 1], int(label), e, **options)
        assert not _flips(model, attack, x[i:i + 1], int(label), e / 2, **options)
        assert adv.distortion(model, x[i:i + 1], x_adv[i:i + 1])[0][0] <= e + 1e-5
    if attack is adv.fgsm:
        assert all(eps[list(images).index(k)] < 0.05 for k in (0, 2, 4, 7, 9)), eps * 255


def test_smallest_eps_is_zero_for_a_misclassified_image_and_nan_when_nothing_flips():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    x = np.random.default_rng(0).normal(size=(1, 1, 2, 2)).astype(np.float32)
    predicted = int(predict(net, x).argmax())
    eps, _ = adv.smallest_eps(net, x, 1 - predicted)
    assert eps[0] == 0
    eps, x_adv = adv.smallest_eps(net, x, predicted, eps_max=1e-6, eps_start=1e-7)
    assert np.isnan(eps[0]) and np.array_equal(x_adv, x)
    with pytest.raises(ValueError, match="eps_start"):
        adv.smallest_eps(net, x, predicted, eps_start=0)

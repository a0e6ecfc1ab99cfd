"""The one image-optimization loop: objectives, transforms, regularizers, L-BFGS, failures.

Each transform and regularizer is checked alone on arrays whose answer is known; the
loop is checked on a concave objective whose maximizer is known in closed form.
"""
import numpy as np
import pytest

import minicnn as mc
from minicnn.backend import as_backend
from minicnn.techniques import optimize as opt


def tiny_linear(backend="numpy", d=12, k=4, seed=0):
    model = mc.nn.Sequential(mc.nn.Flatten(), mc.nn.Linear(d, k, rng=seed))
    return model.to(backend)


def quadratic_toward(a):
    """f(I) = −‖I − a‖²: concave, maximized at I = a (gradient −2(I − a), Lipschitz 2)."""
    return -opt.feature_distance(opt.INPUT, a, name="distance")


# ------------------------------------------------------------------ the loop
def test_ascent_on_a_concave_objective_increases_every_step_and_reaches_the_maximizer(
        backend_name, rng):
    a = as_backend(rng.normal(size=(1, 3, 4, 4)).astype(np.float32), backend_name)
    model = tiny_linear(backend_name, d=48)
    image, history = opt.ascend(model, quadratic_toward(a), np.zeros((1, 3, 4, 4)), steps=60,
                                lr=0.1)
    values = np.array(history["objective"])
    assert len(values) == 60 and np.all(np.diff(values) > 0)
    np.testing.assert_allclose(image, mc.to_numpy(a), atol=1e-4)


@pytest.mark.parametrize("optimizer, steps, lr, atol", [("lbfgs", 20, 1.0, 1e-5),
                                                         ("adam", 400, 0.05, 1e-2),
                                                         ("normalized", 300, 0.01, 5e-2),
                                                         ("l2", 300, 0.05, 5e-2)])
def test_every_optimizer_reaches_the_maximizer(optimizer, steps, lr, atol, rng):
    a = rng.normal(size=(1, 2, 3, 3)).astype(np.float32)
    image, history = opt.ascend(tiny_linear(d=18), quadratic_toward(a), np.zeros_like(a),
                                steps=steps, lr=lr, optimizer=optimizer)
    np.testing.assert_allclose(image, a, atol=atol)
    assert history["objective"][-1] > history["objective"][0]


def test_lbfgs_keeps_the_box_bounds_and_records_one_value_per_iteration(rng):
    a = rng.normal(size=(1, 2, 3, 3)).astype(np.float32) * 3
    image, history = opt.ascend(tiny_linear(d=18), quadratic_toward(a), np.zeros_like(a),
                                steps=30, optimizer="lbfgs", bounds=(-1.0, 1.0))
    np.testing.assert_allclose(image, np.clip(a, -1, 1), atol=1e-5)   # the box's closest point
    assert 2 <= len(history["objective"]) <= 31


def test_objectives_compose_with_plus_minus_and_scalars_and_record_each_term(rng):
    a = rng.normal(size=(1, 1, 3, 3)).astype(np.float32)
    x = mc.tensor(rng.normal(size=(1, 1, 3, 3)).astype(np.float32), requires_grad=True)
    obj = 2 * opt.l2() - opt.tv() * 0.5 + sum([opt.feature_distance(opt.INPUT, a, name="d")])
    record = {}
    value = obj({opt.INPUT: x}, record).item()
    xd = x.data
    l2, tv = (xd ** 2).sum(), ((np.diff(xd, axis=2) ** 2).sum() + (np.diff(xd, axis=3) ** 2).sum())
    d = ((xd - a) ** 2).sum()
    assert value == pytest.approx(2 * l2 - 0.5 * tv + d, rel=1e-5)
    assert record == pytest.approx({"l2": l2, "tv": tv, "d": d}, rel=1e-5)
    assert set(obj.layers) == {opt.INPUT}
    with pytest.raises(TypeError, match="scaled by a number"):
        opt.l2() * opt.l2()
    with pytest.raises(TypeError, match="added to an Objective"):
        opt.l2() + 1.0


def test_stop_when_ends_the_loop_before_the_update(rng):
    a = rng.normal(size=(1, 1, 2, 2)).astype(np.float32)
    seen = []

    def stop(step, image, output):
        seen.append(step)
        return step == 3
    _, history = opt.ascend(tiny_linear(d=4), quadratic_toward(a), np.zeros_like(a), steps=50,
                            lr=0.1, stop_when=stop)
    assert seen == [0, 1, 2, 3] and len(history["objective"]) == 4


def test_the_loop_leaves_the_model_as_it_was(rng):
    model = tiny_linear(d=4).train()
    opt.ascend(model, opt.class_score(1), np.zeros((1, 1, 2, 2)), steps=3)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_redirected_relu_lets_ascent_leave_a_dead_start():
    """ReLU(w·I − 1) is dead at I = 0: the true gradient is 0 there, the redirected rule is not."""
    lin = mc.nn.Linear(4, 1)
    lin.weight.data[...] = 1.0
    lin.bias.data[...] = -1.0
    model = mc.nn.Sequential(mc.nn.Flatten(), lin, mc.nn.ReLU())
    x0 = np.zeros((1, 1, 2, 2), np.float32)
    stuck, _ = opt.ascend(model, opt.class_score(0), x0, steps=5, lr=0.1)
    moved, hist = opt.ascend(model, opt.class_score(0), x0, steps=5, lr=0.1,
                             relu_rule="redirected")
    assert np.all(stuck == 0)
    assert hist["objective"][-1] > 0 and np.all(moved > 0)


def test_images_stay_in_the_valid_pixel_range_of_the_model(rng):
    model = mc.models.cifar_net()
    lo, hi = (mc.to_numpy(b) for b in opt.pixel_bounds(model))
    np.testing.assert_allclose(lo, model.preprocess.preprocess(np.zeros((1, 1, 3), np.uint8)))
    np.testing.assert_allclose(hi, model.preprocess.preprocess(np.full((1, 1, 3), 255, np.uint8)))
    image, _ = opt.ascend(model, opt.class_score(3), np.zeros((1, 3, 32, 32)), steps=3, lr=100.0,
                          optimizer="normalized")
    assert np.all(image >= lo - 1e-6) and np.all(image <= hi + 1e-6)
    assert np.isclose(image, lo).any() or np.isclose(image, hi).any()   # the clip was needed


# --------------------------------------------------------------- transforms
@pytest.mark.parametrize("dy, dx", [(1, 2), (-3, 0), (0, -5), (7, 9)])
def test_roll_is_np_roll_and_its_gradient_rolls_back(dy, dx, rng, backend_name):
    x = mc.tensor(as_backend(rng.normal(size=(2, 3, 5, 6)), backend_name), requires_grad=True)
    w = rng.normal(size=(2, 3, 5, 6))
    y = opt.roll(x, dy, dx)
    np.testing.assert_array_equal(mc.to_numpy(y.data),
                                  np.roll(mc.to_numpy(x.data), (dy, dx), axis=(2, 3)))
    (y * as_backend(w, backend_name)).sum().backward()
    np.testing.assert_allclose(mc.to_numpy(x.grad), np.roll(w, (-dy, -dx), axis=(2, 3)))


def test_jitter_draws_its_shift_from_the_seeded_rng_and_is_undone_in_the_gradient(rng):
    x = mc.tensor(rng.normal(size=(1, 1, 8, 8)), requires_grad=True)
    w = rng.normal(size=(1, 1, 8, 8))
    y = opt.jitter(3)(x, np.random.default_rng(5))
    dy, dx = np.random.default_rng(5).integers(-3, 4, size=2)
    np.testing.assert_array_equal(y.data, np.roll(x.data, (dy, dx), axis=(2, 3)))
    (y * w).sum().backward()
    np.testing.assert_allclose(np.roll(x.grad, (dy, dx), axis=(2, 3)), w)   # undone exactly


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_blur_preserves_the_mean_and_smooths(sigma, rng, backend_name):
    x = as_backend(rng.normal(size=(2, 3, 9, 12)), backend_name)
    y = opt.gaussian_blur(x, sigma)
    xn, yn = mc.to_numpy(x), mc.to_numpy(y)
    np.testing.assert_allclose(yn.mean(axis=(2, 3)), xn.mean(axis=(2, 3)), atol=1e-12)
    assert yn.std() < xn.std()
    t = mc.tensor(x, requires_grad=True)
    yt = opt.blur(sigma)(t, None)                        # the transform: same map, differentiable
    np.testing.assert_allclose(mc.to_numpy(yt.data), yn, atol=1e-12)
    yt.sum().backward()                                  # a blur of a constant is that constant
    np.testing.assert_allclose(mc.to_numpy(t.grad), 1.0, atol=1e-12)


def test_resize_keeps_constants_is_identity_at_the_same_size_and_has_a_gradient(rng):
    x = rng.normal(size=(1, 2, 6, 8))
    np.testing.assert_allclose(opt.resize(x, (6, 8)), x, atol=1e-12)
    np.testing.assert_allclose(opt.resize(np.full((1, 1, 5, 7), 3.0), (9, 4)), 3.0)
    assert opt.resize(x, (3, 13)).shape == (1, 2, 3, 13)
    report = mc.gradcheck.check(lambda t: opt.resize(t, (4, 11)), [x])
    assert report.ok, report
    y = opt.scale([2.0])(mc.tensor(x), np.random.default_rng(0))
    assert y.shape == (1, 2, 12, 16)


def test_pad_and_resize_to_transforms():
    x = mc.tensor(np.ones((1, 1, 3, 3)))
    y = opt.pad(2, value=-1.0)(x, None)
    assert y.shape == (1, 1, 7, 7) and y.data[0, 0, 0, 0] == -1 and y.data[0, 0, 3, 3] == 1
    assert opt.resize_to((5, 4))(x, None).shape == (1, 1, 5, 4)


# ------------------------------------------------------------- regularizers
def test_decay_shrinks_toward_zero():
    x = np.full((1, 1, 2, 2), 4.0)
    np.testing.assert_allclose(opt.decay(0.25)(x, None, 0), 3.0)


def test_blur_every_blurs_only_every_kth_step(rng):
    x = rng.normal(size=(1, 1, 6, 6))
    r = opt.blur_every(1.0, every=3)
    assert r(x, None, 1) is x and r(x, None, 2) is x
    np.testing.assert_allclose(r(x, None, 3), opt.gaussian_blur(x, 1.0))


def test_clip_norm_zeroes_exactly_the_pixels_of_smallest_norm(backend_name):
    # 2 channels, 4x5 pixels with norms 1..20 in a known scattered order
    order = np.random.default_rng(3).permutation(20).reshape(4, 5)
    norms = (order + 1).astype(float)
    angle = np.random.default_rng(4).uniform(0, 2 * np.pi, (4, 5))
    x = np.stack([norms * np.cos(angle), norms * np.sin(angle)])[None]
    out = mc.to_numpy(opt.clip_norm(25)(as_backend(x, backend_name), None, 0))
    small = norms < np.percentile(norms, 25)                          # the 5 smallest norms
    assert small.sum() == 5
    assert np.all(out[0][:, small] == 0)
    np.testing.assert_array_equal(out[0][:, ~small], x[0][:, ~small])


def test_clip_contribution_zeroes_exactly_the_pixels_of_smallest_contribution(backend_name, rng):
    x = rng.normal(size=(2, 3, 4, 4))
    g = rng.normal(size=(2, 3, 4, 4))
    out = mc.to_numpy(opt.clip_contribution(50)(as_backend(x, backend_name),
                                                as_backend(g, backend_name), 0))
    for n in range(2):                                                 # per image
        contrib = np.abs((x[n] * g[n]).sum(axis=0))
        small = contrib < np.percentile(contrib, 50)
        assert small.sum() == 8
        assert np.all(out[n][:, small] == 0)
        np.testing.assert_array_equal(out[n][:, ~small], x[n][:, ~small])


# ------------------------------------------------------------ bad input, NaN
def test_nan_in_the_objective_stops_the_loop_naming_the_step():
    calls = {"n": 0}

    def fn(acts):
        calls["n"] += 1
        scale = float("nan") if calls["n"] == 4 else 1.0
        return (acts[opt.INPUT] * acts[opt.INPUT]).sum() * scale
    with pytest.raises(FloatingPointError, match=r"step 3\b.*objective is not finite"):
        opt.ascend(tiny_linear(d=4), -opt.Objective(fn, [opt.INPUT]), np.ones((1, 1, 2, 2)),
                   steps=10, lr=0.1)


def test_nan_in_the_gradient_or_the_start_image_stops_the_loop():
    nan_weights = np.array([[[[1.0, float("nan")], [1.0, 1.0]]]])
    bad_grad = opt.Objective(lambda acts: (acts[opt.INPUT] * nan_weights * 0.0).sum(),
                             [opt.INPUT])
    with pytest.raises(FloatingPointError, match="step 0"):
        opt.ascend(tiny_linear(d=4), bad_grad, np.ones((1, 1, 2, 2)), steps=3)
    for bad in (np.nan, np.inf):
        with pytest.raises(FloatingPointError, match="start image x0: the image is not finite"):
            opt.ascend(tiny_linear(d=4), opt.class_score(0), np.full((1, 1, 2, 2), bad))


def test_nan_stops_the_lbfgs_path_naming_the_iteration():
    calls = {"n": 0}

    def fn(acts):
        calls["n"] += 1
        scale = float("nan") if calls["n"] == 3 else 1.0
        d = acts[opt.INPUT] - 1.0
        return (d * d).sum() * scale
    with pytest.raises(FloatingPointError,
                       match=r"lbfgs\): iteration \d+ \(function evaluation 2\)"):
        opt.ascend(tiny_linear(d=4), -opt.Objective(fn, [opt.INPUT]), np.zeros((1, 1, 2, 2)),
                   steps=10, optimizer="lbfgs")


def test_bad_arguments_give_clear_errors():
    model = tiny_linear(d=4)
    x0 = np.zeros((1, 1, 2, 2))
    with pytest.raises(KeyError, match="Valid layer names: 0, 1"):
        opt.ascend(model, opt.energy("features.3"), x0)
    with pytest.raises(ValueError, match="out of range"):
        opt.ascend(model, opt.class_score(7), x0, steps=1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        opt.ascend(model, opt.class_score(0), x0, optimizer="newton")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        opt.ascend(model, opt.class_score(0), x0, steps=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.ascend(model, opt.class_score(0), x0, lr=-1.0)
    with pytest.raises(ValueError, match="lbfgs"):
        opt.ascend(model, opt.class_score(0), x0, optimizer="lbfgs", transforms=[opt.jitter(1)])
    with pytest.raises(ValueError, match="lbfgs"):
        opt.ascend(model, opt.class_score(0), x0, optimizer="lbfgs", precondition=opt.spectral())
    with pytest.raises(ValueError, match="power must be >= 0"):
        opt.spectral(-1)
    with pytest.raises(ValueError, match="needs RGB images"):
        opt.colour_correlated()(x0)
    with pytest.raises(TypeError, match="must be an Objective"):
        opt.ascend(model, lambda acts: 0, x0)
    with pytest.raises(ValueError, match="percentile"):
        opt.clip_norm(100)
    with pytest.raises(ValueError, match="sigma"):
        opt.gaussian_blur(x0, 0)
    with pytest.raises(ValueError, match="theta"):
        opt.decay(1.5)


@pytest.mark.parametrize("optimizer", ["sgd", "normalized", "l2", "adam", "lbfgs"])
def test_the_loop_with_transforms_and_regularizers_runs_on_every_backend(optimizer, backend_name,
                                                                         rng):
    model = mc.nn.Sequential(mc.nn.Conv2d(2, 3, 3, padding=1, rng=0), mc.nn.ReLU(),
                             mc.nn.AdaptiveAvgPool2d((1, 1)), mc.nn.Flatten()).to(backend_name)
    obj = opt.class_score(1) + 0.5 * opt.neuron("1", 2, (3, 3)) - 1e-2 * opt.l2() - 1e-3 * opt.tv()
    lbfgs = optimizer == "lbfgs"
    transforms = [] if lbfgs else [opt.jitter(2), opt.pad(1), opt.scale([0.9, 1.1]), opt.blur(0.7)]
    regularizers = [] if lbfgs else [opt.decay(0.01), opt.blur_every(0.5, 2), opt.clip_norm(5),
                                     opt.clip_contribution(5)]
    x0 = rng.normal(size=(2, 2, 8, 8)).astype(np.float32)
    image, history = opt.ascend(model, obj, x0, steps=4, lr=0.05, optimizer=optimizer,
                                transforms=transforms, regularizers=regularizers,
                                precondition=None if lbfgs else opt.spectral(1.0),
                                bounds=(-2.0, 2.0), relu_rule="redirected")
    assert isinstance(image, np.ndarray) and image.shape == x0.shape
    assert np.all(np.abs(image) <= 2.0)
    assert {"objective", "class 1", "1 unit (2, 3, 3)", "l2", "tv"} <= set(history)


# ----------------------------------------------------------- preconditioners
@pytest.mark.parametrize("k, power", [(1, 1.0), (3, 1.0), (4, 2.0)])
def test_spectral_scales_a_cosine_of_k_cycles_by_k_to_the_minus_power(k, power, backend_name):
    """A pure frequency is an eigenvector of the filter: k cycles per image come out × k^−p,
    and the mean (frequency 0, counted as 1) passes unchanged."""
    i = np.arange(16)
    wave = np.cos(2 * np.pi * k * i / 16)[None, None, :, None] * np.ones((1, 2, 16, 12))
    g = as_backend((wave + 0.7).astype(np.float64), backend_name)
    out = mc.to_numpy(opt.spectral(power)(g))
    np.testing.assert_allclose(out, wave * k ** -power + 0.7, atol=1e-12)
    np.testing.assert_allclose(mc.to_numpy(opt.spectral(0.0)(g)), mc.to_numpy(g), atol=1e-12)


def test_colour_correlated_steps_keep_brightness_and_shrink_hue(rng, backend_name):
    """M = C Cᵀ/‖C Cᵀ‖ per pixel: a grey step (equal RGB, the photos' main colour direction)
    keeps its length (×1.00), a pure hue step (R − B) shrinks below a tenth (×0.08)."""
    from minicnn.techniques.transforms import COLOUR_CORRELATION_SQRT as C
    m = C @ C.T / np.linalg.norm(C @ C.T, 2)
    g = rng.normal(size=(2, 3, 4, 5))
    out = mc.to_numpy(opt.colour_correlated()(as_backend(g, backend_name)))
    np.testing.assert_allclose(out, np.einsum("ij,njhw->nihw", m, g), atol=1e-12)
    grey, hue = np.ones(3) / np.sqrt(3), np.array([1, 0, -1]) / np.sqrt(2)
    assert np.linalg.norm(m @ grey) > 0.95 and np.linalg.norm(m @ hue) < 0.1

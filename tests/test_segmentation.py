"""Image-to-image networks: unpooling puts values at the encoder's argmax, transposed-conv sizes,
gradients of the whole encoder–decoder, the synthetic dataset's labels are its pasted pixels,
a tiny U-Net can fit a batch, and wrong sizes give errors naming the layer."""
import os

import numpy as np
import pytest

from minicnn import gradcheck, nn, ops
from minicnn.autograd import Tensor, no_grad
from minicnn.backend import as_backend, to_numpy
from minicnn.models import fashion_net
from minicnn.models.segmentation import (Skip, init_encoder_from, segnet,
                                         segnet_transposed, unet)
from minicnn.training.segmentation import (confusion_matrix, evaluate_segmentation, fit_segmentation,
                                  predict_masks, segmentation_scores)
from minicnn.data.segdata import (SEG_CLASSES, Placement, SegmentationCanvases, paste_items,
                             resize_item)
from tests.conftest import fashion_mnist_or_skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ((2,), (3,))


def toy_items(n=12, seed=0):
    """n 28×28 uint8 'items' (filled rectangles / discs of random grey levels), labels 0..2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28]
    items, labels = [], []
    for k in range(n):
        label = k % 3
        if label == 0:
            shape = (abs(yy - 14) < 10) & (abs(xx - 14) < 5)               # a bar
        elif label == 1:
            shape = (yy - 14) ** 2 + (xx - 14) ** 2 < 11 ** 2               # a disc
        else:
            shape = (abs(yy - 14) < 3) | (abs(xx - 14) < 3)                 # a cross
        items.append(np.where(shape, rng.integers(120, 256), 0).astype(np.uint8))
        labels.append(label)
    return np.stack(items), np.array(labels)


# ------------------------------------------------------------------ decoders

def window_argmax_mask(p):
    """1 at the first maximum of every 2×2 window of p (N, C, H, W), by explicit loops."""
    mask = np.zeros(p.shape, bool)
    n, c, h, w = p.shape
    for a in range(n):
        for b in range(c):
            for i in range(0, h, 2):
                for j in range(0, w, 2):
                    win = p[a, b, i:i + 2, j:j + 2]
                    r, q = np.unravel_index(np.argmax(win), win.shape)
                    mask[a, b, i + r, j + q] = True
    return mask


def test_unpool_decoder_puts_values_exactly_at_the_encoder_argmax(backend_name):
    model = segnet(widths=((2,), (3,)), num_classes=3, seed=1).double().to(backend_name)
    x = as_backend(np.random.default_rng(0).standard_normal((2, 1, 8, 8)), backend_name)
    with nn.capture(model, ["encoder.features.4", "encoder.features.5", "decoder.0.up"]) as acts:
        model(Tensor(x))
    before_pool = to_numpy(acts["encoder.features.4"].data)      # ReLU output (2, 3, 4, 4)
    pooled = to_numpy(acts["encoder.features.5"].data)           # (2, 3, 2, 2)
    unpooled = to_numpy(acts["decoder.0.up"].data)               # (2, 3, 4, 4)
    mask = window_argmax_mask(before_pool)
    np.testing.assert_array_equal(unpooled, np.where(mask, before_pool, 0.0))
    windows = (2, 3, 2, 2, 2, 2)                                  # (n, c, i, r, j, q)
    np.testing.assert_array_equal(unpooled.reshape(windows).sum(axis=(3, 5)), pooled)
    np.testing.assert_array_equal(before_pool.reshape(windows).max(axis=(3, 5)), pooled)


@pytest.mark.parametrize("k, s, p, op", [(2, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (3, 3, 0, 2),
                                         (5, 3, 2, 1), (3, 1, 1, 0)])
def test_transposed_conv_output_size_formula(k, s, p, op):
    x = Tensor(np.random.default_rng(0).standard_normal((1, 2, 5, 7)))
    layer = nn.ConvTranspose2d(2, 3, k, stride=s, padding=p, output_padding=op, rng=0)
    y = layer(x)
    expect = tuple((n - 1) * s - 2 * p + k + op for n in (5, 7))
    assert y.shape == (1, 3) + expect
    # and a conv2d with the same kernel/stride/padding maps that size back to the input size
    back = ops.conv2d(y, Tensor(np.zeros((2, 3, k, k))), stride=s, padding=p)
    assert back.shape[2:] == (5, 7)


def test_transposed_decoder_doubles_the_size_per_block():
    model = segnet_transposed(widths=TINY, num_classes=4)
    with nn.capture(model, ["decoder.0.up", "decoder.1.up"]) as acts:
        out = model(Tensor(np.zeros((1, 1, 16, 16), np.float32)))
    assert acts["decoder.0.up"].shape == (1, 3, 8, 8)
    assert acts["decoder.1.up"].shape == (1, 2, 16, 16)
    assert out.shape == (1, 4, 16, 16)


def parameter_fn(model):
    """fn(x, *params) running ``model`` with the given Tensors in place of its parameters."""
    slots = []
    for name, _ in model.named_parameters():
        owner, _, key = name.rpartition(".")
        slots.append((model.get_submodule(owner), key))

    def fn(x, *params):
        saved = [getattr(m, k) for m, k in slots]
        try:
            for (m, k), p in zip(slots, params):
                setattr(m, k, p)
            return model(x)
        finally:
            for (m, k), p in zip(slots, saved):
                setattr(m, k, p)
    return fn, [getattr(m, k).data for m, k in slots]


@pytest.mark.parametrize("build", [segnet, segnet_transposed, unet])
def test_whole_encoder_decoder_passes_gradcheck(build):
    model = build(widths=TINY, num_classes=3, seed=2).double()
    rng = np.random.default_rng(5)
    for name, p in model.named_parameters():       # nonzero biases: no pre-activation sits
        if name.endswith("bias"):                   # exactly on a ReLU kink (zeros of unpooling)
            p.data = rng.uniform(0.1, 0.3, p.shape) * rng.choice([-1, 1], p.shape)
    fn, params = parameter_fn(model)
    x = np.random.default_rng(3).standard_normal((2, 1, 8, 8))
    report = gradcheck.check(fn, [x] + params, seed=4)
    assert report.ok, report


# --------------------------------------------------------------------- dataset

def dataset(split="train", seed=0, **kw):
    kw = {"size": 40, "length": 20, "scale": (0.6, 1.2), **kw}
    return SegmentationCanvases(split, seed=seed, source=toy_items(), **kw)


def test_dataset_is_deterministic_per_seed_and_index():
    a, b = dataset(seed=5), dataset(seed=5)
    xa, ya = a.batch(range(10))
    xb, yb = b.batch(range(10))
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    x3, y3 = b.batch([7, 3])                   # any order, any batch: the same canvases
    np.testing.assert_array_equal(x3, xa[[7, 3]])
    np.testing.assert_array_equal(y3, ya[[7, 3]])
    assert not np.array_equal(dataset(seed=6).batch(range(10))[1], ya)
    assert not np.array_equal(dataset("test", seed=5).batch(range(10))[1], ya)
    counts = [len(a.placements(i)) for i in range(20)]
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) > 1


def test_masks_are_the_pasted_items():
    d = dataset(seed=1)
    for i in range(20):
        image, mask, placed = d.canvas(i)
        # the labels are exactly the pasted pixels (items are pasted above the threshold only)
        np.testing.assert_array_equal(mask > 0, image > d.threshold)
        # each item owns its above-threshold pixels that no later item covers
        covered = np.zeros(mask.shape, bool)
        for p in reversed(placed):
            item = resize_item(d.source_images[p.source], p.size)
            own = np.zeros(mask.shape, bool)
            own[p.top:p.top + p.size, p.left:p.left + p.size] = item > d.threshold
            visible = own & ~covered
            assert np.all(mask[visible] == p.label + 1)
            box_pixels = image[p.top:p.top + p.size, p.left:p.left + p.size]
            np.testing.assert_array_equal(box_pixels[visible[p.top:p.top + p.size,
                                                             p.left:p.left + p.size]],
                                          item[visible[p.top:p.top + p.size,
                                                       p.left:p.left + p.size]])
            covered |= own
        assert np.all(mask[~covered] == 0)


def test_items_avoid_covering_each_other_when_asked():
    d = dataset(size=64, length=10, scale=(0.6, 0.6), max_overlap=0.0, tries=100)
    for i in range(10):
        boxes = [np.zeros((64, 64), int) for _ in d.placements(i)]
        for b, p in zip(boxes, d.placements(i)):
            b[p.top:p.top + p.size, p.left:p.left + p.size] = 1
        assert np.sum(boxes, axis=0).max() == 1


def test_one_item_by_hand():
    items = np.zeros((1, 28, 28), np.uint8)
    items[0, 5:20, 10:14] = 200
    image, mask = paste_items((32, 32), items, np.array([6]), [Placement(0, 6, 2, 3, 28)],
                               threshold=20)
    expect = np.zeros((32, 32), np.int64)
    expect[2 + 5:2 + 20, 3 + 10:3 + 14] = 7
    np.testing.assert_array_equal(mask, expect)
    np.testing.assert_array_equal(image, np.where(expect > 0, 200, 0))


def test_fashion_mnist_canvases():
    fashion_mnist_or_skip("test")                       # never downloaded in a test
    try:
        d = SegmentationCanvases("test", size=64, length=8, seed=0)
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST not available: {err}")
    images, masks = d.arrays()
    assert images.shape == masks.shape == (8, 64, 64) and images.dtype == np.uint8
    assert masks.max() < len(SEG_CLASSES) == 11 and (masks > 0).mean() > 0.05


# --------------------------------------------------------------------- training

def test_scores_by_hand():
    truth = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    conf = confusion_matrix(pred, truth, 4)
    assert conf[0, 0] == 2 and conf[0, 1] == 1 and conf[2, 0] == 1 and conf.sum() == 8
    s = segmentation_scores(conf)
    assert s["pixel_accuracy"] == 6 / 8
    # IoU: class 0: 2 / (3 + 3 - 2) = 0.5; class 1: 2 / (2 + 3 - 2); class 2: 2 / 3; class 3 absent
    assert s["iou"][:3] == [0.5, round(2 / 3, 4), round(2 / 3, 4)] and s["iou"][3] is None
    assert s["mean_iou"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)


def test_tiny_unet_overfits_four_canvases():
    images, masks = dataset(size=24, scale=(0.6, 0.8), seed=2).batch(range(4))
    assert (masks == 0).mean() < 0.7                        # all-background would score < 0.7
    model = unet(widths=((8,), (16,)), num_classes=4, seed=2)
    history = fit_segmentation(model, (images, masks), epochs=150, batch_size=4, lr=1e-2,
                               seed=0, progress=False)
    assert len(history) == 150 and history[-1]["loss"] < history[0]["loss"]
    scores = evaluate_segmentation(model, (images, masks))
    assert scores["pixel_accuracy"] >= 0.95, scores
    np.testing.assert_array_equal(predict_masks(model, images).shape, masks.shape)


def test_training_resumes_exactly(tmp_path):
    data = dataset(size=16, length=8, scale=(0.5, 0.5))
    ckpt = str(tmp_path / "seg.ckpt.npz")
    kw = dict(epochs=3, batch_size=4, lr=5e-3, seed=0, progress=False)
    whole = segnet(widths=TINY, num_classes=4)
    fit_segmentation(whole, data, **kw)
    part = segnet(widths=TINY, num_classes=4)
    fit_segmentation(part, data, checkpoint=ckpt, stop_after=2, **kw)
    part = segnet(widths=TINY, num_classes=4)
    fit_segmentation(part, data, checkpoint=ckpt, resume=True, **kw)
    for (k, a), b in zip(whole.state_dict().items(), part.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_encoder_starts_from_fashion_net_convs():
    clf = fashion_net(seed=7)
    model = segnet(pretrained_encoder=clf)
    assert model.transferred == [f"encoder.features.{i}" for i in (0, 2, 5, 7)]
    for i in (0, 2, 5, 7):
        np.testing.assert_array_equal(model.encoder.features[i].weight.data,
                                      clf.features[i].weight.data)
        np.testing.assert_array_equal(model.encoder.features[i].bias.data,
                                      clf.features[i].bias.data)
    fresh = segnet()
    np.testing.assert_array_equal(model.encoder.features[10].weight.data,    # beyond the trunk
                                  fresh.encoder.features[10].weight.data)
    # with BatchNorm after each conv the convs are still paired in order
    normed = unet(pretrained_encoder=clf, norm=True)
    assert normed.transferred == [f"encoder.features.{i}" for i in (0, 3, 7, 10)]
    np.testing.assert_array_equal(normed.encoder.features[10].weight.data,
                                  clf.features[7].weight.data)
    with pytest.raises(ValueError, match=r"first conv of SmallVGG.features has weight shape "
                                         r"\(16, 1, 3, 3\), the encoder's first conv \(8, 1, 3, 3\)"):
        init_encoder_from(segnet(widths=((8,),)), fashion_net())


# --------------------------------------------------------------------- bad input

def test_canvas_not_divisible_by_the_total_stride():
    model = unet()
    with pytest.raises(ValueError, match=r"60×64, not divisible by the encoder's total stride 8 "
                                         r"\(2×2 max-pools encoder.features.4, "
                                         r"encoder.features.9, encoder.features.14\)"):
        model(Tensor(np.zeros((1, 1, 60, 64), np.float32)))


def test_mismatched_skip_names_the_layer_and_shapes():
    model = unet(widths=TINY, num_classes=3)
    model(Tensor(np.zeros((1, 1, 8, 8), np.float32)))           # names every layer
    block = model.decoder[0]
    wrong = Skip(Tensor(np.zeros((1, 3, 5, 4), np.float32)), None, "encoder.features.5")
    with pytest.raises(ValueError, match=r"UpBlock 'decoder.0': cannot concatenate the skip from "
                                         r"'encoder.features.5' of shape \(1, 3, 5, 4\) to the "
                                         r"up-sampled features of shape \(1, 2, 4, 4\)"):
        block(Tensor(np.zeros((1, 3, 2, 2), np.float32)), wrong)
    with pytest.raises(ValueError, match="expects 1 input channels"):
        model(Tensor(np.zeros((1, 3, 8, 8), np.float32)))


def test_dataset_bad_arguments():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        SegmentationCanvases("val", source=toy_items())
    with pytest.raises(ValueError, match=r"items up to 36 px, which do not fit a canvas of \(32, 32\)"):
        SegmentationCanvases("train", size=32, source=toy_items())
    with pytest.raises(IndexError, match="out of range"):
        dataset().canvas(20)


def test_figures():
    from minicnn.plot.segmentation import class_heatmaps_figure, colorize, segmentation_figure
    images, masks = dataset(size=32, scale=(0.6, 1.0)).batch(range(2))
    fig = segmentation_figure(images, masks, {"a": masks, "b": np.zeros_like(masks)},
                              SEG_CLASSES[:4], scores={"a": "mIoU 1.00"})
    assert len(fig.axes) == 2 * 4
    assert colorize(np.array([[0, 1]]), 4)[0, 0].tolist() == [0, 0, 0]
    fig = class_heatmaps_figure(images[0], np.random.default_rng(0).random((3, 2, 2)), (4, 4),
                                (28, 28), ["x", "y", "z"])
    assert len(fig.axes) == 4 + 1                  # input, three class maps, one colour bar
    with pytest.raises(ValueError, match="prediction 'a' has shape"):
        segmentation_figure(images, masks, {"a": masks[:1]}, SEG_CLASSES[:4])


@pytest.mark.parametrize("name", ["segnet", "segnet_transposed", "unet"])
def test_shipped_segmentation_weights_reach_the_target(name):
    """The shipped weights score mean IoU >= 0.60 on the whole synthetic test split, the
    score their manifest records."""
    import json
    meta_path = os.path.join(ROOT, "weights", f"{name}.json")
    if not os.path.exists(meta_path):
        pytest.skip(f"weights/{name}.npz not present (minicnn train {name})")
    meta = json.load(open(meta_path))
    recipe = meta["provenance"]["recipe"]
    from minicnn.models import segmentation
    model = getattr(segmentation, name)(pretrained=True)
    fashion_mnist_or_skip("test")
    try:
        test = SegmentationCanvases("test", recipe["size"], length=recipe["test_length"],
                                    seed=recipe["seed"])
    except FileNotFoundError as err:
        pytest.skip(f"Fashion-MNIST not available: {err}")
    with no_grad():
        scores = evaluate_segmentation(model, test)
    assert scores["mean_iou"] >= 0.60, scores
    assert abs(scores["mean_iou"] - meta["accuracy"]["value"]) < 1e-4, (scores, meta["accuracy"])

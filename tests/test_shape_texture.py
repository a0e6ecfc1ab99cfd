"""Shape vs texture: the harness counts decisions exactly, and on synthetic cue-conflict
images (a square or a disk filled with horizontal or vertical stripes) a model that sees
only shapes scores shape bias 1 and a model that sees only stripes scores 0."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.techniques.shape_texture import (category_scores, cue_conflict_images,
                                              decision_fractions, shape_bias)

SIZE = 16


def masks():
    ii, jj = np.mgrid[:SIZE, :SIZE]
    square = ((ii >= 3) & (ii < 13) & (jj >= 3) & (jj < 13)).astype(float)
    disk = (((ii - 7.5) ** 2 + (jj - 7.5) ** 2) <= 6.5 ** 2).astype(float)
    stripes = [(ii % 2).astype(float), (jj % 2).astype(float)]     # horizontal, vertical
    return [square, disk], stripes


def cue_conflict_set():
    """Shape class s (0 square, 1 disk) filled with texture class t (0 horizontal, 1 vertical
    stripes), s ≠ t: (images (2, 1, H, W), shape labels, texture labels)."""
    shapes, stripes = masks()
    imgs = [shapes[0] * stripes[1], shapes[1] * stripes[0]]
    return np.stack(imgs)[:, None], np.array([0, 1]), np.array([1, 0])


def texture_model():
    """Energy of vertical differences (horizontal stripes) and of horizontal differences."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(2, 2)).double()
    w = np.zeros((2, 1, 3, 3))
    w[0, 0, 0, 1], w[0, 0, 1, 1] = -1, 1           # row differences: horizontal stripes
    w[1, 0, 1, 0], w[1, 0, 1, 1] = -1, 1           # column differences: vertical stripes
    net[0].weight.data, net[0].bias.data = w, np.zeros(2)
    net[4].weight.data, net[4].bias.data = 10 * np.eye(2), np.zeros(2)
    return net


def shape_model():
    """4×4 average pooling erases period-2 stripes; on what is left, the correlation with
    each shape's template (zero-mean, unit-norm: blind to the stripes' halving of intensity)."""
    net = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear((SIZE // 4) ** 2, 2)).double()
    shapes, _ = masks()
    pooled = [s.reshape(SIZE // 4, 4, SIZE // 4, 4).mean(axis=(1, 3)).ravel() for s in shapes]
    templates = [(p - p.mean()) / np.linalg.norm(p - p.mean()) for p in pooled]
    net[2].weight.data, net[2].bias.data = 10 * np.stack(templates), np.zeros(2)
    return net


def test_decision_fractions_by_hand():
    scores = np.array([[5, 1, 0], [0, 5, 1], [1, 0, 5], [3, 4, 0]], float)
    shape, texture = [0, 0, 0, 0], [1, 1, 1, 1]
    r = decision_fractions(scores, shape, texture)
    assert (r["shape"], r["texture"], r["neither"], r["n"]) == (1, 2, 1, 4)
    assert r["shape_fraction"] == pytest.approx(1 / 3)
    assert list(r["decisions"]) == ["shape", "texture", "neither", "texture"]
    pair = decision_fractions(scores, shape, texture, decision="pair")
    assert (pair["shape"], pair["texture"], pair["neither"]) == (2, 2, 0)


@pytest.mark.parametrize("decision", ["top1", "pair"])
def test_a_shape_model_has_shape_bias_1_and_a_texture_model_0(decision):
    x, s, t = cue_conflict_set()
    clean_shapes, stripes = masks()
    # sanity: on cue-free images each model classifies its own cue
    assert mc.to_numpy(shape_model()(mc.tensor(np.stack(clean_shapes)[:, None])).data
                       ).argmax(1).tolist() == [0, 1]
    assert mc.to_numpy(texture_model()(mc.tensor(np.stack(stripes)[:, None])).data
                       ).argmax(1).tolist() == [0, 1]
    assert shape_bias(shape_model(), x, s, t, decision=decision)["shape_fraction"] == 1.0
    assert shape_bias(texture_model(), x, s, t, decision=decision)["shape_fraction"] == 0.0


def test_category_scores_average_the_probabilities_of_each_category():
    p = np.array([[0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_allclose(category_scores(p, [1, 0, 1, -1]), [[0.2, 0.2]])
    r = decision_fractions(category_scores(p, [1, 0, 1, -1]) + [[0, 1e-9]], [0], [1])
    assert r["texture"] == 1


def test_cue_conflict_images_come_from_style_transfer_with_their_labels():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1, rng=rng), nn.ReLU()).eval()
    shapes, stripes = masks()
    contents = np.stack(shapes)[:, None].astype(np.float32)
    styles = np.stack(stripes[::-1])[:, None].astype(np.float32)
    cc = cue_conflict_images(net, contents, styles, [0, 1], [1, 0], content_layer="3",
                             style_layers=["1", "3"], steps=5, bounds=None)
    assert cc["images"].shape == contents.shape
    assert cc["shape_labels"].tolist() == [0, 1] and cc["texture_labels"].tolist() == [1, 0]
    assert not np.allclose(cc["images"], contents)


def test_bad_inputs_give_clear_errors():
    x, s, t = cue_conflict_set()
    with pytest.raises(ValueError, match="shape label equals texture label"):
        shape_bias(shape_model(), x, [0, 1], [0, 0])
    with pytest.raises(ValueError, match="one shape and one texture label per image"):
        shape_bias(shape_model(), x, [0], [1])
    with pytest.raises(ValueError, match="decision must be"):
        shape_bias(shape_model(), x, s, t, decision="vote")
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        decision_fractions(np.zeros((1, 2)), [0], [2])
    with pytest.raises(ValueError, match="class_map needs one category per class"):
        category_scores(np.zeros((1, 3)), [0, 1])


@pytest.mark.slow
def test_cue_conflict_on_imagenet_photos_with_squeezenet_and_efficientnet():
    """End to end on real weights: cue-conflict images made with SqueezeNet's style transfer,
    judged by SqueezeNet and by EfficientNet-Lite0 (a second, independent network). Prints
    the fractions (a measurement) and checks the bookkeeping."""
    from tests.conftest import shared_data
    weights = shared_data("imagenet", "squeezenet1_1.pth")
    files = mc.data.list_imagenet_samples(shared_data("imagenet", "samples"))
    sq = mc.models.registry.load_pretrained(mc.models.squeezenet1_1(), weights).eval()
    judges = {"squeezenet1_1": sq}
    try:
        judges["efficientnet_lite0"] = mc.models.efficientnet_lite0(pretrained=True).eval()
    except (FileNotFoundError, ImportError):
        pass
    pp = sq.preprocess
    pick = np.random.default_rng(0).choice(len(files), 6, replace=False)
    load = [pp.preprocess(mc.images.load_image(files[i][0], size=(112, 112))) for i in pick]
    labels = [files[i][1] for i in pick]
    cc = cue_conflict_images(sq, np.concatenate(load[:3]), np.concatenate(load[3:]),
                             labels[:3], labels[3:], content_layer="features.7",
                             style_layers=["features.1", "features.4", "features.7"], steps=15,
                             style_weight=10.0)
    pixels = np.clip(pp.deprocess(cc["images"]), 0, 255)
    for name, model in judges.items():
        r = shape_bias(model, model.preprocess.preprocess(pixels), labels[:3], labels[3:],
                       decision="pair")
        print(f"\n{name}: shape {r['shape']}, texture {r['texture']} of {r['n']}")
        assert r["shape"] + r["texture"] == r["n"] == 3 and r["neither"] == 0

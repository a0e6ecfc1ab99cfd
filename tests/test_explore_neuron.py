"""One unit's arithmetic in the explorer (CNN Explainer's view): every number is the
engine's — the window times the kernel, summed with the bias, is the captured activation."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.explore import build, create_app
from minicnn.explore.neuron import arithmetic


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield build("fashion_net", installed=False, start=False)


def captured(ex, x, layer):
    with mc.no_grad(), mc.capture(ex.model, [layer]) as acts:
        ex.model(mc.tensor(x[None].astype(np.float32)))
    return mc.to_numpy(acts[layer].data[0]).astype(np.float64)


@pytest.mark.parametrize("layer,unit,i,j", [("features.0", 3, 0, 0),      # in the padding
                                             ("features.0", 9, 14, 20),
                                             ("features.2", 5, 10, 7),
                                             ("features.7", 30, 13, 0)])
def test_a_conv_units_window_times_its_kernel_plus_bias_is_its_activation(explorer, layer,
                                                                         unit, i, j):
    x = explorer.add_input(explorer.samples[4]).x
    r = arithmetic(explorer.model, x, layer, unit, i, j)
    y = captured(explorer, x, layer)[unit, i, j]
    assert r["matches"] and r["engine"] == pytest.approx(y, rel=1e-6, abs=1e-7)
    # the parts add up: Σ products per channel, Σ channels + bias = total = the engine's
    prods = np.asarray(r["products"])
    np.testing.assert_allclose(prods.sum(axis=(1, 2)), r["channel_sums"][:len(prods)],
                               rtol=1e-12)
    np.testing.assert_allclose(prods, np.asarray(r["windows"]) * np.asarray(r["weights"]),
                               rtol=1e-12)
    assert np.sum(r["channel_sums"]) + r["bias"] == pytest.approx(r["total"], rel=1e-12)
    assert abs(r["total"] - y) <= 1e-5 * max(1.0, abs(y))
    w = mc.to_numpy(explorer.model.get_submodule(layer).weight.data)
    np.testing.assert_array_equal(np.asarray(r["weights"]), w[unit, :len(prods)])
    # the ReLU after it: max(y, 0), the captured value of the next layer
    relu = captured(explorer, x, r["relu"]["layer"])[unit, i, j]
    assert r["relu"]["value"] == pytest.approx(max(y, 0.0), abs=1e-7) == pytest.approx(relu)
    assert r["code"] == "ops/conv.py: Conv2d.forward" and "conv2d_naive" in r["here"]


def test_the_window_of_a_corner_unit_reaches_into_the_zero_padding(explorer):
    x = explorer.add_input(explorer.samples[0]).x
    r = arithmetic(explorer.model, x, "features.0", 0, 0, 0)
    assert r["origin"] == [-1, -1]
    assert np.all(np.asarray(r["windows"])[:, 0, :] == 0)     # the padded row is zeros


def test_a_max_pool_unit_is_its_windows_maximum_and_names_the_switch(explorer):
    x = explorer.add_input(explorer.samples[6]).x
    layer = "features.4"
    inp = captured(explorer, x, "features.3")
    out = captured(explorer, x, layer)
    _, idx = mc.ops.max_pool2d(mc.tensor(inp[None].astype(np.float32)), 2, 2,
                               return_indices=True)
    idx = mc.to_numpy(idx)[0]
    for c, i, j in [(2, 3, 4), (11, 6, 0), (15, 13, 13)]:
        r = arithmetic(explorer.model, x, layer, c, i, j)
        assert r["total"] == out[c, i, j] == r["engine"] and r["matches"]
        assert inp[c][tuple(r["winner"])] == out[c, i, j]
        if np.sum(np.asarray(r["window"]) == r["total"]) == 1:   # no tie: the op's switch
            assert r["switch"] == idx[c, i, j]


def test_a_linear_unit_is_the_sum_of_its_products_and_bias(explorer):
    x = explorer.add_input(explorer.samples[2]).x
    r = arithmetic(explorer.model, x, "classifier.3", 2)
    logits = captured(explorer, x, "classifier.3")
    assert r["engine"] == pytest.approx(logits[2], rel=1e-6) and r["matches"]
    shown = sum(t["product"] for t in r["top"])
    assert shown + r["rest"] + r["bias"] == pytest.approx(r["total"], rel=1e-9, abs=1e-9)
    mags = [abs(t["product"]) for t in r["top"]]
    assert mags == sorted(mags, reverse=True) and r["inputs"] == 128


def test_the_route_defaults_to_the_strongest_position_and_refuses_bad_ones(explorer):
    client = create_app(explorer).test_client()
    key = client.post("/api/input", json={"sample": 7}).json["input"]
    r = client.get(f"/api/arithmetic?input={key}&layer=features.2&unit=4").json
    act = explorer.get_input(key).acts["features.2"][4]
    assert (r["i"], r["j"]) == np.unravel_index(np.argmax(act), act.shape)
    assert r["engine"] == pytest.approx(act.max(), rel=1e-6)
    bad = client.get(f"/api/arithmetic?input={key}&layer=features.2&unit=4&i=28&j=0")
    assert bad.status_code == 400 and "outside" in bad.json["error"]
    relu = client.get(f"/api/arithmetic?input={key}&layer=features.1&unit=0")
    assert relu.status_code == 400 and "is a ReLU" in relu.json["error"]


def test_a_students_own_network_is_explored_by_module_and_function(tmp_path, monkeypatch):
    """``--model mymodule:make_net``: a network defined in a few lines, explored and its
    arithmetic checked against the engine like the shipped ones."""
    (tmp_path / "mynet.py").write_text(
        "import minicnn as mc\n"
        "from minicnn.models.small import FASHION_PREPROCESS\n"
        "def make_net():\n"
        "    net = mc.nn.Sequential(mc.nn.Conv2d(1, 4, 5, padding=2, rng=1), mc.nn.ReLU(),\n"
        "                           mc.nn.MaxPool2d(2), mc.nn.Flatten(), mc.nn.Linear(784, 10, rng=2))\n"
        "    net.preprocess = FASHION_PREPROCESS\n"
        "    return net\n"
        "def not_a_net():\n"
        "    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    ex = build("mynet:make_net", installed=False, start=False)
    assert ex.name == "make_net" and ex.layers == ["0", "1", "2", "4"]
    x = ex.add_input(ex.samples[1]).x
    from minicnn.explore.neuron import backward_arithmetic
    g = engine_backward(ex, x, 7, "guided", ["0", "2", "4"])
    for layer, unit, i, j in [("0", 2, 13, 0), ("2", 3, 5, 6), ("4", 7, 0, 0)]:
        r = arithmetic(ex.model, x, layer, unit, i, j)
        assert r["matches"], layer
        b = backward_arithmetic(ex.model, x, layer, unit, i, j, 7, "guided")  # and backward
        at = (unit, i, j) if layer != "4" else (unit,)
        assert b["through"] == pytest.approx(g[layer][at], rel=1e-5, abs=1e-12), layer
    with pytest.raises(ValueError, match="not an nn.Module"):
        build("mynet:not_a_net", installed=False, start=False)
    with pytest.raises(ValueError, match="cannot import 'nope'"):
        build("mynet:nope", installed=False, start=False)


@pytest.mark.parametrize("rule", ["standard", "deconvnet", "guided"])
def test_the_backward_at_a_conv_unit_is_the_engines_under_each_rule(explorer, rule):
    """What arrives at the ReLU, what the rule lets through (its formula at this unit), and
    this unit's share of the gradient at its input window: g · w[f] (the transposed conv)."""
    from minicnn.explore.neuron import backward_arithmetic
    x = explorer.add_input(explorer.samples[5]).x
    layer, unit, target = "features.2", 6, 5
    y = captured(explorer, x, layer)
    i, j = np.unravel_index(np.argmax(y[unit]), y[unit].shape)   # a unit that is on
    b = backward_arithmetic(explorer.model, x, layer, unit, int(i), int(j), target, rule)
    with mc.capture(explorer.model, [layer, "features.3"]) as acts:
        xt = mc.tensor(x[None].astype(np.float32), requires_grad=True)
        explorer.model(xt)[0, target].backward(relu_rule=rule)
    g = mc.to_numpy(acts["features.3"].grad)[0, unit, i, j]
    through = mc.to_numpy(acts[layer].grad)[0, unit, i, j]
    assert b["g"] == pytest.approx(g, abs=1e-12) and b["through"] == pytest.approx(through)
    passes = {"standard": b["y"] > 0, "deconvnet": g > 0, "guided": b["y"] > 0 and g > 0}[rule]
    assert b["passes"] == passes and through == pytest.approx(g if passes else 0.0, abs=1e-12)
    # this unit alone sends g·w[f] to its window: a conv's backward from a one-hot upstream
    w = mc.to_numpy(explorer.model.get_submodule(layer).weight.data)
    bias = mc.to_numpy(explorer.model.get_submodule(layer).bias.data)
    inp = mc.tensor(captured(explorer, x, "features.1")[None].astype(np.float64),
                    requires_grad=True)
    out = mc.ops.conv2d(inp, mc.tensor(w.astype(np.float64)), mc.tensor(bias.astype(np.float64)),
                        padding=1)
    up = np.zeros(out.shape)
    up[0, unit, i, j] = through
    out.backward(up)
    window = np.pad(mc.to_numpy(inp.grad)[0], ((0, 0), (1, 1), (1, 1)))[:, i:i + 3, j:j + 3]
    np.testing.assert_allclose(np.asarray(b["to_input"]), window, rtol=1e-6, atol=1e-12)


def engine_backward(ex, x, target, rule, names):
    """The engine's own backward pass: the gradient of the class score at each named layer's
    output (the first axis dropped)."""
    with mc.capture(ex.model, names) as acts:
        xt = mc.tensor(x[None].astype(np.float32), requires_grad=True)
        ex.model(xt)[0, target].backward(relu_rule=rule)
    return {n: mc.to_numpy(acts[n].grad)[0].astype(np.float64) for n in names}


@pytest.mark.parametrize("rule", ["standard", "deconvnet", "guided"])
def test_the_backward_at_a_max_pool_unit_sends_its_whole_gradient_to_the_switch(explorer, rule):
    """A max-pool unit's gradient goes to the window's winner and nothing to the rest: with
    2×2 windows of stride 2 no two windows share a pixel, so the engine's gradient at the pool's
    input window is exactly this unit's routing; the switch is the flat index h·W + w the
    deconvnet's unpooling uses (the op's own indices)."""
    from minicnn.explore.neuron import backward_arithmetic
    x = explorer.add_input(explorer.samples[5]).x
    layer, target = "features.4", 5
    g = engine_backward(explorer, x, target, rule, [layer, "features.3"])
    inp = captured(explorer, x, "features.3")
    _, idx = mc.ops.max_pool2d(mc.tensor(inp[None].astype(np.float32)), 2, 2,
                               return_indices=True)
    idx = mc.to_numpy(idx)[0]
    seen = 0
    for c, i, j in [(3, 5, 6), (0, 2, 9), (11, 7, 7), (15, 10, 3)]:
        b = backward_arithmetic(explorer.model, x, layer, c, i, j, target, rule)
        # two runs of the same float32 backward: equal up to a BLAS's summation order
        assert b["kind"] == "pool" and b["through"] == b["g"]
        assert b["through"] == pytest.approx(g[layer][c, i, j], rel=1e-6, abs=1e-12)
        window = g["features.3"][c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        np.testing.assert_allclose(np.asarray(b["to_input"]), window, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(np.asarray(b["engine_input"]), window, rtol=1e-6,
                                   atol=1e-12)
        routed = np.asarray(b["to_input"])                   # one nonzero: at the winner
        assert np.count_nonzero(routed) <= 1 and routed.sum() == b["through"]
        assert b["origin"] == [2 * i, 2 * j] and b["switch"] == idx[c, i, j]
        assert divmod(b["switch"], 28) == tuple(b["winner"])
        seen += b["through"] != 0
    assert seen >= 2           # the routing is seen carrying a gradient, not only zeros


@pytest.mark.parametrize("rule", ["standard", "deconvnet", "guided"])
def test_the_backward_at_a_linear_unit_is_the_engines_under_each_rule(explorer, rule):
    """A hidden linear unit followed by a ReLU: the gradient arriving at the ReLU and what the
    rule lets through equal the engine's; the gradient at each listed input, Wᵀg summed over
    every unit, equals the engine's gradient at the layer's input (float32 sums of 128 terms:
    within 1e-5 of the largest), and this unit's part of it is W[k, d] · through."""
    from minicnn.explore.neuron import backward_arithmetic
    x = explorer.add_input(explorer.samples[2]).x
    layer, target = "classifier.0", 3
    g = engine_backward(explorer, x, target, rule, ["features.9", layer, "classifier.1"])
    y = captured(explorer, x, layer)
    w = mc.to_numpy(explorer.model.get_submodule(layer).weight.data).astype(np.float64)
    dx = g["features.9"].reshape(-1)
    units = [int(np.argmax(y)), int(np.argmin(y))]         # one on, one off
    for k in units:
        b = backward_arithmetic(explorer.model, x, layer, k, 0, 0, target, rule)
        assert b["g"] == pytest.approx(g["classifier.1"][k], rel=1e-6, abs=1e-12)
        assert b["through"] == pytest.approx(g[layer][k], rel=1e-6, abs=1e-12)
        active = y[k] > 0
        assert b["y_active"] == active
        passes = {"standard": active, "deconvnet": b["g"] > 0,
                  "guided": active and b["g"] > 0}[rule]
        assert b["passes"] == passes and b["through"] == (b["g"] if passes else 0.0)
        assert len(b["top"]) == 12 and b["inputs"] == 1568
        scale = np.abs(dx).max()
        for t in b["top"]:
            assert t["engine"] == pytest.approx(dx[t["d"]], rel=1e-6, abs=1e-7 * scale)
            assert abs(t["total"] - dx[t["d"]]) <= 1e-5 * scale
            assert t["share"] == pytest.approx(w[k, t["d"]] * b["through"], rel=1e-12, abs=0)
        mags = [abs(t["total"]) for t in b["top"]]
        assert mags == sorted(mags, reverse=True) and mags[0] == pytest.approx(scale, rel=1e-5)


def test_the_backward_at_the_class_score_starts_with_one_at_the_target(explorer):
    """The last linear layer has no ReLU after it: the gradient arriving at the class score is
    1 at the target and 0 at every other class, and its inputs receive the target's row of W."""
    from minicnn.explore.neuron import backward_arithmetic
    x = explorer.add_input(explorer.samples[1]).x
    w = mc.to_numpy(explorer.model.get_submodule("classifier.3").weight.data)
    for unit, expect in [(4, 1.0), (6, 0.0)]:
        b = backward_arithmetic(explorer.model, x, "classifier.3", unit, 0, 0, 4, "standard")
        assert b["last"] and b["g"] == b["through"] == expect and "relu" not in b
        assert b["g_out_nonzero"] == 1
        for t in b["top"]:
            assert t["total"] == t["engine"] == w[4, t["d"]]
            assert t["share"] == w[unit, t["d"]] * expect


def test_the_route_sends_the_previous_layers_maps_the_window_is_drawn_on(explorer):
    """The page draws the window on the maps it came from: one picture per input channel
    shown (a pool unit: its own channel), at the input's size, with the window's corner."""
    import base64
    import io
    from PIL import Image
    client = create_app(explorer).test_client()
    key = client.post("/api/input", json={"sample": 3}).json["input"]
    r = client.get(f"/api/arithmetic?input={key}&layer=features.5&unit=2&i=4&j=9").json
    assert r["input_layer"] == "features.4" and r["map_shape"] == [14, 14]
    assert len(r["maps"]) == 16 and r["origin"] == [3, 8]
    inp = explorer.get_input(key).acts["features.4"]
    png = Image.open(io.BytesIO(base64.b64decode(r["maps"][7].split(",", 1)[1])))
    m = np.asarray(png, np.float64)
    lo, hi = inp[7].min(), inp[7].max()           # its own min black, max white
    assert m.shape == (14, 14) and hi > lo
    np.testing.assert_allclose(m, (inp[7] - lo) / (hi - lo) * 255, atol=0.5 + 1e-3)
    pool = client.get(f"/api/arithmetic?input={key}&layer=features.4&unit=5&i=1&j=2").json
    assert len(pool["maps"]) == 1 and pool["origin"] == [2, 4] and pool["map_shape"] == [28, 28]
    dense = client.get(f"/api/arithmetic?input={key}&layer=classifier.3&unit=1").json
    assert "maps" not in dense


def test_a_shown_relu_is_explained_by_the_conv_before_it(explorer):
    """GET /api/arithmetic/layers: a ReLU's units are the conv's before it, a conv explains
    itself; a name not in the model is a 400 listing the shown layers."""
    client = create_app(explorer).test_client()
    key = client.post("/api/input", json={"sample": 3}).json["input"]
    relu = client.get(f"/api/arithmetic/layers?input={key}&layer=features.3").json["layers"]
    assert relu == [{"name": "features.2", "type": "Conv2d", "shape": [16, 28, 28]}]
    conv = client.get(f"/api/arithmetic/layers?input={key}&layer=features.5").json["layers"]
    assert [c["name"] for c in conv] == ["features.5"]
    x = explorer.get_input(key).x
    bad = client.get(f"/api/arithmetic?input={key}&layer=features.99&unit=0")
    assert bad.status_code == 400 and "features.5" in bad.json["error"]
    r = client.get(f"/api/arithmetic?input={key}&layer=features.2&unit=1").json
    y = captured(explorer, x, "features.2")[1]
    assert (r["i"], r["j"]) == np.unravel_index(np.argmax(y), y.shape)


def test_every_view_names_code_that_exists_with_the_formula_its_docstring_writes():
    """The page and the code read as one lesson: each "file: object" a view names imports
    from minicnn, and the formula shown is written in that object's docstring (a method's:
    its class's), spaces aside; the loops a conv view points to exist too."""
    import importlib
    from minicnn.explore.neuron import CODE
    for key, (code, formula, here) in CODE.items():
        path, _, obj = code.partition(": ")
        module = importlib.import_module("minicnn." + path[:-3].replace("/", "."))
        found = module
        for part in obj.split("."):
            found = getattr(found, part)                      # AttributeError: a wrong name
        owner = getattr(module, obj.split(".")[0])
        docs = " ".join(d for d in (found.__doc__, owner.__doc__) if d)
        assert " ".join(formula.split()) in " ".join(docs.split()), (key, formula)
    from minicnn.ops.conv import conv2d_naive
    assert callable(conv2d_naive) and "conv2d_naive" in CODE["conv"][2]


@pytest.mark.parametrize("rule", ["standard", "deconvnet", "guided"])
def test_cifar_net_at_full_size_every_kind_of_unit_is_the_engines(tmp_path, monkeypatch, rule):
    """cifar_net's deepest conv sums 128 input channels (16 drawn, every one summed), its last
    pool and its 2048-input linear layer: forward equal to the captured activations, backward
    (the gradient let through at the unit's output) equal to the engine's, under each rule."""
    from minicnn.explore.neuron import backward_arithmetic
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    ex = build("cifar_net", installed=False, start=False)
    x = ex.add_input(ex.samples[3]).x
    names = ["features.12", "features.14", "classifier.0"]
    g = engine_backward(ex, x, 1, rule, names)
    for layer, unit, i, j in [("features.12", 100, 3, 5), ("features.14", 77, 2, 1),
                              ("classifier.0", 200, 0, 0)]:
        r = arithmetic(ex.model, x, layer, unit, i, j)
        y = captured(ex, x, layer)
        at = (unit, i, j) if y.ndim == 3 else (unit,)
        assert r["matches"] and abs(r["total"] - y[at]) <= 1e-5 * max(1.0, abs(y[at])), layer
        if layer == "features.12":
            assert r["in_channels"] == 128 and len(r["windows"]) == 16
            assert len(r["channel_sums"]) == 128
        b = backward_arithmetic(ex.model, x, layer, unit, i, j, 1, rule)
        assert b["through"] == pytest.approx(g[layer][at], rel=1e-5, abs=1e-12), layer


def test_overlapping_pool_windows_add_up_their_switches_to_the_engines_gradient(tmp_path,
                                                                               monkeypatch):
    """3×3 windows at stride 2 share pixels (AlexNet's pools): each unit's view sends its
    whole gradient to its own switch only, and the views of every unit, added up where their
    switches land, are the engine's gradient at the pool's input — the scatter-add of
    MaxPool2d.backward, computed unit by unit."""
    from minicnn.explore.neuron import backward_arithmetic
    (tmp_path / "overlap.py").write_text(
        "import minicnn as mc\n"
        "from minicnn.models.small import FASHION_PREPROCESS\n"
        "def make_net():\n"
        "    net = mc.nn.Sequential(mc.nn.Conv2d(1, 2, 3, stride=3, rng=3), mc.nn.ReLU(),\n"
        "                           mc.nn.MaxPool2d(3, 2), mc.nn.Flatten(), mc.nn.Linear(32, 4, rng=4))\n"
        "    net.preprocess = FASHION_PREPROCESS\n"
        "    return net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "home"))
    ex = build("overlap:make_net", installed=False, start=False)
    x = ex.add_input(ex.samples[0]).x
    g = engine_backward(ex, x, 2, "standard", ["1", "2"])        # 2×9×9 -> 2×4×4
    routed = np.zeros_like(g["1"])
    shared = 0
    for c in range(2):
        for i in range(4):
            for j in range(4):
                b = backward_arithmetic(ex.model, x, "2", c, i, j, 2, "standard")
                share = np.asarray(b["to_input"])
                assert share.shape == (3, 3) and np.count_nonzero(share) <= 1
                r, q = b["winner"]
                assert share[r - 2 * i, q - 2 * j] == b["through"]
                assert b["through"] == pytest.approx(g["2"][c, i, j], rel=1e-6, abs=1e-12)
                routed[c, r, q] += b["through"]
                shared += routed[c, r, q] != b["through"]
    np.testing.assert_allclose(routed, g["1"], rtol=1e-6, atol=1e-9)
    assert shared >= 1           # some pixel won two windows: the sum, not one share, is seen

"""Point 4 of the explorer's second version, in headless Chromium on EfficientNet-Lite0 (a
network without max-pool): the page starts on the rule that shows something and says why
the deconvnet rule does not, and a shipped sample is the same picture as its photo uploaded.
Marker ``browser``; skips where the EfficientNet-Lite0 weights are not installed."""
import pytest

from minicnn.data.samples import photo_samples
from tests.test_explore_browser import Page
from tests.test_explore_restart import browser, start_server, stop  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def efficientnet(tmp_path):
    from minicnn.models import pretrained
    try:
        pretrained.find_weights("efficientnet_lite0")
    except (FileNotFoundError, KeyError, ValueError) as err:
        pytest.skip(f"EfficientNet-Lite0 weights are not installed: {err}")
    proc, port = start_server(tmp_path, model="efficientnet_lite0")
    yield f"http://127.0.0.1:{port}/"
    stop(proc)


def test_a_net_without_max_pool_starts_on_guided_and_a_sample_equals_its_photo(efficientnet,
                                                                              browser):
    p = Page(browser, efficientnet)
    assert p.page.eval_on_selector("#rule", "e => e.value") == "guided"
    assert "shows little here" in p.page.inner_text("#rule option[value='deconvnet']")
    p.click_unit("_blocks.9", 3)
    p.page.select_option("#rule", "deconvnet")
    p.page.wait_for_function("document.getElementById('unit-projection').dataset.key === "
                             "'_blocks.9/3/deconvnet'", timeout=60000)
    assert "no max-pool" in p.page.inner_text("#rule-note")
    p.page.select_option("#rule", "guided")
    p.page.wait_for_selector("#rule-note", state="hidden", timeout=60000)
    sample = p.page.inner_text("#prediction")               # the page opened on sample 0
    before = p.page.evaluate("state.input")
    p.page.set_input_files("#upload", str(photo_samples()[0]))
    p.page.wait_for_function(f"state.input !== {before!r}", timeout=60000)
    assert p.page.inner_text("#prediction") == sample       # resized and cropped once, alike
    status = p.page.inner_text("#unit-top-status")
    assert "give --images DIR" in status or "computing" in status
    assert p.errors == []


def test_the_arithmetic_of_efficientnets_first_layers_on_the_page_is_the_engines(efficientnet,
                                                                                browser,
                                                                                tmp_path,
                                                                                monkeypatch):
    """A shown ReLU6 (``_stem_relu``) is computed in the stem conv: its window (TensorFlow SAME
    padding), batch norm and ReLU6 on the page equal the engine's; a block (``_blocks.0``)
    offers the convs inside it, the depthwise one first, whose numbers follow the mouse; the
    backward through ReLU6 and the batch norm is the engine's."""
    import numpy as np

    import minicnn as mc
    from minicnn.explore import build
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path / "engine"))
    ex = build("efficientnet_lite0", start=False)
    x = ex.add_input(ex.samples[0]).x                        # the page opens on sample 0
    names = ["_conv_stem", "_bn0", "_stem_relu", "_blocks.0._depthwise_conv"]
    with mc.no_grad(), mc.capture(ex.model, names) as acts:
        ex.model(mc.tensor(x[None].astype(np.float32)))
    out = {n: mc.to_numpy(acts[n].data[0]).astype(np.float64) for n in names}

    def shown(selector):
        return float(p.page.eval_on_selector(selector, "e => e.dataset.value"))

    def close(a, b):                   # float32 sums of at most 27 products, a batch norm
        return abs(a - b) <= 1e-5 * max(1.0, abs(b))

    p = Page(browser, efficientnet)
    p.click_unit("_stem_relu", 7)
    i, j = np.unravel_index(np.argmax(out["_conv_stem"][7]), (112, 112))
    p.page.wait_for_function("document.getElementById('arith').dataset.key === "
                             f"'_conv_stem/7/{i}/{j}'", timeout=60000)
    assert p.page.inner_text("#arith-layers button") == "_conv_stem (Conv2dSame)"
    assert "TensorFlow SAME padding (top 0, bottom 1, left 0, right 1)" in \
        p.page.inner_text("#arith")
    assert close(shown("#arith-total"), out["_conv_stem"][7, i, j])
    assert close(shown("#arith-bn"), out["_bn0"][7, i, j])
    assert close(shown("#arith-relu"), out["_stem_relu"][7, i, j])
    assert "ops/activation.py: relu6: min(max(x, 0), 6)" in p.page.inner_text("#arith")
    assert "ops/norm.py: BatchNorm.forward" in p.page.inner_text("#arith")

    p.click_unit("_blocks.0", 5)
    buttons = p.page.eval_on_selector_all("#arith-layers button", "bs => bs.map(b => "
                                          "b.dataset.layer)")
    assert buttons == ["_blocks.0._depthwise_conv", "_blocks.0._project_conv"]
    conv = "_blocks.0._depthwise_conv"
    box = p.page.locator("#unit-activation").bounding_box()
    p.page.mouse.move(box["x"] + box["width"] * 60.5 / 112, box["y"] + box["height"] * 40.5 / 112)
    p.page.wait_for_function(f"document.getElementById('arith').dataset.key === '{conv}/5/40/60'",
                             timeout=60000)
    assert close(shown("#arith-total"), out[conv][5, 40, 60])
    assert "groups 32 (1 input channel per filter)" in p.page.inner_text("#arith")
    assert p.page.eval_on_selector_all("#arith-maps .window", "bs => bs.map(b => "
                                       "b.dataset.origin)") == ["39,59"]
    rule = p.page.eval_on_selector("#rule", "e => e.value")
    target = int(p.page.eval_on_selector("#class-select", "e => e.value"))
    with mc.capture(ex.model, [conv]) as acts:
        ex.model(mc.tensor(x[None].astype(np.float32), requires_grad=True))[0, target] \
            .backward(relu_rule=rule)
    g = float(mc.to_numpy(acts[conv].grad)[0, 5, 40, 60])
    assert abs(shown("#arith-through") - g) <= 1e-5 * max(1e-6, abs(g))


def test_explain_on_efficientnet_draws_every_map_and_says_its_copies_and_patches(efficientnet,
                                                                                 browser):
    """"Explain" on an ImageNet model: the four class maps at the input size and the
    gradients are drawn, SmoothGrad's and occlusion's captions say how many noisy copies and
    patch places they took (few, so it answers within seconds), no console error."""
    p = Page(browser, efficientnet)
    p.page.click("#class-button")
    for method in ("saliency", "smoothgrad", "gradcam", "occlusion"):
        p.page.wait_for_function(f"document.getElementById('map-{method}').naturalWidth "
                                 f"=== 224", timeout=120_000)
    p.page.wait_for_function("document.getElementById('caption-occlusion').textContent"
                             ".includes('places')", timeout=60_000)
    assert p.page.inner_text("#caption-smoothgrad") == \
        "SmoothGrad: mean |∂y/∂x| over 4 noisy copies"
    assert p.page.inner_text("#caption-occlusion") == \
        "occlusion: share of p lost (3×3 places of a grey 76-px patch)"
    assert p.page.inner_text("#caption-saliency") == "saliency |∂y/∂x|"
    p.page.wait_for_selector("#gradients figure", timeout=60_000)
    assert p.errors == []

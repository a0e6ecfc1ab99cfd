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

"""``minicnn explore`` in headless Chromium (Playwright): the real server, the real page.

The fixture starts ``python -m minicnn explore --port 0`` on 127.0.0.1 and reads the address
it prints; the browser tests click through the page as a user does. Marker ``browser``
(run by .ci/run); they skip only when Chromium or Playwright is not installed.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minicnn.data.samples import fashion_samples

pytestmark = pytest.mark.browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
# the browser logs every non-2xx answer; the bad-input tests expect these 400s
HTTP_400 = "the server responded with a status of 400"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # one BLAS thread: on a busy two-core machine OpenBLAS' own threads, competing with the
    # top-9 pass and the Train tab's thread, make every step several times slower
    env = dict(os.environ, MINICNN_HOME=str(tmp_path_factory.mktemp("home")),
               OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "minicnn", "explore", "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert m, f"the server printed no address: {line!r} (exit code {proc.poll()})"
        yield m.group(0)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def playwright():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    yield b
    b.close()


class Page:
    """A page with its console errors collected."""

    def __init__(self, browser, url):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(url)
        self.page.wait_for_selector("#samples img")
        self.page.wait_for_function("state.input !== null")       # it opens on a sample

    def pick_sample(self, k):
        before = self.page.evaluate("state.input")
        self.page.click(f"#samples img[data-sample='{k}']")
        self.page.wait_for_function(f"state.input !== {before!r}")
        self.page.wait_for_selector("#prediction li")
        return self.page.inner_text("#prediction li:first-child")

    def src(self, selector):
        return self.page.eval_on_selector(selector, "e => e.getAttribute('src') || ''")

    def loaded(self, selector, timeout=30_000):
        """True once the image has arrived and decoded (a new src takes a moment to load,
        longer while the server computes its top-9 tables); a timeout fails the test."""
        self.page.wait_for_function(
            "s => { const e = document.querySelector(s); return e && e.complete && "
            "e.naturalWidth > 0; }", arg=selector, timeout=timeout)
        return True

    def click_unit(self, layer, unit):
        """Click the tile of channel ``unit`` in ``layer``'s mosaic; wait for its projection."""
        before = self.src("#unit-projection")
        self.page.eval_on_selector(f"figure.layer[data-layer='{layer}'] img", """(img, k) => {
            const g = img.geometry, r = img.getBoundingClientRect(), s = r.width / img.naturalWidth;
            const col = k % g.cols, row = Math.floor(k / g.cols);
            const x = r.left + (g.gap + col * (g.tile[1] + g.gap) + g.tile[1] / 2) * s;
            const y = r.top + (g.gap + row * (g.tile[0] + g.gap) + g.tile[0] / 2) * s;
            img.dispatchEvent(new MouseEvent('click', {clientX: x, clientY: y, bubbles: true}));
        }""", unit)
        self.page.wait_for_function(
            f"document.getElementById('unit-projection').getAttribute('src') !== {before!r}")
        assert self.page.inner_text("#unit-title") == f"Unit: {layer}, channel {unit}"
        return self.src("#unit-projection")


def test_sample_unit_projection_rule_and_upload(server, browser, tmp_path):
    p = Page(browser, server)
    assert p.pick_sample(7).startswith("Sneaker")
    a = p.click_unit("features.3", 2)
    assert p.loaded("#unit-projection") and p.loaded("#unit-activation")
    b = p.click_unit("features.3", 5)
    assert p.loaded("#unit-projection") and a != b
    # the top-9 tables are computed once per model in the background: over the 10,000 test
    # images where Fashion-MNIST is installed that takes about 40 s on two cores
    p.page.wait_for_function("document.querySelectorAll('#unit-top img').length === 9",
                             timeout=300_000)
    before = p.src("#unit-projection")
    p.page.select_option("#rule", "guided")
    p.page.wait_for_function(
        f"document.getElementById('unit-projection').getAttribute('src') !== {before!r}")
    assert "guided rule" in p.page.inner_text("#projection-caption")
    assert p.loaded("#unit-projection")

    image, label = fashion_samples()[1]                     # a trouser, uploaded as a file
    Image.fromarray(np.kron(image, np.ones((4, 4), np.uint8))).save(tmp_path / "trouser.png")
    before = p.src("#input-image")
    p.page.set_input_files("#upload", str(tmp_path / "trouser.png"))
    p.page.wait_for_function(f"document.getElementById('input-image').src !== {before!r}")
    assert p.page.inner_text("#prediction li:first-child").startswith("Trouser")

    p.page.click("#class-button")
    for method in ("saliency", "smoothgrad", "gradcam", "occlusion"):
        p.page.wait_for_function(f"document.getElementById('map-{method}').naturalWidth > 0")
    p.page.wait_for_selector("#gradients figure")
    assert p.page.locator("#weights figure").count() >= 4
    assert p.page.is_hidden("#error")
    assert p.errors == []


def test_bad_input_shows_a_clear_error_and_the_page_keeps_working(server, browser, tmp_path):
    p = Page(browser, server)
    (tmp_path / "notes.png").write_bytes(b"these are notes, not a picture")
    p.page.set_input_files("#upload", str(tmp_path / "notes.png"))
    p.page.wait_for_selector("#error:not([hidden])")
    assert "upload 'notes.png': not an image file" in p.page.inner_text("#error")
    Image.new("L", (7000, 6000)).save(tmp_path / "huge.png")
    p.page.set_input_files("#upload", str(tmp_path / "huge.png"))
    p.page.wait_for_function("document.getElementById('error').textContent.includes('too large')")

    assert p.pick_sample(9).startswith("Ankle boot")       # still serving
    assert p.page.is_hidden("#error")
    p.page.evaluate("api(`/api/unit?input=${state.input}&layer=features.3&unit=16`).catch(() => {})")
    p.page.wait_for_selector("#error:not([hidden])")
    assert "unit 16 is out of range for layer 'features.3': it has 16 channels" in \
        p.page.inner_text("#error")
    p.click_unit("features.3", 15)
    assert p.loaded("#unit-projection")
    assert [e for e in p.errors if HTTP_400 not in e] == []


def test_two_tabs_clicking_at_once_each_get_their_unit(server, browser):
    tabs = [Page(browser, server), Page(browser, server)]
    assert tabs[0].pick_sample(0).startswith("T-shirt")
    assert tabs[1].pick_sample(8).startswith("Bag")
    for t, unit in zip(tabs, (3, 4)):                       # both clicks in flight together
        t.page.evaluate(f"selectUnit('features.6', {unit})")
    for t, unit in zip(tabs, (3, 4)):
        t.page.wait_for_function("document.getElementById('unit-projection').dataset.key === "
                                 f"'features.6/{unit}/deconvnet'")
        assert t.loaded("#unit-projection")
    assert tabs[0].src("#unit-projection") != tabs[1].src("#unit-projection")
    assert tabs[0].errors == tabs[1].errors == []


def test_webcam_frames_from_chromiums_fake_camera_update_the_predictions(server, playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                   args=FLAGS + FAKE_CAMERA)
    try:
        p = Page(b, server)
        p.page.context.grant_permissions(["camera"])
        p.page.click("#webcam")
        p.page.wait_for_function("state.frames >= 2", timeout=60000)
        mosaics = "document.querySelectorAll('#layers img')"
        first = p.src("#input-image")
        first_maps = p.page.evaluate(f"[...{mosaics}].map(i => i.src)")
        # the fake camera's picture moves: a later frame differs, and so do its activations
        p.page.wait_for_function(f"state.frames >= 4 && "
                                 f"document.getElementById('input-image').src !== {first!r}",
                                 timeout=60000)
        # (a later frame's activations differ; the 8-bit mosaics of two nearly equal frames
        # can be equal, so wait for one that is not)
        p.page.wait_for_function(f"JSON.stringify([...{mosaics}].map(i => i.src)) !== "
                                 f"{json.dumps(json.dumps(first_maps))}", timeout=60000)
        later = p.page.inner_text("#prediction")
        assert re.match(r"\w", later) and later.count("%") == 5
        assert re.search(r"webcam: \d+ frames, [\d.]+ frames/s", p.page.inner_text("#frames"))
        p.page.click("#webcam")
        assert p.errors == []
    finally:
        b.close()


# ---------------------------------------------------------------- the second version's points
def test_a_new_input_redraws_the_unit_panel_and_the_class_maps_and_one_tile_is_selected(
        server, browser):
    """Point 1: every view that depends on the input follows it; one selection at a time."""
    p = Page(browser, server)
    p.pick_sample(0)
    p.click_unit("features.3", 2)
    p.page.click("#class-button")
    p.page.wait_for_function("document.getElementById('map-occlusion').dataset.input === "
                             "state.input")
    old = p.page.evaluate("state.input")
    views = ["unit-projection", "unit-activation", "map-saliency", "map-gradcam",
             "map-occlusion"]
    before = {v: p.src(f"#{v}") for v in views}
    p.pick_sample(7)
    new = p.page.evaluate("state.input")
    for v in views:                                     # each view now shows the new input
        p.page.wait_for_function(f"document.getElementById('{v}').dataset.input === {new!r}")
        assert p.src(f"#{v}") != before[v], v
    assert old != new
    p.click_unit("features.6", 3)
    p.click_unit("features.0", 1)
    assert p.page.locator("#layers .mark").count() == 1     # not one mark per layer clicked
    assert p.page.locator("figure.layer[data-layer='features.0'] .mark").count() == 1
    assert p.errors == []


def test_a_webcam_in_one_tab_keeps_the_other_tab_working_and_its_unit_view_live(
        server, browser, playwright):
    """Point 2: per-tab inputs (a webcam sends far more frames than a tab keeps); and the
    webcam tab's selected unit is redrawn on every frame (DeepVis' live view)."""
    b = Page(browser, server)
    b.pick_sample(8)
    b.click_unit("features.6", 4)
    kept = b.page.evaluate("state.input")
    cam = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=FLAGS + FAKE_CAMERA)
    try:
        a = Page(cam, server)
        a.page.context.grant_permissions(["camera"])
        a.click_unit("features.3", 1)
        a.page.click("#webcam")
        a.page.wait_for_function("state.frames >= 3", timeout=60000)
        seen = set()
        for _ in range(3):                        # the unit's views follow the frames
            n = a.page.evaluate("state.frames")
            a.page.wait_for_function(f"state.frames > {n}", timeout=60000)
            a.page.wait_for_function("document.getElementById('unit-projection').dataset.input"
                                     " === state.input", timeout=60000)
            seen.add(a.src("#unit-projection"))
        assert len(seen) >= 2                     # the fake camera's picture moves
        a.page.wait_for_function("state.frames >= 12", timeout=120000)   # > 8 kept per tab
        # tab B still works on its own input: a click, the rule, the class maps
        assert b.click_unit("features.6", 5) and b.page.evaluate("state.input") == kept
        b.page.click("#class-button")
        b.page.wait_for_function("document.getElementById('map-gradcam').dataset.input === "
                                 f"{kept!r}")
        assert b.page.inner_text("#unit-title") == "Unit: features.6, channel 5"
        a.page.click("#webcam")
        assert a.errors == []
    finally:
        cam.close()
    assert b.page.is_hidden("#error") and b.errors == []


def test_the_first_page_opens_on_a_sample_with_names_labels_and_colour_bars(server, browser,
                                                                             tmp_path):
    """Point 5: nothing empty or broken on arrival; layers say their type and shape; output
    units their class; a dense unit its value; every map its colour bar."""
    p = Page(browser, server)
    assert p.loaded("#input-image") and p.page.is_visible("#unit-hint")
    assert p.page.locator("#prediction li").count() == 5
    caption = p.page.inner_text("figure.layer[data-layer='features.0'] figcaption")
    assert caption == "features.0 · Conv2d · 16×28×28"
    last = p.page.evaluate("state.info.layers[state.info.layers.length - 1].name")
    assert "Sneaker" in p.page.inner_text(f"figure.layer[data-layer='{last}'] .labels")
    p.page.evaluate(f"selectUnit({last!r}, 7)")
    p.page.wait_for_function("document.getElementById('unit-value').textContent.includes("
                             "'Sneaker')")
    assert p.page.inner_text("#unit-title").endswith("(Sneaker)")
    assert p.page.is_hidden("#unit-hint") and p.page.is_visible("#unit-value")
    # a dense unit: no broken image where its map would be
    assert p.page.evaluate("!document.getElementById('unit-activation').hasAttribute('src')")
    p.click_unit("features.3", 2)
    p.page.click("#class-button")
    p.page.wait_for_function("document.querySelectorAll('#class-maps .colourbar').length === 4")
    for bar in ("bar-activation", "bar-projection", "bar-gradcam", "bar-occlusion"):
        assert p.page.locator(f"#{bar} .colourbar .strip").count() == 1, bar
    assert p.page.inner_text("#bar-occlusion .hi") == "1.0"
    Image.new("1", (10000, 10000)).save(tmp_path / "big.png")
    p.page.set_input_files("#upload", str(tmp_path / "big.png"))
    p.page.wait_for_function("document.getElementById('error').textContent.includes('too large')")
    assert "bomb" not in p.page.inner_text("#error").lower()
    assert [e for e in p.errors if HTTP_400 not in e] == []


def test_the_top9_patches_come_with_the_units_projection_on_each(server, browser):
    """Point 6 (DeepVis): the deconv of the selected unit on each of its top-9 images."""
    p = Page(browser, server)
    p.click_unit("features.6", 7)
    p.page.wait_for_function("document.querySelectorAll('#unit-top-projections img').length"
                             " === 9", timeout=300_000)
    srcs = p.page.evaluate("[...document.querySelectorAll('#unit-top-projections img')]"
                           ".map(i => i.src)")
    assert len(set(srcs)) > 1                     # nine images, nine projections
    assert "deconvnet rule" in p.page.inner_text("#top-projection-caption")
    assert p.errors == []


def test_the_train_tab_learns_live(server, browser):
    """Point 6 (ConvNetJS): fashion_net from scratch in the server; over 100 steps the loss
    falls and the first-layer filters change, and the page draws it as it goes."""
    p = Page(browser, server)
    p.page.click("#tabs button[data-tab='train']")
    p.page.wait_for_function("document.querySelectorAll('#train-model option').length > 0")
    p.page.fill("#train-batch", "32")
    p.page.click("#train-start")
    p.page.wait_for_function("Number(document.getElementById('train-status').dataset.step) "
                             ">= 5", timeout=60000)
    p.page.wait_for_function("document.getElementById('train-filters').naturalWidth > 0")
    early = p.src("#train-filters")
    p.page.wait_for_function("Number(document.getElementById('train-status').dataset.step) "
                             ">= 100", timeout=240_000)
    p.page.click("#train-pause")
    p.page.wait_for_function("document.getElementById('train-status').textContent"
                             ".startsWith('paused')")
    p.page.wait_for_function("document.getElementById('train-filters').src !== "
                             f"{early!r}")
    loss = p.page.evaluate("train.state.last.curves.train.loss")
    assert len(loss) >= 100
    first, last = np.mean(loss[:10]), np.mean(loss[-10:])
    assert last < 0.6 * first, (first, last)      # ln 10 = 2.30 at random; about 0.7 here
    assert p.page.locator("#train-acts figure").count() >= 8
    assert p.page.locator("#train-grads figure").count() >= 8
    assert p.page.locator("#train-wrong figure").count() >= 1
    p.page.click("#train-save")
    p.page.wait_for_function("document.getElementById('train-saved').textContent"
                             ".includes('fashion_net-step')")
    assert p.errors == []


def test_a_units_arithmetic_on_the_page_is_the_engines_and_follows_the_mouse(server, browser):
    """One neuron's arithmetic: the window·kernel sum on the page is the activation the engine
    computes (here recomputed in the test), at the strongest position, then where the mouse
    hovers over the activation map."""
    import minicnn as mc
    model = mc.models.fashion_net(pretrained=True)
    image, _ = fashion_samples()[0]                        # the page opens on sample 0
    with mc.no_grad(), mc.capture(model, ["features.2"]) as acts:
        model(mc.tensor(model.preprocess.preprocess(image)))
    act = mc.to_numpy(acts["features.2"].data[0, 5]).astype(np.float64)
    p = Page(browser, server)
    p.click_unit("features.2", 5)
    i, j = np.unravel_index(np.argmax(act), act.shape)
    p.page.wait_for_function(f"document.getElementById('arith').dataset.key === "
                             f"'features.2/5/{i}/{j}'")
    total = float(p.page.eval_on_selector("#arith-total", "e => e.dataset.value"))
    assert abs(total - act[i, j]) <= 1e-5 * max(1.0, abs(act[i, j]))
    assert "ops/conv.py: conv2d_naive" in p.page.inner_text("#arith")
    assert "= the engine's value" in p.page.inner_text("#arith")
    box = p.page.locator("#unit-activation").bounding_box()
    p.page.mouse.move(box["x"] + box["width"] * 3.5 / 28, box["y"] + box["height"] * 20.5 / 28)
    p.page.wait_for_function("document.getElementById('arith').dataset.key === "
                             "'features.2/5/20/3'")
    total = float(p.page.eval_on_selector("#arith-total", "e => e.dataset.value"))
    assert abs(total - act[20, 3]) <= 1e-5 * max(1.0, abs(act[20, 3]))
    # the window moved on the previous layer's 16 maps: 3×3 at (19, 2) (padding 1)
    boxes = p.page.eval_on_selector_all("#arith-maps .window", "bs => bs.map(b => "
                                        "[b.dataset.origin, b.dataset.size])")
    assert boxes == [["19,2", "3,3"]] * 16
    img = p.page.locator("#arith-maps .map").first.bounding_box()
    win = p.page.locator("#arith-maps .window").first.bounding_box()
    assert abs(win["x"] - img["x"] - 2 / 28 * img["width"]) < 1.5       # drawn where it says
    assert abs(win["y"] - img["y"] - 19 / 28 * img["height"]) < 1.5
    here = p.page.locator("#arith-here").bounding_box()      # and marked on the output map
    assert abs(here["x"] - box["x"] - 3 / 28 * box["width"]) < 1.5
    assert abs(here["y"] - box["y"] - 20 / 28 * box["height"]) < 1.5
    p.page.mouse.move(box["x"] + box["width"] * 11.5 / 28, box["y"] + box["height"] * 6.5 / 28)
    p.page.wait_for_function("document.getElementById('arith').dataset.key === "
                             "'features.2/5/6/11'")
    total = float(p.page.eval_on_selector("#arith-total", "e => e.dataset.value"))
    assert abs(total - act[6, 11]) <= 1e-5 * max(1.0, abs(act[6, 11]))
    assert p.page.eval_on_selector("#arith-maps .window", "b => b.dataset.origin") == "5,10"
    p.page.mouse.move(box["x"] + box["width"] * 3.5 / 28, box["y"] + box["height"] * 20.5 / 28)
    p.page.wait_for_function("document.getElementById('arith').dataset.key === "
                             "'features.2/5/20/3'")
    # the backward at the same unit, for the class picked, changes in place with the rule
    target = int(p.page.eval_on_selector("#class-select", "e => e.value"))
    for rule in ("guided", "standard", "deconvnet"):
        p.page.select_option("#rule", rule)
        p.page.wait_for_function(f"document.getElementById('arith').dataset.rule === {rule!r}")
        with mc.capture(model, ["features.2"]) as acts:
            x = mc.tensor(model.preprocess.preprocess(image), requires_grad=True)
            model(x)[0, target].backward(relu_rule=rule)
        through = float(mc.to_numpy(acts["features.2"].grad)[0, 5, 20, 3])
        shown = float(p.page.eval_on_selector("#arith-through", "e => e.dataset.value"))
        assert abs(shown - through) <= 1e-5 * max(1e-3, abs(through)), rule
    text = p.page.inner_text("#arith")
    assert "ops/conv.py: Conv2d.backward" in text and "the transposed convolution" in text
    assert "autograd.py: _deconvnet" in text                 # the rule's own function
    assert p.errors == []


def test_the_backward_at_a_pool_and_a_linear_unit_on_the_page_is_the_engines(server, browser):
    """The backward view at a max-pool unit (its whole gradient to the switch, the engine's
    gradient at the window beside it) and at a hidden linear unit (the rule at its ReLU, Wᵀg
    at the inputs receiving most): the numbers on the page are the engine's, for each rule."""
    import minicnn as mc
    model = mc.models.fashion_net(pretrained=True)
    image, _ = fashion_samples()[0]                        # the page opens on sample 0
    x = model.preprocess.preprocess(image)
    p = Page(browser, server)
    target = int(p.page.eval_on_selector("#class-select", "e => e.value"))

    def engine(rule, names):
        with mc.capture(model, names) as acts:
            model(mc.tensor(x, requires_grad=True))[0, target].backward(relu_rule=rule)
        return {n: mc.to_numpy(acts[n].grad)[0].astype(np.float64) for n in names}

    p.click_unit("features.4", 3)
    with mc.no_grad(), mc.capture(model, ["features.4"]) as acts:
        model(mc.tensor(x))
    act = mc.to_numpy(acts["features.4"].data[0, 3])
    i, j = np.unravel_index(np.argmax(act), act.shape)
    for rule in ("standard", "deconvnet", "guided"):
        p.page.select_option("#rule", rule)
        p.page.wait_for_function(f"document.getElementById('arith').dataset.rule === {rule!r}"
                                 f" && document.getElementById('arith').dataset.key === "
                                 f"'features.4/3/{i}/{j}'")
        g = engine(rule, ["features.4", "features.3"])
        shown = float(p.page.eval_on_selector("#arith-through", "e => e.dataset.value"))
        assert abs(shown - g["features.4"][3, i, j]) <= 1e-6 * max(1e-3, abs(shown)), rule
        assert "ops/pool.py: MaxPool2d.backward" in p.page.inner_text("#arith")
        assert "all of g to the switch" in p.page.inner_text("#arith")
    p.click_unit("classifier.0", 7)
    for rule in ("guided", "deconvnet", "standard"):
        p.page.select_option("#rule", rule)
        p.page.wait_for_function(f"document.getElementById('arith').dataset.rule === {rule!r}"
                                 " && document.getElementById('arith').dataset.key === "
                                 "'classifier.0/7/0/0'")
        g = engine(rule, ["classifier.0", "classifier.1", "features.9"])
        dx = g["features.9"].reshape(-1)
        shown = float(p.page.eval_on_selector("#arith-g", "e => e.dataset.value"))
        assert abs(shown - g["classifier.1"][7]) <= 1e-6 * max(1e-3, abs(shown)), rule
        rows = p.page.eval_on_selector_all("#arith-back-top tr[data-d]",
                                           "rs => rs.map(r => [+r.dataset.d, +r.dataset.total])")
        assert len(rows) == 12
        for d, total in rows:          # Wᵀg at the input, float32 sums of 128 terms
            assert abs(total - dx[d]) <= 1e-5 * np.abs(dx).max(), (rule, d)
    assert "ops/basic.py: Linear.backward" in p.page.inner_text("#arith")
    assert p.errors == []

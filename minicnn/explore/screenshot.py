"""The README's pictures of the explorer:

    python -m minicnn.explore.screenshot docs/explore.png
    python -m minicnn.explore.screenshot --train docs/explore-train.png
    python -m minicnn.explore.screenshot --neuron docs/explore-neuron.png

Serves fashion_net (shipped weights and samples only) on a free port of 127.0.0.1, opens the
page in headless Chromium with Playwright, picks a sample, clicks a unit, switches to the
guided rule, visualizes the unit, explains the predicted class, and saves the window. With
``--train``: the Train tab, fashion_net learning from scratch on Fashion-MNIST, caught
mid-training (after ``steps`` steps). With ``--neuron``: how one unit's number is computed,
forward and backward (the selected unit's panel).
"""
import sys
import threading
from contextlib import contextmanager

__all__ = ["screenshot", "train_screenshot", "neuron_screenshot"]

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


@contextmanager
def _served_page(app, chromium):
    """Serve ``app`` on a free port of 127.0.0.1 and open it in headless Chromium; yields the
    page, then stops the browser and the server."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:   # (leaving its block closes the browser)
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            yield page
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def screenshot(out, chromium="/usr/bin/chromium", sample=6, layer="features.6", unit=22):
    from .server import build, create_app
    ex = build("fashion_net")
    ex.top_images.wait()
    with _served_page(create_app(ex), chromium) as page:
        page.click(f"#samples img[data-sample='{sample}']")
        page.wait_for_selector("#prediction li")
        page.evaluate(f"selectUnit({layer!r}, {unit})")
        page.wait_for_function("document.querySelectorAll('#unit-top img').length === 9")
        page.select_option("#rule", "guided")
        page.wait_for_function("document.getElementById('unit-projection').dataset.key"
                               f" === '{layer}/{unit}/guided'")
        page.click("#neuron-button")
        page.wait_for_function("document.getElementById('unit-neuron').naturalWidth > 0",
                               timeout=120000)
        page.click("#class-button")
        page.wait_for_function("document.getElementById('map-occlusion').naturalWidth > 0")
        page.wait_for_timeout(300)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(out), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1400, "height": 1600})


def neuron_screenshot(out, chromium="/usr/bin/chromium", sample=0, layer="features.2", unit=5,
                      at=(13, 8), rule="guided"):
    """How one unit's number is computed, forward and backward: fashion_net on a shipped
    sample (the top-9 tables over the shipped samples only), conv unit ``unit`` of ``layer``
    with the mouse on position ``at`` of its activation map, the ``rule`` for the backward."""
    from .server import build, create_app
    ex = build("fashion_net", installed=False)
    with _served_page(create_app(ex), chromium) as page:
        page.wait_for_function("state.input !== null")
        page.click(f"#samples img[data-sample='{sample}']")
        page.wait_for_selector("#prediction li")
        page.select_option("#rule", rule)
        page.evaluate(f"selectUnit({layer!r}, {unit})")
        page.wait_for_function("document.getElementById('unit-activation').naturalWidth > 0")
        # the unit's panel alone, wide enough for the numbers
        page.add_style_tag(content="#unit-top-panel, #unit-hint, #neuron-button, "
                           "#neuron-figure, #unit-panel > h3:last-of-type { display: none }"
                           " #unit-panel { width: 760px; max-width: none; }")
        box = page.locator("#unit-activation").bounding_box()
        h, w = ex.shapes[layer][1:]
        page.mouse.move(box["x"] + box["width"] * (at[1] + 0.5) / w,
                        box["y"] + box["height"] * (at[0] + 0.5) / h)
        page.wait_for_function("document.getElementById('arith').dataset.key === "
                               f"'{layer}/{unit}/{at[0]}/{at[1]}' && document."
                               f"getElementById('arith').dataset.rule === {rule!r}")
        page.wait_for_timeout(300)
        page.locator("#unit-panel").screenshot(path=str(out))


def train_screenshot(out, chromium="/usr/bin/chromium", steps=300):
    """The Train tab mid-training (Fashion-MNIST must be installed)."""
    from .server import build, create_app
    app = create_app(build("fashion_net", installed=False))
    try:
        with _served_page(app, chromium) as page:
            page.wait_for_function("state.input !== null")
            page.click("#tabs button[data-tab='train']")
            page.wait_for_function("document.querySelectorAll('#train-model option').length")
            page.click("#train-start")
            page.wait_for_function("Number(document.getElementById('train-status').dataset.step)"
                                   f" >= {steps}", timeout=600_000)
            page.wait_for_timeout(1500)              # the pictures of the latest step
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out), full_page=True)
    finally:
        app.trainer.pause()                          # the training thread ends with the page


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--train"]:
        train_screenshot(args[1] if len(args) > 1 else "explore-train.png")
    elif args[:1] == ["--neuron"]:
        neuron_screenshot(args[1] if len(args) > 1 else "explore-neuron.png")
    else:
        screenshot(args[0] if args else "explore.png")

"""How fast the explorer answers: click-to-projection latency, "Explain" and webcam frames
per second.

    python -m minicnn.explore.bench [--models fashion_net,cifar_net,efficientnet_lite0]
                                    [--weights NAME=FILE] [--repeat N] [--no-browser]

In the browser (headless Chromium driven by Playwright, the real server on 127.0.0.1):

  click:    the page asks for a unit's activation and projection and has both pictures
            decoded (``showUnit`` and ``img.decode()`` timed with ``performance.now``);
  explain:  "Explain" until the four class maps and the gradients are drawn (a new class
            each time, so that nothing computed for the last one is reused); "first map":
            until the first of the maps is put on the page (they arrive one by one).

The machine's load average is printed beside each row: on a shared machine every number
grows with it. BLAS runs on one thread, as in ``minicnn explore`` (``compute.limit_blas_threads``).

Through the Flask app (no browser):

Each request goes through the Flask app (test client: routing, JSON and PNG encoding
included, no network), one at a time, as one page would send them:

  click:  GET /api/unit — one backward pass with the ReLU rule from a channel of a middle
          layer, its activation map and projection encoded as PNGs (the page shows them as
          they arrive; the browser's drawing is not timed);
  frame:  POST /api/input with a JPEG body — decode, resize, one forward pass capturing
          every display layer, the top-5 and every layer's mosaic as PNG: what each webcam
          frame costs the server (the page sends the next frame when this one is answered,
          so frames/s = 1 / this time).

Targets: a click under 0.3 s on the small nets and under 1 s on an ImageNet model, "Explain"
within 3 s on an ImageNet model; at least 5 webcam frames/s on the small nets. Medians over
``repeat`` requests after one warm-up.
"""
import argparse
import io
import os
import threading
import time

import numpy as np
from PIL import Image

__all__ = ["measure", "measure_browser", "main"]

TARGETS = {"small": (0.3, 5.0), "imagenet": (1.0, None)}          # click (s), frames/s
EXPLAIN_TARGET = {"small": None, "imagenet": 3.0}                  # s
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]

_CLICK_JS = """async ([layer, unit]) => {
  state.unit = {layer, unit};
  const t = performance.now();
  await showUnit();
  await Promise.all(["unit-projection", "unit-activation"].map((id) => $(id).src ?
                    $(id).decode() : null));
  return (performance.now() - t) / 1000;
}"""
_EXPLAIN_JS = """async (target) => {
  $("class-select").value = String(target);
  const first = [];                     // when each map's answer is put on the page
  const seen = new MutationObserver(() => { if (!first.length) first.push(performance.now()); });
  state.info.methods.forEach((m) => seen.observe($(`map-${m}`), {attributeFilter: ["src"]}));
  const t = performance.now();
  await explainClass();
  await Promise.all(state.info.methods.map((m) => $(`map-${m}`).decode()));
  const done = performance.now();
  seen.disconnect();
  return [(done - t) / 1000, ((first[0] ?? done) - t) / 1000];
}"""


def measure_browser(model, repeat=3, chromium="/usr/bin/chromium", seed=0):
    """{"click_s", "explain_s", "first_map_s", "load"} measured in headless Chromium on the
    real page (``first_map_s``: when the first class map of an Explain arrived)."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server
    from .server import build, create_app
    ex = build(model, installed=False, start=False)
    server = make_server("127.0.0.1", 0, create_app(ex), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rng = np.random.default_rng(seed)
    layer = ex.layers[len(ex.layers) // 2]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            page.wait_for_function("state.input !== null", timeout=120_000)
            clicks = [page.evaluate(_CLICK_JS, [layer, int(rng.integers(ex.shapes[layer][0]))])
                      for _ in range(repeat + 1)][1:]
            # a new class each time: a repeated Explain of one class reuses its shared pass
            explains = [page.evaluate(_EXPLAIN_JS, k + 1)
                        for k in range(max(1, repeat // 2) + 1)][1:]
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"model": ex.name, "layer": layer, "click_s": float(np.median(clicks)),
            "explain_s": float(np.median([e for e, _ in explains])),
            "first_map_s": float(np.median([f for _, f in explains])), "load": os.getloadavg()[0]}


def _jpeg(explorer, rng):
    """A textured test frame at the size the page sends (JPEG bytes)."""
    side = max(64, min(256, 2 * max(explorer.size)))
    yy, xx = np.mgrid[:side, :side] / side
    img = np.stack([np.sin(9 * xx + 3 * yy), np.cos(7 * yy), np.sin(5 * xx * yy)], -1)
    img = (127 + 100 * img + rng.normal(0, 20, img.shape)).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def measure(model, repeat=5, seed=0):
    """{"model", "layer", "click_s", "frame_s", "fps"} for a model name or a pretrained Module."""
    from .server import build, create_app
    ex = build(model, installed=False, start=False)
    client = create_app(ex).test_client()
    rng = np.random.default_rng(seed)
    frame = _jpeg(ex, rng)

    def post():
        r = client.post("/api/input", data=frame, content_type="image/jpeg")
        if r.status_code != 200:
            raise RuntimeError(f"POST /api/input: {r.json}")
        return r.json["input"]

    key = post()                                             # warm-up
    frames = []
    for _ in range(repeat):
        t = time.perf_counter()
        post()
        frames.append(time.perf_counter() - t)
    layer = ex.layers[len(ex.layers) // 2]
    n = ex.shapes[layer][0]
    clicks = []
    for i in range(repeat + 1):
        unit = int(rng.integers(n))
        t = time.perf_counter()
        r = client.get(f"/api/unit?input={key}&layer={layer}&unit={unit}&rule=guided")
        if r.status_code != 200:
            raise RuntimeError(f"GET /api/unit: {r.json}")
        if i:                                                # the first one warms up
            clicks.append(time.perf_counter() - t)
    frame_s = float(np.median(frames))
    return {"model": ex.name, "layer": layer, "click_s": float(np.median(clicks)),
            "frame_s": frame_s, "fps": 1.0 / frame_s}


def _model(name, weights):
    """A model name, or a Module built from a weight file given as NAME=FILE."""
    if name not in weights:
        return name
    from ..data import imagenet_classes
    from ..models import pretrained, registry
    net = pretrained.load_pretrained(registry.get_model(name), weights[name])
    net.labels = imagenet_classes()
    net.arch = name
    return net.eval()


def _browser_table(args, weights):
    print(f"in Chromium ({args.chromium}), the page's own requests:")
    print(f"{'model':<20} {'clicked layer':<22} {'click (s)':>10} {'target':>7} "
          f"{'explain (s)':>12} {'target':>7} {'first map (s)':>14} {'load avg':>9}")
    for name in args.models.split(","):
        try:
            r = measure_browser(_model(name, weights), args.repeat, args.chromium)
        except (FileNotFoundError, KeyError) as err:
            print(f"{name:<20} skipped: {str(err).splitlines()[0]}")
            continue
        kind = "small" if name in ("fashion_net", "cifar_net") else "imagenet"
        e_t = EXPLAIN_TARGET[kind]
        print(f"{r['model']:<20} {r['layer']:<22} {r['click_s']:>10.3f} "
              f"{'<' + str(TARGETS[kind][0]):>7} {r['explain_s']:>12.2f} "
              f"{'<' + str(e_t) if e_t else '—':>7} {r['first_map_s']:>14.2f} "
              f"{r['load']:>9.1f}", flush=True)
    print()
    print("through the Flask app (no browser):")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="fashion_net,cifar_net,efficientnet_lite0")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                   help="weights of an ImageNet model from a file (e.g. squeezenet1_1=PATH.pth)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-browser", action="store_true", help="only the Flask-app measures")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args(argv)
    weights = dict(w.split("=", 1) for w in args.weights)
    from .compute import limit_blas_threads
    threads = limit_blas_threads()                     # as `minicnn explore` runs
    print(f"BLAS threads: {threads or 'unknown (pip install threadpoolctl)'}, as `minicnn "
          f"explore` runs; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if not args.no_browser:
        _browser_table(args, weights)
    print(f"{'model':<20} {'clicked layer':<22} {'click (s)':>10} {'target':>7} "
          f"{'frame (s)':>10} {'frames/s':>9} {'target':>7}")
    for name in args.models.split(","):
        try:
            r = measure(_model(name, weights), args.repeat)
        except (FileNotFoundError, KeyError) as err:
            print(f"{name:<20} skipped: {str(err).splitlines()[0]}")
            continue
        click_t, fps_t = TARGETS["small" if name in ("fashion_net", "cifar_net") else "imagenet"]
        print(f"{r['model']:<20} {r['layer']:<22} {r['click_s']:>10.3f} {'<' + str(click_t):>7} "
              f"{r['frame_s']:>10.3f} {r['fps']:>9.1f} {'>=' + str(fps_t) if fps_t else '—':>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Point 3 of the explorer's second version, in headless Chromium: slow work shows a busy
sign, and a server that stops is waited for with backoff behind a visible notice, after
which the page goes on where it was (its input sent again). Marker ``browser``."""
import os
import re
import subprocess
import sys
import time

import pytest

from tests.test_explore_browser import CHROMIUM, FLAGS, ROOT, Page

pytestmark = pytest.mark.browser

# the browser logs each refused connection and each non-2xx answer while the server is down
# what Chromium logs while the server is down: a network error for each try (a refused
# connection, an empty response or a reset for a request the server was answering when it
# stopped: "net::ERR_..."), and a 410 for an input the new server never had
EXPECTED = ("net::ERR_", "status of 410")


def start_server(home, port=0, model="fashion_net"):
    env = dict(os.environ, MINICNN_HOME=str(home), OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "minicnn", "explore", "--port", str(port),
                             "--model", model],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not m:
        proc.terminate()
        proc.wait(30)
        raise AssertionError(f"the server printed no address: {line!r}")
    return proc, int(m.group(1))


def stop(proc):
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_a_slow_map_shows_a_busy_sign_until_it_arrives(browser, tmp_path):
    proc, port = start_server(tmp_path)
    try:
        p = Page.__new__(Page)
        p.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        p.errors = []
        p.page.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
        # every class map takes a second longer than it does: as on a big network
        p.page.add_init_script("""{ const f = window.fetch;
            window.fetch = async (url, o) => { if (String(url).includes('/api/class'))
                await new Promise((r) => setTimeout(r, 1000)); return f(url, o); }; }""")
        p.page.goto(f"http://127.0.0.1:{port}/")
        p.page.wait_for_function("state.input !== null")
        p.page.click("#class-button")
        p.page.wait_for_selector("#class-maps figure.busy", timeout=5000)
        assert p.page.locator("#class-maps figure.busy").count() == 4
        p.page.wait_for_function("document.getElementById('map-occlusion').naturalWidth > 0")
        p.page.wait_for_function("document.querySelectorAll('#class-maps .busy').length === 0")
        assert p.errors == []
    finally:
        stop(proc)


def test_a_stopped_server_is_retried_with_backoff_and_the_page_goes_on(browser, tmp_path):
    proc, port = start_server(tmp_path)
    try:
        p = Page(browser, f"http://127.0.0.1:{port}/")
        p.click_unit("features.3", 2)
        old_input = p.page.evaluate("state.input")
        requests = []
        p.page.on("request", lambda r: requests.append(time.monotonic()))
        stop(proc)
        # a click meets no one (not awaited here: it waits for the server to come back)
        p.page.evaluate("() => { selectUnit('features.3', 4).catch(() => {}); }")
        p.page.wait_for_selector("#down:not([hidden])", timeout=10000)
        assert "server stopped answering" in p.page.inner_text("#down")
        t0 = time.monotonic()
        time.sleep(5)
        n = sum(t > t0 for t in requests)
        # backoff 0.5, 1, 2, 4 s: a handful of tries in 5 s, not a storm (it was 268 in 3.5 s)
        assert n <= 6, n
        proc, _ = start_server(tmp_path, port)
        p.page.wait_for_selector("#down", state="hidden", timeout=60000)
        # the click that waited is answered, on the input sent again (the new server had none)
        p.page.wait_for_function("document.getElementById('unit-projection').dataset.key === "
                                 "'features.3/4/deconvnet'", timeout=30000)
        assert p.page.evaluate("state.input") != old_input
        assert p.page.evaluate("document.getElementById('unit-projection').dataset.input") \
            == p.page.evaluate("state.input")
        assert p.page.is_hidden("#error")
        assert [e for e in p.errors if not any(x in e for x in EXPECTED)] == []
    finally:
        stop(proc)

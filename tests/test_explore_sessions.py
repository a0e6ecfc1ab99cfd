"""The explorer keeps inputs per tab, bounded and expiring; and what the page is told about
layers, rules, colour scales and images too large (Flask's test client, no browser)."""
import io

import numpy as np
import pytest
from PIL import Image

import minicnn as mc
from minicnn.explore import build, create_app, render
from minicnn.explore.compute import default_rule
from minicnn.explore.sessions import InputGone, Sessions


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Inp:
    def __init__(self, key):
        self.key = key


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        yield build("fashion_net", installed=False, start=False)


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def test_one_tabs_many_inputs_never_evict_another_tabs_input():
    store = Sessions(per_session=3, max_sessions=4)
    store.add("tab-b", Inp("b1"))
    for k in range(50):                                # a webcam in tab A
        store.add("tab-a", Inp(f"a{k}"))
    assert store.get("tab-b", "b1").key == "b1"
    assert store.counts() == {"tab-a": 3, "tab-b": 1}  # A keeps only its last 3
    with pytest.raises(InputGone, match="no longer kept"):
        store.get("tab-a", "a0")
    with pytest.raises(InputGone):                     # a tab cannot read another's input
        store.get("tab-a", "b1")


def test_sessions_are_bounded_in_number_and_expire_when_idle():
    clock = Clock()
    store = Sessions(per_session=2, max_sessions=3, expiry=60, clock=clock)
    for k in range(5):
        clock.t += 1
        store.add(f"t{k}", Inp(f"i{k}"))
    assert list(store.counts()) == ["t2", "t3", "t4"]  # the idlest dropped first
    clock.t += 30
    store.get("t2", "i2")                              # t2 used: it stays
    clock.t += 45                                      # t3, t4 idle 75 s > 60 s
    assert store.counts() == {"t2": 1}
    assert sum(store.counts().values()) <= 3 * 2


def test_a_malformed_session_id_is_a_clear_error():
    with pytest.raises(ValueError, match="session id"):
        Sessions().add("../etc", Inp("x"))


def test_two_tabs_through_the_app_keep_their_own_inputs(client):
    a, b = {"X-Minicnn-Session": "tab-a"}, {"X-Minicnn-Session": "tab-b"}
    kb = client.post("/api/input", json={"sample": 1}, headers=b).json["input"]
    for _ in range(20):                                # more than a tab keeps
        ka = client.post("/api/input", json={"sample": 7}, headers=a).json["input"]
    r = client.get(f"/api/unit?input={kb}&layer=features.3&unit=2", headers=b)
    assert r.status_code == 200 and r.json["input"] == kb
    r = client.get(f"/api/unit?input={kb}&layer=features.3&unit=2", headers=a)
    assert r.status_code == 410 and r.json["gone"]     # B's input is not A's
    assert client.get(f"/api/unit?input={ka}&layer=features.3&unit=2",
                      headers=a).status_code == 200
    r = client.get(f"/api/unit?input={ka}&layer=features.3&unit=2",
                   headers={"X-Minicnn-Session": "no/slash"})
    assert r.status_code == 400 and "session id" in r.json["error"]


def test_layers_carry_their_type_and_output_units_their_class(client, explorer):
    info = client.get("/api/info").json
    kinds = {layer["name"]: layer["type"] for layer in info["layers"]}
    assert kinds["features.0"] == "Conv2d" and kinds["features.1"] == "ReLU"
    assert kinds["features.4"] == "MaxPool2d" and kinds[explorer.layers[-1]] == "Linear"
    key = client.post("/api/input", json={"sample": 7}).json["input"]
    out = client.get(f"/api/unit?input={key}&layer={explorer.layers[-1]}&unit=7").json
    assert out["label"] == "Sneaker"
    # a dense unit has no map: its value instead, the logit the model computed
    assert "activation" not in out
    np.testing.assert_allclose(out["value"], explorer.get_input(key).logits[7], rtol=1e-6)


def test_the_default_rule_is_guided_where_there_is_no_max_pool(explorer):
    assert default_rule(explorer.model) == ("deconvnet", {})
    net = mc.nn.Sequential(mc.nn.Conv2d(1, 2, 3), mc.nn.ReLU(), mc.nn.Conv2d(2, 2, 3))
    rule, notes = default_rule(net)
    assert rule == "guided" and "no max-pool" in notes["deconvnet"]


def test_colour_bars_give_the_scale_each_map_is_drawn_with(client, explorer):
    key = client.post("/api/input", json={"sample": 3}).json["input"]
    out = client.get(f"/api/unit?input={key}&layer=features.3&unit=4").json
    bar = out["activation_bar"]
    act = explorer.get_input(key).acts["features.3"][4]
    heat = mc.techniques.gradcam.bilinear_resize(act.astype(np.float64), explorer.size)
    # the top of the bar is the 99th percentile the overlay is scaled by, below the maximum
    assert bar["kind"] == "jet" and bar["lo"] == 0
    np.testing.assert_allclose(bar["hi"], np.percentile(np.abs(heat), 99), rtol=1e-9)
    assert out["projection_bar"]["kind"] == "signed"
    assert out["projection_bar"]["lo"] == -out["projection_bar"]["hi"] < 0
    for method, kind in (("gradcam", "jet"), ("occlusion", "jet"), ("saliency", "grey")):
        r = client.get(f"/api/class?input={key}&target=3&method={method}").json
        assert r["bar"]["kind"] == kind and r["bar"]["hi"] > 0, method
    assert render.colour_bar("jet", 2.0, "x") == {"kind": "jet", "lo": 0.0, "hi": 2.0,
                                                   "label": "x"}


def test_an_image_beyond_pillows_bomb_limit_gets_the_explorers_own_message(client):
    img = Image.new("1", (10000, 10000))               # 100 MP: Pillow would warn "bomb"
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    r = client.post("/api/input", data=buf.getvalue(), content_type="image/png")
    assert r.status_code == 400
    assert "image of 10000×10000 pixels is too large" in r.json["error"]
    assert "bomb" not in r.json["error"].lower()


def test_a_sample_is_fitted_once_so_it_equals_its_source_image(explorer, client):
    view = client.post("/api/input", json={"sample": 2}).json
    assert np.array_equal(explorer.get_input(view["input"]).pixels, explorer.samples[2])
    assert np.array_equal(explorer.fit(explorer.samples[2]), explorer.samples[2])

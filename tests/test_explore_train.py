"""The explorer's Train tab on the server side (``explore.train.Trainer`` and /api/train) and
the top-9 projections: what the page shows is what the engine computes."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.explore import build, create_app
from minicnn.explore.train import Trainer
from minicnn.techniques.gradients import input_gradient

try:
    mc.data.load_fashion_mnist("test", download=False)
    HAVE_FASHION = True
except (OSError, ValueError):
    HAVE_FASHION = False
needs_fashion = pytest.mark.skipif(not HAVE_FASHION, reason="Fashion-MNIST is not installed "
                                   "(apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        ex = build("fashion_net", installed=False)
        ex.top_images.wait(120)
        yield ex


@needs_fashion
def test_training_steps_lower_the_loss_and_leave_the_shipped_weights_alone(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    shipped = mc.models.fashion_net(pretrained=True).state_dict()
    t = Trainer(held_out=200, eval_every=10, draw_every=0.0)
    w0 = t.model.state_dict()["features.0.weight"].copy()
    t.start("fashion_net", lr=3e-3, batch_size=32)
    assert t.wait_steps(40, timeout=300) >= 40
    t.pause()
    s = t.snapshot()
    loss = s["curves"]["train"]["loss"]
    # from ln 10 = 2.30 (random weights) to well below within 40 Adam steps (about 1.0)
    assert np.mean(loss[:5]) > 2.0 and np.mean(loss[-5:]) < 0.75 * np.mean(loss[:5])
    assert s["curves"]["test"]["step"][:2] == [1, 10]
    assert not np.array_equal(t.model.state_dict()["features.0.weight"], w0)
    pics = s["pictures"]
    assert pics["filters"]["count"] == 16 and len(pics["activations"]) == len(t.layers)
    assert {g["name"] for g in pics["gradients"]} == set(t.layers)
    # the mistakes shown are held-out images the network gets wrong now, most confident first
    probs = [w["prob"] for w in pics["wrong"]]
    assert probs == sorted(probs, reverse=True) and all(w["label"] != w["guess"]
                                                        for w in pics["wrong"])
    path = t.save()
    assert path.parent == tmp_path / "explore" / "runs" and path.is_file()
    state, meta = mc.io.load_npz(path, expected_arch="fashion_net")
    assert meta["provenance"]["steps"] == s["step"]
    np.testing.assert_array_equal(state["features.0.weight"],
                                  t.model.state_dict()["features.0.weight"])
    for k, v in mc.models.fashion_net(pretrained=True).state_dict().items():
        np.testing.assert_array_equal(v, shipped[k])             # shipped weights untouched
    t.reset()
    assert t.snapshot()["step"] == 0 and t.snapshot()["curves"]["train"]["loss"] == []


def test_bad_training_requests_are_clear_400s(explorer):
    client = create_app(explorer).test_client()
    cases = [({"action": "start", "lr": -1}, "learning rate -1 must be"),
             ({"action": "start", "batch_size": 0}, "batch size 0 must be"),
             ({"action": "configure", "batch_size": 2.5}, "batch size 2.5 must be"),
             ({"action": "reset", "network": "vgg16"}, "network 'vgg16' cannot be trained"),
             ({"action": "save"}, "nothing to save yet"),
             ({"action": "fly"}, "action 'fly' is not known")]
    for body, message in cases:
        r = client.post("/api/train", json=body)
        assert r.status_code == 400 and message in r.json["error"], (body, r.json)
    r = client.get("/api/train")
    assert r.status_code == 200 and r.json["step"] == 0 and r.json["status"] == "ready"
    assert r.json["networks"]["fashion_net"]["dataset"] == "Fashion-MNIST"


def test_top9_projections_are_the_units_backward_pass_on_each_image(explorer):
    """DeepVis' deconv of the top 9: image i's projection is input_gradient of the unit on
    image i alone (the batched pass mixes nothing between images)."""
    layer, unit = "features.6", 5
    _, indices, _ = explorer.top_images.tables[layer]
    idx = indices[unit]
    got = explorer.top_images.projections(layer, unit, "guided", idx)
    for i in (0, len(idx) - 1):
        x = explorer.pre.preprocess(explorer.top_images.pixels[int(idx[i])])[0]
        alone = input_gradient(explorer.model, x, layer=layer, unit=unit, signal="activation",
                               relu_rule="guided")
        scale = np.abs(alone).max()
        assert scale > 0
        np.testing.assert_allclose(got[i], alone, atol=1e-5 * scale)
    client = create_app(explorer).test_client()
    r = client.get(f"/api/top?layer={layer}&unit={unit}&rule=guided").json
    assert len(r["projections"]) == len(r["images"]) == len(idx) and r["rule"] == "guided"
    assert client.get(f"/api/top?layer={layer}&unit={unit}").json["projections"] is None
    bad = client.get(f"/api/top?layer={layer}&unit={unit}&rule=magic")
    assert bad.status_code == 400 and "rule 'magic'" in bad.json["error"]


@needs_fashion
def test_a_saved_run_opens_in_the_explorer_with_its_own_weights(tmp_path, monkeypatch):
    """A run saved by the Train tab is what ``minicnn explore --weights FILE`` explores."""
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    t = Trainer(held_out=100, eval_every=5, draw_every=60.0)
    t.start("fashion_net", batch_size=16)
    t.wait_steps(5, timeout=120)
    t.pause()
    path = t.save()
    ex = build("fashion_net", installed=False, start=False, weights=path)
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(mc.to_numpy(ex.model.state_dict()[k]), v)
    assert ex.labels[7] == "Sneaker" and ex.model.weights_path == str(path)
    from minicnn.cli import build_parser
    args = build_parser().parse_args(["explore", "--weights", str(path)])
    assert args.weights == str(path)

